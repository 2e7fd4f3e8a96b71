//! The idp commands: identity sources (OIDC providers and LDAP directories) users sign in
//! through: list, show, put (create or replace from a JSON or TOML file), delete, test a
//! sign-in, the claims of the last OIDC sign-in, the SCIM token, and a directory sync.

use std::io::Read;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{Res, Runner};
use crate::client::{sanitize, ApiClient, Failure, Kind};
use crate::output::{self, Column};
use crate::OutputFormat;

/// `idp` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum IdpCommand {
    /// Every identity source: kind, whether it is enabled, whom it admits, and whether a SCIM
    /// token is set.
    List,
    /// One identity source with all its settings (secrets only as `set` or `not set`).
    Show {
        /// Identity source name.
        name: String,
    },
    /// Create or replace an identity source from a JSON or TOML file (platform admins).
    ///
    /// The file holds `{"kind": "oidc"|"ldap", "display_name": …, "enabled": …, "oidc": {…}
    /// | "ldap": {…}, "admission": {…}, "mappings": […]}` (the output of `enclave --output json
    /// idp show NAME` works too). Secrets (`oidc.client_secret`, `ldap.bind_password`) may be
    /// in the file, or come from an environment variable with --client-secret-env or
    /// --bind-password-env; left out on a replace, the stored ones are kept.
    Put {
        /// Identity source name.
        name: String,
        /// The source: a `.json` or `.toml` file, or `-` for JSON on standard input.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Read the OIDC client secret from this environment variable (never an argument).
        #[arg(long, value_name = "VAR")]
        client_secret_env: Option<String>,
        /// Read the LDAP bind password from this environment variable (never an argument).
        #[arg(long, value_name = "VAR")]
        bind_password_env: Option<String>,
    },
    /// Delete an identity source; its users can no longer sign in through it.
    Delete {
        /// Identity source name.
        name: String,
    },
    /// Check an identity source: for LDAP, sign in as --username (the password is read from
    /// standard input, or asked for without echo on a terminal); for OIDC, reach the provider.
    /// Prints the identity, its groups and whether the admission rules let it in. Exits 1
    /// when the test fails.
    Test {
        /// Identity source name.
        name: String,
        /// The directory user to sign in as (LDAP sources).
        #[arg(long, value_name = "U")]
        username: Option<String>,
    },
    /// The claims the provider sent at the last sign-in through an OIDC source, as JSON.
    Claims {
        /// Identity source name.
        name: String,
    },
    /// Create a new SCIM token for an identity source (replacing the previous one) and print
    /// it once, with the SCIM base URL to give the identity provider.
    ScimToken {
        /// Identity source name.
        name: String,
    },
    /// Synchronise the users of an LDAP source now: prints how many were checked, updated
    /// and deactivated.
    Sync {
        /// Identity source name.
        name: String,
    },
}

/// Columns of the identity sources table (text mode fills `admission` with a summary and
/// `scim_token_set` as yes/no).
const SOURCE: &[Column] = &[
    ("NAME", "name"),
    ("KIND", "kind"),
    ("ENABLED", "enabled"),
    ("ADMISSION", "admission"),
    ("SCIM TOKEN", "scim_token_set"),
    ("DISPLAY NAME", "display_name"),
];

/// Fields of an OIDC section, in the order `idp show` prints them (`*_set` flags shown as
/// `set`/`not set` under the name without `_set`).
const OIDC_FIELDS: &[Column] = &[
    ("", "issuer"),
    ("", "client_id"),
    ("", "client_secret"),
    ("", "scopes"),
    ("", "algorithms"),
    ("", "email_claim"),
    ("", "name_claim"),
    ("", "groups_claim"),
    ("", "use_userinfo"),
    ("", "internal"),
    ("", "redirect_uri"),
];

/// Fields of an LDAP section, in the order `idp show` prints them.
const LDAP_FIELDS: &[Column] = &[
    ("", "url"),
    ("", "starttls"),
    ("", "allow_plain"),
    ("", "ca_pem"),
    ("", "bind_dn"),
    ("", "bind_password"),
    ("", "user_base"),
    ("", "user_filter"),
    ("", "group_base"),
    ("", "username_attr"),
    ("", "email_attr"),
    ("", "name_attr"),
    ("", "nested_groups"),
    ("", "disabled_filter"),
    ("", "sync_interval"),
];

