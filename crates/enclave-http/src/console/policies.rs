//! Custom Cedar policies (platform-wide and per project) and the explain page: what the policy
//! decides for a simulated request, and what a principal may do in a project.

use super::guard::{PageQuery, Post, Visitor};
use super::page::{done, encode, fail, in_form, render, status, when, Chrome, Problem};
use super::projects::{Abilities, PolicyRow, LIST_LIMIT};
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use enclave_app::{CheckRequest, NewPolicy};
use enclave_core::authz::Action;
use enclave_core::model::{PageRequest, ProjectRole};
use enclave_core::Error;
use serde::Deserialize;

/// The text of a policy as the form shows it, with the error that points into it.
#[derive(Default)]
struct PolicyDraft {
    name: String,
    description: String,
    body: String,
}

/// A validation error of a policy's text: message, `line N, column M`, and the line it points
/// at with a caret under the column.
struct BodyError {
    message: String,
    at: Option<String>,
    excerpt: Option<(String, String)>,
}

impl BodyError {
    fn of(problem: Option<&Problem>, body: &str) -> Option<BodyError> {
        let p = problem.filter(|p| p.about("body"))?;
        let excerpt = p.position.and_then(|(line, column)| {
            let text = body
                .lines()
                .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
            let pad = usize::try_from(column).ok()?.saturating_sub(1);
            let caret = format!("{}^", " ".repeat(pad.min(text.chars().count())));
            Some((text.to_string(), caret))
        });
        Some(BodyError {
            message: p.message.clone(),
            at: p.position.map(|(l, c)| format!("line {l}, column {c}")),
            excerpt,
        })
    }
}

const EXAMPLE_POLICY: &str = r#"@description("project changes need a second factor")
forbid (principal, action == Action::"project.update", resource)
unless { context.mfa };"#;

#[derive(Template)]
#[template(path = "policies.html")]
struct PoliciesPage {
    chrome: Chrome,
    policies: Vec<PolicyRow>,
    create: bool,
}

/// `GET /policies`: the platform-wide policies.
pub async fn list(State(s): State<AppState>, Visitor(session): Visitor, q: PageQuery) -> Response {
    let policies = match s.app.list_policies(&session.caller, None).await {
        Ok(p) => p,
        Err(e) => return fail(&e, Some(&session)),
    };
    let page = PoliciesPage {
        chrome: Chrome::new("Policies", "policies", Some(&session)).notice(q.notice),
        policies: policies.into_iter().map(PolicyRow::of).collect(),
        create: session.caller.principal.platform_admin,
    };
    render(status(None), &page)
}

#[derive(Template)]
#[template(path = "policy_new.html")]
struct NewPolicyPage {
    chrome: Chrome,
    project: Option<String>,
    action: String,
    draft: PolicyDraft,
    error: Option<BodyError>,
    problem: Option<Problem>,
}

