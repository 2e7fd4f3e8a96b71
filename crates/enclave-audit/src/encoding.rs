//! The canonical byte encoding of a record (version `v1`) and the canonical JSON of its detail.
//!
//! Layout of [`RecordView::encode_into`], all integers big-endian:
//!
//! ```text
//! "enclave-audit-record-v1"          23 bytes, fixed tag (the version)
//! seq                                u64
//! at                                 i64 (Unix seconds, UTC)
//! actor, auth, source, action,       each: u64 length + UTF-8 bytes
//!   resource
//! project                            0x00 (none) | 0x01 + u64 length + UTF-8 bytes
//! outcome, request_id                each: u64 length + UTF-8 bytes
//! detail                             u64 length + canonical JSON (see [`canonical_json`])
//! ```
//!
//! Every variable-length field is length-prefixed, so no two different records share an
//! encoding. The detail is hashed as the exact canonical JSON text, which is also the text the
//! store keeps; [`canonical_json`] is deterministic (keys sorted, no whitespace), so the same
//! detail always gives the same bytes whatever map implementation built it.

use enclave_core::audit::AuditRecord;
use serde_json::{Map, Value};

/// The version tag at the start of every encoding.
pub const RECORD_TAG: &[u8] = b"enclave-audit-record-v1";

/// A borrowed view of one record as it is stored: the fields of
/// [`enclave_core::audit::AuditRecord`] plus its sequence number, with the outcome as its
/// storage name and the detail as canonical JSON text. Cheap to copy; the verifier's hot loop
/// works on views so that it allocates nothing per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Position in the trail, from 1, contiguous.
    pub seq: u64,
    /// Unix seconds (UTC).
    pub at: i64,
    /// Who.
    pub actor: &'a str,
    /// How the actor authenticated.
    pub auth: &'a str,
    /// Source address or `local`.
    pub source: &'a str,
    /// Action name.
    pub action: &'a str,
    /// Resource.
    pub resource: &'a str,
    /// Project, if any.
    pub project: Option<&'a str>,
    /// `success`, `denied` or `failure`.
    pub outcome: &'a str,
    /// Request id.
    pub request_id: &'a str,
    /// Detail as canonical JSON (an object).
    pub detail: &'a str,
}

impl<'a> RecordView<'a> {
    /// A view of `record` at `seq`; `detail` must be [`canonical_detail`]`(&record.detail)`.
    pub fn of(seq: u64, record: &'a AuditRecord, detail: &'a str) -> RecordView<'a> {
        RecordView {
            seq,
            at: record.at.unix(),
            actor: &record.actor,
            auth: &record.auth,
            source: &record.source,
            action: &record.action,
            resource: &record.resource,
            project: record.project.as_deref(),
            outcome: record.outcome.as_str(),
            request_id: &record.request_id,
            detail,
        }
    }

    /// The same record placed at another sequence number (used to diagnose renumbering).
    pub fn with_seq(self, seq: u64) -> RecordView<'a> {
        RecordView { seq, ..self }
    }

    /// Appends the canonical `v1` encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(
            RECORD_TAG.len()
                + 16
                + 8 * 9
                + 1
                + self.actor.len()
                + self.auth.len()
                + self.source.len()
                + self.action.len()
                + self.resource.len()
                + self.project.map_or(0, str::len)
                + self.outcome.len()
                + self.request_id.len()
                + self.detail.len(),
        );
        out.extend_from_slice(RECORD_TAG);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.at.to_be_bytes());
        put_str(out, self.actor);
        put_str(out, self.auth);
        put_str(out, self.source);
        put_str(out, self.action);
        put_str(out, self.resource);
        match self.project {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                put_str(out, p);
            }
        }
        put_str(out, self.outcome);
        put_str(out, self.request_id);
        put_str(out, self.detail);
    }

    /// The canonical `v1` encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Canonical JSON text of a value: object keys sorted by their UTF-8 bytes at every level, no
/// whitespace, strings escaped as `serde_json` escapes them (quote, backslash and control
/// characters; everything else verbatim), numbers in `serde_json`'s shortest round-trip form.
/// Parsing the output and canonicalizing again gives the same text.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Canonical JSON text of a record's detail object.
pub fn canonical_detail(detail: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, detail);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push('}');
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{08}' => Some("\\b"),
            '\u{0c}' => Some("\\f"),
            _ => None,
        };
        if let Some(e) = esc {
            out.push_str(&s[start..i]);
            out.push_str(e);
            start = i + c.len_utf8();
        } else if (c as u32) < 0x20 {
            out.push_str(&s[start..i]);
            out.push_str(&format!("\\u{:04x}", c as u32));
            start = i + c.len_utf8();
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_round_trips() {
        let v = json!({"b": [1, 2.5, {"z": null, "a": true}], "a": "x\"\\\n\u{1}é", "c": -3});
        let text = canonical_json(&v);
        assert_eq!(
            text,
            r#"{"a":"x\"\\\n\u0001é","b":[1,2.5,{"a":true,"z":null}],"c":-3}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(canonical_json(&back), text);
        // Our string escaping agrees with serde_json's.
        let s = "tab\tq\"bs\\ctl\u{1f}\u{7f}ü";
        let mut mine = String::new();
        write_string(&mut mine, s);
        assert_eq!(mine, serde_json::to_string(s).unwrap());
    }

    #[test]
    fn encoding_is_unambiguous() {
        let base = RecordView {
            seq: 7,
            at: 1,
            actor: "ab",
            auth: "c",
            source: "s",
            action: "a",
            resource: "r",
            project: None,
            outcome: "success",
            request_id: "q",
            detail: "{}",
        };
        // Moving a byte from one field to its neighbour changes the encoding.
        let shifted = RecordView {
            actor: "a",
            auth: "bc",
            ..base
        };
        assert_ne!(base.encode(), shifted.encode());
        // No project differs from an empty project.
        let empty = RecordView {
            project: Some(""),
            ..base
        };
        assert_ne!(base.encode(), empty.encode());
        assert_ne!(base.encode(), base.with_seq(8).encode());
        assert!(base.encode().starts_with(RECORD_TAG));
    }
}