/// Columns of the group mappings table of `idp show`.
const MAPPING: &[Column] = &[
    ("IDP GROUP", "idp_group"),
    ("GROUP", "group"),
    ("PLATFORM ROLE", "platform_role"),
    ("PROJECT", "project"),
    ("PROJECT ROLE", "project_role"),
];

/// Fields of `idp sync`'s answer.
const SYNC: &[Column] = &[("", "checked"), ("", "updated"), ("", "deactivated")];

/// Largest source file `idp put --file` reads (the server's body limit).
const MAX_SOURCE_BYTES: u64 = 64 * 1024;
/// Longest secret taken from an environment variable.
const MAX_SECRET_BYTES: usize = 8 * 1024;
/// Fields of a source a file may set.
const INPUT_FIELDS: [&str; 7] = [
    "kind",
    "display_name",
    "enabled",
    "oidc",
    "ldap",
    "admission",
    "mappings",
];
/// Fields of `idp show --output json` that `idp put` drops (the server sets them).
const READ_ONLY_FIELDS: [&str; 4] = ["created_at", "updated_at", "last_sync_at", "scim_token_set"];
/// Per section: its read-only fields (dropped) and its write-only secret (never printed).
const SECTIONS: [(&str, &[&str], &str); 2] = [
    (
        "oidc",
        &["client_secret_set", "redirect_uri"],
        "client_secret",
    ),
    (
        "ldap",
        &["bind_password_set", "ca_pem_set"],
        "bind_password",
    ),
];

fn src_path<'a>(name: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["identity-sources", name];
    v.extend_from_slice(more);
    v
}

/// Points a "not found" about an identity source at the listing.
fn source_hint(mut f: Failure) -> Failure {
    if f.kind == Kind::Refused && f.code == "not_found" {
        f.hint = Some("check the name: `enclave idp list` lists the identity sources".into());
    }
    f
}

/// Removes the write-only secrets from a source, should a server ever send them back.
fn without_secrets(mut source: Value) -> Value {
    for (section, _, secret) in SECTIONS {
        if let Some(s) = source.get_mut(section).and_then(Value::as_object_mut) {
            s.remove(secret);
        }
    }
    source
}

