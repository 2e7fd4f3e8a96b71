//! Configuration of one `[[audit.forward]]` entry, for embedding in the server's configuration.

use std::path::PathBuf;

use rustls_pki_types::ServerName;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::forwarder::ForwardOptions;
use crate::syslog::{SyslogFormat, SyslogSink, SyslogTarget, TlsTarget, DEFAULT_FACILITY};
use crate::{FileSink, Sink};

/// Largest accepted `batch`.
const MAX_BATCH: usize = 10_000;

/// What kind of destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Syslog (RFC 5424, octet counting) over TCP, optionally TLS.
    Syslog,
    /// An append-only JSON Lines file.
    File,
}

/// A syslog facility, 0–23; in configuration a number or a name (`authpriv`, `local0`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(pub u8);

/// A syslog severity, 0–7; in configuration a number or a name (`warning`, `notice`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Severity(pub u8);

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrName {
    Number(i64),
    Name(String),
}

fn by_number_or_name<'de, D: Deserializer<'de>>(
    d: D,
    what: &str,
    names: &[&str],
) -> Result<u8, D::Error> {
    let max = names.len() - 1;
    match NumberOrName::deserialize(d)? {
        NumberOrName::Number(n) => u8::try_from(n)
            .ok()
            .filter(|n| usize::from(*n) <= max)
            .ok_or_else(|| D::Error::custom(format!("{what} {n} is out of range 0..={max}"))),
        NumberOrName::Name(s) => names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(&s))
            .and_then(|i| u8::try_from(i).ok())
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "unknown {what} {s:?}; expected 0..={max} or one of {}",
                    names.join(", ")
                ))
            }),
    }
}

impl<'de> Deserialize<'de> for Facility {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        by_number_or_name(d, "facility", &FACILITIES).map(Facility)
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        by_number_or_name(d, "severity", &SEVERITIES).map(Severity)
    }
}

/// One `[[audit.forward]]` entry.
///
/// ```toml
/// [[audit.forward]]
/// name = "siem"
/// kind = "syslog"
/// address = "siem.example.org:6514"
/// tls = true
/// ca_file = "/etc/enclave/siem-ca.pem"
/// # server_name = "siem.example.org"   # default: the host of `address`
/// # client_cert = "/etc/enclave/forward.crt"
/// # client_key = "/etc/enclave/forward.key"
/// # facility = "authpriv"              # default 10 (authpriv)
/// # severity = "notice"                # default: by outcome
///
/// [[audit.forward]]
/// name = "archive"
/// kind = "file"
/// path = "/var/log/enclave/audit.jsonl"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Unique name: 1–64 of `a-z 0-9 - _`, starting with a letter or digit; names the cursor.
    pub name: String,
    /// `syslog` or `file`.
    pub kind: SinkKind,
    /// Syslog: `host:port` (`[v6]:port` for IPv6).
    pub address: Option<String>,
    /// Syslog: use TLS (then `ca_file` is required).
    #[serde(default)]
    pub tls: bool,
    /// Syslog with TLS: PEM bundle of the CA certificates to trust (only these).
    pub ca_file: Option<PathBuf>,
    /// Syslog with TLS: the name to verify; default the host of `address`.
    pub server_name: Option<String>,
    /// Syslog with TLS: PEM client certificate chain (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// Syslog with TLS: PEM client private key (with `client_cert`).
    pub client_key: Option<PathBuf>,
    /// File: absolute path of the JSON Lines file.
    pub path: Option<PathBuf>,
    /// Syslog: facility; default 10 (authpriv).
    pub facility: Option<Facility>,
    /// Syslog: one severity for every record instead of the outcome-based one.
    pub severity: Option<Severity>,
    /// Syslog: HOSTNAME field; default this machine's host name.
    pub hostname: Option<String>,
    /// Records per batch, 1–10000; default 500.
    pub batch: Option<usize>,
}

