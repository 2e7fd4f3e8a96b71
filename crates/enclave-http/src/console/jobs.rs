//! A project's batch jobs in the console.
//!
//! * `/projects/{name}/jobs`: the project's jobs, newest first, and the run-a-job form (one
//!   command line run as `/bin/sh -c "<line>"`, an injection plan, CPUs, memory, time limit).
//! * `/projects/{name}/jobs/{id}`: the job's state, limits, plan and times and the last
//!   [`MAX_LOG_CHUNK`] bytes of its log; the page refreshes itself while the job is queued or
//!   running, and offers the cancel button then.
//!
//! Invariants:
//! * The form's fields are parsed exactly as the REST API parses them ([`JobIn::request`]);
//!   bad input comes back above the form with what was typed, and nothing is started.
//! * The form and the cancel button are shown as [`enclave_app::App::my_project_actions`]
//!   decides; every submission and cancel is decided again (and a refusal audited) by its use
//!   case.
//! * Log text reaches the page only through askama's escaping.

use super::guard::{PageQuery, Post, Visitor};
use super::page::{encode, fail, in_form, render, status, when, Chrome, Problem};
use crate::api::jobs::JobIn;
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use enclave_core::authz::Action;
use enclave_core::jobs::{cpus, format_size, Job, JobState, MAX_LOG_CHUNK};
use enclave_core::secrets::parse_mapping;
use enclave_core::{Error, ErrorCode};
use serde::Deserialize;
use std::time::Duration;

/// Seconds between refreshes of the page of a queued or running job.
const REFRESH_SECS: u32 = 2;

/// A time limit as the form writes it (`"1h"`, `"90s"`).
fn limit(secs: u64) -> String {
    enclave_config::format_duration(Duration::from_secs(secs))
}

