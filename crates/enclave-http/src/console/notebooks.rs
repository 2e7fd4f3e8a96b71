//! A project's notebook servers in the console.
//!
//! * `/projects/{name}/notebooks`: the project's servers (state, environment, preset, owner,
//!   an "Open" link once ready, start, stop and delete buttons), the new-notebook form (name,
//!   one of the environments that are built, a preset, an injection plan) and, for project
//!   owners, the project's code-audit setting. The page refreshes itself while a server is
//!   starting or stopping.
//! * `/projects/{name}/notebooks/{nb}`: one server's state, reason, environment, limits, plan,
//!   owner and times, with a banner for every recent open by someone other than its owner
//!   (the "visible admin access" rule); it refreshes itself while the server starts or stops.
//!
//! Invariants:
//! * The form's fields are parsed exactly as the REST API parses them ([`NotebookIn::request`]);
//!   bad input comes back above the form with what was typed, and nothing is created.
//! * Forms, links and buttons are shown as [`enclave_app::App::my_project_actions`] decides
//!   (on the project: someone else's server gets its buttons only when the visitor may also
//!   change the project, as project owners may); every post is decided again, on the server
//!   itself, by its use case, and a refusal is a 403 page.
//! * A server opens only through the gateway at [`base_path`]; this page only links there.

use super::guard::{PageQuery, Post, Visitor};
use super::page::{encode, fail, in_form, render, status, when, Chrome, Problem};
use crate::api::notebooks::NotebookIn;
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use enclave_app::EnvStatus;
use enclave_core::authz::Action;
use enclave_core::jobs::{cpus, format_size};
use enclave_core::notebooks::{base_path, Notebook, NotebookState};
use enclave_core::secrets::parse_mapping;
use enclave_core::{Error, ErrorCode};
use serde::Deserialize;

/// Seconds between refreshes of a page showing a server that starts or stops.
const REFRESH_SECS: u32 = 3;

/// Most opens by others the server's page lists.
const MAX_VISITS: u32 = 10;

/// The page listing who outside a project acted in it (the "who accessed my work" page).
const MY_WORK_HREF: &str = "/audit/my-work";

/// The class of a state's badge.
fn badge(state: NotebookState) -> &'static str {
    match state {
        NotebookState::Starting | NotebookState::Stopping => "badge-warn",
        NotebookState::Ready => "badge-ok",
        NotebookState::Failed => "badge-off",
        NotebookState::Stopped => "",
    }
}

/// Whether a server is on its way somewhere (the page refreshes itself).
fn moving(state: NotebookState) -> bool {
    matches!(state, NotebookState::Starting | NotebookState::Stopping)
}

/// The project's path in the console.
fn project_href(project: &str) -> String {
    format!("/projects/{}", encode(project))
}

/// A server's page.
fn server_href(project: &str, name: &str) -> String {
    format!("{}/notebooks/{}", project_href(project), encode(name))
}

/// Adds the headers of a page that may refresh itself: never cached, and `Refresh` while
/// `live` (the meta element in the page does the same).
fn live_headers(mut resp: Response, live: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if live {
        h.insert(header::REFRESH, HeaderValue::from(REFRESH_SECS));
    }
    resp
}

/// What the visitor may do with the project's notebook servers (display only).
struct Abilities {
    create: bool,
    delete: bool,
    open: bool,
    /// Changes the project (its code-audit setting); taken as acting on others' servers too.
    owner: bool,
    username: String,
}

impl Abilities {
    async fn of(s: &AppState, session: &ConsoleSession, project: &str) -> Abilities {
        let can = s
            .app
            .my_project_actions(
                &session.caller,
                project,
                None,
                &[
                    Action::NotebookCreate,
                    Action::NotebookDelete,
                    Action::NotebookOpen,
                    Action::ProjectUpdate,
                ],
            )
            .await;
        Abilities {
            create: can.contains(&Action::NotebookCreate),
            delete: can.contains(&Action::NotebookDelete),
            open: can.contains(&Action::NotebookOpen),
            owner: can.contains(&Action::ProjectUpdate),
            username: session.caller.principal.username.clone(),
        }
    }