/// An invalid `[[audit.forward]]` entry: which one, which key, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit.forward {}: {key}: {reason}", display_name(name))]
pub struct ConfigError {
    /// The entry's name (may be empty or the invalid name itself).
    pub name: String,
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn display_name(name: &str) -> String {
    if name.is_empty() {
        "(unnamed)".to_owned()
    } else {
        format!("{name:?}")
    }
}

/// Whether `name` is a valid sink name.
pub(crate) fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// Splits `host:port` / `[v6]:port`; the host without brackets.
fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        (host, port)
    } else {
        let (host, port) = address.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then_some((host, port))
}

impl ForwardConfig {
    fn err(&self, key: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            name: self.name.clone(),
            key,
            reason: reason.into(),
        }
    }

    /// Checks the entry without touching the file system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_name(&self.name) {
            return Err(self.err(
                "name",
                "must be 1 to 64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
            ));
        }
        if let Some(batch) = self.batch {
            if !(1..=MAX_BATCH).contains(&batch) {
                return Err(self.err("batch", format!("must be between 1 and {MAX_BATCH}")));
            }
        }
        match self.kind {
            SinkKind::Syslog => self.validate_syslog(),
            SinkKind::File => self.validate_file(),
        }
    }

    fn validate_syslog(&self) -> Result<(), ConfigError> {
        if self.path.is_some() {
            return Err(self.err("path", "only for kind = \"file\""));
        }
        let Some(address) = &self.address else {
            return Err(self.err(
                "address",
                "required for kind = \"syslog\" (host:port, e.g. \"siem.example.org:6514\")",
            ));
        };
        let Some((host, _)) = split_host_port(address) else {
            return Err(self.err(
                "address",
                format!("{address:?} is not host:port (IPv6: [addr]:port)"),
            ));
        };
        if let Some(h) = &self.hostname {
            if h.is_empty() || h.len() > 255 || !h.chars().all(|c| ('!'..='~').contains(&c)) {
                return Err(self.err(
                    "hostname",
                    "must be 1 to 255 printable ASCII characters without spaces",
                ));
            }
        }
        if self.tls {
            if self.ca_file.is_none() {
                return Err(self.err(
                    "ca_file",
                    "required when tls = true (PEM bundle of the CA that signed the collector's certificate)",
                ));
            }
            let name = self.server_name.as_deref().unwrap_or(host);
            if ServerName::try_from(name).is_err() {
                return Err(self.err(
                    "server_name",
                    format!("{name:?} is not a valid DNS name or IP address"),
                ));
            }
            if self.client_cert.is_some() != self.client_key.is_some() {
                let key = if self.client_cert.is_some() {
                    "client_key"
                } else {
                    "client_cert"
                };
                return Err(self.err(key, "client_cert and client_key go together"));
            }
        } else {
            for (key, set) in [
                ("ca_file", self.ca_file.is_some()),
                ("server_name", self.server_name.is_some()),
                ("client_cert", self.client_cert.is_some()),
                ("client_key", self.client_key.is_some()),
            ] {
                if set {
                    return Err(self.err(key, "only with tls = true"));
                }
            }
        }
        Ok(())
    }

    fn validate_file(&self) -> Result<(), ConfigError> {
        for (key, set) in [
            ("address", self.address.is_some()),
            ("tls", self.tls),
            ("ca_file", self.ca_file.is_some()),
            ("server_name", self.server_name.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
            ("facility", self.facility.is_some()),
            ("severity", self.severity.is_some()),
            ("hostname", self.hostname.is_some()),
        ] {
            if set {
                return Err(self.err(key, "only for kind = \"syslog\""));
            }
        }
        match &self.path {
            None => Err(self.err("path", "required for kind = \"file\"")),
            Some(p) if !p.is_absolute() => {
                Err(self.err("path", format!("{} must be an absolute path", p.display())))
            }
            Some(_) => Ok(()),
        }
    }

    /// The forwarder options: defaults, with `batch` when set.
    pub fn options(&self) -> ForwardOptions {
        let mut options = ForwardOptions::default();
        if let Some(batch) = self.batch {
            options.batch = batch;
        }
        options
    }

    /// The syslog target of a valid syslog entry.
    pub fn syslog_target(&self) -> Result<SyslogTarget, ConfigError> {
        self.validate()?;
        let (Some(address), SinkKind::Syslog) = (&self.address, self.kind) else {
            return Err(self.err("kind", "not a syslog entry"));
        };
        let host = split_host_port(address).map(|(h, _)| h).unwrap_or_default();
        let tls = match (self.tls, &self.ca_file) {
            (true, Some(ca_file)) => Some(TlsTarget {
                ca_file: ca_file.clone(),
                server_name: self.server_name.clone().unwrap_or_else(|| host.to_owned()),
                client_cert: self.client_cert.clone(),
                client_key: self.client_key.clone(),
            }),
            _ => None,
        };
        Ok(SyslogTarget {
            address: address.clone(),
            tls,
            format: SyslogFormat::new(
                self.facility.map_or(DEFAULT_FACILITY, |f| f.0),
                self.severity.map(|s| s.0),
                self.hostname.as_deref(),
            ),
        })
    }

    /// Validates the entry and builds its sink, reading the TLS material now so that a bad CA
    /// bundle or key is reported at startup.
    pub fn build_sink(&self) -> Result<Box<dyn Sink>, ConfigError> {
        self.validate()?;
        match self.kind {
            SinkKind::Syslog => {
                let target = self.syslog_target()?;
                let sink = SyslogSink::new(target).map_err(|e| self.err("tls", e.to_string()))?;
                Ok(Box::new(sink))
            }
            SinkKind::File => match &self.path {
                Some(path) => Ok(Box::new(FileSink::new(path.clone()))),
                None => Err(self.err("path", "required for kind = \"file\"")),
            },
        }
    }
}