/// `everyone`, `domains: a.com, b.com`, `groups: ds, eng`.
fn admission_text(admission: &Value) -> String {
    let list = |key: &str| -> String {
        admission[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|v| output::cell(Some(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    match admission["mode"].as_str() {
        Some("all") => "everyone".into(),
        Some(mode @ ("domains" | "groups")) => format!("{mode}: {}", list(mode)),
        Some(other) => sanitize(other),
        None => "-".into(),
    }
}

/// A source as a row of the sources table.
fn source_row(source: &mut Value) {
    let admission = admission_text(&source["admission"]);
    if let Some(o) = source.as_object_mut() {
        o.insert("admission".into(), json!(admission));
    }
}

/// A section for `idp show`: `*_set` flags become `set`/`not set` under the name without
/// `_set`.
fn section_view(section: &Value) -> Value {
    let mut view = Map::new();
    if let Some(map) = section.as_object() {
        for (key, value) in map {
            match (key.strip_suffix("_set"), value) {
                (Some(base), Value::Bool(set)) => {
                    view.insert(base.into(), json!(if *set { "set" } else { "not set" }));
                }
                _ => {
                    view.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Value::Object(view)
}

/// `enclave idp show` in text mode: `key: value` lines (the kind's settings included), then
/// the group mappings as a table.
fn source_text(source: &Value) -> String {
    let top: &[Column] = &[
        ("", "name"),
        ("", "kind"),
        ("", "display_name"),
        ("", "enabled"),
    ];
    let mut pairs = output::object_pairs(
        top,
        &json!({
            "name": source["name"], "kind": source["kind"],
            "display_name": source["display_name"], "enabled": source["enabled"],
        }),
    );
    for (section, fields) in [("oidc", OIDC_FIELDS), ("ldap", LDAP_FIELDS)] {
        if source[section].is_object() {
            pairs.extend(output::object_pairs(
                fields,
                &section_view(&source[section]),
            ));
        }
    }
    pairs.push((
        "admission".into(),
        sanitize(&admission_text(&source["admission"])),
    ));
    let scim = if source["scim_token_set"] == json!(true) {
        "set"
    } else {
        "not set"
    };
    pairs.push(("scim token".into(), scim.into()));
    for key in ["created_at", "updated_at", "last_sync_at"] {
        if source.get(key).is_some() {
            pairs.push((key.replace('_', " "), output::cell(source.get(key))));
        }
    }
    let mut text = output::pairs_to_text(&pairs);
    let mappings = source["mappings"].as_array().cloned().unwrap_or_default();
    if mappings.is_empty() {
        text.push_str("mappings: - (no IdP group gives a group or role)\n");
    } else {
        text.push_str(&format!("mappings ({}):\n", mappings.len()));
        text.push_str(&output::indent(&output::table(MAPPING, &mappings), "  "));
    }
    text
}

/// `enclave idp test` in text mode: the result, the identity found and the admission.
fn test_text(result: &Value) -> String {
    let ok = result["ok"] == json!(true);
    let mut pairs = vec![
        (
            "result".to_string(),
            (if ok { "ok" } else { "FAILED" }).to_string(),
        ),
        ("detail".to_string(), output::cell(result.get("detail"))),
    ];
    let identity = &result["identity"];
    if identity.is_object() {
        for key in ["subject", "email", "name"] {
            pairs.push((key.to_string(), output::cell(identity.get(key))));
        }
        let groups = identity["groups"].as_array().map_or_else(Vec::new, |g| {
            g.iter().map(|v| output::cell(Some(v))).collect::<Vec<_>>()
        });
        let groups = if groups.is_empty() {
            "-".to_string()
        } else {
            groups.join(", ")
        };
        pairs.push(("groups".into(), groups));
    }
    let reason = result["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(|r| format!(" ({})", sanitize(r)))
        .unwrap_or_default();
    let admitted = match result["admitted"].as_bool() {
        Some(true) => format!("yes{reason}"),
        Some(false) => format!("no{reason}"),
        None => "- (not checked)".into(),
    };
    pairs.push(("admitted".into(), admitted));
    output::pairs_to_text(&pairs)
}

/// Checks the shape of a source read from `origin` and returns the body to send: the fields
/// a `SourceInput` has; the read-only fields of `enclave --output json idp show` are dropped,
/// and its `name`, if any, must be NAME.
fn source_body(origin: &str, name: &str, value: Value) -> Result<Value, Failure> {
    let bad = |what: String| {
        Failure::usage(
            format!("{origin}: {what}"),
            Some(
                "an identity source is {\"kind\": \"oidc\", \"display_name\": \"Corp SSO\", \
                 \"enabled\": true, \"oidc\": {\"issuer\": \"https://…\", \"client_id\": \"…\", \
                 …}, \"admission\": {\"mode\": \"all\"}, \"mappings\": []} (or `kind = \
                 \"ldap\"` with an `ldap` section); `enclave --output json idp show NAME` \
                 prints one"
                    .into(),
            ),
        )
    };
    let Value::Object(mut map) = value else {
        return Err(bad("expected an object".into()));
    };
    if let Some(n) = map.remove("name") {
        if n.as_str() != Some(name) {
            return Err(bad(format!(
                "its `name` is {}, not {}",
                output::cell(Some(&n)),
                sanitize(name)
            )));
        }
    }
    for key in READ_ONLY_FIELDS {
        map.remove(key);
    }
    if let Some(key) = map.keys().find(|k| !INPUT_FIELDS.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown field `{}`: a source has {}",
            sanitize(key),
            INPUT_FIELDS.join(", ")
        )));
    }
    let kind = match map.get("kind") {
        Some(Value::String(k)) if k == "oidc" || k == "ldap" => k.clone(),
        Some(_) => return Err(bad("`kind` must be \"oidc\" or \"ldap\"".into())),
        None => return Err(bad("`kind` is missing".into())),
    };
    for (section, read_only, secret) in SECTIONS {
        match map.get_mut(section) {
            None | Some(Value::Null) => {
                if section == kind {
                    return Err(bad(format!(
                        "a source of kind {kind} needs an `{kind}` section"
                    )));
                }
            }
            Some(Value::Object(fields)) => {
                if section != kind {
                    return Err(bad(format!(
                        "a source of kind {kind} cannot have an `{section}` section"
                    )));
                }
                for key in read_only {
                    fields.remove(*key);
                }
                if fields.get(secret).is_some_and(|s| !s.is_string()) {
                    return Err(bad(format!("`{section}.{secret}` must be a string")));
                }
            }
            Some(_) => return Err(bad(format!("`{section}` must be an object"))),
        }
    }
    Ok(Value::Object(map))
}

/// The secrets a source body carries, for redaction.
fn secrets_in(body: &Value) -> Vec<String> {
    SECTIONS
        .iter()
        .filter_map(|(section, _, secret)| body[*section][*secret].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Sets `section.field` of `body` to `secret` (the section must be in the file).
fn set_secret(
    body: &mut Value,
    section: &str,
    field: &str,
    secret: String,
    flag: &str,
) -> Result<(), Failure> {
    match body.get_mut(section).and_then(Value::as_object_mut) {
        Some(fields) => {
            fields.insert(field.into(), Value::String(secret));
            Ok(())
        }
        None => Err(Failure::usage(
            format!("{flag} is for a source with an `{section}` section, and the file has none"),
            Some(format!(
                "give {flag} only for a source of kind {section}, or add its `{section}` section"
            )),
        )),
    }
}

/// Reads a secret from the environment variable `var` (named by `flag`), checked and never
/// echoed.
fn secret_from_env(
    var: &str,
    flag: &str,
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<String, Failure> {
    let hint = Some(format!(
        "export the secret first, e.g. `read -rs {var} && export {var}`, then give {flag} {var}"
    ));
    let value = lookup(var).ok_or_else(|| {
        Failure::usage(
            format!(
                "the environment variable {} ({flag}) is not set",
                sanitize(var)
            ),
            hint.clone(),
        )
    })?;
    let value = value.into_string().map_err(|_| {
        Failure::usage(
            format!(
                "the environment variable {} ({flag}) is not valid UTF-8",
                sanitize(var)
            ),
            hint.clone(),
        )
    })?;
    if value.is_empty() {
        return Err(Failure::usage(
            format!(
                "the environment variable {} ({flag}) is empty",
                sanitize(var)
            ),
            hint,
        ));
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(Failure::usage(
            format!(
                "the environment variable {} ({flag}) is longer than 8 KiB",
                sanitize(var)
            ),
            None,
        ));
    }
    Ok(value)
}

/// How a source file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Toml,
}

/// The format of `path` by its extension (`-` is JSON on standard input).
fn format_of(path: &Path) -> Result<Format, Failure> {
    if path == Path::new("-") {
        return Ok(Format::Json);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => Ok(Format::Json),
        Some("toml") => Ok(Format::Toml),
        _ => Err(Failure::usage(
            format!(
                "cannot tell the format of {}: name the file .json or .toml",
                path.display()
            ),
            Some("or pipe JSON in with --file -".into()),
        )),
    }
}

/// Parses a TOML document into JSON (datetimes become strings; TOML has no null, so a
/// field left out stands for it).
fn toml_to_json(text: &str) -> Result<Value, String> {
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string().trim_end().to_string())?;
    Ok(table_json(doc.as_table()))
}

fn table_json(table: &toml_edit::Table) -> Value {
    Value::Object(
        table
            .iter()
            .filter_map(|(k, item)| item_json(item).map(|v| (k.to_string(), v)))
            .collect(),
    )
}

fn item_json(item: &toml_edit::Item) -> Option<Value> {
    match item {
        toml_edit::Item::None => None,
        toml_edit::Item::Value(v) => Some(value_json(v)),
        toml_edit::Item::Table(t) => Some(table_json(t)),
        toml_edit::Item::ArrayOfTables(a) => Some(Value::Array(a.iter().map(table_json).collect())),
    }
}

fn value_json(value: &toml_edit::Value) -> Value {
    use toml_edit::Value as T;
    match value {
        T::String(s) => json!(s.value()),
        T::Integer(i) => json!(i.value()),
        T::Float(f) => json!(f.value()),
        T::Boolean(b) => json!(b.value()),
        T::Datetime(d) => json!(d.value().to_string()),
        T::Array(a) => Value::Array(a.iter().map(value_json).collect()),
        T::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), value_json(v)))
                .collect(),
        ),
    }
}

/// Parses the bytes of a source file in `format`.
fn parse_source(origin: &str, format: Format, bytes: &[u8]) -> Result<Value, Failure> {
    match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|e| {
            Failure::usage(
                format!("{origin} is not valid JSON: {e}"),
                Some("write the source as one JSON object".into()),
            )
        }),
        Format::Toml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Failure::usage(format!("{origin} is not UTF-8 text"), None))?;
            toml_to_json(text).map_err(|e| {
                let mut f = Failure::usage(
                    format!("{origin} is not valid TOML"),
                    Some(
                        "fix the file; `kind = \"oidc\"` and an `[oidc]` table, for example".into(),
                    ),
                );
                f.excerpt = Some(output::indent(&output::sanitize_multiline(&e), "  "));
                f
            })
        }
    }
}

