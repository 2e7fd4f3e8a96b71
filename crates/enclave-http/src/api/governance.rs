//! `/api/v1/policies`, `/api/v1/policy/*`, `/api/v1/roles`, `/api/v1/grants` and a project's
//! grants: custom Cedar policies, explain, role bindings and time-bound access.

use super::dto::*;
use super::extract::{Body, Q};
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use enclave_app::{CheckRequest, NewPolicy};
use enclave_core::{Error, Timestamp};

fn duration_secs(field: &str, s: &str) -> enclave_core::Result<i64> {
    let d = enclave_config::parse_duration(s).map_err(|e| Error::invalid(field, e))?;
    i64::try_from(d.as_secs()).map_err(|_| Error::invalid(field, "too long"))
}

/// Lists the custom policies of a project, or the platform-wide ones.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policy", params(ScopeQuery),
    responses((status = 200, body = Items<PolicyOut>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_policies(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<ScopeQuery>,
) -> ApiResult<Json<Items<PolicyOut>>> {
    let items = s.app.list_policies(&c, q.project.as_deref()).await?;
    Ok(Json(Items {
        items: items.into_iter().map(PolicyOut::from).collect(),
    }))
}

/// Adds a custom policy, validated strictly against the schema (errors carry line and column).
#[utoipa::path(post, path = "/api/v1/policies", tag = "policy", request_body = CreatePolicy,
    responses((status = 201, body = PolicyOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_policy(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<CreatePolicy>,
) -> ApiResult<(StatusCode, Json<PolicyOut>)> {
    let p = s
        .app
        .create_policy(
            &c,
            NewPolicy {
                name: b.name,
                project: b.project,
                description: b.description,
                body: b.body,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// Reads a custom policy.
#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "policy", params(("id" = String, Path)),
    responses((status = 200, body = PolicyOut), (status = 404, body = ErrorBody)))]
pub async fn get_policy(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyOut>> {
    Ok(Json(s.app.get_policy(&c, &id).await?.into()))
}

/// Replaces a custom policy's text or description; in force for the next request.
#[utoipa::path(patch, path = "/api/v1/policies/{id}", tag = "policy", params(("id" = String, Path)), request_body = UpdatePolicy,
    responses((status = 200, body = PolicyOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_policy(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Body(b): Body<UpdatePolicy>,
) -> ApiResult<Json<PolicyOut>> {
    Ok(Json(
        s.app
            .update_policy(&c, &id, b.description.as_deref(), b.body.as_deref())
            .await?
            .into(),
    ))
}

/// Deletes a custom policy.
#[utoipa::path(delete, path = "/api/v1/policies/{id}", tag = "policy", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_policy(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_policy(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Explains the decision for a simulated request: allowed or not, and which policies decided.
#[utoipa::path(post, path = "/api/v1/policy/check", tag = "policy", request_body = CheckIn,
    responses((status = 200, body = CheckOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn check(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<CheckIn>,
) -> ApiResult<Json<CheckOut>> {
    let answer = s
        .app
        .check_policy(
            &c,
            CheckRequest {
                principal: b.principal,
                action: b.action,
                resource: b.resource,
                context: b.context,
            },
        )
        .await?;
    Ok(Json(answer.into()))
}

/// Lists what a principal may do in a project now.
#[utoipa::path(get, path = "/api/v1/policy/can", tag = "policy", params(CanQuery),
    responses((status = 200, body = CanOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn can(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<CanQuery>,
) -> ApiResult<Json<CanOut>> {
    let actions = s.app.can(&c, &q.principal, &q.project).await?;
    Ok(Json(CanOut {
        principal: q.principal,
        project: q.project,
        actions: actions.iter().map(|a| a.as_str().to_string()).collect(),
    }))
}

/// Lists role bindings of a project, or the platform-wide ones.
#[utoipa::path(get, path = "/api/v1/roles", tag = "policy", params(ScopeQuery),
    responses((status = 200, body = Items<BindingOut>), (status = 403, body = ErrorBody)))]
pub async fn list_roles(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<ScopeQuery>,
) -> ApiResult<Json<Items<BindingOut>>> {
    let items = s.app.list_bindings(&c, q.project.as_deref()).await?;
    Ok(Json(Items {
        items: items.into_iter().map(BindingOut::from).collect(),
    }))
}

/// Binds a built-in role to a user, group or workload, platform-wide or on a project.
#[utoipa::path(post, path = "/api/v1/roles", tag = "policy", request_body = CreateBinding,
    responses((status = 201, body = BindingOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn bind_role(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<CreateBinding>,
) -> ApiResult<(StatusCode, Json<BindingOut>)> {
    let expires_at = match &b.expires_in {
        Some(d) => Some(Timestamp(
            s.app
                .now()
                .0
                .saturating_add(duration_secs("expires_in", d)?),
        )),
        None => None,
    };
    let binding = s
        .app
        .bind_role(&c, &b.subject, &b.role, b.project.as_deref(), expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(binding.into())))
}

/// Removes a role binding.
#[utoipa::path(delete, path = "/api/v1/roles/{id}", tag = "policy", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn unbind_role(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.unbind_role(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a project's time-bound access grants, newest first (visible to its members).
#[utoipa::path(get, path = "/api/v1/projects/{name}/grants", tag = "policy", params(("name" = String, Path)),
    responses((status = 200, body = Items<GrantOut>), (status = 404, body = ErrorBody)))]
pub async fn list_grants(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Items<GrantOut>>> {
    let now = s.app.now();
    let items = s.app.list_grants(&c, &name).await?;
    Ok(Json(Items {
        items: items.into_iter().map(|g| GrantOut::at(g, now)).collect(),
    }))
}

/// Requests time-bound support or admin access to a project.
#[utoipa::path(post, path = "/api/v1/projects/{name}/grants", tag = "policy", params(("name" = String, Path)), request_body = RequestGrant,
    responses((status = 201, body = GrantOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn request_grant(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Body(b): Body<RequestGrant>,
) -> ApiResult<(StatusCode, Json<GrantOut>)> {
    let secs = duration_secs("duration", &b.duration)?;
    let g = s
        .app
        .request_grant(&c, &name, b.role, &b.reason, secs)
        .await?;
    Ok((StatusCode::CREATED, Json(GrantOut::at(g, s.app.now()))))
}

/// Approves a pending grant (a project owner other than the requester).
#[utoipa::path(post, path = "/api/v1/grants/{id}/approve", tag = "policy", params(("id" = String, Path)),
    responses((status = 200, body = GrantOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_grant(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantOut>> {
    let g = s.app.decide_grant(&c, &id, true).await?;
    Ok(Json(GrantOut::at(g, s.app.now())))
}

/// Denies a pending grant.
#[utoipa::path(post, path = "/api/v1/grants/{id}/deny", tag = "policy", params(("id" = String, Path)),
    responses((status = 200, body = GrantOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deny_grant(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantOut>> {
    let g = s.app.decide_grant(&c, &id, false).await?;
    Ok(Json(GrantOut::at(g, s.app.now())))
}

/// Ends a pending or active grant early.
#[utoipa::path(post, path = "/api/v1/grants/{id}/revoke", tag = "policy", params(("id" = String, Path)),
    responses((status = 200, body = GrantOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke_grant(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantOut>> {
    let g = s.app.revoke_grant(&c, &id).await?;
    Ok(Json(GrantOut::at(g, s.app.now())))
}
