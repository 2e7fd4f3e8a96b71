//! What a user runs, read from Jupyter's websocket messages. Pure: bytes in, events out.
//!
//! Kernel channels (`…/api/kernels/{id}/channels`) carry messages in three framings, and the
//! server picks one by the negotiated subprotocol. To leave no gap between what is reported
//! and what runs, every framing is tried on every message regardless of the subprotocol:
//!
//! - legacy JSON text: `{"header": {"msg_type", "msg_id"}, "channel", "content", …}`;
//! - legacy binary (jupyter_server's `deserialize_binary_message`): big-endian `i32` count
//!   `n`, `n` big-endian `u32` offsets, part 0 is the JSON message;
//! - `v1.kernel.websocket.jupyter.org` (`deserialize_msg_from_ws_v1`): little-endian `u64`
//!   count `n`, `n` little-endian `u64` offsets; parts are channel, header, parent header,
//!   metadata, content, buffers.
//!
//! Offsets are read with Python's slice semantics (clamped, short reads as smaller integers),
//! JSON with [`crate::json`], which accepts a superset of what Python accepts. Messages that
//! run code are `execute_request` (`content.code`), `input_reply` (`content.value`: what is
//! typed at `input()` or a debugger prompt) and the debugger's `evaluate`, `setExpression`
//! and `setVariable` requests — on any channel, since ipykernel also executes on `control`.
//!
//! Terminals (`…/terminals/websocket/{name}`) carry `["stdin", text]` arrays, as text frames
//! or — terminado accepts them too — binary frames in any encoding Python's `json.loads`
//! detects (UTF-8, UTF-16, UTF-32). [`LineAssembler`] turns keystrokes into lines.

use crate::json;

/// What kind of websocket a path leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A kernel's channels.
    Kernel {
        /// The kernel id from the path.
        kernel: String,
    },
    /// A terminal.
    Terminal {
        /// The terminal's name from the path.
        name: String,
    },
    /// Anything else (kernel framings are still inspected).
    Other,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn classify_segments(path: &str) -> Kind {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let [.., api, kernels, id, channels] = segs.as_slice() {
        if *api == "api" && *kernels == "kernels" && *channels == "channels" {
            return Kind::Kernel {
                kernel: (*id).to_owned(),
            };
        }
    }
    if let [.., terminals, websocket, name] = segs.as_slice() {
        if *terminals == "terminals" && *websocket == "websocket" {
            return Kind::Terminal {
                name: (*name).to_owned(),
            };
        }
    }
    Kind::Other
}

/// Classifies a request path (raw, and percent-decoded when the raw form says nothing).
pub(crate) fn classify(path: &str) -> Kind {
    match classify_segments(path) {
        Kind::Other if path.contains('%') => classify_segments(&percent_decode(path)),
        kind => kind,
    }
}

/// A kernel message that runs code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelRun {
    /// The channel it was sent on (`shell` when the message names none).
    pub channel: String,
    /// `header.msg_type`.
    pub msg_type: String,
    /// `header.msg_id` (empty when absent).
    pub msg_id: String,
    /// The code (or input) it submits.
    pub code: String,
}

fn run_from_parts(channel: String, header: &[u8], content: &[u8]) -> Option<KernelRun> {
    let msg_type = json::string(json::get(header, "msg_type")?)?;
    let text = |obj: &[u8], key: &str| json::get(obj, key).and_then(json::string);
    let code = match msg_type.as_str() {
        "execute_request" => text(content, "code")?,
        "input_reply" => text(content, "value")?,
        "debug_request" => {
            let args = json::get(content, "arguments")?;
            match text(content, "command")?.as_str() {
                "evaluate" => text(args, "expression")?,
                "setExpression" => format!(
                    "{} = {}",
                    text(args, "expression")?,
                    text(args, "value").unwrap_or_default()
                ),
                "setVariable" => format!(
                    "{} = {}",
                    text(args, "name").unwrap_or_default(),
                    text(args, "value")?
                ),
                _ => return None,
            }
        }
        _ => return None,
    };
    let msg_id = text(header, "msg_id").unwrap_or_default();
    Some(KernelRun {
        channel,
        msg_type,
        msg_id,
        code,
    })
}