    /// Whether the buttons of `nb` are worth showing to the visitor.
    fn reaches(&self, nb: &Notebook) -> bool {
        nb.owner == self.username || self.owner
    }

    fn start(&self, nb: &Notebook) -> bool {
        self.create && self.reaches(nb) && !nb.state.is_active()
    }

    fn stop(&self, nb: &Notebook) -> bool {
        self.create
            && self.reaches(nb)
            && matches!(nb.state, NotebookState::Starting | NotebookState::Ready)
    }

    fn delete(&self, nb: &Notebook) -> bool {
        self.delete && self.reaches(nb)
    }

    /// Where to open `nb`, when it is ready and the visitor may open servers here.
    fn open(&self, nb: &Notebook) -> Option<String> {
        (self.open && nb.state == NotebookState::Ready)
            .then(|| base_path(&nb.project, &nb.name) + "lab")
    }
}

/// One server in the list.
struct NotebookRow {
    name: String,
    href: String,
    state: &'static str,
    badge: &'static str,
    reason: Option<String>,
    environment: String,
    preset: String,
    size: String,
    owner: String,
    started: Option<String>,
    open: Option<String>,
    start: bool,
    stop: bool,
    delete: bool,
}

/// A preset offered by the form.
struct PresetChoice {
    name: String,
    label: String,
    selected: bool,
}

/// A built environment offered by the form, with its presets.
struct EnvChoice {
    name: String,
    python: String,
    selected: bool,
    presets: Vec<PresetChoice>,
}

/// What the new-notebook form keeps when shown again.
#[derive(Default)]
struct NotebookDraft {
    name: String,
    environment: String,
    preset: String,
    secrets: String,
}

#[derive(Template)]
#[template(path = "notebooks.html")]
struct NotebooksPage {
    chrome: Chrome,
    project: String,
    project_href: String,
    notebooks: Vec<NotebookRow>,
    live: bool,
    refresh: u32,
    create: bool,
    /// The built environments, or why they cannot be listed.
    environments: Result<Vec<EnvChoice>, String>,
    /// The project's code-audit setting, when a server shows it.
    audit_code: Option<bool>,
    /// The visitor may change the code-audit setting.
    audit_toggle: bool,
    draft: NotebookDraft,
    problem: Option<Problem>,
}

/// The environments a new server may run: those that are built, with their presets, the
/// draft's choices selected (otherwise the first environment).
async fn choices(
    s: &AppState,
    session: &ConsoleSession,
    draft: &NotebookDraft,
) -> Result<Vec<EnvChoice>, String> {
    let all = s
        .app
        .list_environments(&session.caller)
        .await
        .map_err(|e| e.message)?;
    let mut out: Vec<EnvChoice> = all
        .into_iter()
        .filter(|v| matches!(v.status, EnvStatus::Ready { .. }))
        .map(|v| {
            let env = v.template.name;
            let chosen = env == draft.environment;
            EnvChoice {
                presets: v
                    .template
                    .presets
                    .into_iter()
                    .map(|p| PresetChoice {
                        selected: chosen && p.name == draft.preset,
                        label: format!(
                            "{} — {} CPU, {}",
                            p.name,
                            cpus(p.cpu_millis),
                            format_size(p.memory_bytes)
                        ),
                        name: p.name,
                    })
                    .collect(),
                python: v.template.python,
                selected: chosen,
                name: env,
            }
        })
        .collect();
    if !out.iter().any(|e| e.selected) {
        if let Some(first) = out.first_mut() {
            first.selected = true;
        }
    }
    Ok(out)
}

