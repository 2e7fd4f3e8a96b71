//! The notebooks and envs commands: notebook servers in a project (create and wait until
//! ready, list, show, open, start, stop, delete, the code-audit setting) and the environment
//! templates they run (list, show, put, build and follow, delete).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::{Res, Runner};
use crate::client::{sanitize, ApiClient, Failure, Kind};
use crate::output::{self, sanitize_multiline, Column};
use crate::{EnvsCommand, NotebooksCommand, OutputFormat, PresetArg, Switch};

/// Columns of the notebook servers table (text mode shows `memory` for `memory_bytes`).
const NOTEBOOK: &[Column] = &[
    ("NAME", "name"),
    ("STATE", "state"),
    ("OWNER", "owner"),
    ("ENVIRONMENT", "environment"),
    ("PRESET", "preset"),
    ("CPUS", "cpus"),
    ("MEMORY", "memory"),
    ("CODE AUDIT", "audit_code"),
    ("STARTED", "started_at"),
    ("REASON", "reason"),
];

/// Fields of one notebook server, in the order `notebooks show` prints them.
const NOTEBOOK_DETAIL: &[Column] = &[
    ("", "project"),
    ("", "name"),
    ("", "state"),
    ("", "reason"),
    ("", "url"),
    ("", "owner"),
    ("", "environment"),
    ("", "preset"),
    ("", "cpus"),
    ("", "memory"),
    ("", "secrets"),
    ("", "audit_code"),
    ("", "created_at"),
    ("", "started_at"),
    ("", "stopped_at"),
];

/// Columns of the environment templates table (text mode fills `status` with the percent,
/// `presets` with their names and `packages` with the number of pins).
const ENVIRONMENT: &[Column] = &[
    ("NAME", "name"),
    ("PYTHON", "python"),
    ("STATUS", "status"),
    ("PRESETS", "presets"),
    ("PINS", "packages"),
    ("MESSAGE", "message"),
];

/// How often a wait asks the server again.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long `notebooks create` and `start` wait for `ready`.
const START_WAIT: Duration = Duration::from_secs(5 * 60);
/// How long `notebooks stop` waits for `stopped`.
const STOP_WAIT: Duration = Duration::from_secs(2 * 60);
/// How long `envs build` follows a build.
const BUILD_WAIT: Duration = Duration::from_secs(60 * 60);
/// How long a build may stay `not_built` after it was asked for before the wait gives up.
const BUILD_START_WAIT: Duration = Duration::from_secs(15);
/// Largest template file `envs put --file` sends (the server's body limit).
const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;
/// Fields of `envs show --output json` that `envs put --file` drops (the server sets them).
const READ_ONLY_FIELDS: [&str; 5] = ["fingerprint", "status", "percent", "message", "installed"];
/// Frames of the spinner drawn on a terminal.
const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
/// Longest spinner line, so that it fits a narrow terminal and can be redrawn in place.
const SPINNER_WIDTH: usize = 72;

/// What a notebook wait waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// `ready` (fails on `failed` or `stopped`).
    Ready,
    /// `stopped` or `failed` (not running any more).
    Stopped,
}

fn nb_path<'a>(project: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["projects", project, "notebooks"];
    v.extend_from_slice(more);
    v
}

fn state_of(value: &Value) -> String {
    value["state"].as_str().unwrap_or("?").to_string()
}

/// The address to open a notebook server at: the server's base URL and the notebook's path.
fn open_url(server: &str, nb: &Value) -> String {
    let path = match nb["url"].as_str() {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => format!(
            "/p/{}/nb/{}/lab",
            nb["project"].as_str().unwrap_or_default(),
            nb["name"].as_str().unwrap_or_default()
        ),
    };
    let url = if path.starts_with("https://") || path.starts_with("http://") {
        path
    } else if path.starts_with('/') {
        format!("{server}{path}")
    } else {
        format!("{server}/{path}")
    };
    sanitize(&url)
}

/// A size in the largest binary unit that divides it exactly (`512MiB`, `2GiB`).
fn human_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes > 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// `1 CPU`, `2 CPUs`, `0.5 CPUs`.
fn cpus_text(cpus: &str) -> String {
    if cpus == "1" {
        "1 CPU".into()
    } else {
        format!("{cpus} CPUs")
    }
}