/// Validates every entry and that names (cursors) and file paths are not shared.
pub fn validate_all(entries: &[ForwardConfig]) -> Result<(), ConfigError> {
    for (i, entry) in entries.iter().enumerate() {
        entry.validate()?;
        for earlier in &entries[..i] {
            if earlier.name == entry.name {
                return Err(entry.err("name", "used by more than one [[audit.forward]] entry"));
            }
            if entry.path.is_some() && earlier.path == entry.path {
                return Err(entry.err("path", "used by more than one [[audit.forward]] entry"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parse(json: serde_json::Value) -> Result<ForwardConfig, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    fn invalid(json: serde_json::Value) -> String {
        parse(json).unwrap().validate().unwrap_err().to_string()
    }

    #[test]
    fn valid_entries() {
        let c = parse(serde_json::json!({
            "name": "siem", "kind": "syslog", "address": "127.0.0.1:6514", "tls": true,
            "ca_file": "/etc/ca.pem", "facility": "local3", "severity": 4, "hostname": "enclave-1"
        }))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.facility, Some(Facility(19)));
        assert_eq!(c.severity, Some(Severity(4)));
        let t = c.syslog_target().unwrap();
        assert_eq!(t.tls.unwrap().server_name, "127.0.0.1");

        let c = parse(serde_json::json!({"name": "v6", "kind": "syslog", "address": "[::1]:514"}))
            .unwrap();
        c.validate().unwrap();
        assert!(c.syslog_target().unwrap().tls.is_none());

        let c = parse(serde_json::json!({
            "name": "archive", "kind": "file", "path": "/var/log/enclave/audit.jsonl", "batch": 100
        }))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.options().batch, 100);
    }

    #[test]
    fn clear_errors() {
        let e = invalid(serde_json::json!({"name": "Bad Name", "kind": "file", "path": "/x"}));
        assert!(
            e.starts_with("audit.forward \"Bad Name\": name: must be"),
            "{e}"
        );
        let e = invalid(serde_json::json!({"name": "s", "kind": "syslog"}));
        assert!(e.contains("address: required"), "{e}");
        let e = invalid(serde_json::json!({"name": "s", "kind": "syslog", "address": "host"}));
        assert!(e.contains("is not host:port"), "{e}");
        let e = invalid(serde_json::json!({"name": "s", "kind": "syslog", "address": "::1:514"}));
        assert!(e.contains("is not host:port"), "{e}");
        let e = invalid(serde_json::json!({"name": "s", "kind": "syslog", "address": "h:0"}));
        assert!(e.contains("is not host:port"), "{e}");
        let e = invalid(
            serde_json::json!({"name": "s", "kind": "syslog", "address": "h:1", "tls": true}),
        );
        assert!(e.contains("ca_file: required when tls = true"), "{e}");
        let e = invalid(
            serde_json::json!({"name": "s", "kind": "syslog", "address": "h:1", "ca_file": "/ca"}),
        );
        assert!(e.contains("ca_file: only with tls = true"), "{e}");
        let e = invalid(serde_json::json!({
            "name": "s", "kind": "syslog", "address": "h:1", "tls": true, "ca_file": "/ca",
            "client_cert": "/c"
        }));
        assert!(
            e.contains("client_key: client_cert and client_key go together"),
            "{e}"
        );
        let e = invalid(serde_json::json!({
            "name": "s", "kind": "syslog", "address": "h:1", "tls": true, "ca_file": "/ca",
            "server_name": "not a name"
        }));
        assert!(e.contains("server_name:"), "{e}");
        let e = invalid(
            serde_json::json!({"name": "s", "kind": "syslog", "address": "h:1", "path": "/x"}),
        );
        assert!(e.contains("path: only for kind = \"file\""), "{e}");
        let e = invalid(serde_json::json!({"name": "f", "kind": "file"}));
        assert!(e.contains("path: required"), "{e}");
        let e = invalid(serde_json::json!({"name": "f", "kind": "file", "path": "rel/a.jsonl"}));
        assert!(e.contains("must be an absolute path"), "{e}");
        let e =
            invalid(serde_json::json!({"name": "f", "kind": "file", "path": "/a", "tls": true}));
        assert!(e.contains("tls: only for kind = \"syslog\""), "{e}");
        let e = invalid(serde_json::json!({"name": "f", "kind": "file", "path": "/a", "batch": 0}));
        assert!(e.contains("batch: must be between"), "{e}");
    }

    #[test]
    fn deserialization_errors() {
        let e = parse(serde_json::json!({"name": "s", "kind": "udp"})).unwrap_err();
        assert!(e.contains("unknown variant `udp`"), "{e}");
        let e = parse(serde_json::json!({"name": "s", "kind": "file", "pth": "/x"})).unwrap_err();
        assert!(e.contains("unknown field `pth`"), "{e}");
        let e =
            parse(serde_json::json!({"name": "s", "kind": "syslog", "facility": 24})).unwrap_err();
        assert!(e.contains("facility 24 is out of range 0..=23"), "{e}");
        let e = parse(serde_json::json!({"name": "s", "kind": "syslog", "severity": "loud"}))
            .unwrap_err();
        assert!(e.contains("unknown severity \"loud\""), "{e}");
    }

    #[test]
    fn names_and_paths_unique() {
        let a = parse(serde_json::json!({"name": "a", "kind": "file", "path": "/x"})).unwrap();
        let b = parse(serde_json::json!({"name": "b", "kind": "file", "path": "/x"})).unwrap();
        let a2 = parse(serde_json::json!({"name": "a", "kind": "file", "path": "/y"})).unwrap();
        validate_all(std::slice::from_ref(&a)).unwrap();
        assert!(validate_all(&[a.clone(), b])
            .unwrap_err()
            .to_string()
            .contains("path: used by"));
        assert!(validate_all(&[a, a2])
            .unwrap_err()
            .to_string()
            .contains("name: used by"));
    }

    #[test]
    fn build_reports_bad_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not pem").unwrap();
        let c = parse(serde_json::json!({
            "name": "s", "kind": "syslog", "address": "127.0.0.1:1", "tls": true,
            "ca_file": ca,
        }))
        .unwrap();
        let e = c.build_sink().unwrap_err().to_string();
        assert!(e.contains("no certificate found"), "{e}");
        let c = ForwardConfig {
            ca_file: Some(dir.path().join("missing.pem")),
            ..c
        };
        let e = c.build_sink().unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}