async fn notebooks_page(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    q: PageQuery,
    draft: NotebookDraft,
    problem: Option<Problem>,
) -> Response {
    let list = match s.app.list_notebooks(&session.caller, project).await {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let can = Abilities::of(s, session, project).await;
    let environments = if can.create {
        choices(s, session, &draft).await
    } else {
        Ok(Vec::new())
    };
    let live = list.iter().any(|n| moving(n.state));
    let page = NotebooksPage {
        chrome: Chrome::new(format!("Notebooks of {project}"), "projects", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        project: project.to_string(),
        project_href: project_href(project),
        audit_code: list.first().map(|n| n.audit_code),
        notebooks: list
            .into_iter()
            .map(|n| NotebookRow {
                href: server_href(project, &n.name),
                state: n.state.as_str(),
                badge: badge(n.state),
                size: format!(
                    "{} CPU, {}",
                    cpus(n.cpu_millis),
                    format_size(n.memory_bytes)
                ),
                started: n.started_at.map(when),
                open: can.open(&n),
                start: can.start(&n),
                stop: can.stop(&n),
                delete: can.delete(&n),
                reason: n.reason,
                environment: n.environment,
                preset: n.preset,
                owner: n.owner,
                name: n.name,
            })
            .collect(),
        live,
        refresh: REFRESH_SECS,
        create: can.create,
        environments,
        audit_toggle: can.owner,
        draft,
        problem: problem.clone(),
    };
    live_headers(
        render(status(problem.as_ref()), &page),
        live && problem.is_none(),
    )
}

/// `GET /projects/{name}/notebooks`.
pub async fn list(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(project): Path<String>,
    q: PageQuery,
) -> Response {
    notebooks_page(&s, &session, &project, q, NotebookDraft::default(), None).await
}

/// The new-notebook form. An empty environment or preset takes the server's default.
#[derive(Deserialize)]
pub struct NotebookForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    preset: String,
    #[serde(default)]
    secrets: String,
}

/// An injection plan typed one mapping per line: blank lines are skipped, an error names its
/// line.
fn plan_lines(text: &str) -> Result<Vec<String>, Error> {
    let mut plan = Vec::new();
    for (n, spec) in text.lines().enumerate() {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        if let Err(e) = parse_mapping(spec) {
            return Err(
                Error::invalid("secrets", format!("line {}: {}", n + 1, e.message))
                    .with("line", n + 1)
                    .with("column", 1),
            );
        }
        plan.push(spec.to_string());
    }
    Ok(plan)
}

/// The API's request for the form: the name trimmed, empty choices left to the server, one
/// mapping per line.
fn notebook_in(f: &NotebookForm) -> Result<NotebookIn, Error> {
    let given = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    Ok(NotebookIn {
        name: f.name.trim().to_string(),
        environment: given(&f.environment),
        preset: given(&f.preset),
        secrets: plan_lines(&f.secrets)?,
    })
}

/// The resource a "not found" error names.
fn missing(e: &Error) -> Option<&str> {
    (e.code == ErrorCode::NotFound)
        .then(|| e.details.get("resource").and_then(|v| v.as_str()))
        .flatten()
}

/// `POST /projects/{name}/notebooks`: creates and starts the server and shows its page.
pub async fn create(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Post { session, form: f }: Post<NotebookForm>,
) -> Response {
    let result = match notebook_in(&f).and_then(|n| n.request()) {
        Ok(req) => s.app.create_notebook(&session.caller, &project, &req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(nb) => Redirect::to(&server_href(&project, &nb.name)).into_response(),
        // Bad input, a name taken, a secret or environment that does not exist, an
        // environment not built, or no sandbox runtime here: said above the form, which keeps
        // what was typed.
        Err(e)
            if in_form(&e)
                || e.code == ErrorCode::Unavailable
                || matches!(missing(&e), Some("secret" | "environment")) =>
        {
            let about = match missing(&e) {
                Some("secret") => Some("secrets"),
                Some("environment") => Some("environment"),
                _ => None,
            };
            let mut p = Problem::of(e);
            if let Some(field) = about {
                p.field = Some(field.into());
            }
            // The plan's errors (a bad mapping) are the secrets field's.
            if p.field.as_deref() == Some("map") {
                p.field = Some("secrets".into());
            }
            let draft = NotebookDraft {
                name: f.name,
                environment: f.environment,
                preset: f.preset,
                secrets: f.secrets,
            };
            notebooks_page(&s, &session, &project, PageQuery::default(), draft, Some(p)).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// A recent open of the server by someone other than its owner.
struct Visit {
    actor: String,
    at: String,
    auth: String,
}

#[derive(Template)]
#[template(path = "notebook.html")]
struct NotebookPage {
    chrome: Chrome,
    project: String,
    project_href: String,
    name: String,
    href: String,
    state: &'static str,
    badge: &'static str,
    live: bool,
    refresh: u32,
    reason: Option<String>,
    environment: String,
    preset: String,
    cpus: String,
    memory: String,
    secrets: Vec<String>,
    owner: String,
    yours: bool,
    created: String,
    started: Option<String>,
    stopped: Option<String>,
    audit_code: bool,
    open: Option<String>,
    start: bool,
    stop: bool,
    delete: bool,
    /// Recent opens by others, or why they cannot be read.
    visits: Result<Vec<Visit>, String>,
    my_work_href: &'static str,
}

async fn notebook_page(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    name: &str,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    let nb = match s.app.notebook(&session.caller, project, name).await {
        Ok(n) => n,
        Err(e) => return fail(&e, Some(session)),
    };
    let visits = s
        .app
        .notebook_visits(&session.caller, project, &nb.name, MAX_VISITS)
        .await
        .map(|v| {
            v.into_iter()
                .map(|e| Visit {
                    at: when(e.record.at),
                    actor: e.record.actor,
                    auth: e.record.auth,
                })
                .collect()
        })
        .map_err(|e| e.message);
    let can = Abilities::of(s, session, project).await;
    let live = moving(nb.state);
    let page = NotebookPage {
        chrome: Chrome::new(
            format!("Notebook {} of {project}", nb.name),
            "projects",
            Some(session),
        )
        .notice(q.notice)
        .problem(problem.as_ref()),
        project: project.to_string(),
        project_href: project_href(project),
        href: server_href(project, &nb.name),
        state: nb.state.as_str(),
        badge: badge(nb.state),
        live,
        refresh: REFRESH_SECS,
        open: can.open(&nb),
        start: can.start(&nb),
        stop: can.stop(&nb),
        delete: can.delete(&nb),
        yours: nb.owner == can.username,
        cpus: cpus(nb.cpu_millis),
        memory: format_size(nb.memory_bytes),
        created: when(nb.created_at),
        started: nb.started_at.map(when),
        stopped: nb.stopped_at.map(when),
        audit_code: nb.audit_code,
        reason: nb.reason,
        environment: nb.environment,
        preset: nb.preset,
        secrets: nb.secrets,
        owner: nb.owner,
        name: nb.name,
        visits,
        my_work_href: MY_WORK_HREF,
    };
    live_headers(
        render(status(problem.as_ref()), &page),
        live && problem.is_none(),
    )
}

/// `GET /projects/{name}/notebooks/{nb}`.
pub async fn show(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path((project, name)): Path<(String, String)>,
    q: PageQuery,
) -> Response {
    notebook_page(&s, &session, &project, &name, q, None).await
}

/// A start, stop or delete button: the CSRF token and the page it sits on (`server` for the
/// server's own page, anything else for the list).
#[derive(Deserialize)]
pub struct ServerButton {
    #[serde(default)]
    back: String,
}

impl ServerButton {
    fn on_server_page(&self) -> bool {
        self.back == "server"
    }
}

/// Ends a button's action: to `ok` on success; a conflict (the server is not in a state for
/// it) or an outage above the page the button sat on; anything else as an error page.
async fn after(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    name: &str,
    on_server_page: bool,
    result: Result<String, Error>,
) -> Response {
    match result {
        Ok(ok) => Redirect::to(&ok).into_response(),
        Err(e) if in_form(&e) || e.code == ErrorCode::Unavailable => {
            let p = Some(Problem::of(e));
            if on_server_page {
                notebook_page(s, session, project, name, PageQuery::default(), p).await
            } else {
                notebooks_page(
                    s,
                    session,
                    project,
                    PageQuery::default(),
                    NotebookDraft::default(),
                    p,
                )
                .await
            }
        }
        Err(e) => fail(&e, Some(session)),
    }
}

/// Where a button's page is.
fn back_href(project: &str, name: &str, on_server_page: bool) -> String {
    if on_server_page {
        server_href(project, name)
    } else {
        format!("{}/notebooks", project_href(project))
    }
}

/// `POST /projects/{name}/notebooks/{nb}/start`: starts a stopped or failed server again.
pub async fn start(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Post { session, form: b }: Post<ServerButton>,
) -> Response {
    let back = b.on_server_page();
    let result = s
        .app
        .start_notebook(&session.caller, &project, &name)
        .await
        .map(|_| back_href(&project, &name, back));
    after(&s, &session, &project, &name, back, result).await
}

/// `POST /projects/{name}/notebooks/{nb}/stop`: stops the server; its files stay.
pub async fn stop(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Post { session, form: b }: Post<ServerButton>,
) -> Response {
    let back = b.on_server_page();
    let result = s
        .app
        .stop_notebook(&session.caller, &project, &name)
        .await
        .map(|_| back_href(&project, &name, back));
    after(&s, &session, &project, &name, back, result).await
}

/// `POST /projects/{name}/notebooks/{nb}/delete`: deletes the server (stopping it first) and
/// goes back to the list; its files stay on the project volume.
pub async fn delete(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Post { session, form: b }: Post<ServerButton>,
) -> Response {
    let back = b.on_server_page();
    let result = s
        .app
        .delete_notebook(&session.caller, &project, &name)
        .await
        .map(|()| back_href(&project, &name, false));
    after(&s, &session, &project, &name, back, result).await
}

/// The code-audit buttons: `on` or `off`.
#[derive(Deserialize)]
pub struct CodeAuditForm {
    #[serde(default)]
    audit_code: String,
}

/// The setting a code-audit button asks for.
fn audit_choice(v: &str) -> Result<bool, Error> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(Error::invalid(
            "audit_code",
            "the code-audit setting is on or off",
        )),
    }
}

/// `POST /projects/{name}/code-audit`: turns the recording of code executed in the project's
/// notebooks on or off (servers started afterwards follow it); back to the notebooks page.
pub async fn code_audit(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Post { session, form: f }: Post<CodeAuditForm>,
) -> Response {
    let result = match audit_choice(&f.audit_code) {
        Ok(on) => s.app.set_code_audit(&session.caller, &project, on).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to(&format!("{}/notebooks", project_href(&project))).into_response(),
        Err(e) if in_form(&e) => {
            notebooks_page(
                &s,
                &session,
                &project,
                PageQuery::default(),
                NotebookDraft::default(),
                Some(Problem::of(e)),
            )
            .await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str, environment: &str, preset: &str, secrets: &str) -> NotebookForm {
        NotebookForm {
            name: name.into(),
            environment: environment.into(),
            preset: preset.into(),
            secrets: secrets.into(),
        }
    }

    fn field(e: Option<Error>) -> Option<String> {
        e.and_then(|e| {
            e.details
                .get("field")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
    }

    #[test]
    fn the_form_becomes_the_apis_request() {
        let n = notebook_in(&form(
            " analysis ",
            "datascience",
            " ",
            "DB=env:PGPASSWORD\r\n\r\n  CA=file:/run/secrets/ca.pem ",
        ));
        let n = n.ok().unwrap_or_else(|| unreachable!());
        assert_eq!(n.name, "analysis");
        assert_eq!(n.environment.as_deref(), Some("datascience"));
        assert_eq!(n.preset, None);
        assert_eq!(
            n.secrets,
            ["DB=env:PGPASSWORD", "CA=file:/run/secrets/ca.pem"]
        );
        let r = n.request().ok().unwrap_or_else(|| unreachable!());
        assert_eq!(r.name, "analysis");
        assert_eq!(r.secrets.len(), 2);
        let empty = notebook_in(&form("nb", "", "", "")).ok();
        assert!(empty.is_some_and(|n| n.environment.is_none() && n.secrets.is_empty()));
    }

    #[test]
    fn bad_input_names_its_field_and_line() {
        let bad = |f: NotebookForm| notebook_in(&f).and_then(|n| n.request()).err();
        assert_eq!(
            field(bad(form("Bad Name", "", "", ""))).as_deref(),
            Some("name")
        );
        assert_eq!(field(bad(form("", "", "", ""))).as_deref(), Some("name"));
        assert_eq!(
            field(bad(form("nb", "x/y", "", ""))).as_deref(),
            Some("environment")
        );
        assert_eq!(
            field(bad(form("nb", "", "A B", ""))).as_deref(),
            Some("preset")
        );
        let e = bad(form("nb", "", "", "DB=env:X\nnonsense"));
        assert!(e.as_ref().is_some_and(|e| e.message.starts_with("line 2:")));
        assert_eq!(field(e).as_deref(), Some("secrets"));
    }

    #[test]
    fn code_audit_is_on_or_off() {
        assert_eq!(audit_choice("on").ok(), Some(true));
        assert_eq!(audit_choice("off").ok(), Some(false));
        assert_eq!(
            field(audit_choice("maybe").err()).as_deref(),
            Some("audit_code")
        );
    }

    fn page(live: bool, visits: Vec<Visit>) -> NotebookPage {
        NotebookPage {
            chrome: Chrome::new("t", "projects", None),
            project: "fraud".into(),
            project_href: "/projects/fraud".into(),
            name: "nb1".into(),
            href: "/projects/fraud/notebooks/nb1".into(),
            state: "starting",
            badge: "badge-warn",
            live,
            refresh: REFRESH_SECS,
            reason: None,
            environment: "datascience".into(),
            preset: "small".into(),
            cpus: "1".into(),
            memory: "2GiB".into(),
            secrets: vec![],
            owner: "alice".into(),
            yours: true,
            created: "2026-01-01 00:00 UTC".into(),
            started: None,
            stopped: None,
            audit_code: true,
            open: None,
            start: false,
            stop: true,
            delete: true,
            visits: Ok(visits),
            my_work_href: MY_WORK_HREF,
        }
    }

    #[test]
    fn opens_by_others_are_a_banner() {
        let visit = Visit {
            actor: "<b>root</b>".into(),
            at: "2026-01-02 03:04 UTC".into(),
            auth: "session".into(),
        };
        let html = page(false, vec![visit]).render().unwrap_or_default();
        assert!(html.contains("id=\"notebook-visits\""), "{html}");
        assert!(html.contains("opened this notebook server on 2026-01-02 03:04 UTC (session)"));
        assert!(html.contains("href=\"/audit/my-work\""));
        assert!(!html.contains("<b>root</b>"), "the actor is escaped");
        assert!(!html.contains("http-equiv=\"refresh\""));
        let quiet = page(true, vec![]).render().unwrap_or_default();
        assert!(!quiet.contains("notebook-visits"));
        assert!(
            quiet.contains("http-equiv=\"refresh\""),
            "a starting server refreshes"
        );
        assert!(quiet.contains("/projects/fraud/notebooks/nb1/stop"));
    }

    #[test]
    fn buttons_follow_state_and_owner() {
        let nb = |state, owner: &str| Notebook {
            project: "fraud".into(),
            name: "nb1".into(),
            state,
            reason: None,
            environment: "datascience".into(),
            preset: "small".into(),
            cpu_millis: 1000,
            memory_bytes: 2 << 30,
            secrets: vec![],
            workload_id: "wl_1".into(),
            owner: owner.into(),
            created_at: enclave_core::Timestamp(0),
            started_at: None,
            stopped_at: None,
            audit_code: true,
        };
        let member = Abilities {
            create: true,
            delete: true,
            open: true,
            owner: false,
            username: "alice".into(),
        };
        let ready = nb(NotebookState::Ready, "alice");
        assert!(member.stop(&ready) && !member.start(&ready) && member.delete(&ready));
        assert_eq!(member.open(&ready).as_deref(), Some("/p/fraud/nb/nb1/lab"));
        let stopped = nb(NotebookState::Stopped, "alice");
        assert!(member.start(&stopped) && !member.stop(&stopped));
        assert_eq!(member.open(&stopped), None);
        let bobs = nb(NotebookState::Ready, "bob");
        assert!(!member.stop(&bobs) && !member.delete(&bobs));
        let owner = Abilities {
            owner: true,
            username: "carol".into(),
            ..member
        };
        assert!(owner.stop(&bobs) && owner.delete(&bobs));
        let viewer = Abilities {
            create: false,
            delete: false,
            open: false,
            owner: false,
            username: "bob".into(),
        };
        assert!(!viewer.stop(&bobs) && !viewer.delete(&bobs) && viewer.open(&bobs).is_none());
        assert_eq!(badge(NotebookState::Starting), "badge-warn");
        assert!(moving(NotebookState::Stopping) && !moving(NotebookState::Ready));
    }
}
