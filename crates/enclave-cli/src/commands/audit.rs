//! The audit commands: search, export, verify (on the server or offline), key, my-work.

use std::io::Write;

use reqwest::Method;
use serde_json::{json, Value};

use super::{Res, Runner};
use crate::client::Failure;
use crate::output::Column;
use crate::{AuditCommand, OutputFormat, EXIT_TAMPERED};

const RECORD: &[Column] = &[
    ("SEQ", "seq"),
    ("AT", "at"),
    ("ACTOR", "actor"),
    ("ACTION", "action"),
    ("RESOURCE", "resource"),
    ("PROJECT", "project"),
    ("OUTCOME", "outcome"),
    ("SOURCE", "source"),
];

const KEY: &[Column] = &[
    ("PUBLIC KEY", "public_key"),
    ("KEY ID", "key_id"),
    ("CHECKPOINT SEQ", "checkpoint_seq"),
    ("CHECKPOINT HASH", "checkpoint_hash"),
    ("CHECKPOINT AT", "checkpoint_at"),
];

impl Runner<'_, '_> {
    pub(super) async fn audit(&mut self, cmd: AuditCommand) -> Res {
        match cmd {
            AuditCommand::Search {
                actor,
                action,
                resource,
                project,
                outcome,
                since,
                until,
                limit,
            } => {
                let mut query: Vec<(&str, String)> =
                    vec![("limit", limit.clamp(1, 500).to_string())];
                for (k, v) in [
                    ("actor", actor),
                    ("action", action),
                    ("resource", resource),
                    ("project", project),
                    ("outcome", outcome),
                    ("since", since),
                    ("until", until),
                ] {
                    if let Some(v) = v {
                        query.push((k, v));
                    }
                }
                let page = self
                    .api()?
                    .call(Method::GET, &["audit"], &query, None)
                    .await?
                    .unwrap_or(Value::Null);
                let items = page["items"].as_array().cloned().unwrap_or_default();
                if self.ctx.output == OutputFormat::Text && page["scope"] == "own" {
                    self.warn("showing only your own actions (searching others needs an auditor or owner role)");
                }
                self.show_list(RECORD, items)
            }
            AuditCommand::Export { format, from, out } => {
                if format != "jsonl" {
                    return Err(Failure::usage(
                        format!(
                            "unknown export format `{}`",
                            crate::client::sanitize(&format)
                        ),
                        Some("use --format jsonl".into()),
                    ));
                }
                let query: Vec<(&str, String)> = from
                    .map(|f| vec![("from", f.to_string())])
                    .unwrap_or_default();
                let bytes = self
                    .api()?
                    .call_bytes(Method::GET, &["audit", "export"], &query, None)
                    .await?;
                match out {
                    Some(path) => {
                        let mut f = std::fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(true)
                            .open(&path)
                            .and_then(|mut f| f.write_all(&bytes).map(|()| f))
                            .map_err(|e| {
                                Failure::local(
                                    "io",
                                    format!("cannot write {}: {e}", path.display()),
                                    None,
                                )
                            })?;
                        let _ = f.flush();
                        let lines = bytes.iter().filter(|b| **b == b'\n').count();
                        self.done(&format!("wrote {lines} lines to {}", path.display()))
                    }
                    None => self.write_out(&String::from_utf8_lossy(&bytes)),
                }
            }
            AuditCommand::Verify {
                from,
                export,
                public_key,
            } => {
                let verdict = match (export, public_key) {
                    (Some(path), Some(key)) => offline(&path, &key, from)?,
                    _ => {
                        let body = json!({ "from": from });
                        self.api()?
                            .call_json(Method::POST, &["audit", "verify"], Some(&body))
                            .await?
                    }
                };
                let ok = verdict["ok"] == true;
                match self.ctx.output {
                    OutputFormat::Json => self.write_out(&format!("{verdict}\n"))?,
                    OutputFormat::Text if ok => self.write_out(&format!(
                        "audit trail intact: {} records, {} signed checkpoints\n",
                        verdict["records"], verdict["checkpoints"]
                    ))?,
                    OutputFormat::Text => self.write_out(&format!(
                        "audit trail ALTERED: {}\n",
                        verdict["failure"]["message"]
                            .as_str()
                            .unwrap_or("unknown failure")
                    ))?,
                }
                if !ok {
                    self.status = EXIT_TAMPERED;
                }
                Ok(())
            }
            AuditCommand::Key => {
                let k = self
                    .api()?
                    .call_json(Method::GET, &["audit", "key"], None)
                    .await?;
                let cp = &k["latest_checkpoint"];
                let view = json!({
                    "public_key": k["public_key"],
                    "key_id": k["key_id"],
                    "checkpoint_seq": cp["seq"],
                    "checkpoint_hash": cp["hash"],
                    "checkpoint_at": cp["at"],
                });
                match self.ctx.output {
                    OutputFormat::Json => self.write_out(&format!("{k}\n")),
                    OutputFormat::Text => self.show(KEY, &view),
                }
            }
            AuditCommand::MyWork { limit } => {
                let query = vec![("limit", limit.clamp(1, 500).to_string())];
                let page = self
                    .api()?
                    .call(Method::GET, &["audit", "my-work"], &query, None)
                    .await?
                    .unwrap_or(Value::Null);
                let items = page["items"].as_array().cloned().unwrap_or_default();
                self.show_list(RECORD, items)
            }
        }
    }
}

/// Verifies an export file with nothing but the public key.
fn offline(path: &std::path::Path, key: &str, from: Option<u64>) -> Result<Value, Failure> {
    let key = enclave_audit::PublicKey::parse(key.trim()).map_err(|e| {
        Failure::usage(
            format!("--public-key is not an Ed25519 public key: {e}"),
            Some("pass the public_key shown by `enclave audit key`".into()),
        )
    })?;
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::local("io", format!("cannot read {}: {e}", path.display()), None))?;
    let reader = std::io::BufReader::new(file);
    Ok(
        match enclave_audit::export::verify_reader(reader, &key, from) {
            Ok(s) => json!({"ok": true, "records": s.records, "checkpoints": s.checkpoints}),
            Err(f) => json!({"ok": false, "failure": {"seq": f.seq, "message": f.to_string()}}),
        },
    )
}
