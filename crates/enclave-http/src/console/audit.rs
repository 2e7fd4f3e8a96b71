//! The audit pages: search with filters and pages, "who accessed my work", and the
//! installation's public key and latest signed checkpoint with verification and export.
//!
//! What a visitor sees is decided by the use cases, exactly as through the API: security
//! auditors and platform admins every record, project owners their project's, everyone the
//! records of their own actions. The filter is read by the same code as the API's
//! (`api::audit::filter_of`), so both accept and refuse the same input.

use super::guard::{Button, Post, Visitor};
use super::page::{encode, fail, in_form, malformed, render, status, when, Chrome, Problem};
use crate::api::audit::{entry_out, filter_of};
use crate::api::dto::{AuditKeyOut, AuditQuery, CheckpointOut, VerifyOut};
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use enclave_app::{AuditKey, AuditScope};
use enclave_core::Error;
use enclave_store::AuditEntry;
use serde::Deserialize;

/// Records on one page of the console's search.
const PAGE_SIZE: u32 = 50;

/// Records the "who accessed my work" page shows.
const MY_WORK_LIMIT: u32 = 200;

/// The search form, read from the query (`GET /audit?actor=…`).
#[derive(Deserialize, Default, Clone)]
pub struct AuditForm {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// Cursor of the page to show.
    #[serde(default)]
    after: String,
}

impl AuditForm {
    /// The filter fields as a query string (without the cursor), to carry to the next page.
    fn query_string(&self) -> String {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("resource", &self.resource),
            ("project", &self.project),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }

    fn as_query(&self) -> Result<AuditQuery, Error> {
        let after = match self.after.trim() {
            "" => None,
            a => Some(a.parse::<u64>().map_err(|_| {
                Error::invalid("after", "the page link is damaged; start the search again")
            })?),
        };
        let opt = |s: &str| Some(s.to_string());
        Ok(AuditQuery {
            actor: opt(&self.actor),
            action: opt(&self.action),
            resource: opt(&self.resource),
            project: opt(&self.project),
            outcome: opt(&self.outcome),
            since: opt(&self.since),
            until: opt(&self.until),
            order: None,
            after,
            limit: None,
        })
    }
}

/// One record as the tables show it.
pub struct RecordRow {
    seq: u64,
    at: String,
    actor: String,
    auth: String,
    source: String,
    action: String,
    resource: String,
    project: String,
    outcome: &'static str,
    detail: String,
}

