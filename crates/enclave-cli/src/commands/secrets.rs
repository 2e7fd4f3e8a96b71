//! The secrets, keys and unseal commands.

use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use super::{Res, Runner};
use crate::client::{parse_server_url, ApiClient, Failure};
use crate::output::Column;
use crate::{KeysCommand, OutputFormat, SecretsCommand};

/// Largest secret value (the server's limit).
const MAX_VALUE: usize = 64 * 1024;

const SECRET: &[Column] = &[
    ("NAME", "name"),
    ("VERSION", "current_version"),
    ("DESCRIPTION", "description"),
    ("UPDATED", "updated_at"),
    ("CREATED BY", "created_by"),
];

const VERSION: &[Column] = &[
    ("VERSION", "version"),
    ("SIZE", "size"),
    ("KEY VERSION", "key_version"),
    ("CREATED", "created_at"),
    ("BY", "created_by"),
];

const PLAN: &[Column] = &[
    ("SECRET", "secret"),
    ("VERSION", "version"),
    ("TARGET", "target"),
    ("MODE", "mode"),
];

const KEY_VERSION: &[Column] = &[
    ("VERSION", "version"),
    ("STATE", "state"),
    ("SEALED", "sealed"),
    ("MASTER KEY", "master_key_id"),
    ("CREATED", "created_at"),
    ("RETIRED", "retired_at"),
];

const MASTER: &[Column] = &[
    ("provider", "provider"),
    ("current", "current"),
    ("held", "held"),
    ("data keys", "data_keys"),
    ("pending rewrap", "pending"),
];

/// The path of a project's secrets, or of your personal ones, plus more segments.
fn place<'a>(project: &'a Option<String>, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = match project {
        Some(p) => vec!["projects", p.as_str(), "secrets"],
        None => vec!["me", "secrets"],
    };
    v.extend_from_slice(more);
    v
}

/// How a secret is named in messages: `project/NAME` or `~/NAME`.
fn shown(project: &Option<String>, name: &str) -> String {
    match project {
        Some(p) => format!("{p}/{name}"),
        None => format!("~/{name}"),
    }
}

impl Runner<'_, '_> {
    fn read_value(&mut self, from_file: Option<&std::path::Path>) -> Result<Vec<u8>, Failure> {
        let mut value = Vec::new();
        let limit = u64::try_from(MAX_VALUE).unwrap_or(u64::MAX) + 1;
        match from_file {
            Some(path) => {
                let f = std::fs::File::open(path).map_err(|e| {
                    Failure::local("io", format!("cannot read {}: {e}", path.display()), None)
                })?;
                f.take(limit).read_to_end(&mut value)
            }
            None => (&mut self.ctx.stdin).take(limit).read_to_end(&mut value),
        }
        .map_err(|e| Failure::local("io", format!("cannot read the value: {e}"), None))?;
        if value.is_empty() {
            return Err(Failure::usage(
                "the secret value is empty",
                Some("give a non-empty file or pipe the value in".into()),
            ));
        }
        if value.len() > MAX_VALUE {
            return Err(Failure::usage(
                format!("the secret value is over the limit of {MAX_VALUE} bytes"),
                None,
            ));
        }
        Ok(value)
    }