/// A legacy JSON kernel message (a text frame, or part 0 of a legacy binary one).
fn legacy_json(doc: &[u8]) -> Option<KernelRun> {
    let (mut header, mut content, mut channel) = (None, None, None);
    for (key, value) in json::members(doc)? {
        match key.as_str() {
            "header" => header = Some(value),
            "content" => content = Some(value),
            "channel" => channel = Some(value),
            _ => {}
        }
    }
    // Python: `msg.pop("channel", None)`, and a missing (or null) channel means "shell".
    let channel = channel
        .and_then(json::string)
        .unwrap_or_else(|| "shell".to_owned());
    run_from_parts(channel, header?, content?)
}

/// Python's `bytes[a:b]` for non-negative bounds.
fn py_slice(b: &[u8], start: u64, stop: Option<u64>) -> &[u8] {
    let len = b.len();
    let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX).min(len);
    let (start, stop) = (clamp(start), stop.map_or(len, clamp));
    if start >= stop {
        &[]
    } else {
        &b[start..stop]
    }
}

/// `int.from_bytes(b[a:a+8], "little")`, short slices included.
fn le_u64_at(b: &[u8], at: u64) -> u64 {
    py_slice(b, at, Some(at.saturating_add(8)))
        .iter()
        .rev()
        .fold(0u64, |n, &x| (n << 8) | u64::from(x))
}

/// The `v1.kernel.websocket.jupyter.org` framing.
fn v1(msg: &[u8]) -> Option<KernelRun> {
    let count = le_u64_at(msg, 0);
    let offset = |i: u64| (i < count).then(|| le_u64_at(msg, 8 * (i + 1)));
    let part = |i: u64| Some(py_slice(msg, offset(i)?, Some(offset(i + 1)?)));
    let channel = String::from_utf8_lossy(part(0)?).into_owned();
    run_from_parts(channel, part(1)?, part(4)?)
}

/// jupyter_server's legacy binary framing.
fn legacy_binary(msg: &[u8]) -> Option<KernelRun> {
    let be_u32 = |at: usize| -> Option<u32> {
        let b: [u8; 4] = msg.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b))
    };
    let count = i32::from_be_bytes(msg.get(..4)?.try_into().ok()?);
    let count = usize::try_from(count).ok().filter(|&n| n > 0)?;
    // `struct.unpack` needs all `count` offsets to be there.
    if count.checked_add(1)?.checked_mul(4)? > msg.len() {
        return None;
    }
    let start = be_u32(4)?;
    let stop = if count >= 2 { Some(be_u32(8)?) } else { None };
    legacy_json(py_slice(msg, start.into(), stop.map(u64::from)))
}

/// The runs a kernel text frame submits (at most one).
pub(crate) fn kernel_text(text: &str) -> Option<KernelRun> {
    legacy_json(text.as_bytes())
}

/// The runs a kernel binary frame submits: every framing's reading, without duplicates.
pub(crate) fn kernel_binary(msg: &[u8]) -> Vec<KernelRun> {
    let mut runs = Vec::new();
    for run in [v1(msg), legacy_binary(msg)].into_iter().flatten() {
        if !runs.contains(&run) {
            runs.push(run);
        }
    }
    runs
}

