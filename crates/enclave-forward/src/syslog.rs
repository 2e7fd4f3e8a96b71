//! Syslog: RFC 5424 messages, RFC 6587 octet-counting framing, over TCP or TLS (rustls with
//! aws-lc-rs).
//!
//! One record becomes
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME enclave PROCID MSGID [enclave@32473 seq="42" outcome="denied"] BOM{json}
//! ```
//!
//! framed as `LEN SP MESSAGE` (LEN = the message's length in octets). PRI = facility × 8 +
//! severity; by default facility 10 (authpriv) and severity from the outcome (denied/failure →
//! 4 warning, success → 5 notice, anything else → 6 informational). MSGID is the action reduced
//! to printable US-ASCII, at most 32 characters. `32473` is the private enterprise number RFC
//! 5612 reserves for documentation; collectors match on the SD-ID `enclave@32473`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::{BoxFuture, ForwardError, ForwardRecord, Sink};

/// APP-NAME of every message.
pub const APP_NAME: &str = "enclave";
/// SD-ID of the structured-data element carrying the seq.
pub const SD_ID: &str = "enclave@32473";
/// Default facility: 10 (authpriv, security/authorization messages).
pub const DEFAULT_FACILITY: u8 = 10;
/// Longest MSGID RFC 5424 allows.
pub const MSGID_MAX: usize = 32;
/// Longest HOSTNAME RFC 5424 allows.
pub const HOSTNAME_MAX: usize = 255;
/// The UTF-8 byte order mark that announces a UTF-8 MSG (RFC 5424 §6.4).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Severity for an audit outcome: denied/failure → 4 (warning), success → 5 (notice), anything
/// else → 6 (informational).
pub fn severity_for_outcome(outcome: &str) -> u8 {
    match outcome {
        "denied" | "failure" => 4,
        "success" => 5,
        _ => 6,
    }
}

/// Reduces a header field to PRINTUSASCII (`!`..=`~`), replacing everything else with `_`, cut to
/// `max` characters; the NILVALUE `-` when nothing is left.
pub fn sanitize_header(value: &str, max: usize) -> String {
    let out: String = value
        .chars()
        .take(max)
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .collect();
    if out.is_empty() {
        "-".to_owned()
    } else {
        out
    }
}

/// MSGID for an action: printable US-ASCII, at most 32 characters.
pub fn sanitize_msgid(action: &str) -> String {
    sanitize_header(action, MSGID_MAX)
}

/// Escapes a structured-data PARAM-VALUE: `"`, `\` and `]` get a backslash (RFC 5424 §6.3.3).
pub fn escape_param_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RFC 3339 UTC timestamp of unix seconds, or the NILVALUE when out of range.
fn timestamp(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".to_owned())
}

/// The JSON on one line: a raw CR or LF can only occur between tokens of valid JSON, so turning
/// it into a space keeps the document equivalent.
pub(crate) fn one_line(json: &str) -> std::borrow::Cow<'_, str> {
    if json.contains(['\n', '\r']) {
        std::borrow::Cow::Owned(json.replace(['\n', '\r'], " "))
    } else {
        std::borrow::Cow::Borrowed(json)
    }
}

/// This machine's host name (from `/proc/sys/kernel/hostname` or `/etc/hostname`), sanitized;
/// `-` when unknown.
pub fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| sanitize_header(h.trim(), HOSTNAME_MAX))
        .unwrap_or_else(|| "-".to_owned())
}

/// How records are rendered as RFC 5424 messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogFormat {
    facility: u8,
    severity: Option<u8>,
    hostname: String,
    procid: String,
}

impl SyslogFormat {
    /// `facility` 0–23 (clamped), `severity` 0–7 (clamped) to override the outcome-based one,
    /// `hostname` (sanitized) or the system's.
    pub fn new(facility: u8, severity: Option<u8>, hostname: Option<&str>) -> Self {
        SyslogFormat {
            facility: facility.min(23),
            severity: severity.map(|s| s.min(7)),
            hostname: hostname
                .map(|h| sanitize_header(h, HOSTNAME_MAX))
                .unwrap_or_else(system_hostname),
            procid: std::process::id().to_string(),
        }
    }

