//! A lenient, allocation-light JSON reader for picking a few fields out of a message.
//!
//! It accepts every document Python's `json` (and `orjson`) accept and more — NaN and
//! Infinity, numbers of any size, nesting of any depth (values are skipped without
//! recursion), lone surrogates (read as U+FFFD), raw control characters, invalid UTF-8 (read
//! lossily), trailing commas and trailing garbage — so that a message the server would act on
//! is never one this reader gives up on. Duplicate keys resolve as in Python: the last wins.
//! It never panics and runs in time linear in its input.

/// Skips JSON whitespace (and a byte-order mark, which Python's byte decoders strip).
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    loop {
        match s.get(i) {
            Some(b' ' | b'\t' | b'\n' | b'\r') => i += 1,
            Some(0xEF) if s.get(i + 1) == Some(&0xBB) && s.get(i + 2) == Some(&0xBF) => i += 3,
            _ => return i,
        }
    }
}

/// The end (exclusive) of the string starting at `s[i] == b'"'`.
fn skip_string(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match s.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The end (exclusive) of the value starting at `s[i]` (no leading whitespace).
fn skip_value(s: &[u8], i: usize) -> Option<usize> {
    match s.get(i)? {
        b'"' => skip_string(s, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match s.get(j)? {
                    b'"' => {
                        j = skip_string(s, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        b'}' | b']' | b',' | b':' => None,
        _ => {
            let mut j = i;
            while let Some(&b) = s.get(j) {
                if matches!(b, b',' | b'}' | b']' | b':' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            Some(j)
        }
    }
}

/// The bytes of the first value in `s`, without surrounding whitespace.
fn value(s: &[u8]) -> Option<&[u8]> {
    let start = skip_ws(s, 0);
    let end = skip_value(s, start)?;
    s.get(start..end)
}

/// The members of the object `s` (a JSON value, surrounding whitespace allowed), in order.
/// `None` when `s` is not an object. Iteration stops at the first malformed member.
pub(crate) fn members(s: &[u8]) -> Option<Members<'_>> {
    let i = skip_ws(s, 0);
    if s.get(i) != Some(&b'{') {
        return None;
    }
    Some(Members {
        s,
        i: i + 1,
        done: false,
    })
}

/// Iterator over an object's `(key, value bytes)`.
pub(crate) struct Members<'a> {
    s: &'a [u8],
    i: usize,
    done: bool,
}

impl<'a> Iterator for Members<'a> {
    type Item = (String, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if item.is_none() {
            self.done = true;
        }
        item
    }
}

impl<'a> Members<'a> {
    fn step(&mut self) -> Option<(String, &'a [u8])> {
        let s = self.s;
        let mut i = skip_ws(s, self.i);
        if s.get(i)? != &b'"' {
            return None;
        }
        let key_end = skip_string(s, i)?;
        let key = decode_string(s.get(i..key_end)?)?;
        i = skip_ws(s, key_end);
        if s.get(i)? != &b':' {
            return None;
        }
        let start = skip_ws(s, i + 1);
        let end = skip_value(s, start)?;
        let v = s.get(start..end)?;
        i = skip_ws(s, end);
        match s.get(i) {
            Some(b',') => self.i = i + 1,
            _ => self.done = true,
        }
        Some((key, v))
    }
}

/// The elements of the array `s`, in order; `None` when `s` is not an array.
pub(crate) fn elements(s: &[u8]) -> Option<Elements<'_>> {
    let i = skip_ws(s, 0);
    if s.get(i) != Some(&b'[') {
        return None;
    }
    Some(Elements {
        s,
        i: i + 1,
        done: false,
    })
}

/// Iterator over an array's element bytes.
pub(crate) struct Elements<'a> {
    s: &'a [u8],
    i: usize,
    done: bool,
}

impl<'a> Iterator for Elements<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = skip_ws(s, self.i);
        let Some(end) = skip_value(s, start) else {
            self.done = true;
            return None;
        };
        let i = skip_ws(s, end);
        match s.get(i) {
            Some(b',') => self.i = i + 1,
            _ => self.done = true,
        }
        s.get(start..end)
    }
}

/// The value of `key` in the object `s` (the last one when the key repeats, as in Python).
pub(crate) fn get<'a>(s: &'a [u8], key: &str) -> Option<&'a [u8]> {
    members(s)?.filter(|(k, _)| k == key).map(|(_, v)| v).last()
}

/// The string `s` is (a JSON string value, surrounding whitespace allowed), decoded.
pub(crate) fn string(s: &[u8]) -> Option<String> {
    let v = value(s)?;
    if v.first() != Some(&b'"') {
        return None;
    }
    decode_string(v)
}

fn hex4(s: &[u8]) -> Option<u32> {
    let digits = s.get(..4)?;
    let mut n = 0u32;
    for &d in digits {
        n = n * 16 + char::from(d).to_digit(16)?;
    }
    Some(n)
}

