//! A project's secrets and keys in the console, and the master key page.
//!
//! * `/projects/{name}/secrets`: names and metadata (never values), the add-or-new-version
//!   form and the injection-plan check; `/projects/{name}/secrets/{secret}`: its versions,
//!   the reveal buttons and deletion.
//! * `/projects/{name}/keys`: the project's data-key versions, re-encryption progress,
//!   rotation and retirement. `/admin/keys`: the master key and its rotation.
//!
//! Invariants:
//! * A secret's value reaches a page only as the answer to the reveal form, a CSRF-checked
//!   POST (a link prefetch cannot cause an audited read), served `Cache-Control: no-store`.
//!   It is never put into a URL, a log line or a form, not even when the form comes back with
//!   an error.
//! * Buttons and forms are shown as [`enclave_app::App::my_project_actions`] decides;
//!   every action is decided again (and a refusal audited) by its use case.

use super::guard::{PageQuery, Post, Visitor};
use super::page::{encode, fail, finish, in_form, render, status, when, Chrome, Problem};
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use enclave_core::authz::Action;
use enclave_core::secrets::{parse_mapping, MAX_SECRET_VALUE};
use enclave_core::Error;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Largest body of the add-secret form: a value at the limit, percent-encoded (up to three
/// bytes per byte), plus the other fields. Larger values are refused by the application with
/// a clear message; only bodies beyond this never reach it.
pub const SECRET_FORM_LIMIT: usize = 3 * MAX_SECRET_VALUE + 16 * 1024;

/// One secret in the list.
struct SecretRow {
    name: String,
    href: String,
    description: String,
    version: u32,
    updated: String,
    created_by: String,
}

/// One line of a checked injection plan.
struct PlanRow {
    secret: String,
    version: u32,
    target: String,
}

/// What the secrets page's forms keep when shown again: never the value.
#[derive(Default)]
struct SecretsDraft {
    name: String,
    description: String,
    map: String,
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    chrome: Chrome,
    project: String,
    project_href: String,
    secrets: Vec<SecretRow>,
    write: bool,
    check: bool,
    keys: bool,
    draft: SecretsDraft,
    plan: Option<Vec<PlanRow>>,
    problem: Option<Problem>,
    max_value: usize,
}

/// What the visitor may do with a project's secrets and keys (display only).
async fn abilities(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    secret: Option<&str>,
) -> Vec<Action> {
    s.app
        .my_project_actions(
            &session.caller,
            project,
            secret,
            &[
                Action::SecretWrite,
                Action::SecretDelete,
                Action::SecretReadValue,
                Action::JobRun,
                Action::KeyRead,
                Action::KeyRotate,
            ],
        )
        .await
}

async fn secrets_page(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    q: PageQuery,
    draft: SecretsDraft,
    plan: Option<Vec<PlanRow>>,
    problem: Option<Problem>,
) -> Response {
    let list = match s.app.list_secrets(&session.caller, project).await {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let can = abilities(s, session, project, None).await;
    let base = format!("/projects/{}", encode(project));
    let page = SecretsPage {
        chrome: Chrome::new(format!("Secrets of {project}"), "projects", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        project: project.to_string(),
        secrets: list
            .into_iter()
            .map(|m| SecretRow {
                href: format!("{base}/secrets/{}", encode(&m.name)),
                version: m.current_version,
                updated: when(m.updated_at),
                name: m.name,
                description: m.description,
                created_by: m.created_by,
            })
            .collect(),
        project_href: base,
        write: can.contains(&Action::SecretWrite),
        check: can.contains(&Action::JobRun),
        keys: can.contains(&Action::KeyRead),
        draft,
        plan,
        problem: problem.clone(),
        max_value: MAX_SECRET_VALUE,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /projects/{name}/secrets`.
pub async fn list(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(project): Path<String>,
    q: PageQuery,
) -> Response {
    secrets_page(
        &s,
        &session,
        &project,
        q,
        SecretsDraft::default(),
        None,
        None,
    )
    .await
}

/// The add-a-secret-or-a-new-version form. The value is held only until it is sealed.
#[derive(Deserialize)]
pub struct SecretForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    value: String,
}

/// The value as typed: browsers send a textarea's line breaks as CRLF, people mean LF.
fn typed_value(value: String) -> Zeroizing<Vec<u8>> {
    let value = Zeroizing::new(value);
    if value.contains("\r\n") {
        Zeroizing::new(value.replace("\r\n", "\n").into_bytes())
    } else {
        Zeroizing::new(value.as_bytes().to_vec())
    }
}

/// `POST /projects/{name}/secrets`: creates the secret, or adds a version to it. An empty
/// description keeps the one it has.
pub async fn set(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Post { session, form: f }: Post<SecretForm>,
) -> Response {
    let SecretForm {
        name,
        description,
        value,
    } = f;
    let value = typed_value(value);
    let name = name.trim().to_string();
    let described = Some(description.trim()).filter(|d| !d.is_empty());
    let result = s
        .app
        .set_secret(&session.caller, &project, &name, &value, described)
        .await
        .map(|_| ());
    drop(value);
    let path = format!("/projects/{}/secrets/{}", encode(&project), encode(&name));
    let draft = SecretsDraft {
        name,
        description,
        map: String::new(),
    };
    finish(result, &session, &path, "secret-saved", |p| {
        secrets_page(
            &s,
            &session,
            &project,
            PageQuery::default(),
            draft,
            None,
            Some(p),
        )
    })
    .await
}

/// The injection-plan check: one `NAME=env:VAR` or `NAME=file:PATH` per line.
#[derive(Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    map: String,
}

/// Parses the plan text; blank lines are skipped, errors name their line.
fn parse_plan(text: &str) -> Result<Vec<enclave_core::secrets::SecretMapping>, Error> {
    let mut plan = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_mapping(line) {
            Ok(m) => plan.push(m),
            Err(e) => {
                return Err(
                    Error::invalid("map", format!("line {}: {}", n + 1, e.message))
                        .with("line", n + 1)
                        .with("column", 1),
                )
            }
        }
    }
    if plan.is_empty() {
        return Err(Error::invalid(
            "map",
            "write at least one mapping, e.g. DB_PASSWORD=env:PGPASSWORD",
        ));
    }
    Ok(plan)
}

/// `POST /projects/{name}/secret-plan`: what a job started now would receive (versions and
/// targets, no values).
pub async fn plan(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Post { session, form: f }: Post<PlanForm>,
) -> Response {
    let result = match parse_plan(&f.map) {
        Ok(plan) => s.app.plan_secrets(&session.caller, &project, &plan).await,
        Err(e) => Err(e),
    };
    let draft = SecretsDraft {
        map: f.map,
        ..SecretsDraft::default()
    };
    let q = PageQuery::default();
    match result {
        Ok(entries) => {
            let rows = entries
                .into_iter()
                .map(|e| PlanRow {
                    target: e.mapping.target.to_spec(),
                    secret: e.mapping.secret,
                    version: e.version,
                })
                .collect();
            secrets_page(&s, &session, &project, q, draft, Some(rows), None).await
        }
        // A secret named in the plan that does not exist is the plan's error, not the page's.
        Err(e)
            if in_form(&e)
                || e.details.get("resource").and_then(|v| v.as_str()) == Some("secret") =>
        {
            let p = Problem {
                field: Some("map".into()),
                ..Problem::of(e)
            };
            secrets_page(&s, &session, &project, q, draft, None, Some(p)).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

struct VersionRow {
    version: u32,
    size: u32,
    created_by: String,
    created: String,
    key_version: u32,
    current: bool,
}

#[derive(Template)]
#[template(path = "secret.html")]
struct SecretPage {
    chrome: Chrome,
    project: String,
    project_href: String,
    name: String,
    href: String,
    description: String,
    current: u32,
    created: String,
    created_by: String,
    updated: String,
    versions: Vec<VersionRow>,
    reveal: bool,
    write: bool,
    delete: bool,
    problem: Option<Problem>,
    max_value: usize,
}

async fn secret_page(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    name: &str,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    let (meta, versions) = match s.app.secret_versions(&session.caller, project, name).await {
        Ok(v) => v,
        Err(e) => return fail(&e, Some(session)),
    };
    let can = abilities(s, session, project, Some(name)).await;
    let project_href = format!("/projects/{}", encode(project));
    let page = SecretPage {
        chrome: Chrome::new(
            format!("Secret {} of {project}", meta.name),
            "projects",
            Some(session),
        )
        .notice(q.notice)
        .problem(problem.as_ref()),
        project: project.to_string(),
        href: format!("{project_href}/secrets/{}", encode(&meta.name)),
        project_href,
        current: meta.current_version,
        created: when(meta.created_at),
        updated: when(meta.updated_at),
        versions: versions
            .into_iter()
            .map(|v| VersionRow {
                current: v.version == meta.current_version,
                version: v.version,
                size: v.size,
                created_by: v.created_by,
                created: when(v.created_at),
                key_version: v.key_version,
            })
            .collect(),
        name: meta.name,
        description: meta.description,
        created_by: meta.created_by,
        reveal: can.contains(&Action::SecretReadValue),
        write: can.contains(&Action::SecretWrite),
        delete: can.contains(&Action::SecretDelete),
        problem: problem.clone(),
        max_value: MAX_SECRET_VALUE,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /projects/{name}/secrets/{secret}`: the secret's versions.
pub async fn show(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path((project, name)): Path<(String, String)>,
    q: PageQuery,
) -> Response {
    secret_page(&s, &session, &project, &name, q, None).await
}

/// The reveal button: which version (the current one when empty).
#[derive(Deserialize)]
pub struct RevealForm {
    #[serde(default)]
    version: String,
}

#[derive(Template)]
#[template(path = "secret_value.html")]
struct ValuePage {
    chrome: Chrome,
    project: String,
    project_href: String,
    name: String,
    href: String,
    version: u32,
    size: usize,
    /// The value when it is UTF-8 text.
    text: Option<Zeroizing<String>>,
    /// Otherwise the value in base64.
    base64: Option<Zeroizing<String>>,
}

/// `POST /projects/{name}/secrets/{secret}/reveal`: reads one value (audited) and shows it
/// once, on a page that is never cached.
pub async fn reveal(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Post { session, form: f }: Post<RevealForm>,
) -> Response {
    let version = match f.version.trim() {
        "" => None,
        v => match v.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                let e = Error::invalid("version", "choose a version number from the list");
                return secret_page(
                    &s,
                    &session,
                    &project,
                    &name,
                    PageQuery::default(),
                    Some(Problem::of(e)),
                )
                .await;
            }
        },
    };
    let (version, value) = match s
        .app
        .read_secret(&session.caller, &project, &name, version)
        .await
    {
        Ok(v) => v,
        Err(e) => return fail(&e, Some(&session)),
    };
    let size = value.len();
    let (text, base64) = match std::str::from_utf8(&value) {
        Ok(t) => (Some(Zeroizing::new(t.to_string())), None),
        Err(_) => (
            None,
            Some(Zeroizing::new(STANDARD.encode(value.as_slice()))),
        ),
    };
    drop(value);
    let project_href = format!("/projects/{}", encode(&project));
    let page = ValuePage {
        chrome: Chrome::new(format!("Secret {name}"), "projects", Some(&session)),
        href: format!("{project_href}/secrets/{}", encode(&name)),
        project_href,
        project,
        name,
        version,
        size,
        text,
        base64,
    };
    let mut resp = render(StatusCode::OK, &page);
    drop(page);
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// The delete-secret form: the secret's name typed again.
#[derive(Deserialize)]
pub struct DeleteSecretForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /projects/{name}/secrets/{secret}/delete`: only when `confirm` equals the name.
pub async fn delete(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Post { session, form: f }: Post<DeleteSecretForm>,
) -> Response {
    let result = if f.confirm.trim() == name {
        s.app.delete_secret(&session.caller, &project, &name).await
    } else {
        Err(Error::invalid(
            "confirm",
            "the secret was not deleted: type its name exactly to confirm",
        ))
    };
    let path = format!("/projects/{}/secrets", encode(&project));
    finish(result, &session, &path, "secret-deleted", |p| {
        secret_page(&s, &session, &project, &name, PageQuery::default(), Some(p))
    })
    .await
}

struct KeyRow {
    version: u32,
    state: &'static str,
    sealed: u64,
    master_key_id: String,
    created: String,
    retired: Option<String>,
    retire: bool,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    project: String,
    project_href: String,
    versions: Vec<KeyRow>,
    pending: u64,
    rotate: bool,
}

async fn keys_page(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    let st = match s.app.key_status(&session.caller, project).await {
        Ok(st) => st,
        Err(e) => return fail(&e, Some(session)),
    };
    let rotate = abilities(s, session, project, None)
        .await
        .contains(&Action::KeyRotate);
    let page = KeysPage {
        chrome: Chrome::new(format!("Keys of {project}"), "projects", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        project: project.to_string(),
        project_href: format!("/projects/{}", encode(project)),
        versions: st
            .versions
            .into_iter()
            .rev()
            .map(|v| KeyRow {
                retire: rotate && v.state == "decrypt_only" && v.sealed == 0,
                version: v.version,
                state: v.state,
                sealed: v.sealed,
                master_key_id: v.master_key_id,
                created: when(v.created_at),
                retired: v.retired_at.map(when),
            })
            .collect(),
        pending: st.pending,
        rotate,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /projects/{name}/keys`.
pub async fn keys(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(project): Path<String>,
    q: PageQuery,
) -> Response {
    keys_page(&s, &session, &project, q, None).await
}

/// A button whose action is in the path (only the CSRF token).
#[derive(Deserialize)]
pub struct KeyButton {}

/// `POST /projects/{name}/keys/rotate`.
pub async fn rotate(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Post { session, .. }: Post<KeyButton>,
) -> Response {
    let result = s
        .app
        .rotate_project_key(&session.caller, &project)
        .await
        .map(|_| ());
    let path = format!("/projects/{}/keys", encode(&project));
    finish(result, &session, &path, "key-rotated", |p| {
        keys_page(&s, &session, &project, PageQuery::default(), Some(p))
    })
    .await
}

/// `POST /projects/{name}/keys/{version}/retire`.
pub async fn retire(
    State(s): State<AppState>,
    Path((project, version)): Path<(String, String)>,
    Post { session, .. }: Post<KeyButton>,
) -> Response {
    let result = match version.parse::<u32>() {
        Ok(v) => s
            .app
            .retire_project_key(&session.caller, &project, v)
            .await
            .map(|_| ()),
        Err(_) => Err(Error::invalid(
            "version",
            "choose a key version from the list",
        )),
    };
    let path = format!("/projects/{}/keys", encode(&project));
    finish(result, &session, &path, "key-retired", |p| {
        keys_page(&s, &session, &project, PageQuery::default(), Some(p))
    })
    .await
}

#[derive(Template)]
#[template(path = "master_keys.html")]
struct MasterPage {
    chrome: Chrome,
    provider: &'static str,
    current: String,
    held: Vec<String>,
    data_keys: u64,
    pending: u64,
    rotate: bool,
    problem: Option<Problem>,
}

async fn master_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    let st = match s.app.master_status(&session.caller).await {
        Ok(st) => st,
        Err(e) => return fail(&e, Some(session)),
    };
    let rotate = s
        .app
        .my_platform_actions(&session.caller, &[Action::KeyRotateMaster])
        .await
        .contains(&Action::KeyRotateMaster);
    let page = MasterPage {
        chrome: Chrome::new("Master key", "keys", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        provider: st.provider,
        current: st.current,
        held: st.held,
        data_keys: st.data_keys,
        pending: st.pending,
        rotate,
        problem: problem.clone(),
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /admin/keys`.
pub async fn master(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    q: PageQuery,
) -> Response {
    master_page(&s, &session, q, None).await
}

/// The rotate-master-key form: a checkbox that must be ticked.
#[derive(Deserialize)]
pub struct RotateMasterForm {
    /// A checkbox: present (any value) when ticked.
    confirm: Option<String>,
}

/// `POST /admin/keys/rotate`: only with the confirmation ticked.
pub async fn rotate_master(
    State(s): State<AppState>,
    Post { session, form: f }: Post<RotateMasterForm>,
) -> Response {
    let result = if f.confirm.is_some() {
        s.app.rotate_master_key(&session.caller).await.map(|_| ())
    } else {
        Err(Error::invalid(
            "confirm",
            "the master key was not rotated: tick the confirmation box and send the form again",
        ))
    };
    finish(result, &session, "/admin/keys", "master-rotated", |p| {
        master_page(&s, &session, PageQuery::default(), Some(p))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_name_their_bad_line() {
        let ok = parse_plan("DB=env:PGPASSWORD\n\n  CERT=file:tls/ca.pem  \n");
        assert_eq!(ok.map(|p| p.len()).ok(), Some(2));
        let e = parse_plan("DB=env:PGPASSWORD\nnonsense").err();
        assert!(e.is_some_and(|e| e.message.starts_with("line 2:")));
        assert!(parse_plan(" \n").is_err());
    }

    #[test]
    fn textarea_line_breaks_become_lf() {
        assert_eq!(typed_value("a\r\nb".into()).as_slice(), b"a\nb");
        assert_eq!(typed_value("pw".into()).as_slice(), b"pw");
    }
}