    /// PRI value for a record.
    pub fn pri(&self, record: &ForwardRecord) -> u16 {
        let severity = self
            .severity
            .unwrap_or_else(|| severity_for_outcome(&record.outcome));
        u16::from(self.facility) * 8 + u16::from(severity)
    }

    /// The RFC 5424 message (without framing).
    pub fn message(&self, record: &ForwardRecord) -> Vec<u8> {
        let mut head = String::with_capacity(160);
        // Writing to a String cannot fail.
        let _ = write!(
            head,
            "<{}>1 {} {} {} {} {} [{} seq=\"{}\" outcome=\"{}\"] ",
            self.pri(record),
            timestamp(record.at),
            self.hostname,
            APP_NAME,
            self.procid,
            sanitize_msgid(&record.action),
            SD_ID,
            record.seq,
            escape_param_value(&record.outcome),
        );
        let json = one_line(&record.json);
        let mut out = Vec::with_capacity(head.len() + BOM.len() + json.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(BOM);
        out.extend_from_slice(json.as_bytes());
        out
    }

    /// Appends the octet-counted frame (`LEN SP MESSAGE`) of a record to `out`.
    pub fn frame_into(&self, record: &ForwardRecord, out: &mut Vec<u8>) {
        frame(&self.message(record), out);
    }
}

/// Appends `LEN SP message` (RFC 6587 §3.4.1) to `out`.
pub fn frame(message: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
}

/// A malformed octet-counting frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed syslog frame: {0}")]
pub struct FrameError(pub &'static str);

/// Parses one octet-counted frame at the start of `buf`: `Ok(Some((consumed, message)))`,
/// `Ok(None)` when more bytes are needed. For collectors and tests.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(usize, &[u8])>, FrameError> {
    const MAX_DIGITS: usize = 10;
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > MAX_DIGITS {
        return Err(FrameError("length too long"));
    }
    if digits == buf.len() {
        return Ok(None);
    }
    if digits == 0 || buf[0] == b'0' {
        return Err(FrameError("length must start with a non-zero digit"));
    }
    if buf[digits] != b' ' {
        return Err(FrameError("length must be followed by a space"));
    }
    let len: usize = std::str::from_utf8(&buf[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(FrameError("bad length"))?;
    let start = digits + 1;
    let Some(end) = start.checked_add(len) else {
        return Err(FrameError("length overflows"));
    };
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((end, &buf[start..end])))
}

/// TLS settings of a syslog target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// PEM bundle of the CA certificates to trust (only these; no system roots).
    pub ca_file: PathBuf,
    /// Name the collector's certificate must carry (DNS name or IP address).
    pub server_name: String,
    /// PEM client certificate chain, for collectors that require client authentication.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub client_key: Option<PathBuf>,
}

/// Where and how to send syslog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    /// `host:port`; resolved at every connect.
    pub address: String,
    /// TLS, or plain TCP when `None`.
    pub tls: Option<TlsTarget>,
    /// Message rendering.
    pub format: SyslogFormat,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Conn::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
        }
    }
}