/// The command as people typed it: the line of a `/bin/sh -c` job, otherwise the arguments.
fn command_line(command: &[String]) -> String {
    match command {
        [sh, c, line] if sh == "/bin/sh" && c == "-c" => line.clone(),
        args => args
            .iter()
            .map(|a| {
                if !a.is_empty() && !a.contains(|c: char| c.is_whitespace() || c == '\'') {
                    a.clone()
                } else {
                    format!("'{}'", a.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The class of a state's badge.
fn badge(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Running => "badge-warn",
        JobState::Succeeded => "badge-ok",
        JobState::Failed | JobState::TimedOut => "badge-off",
        JobState::Cancelled => "",
    }
}

/// One job in the list.
struct JobRow {
    id: String,
    href: String,
    state: &'static str,
    badge: &'static str,
    command: String,
    created_by: String,
    created: String,
    ended: Option<String>,
    exit_code: Option<i32>,
}

/// What the run-a-job form keeps when shown again.
#[derive(Default)]
struct JobDraft {
    command: String,
    secrets: String,
    cpus: String,
    memory: String,
    timeout: String,
}

/// The server's defaults and maxima, as the form shows them.
struct CapsView {
    cpus: String,
    max_cpus: String,
    memory: String,
    max_memory: String,
    timeout: String,
    max_timeout: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    chrome: Chrome,
    project: String,
    project_href: String,
    jobs: Vec<JobRow>,
    run: bool,
    caps: CapsView,
    draft: JobDraft,
    problem: Option<Problem>,
}

/// What the visitor may do with the project's jobs (display only).
async fn abilities(s: &AppState, session: &ConsoleSession, project: &str) -> Vec<Action> {
    s.app
        .my_project_actions(
            &session.caller,
            project,
            None,
            &[Action::JobRun, Action::JobCancel],
        )
        .await
}

async fn jobs_page(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    q: PageQuery,
    draft: JobDraft,
    problem: Option<Problem>,
) -> Response {
    let list = match s.app.list_jobs(&session.caller, project).await {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let can = abilities(s, session, project).await;
    let base = format!("/projects/{}", encode(project));
    let caps = s.app.job_caps();
    let page = JobsPage {
        chrome: Chrome::new(format!("Jobs of {project}"), "projects", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        project: project.to_string(),
        jobs: list
            .into_iter()
            .map(|j| JobRow {
                href: format!("{base}/jobs/{}", encode(&j.id)),
                state: j.state.as_str(),
                badge: badge(j.state),
                command: command_line(&j.command),
                created: when(j.created_at),
                ended: j.ended_at.map(when),
                exit_code: j.exit_code,
                created_by: j.created_by,
                id: j.id,
            })
            .collect(),
        project_href: base,
        run: can.contains(&Action::JobRun),
        caps: CapsView {
            cpus: cpus(caps.default.cpu_millis),
            max_cpus: cpus(caps.max.cpu_millis),
            memory: format_size(caps.default.memory_bytes),
            max_memory: format_size(caps.max.memory_bytes),
            timeout: limit(caps.default.timeout_secs),
            max_timeout: limit(caps.max.timeout_secs),
        },
        draft,
        problem: problem.clone(),
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /projects/{name}/jobs`.
pub async fn list(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(project): Path<String>,
    q: PageQuery,
) -> Response {
    jobs_page(&s, &session, &project, q, JobDraft::default(), None).await
}

/// The run-a-job form. Empty limits take the server's defaults.
#[derive(Deserialize)]
pub struct JobForm {
    #[serde(default)]
    command: String,
    #[serde(default)]
    secrets: String,
    #[serde(default)]
    cpus: String,
    #[serde(default)]
    memory: String,
    #[serde(default)]
    timeout: String,
}

/// The API's request for the form: the line run by `/bin/sh -c`, one mapping per line (an
/// error names its line), empty limits left to the server.
fn job_in(f: &JobForm) -> Result<JobIn, Error> {
    let line = f.command.trim();
    if line.is_empty() {
        return Err(Error::invalid(
            "command",
            "the command is empty; write the command line to run, e.g. python train.py",
        ));
    }
    if line.contains(['\r', '\n']) {
        return Err(Error::invalid(
            "command",
            "the command is one line; put longer scripts in a file on the project volume and run that",
        ));
    }
    let mut secrets = Vec::new();
    for (n, spec) in f.secrets.lines().enumerate() {
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
        secrets.push(spec.to_string());
    }
    let given = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    Ok(JobIn {
        command: vec!["/bin/sh".into(), "-c".into(), line.to_string()],
        secrets,
        cpus: given(&f.cpus),
        memory: given(&f.memory),
        timeout: given(&f.timeout),
    })
}

/// `POST /projects/{name}/jobs`: submits the job and shows its page.
pub async fn submit(
    State(s): State<AppState>,
    Path(project): Path<String>,
    Post { session, form: f }: Post<JobForm>,
) -> Response {
    let result = match job_in(&f).and_then(|j| j.request()) {
        Ok(req) => s.app.submit_job(&session.caller, &project, &req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(job) => Redirect::to(&format!(
            "/projects/{}/jobs/{}",
            encode(&project),
            encode(&job.id)
        ))
        .into_response(),
        // Bad input, a secret of the plan that does not exist, or no sandbox runtime here:
        // said above the form, which keeps what was typed.
        Err(e)
            if in_form(&e)
                || e.code == ErrorCode::Unavailable
                || e.details.get("resource").and_then(|v| v.as_str()) == Some("secret") =>
        {
            let secret = e.details.get("resource").and_then(|v| v.as_str()) == Some("secret");
            let mut p = Problem::of(e);
            // The plan's errors (a bad mapping, a secret that does not exist) are the
            // secrets field's.
            if p.field.as_deref() == Some("map") || secret {
                p.field = Some("secrets".into());
            }
            let draft = JobDraft {
                command: f.command,
                secrets: f.secrets,
                cpus: f.cpus,
                memory: f.memory,
                timeout: f.timeout,
            };
            jobs_page(&s, &session, &project, PageQuery::default(), draft, Some(p)).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// The end of a job's log: at most [`MAX_LOG_CHUNK`] bytes, and whether earlier output was
/// left out.
struct Tail {
    text: String,
    cut: bool,
}

/// Reads the last [`MAX_LOG_CHUNK`] bytes of the log.
async fn log_tail(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    id: &str,
) -> Result<Tail, Error> {
    let chunk = MAX_LOG_CHUNK as u64;
    let size = s
        .app
        .job_log(&session.caller, project, id, 0, 1)
        .await?
        .size;
    let start = size.saturating_sub(chunk);
    let data = s
        .app
        .job_log(&session.caller, project, id, start, MAX_LOG_CHUNK)
        .await?
        .data;
    let mut from = 0;
    // Start at a character, not in the middle of one.
    while from < 3 && data.get(from).is_some_and(|b| b & 0xC0 == 0x80) {
        from += 1;
    }
    Ok(Tail {
        text: String::from_utf8_lossy(&data[from..]).into_owned(),
        cut: start > 0,
    })
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    project: String,
    project_href: String,
    id: String,
    href: String,
    state: &'static str,
    badge: &'static str,
    live: bool,
    refresh: u32,
    command: String,
    shell: bool,
    reason: Option<String>,
    exit_code: Option<i32>,
    cancel_requested: bool,
    cpus: String,
    memory: String,
    timeout: String,
    secrets: Vec<String>,
    created_by: String,
    created: String,
    started: Option<String>,
    ended: Option<String>,
    log: Result<Tail, String>,
    log_max: String,
    cancel: bool,
}

async fn job_page(
    s: &AppState,
    session: &ConsoleSession,
    project: &str,
    id: &str,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    let job: Job = match s.app.job(&session.caller, project, id).await {
        Ok(j) => j,
        Err(e) => return fail(&e, Some(session)),
    };
    let log = log_tail(s, session, project, &job.id)
        .await
        .map_err(|e| e.message);
    let live = !job.state.is_final();
    let cancel = live
        && abilities(s, session, project)
            .await
            .contains(&Action::JobCancel);
    let project_href = format!("/projects/{}", encode(project));
    let shell = matches!(job.command.as_slice(), [sh, c, _] if sh == "/bin/sh" && c == "-c");
    let command = command_line(&job.command);
    let page = JobPage {
        chrome: Chrome::new(
            format!("Job {} of {project}", job.id),
            "projects",
            Some(session),
        )
        .notice(q.notice)
        .problem(problem.as_ref()),
        project: project.to_string(),
        href: format!("{project_href}/jobs/{}", encode(&job.id)),
        project_href,
        state: job.state.as_str(),
        badge: badge(job.state),
        live,
        refresh: REFRESH_SECS,
        command,
        shell,
        reason: job.reason,
        exit_code: job.exit_code,
        cancel_requested: job.cancel_requested,
        cpus: cpus(job.limits.cpu_millis),
        memory: format_size(job.limits.memory_bytes),
        timeout: limit(job.limits.timeout_secs),
        secrets: job.secrets,
        created_by: job.created_by,
        created: when(job.created_at),
        started: job.started_at.map(when),
        ended: job.ended_at.map(when),
        log,
        log_max: format_size(MAX_LOG_CHUNK as u64),
        cancel,
        id: job.id,
    };
    let mut resp = render(status(problem.as_ref()), &page);
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if live && problem.is_none() {
        // The meta element in the page does the same; the header also works where a page's
        // meta refresh is ignored outside `<head>`.
        h.insert(header::REFRESH, HeaderValue::from(REFRESH_SECS));
    }
    resp
}

/// `GET /projects/{name}/jobs/{id}`.
pub async fn show(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path((project, id)): Path<(String, String)>,
    q: PageQuery,
) -> Response {
    job_page(&s, &session, &project, &id, q, None).await
}

/// The cancel button (only the CSRF token).
#[derive(Deserialize)]
pub struct CancelButton {}

/// `POST /projects/{name}/jobs/{id}/cancel`: back to the job's page; a job that has already
/// ended is said above it.
pub async fn cancel(
    State(s): State<AppState>,
    Path((project, id)): Path<(String, String)>,
    Post { session, .. }: Post<CancelButton>,
) -> Response {
    match s.app.cancel_job(&session.caller, &project, &id).await {
        Ok(job) => Redirect::to(&format!(
            "/projects/{}/jobs/{}",
            encode(&project),
            encode(&job.id)
        ))
        .into_response(),
        Err(e) if in_form(&e) => {
            job_page(
                &s,
                &session,
                &project,
                &id,
                PageQuery::default(),
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

    fn form(command: &str, secrets: &str, memory: &str) -> JobForm {
        JobForm {
            command: command.into(),
            secrets: secrets.into(),
            cpus: String::new(),
            memory: memory.into(),
            timeout: " ".into(),
        }
    }

    #[test]
    fn the_form_becomes_the_apis_request() {
        let j = job_in(&form(
            " echo hi ",
            "DB=env:PGPASSWORD\r\n\r\nCA=file:ca.pem",
            "",
        ));
        let j = j.ok().unwrap_or_else(|| unreachable!());
        assert_eq!(j.command, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(j.secrets, ["DB=env:PGPASSWORD", "CA=file:ca.pem"]);
        assert!(j.cpus.is_none() && j.memory.is_none() && j.timeout.is_none());
        let r = j.request().ok().unwrap_or_else(|| unreachable!());
        assert_eq!(r.secrets.len(), 2);
    }

    #[test]
    fn bad_input_names_its_field() {
        let field = |f: JobForm| {
            job_in(&f).and_then(|j| j.request()).err().and_then(|e| {
                e.details
                    .get("field")
                    .and_then(|v| v.as_str())
                    .map(String::from)
            })
        };
        assert_eq!(field(form("  ", "", "")).as_deref(), Some("command"));
        assert_eq!(field(form("a\nb", "", "")).as_deref(), Some("command"));
        assert_eq!(
            field(form("true", "x\nnonsense", "")).as_deref(),
            Some("secrets")
        );
        assert_eq!(field(form("true", "", "lots")).as_deref(), Some("memory"));
    }

    #[test]
    fn commands_read_as_typed() {
        let sh: Vec<String> = ["/bin/sh", "-c", "echo 'a b'"].map(String::from).into();
        assert_eq!(command_line(&sh), "echo 'a b'");
        let args: Vec<String> = ["python", "my file.py", ""].map(String::from).into();
        assert_eq!(command_line(&args), "python 'my file.py' ''");
    }
}