fn decode_utf16(b: &[u8], big_endian: bool) -> String {
    let units = b.chunks_exact(2).map(|c| {
        if big_endian {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_le_bytes([c[0], c[1]])
        }
    });
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn decode_utf32(b: &[u8], big_endian: bool) -> String {
    b.chunks_exact(4)
        .map(|c| {
            let n = if big_endian {
                u32::from_be_bytes([c[0], c[1], c[2], c[3]])
            } else {
                u32::from_le_bytes([c[0], c[1], c[2], c[3]])
            };
            char::from_u32(n).unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect()
}

/// Decodes bytes the way Python's `json.loads(bytes)` does (`json.detect_encoding`), lossily.
pub(crate) fn python_json_text(b: &[u8]) -> String {
    match b {
        [0, 0, 0xFE, 0xFF, rest @ ..] => decode_utf32(rest, true),
        [0xFF, 0xFE, 0, 0, rest @ ..] => decode_utf32(rest, false),
        [0xFE, 0xFF, rest @ ..] => decode_utf16(rest, true),
        [0xFF, 0xFE, rest @ ..] => decode_utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0, b1, _, _, ..] => {
            if *b1 != 0 {
                decode_utf16(b, true)
            } else {
                decode_utf32(b, true)
            }
        }
        [_, 0, b2, b3, ..] => {
            if *b2 != 0 || *b3 != 0 {
                decode_utf16(b, false)
            } else {
                decode_utf32(b, false)
            }
        }
        [0, _] => decode_utf16(b, true),
        [_, 0] => decode_utf16(b, false),
        _ => String::from_utf8_lossy(b).into_owned(),
    }
}

/// The text of a terminal `["stdin", text]` message (a decoded frame), if it is one.
pub(crate) fn terminal_stdin(text: &str) -> Option<String> {
    let mut items = json::elements(text.as_bytes())?;
    if json::string(items.next()?)? != "stdin" {
        return None;
    }
    json::string(items.next()?)
}

/// Turns a terminal's keystrokes into command lines, crudely: a line ends at `\r` or `\n`
/// (and at Ctrl-C or Ctrl-D, which are kept in it); backspace and DEL remove the last
/// character; other control characters stay in the line as typed; a line longer than the cap
/// is reported in pieces. What is left when the connection ends is reported by
/// [`LineAssembler::finish`] (a terminal outlives its websocket, so it may still run).
#[derive(Debug)]
pub(crate) struct LineAssembler {
    line: String,
    chars: usize,
    max_chars: usize,
}

impl LineAssembler {
    /// An assembler whose lines hold at most `max_chars` characters.
    pub(crate) fn new(max_chars: usize) -> LineAssembler {
        LineAssembler {
            line: String::new(),
            chars: 0,
            max_chars: max_chars.max(1),
        }
    }

    fn take(&mut self, out: &mut Vec<String>) {
        if !self.line.trim().is_empty() {
            out.push(std::mem::take(&mut self.line));
        }
        self.line.clear();
        self.chars = 0;
    }

    /// Feeds typed text; complete lines are appended to `out`.
    pub(crate) fn push(&mut self, text: &str, out: &mut Vec<String>) {
        for c in text.chars() {
            match c {
                '\r' | '\n' => self.take(out),
                '\u{7f}' | '\u{8}' => {
                    if self.line.pop().is_some() {
                        self.chars -= 1;
                    }
                }
                '\u{3}' | '\u{4}' => {
                    self.line.push(c);
                    self.take(out);
                }
                c => {
                    self.line.push(c);
                    self.chars += 1;
                    if self.chars >= self.max_chars {
                        self.take(out);
                    }
                }
            }
        }
    }

    /// The unfinished line, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        let mut out = Vec::new();
        self.take(&mut out);
        out.pop()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// jupyter_server's `serialize_msg_to_ws_v1`.
    fn v1_frame(channel: &str, parts: &[&[u8]]) -> Vec<u8> {
        let mut offsets = vec![8 * (1 + 1 + parts.len() as u64 + 1)];
        offsets.push(offsets[0] + channel.len() as u64);
        for p in parts {
            offsets.push(offsets.last().unwrap() + p.len() as u64);
        }
        let mut out = (offsets.len() as u64).to_le_bytes().to_vec();
        for o in &offsets {
            out.extend(o.to_le_bytes());
        }
        out.extend(channel.as_bytes());
        for p in parts {
            out.extend(*p);
        }
        out
    }

    /// jupyter_server's `serialize_binary_message`.
    fn legacy_binary_frame(msg: &[u8], buffers: &[&[u8]]) -> Vec<u8> {
        let mut bufs: Vec<&[u8]> = vec![msg];
        bufs.extend(buffers);
        let n = bufs.len() as u32;
        let mut offsets = vec![4 * (n + 1)];
        for b in &bufs[..bufs.len() - 1] {
            offsets.push(offsets.last().unwrap() + b.len() as u32);
        }
        let mut out = n.to_be_bytes().to_vec();
        for o in offsets {
            out.extend(o.to_be_bytes());
        }
        for b in bufs {
            out.extend(b);
        }
        out
    }

    const HEADER: &[u8] = br#"{"msg_id": "m-1", "msg_type": "execute_request", "session": "s", "username": "", "version": "5.3", "date": ""}"#;
    const CONTENT: &[u8] =
        br#"{"code": "import os\nos.listdir('.')", "silent": false, "store_history": true}"#;

    fn expected(channel: &str) -> KernelRun {
        KernelRun {
            channel: channel.into(),
            msg_type: "execute_request".into(),
            msg_id: "m-1".into(),
            code: "import os\nos.listdir('.')".into(),
        }
    }

    #[test]
    fn classifies_paths() {
        assert_eq!(
            classify("/p/demo/nb/n1/api/kernels/0f6e-1/channels"),
            Kind::Kernel {
                kernel: "0f6e-1".into()
            }
        );
        assert_eq!(
            classify("/p/demo/nb/n1//api/kernels/k/%63hannels"),
            Kind::Kernel { kernel: "k".into() }
        );
        assert_eq!(
            classify("/p/demo/nb/n1/terminals/websocket/1"),
            Kind::Terminal { name: "1".into() }
        );
        assert_eq!(classify("/p/demo/nb/n1/api/events/subscribe"), Kind::Other);
        assert_eq!(classify(""), Kind::Other);
    }

    #[test]
    fn legacy_json_execute_request() {
        let text = format!(
            r#"{{"header": {}, "parent_header": {{}}, "metadata": {{}}, "content": {}, "channel": "shell", "buffers": []}}"#,
            std::str::from_utf8(HEADER).unwrap(),
            std::str::from_utf8(CONTENT).unwrap()
        );
        assert_eq!(kernel_text(&text), Some(expected("shell")));
        // No channel means shell; the control channel executes too.
        let no_channel = text.replace(r#", "channel": "shell""#, "");
        assert_eq!(kernel_text(&no_channel), Some(expected("shell")));
        let control = text.replace(r#""channel": "shell""#, r#""channel": "control""#);
        assert_eq!(kernel_text(&control), Some(expected("control")));
        // Other message types are not runs.
        let kernel_info = text.replace("execute_request", "kernel_info_request");
        assert_eq!(kernel_text(&kernel_info), None);
    }

    #[test]
    fn duplicate_keys_resolve_like_python() {
        let text = r#"{"header": {"msg_type": "execute_request", "msg_id": "a"},
            "content": {"code": "harmless()"}, "content": {"code": "evil()"}}"#;
        assert_eq!(kernel_text(text).unwrap().code, "evil()");
        let text = r#"{"header": {"msg_type": "kernel_info_request", "msg_type": "execute_request"},
            "content": {"code": "evil()"}}"#;
        assert_eq!(kernel_text(text).unwrap().code, "evil()");
    }

    #[test]
    fn v1_execute_request() {
        let frame = v1_frame("shell", &[HEADER, b"{}", b"{}", CONTENT]);
        assert_eq!(kernel_binary(&frame), vec![expected("shell")]);
        // With buffers after the content.
        let frame = v1_frame("shell", &[HEADER, b"{}", b"{}", CONTENT, b"\x00\x01"]);
        assert_eq!(kernel_binary(&frame), vec![expected("shell")]);
        // Too few parts: no content, nothing runs.
        let frame = v1_frame("shell", &[HEADER, b"{}", b"{}"]);
        assert!(kernel_binary(&frame).is_empty());
    }

    #[test]
    fn legacy_binary_execute_request() {
        let msg = format!(
            r#"{{"header": {}, "parent_header": {{}}, "content": {}, "channel": "shell"}}"#,
            std::str::from_utf8(HEADER).unwrap(),
            std::str::from_utf8(CONTENT).unwrap()
        );
        let frame = legacy_binary_frame(msg.as_bytes(), &[]);
        assert_eq!(kernel_binary(&frame), vec![expected("shell")]);
        let frame = legacy_binary_frame(msg.as_bytes(), &[b"buffer-1", b"buffer-2"]);
        assert_eq!(kernel_binary(&frame), vec![expected("shell")]);
    }

    #[test]
    fn other_runs() {
        let input = r#"{"header": {"msg_type": "input_reply", "msg_id": "i"}, "channel": "stdin", "content": {"value": "!rm -rf x"}}"#;
        let run = kernel_text(input).unwrap();
        assert_eq!(
            (run.msg_type.as_str(), run.code.as_str()),
            ("input_reply", "!rm -rf x")
        );
        let eval = r#"{"header": {"msg_type": "debug_request"}, "channel": "control", "content": {"command": "evaluate", "arguments": {"expression": "open('/etc/passwd').read()"}}}"#;
        assert_eq!(
            kernel_text(eval).unwrap().code,
            "open('/etc/passwd').read()"
        );
        let set = r#"{"header": {"msg_type": "debug_request"}, "content": {"command": "setVariable", "arguments": {"name": "x", "value": "__import__('os').system('id')"}}}"#;
        assert_eq!(
            kernel_text(set).unwrap().code,
            "x = __import__('os').system('id')"
        );
        let other = r#"{"header": {"msg_type": "debug_request"}, "content": {"command": "stackTrace", "arguments": {}}}"#;
        assert_eq!(kernel_text(other), None);
    }

    #[test]
    fn garbage_is_not_reported_and_never_panics() {
        for frame in [
            &b""[..],
            b"\x00",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x06\x00\x00\x00\x00\x00\x00\x00",
            b"\x7f\xff\xff\xff",
            b"\x00\x00\x00\x01",
            b"\x80\x00\x00\x00\x00\x00\x00\x00",
            b"\x00\x00\x00\x02\x00\x00\x00\x0c\xff\xff\xff\xff",
        ] {
            assert!(kernel_binary(frame).is_empty());
        }
        assert_eq!(kernel_text("not json"), None);
        assert_eq!(kernel_text("[1,2]"), None);
        // Every truncation and every single-byte corruption of real frames.
        let v1 = v1_frame("shell", &[HEADER, b"{}", b"{}", CONTENT]);
        let legacy = legacy_binary_frame(
            br#"{"header": {"msg_type": "execute_request"}, "content": {"code": "x"}}"#,
            &[b"b"],
        );
        for frame in [v1, legacy] {
            for n in 0..frame.len() {
                let _ = kernel_binary(&frame[..n]);
                let mut bad = frame.clone();
                bad[n] ^= 0xA5;
                let _ = kernel_binary(&bad);
            }
        }
    }

    #[test]
    fn huge_offsets_are_clamped() {
        // Offsets far past the end, and a count of 2^64 - 1.
        let mut frame = u64::MAX.to_le_bytes().to_vec();
        for o in [56u64, 61, u64::MAX, 3, 0, u64::MAX] {
            frame.extend(o.to_le_bytes());
        }
        frame.extend(b"shell");
        assert!(kernel_binary(&frame).is_empty());
    }

    #[test]
    fn terminal_messages() {
        assert_eq!(terminal_stdin(r#"["stdin", "ls\r"]"#).unwrap(), "ls\r");
        assert_eq!(terminal_stdin(r#"["set_size", 24, 80]"#), None);
        assert_eq!(terminal_stdin(r#"["stdin", 5]"#), None);
        assert_eq!(terminal_stdin(r#"{"0": "stdin"}"#), None);
        assert_eq!(terminal_stdin("garbage"), None);
        // Binary frames in the encodings Python's json.loads detects.
        let utf16le: Vec<u8> =
            r#"["stdin", "id\r"]"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(terminal_stdin(&python_json_text(&utf16le)).unwrap(), "id\r");
        let utf16be_bom: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(r#"["stdin", "id\r"]"#.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(
            terminal_stdin(&python_json_text(&utf16be_bom)).unwrap(),
            "id\r"
        );
        let utf32le: Vec<u8> =
            r#"["stdin", "id\r"]"#.chars().flat_map(|c| u32::from(c).to_le_bytes()).collect();
        assert_eq!(terminal_stdin(&python_json_text(&utf32le)).unwrap(), "id\r");
        assert_eq!(
            terminal_stdin(&python_json_text(b"\xEF\xBB\xBF[\"stdin\",\"x\"]")).unwrap(),
            "x"
        );
        for junk in [
            &b""[..],
            b"\x00",
            b"\x00\x01",
            b"\xff\x00\x00",
            b"\x00\x00\x00\x00\x00",
        ] {
            let _ = terminal_stdin(&python_json_text(junk));
        }
    }

    #[test]
    fn line_assembly() {
        let mut a = LineAssembler::new(10);
        let mut out = Vec::new();
        for key in ["l", "s", " ", "-", "l", "\r"] {
            a.push(key, &mut out);
        }
        a.push("echo x\u{7f}y\r\r\n", &mut out);
        a.push("one\rtwo\npartial", &mut out);
        assert_eq!(out, ["ls -l", "echo y", "one", "two"]);
        assert_eq!(a.finish().as_deref(), Some("partial"));
        assert_eq!(a.finish(), None);
        out.clear();
        a.push("0123456789abc\r", &mut out);
        assert_eq!(out, ["0123456789", "abc"]);
        out.clear();
        a.push("\u{7f}\u{7f}x\u{8}y\u{3}", &mut out);
        assert_eq!(out, ["y\u{3}"]);
    }
}