/// Syslog over TCP (optionally TLS) with octet-counting framing. At-least-once: see the crate
/// documentation.
pub struct SyslogSink {
    target: SyslogTarget,
    conn: Option<Conn>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("target", &self.target)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl SyslogSink {
    /// Checks the TLS material (CA bundle, client certificate) now; it is read again at every
    /// connect, so replaced files take effect on the next reconnect.
    pub fn new(target: SyslogTarget) -> Result<Self, ForwardError> {
        if let Some(tls) = &target.tls {
            tls_connector(tls)?;
        }
        Ok(SyslogSink {
            target,
            conn: None,
            buf: Vec::new(),
        })
    }

    /// The target.
    pub fn target(&self) -> &SyslogTarget {
        &self.target
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ForwardError> {
    std::fs::read(path).map_err(|source| ForwardError::File {
        op: "read",
        path: path.to_owned(),
        source,
    })
}

/// Builds the TLS connector and the verified name.
fn tls_connector(tls: &TlsTarget) -> Result<(TlsConnector, ServerName<'static>), ForwardError> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        ForwardError::TlsConfig(format!("{what} {}: {e}", path.display()))
    };
    let pem = read_pem(&tls.ca_file)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad("CA bundle", &tls.ca_file, &e))?;
        roots
            .add(cert)
            .map_err(|e| bad("CA bundle", &tls.ca_file, &e))?;
    }
    if roots.is_empty() {
        return Err(bad(
            "CA bundle",
            &tls.ca_file,
            &"no certificate found (expected PEM)",
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ForwardError::TlsConfig(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let pem = read_pem(cert_path)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("client certificate", cert_path, &e))?;
            if certs.is_empty() {
                return Err(bad(
                    "client certificate",
                    cert_path,
                    &"no certificate found (expected PEM)",
                ));
            }
            let key_pem = read_pem(key_path)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| bad("client key", key_path, &e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| ForwardError::TlsConfig(format!("client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(ForwardError::TlsConfig(
                "client_cert and client_key go together".to_owned(),
            ))
        }
    };
    let name = ServerName::try_from(tls.server_name.clone())
        .map_err(|e| ForwardError::TlsConfig(format!("server name {:?}: {e}", tls.server_name)))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

impl Sink for SyslogSink {
    fn kind(&self) -> &'static str {
        "syslog"
    }

    fn durable(&self) -> bool {
        false
    }

    fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    fn connect(&mut self) -> BoxFuture<'_, Result<(), ForwardError>> {
        Box::pin(async move {
            self.conn = None;
            let address = self.target.address.clone();
            let tls = match &self.target.tls {
                Some(t) => Some((tls_connector(t)?, t.server_name.clone())),
                None => None,
            };
            let tcp =
                TcpStream::connect(&address)
                    .await
                    .map_err(|source| ForwardError::Connect {
                        address: address.clone(),
                        source,
                    })?;
            // Small records should not wait for Nagle; a failure here is harmless.
            let _ = tcp.set_nodelay(true);
            let conn =
                match tls {
                    None => Conn::Plain(tcp),
                    Some(((connector, name), server_name)) => {
                        let stream = connector.connect(name, tcp).await.map_err(|source| {
                            ForwardError::Tls {
                                server_name,
                                source,
                            }
                        })?;
                        Conn::Tls(Box::new(stream))
                    }
                };
            self.conn = Some(conn);
            Ok(())
        })
    }

    fn send<'a>(
        &'a mut self,
        records: &'a [ForwardRecord],
    ) -> BoxFuture<'a, Result<(), ForwardError>> {
        Box::pin(async move {
            let conn = self.conn.as_mut().ok_or(ForwardError::NotConnected)?;
            self.buf.clear();
            for record in records {
                self.target.format.frame_into(record, &mut self.buf);
            }
            let result = conn.write_all(&self.buf).await;
            // Do not keep a large batch's buffer around.
            if self.buf.capacity() > 1 << 20 {
                self.buf = Vec::new();
            }
            result.map_err(ForwardError::Send)
        })
    }

    fn probe(&mut self) -> Result<(), ForwardError> {
        let conn = self.conn.as_mut().ok_or(ForwardError::NotConnected)?;
        // A reset shows up as a pending socket error, whatever the reactor has seen so far.
        match conn.tcp().take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return Err(ForwardError::Lost(e.to_string())),
        }
        // End of stream or an error (a TLS alert, for instance) is readable without waiting.
        let mut cx = Context::from_waker(Waker::noop());
        let mut scratch = [0u8; 512];
        // Collectors do not talk on a syslog connection; read a little and ignore it.
        for _ in 0..16 {
            let mut buf = ReadBuf::new(&mut scratch);
            match conn.poll_read(&mut cx, &mut buf) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    return Err(ForwardError::Lost(
                        "the collector closed the connection".to_owned(),
                    ))
                }
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(ForwardError::Lost(e.to_string())),
            }
        }
        Ok(())
    }

    fn close(&mut self) -> BoxFuture<'_, Result<bool, ForwardError>> {
        Box::pin(async move {
            let Some(mut conn) = self.conn.take() else {
                return Ok(false);
            };
            conn.shutdown().await.map_err(ForwardError::Send)?;
            let mut scratch = [0u8; 512];
            loop {
                match conn.read(&mut scratch).await {
                    Ok(0) => return Ok(true),
                    Ok(_) => {}
                    // A collector that closes without a TLS close_notify still closed in answer
                    // to our end of stream.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
                    Err(e) => return Err(ForwardError::Lost(e.to_string())),
                }
            }
        })
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn record(seq: i64, action: &str, outcome: &str, json: &str) -> ForwardRecord {
        ForwardRecord {
            seq,
            at: 1_700_000_000,
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            json: json.to_owned(),
        }
    }

    /// A minimal RFC 5424 parser for the parse-back test.
    struct Parsed {
        pri: u16,
        version: String,
        timestamp: String,
        hostname: String,
        app: String,
        procid: String,
        msgid: String,
        sd: String,
        msg: Vec<u8>,
    }

    fn parse_message(m: &[u8]) -> Parsed {
        let text = std::str::from_utf8(m).unwrap();
        assert!(text.starts_with('<'));
        let close = text.find('>').unwrap();
        let pri = text[1..close].parse().unwrap();
        let mut rest = &text[close + 1..];
        let mut fields = Vec::new();
        for _ in 0..6 {
            let sp = rest.find(' ').unwrap();
            fields.push(rest[..sp].to_owned());
            rest = &rest[sp + 1..];
        }
        // STRUCTURED-DATA: one element, scanning over escapes.
        assert!(rest.starts_with('['));
        let bytes = rest.as_bytes();
        let mut i = 1;
        let mut in_value = false;
        loop {
            match bytes[i] {
                b'\\' if in_value => i += 1,
                b'"' => in_value = !in_value,
                b']' if !in_value => break,
                _ => {}
            }
            i += 1;
        }
        let sd = rest[..=i].to_owned();
        let after = &rest.as_bytes()[i + 1..];
        assert_eq!(after[0], b' ');
        Parsed {
            pri,
            version: fields[0].clone(),
            timestamp: fields[1].clone(),
            hostname: fields[2].clone(),
            app: fields[3].clone(),
            procid: fields[4].clone(),
            msgid: fields[5].clone(),
            sd,
            msg: after[1..].to_vec(),
        }
    }

    fn unescape_param(sd: &str, name: &str) -> String {
        let key = format!(" {name}=\"");
        let start = sd.find(&key).unwrap() + key.len();
        let mut out = String::new();
        let mut chars = sd[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next().unwrap()),
                '"' => break,
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn escapes_param_values() {
        assert_eq!(escape_param_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(escape_param_value("plain [x] é"), r"plain [x\] é");
        assert_eq!(escape_param_value(""), "");
    }

    #[test]
    fn sanitizes_msgid() {
        assert_eq!(sanitize_msgid("project.create"), "project.create");
        assert_eq!(sanitize_msgid("a b\tc\u{e9}d"), "a_b_c_d");
        assert_eq!(sanitize_msgid(""), "-");
        let long = "x".repeat(40);
        assert_eq!(sanitize_msgid(&long).len(), MSGID_MAX);
        assert_eq!(sanitize_msgid("\u{1F600}\u{1F600}"), "__");
        assert!(sanitize_msgid("<>!~")
            .chars()
            .all(|c| ('!'..='~').contains(&c)));
    }

    #[test]
    fn severity_follows_outcome_and_can_be_overridden() {
        let f = SyslogFormat::new(DEFAULT_FACILITY, None, Some("h"));
        assert_eq!(f.pri(&record(1, "a", "success", "{}")), 10 * 8 + 5);
        assert_eq!(f.pri(&record(1, "a", "denied", "{}")), 10 * 8 + 4);
        assert_eq!(f.pri(&record(1, "a", "failure", "{}")), 10 * 8 + 4);
        assert_eq!(f.pri(&record(1, "a", "other", "{}")), 10 * 8 + 6);
        let f = SyslogFormat::new(16, Some(2), Some("h"));
        assert_eq!(f.pri(&record(1, "a", "success", "{}")), 16 * 8 + 2);
        let f = SyslogFormat::new(99, Some(99), Some("h"));
        assert_eq!(f.pri(&record(1, "a", "success", "{}")), 23 * 8 + 7);
    }

    #[test]
    fn octet_counting_frame() {
        let mut out = Vec::new();
        frame(b"hello", &mut out);
        frame("é".as_bytes(), &mut out);
        assert_eq!(out, b"5 hello2 \xC3\xA9");
        let (n, m) = parse_frame(&out).unwrap().unwrap();
        assert_eq!((n, m), (7, &b"hello"[..]));
        let (n2, m2) = parse_frame(&out[n..]).unwrap().unwrap();
        assert_eq!((n2, m2), (4, "é".as_bytes()));
        assert_eq!(parse_frame(b"12").unwrap(), None);
        assert_eq!(parse_frame(b"12 short").unwrap(), None);
        assert!(parse_frame(b"0 x").is_err());
        assert!(parse_frame(b"x 1").is_err());
        assert!(parse_frame(b"3x abc").is_err());
        assert!(parse_frame(b"99999999999 x").is_err());
    }

    #[test]
    fn formats_and_parses_back() {
        let json =
            "{\"seq\":42,\n \"action\":\"project.create\",\"detail\":{\"name\":\"a]\\\"b\"}}";
        let r = record(42, "project create\u{e9}", "de\"ni]ed\\", json);
        let f = SyslogFormat::new(DEFAULT_FACILITY, None, Some("enclave host.example"));
        let mut framed = Vec::new();
        f.frame_into(&r, &mut framed);
        let (consumed, msg) = parse_frame(&framed).unwrap().unwrap();
        assert_eq!(consumed, framed.len());
        assert_eq!(msg, f.message(&r).as_slice());

        let p = parse_message(msg);
        assert_eq!(p.pri, 10 * 8 + 6);
        assert_eq!(p.version, "1");
        assert_eq!(p.timestamp, "2023-11-14T22:13:20Z");
        assert_eq!(p.hostname, "enclave_host.example");
        assert_eq!(p.app, "enclave");
        assert_eq!(p.procid, std::process::id().to_string());
        assert_eq!(p.msgid, "project_create_");
        assert!(p.sd.starts_with("[enclave@32473 seq=\"42\" "));
        assert_eq!(unescape_param(&p.sd, "seq"), "42");
        assert_eq!(unescape_param(&p.sd, "outcome"), "de\"ni]ed\\");
        assert!(p.msg.starts_with(BOM));
        let body = std::str::from_utf8(&p.msg[BOM.len()..]).unwrap();
        assert!(!body.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        let original: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, original);
    }

    #[test]
    fn timestamp_out_of_range_is_nil() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(i64::MAX), "-");
        let f = SyslogFormat::new(DEFAULT_FACILITY, None, Some(""));
        let m = f.message(&ForwardRecord {
            at: i64::MIN,
            ..record(1, "", "success", "{}")
        });
        let p = parse_message(&m);
        assert_eq!(p.timestamp, "-");
        assert_eq!(p.hostname, "-");
        assert_eq!(p.msgid, "-");
    }
}
