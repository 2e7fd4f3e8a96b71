//! The governance forms of the project page: time-bound access grants (request, approve, deny,
//! revoke) and the project's role bindings (bind, remove). Each calls one use case, which
//! decides and audits; the page only hides what the visitor cannot use.

use super::guard::{Button, PageQuery, Post};
use super::page::{done, encode, fail, finish, form_duration, form_expiry, in_form, Problem};
use super::projects::{project_page, project_page_with, Drafts};
use crate::auth::ConsoleSession;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use enclave_core::access::{AccessGrant, GrantRole, GrantStatus};
use enclave_core::Error;
use serde::Deserialize;

/// The request-access form.
#[derive(Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    reason: String,
    /// Minutes (`90`) or a duration with a unit (`2h`).
    #[serde(default)]
    duration: String,
}

/// `POST /projects/{name}/grants`: asks for time-bound support or admin access.
pub async fn request(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<GrantForm>,
) -> Response {
    let result = match (
        GrantRole::parse(&f.role),
        form_duration("duration", &f.duration),
    ) {
        (None, _) => Err(Error::invalid(
            "role",
            "choose the access you need: support or project_admin",
        )),
        (_, Err(e)) => Err(e),
        (Some(role), Ok(secs)) => {
            s.app
                .request_grant(&session.caller, &name, role, &f.reason, secs)
                .await
        }
    };
    let path = format!("/projects/{}", encode(&name));
    let result = result.map(|g| {
        if g.status == GrantStatus::Active {
            "grant-active"
        } else {
            "grant-requested"
        }
    });
    let notice = *result.as_ref().unwrap_or(&"grant-requested");
    let drafts = Drafts {
        grant: Some((f.role, f.reason, f.duration)),
        ..Drafts::default()
    };
    finish(result.map(|_| ()), &session, &path, notice, |p| {
        project_page_with(&s, &session, &name, PageQuery::default(), Some(p), drafts)
    })
    .await
}

/// Ends a grant action: to the grant's project page with `notice`, or the page of `name` again
/// with the error.
async fn grant_done(
    s: &AppState,
    session: &ConsoleSession,
    name: &str,
    result: Result<AccessGrant, Error>,
    notice: &'static str,
) -> Response {
    match result {
        Ok(g) => done(&format!("/projects/{}", encode(&g.project)), notice),
        Err(e) if in_form(&e) => {
            project_page(s, session, name, PageQuery::default(), Some(Problem::of(e))).await
        }
        Err(e) => fail(&e, Some(session)),
    }
}

/// `POST /projects/{name}/grants/{id}/approve`.
pub async fn approve(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s.app.decide_grant(&session.caller, &id, true).await;
    grant_done(&s, &session, &name, result, "grant-approved").await
}

/// `POST /projects/{name}/grants/{id}/deny`.
pub async fn deny(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s.app.decide_grant(&session.caller, &id, false).await;
    grant_done(&s, &session, &name, result, "grant-denied").await
}

/// `POST /projects/{name}/grants/{id}/revoke`.
pub async fn revoke(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s.app.revoke_grant(&session.caller, &id).await;
    grant_done(&s, &session, &name, result, "grant-revoked").await
}

/// The bind-role form (project page and platform roles page).
#[derive(Deserialize)]
pub struct BindForm {
    /// `user:NAME`, `group:NAME` or `workload:ID`.
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub role: String,
    /// Empty for never, else minutes or a duration with a unit (`7d`).
    #[serde(default)]
    pub expires_in: String,
}

/// Binds a role from the form, platform-wide or on `project`.
pub async fn bind_from(
    s: &AppState,
    session: &ConsoleSession,
    f: &BindForm,
    project: Option<&str>,
) -> Result<(), Error> {
    let expires_at = form_expiry("expires_in", &f.expires_in, s.app.now())?;
    s.app
        .bind_role(
            &session.caller,
            f.subject.trim(),
            &f.role,
            project,
            expires_at,
        )
        .await
        .map(|_| ())
}

/// `POST /projects/{name}/roles`.
pub async fn bind(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<BindForm>,
) -> Response {
    let result = bind_from(&s, &session, &f, Some(&name)).await;
    let path = format!("/projects/{}", encode(&name));
    let drafts = Drafts {
        binding: Some((f.subject, f.role, f.expires_in)),
        ..Drafts::default()
    };
    finish(result, &session, &path, "role-bound", |p| {
        project_page_with(&s, &session, &name, PageQuery::default(), Some(p), drafts)
    })
    .await
}

/// `POST /projects/{name}/roles/{id}/remove`.
pub async fn unbind(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s.app.unbind_role(&session.caller, &id).await;
    let path = format!("/projects/{}", encode(&name));
    finish(result, &session, &path, "role-removed", |p| {
        project_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}
