//! The export format: JSON Lines, one object per line, each with a `type`:
//!
//! ```text
//! {"type":"header","format":"enclave-audit-export","version":1,"key_id":"…","public_key":"…"}
//! {"type":"anchor","seq":1024,"hash":"<hex>","at":…,"key_id":"…","signature":"<base64>"}
//! {"type":"record","seq":1025,"hash":"<hex>","at":…,"actor":"…","auth":"…","source":"…",
//!  "action":"…","resource":"…","project":null,"outcome":"success","request_id":"…","detail":{…}}
//! {"type":"checkpoint","seq":2048,"hash":"<hex>","at":…,"key_id":"…","signature":"<base64>"}
//! ```
//!
//! The header is informational (the public key in it is *not* trusted: the verifying party
//! brings its own copy). An `anchor` is the signed checkpoint the export starts after (present
//! when records before it were pruned or left out); without one, the export starts at genesis.
//! Each `checkpoint` line follows the record it covers. `detail` is the canonical JSON object
//! that was hashed; parsing it and writing it canonically gives the hashed bytes back.

use crate::chain::{hash_from_hex, to_hex, Hash};
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::encoding::{canonical_json, write_string, RecordView};
use crate::verify::{Failure, OwnedRecord, Summary, Tamper, Verifier};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use enclave_core::Timestamp;
use serde::Deserialize;

/// The `format` value of the header.
pub const FORMAT: &str = "enclave-audit-export";

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The header.
    Header {
        /// Key id named by the exporter.
        key_id: String,
        /// Public key named by the exporter (not trusted).
        public_key: String,
    },
    /// The checkpoint the export starts after.
    Anchor(Checkpoint),
    /// A record with its stored hash.
    Record(OwnedRecord),
    /// A checkpoint.
    Checkpoint(Checkpoint),
}

/// The header line.
pub fn header_line(key: &PublicKey) -> String {
    let mut s = String::from("{\"type\":\"header\",\"format\":\"");
    s.push_str(FORMAT);
    s.push_str("\",\"version\":1,\"key_id\":\"");
    s.push_str(&key.key_id());
    s.push_str("\",\"public_key\":\"");
    s.push_str(&key.to_base64());
    s.push_str("\"}");
    s
}

/// A record line (`detail` must be the canonical JSON that was hashed).
pub fn record_line(r: &RecordView<'_>, hash: &Hash) -> String {
    let mut s = String::with_capacity(256 + r.detail.len());
    s.push_str("{\"type\":\"record\",\"seq\":");
    s.push_str(&r.seq.to_string());
    s.push_str(",\"hash\":\"");
    s.push_str(&to_hex(hash));
    s.push_str("\",\"at\":");
    s.push_str(&r.at.to_string());
    for (name, value) in [
        ("actor", r.actor),
        ("auth", r.auth),
        ("source", r.source),
        ("action", r.action),
        ("resource", r.resource),
    ] {
        s.push_str(",\"");
        s.push_str(name);
        s.push_str("\":");
        write_string(&mut s, value);
    }
    s.push_str(",\"project\":");
    match r.project {
        Some(p) => write_string(&mut s, p),
        None => s.push_str("null"),
    }
    s.push_str(",\"outcome\":");
    write_string(&mut s, r.outcome);
    s.push_str(",\"request_id\":");
    write_string(&mut s, r.request_id);
    s.push_str(",\"detail\":");
    s.push_str(r.detail);
    s.push('}');
    s
}

/// A checkpoint line (`anchor`: the one the export starts after).
pub fn checkpoint_line(cp: &Checkpoint, anchor: bool) -> String {
    let mut s = String::from("{\"type\":\"");
    s.push_str(if anchor { "anchor" } else { "checkpoint" });
    s.push_str("\",\"seq\":");
    s.push_str(&cp.seq.to_string());
    s.push_str(",\"hash\":\"");
    s.push_str(&to_hex(&cp.hash));
    s.push_str("\",\"at\":");
    s.push_str(&cp.at.unix().to_string());
    s.push_str(",\"key_id\":");
    write_string(&mut s, &cp.key_id);
    s.push_str(",\"signature\":\"");
    s.push_str(&B64.encode(&cp.signature));
    s.push_str("\"}");
    s
}

// Lines are parsed one at a time and matched at once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Line {
    Header {
        format: String,
        version: u32,
        key_id: String,
        public_key: String,
    },
    Anchor(CheckpointLine),
    Checkpoint(CheckpointLine),
    Record {
        seq: u64,
        hash: String,
        at: i64,
        actor: String,
        auth: String,
        source: String,
        action: String,
        resource: String,
        project: Option<String>,
        outcome: String,
        request_id: String,
        detail: serde_json::Value,
    },
}

#[derive(Deserialize)]
struct CheckpointLine {
    seq: u64,
    hash: String,
    at: i64,
    key_id: String,
    signature: String,
}