/// A notebook server for text output: the full URL, memory as a size, secrets joined.
fn notebook_view(server: &str, mut nb: Value) -> Value {
    let url = open_url(server, &nb);
    if let Some(o) = nb.as_object_mut() {
        if let Some(bytes) = o.remove("memory_bytes").and_then(|v| v.as_u64()) {
            o.insert("memory".into(), json!(human_size(bytes)));
        }
        if let Some(Value::Array(secrets)) = o.get("secrets") {
            let joined: Vec<&str> = secrets.iter().filter_map(Value::as_str).collect();
            o.insert("secrets".into(), json!(joined.join(", ")));
        }
        o.insert("url".into(), json!(url));
    }
    nb
}

/// A build status for people: `building 42%`, `ready`, `failed`, `not built`.
fn status_text(env: &Value) -> String {
    let status = env["status"].as_str().unwrap_or("?");
    match (status, env["percent"].as_u64()) {
        ("building", Some(p)) => format!("building {p}%"),
        ("not_built", _) => "not built".into(),
        (s, _) => s.to_string(),
    }
}

/// `small: 1 CPU, 2GiB; medium: 2 CPUs, 4GiB`.
fn presets_text(env: &Value) -> String {
    env["presets"]
        .as_array()
        .map(|presets| {
            presets
                .iter()
                .map(|p| {
                    format!(
                        "{}: {}, {}",
                        p["name"].as_str().unwrap_or("?"),
                        cpus_text(p["cpus"].as_str().unwrap_or("?")),
                        p["memory"].as_str().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// A template as a row of the templates table.
fn environment_row(env: &mut Value) {
    let status = status_text(env);
    let presets: Vec<Value> = env["presets"]
        .as_array()
        .map(|ps| ps.iter().map(|p| p["name"].clone()).collect())
        .unwrap_or_default();
    let pins = env["packages"].as_array().map_or(0, Vec::len);
    if let Some(o) = env.as_object_mut() {
        o.insert("status".into(), json!(status));
        o.insert("presets".into(), Value::Array(presets));
        o.insert("packages".into(), json!(pins));
    }
}

/// `enclave envs show` in text mode: `key: value` lines, then the pinned and the installed
/// packages, one per line.
fn environment_text(env: &Value) -> String {
    let mut pairs = vec![
        ("name".to_string(), output::cell(env.get("name"))),
        ("python".to_string(), output::cell(env.get("python"))),
        ("status".to_string(), sanitize(&status_text(env))),
    ];
    if env.get("message").is_some_and(|m| !m.is_null()) {
        pairs.push(("message".into(), output::cell(env.get("message"))));
    }
    pairs.push((
        "presets".into(),
        output::cell(Some(&json!(presets_text(env)))),
    ));
    pairs.push(("fingerprint".into(), output::cell(env.get("fingerprint"))));
    let mut text = output::pairs_to_text(&pairs);
    let list = |key: &str| -> Vec<String> {
        env[key]
            .as_array()
            .map(|items| items.iter().map(|p| output::cell(Some(p))).collect())
            .unwrap_or_default()
    };
    let pinned = list("packages");
    text.push_str(&format!("pinned packages ({}):\n", pinned.len()));
    text.push_str(&output::indent(&pinned.join("\n"), "  "));
    let installed = list("installed");
    if installed.is_empty() {
        text.push_str("installed packages: - (shown once built)\n");
    } else {
        text.push_str(&format!("installed packages ({}):\n", installed.len()));
        text.push_str(&output::indent(&installed.join("\n"), "  "));
    }
    text
}

/// Points a "not found" about a notebook server at the listing.
fn notebook_hint(project: &str, mut f: Failure) -> Failure {
    if f.kind == Kind::Refused && f.code == "not_found" {
        f.hint = Some(format!(
            "check the names: `enclave notebooks list --project {project}` lists the project's \
             notebook servers, `enclave projects list` your projects"
        ));
    }
    f
}

/// Points a "not found" of `notebooks create` at the projects and templates.
fn create_hint(mut f: Failure) -> Failure {
    if f.kind == Kind::Refused && f.code == "not_found" {
        f.hint = Some(
            "check the project and --env: `enclave projects list` and `enclave envs list` show \
             them"
                .into(),
        );
    }
    f
}

/// Checks the shape of a template read from `source` and returns the body to send: the
/// fields the server reads (`python`, `packages`, `presets`); the read-only fields of
/// `enclave --output json envs show` are dropped, and its `name` must be NAME.
fn template_body(source: &str, name: &str, value: Value) -> Result<Value, Failure> {
    let bad = |what: String| {
        Failure::usage(
            format!("{source}: {what}"),
            Some(
                "a template is {\"python\": \"3.11\", \"packages\": [\"jupyterlab==4.6.6\", \
                 \"ipykernel==7.4.0\", …], \"presets\": [{\"name\": \"small\", \"cpus\": \"1\", \
                 \"memory\": \"2G\"}, …]}"
                    .into(),
            ),
        )
    };
    let Value::Object(mut map) = value else {
        return Err(bad("expected a JSON object".into()));
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
    if let Some(key) = map
        .keys()
        .find(|k| !["python", "packages", "presets"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown field `{}`: a template has python, packages and presets",
            sanitize(key)
        )));
    }
    match map.get("python") {
        Some(Value::String(p)) => {
            crate::parse_python(p).map_err(|e| bad(format!("`python`: {e}")))?;
        }
        Some(_) => return Err(bad("`python` must be a string like \"3.11\"".into())),
        None => return Err(bad("`python` is missing".into())),
    }
    let packages = match map.get("packages") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => {
            return Err(bad(
                "`packages` must be a non-empty list of pins like \"numpy==2.4.6\"".into(),
            ))
        }
        None => return Err(bad("`packages` is missing".into())),
    };
    for (i, pin) in packages.iter().enumerate() {
        let pin = pin.as_str().ok_or_else(|| {
            bad(format!(
                "`packages[{i}]` must be a string like \"numpy==2.4.6\""
            ))
        })?;
        crate::parse_pin(pin).map_err(|e| bad(format!("`packages[{i}]`: {e}")))?;
    }
    let presets = match map.get("presets") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(bad("`presets` must be a non-empty list of presets".into())),
        None => return Err(bad("`presets` is missing".into())),
    };
    for (i, preset) in presets.iter().enumerate() {
        let Some(fields) = preset.as_object() else {
            return Err(bad(format!("`presets[{i}]` must be an object")));
        };
        if let Some(key) = fields
            .keys()
            .find(|k| !["name", "cpus", "memory"].contains(&k.as_str()))
        {
            return Err(bad(format!(
                "unknown field `presets[{i}].{}`: a preset has name, cpus and memory",
                sanitize(key)
            )));
        }
        let field = |key: &str, example: &str| -> Result<&str, Failure> {
            match fields.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s),
                _ => Err(bad(format!(
                    "`presets[{i}].{key}` must be a string like \"{example}\""
                ))),
            }
        };
        field("name", "small")?;
        if !crate::is_cpus(field("cpus", "2")?) {
            return Err(bad(format!(
                "`presets[{i}].cpus` must be a number of CPUs like \"2\" or \"0.5\""
            )));
        }
        if !crate::is_size(field("memory", "4G")?) {
            return Err(bad(format!(
                "`presets[{i}].memory` must be a size like \"512M\" or \"4G\""
            )));
        }
    }
    Ok(Value::Object(map))
}

/// The body of `PUT /environments/{name}` from the flags.
fn flags_body(python: String, packages: Vec<String>, presets: Vec<PresetArg>) -> Value {
    let presets: Vec<Value> = presets
        .into_iter()
        .map(|p| json!({"name": p.name, "cpus": p.cpus, "memory": p.memory}))
        .collect();
    json!({"python": python, "packages": packages, "presets": presets})
}

/// Progress of a wait on standard error: a spinner line redrawn in place on a terminal,
/// otherwise one line each time its `key` changes.
struct Progress {
    terminal: bool,
    started: Instant,
    tick: usize,
    last_key: Option<String>,
    drawn: bool,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Progress {
            terminal,
            started: Instant::now(),
            tick: 0,
            last_key: None,
            drawn: false,
        }
    }

    /// Shows `text` (sanitized here); `key` decides when a line is printed without a terminal.
    fn update(&mut self, err: &mut (dyn Write + Send), key: &str, text: &str) {
        let text = sanitize(text);
        if self.terminal {
            let elapsed = format!(" ({}s)", self.started.elapsed().as_secs());
            let room = SPINNER_WIDTH.saturating_sub(elapsed.len());
            let mut line: String = text.chars().take(room).collect();
            if text.chars().count() > room {
                line.pop();
                line.push('…');
            }
            let frame = SPINNER[self.tick % SPINNER.len()];
            let _ = write!(err, "\r\x1b[2K{frame} {line}{elapsed}");
            let _ = err.flush();
            self.tick += 1;
            self.drawn = true;
        } else if self.last_key.as_deref() != Some(key) {
            let _ = writeln!(err, "{text}");
            self.last_key = Some(key.to_string());
        }
    }

    /// Removes the spinner line, if one is drawn.
    fn clear(&mut self, err: &mut (dyn Write + Send)) {
        if self.drawn {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Runner<'_, '_> {
    pub(super) async fn notebooks(&mut self, cmd: NotebooksCommand) -> Res {
        match cmd {
            NotebooksCommand::Create {
                name,
                project,
                environment,
                preset,
                secrets,
                no_wait,
            } => {
                let mut body = json!({"name": name, "secrets": secrets});
                if let Some(e) = environment {
                    body["environment"] = json!(e);
                }
                if let Some(p) = preset {
                    body["preset"] = json!(p);
                }
                let (client, creds) = self.client()?;
                let nb = client
                    .call_json(Method::POST, &nb_path(&project, &[]), Some(&body))
                    .await
                    .map_err(create_hint)?;
                if no_wait {
                    return self.show_notebook(&creds.server, nb);
                }
                self.note(&format!(
                    "Starting notebook server {project}/{name} (environment {}, preset {}: {}, \
                     {}); Ctrl-C stops waiting, not the server.",
                    nb["environment"].as_str().unwrap_or("?"),
                    nb["preset"].as_str().unwrap_or("?"),
                    cpus_text(nb["cpus"].as_str().unwrap_or("?")),
                    nb["memory_bytes"].as_u64().map_or("?".into(), human_size),
                ));
                self.until_ready(&client, &creds.server, &project, &name, nb)
                    .await
            }
            NotebooksCommand::List { project } => {
                let (client, creds) = self.client()?;
                let page = client
                    .call_json(Method::GET, &nb_path(&project, &[]), None)
                    .await
                    .map_err(|f| notebook_hint(&project, f))?;
                let mut items = page["items"].as_array().cloned().unwrap_or_default();
                if self.ctx.output == OutputFormat::Text {
                    items = items
                        .into_iter()
                        .map(|nb| notebook_view(&creds.server, nb))
                        .collect();
                }
                self.show_list(NOTEBOOK, items)
            }
            NotebooksCommand::Show { name, project } => {
                let (client, creds) = self.client()?;
                let nb = self.get_notebook(&client, &project, &name).await?;
                self.show_notebook(&creds.server, nb)
            }
            NotebooksCommand::Open { name, project } => {
                let (client, creds) = self.client()?;
                let nb = self.get_notebook(&client, &project, &name).await?;
                let url = open_url(&creds.server, &nb);
                let state = state_of(&nb);
                match state.as_str() {
                    "ready" => {}
                    "starting" => self.warn(&format!(
                        "notebook server {project}/{name} is still starting: the page works once \
                         it is ready (`enclave notebooks show --project {project} {name}`)"
                    )),
                    _ => {
                        let reason = nb["reason"]
                            .as_str()
                            .map(|r| format!(" ({})", sanitize(r)))
                            .unwrap_or_default();
                        return Err(Failure::local(
                            "not_running",
                            format!(
                                "notebook server {project}/{name} is {}{reason}",
                                sanitize(&state)
                            ),
                            Some(format!(
                                "start it with `enclave notebooks start --project {project} {name}`"
                            )),
                        ));
                    }
                }
                match self.ctx.output {
                    OutputFormat::Json => self.write_out(&Self::json_text(&json!({
                        "project": nb["project"], "name": nb["name"], "state": nb["state"],
                        "url": url,
                    }))),
                    OutputFormat::Text => self.write_out(&format!("{url}\n")),
                }
            }
            NotebooksCommand::Start {
                name,
                project,
                no_wait,
            } => {
                let (client, creds) = self.client()?;
                let nb = client
                    .call_json(Method::POST, &nb_path(&project, &[&name, "start"]), None)
                    .await
                    .map_err(|f| notebook_hint(&project, f))?;
                if no_wait {
                    return self.show_notebook(&creds.server, nb);
                }
                self.note(&format!(
                    "Starting notebook server {project}/{name}; Ctrl-C stops waiting, not the \
                     server."
                ));
                self.until_ready(&client, &creds.server, &project, &name, nb)
                    .await
            }
            NotebooksCommand::Stop {
                name,
                project,
                no_wait,
            } => {
                let (client, creds) = self.client()?;
                let nb = client
                    .call_json(Method::POST, &nb_path(&project, &[&name, "stop"]), None)
                    .await
                    .map_err(|f| notebook_hint(&project, f))?;
                let nb = if no_wait {
                    nb
                } else {
                    self.wait_notebook(&client, &project, &name, Goal::Stopped, nb)
                        .await?
                };
                if self.ctx.output == OutputFormat::Json {
                    return self.show_notebook(&creds.server, nb);
                }
                let message = match state_of(&nb).as_str() {
                    "stopped" => format!(
                        "Stopped notebook server {project}/{name}; its files stay on the \
                         project volume."
                    ),
                    "failed" => format!(
                        "Notebook server {project}/{name} ended (failed: {}); its files stay on \
                         the project volume.",
                        nb["reason"].as_str().unwrap_or("no reason given")
                    ),
                    state => format!(
                        "Notebook server {project}/{name} is {state}; its files stay on the \
                         project volume."
                    ),
                };
                self.done(&message)
            }
            NotebooksCommand::Delete { name, project } => {
                self.api()?
                    .call(Method::DELETE, &nb_path(&project, &[&name]), &[], None)
                    .await
                    .map_err(|f| notebook_hint(&project, f))?;
                self.done(&format!(
                    "Deleted notebook server {project}/{name}; its files stay on the project \
                     volume."
                ))
            }
            NotebooksCommand::CodeAudit { project, setting } => {
                let on = setting == Switch::On;
                let body = json!({ "audit_code": on });
                let answer = self
                    .api()?
                    .call(
                        Method::PUT,
                        &["projects", &project, "code-audit"],
                        &[],
                        Some(&body),
                    )
                    .await?;
                if self.ctx.output == OutputFormat::Json {
                    return self.write_out(&Self::json_text(&answer.unwrap_or(body)));
                }
                self.done(&if on {
                    format!(
                        "Code audit is on for project {project}: code run in its notebook \
                         servers is recorded in the audit trail (servers started from now on)."
                    )
                } else {
                    format!(
                        "Code audit is off for project {project}: code run in notebook servers \
                         started from now on is not recorded."
                    )
                })
            }
        }
    }

    async fn get_notebook(
        &mut self,
        client: &ApiClient,
        project: &str,
        name: &str,
    ) -> Result<Value, Failure> {
        client
            .call_json(Method::GET, &nb_path(project, &[name]), None)
            .await
            .map_err(|f| notebook_hint(project, f))
    }

    /// Prints one notebook server: the server's JSON, or `key: value` lines with the URL.
    fn show_notebook(&mut self, server: &str, nb: Value) -> Res {
        match self.ctx.output {
            OutputFormat::Json => self.show(NOTEBOOK_DETAIL, &nb),
            OutputFormat::Text => self.show(NOTEBOOK_DETAIL, &notebook_view(server, nb)),
        }
    }

    /// Polls a notebook server until it reaches `goal` (or, for `Ready`, fails or stops);
    /// returns its last state. Fails only when the time limit passes or a request fails.
    async fn wait_notebook(
        &mut self,
        client: &ApiClient,
        project: &str,
        name: &str,
        goal: Goal,
        first: Value,
    ) -> Result<Value, Failure> {
        let (limit, doing) = match goal {
            Goal::Ready => (START_WAIT, "starting"),
            Goal::Stopped => (STOP_WAIT, "stopping"),
        };
        let started = Instant::now();
        let mut progress = Progress::new(self.ctx.err_is_terminal);
        let mut nb = first;
        loop {
            let state = state_of(&nb);
            let finished = match goal {
                Goal::Ready => matches!(state.as_str(), "ready" | "failed" | "stopped"),
                Goal::Stopped => matches!(state.as_str(), "stopped" | "failed"),
            };
            if finished {
                progress.clear(self.ctx.err);
                return Ok(nb);
            }
            if started.elapsed() >= limit {
                progress.clear(self.ctx.err);
                return Err(Failure::local(
                    "timeout",
                    format!(
                        "notebook server {project}/{name} is still {} after {}",
                        sanitize(&state),
                        output::duration(limit.as_secs())
                    ),
                    Some(format!(
                        "it goes on {doing} on the server: `enclave notebooks show --project \
                         {project} {name}` shows its state"
                    )),
                ));
            }
            progress.update(
                self.ctx.err,
                &state,
                &format!("notebook server {project}/{name}: {state}"),
            );
            tokio::time::sleep(POLL_EVERY).await;
            nb = match self.get_notebook(client, project, name).await {
                Ok(nb) => nb,
                Err(f) => {
                    progress.clear(self.ctx.err);
                    return Err(f);
                }
            };
        }
    }

    /// Waits for `ready` and prints the URL to open; a server that failed or stopped instead
    /// is an error with its reason (exit 1).
    async fn until_ready(
        &mut self,
        client: &ApiClient,
        server: &str,
        project: &str,
        name: &str,
        first: Value,
    ) -> Res {
        let nb = self
            .wait_notebook(client, project, name, Goal::Ready, first)
            .await?;
        let state = state_of(&nb);
        if self.ctx.output == OutputFormat::Json {
            self.show(NOTEBOOK_DETAIL, &nb)?;
        }
        if state == "ready" {
            let url = open_url(server, &nb);
            self.note(&format!(
                "Notebook server {project}/{name} is ready; open it in your browser (sign in to \
                 the Enclave console there if asked):"
            ));
            if self.ctx.output == OutputFormat::Text {
                self.write_out(&format!("{url}\n"))?;
            }
            return Ok(());
        }
        let reason = nb["reason"].as_str().unwrap_or("no reason given");
        Err(Failure::local(
            "notebook_failed",
            format!(
                "notebook server {project}/{name} {}: {}",
                sanitize(&state),
                sanitize(reason)
            ),
            Some(format!(
                "`enclave notebooks show --project {project} {name}` shows it; once the cause is \
                 fixed, `enclave notebooks start --project {project} {name}` starts it again"
            )),
        ))
    }

    pub(super) async fn envs(&mut self, cmd: EnvsCommand) -> Res {
        match cmd {
            EnvsCommand::List => {
                let page = self
                    .api()?
                    .call_json(Method::GET, &["environments"], None)
                    .await?;
                let items = page["items"].as_array().cloned().unwrap_or_default();
                self.show_list_as(ENVIRONMENT, items, environment_row)
            }
            EnvsCommand::Show { name } => {
                let env = self
                    .api()?
                    .call_json(Method::GET, &["environments", &name], None)
                    .await?;
                self.show_environment(&env)
            }
            EnvsCommand::Put {
                name,
                python,
                packages,
                presets,
                file,
                wait,
            } => {
                let body = match (file, python) {
                    (Some(path), _) => {
                        let (source, value) = self.read_template(&path)?;
                        template_body(&source, &name, value)?
                    }
                    (None, Some(python)) => flags_body(python, packages, presets),
                    (None, None) => {
                        return Err(Failure::usage(
                            "no template given",
                            Some("give --python, --package… and --preset…, or --file FILE".into()),
                        ))
                    }
                };
                let client = self.api()?;
                let env = client
                    .call_json(Method::PUT, &["environments", &name], Some(&body))
                    .await?;
                if wait {
                    self.note(&format!(
                        "Stored environment template {name}; following its build (Ctrl-C stops \
                         following, not the build)."
                    ));
                    return self.follow_build(&client, &name).await;
                }
                self.show_environment(&env)?;
                self.note(&format!(
                    "The server builds it now: `enclave envs build {name}` follows the build."
                ));
                Ok(())
            }
            EnvsCommand::Build { name, no_wait } => {
                let client = self.api()?;
                let env = client
                    .call_json(Method::POST, &["environments", &name, "build"], None)
                    .await?;
                if no_wait {
                    return match self.ctx.output {
                        OutputFormat::Json => self.write_out(&Self::json_text(&env)),
                        OutputFormat::Text => self.done(&format!(
                            "Build of environment {name} requested; `enclave envs show {name}` \
                             shows its progress."
                        )),
                    };
                }
                self.note(&format!(
                    "Building environment {name} (Ctrl-C stops following, not the build)."
                ));
                self.follow_build(&client, &name).await
            }
            EnvsCommand::Delete { name } => {
                self.api()?
                    .call(Method::DELETE, &["environments", &name], &[], None)
                    .await?;
                self.done(&format!("Deleted environment template {name}."))
            }
        }
    }

    fn show_environment(&mut self, env: &Value) -> Res {
        match self.ctx.output {
            OutputFormat::Json => self.write_out(&Self::json_text(env)),
            OutputFormat::Text => self.write_out(&environment_text(env)),
        }
    }

    /// Reads a template file (`-` is standard input) as JSON, at most 64 KiB.
    fn read_template(&mut self, path: &std::path::Path) -> Result<(String, Value), Failure> {
        let limit = MAX_TEMPLATE_BYTES;
        let mut bytes = Vec::new();
        let source = if path == std::path::Path::new("-") {
            (&mut self.ctx.stdin)
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| {
                    Failure::local(
                        "io",
                        format!("cannot read the template from stdin: {e}"),
                        None,
                    )
                })?;
            "<stdin>".to_string()
        } else {
            let source = path.display().to_string();
            let read_error = |e: std::io::Error| {
                Failure::local(
                    "io",
                    format!("cannot read the template file {source}: {e}"),
                    None,
                )
            };
            std::fs::File::open(path)
                .map_err(read_error)?
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(read_error)?;
            source
        };
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
            return Err(Failure::usage(
                format!("{source} is larger than 64 KiB, the most a template may have"),
                None,
            ));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::usage(
                format!("{source} is not valid JSON: {e}"),
                Some("write the template as one JSON object".into()),
            )
        })?;
        Ok((source, value))
    }

    /// Follows a build until the template is ready (prints how many packages it has) or the
    /// build failed (an error with the builder's message, exit 1).
    async fn follow_build(&mut self, client: &ApiClient, name: &str) -> Res {
        let started = Instant::now();
        let mut progress = Progress::new(self.ctx.err_is_terminal);
        let env = loop {
            // The first wait also lets the server's build task begin.
            tokio::time::sleep(POLL_EVERY).await;
            let env = match client
                .call_json(Method::GET, &["environments", name], None)
                .await
            {
                Ok(env) => env,
                Err(f) => {
                    progress.clear(self.ctx.err);
                    return Err(f);
                }
            };
            let status = env["status"].as_str().unwrap_or("?").to_string();
            if status == "ready" || status == "failed" {
                progress.clear(self.ctx.err);
                break env;
            }
            let waited = started.elapsed();
            let stuck = status == "not_built" && waited >= BUILD_START_WAIT;
            if stuck || waited >= BUILD_WAIT {
                progress.clear(self.ctx.err);
                let (message, hint) = if stuck {
                    (
                        format!(
                            "the build of environment {name} did not start within {}",
                            output::duration(BUILD_START_WAIT.as_secs())
                        ),
                        format!("ask for it again with `enclave envs build {name}`"),
                    )
                } else {
                    (
                        format!(
                            "environment {name} is still {} after {}",
                            sanitize(&status_text(&env)),
                            output::duration(BUILD_WAIT.as_secs())
                        ),
                        format!(
                            "the build goes on on the server: `enclave envs show {name}` shows \
                             its progress"
                        ),
                    )
                };
                return Err(Failure::local("timeout", message, Some(hint)));
            }
            let percent = env["percent"].as_u64();
            let message = env["message"].as_str().unwrap_or_default();
            let text = match status.as_str() {
                "building" => format!(
                    "building {name}: {}% {message}",
                    percent.map_or("?".into(), |p| p.to_string())
                ),
                "queued" => format!("build of {name} queued: it waits for another build"),
                "not_built" => format!("build of {name} starting"),
                other => format!("environment {name}: {other}"),
            };
            // Without a terminal: a line per status and per 10 percent.
            let key = format!("{status}:{}", percent.map_or(0, |p| p / 10));
            progress.update(self.ctx.err, &key, &text);
        };
        if self.ctx.output == OutputFormat::Json {
            self.write_out(&Self::json_text(&env))?;
        }
        if env["status"] == "ready" {
            let installed = env["installed"].as_array().map_or(0, Vec::len);
            let message = format!("Environment {name} is ready ({installed} packages installed).");
            return match self.ctx.output {
                OutputFormat::Json => {
                    self.note(&message);
                    Ok(())
                }
                OutputFormat::Text => self.done(&message),
            };
        }
        let mut failure = Failure::local(
            "build_failed",
            format!("the build of environment {name} failed"),
            Some(format!(
                "fix the template (`enclave envs put {name} …`) and build again; `enclave envs \
                 show {name}` shows it"
            )),
        );
        if let Some(why) = env["message"].as_str().filter(|m| !m.trim().is_empty()) {
            failure.excerpt = Some(output::indent(&sanitize_multiline(why.trim_end()), "  "));
        }
        Err(failure)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_sizes_and_views() {
        let nb = json!({"project": "fraud", "name": "explore", "url": "/p/fraud/nb/explore/lab",
            "memory_bytes": 2u64 << 30, "secrets": ["DB=env:DB", "@TOKEN=env:T"]});
        assert_eq!(
            open_url("https://h:8443", &nb),
            "https://h:8443/p/fraud/nb/explore/lab"
        );
        assert_eq!(
            open_url("https://h", &json!({"project": "a1", "name": "b1"})),
            "https://h/p/a1/nb/b1/lab"
        );
        assert_eq!(
            open_url("https://h", &json!({"url": "/p/x\u{1b}[2J"})),
            "https://h/p/x?[2J"
        );
        assert_eq!(human_size(512 << 20), "512MiB");
        assert_eq!(human_size(3 << 30), "3GiB");
        assert_eq!(human_size(1000), "1000B");
        let view = notebook_view("https://h", nb);
        assert_eq!(view["memory"], "2GiB");
        assert_eq!(view["secrets"], "DB=env:DB, @TOKEN=env:T");
        assert!(view.get("memory_bytes").is_none());
    }

    #[test]
    fn environment_texts() {
        let env = json!({"name": "ds", "python": "3.11", "status": "building", "percent": 42,
            "message": "Installing numpy\u{1b}[31m", "fingerprint": "f1",
            "packages": ["jupyterlab==4.6.6", "ipykernel==7.4.0"],
            "presets": [{"name": "small", "cpus": "1", "memory": "2GiB"},
                        {"name": "big", "cpus": "0.5", "memory": "512MiB"}],
            "installed": []});
        let text = environment_text(&env);
        assert!(text.contains("status:      building 42%\n"), "{text}");
        assert!(text.contains("Installing numpy?[31m"), "{text}");
        assert!(
            text.contains("presets:     small: 1 CPU, 2GiB; big: 0.5 CPUs, 512MiB\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "pinned packages (2):\n  jupyterlab==4.6.6\n  ipykernel==7.4.0\n\
                 installed packages: - (shown once built)\n"
            ),
            "{text}"
        );
        let mut row = env.clone();
        environment_row(&mut row);
        assert_eq!(
            (&row["status"], &row["presets"], &row["packages"]),
            (&json!("building 42%"), &json!(["small", "big"]), &json!(2))
        );
    }

    #[test]
    fn template_files_are_checked() {
        let good = json!({"python": "3.11", "packages": ["jupyterlab==4.6.6"],
            "presets": [{"name": "small", "cpus": "1", "memory": "2GiB"}]});
        assert_eq!(template_body("t.json", "ds", good.clone()).unwrap(), good);
        // The output of `envs show --output json` is accepted; its read-only fields dropped.
        let mut shown = good.clone();
        shown["name"] = json!("ds");
        shown["status"] = json!("ready");
        shown["installed"] = json!(["numpy==2.4.6"]);
        shown["percent"] = Value::Null;
        assert_eq!(template_body("t.json", "ds", shown.clone()).unwrap(), good);
        let refused = |value: Value, needle: &str| {
            let f = template_body("t.json", "ds", value).unwrap_err();
            assert_eq!(f.exit_code(), 2);
            assert!(
                f.message.starts_with("t.json: ") && f.message.contains(needle),
                "{}",
                f.message
            );
        };
        shown["name"] = json!("other");
        refused(shown, "its `name` is other, not ds");
        refused(json!([1]), "expected a JSON object");
        let mut v = good.clone();
        v["pythn"] = json!("3.11");
        refused(v, "unknown field `pythn`");
        let mut v = good.clone();
        v["python"] = json!(3.11);
        refused(v, "`python` must be a string");
        let mut v = good.clone();
        v["packages"] = json!(["numpy>=2"]);
        refused(v, "`packages[0]`");
        let mut v = good.clone();
        v["packages"] = json!([]);
        refused(v, "non-empty");
        let mut v = good.clone();
        v["presets"][0]["cpus"] = json!(2);
        refused(v, "`presets[0].cpus` must be a string");
        let mut v = good.clone();
        v["presets"][0]["memory"] = json!("lots");
        refused(v, "`presets[0].memory` must be a size");
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove("presets");
        refused(v, "`presets` is missing");
    }

    #[test]
    fn progress_spinner_and_lines() {
        let mut err: Vec<u8> = Vec::new();
        let mut p = Progress::new(false);
        p.update(&mut err, "a", "one\u{1b}[2J");
        p.update(&mut err, "a", "one again");
        p.update(&mut err, "b", "two");
        p.clear(&mut err);
        assert_eq!(String::from_utf8(err).unwrap(), "one?[2J\ntwo\n");

        let mut err: Vec<u8> = Vec::new();
        let mut p = Progress::new(true);
        p.update(&mut err, "a", &format!("x\u{7}{}", "y".repeat(100)));
        p.clear(&mut err);
        let text = String::from_utf8(err).unwrap();
        let line = text
            .strip_prefix("\r\u{1b}[2K| x?")
            .and_then(|t| t.strip_suffix("\r\u{1b}[2K"))
            .unwrap();
        assert!(line.contains('…') && line.ends_with("(0s)"), "{line}");
        assert!(line.chars().count() <= SPINNER_WIDTH, "{line}");
        assert!(!line.contains('\u{7}'));
    }
}