async fn new_policy_page(
    s: &AppState,
    session: &ConsoleSession,
    project: Option<&str>,
    draft: PolicyDraft,
    problem: Option<Problem>,
) -> Response {
    // The form is shown to those who may see the scope's policies (the policy decides).
    if let Err(e) = s.app.list_policies(&session.caller, project).await {
        return fail(&e, Some(session));
    }
    let (title, section, action) = match project {
        Some(p) => (
            format!("New policy for {p}"),
            "projects",
            format!("/projects/{}/policies", encode(p)),
        ),
        None => (
            "New platform policy".to_string(),
            "policies",
            "/policies".to_string(),
        ),
    };
    let page = NewPolicyPage {
        chrome: Chrome::new(title, section, Some(session)).problem(problem.as_ref()),
        project: project.map(str::to_string),
        action,
        error: BodyError::of(problem.as_ref(), &draft.body),
        draft,
        problem: problem.clone(),
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /policies/new`.
pub async fn new_platform(State(s): State<AppState>, Visitor(session): Visitor) -> Response {
    let draft = PolicyDraft {
        body: EXAMPLE_POLICY.into(),
        ..PolicyDraft::default()
    };
    new_policy_page(&s, &session, None, draft, None).await
}

/// `GET /projects/{name}/policies/new`.
pub async fn new_in_project(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(name): Path<String>,
) -> Response {
    let draft = PolicyDraft {
        body: EXAMPLE_POLICY.replace("resource)", &format!("resource in Project::\"{name}\")")),
        ..PolicyDraft::default()
    };
    new_policy_page(&s, &session, Some(&name), draft, None).await
}

/// The new-policy form.
#[derive(Deserialize)]
pub struct NewPolicyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    body: String,
}

async fn create(
    s: &AppState,
    session: &ConsoleSession,
    project: Option<String>,
    f: NewPolicyForm,
) -> Response {
    let input = NewPolicy {
        name: f.name.trim().to_string(),
        project: project.clone(),
        description: f.description.clone(),
        body: f.body.clone(),
    };
    match s.app.create_policy(&session.caller, input).await {
        Ok(p) => done(&format!("/policies/{}", encode(&p.id)), "policy-created"),
        Err(e) if in_form(&e) => {
            let draft = PolicyDraft {
                name: f.name,
                description: f.description,
                body: f.body,
            };
            new_policy_page(s, session, project.as_deref(), draft, Some(Problem::of(e))).await
        }
        Err(e) => fail(&e, Some(session)),
    }
}

/// `POST /policies`: a platform-wide policy.
pub async fn create_platform(
    State(s): State<AppState>,
    Post { session, form }: Post<NewPolicyForm>,
) -> Response {
    create(&s, &session, None, form).await
}

/// `POST /projects/{name}/policies`: a policy of the project.
pub async fn create_in_project(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form }: Post<NewPolicyForm>,
) -> Response {
    create(&s, &session, Some(name), form).await
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    chrome: Chrome,
    id: String,
    name: String,
    project: Option<String>,
    created_by: String,
    created: String,
    updated: String,
    /// The stored description.
    description: String,
    /// The stored text.
    body: String,
    /// The text in the edit form (the visitor's, after a refused edit).
    draft: PolicyDraft,
    error: Option<BodyError>,
    edit: bool,
    delete: bool,
}

async fn policy_page(
    s: &AppState,
    session: &ConsoleSession,
    id: &str,
    notice: Option<&'static str>,
    draft: Option<PolicyDraft>,
    problem: Option<Problem>,
) -> Response {
    let policy = match s.app.get_policy(&session.caller, id).await {
        Ok(p) => p,
        Err(e) => return fail(&e, Some(session)),
    };
    let caller = &session.caller;
    let admin = caller.principal.platform_admin;
    let (edit, delete) = match &policy.project {
        None => (admin, admin),
        Some(p) => {
            let role = match s.app.get_project(caller, p).await {
                Ok(v) => v.your_role,
                Err(_) => None,
            };
            let probe = admin || !matches!(role, Some(ProjectRole::Member | ProjectRole::Viewer));
            let can = Abilities::of(s, session, p, probe, false).await;
            (can.may(Action::PolicyUpdate), can.may(Action::PolicyDelete))
        }
    };
    let draft = draft.unwrap_or_else(|| PolicyDraft {
        name: policy.name.clone(),
        description: policy.description.clone(),
        body: policy.body.clone(),
    });
    let section = if policy.project.is_some() {
        "projects"
    } else {
        "policies"
    };
    let page = PolicyPage {
        chrome: Chrome::new(format!("Policy {}", policy.name), section, Some(session))
            .notice(notice)
            .problem(problem.as_ref()),
        error: BodyError::of(problem.as_ref(), &draft.body),
        draft,
        created: when(policy.created_at),
        updated: when(policy.updated_at),
        id: policy.id,
        name: policy.name,
        project: policy.project,
        created_by: policy.created_by,
        description: policy.description,
        body: policy.body,
        edit,
        delete,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /policies/{id}`.
pub async fn show(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    q: PageQuery,
) -> Response {
    policy_page(&s, &session, &id, q.notice, None, None).await
}

/// The edit-policy form: description and text.
#[derive(Deserialize)]
pub struct EditPolicyForm {
    #[serde(default)]
    description: String,
    #[serde(default)]
    body: String,
}

/// `POST /policies/{id}`: replaces the description and the text.
pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Post { session, form: f }: Post<EditPolicyForm>,
) -> Response {
    let result = s
        .app
        .update_policy(&session.caller, &id, Some(&f.description), Some(&f.body))
        .await;
    match result {
        Ok(p) => done(&format!("/policies/{}", encode(&p.id)), "policy-saved"),
        Err(e) if in_form(&e) => {
            let draft = PolicyDraft {
                name: String::new(),
                description: f.description,
                body: f.body,
            };
            policy_page(&s, &session, &id, None, Some(draft), Some(Problem::of(e))).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// The delete-policy form: the policy's name typed again.
#[derive(Deserialize)]
pub struct DeletePolicyForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /policies/{id}/delete`: only when `confirm` equals the policy's name.
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Post { session, form: f }: Post<DeletePolicyForm>,
) -> Response {
    let policy = match s.app.get_policy(&session.caller, &id).await {
        Ok(p) => p,
        Err(e) => return fail(&e, Some(&session)),
    };
    let result = if f.confirm.trim() == policy.name {
        s.app.delete_policy(&session.caller, &id).await
    } else {
        Err(Error::invalid(
            "confirm",
            "the policy was not deleted: type its name exactly to confirm",
        ))
    };
    let back = match &policy.project {
        Some(p) => format!("/projects/{}", encode(p)),
        None => "/policies".to_string(),
    };
    match result {
        Ok(()) => done(&back, "policy-deleted"),
        Err(e) if in_form(&e) => {
            policy_page(&s, &session, &id, None, None, Some(Problem::of(e))).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// The explain form, also read from the query to fill it in (`/policy/check?resource=…`).
#[derive(Deserialize, Default, Clone)]
pub struct CheckForm {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource: String,
    /// JSON object, or empty.
    #[serde(default)]
    context: String,
}

/// The what-can-they-do form.
#[derive(Deserialize, Default, Clone)]
pub struct CanForm {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    project: String,
}

/// The answer of explain as the page shows it.
struct CheckResult {
    allowed: bool,
    explanation: String,
    /// Policy ids that decided, each with a link for custom ones.
    determining: Vec<(String, Option<String>)>,
    roles: Vec<String>,
    errors: Vec<String>,
}

/// The answer of "what can they do" as the page shows it.
struct CanResult {
    principal: String,
    project: String,
    actions: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "explain.html")]
struct ExplainPage {
    chrome: Chrome,
    check: CheckForm,
    can: CanForm,
    actions: Vec<&'static str>,
    projects: Vec<String>,
    result: Option<CheckResult>,
    can_result: Option<CanResult>,
}

async fn explain_page(
    s: &AppState,
    session: &ConsoleSession,
    check: CheckForm,
    can: CanForm,
    result: Option<CheckResult>,
    can_result: Option<CanResult>,
    problem: Option<Problem>,
) -> Response {
    // The visitor's projects fill the suggestions of the forms.
    let listed = match PageRequest::new(Some(LIST_LIMIT), None) {
        Ok(page) => s.app.list_projects(&session.caller, &page).await,
        Err(e) => Err(e),
    };
    let projects = match listed {
        Ok(l) => l.items.into_iter().map(|v| v.project.name).collect(),
        Err(e) => return fail(&e, Some(session)),
    };
    let page = ExplainPage {
        chrome: Chrome::new("Explain a decision", "explain", Some(session))
            .problem(problem.as_ref()),
        check,
        can,
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
        projects,
        result,
        can_result,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /policy/check`: the forms, filled in from the query (a query that cannot be read fills
/// in nothing).
pub async fn explain_form(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    uri: Uri,
) -> Response {
    let q = Query::<CheckForm>::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let can = CanForm {
        principal: q.principal.clone(),
        project: q
            .resource
            .strip_prefix("project:")
            .unwrap_or_default()
            .to_string(),
    };
    explain_page(&s, &session, q, can, None, None, None).await
}

/// Reads the optional context JSON of the explain form.
fn context_of(text: &str) -> Result<Option<serde_json::Map<String, serde_json::Value>>, Error> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
        _ => Err(Error::invalid(
            "context",
            r#"write a JSON object, e.g. {"mfa": true, "source_ip": "10.0.0.7"}"#,
        )),
    }
}

/// `POST /policy/check`: explains the decision for the simulated request.
pub async fn explain(
    State(s): State<AppState>,
    Post { session, form: f }: Post<CheckForm>,
) -> Response {
    let answer = match context_of(&f.context) {
        Ok(context) => {
            s.app
                .check_policy(
                    &session.caller,
                    CheckRequest {
                        principal: f.principal.trim().to_string(),
                        action: f.action.clone(),
                        resource: f.resource.trim().to_string(),
                        context,
                    },
                )
                .await
        }
        Err(e) => Err(e),
    };
    let can = CanForm {
        principal: f.principal.clone(),
        project: f
            .resource
            .trim()
            .strip_prefix("project:")
            .unwrap_or_default()
            .to_string(),
    };
    match answer {
        Ok(a) => {
            let d = a.decision;
            let result = CheckResult {
                allowed: d.allowed,
                explanation: a.explanation,
                determining: d
                    .determining
                    .into_iter()
                    .map(|id| {
                        let link = id
                            .strip_prefix("custom.")
                            .map(|c| format!("/policies/{}", encode(c)));
                        (id, link)
                    })
                    .collect(),
                roles: d.roles.iter().map(|r| r.describe()).collect(),
                errors: d.errors,
            };
            explain_page(&s, &session, f, can, Some(result), None, None).await
        }
        Err(e) if in_form(&e) => {
            explain_page(&s, &session, f, can, None, None, Some(Problem::of(e))).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// `POST /policy/can`: what a principal may do in a project.
pub async fn can(State(s): State<AppState>, Post { session, form: f }: Post<CanForm>) -> Response {
    let principal = f.principal.trim().to_string();
    let project = f.project.trim().to_string();
    let check = CheckForm {
        principal: principal.clone(),
        resource: if project.is_empty() {
            String::new()
        } else {
            format!("project:{project}")
        },
        ..CheckForm::default()
    };
    match s.app.can(&session.caller, &principal, &project).await {
        Ok(actions) => {
            let result = CanResult {
                principal,
                project,
                actions: actions.iter().map(|a| a.as_str()).collect(),
            };
            explain_page(&s, &session, check, f, None, Some(result), None).await
        }
        Err(e) if in_form(&e) => {
            explain_page(&s, &session, check, f, None, None, Some(Problem::of(e))).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}