/// Decodes a raw JSON string token (with its quotes).
fn decode_string(raw: &[u8]) -> Option<String> {
    let body = raw.get(1..raw.len().checked_sub(1)?)?;
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let next = body[i..]
            .iter()
            .position(|&b| b == b'\\')
            .map_or(body.len(), |p| i + p);
        out.push_str(&String::from_utf8_lossy(&body[i..next]));
        i = next;
        if i >= body.len() {
            break;
        }
        // body[i] == '\\'
        let Some(&e) = body.get(i + 1) else {
            out.push('\\');
            break;
        };
        i += 2;
        match e {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let Some(hi) = hex4(&body[i..]) else {
                    out.push(char::REPLACEMENT_CHARACTER);
                    continue;
                };
                i += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    let low = if body.get(i) == Some(&b'\\') && body.get(i + 1) == Some(&b'u') {
                        hex4(body.get(i + 2..).unwrap_or_default())
                    } else {
                        None
                    };
                    match low {
                        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                            i += 6;
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                        }
                        _ => out.push(char::REPLACEMENT_CHARACTER),
                    }
                } else {
                    out.push(char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
            }
            other => {
                // Invalid escape: Python refuses the document; keep the text visible.
                out.push('\\');
                i -= 1;
                if other.is_ascii() {
                    out.push(char::from(other));
                    i += 1;
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn reads_members_and_strings() {
        let doc =
            br#" {"a": 1, "b" : {"c": [1, {"d": "}"}]}, "s": "x\"y\\z\n\u00e9\ud83d\ude00"} "#;
        let keys: Vec<String> = members(doc).unwrap().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "s"]);
        assert_eq!(string(get(doc, "s").unwrap()).unwrap(), "x\"y\\z\né😀");
        let b = get(doc, "b").unwrap();
        assert_eq!(b, br#"{"c": [1, {"d": "}"}]}"#);
        assert_eq!(get(doc, "a").unwrap(), b"1");
        assert!(string(get(doc, "a").unwrap()).is_none());
    }

    #[test]
    fn last_duplicate_key_wins_and_keys_are_decoded() {
        let doc = br#"{"code": "first", "co\u0064e": "second"}"#;
        assert_eq!(string(get(doc, "code").unwrap()).unwrap(), "second");
    }

    #[test]
    fn accepts_what_python_accepts() {
        let doc = br#"{"x": NaN, "y": -Infinity, "z": 1e999999, "big": 123456789012345678901234567890, "code": "ok"}"#;
        assert_eq!(string(get(doc, "code").unwrap()).unwrap(), "ok");
        // Lone surrogates decode to U+FFFD instead of failing.
        assert_eq!(
            string(br#""a\ud800b\udc00""#).unwrap(),
            "a\u{FFFD}b\u{FFFD}"
        );
        // Invalid UTF-8 is read lossily (the kernel's unpacker decodes with "replace").
        assert_eq!(string(b"\"a\xffb\"").unwrap(), "a\u{FFFD}b");
        // Deep nesting is skipped without recursion.
        let mut deep = b"{\"m\": ".to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend(br#", "code": "deep"}"#);
        assert_eq!(string(get(&deep, "code").unwrap()).unwrap(), "deep");
        // A byte-order mark in front is skipped.
        assert_eq!(
            string(get(b"\xEF\xBB\xBF{\"code\":\"b\"}", "code").unwrap()).unwrap(),
            "b"
        );
    }

    #[test]
    fn arrays() {
        let items: Vec<&[u8]> = elements(br#"["stdin", "ls\r", 3]"#).unwrap().collect();
        assert_eq!(items.len(), 3);
        assert_eq!(string(items[1]).unwrap(), "ls\r");
        assert!(elements(b"{}").is_none());
        assert_eq!(elements(b"[]").unwrap().count(), 0);
    }

    #[test]
    fn garbage_never_panics() {
        let samples: [&[u8]; 14] = [
            b"",
            b"{",
            b"}",
            b"{\"",
            b"{\"a\"",
            b"{\"a\":",
            b"{\"a\":\"",
            b"\"\\",
            b"\"\\u12",
            b"\"\\ud800\\u",
            b"[",
            b"[,",
            b"{\"a\":}",
            b"\xff\xfe\x00",
        ];
        for s in samples {
            let _ = members(s).map(|m| m.count());
            let _ = elements(s).map(|e| e.count());
            let _ = string(s);
            let _ = get(s, "a");
        }
        // Every prefix of a real message.
        let doc = br#"{"header": {"msg_type": "execute_request"}, "content": {"code": "1\u00e9"}}"#;
        for n in 0..doc.len() {
            let _ = get(&doc[..n], "content")
                .and_then(|c| get(c, "code"))
                .and_then(string);
        }
    }
}