impl RecordRow {
    fn of(e: AuditEntry) -> RecordRow {
        let at = when(e.record.at);
        let r = entry_out(e);
        RecordRow {
            seq: r.seq,
            at,
            actor: r.actor,
            auth: r.auth,
            source: r.source,
            action: r.action,
            resource: r.resource,
            project: r.project.unwrap_or_default(),
            outcome: match r.outcome.as_str() {
                "success" => "success",
                "denied" => "denied",
                _ => "failure",
            },
            detail: match &r.detail {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                d => d.to_string(),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    form: AuditForm,
    problem: Option<Problem>,
    /// What the results cover, in words; `None` when nothing was searched.
    scope: Option<String>,
    rows: Vec<RecordRow>,
    next: Option<String>,
    /// The first page of the same search, when showing a later one.
    first: Option<String>,
    outcomes: [&'static str; 3],
}

fn scope_text(scope: AuditScope, project: &str) -> String {
    match scope {
        AuditScope::All => "every record of the installation".into(),
        AuditScope::Project => format!("the records of project {project}"),
        AuditScope::Own => "the records of your own actions (security auditors and platform admins see every record; project owners see their project's: filter by project)".into(),
    }
}

/// `GET /audit`: the search form and one page of results.
pub async fn search(State(s): State<AppState>, Visitor(session): Visitor, uri: Uri) -> Response {
    let Ok(Query(form)) = Query::<AuditForm>::try_from_uri(&uri) else {
        return malformed(Some(&session));
    };
    let searched = match form.as_query().and_then(filter_of) {
        Ok((filter, order)) => {
            let after = form.as_query().ok().and_then(|q| q.after);
            s.app
                .search_audit(&session.caller, filter, order, after, PAGE_SIZE)
                .await
        }
        Err(e) => Err(e),
    };
    let base = format!("/audit?{}", form.query_string());
    let mut page = AuditPage {
        chrome: Chrome::new("Audit trail", "audit", Some(&session)),
        problem: None,
        scope: None,
        rows: Vec::new(),
        next: None,
        first: (!form.after.trim().is_empty()).then(|| base.clone()),
        form,
        outcomes: ["success", "denied", "failure"],
    };
    match searched {
        Ok((results, scope)) => {
            page.scope = Some(scope_text(scope, page.form.project.trim()));
            page.rows = results.items.into_iter().map(RecordRow::of).collect();
            page.next = results.next.map(|n| format!("{base}&after={n}"));
            render(StatusCode::OK, &page)
        }
        Err(e) if in_form(&e) => {
            let problem = Problem::of(e);
            page.chrome = page.chrome.problem(Some(&problem));
            page.problem = Some(problem);
            render(status(page.problem.as_ref()), &page)
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

#[derive(Template)]
#[template(path = "audit_work.html")]
struct MyWorkPage {
    chrome: Chrome,
    rows: Vec<RecordRow>,
    limit: u32,
}

/// `GET /audit/my-work`: actions in the visitor's projects by people who are not members
/// there (platform admins, support and admin grants).
pub async fn my_work(State(s): State<AppState>, Visitor(session): Visitor) -> Response {
    match s
        .app
        .access_to_my_work(&session.caller, MY_WORK_LIMIT)
        .await
    {
        Ok(items) => {
            let page = MyWorkPage {
                chrome: Chrome::new("Who accessed my work", "audit", Some(&session)),
                rows: items.into_iter().map(RecordRow::of).collect(),
                limit: MY_WORK_LIMIT,
            };
            render(StatusCode::OK, &page)
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// The key as the page and the download show it.
fn key_out(k: AuditKey) -> AuditKeyOut {
    AuditKeyOut {
        public_key: k.public_key.to_base64(),
        public_key_hex: k.public_key.to_hex(),
        key_id: k.public_key.key_id(),
        latest_checkpoint: k.latest_checkpoint.map(CheckpointOut::from),
    }
}

#[derive(Template)]
#[template(path = "audit_key.html")]
struct KeyPage {
    chrome: Chrome,
    key: AuditKeyOut,
    /// The download: the same JSON as `GET /api/v1/audit/key`.
    json: String,
    verdict: Option<VerifyOut>,
    export: bool,
}

async fn key_page(s: &AppState, session: &ConsoleSession, verdict: Option<VerifyOut>) -> Response {
    let key = match s.app.audit_key(&session.caller).await {
        Ok(k) => key_out(k),
        Err(e) => return fail(&e, Some(session)),
    };
    let page = KeyPage {
        chrome: Chrome::new("Audit key and verification", "audit", Some(session)),
        json: serde_json::to_string_pretty(&key).unwrap_or_default(),
        key,
        verdict,
        export: session
            .nav
            .contains(&enclave_core::authz::Action::AuditExport),
    };
    render(StatusCode::OK, &page)
}

/// `GET /audit/key`: the public key and the latest signed checkpoint, to copy or download, and
/// the verify button.
pub async fn key(State(s): State<AppState>, Visitor(session): Visitor) -> Response {
    key_page(&s, &session, None).await
}

/// `GET /audit/key.json`: the key and checkpoint as a file to hand to an outside party.
pub async fn key_download(State(s): State<AppState>, Visitor(session): Visitor) -> Response {
    match s.app.audit_key(&session.caller).await {
        Ok(k) => {
            let body = serde_json::to_string_pretty(&key_out(k)).unwrap_or_default();
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"enclave-audit-key.json\"",
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// `GET /audit/export`: the retained trail as a JSON Lines file that anyone with the public key
/// can verify offline. The export is itself audited.
pub async fn export(State(s): State<AppState>, Visitor(session): Visitor) -> Response {
    match s.app.export_audit(&session.caller, None).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/x-ndjson"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"enclave-audit.jsonl\"",
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => fail(&e, Some(&session)),
    }
}

/// `POST /audit/verify`: checks the stored trail's chain and signatures and shows the verdict
/// (intact, or the first bad record and what is wrong with it) on the key page.
pub async fn verify(State(s): State<AppState>, Post { session, .. }: Post<Button>) -> Response {
    match s.app.verify_audit(&session.caller, None).await {
        Ok(v) => key_page(&s, &session, Some(VerifyOut::from(v))).await,
        Err(e) => fail(&e, Some(&session)),
    }
}