/// Turns a terminal's echo off until dropped (through `stty`, on the terminal that is standard
/// input), so a typed password is not shown.
struct NoEcho {
    saved: String,
}

impl NoEcho {
    fn new() -> Result<Self, Failure> {
        let stty = |args: &[&str]| {
            std::process::Command::new("stty")
                .args(args)
                .stdin(std::process::Stdio::inherit())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
        };
        let failed = || {
            Failure::local(
                "no_terminal",
                "cannot turn off the terminal's echo to ask for the password",
                Some(
                    "pipe the password in instead, e.g. `printf '%s\\n' \"$PASSWORD\" | enclave \
                     idp test NAME --username U`"
                        .into(),
                ),
            )
        };
        let saved = stty(&["-g"]).ok_or_else(failed)?;
        let saved = String::from_utf8_lossy(&saved.stdout).trim().to_string();
        stty(&["-echo"]).ok_or_else(failed)?;
        Ok(NoEcho { saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        let _ = std::process::Command::new("stty")
            .arg(&self.saved)
            .stdin(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Runner<'_, '_> {
    pub(super) async fn idp(&mut self, cmd: IdpCommand) -> Res {
        match cmd {
            IdpCommand::List => {
                let page = self
                    .api()?
                    .call_json(Method::GET, &["identity-sources"], None)
                    .await?;
                let items = page["sources"].as_array().cloned().unwrap_or_default();
                let items = items.into_iter().map(without_secrets).collect();
                self.show_list_as(SOURCE, items, source_row)
            }
            IdpCommand::Show { name } => {
                let source = self
                    .api()?
                    .call_json(Method::GET, &src_path(&name, &[]), None)
                    .await
                    .map_err(source_hint)?;
                self.show_source(source)
            }
            IdpCommand::Put {
                name,
                file,
                client_secret_env,
                bind_password_env,
            } => {
                let format = format_of(&file)?;
                let (origin, bytes) = self.read_source_file(&file)?;
                let value = parse_source(&origin, format, &bytes)?;
                let mut body = source_body(&origin, &name, value)?;
                self.secrets.extend(secrets_in(&body));
                let env = |k: &str| std::env::var_os(k);
                if let Some(var) = client_secret_env {
                    let flag = "--client-secret-env";
                    let secret = secret_from_env(&var, flag, env)?;
                    self.secrets.push(secret.clone());
                    set_secret(&mut body, "oidc", "client_secret", secret, flag)?;
                }
                if let Some(var) = bind_password_env {
                    let flag = "--bind-password-env";
                    let secret = secret_from_env(&var, flag, env)?;
                    self.secrets.push(secret.clone());
                    set_secret(&mut body, "ldap", "bind_password", secret, flag)?;
                }
                let client = self.api()?;
                let source = client
                    .call_json(Method::PUT, &src_path(&name, &[]), Some(&body))
                    .await?;
                self.show_source(source)
            }
            IdpCommand::Delete { name } => {
                self.api()?
                    .call(Method::DELETE, &src_path(&name, &[]), &[], None)
                    .await
                    .map_err(source_hint)?;
                self.done(&format!("Deleted identity source {name}."))
            }
            IdpCommand::Test { name, username } => self.test_source(&name, username).await,
            IdpCommand::Claims { name } => {
                let login = self
                    .api()?
                    .call_json(Method::GET, &src_path(&name, &["last-login"]), None)
                    .await
                    .map_err(|mut f| {
                        if f.kind == Kind::Refused && f.code == "not_found" {
                            f.hint = Some(format!(
                                "nobody has signed in through identity source {name} yet, or \
                                 there is no such source (`enclave idp list` lists them)"
                            ));
                        }
                        f
                    })?;
                if self.ctx.output == OutputFormat::Json {
                    return self.write_out(&Self::json_text(&login));
                }
                let columns: &[Column] = &[
                    ("", "at"),
                    ("", "subject"),
                    ("", "admitted"),
                    ("", "reason"),
                ];
                let mut text = output::pairs_to_text(&output::object_pairs(
                    columns,
                    &json!({"at": login["at"], "subject": login["subject"],
                        "admitted": login["admitted"], "reason": login["reason"]}),
                ));
                text.push_str("claims:\n");
                text.push_str(&Self::json_text(&login["claims"]));
                self.write_out(&text)
            }
            IdpCommand::ScimToken { name } => {
                let created = self
                    .api()?
                    .call_json(Method::POST, &src_path(&name, &["scim-token"]), None)
                    .await
                    .map_err(source_hint)?;
                if let Some(token) = created["token"].as_str() {
                    self.secrets.push(token.to_string());
                }
                let warning = "This token is shown only once: store it now, in the identity \
                               provider's SCIM settings. It replaces the previous token.";
                if self.ctx.output == OutputFormat::Json {
                    self.write_out(&Self::json_text(&created))?;
                    self.note(warning);
                    return Ok(());
                }
                let pairs = vec![
                    (
                        "scim url".to_string(),
                        output::cell(created.get("scim_url")),
                    ),
                    ("token".to_string(), output::cell(created.get("token"))),
                ];
                let mut text = output::pairs_to_text(&pairs);
                text.push_str(warning);
                text.push('\n');
                self.write_out(&text)
            }
            IdpCommand::Sync { name } => {
                let counts = self
                    .api()?
                    .call_json(Method::POST, &src_path(&name, &["sync"]), None)
                    .await
                    .map_err(source_hint)?;
                if self.ctx.output == OutputFormat::Json {
                    return self.write_out(&Self::json_text(&counts));
                }
                self.show(SYNC, &counts)
            }
        }
    }

    /// Prints one source (secrets never): the server's JSON, or `key: value` lines.
    fn show_source(&mut self, source: Value) -> Res {
        let source = without_secrets(source);
        match self.ctx.output {
            OutputFormat::Json => self.write_out(&Self::json_text(&source)),
            OutputFormat::Text => self.write_out(&source_text(&source)),
        }
    }

    /// `idp test`: asks for the password of an LDAP user, sends the test and prints the
    /// result; a failed test is an error (exit 1) after the result.
    async fn test_source(&mut self, name: &str, username: Option<String>) -> Res {
        let client: ApiClient = self.api()?;
        let source = client
            .call_json(Method::GET, &src_path(name, &[]), None)
            .await
            .map_err(source_hint)?;
        let body = if source["kind"] == "ldap" {
            let Some(username) = username else {
                return Err(Failure::usage(
                    format!("identity source {name} is an LDAP directory: say whom to sign in as"),
                    Some(format!(
                        "give --username U; the password is read from standard input, e.g. \
                         `enclave idp test {name} --username U` and type it"
                    )),
                ));
            };
            let password = self.test_password(&username)?;
            json!({"username": username, "password": password})
        } else {
            if username.is_some() {
                self.warn(&format!(
                    "identity source {name} is not LDAP: --username is not used, the test \
                     reaches the provider"
                ));
            }
            json!({})
        };
        let result = client
            .call_json(Method::POST, &src_path(name, &["test"]), Some(&body))
            .await
            .map_err(source_hint)?;
        match self.ctx.output {
            OutputFormat::Json => self.write_out(&Self::json_text(&result))?,
            OutputFormat::Text => self.write_out(&test_text(&result))?,
        }
        if result["ok"] == json!(true) {
            return Ok(());
        }
        Err(Failure::local(
            "test_failed",
            format!("identity source {name} did not pass the test"),
            Some(format!(
                "fix its settings (`enclave idp show {name}`, then `enclave idp put {name} \
                 --file FILE`) and test again"
            )),
        ))
    }

    /// The password to test with: the first line of standard input, or typed without echo
    /// when standard input is a terminal.
    fn test_password(&mut self, username: &str) -> Result<String, Failure> {
        if !self.ctx.stdin_is_terminal {
            return self.read_password();
        }
        let _ = write!(self.ctx.err, "Password of {}: ", sanitize(username));
        let _ = self.ctx.err.flush();
        let no_echo = NoEcho::new()?;
        let password = self.read_password();
        drop(no_echo);
        let _ = writeln!(self.ctx.err);
        password
    }

    /// Reads a source file (`-` is standard input), at most 64 KiB.
    fn read_source_file(&mut self, path: &Path) -> Result<(String, Vec<u8>), Failure> {
        let limit = MAX_SOURCE_BYTES;
        let mut bytes = Vec::new();
        let origin = if path == Path::new("-") {
            (&mut self.ctx.stdin)
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| {
                    Failure::local(
                        "io",
                        format!("cannot read the source from stdin: {e}"),
                        None,
                    )
                })?;
            "<stdin>".to_string()
        } else {
            let origin = path.display().to_string();
            let read_error = |e: std::io::Error| {
                Failure::local(
                    "io",
                    format!("cannot read the source file {origin}: {e}"),
                    None,
                )
            };
            std::fs::File::open(path)
                .map_err(read_error)?
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(read_error)?;
            origin
        };
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
            return Err(Failure::usage(
                format!("{origin} is larger than 64 KiB, the most a source may have"),
                None,
            ));
        }
        Ok((origin, bytes))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn oidc_source() -> Value {
        json!({"name": "corp", "kind": "oidc", "display_name": "Corp SSO", "enabled": true,
            "oidc": {"issuer": "https://idp.example", "client_id": "enclave",
                "client_secret_set": true, "scopes": ["openid", "email"],
                "algorithms": ["RS256"], "email_claim": "email", "name_claim": "name",
                "groups_claim": "groups", "use_userinfo": false, "internal": false,
                "redirect_uri": "https://h/auth/oidc/corp/callback"},
            "ldap": null,
            "admission": {"mode": "domains", "domains": ["corp.example", "sub.example"],
                "groups": []},
            "mappings": [{"idp_group": "data-scientists", "group": "ds", "platform_role": null,
                "project": "fraud", "project_role": "editor"}],
            "scim_token_set": false, "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-02T00:00:00Z", "last_sync_at": null})
    }

    #[test]
    fn show_text_and_rows() {
        let text = source_text(&oidc_source());
        assert!(
            text.starts_with("name:          corp\nkind:          oidc\n"),
            "{text}"
        );
        assert!(text.contains("client secret: set\n"), "{text}");
        assert!(text.contains("scopes:        openid,email\n"), "{text}");
        assert!(
            text.contains("admission:     domains: corp.example, sub.example\n"),
            "{text}"
        );
        assert!(text.contains("scim token:    not set\n"), "{text}");
        assert!(text.contains("last sync at:  -\n"), "{text}");
        assert!(
            text.ends_with(
                "mappings (1):\n  IDP GROUP        GROUP  PLATFORM ROLE  PROJECT  PROJECT ROLE\n  \
                 data-scientists  ds     -              fraud    editor\n"
            ),
            "{text}"
        );
        let mut row = oidc_source();
        source_row(&mut row);
        assert_eq!(row["admission"], "domains: corp.example, sub.example");
        assert_eq!(admission_text(&json!({"mode": "all"})), "everyone");
        assert_eq!(
            admission_text(&json!({"mode": "groups", "groups": ["a\u{1b}[2J", "b"]})),
            "groups: a?[2J, b"
        );
    }

    #[test]
    fn test_result_text() {
        let text = test_text(&json!({"ok": true, "detail": "bound as uid=alice",
            "identity": {"subject": "alice", "email": null, "name": "Alice",
                "groups": ["ds", "eng"]},
            "admitted": false, "reason": "not in group staff"}));
        assert_eq!(
            text,
            "result:   ok\ndetail:   bound as uid=alice\nsubject:  alice\nemail:    -\n\
             name:     Alice\ngroups:   ds, eng\nadmitted: no (not in group staff)\n"
        );
        let text = test_text(&json!({"ok": false, "detail": "invalid credentials",
            "identity": null, "admitted": null, "reason": null}));
        assert_eq!(
            text,
            "result:   FAILED\ndetail:   invalid credentials\nadmitted: - (not checked)\n"
        );
    }

    #[test]
    fn source_files_are_checked() {
        // The output of `idp show --output json` is accepted; its read-only fields dropped.
        let body = source_body("s.json", "corp", oidc_source()).unwrap();
        assert!(body.get("name").is_none() && body.get("created_at").is_none());
        assert!(body["oidc"].get("client_secret_set").is_none());
        assert!(body["oidc"].get("redirect_uri").is_none());
        assert_eq!(body["oidc"]["client_id"], "enclave");
        assert_eq!(body["ldap"], Value::Null);

        let refused = |value: Value, needle: &str| {
            let f = source_body("s.json", "corp", value).unwrap_err();
            assert_eq!(f.exit_code(), 2);
            assert!(
                f.message.starts_with("s.json: ") && f.message.contains(needle),
                "{}",
                f.message
            );
        };
        let mut v = oidc_source();
        v["name"] = json!("other");
        refused(v, "its `name` is other, not corp");
        refused(json!([1]), "expected an object");
        let mut v = oidc_source();
        v["kidn"] = json!("oidc");
        refused(v, "unknown field `kidn`");
        let mut v = oidc_source();
        v["kind"] = json!("saml");
        refused(v, "`kind` must be");
        let mut v = oidc_source();
        v.as_object_mut().unwrap().remove("kind");
        refused(v, "`kind` is missing");
        let mut v = oidc_source();
        v["oidc"] = Value::Null;
        refused(v, "needs an `oidc` section");
        let mut v = oidc_source();
        v["ldap"] = json!({"url": "ldaps://x"});
        refused(v, "cannot have an `ldap` section");
        let mut v = oidc_source();
        v["oidc"]["client_secret"] = json!(5);
        refused(v, "`oidc.client_secret` must be a string");
        let mut v = oidc_source();
        v["oidc"] = json!("https://idp");
        refused(v, "`oidc` must be an object");
    }

    #[test]
    fn secrets_from_the_environment() {
        let env = |k: &str| (k == "SET").then(|| std::ffi::OsString::from("s3cret-value"));
        assert_eq!(secret_from_env("SET", "--x", env).unwrap(), "s3cret-value");
        let f = secret_from_env("UNSET", "--client-secret-env", env).unwrap_err();
        assert_eq!(f.exit_code(), 2);
        assert!(
            f.message.contains("UNSET (--client-secret-env) is not set"),
            "{}",
            f.message
        );
        let empty = |_: &str| Some(std::ffi::OsString::new());
        assert!(secret_from_env("E", "--x", empty)
            .unwrap_err()
            .message
            .contains("is empty"));
        let long = |_: &str| Some(std::ffi::OsString::from("x".repeat(MAX_SECRET_BYTES + 1)));
        assert!(secret_from_env("L", "--x", long).is_err());

        let mut body = json!({"kind": "ldap", "ldap": {"url": "ldaps://x"}});
        set_secret(&mut body, "ldap", "bind_password", "pw".into(), "--b").unwrap();
        assert_eq!(body["ldap"]["bind_password"], "pw");
        let f = set_secret(&mut body, "oidc", "client_secret", "s".into(), "--c").unwrap_err();
        assert!(f.message.contains("`oidc` section"), "{}", f.message);
        assert_eq!(secrets_in(&body), vec!["pw".to_string()]);
        assert_eq!(without_secrets(body)["ldap"], json!({"url": "ldaps://x"}));
    }

    #[test]
    fn toml_and_formats() {
        let value = toml_to_json(
            "kind = \"ldap\"\nenabled = true\n[ldap]\nurl = \"ldaps://dir\"\nport = 636\n\
             ratio = 0.5\nwhen = 2026-01-01T00:00:00Z\nlist = [\"a\", {x = 1}]\n\
             [[mappings]]\nidp_group = \"g\"\n[[mappings]]\nidp_group = \"h\"\n",
        )
        .unwrap();
        assert_eq!(
            value,
            json!({"kind": "ldap", "enabled": true,
                "ldap": {"url": "ldaps://dir", "port": 636, "ratio": 0.5,
                    "when": "2026-01-01T00:00:00Z", "list": ["a", {"x": 1}]},
                "mappings": [{"idp_group": "g"}, {"idp_group": "h"}]})
        );
        let e = toml_to_json("kind = \n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        assert_eq!(format_of(Path::new("a.JSON")).unwrap(), Format::Json);
        assert_eq!(format_of(Path::new("dir/a.toml")).unwrap(), Format::Toml);
        assert_eq!(format_of(Path::new("-")).unwrap(), Format::Json);
        assert_eq!(format_of(Path::new("a.yaml")).unwrap_err().exit_code(), 2);
        let f = parse_source("s.toml", Format::Toml, b"kind = = 1").unwrap_err();
        assert_eq!(f.message, "s.toml is not valid TOML");
        assert!(f.excerpt.unwrap().contains("line 1"));
    }
}