fn checkpoint(c: CheckpointLine) -> Result<Checkpoint, String> {
    Ok(Checkpoint {
        seq: c.seq,
        hash: hash_from_hex(&c.hash).ok_or("hash is not 64 hex digits")?,
        at: Timestamp(c.at),
        key_id: c.key_id,
        signature: B64
            .decode(c.signature)
            .map_err(|_| "signature is not base64")?,
    })
}

/// Parses one line.
pub fn parse_line(line: &str) -> Result<Item, String> {
    let parsed: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    Ok(match parsed {
        Line::Header {
            format,
            version,
            key_id,
            public_key,
        } => {
            if format != FORMAT || version != 1 {
                return Err(format!("unsupported export {format} version {version}"));
            }
            Item::Header { key_id, public_key }
        }
        Line::Anchor(c) => Item::Anchor(checkpoint(c)?),
        Line::Checkpoint(c) => Item::Checkpoint(checkpoint(c)?),
        Line::Record {
            seq,
            hash,
            at,
            actor,
            auth,
            source,
            action,
            resource,
            project,
            outcome,
            request_id,
            detail,
        } => {
            if !detail.is_object() {
                return Err("detail is not an object".into());
            }
            Item::Record(OwnedRecord {
                seq,
                at,
                actor,
                auth,
                source,
                action,
                resource,
                project,
                outcome,
                request_id,
                detail: canonical_json(&detail),
                hash: hash_from_hex(&hash).ok_or("hash is not 64 hex digits")?,
            })
        }
    })
}

/// Verifies an export streamed line by line, with the key the verifying party trusts.
pub struct ExportVerifier {
    key: PublicKey,
    verifier: Option<Verifier>,
    waiting_for: Option<u64>,
    next_seq: u64,
    line: u64,
}

impl ExportVerifier {
    /// `from`: start after the checkpoint with that sequence number (records before it are
    /// skipped); without it, start after the export's anchor if it has one, else at genesis.
    pub fn new(key: PublicKey, from: Option<u64>) -> ExportVerifier {
        ExportVerifier {
            key,
            verifier: None,
            waiting_for: from,
            next_seq: 1,
            line: 0,
        }
    }

    fn start(&mut self, cp: &Checkpoint) -> Result<(), Failure> {
        self.verifier = Some(Verifier::from_checkpoint(self.key, cp)?);
        self.waiting_for = None;
        Ok(())
    }

    /// Feeds the next line (empty lines are ignored).
    pub fn line(&mut self, line: &str) -> Result<(), Failure> {
        self.line += 1;
        if line.trim().is_empty() {
            return Ok(());
        }
        let item = parse_line(line).map_err(|reason| Failure {
            seq: self.next_seq,
            kind: Tamper::Malformed {
                line: self.line,
                reason,
            },
        })?;
        match item {
            Item::Header { .. } => Ok(()),
            Item::Anchor(cp) | Item::Checkpoint(cp) if self.waiting_for == Some(cp.seq) => {
                self.start(&cp)
            }
            Item::Anchor(cp) if self.waiting_for.is_none() && self.verifier.is_none() => {
                self.start(&cp)
            }
            Item::Anchor(cp) | Item::Checkpoint(cp) => {
                if self.waiting_for.is_some() {
                    return Ok(());
                }
                let key = self.key;
                self.verifier
                    .get_or_insert_with(|| Verifier::new(key))
                    .add_checkpoint(&cp)
            }
            Item::Record(r) => {
                self.next_seq = r.seq.saturating_add(1);
                if self.waiting_for.is_some() {
                    return Ok(());
                }
                let key = self.key;
                self.verifier
                    .get_or_insert_with(|| Verifier::new(key))
                    .push(&r.view(), &r.hash)
            }
        }
    }

    /// Ends the export.
    pub fn finish(self) -> Result<Summary, Failure> {
        if let Some(seq) = self.waiting_for {
            return Err(Failure {
                seq,
                kind: Tamper::MissingStart,
            });
        }
        self.verifier
            .unwrap_or_else(|| Verifier::new(self.key))
            .finish()
    }
}

/// Verifies a whole export given as lines (see [`ExportVerifier`]).
pub fn verify_lines<'a, I>(lines: I, key: &PublicKey, from: Option<u64>) -> Result<Summary, Failure>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut v = ExportVerifier::new(*key, from);
    for line in lines {
        v.line(line)?;
    }
    v.finish()
}

/// [`verify_lines`] over a reader (a file, standard input), streaming. An IO error is reported
/// as a malformed line.
pub fn verify_reader<R: std::io::BufRead>(
    mut reader: R,
    key: &PublicKey,
    from: Option<u64>,
) -> Result<Summary, Failure> {
    let mut v = ExportVerifier::new(*key, from);
    let mut buf = String::new();
    loop {
        buf.clear();
        match reader.read_line(&mut buf) {
            Ok(0) => break,
            Ok(_) => v.line(buf.trim_end_matches(['\n', '\r']))?,
            Err(e) => {
                return Err(Failure {
                    seq: v.next_seq,
                    kind: Tamper::Malformed {
                        line: v.line + 1,
                        reason: e.to_string(),
                    },
                })
            }
        }
    }
    v.finish()
}