    pub(super) async fn secrets(&mut self, cmd: SecretsCommand) -> Res {
        match cmd {
            SecretsCommand::List { project, mine: _ } => {
                let page = self
                    .api()?
                    .call_json(Method::GET, &place(&project, &[]), None)
                    .await?;
                let items = page["items"].as_array().cloned().unwrap_or_default();
                self.show_list(SECRET, items)
            }
            SecretsCommand::Set {
                name,
                project,
                from_file,
                from_stdin: _,
                description,
                mine: _,
            } => {
                let value = zeroize::Zeroizing::new(self.read_value(from_file.as_deref())?);
                let mut body = json!({ "value_base64": STANDARD.encode(value.as_slice()) });
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                let client = self.api()?;
                let meta = client
                    .call_json(Method::PUT, &place(&project, &[&name]), Some(&body))
                    .await?;
                match self.ctx.output {
                    OutputFormat::Json => self.show(SECRET, &meta),
                    OutputFormat::Text => self.done(&format!(
                        "Stored {} version {}.",
                        shown(&project, &name),
                        meta["current_version"]
                    )),
                }
            }
            SecretsCommand::Versions {
                name,
                project,
                mine: _,
            } => {
                let detail = self
                    .api()?
                    .call_json(Method::GET, &place(&project, &[&name]), None)
                    .await?;
                if self.ctx.output == OutputFormat::Json {
                    return self.show(SECRET, &detail);
                }
                let versions = detail["versions"].as_array().cloned().unwrap_or_default();
                self.show_list(VERSION, versions)
            }
            SecretsCommand::Get {
                name,
                project,
                version,
                out,
                mine: _,
            } => {
                let query: Vec<(&str, String)> = version
                    .map(|v| ("version", v.to_string()))
                    .into_iter()
                    .collect();
                let answer = self
                    .api()?
                    .call(
                        Method::GET,
                        &place(&project, &[&name, "value"]),
                        &query,
                        None,
                    )
                    .await?
                    .unwrap_or(Value::Null);
                let value = zeroize::Zeroizing::new(
                    match (answer["value"].as_str(), answer["value_base64"].as_str()) {
                        (Some(text), _) => text.as_bytes().to_vec(),
                        (None, Some(b64)) => STANDARD.decode(b64).map_err(|_| {
                            Failure::server("invalid_response", "the value is not base64", None)
                        })?,
                        _ => {
                            return Err(Failure::server(
                                "invalid_response",
                                "the server's answer has no value",
                                None,
                            ))
                        }
                    },
                );
                match out {
                    Some(path) => {
                        write_new_private(&path, &value)?;
                        self.done(&format!(
                            "Wrote version {} of {} to {}.",
                            answer["version"],
                            shown(&project, &name),
                            path.display()
                        ))
                    }
                    None if self.ctx.output == OutputFormat::Json => {
                        self.write_out(&Self::json_text(&answer))
                    }
                    None => self
                        .ctx
                        .out
                        .write_all(&value)
                        .and_then(|()| self.ctx.out.flush())
                        .map_err(|e| {
                            Failure::local("io", format!("cannot write output: {e}"), None)
                        }),
                }
            }
            SecretsCommand::Delete {
                name,
                project,
                mine: _,
            } => {
                self.api()?
                    .call(Method::DELETE, &place(&project, &[&name]), &[], None)
                    .await?;
                self.done(&format!(
                    "Deleted {} and all its versions.",
                    shown(&project, &name)
                ))
            }
            SecretsCommand::Plan { project, maps } => {
                let answer = self
                    .api()?
                    .call_json(
                        Method::POST,
                        &["projects", &project, "secret-plan"],
                        Some(&json!({ "map": maps })),
                    )
                    .await?;
                let items = answer["items"].as_array().cloned().unwrap_or_default();
                self.show_list(PLAN, items)
            }
        }
    }

    pub(super) async fn keys(&mut self, cmd: KeysCommand) -> Res {
        let client = self.api()?;
        let status = match &cmd {
            KeysCommand::Status { project } => {
                client
                    .call_json(Method::GET, &["projects", project, "keys"], None)
                    .await?
            }
            KeysCommand::Rotate { project } => {
                client
                    .call_json(Method::POST, &["projects", project, "keys", "rotate"], None)
                    .await?
            }
            KeysCommand::Retire { project, version } => {
                let v = version.to_string();
                client
                    .call_json(
                        Method::POST,
                        &["projects", project, "keys", &v, "retire"],
                        None,
                    )
                    .await?
            }
            KeysCommand::Master => {
                let m = client
                    .call_json(Method::GET, &["keys", "master"], None)
                    .await?;
                return self.show_as(MASTER, m, join_held);
            }
            KeysCommand::RotateMaster => {
                let m = client
                    .call_json(Method::POST, &["keys", "master", "rotate"], None)
                    .await?;
                return self.show_as(MASTER, m, join_held);
            }
        };
        if self.ctx.output == OutputFormat::Json {
            return self.show(KEY_VERSION, &status);
        }
        let versions = status["versions"].as_array().cloned().unwrap_or_default();
        self.show_list(KEY_VERSION, versions)?;
        let pending = status["pending"].as_u64().unwrap_or(0);
        if pending > 0 {
            self.done(&format!(
                "{pending} secret versions wait for re-encryption under the active key."
            ))
        } else {
            Ok(())
        }
    }

    pub(super) async fn unseal(&mut self, server: &str, ca: Option<&std::path::Path>) -> Res {
        let server = parse_server_url(server)?;
        let ca = match ca {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Failure::local(
                    "io",
                    format!("cannot read the CA file {}: {e}", path.display()),
                    None,
                )
            })?),
        };
        let passphrase = self.read_password()?;
        let client = ApiClient::new(&server, ca.as_deref(), None)?;
        let result = client
            .call(
                Method::POST,
                &["unseal"],
                &[],
                Some(&json!({ "passphrase": passphrase })),
            )
            .await;
        match result {
            Ok(_) => self.done("Unsealed; the server is serving."),
            Err(f) if f.code == "not_found" => {
                self.done("The server is not sealed; nothing to do.")
            }
            Err(f) => Err(f),
        }
    }
}

/// Shows the held master keys as one comma-separated cell.
fn join_held(v: &mut Value) {
    if let Some(list) = v["held"].as_array() {
        let joined = list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        v["held"] = json!(joined);
    }
}

/// Writes `bytes` to a new file with mode 0600 (never replaces an existing one).
fn write_new_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Failure::local(
                "io",
                format!("cannot create {}: {e}", path.display()),
                Some("give a path to a file that does not exist yet".into()),
            )
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::local("io", format!("cannot write {}: {e}", path.display()), None))
}
