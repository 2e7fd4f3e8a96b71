//! `/api/v1/projects`: projects and members.

use super::dto::*;
use super::extract::{Body, Q};
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

/// Lists the projects visible to the caller.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(ListQuery),
    responses((status = 200, body = List<ProjectOut>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<List<ProjectOut>>> {
    let page = s.app.list_projects(&c, &q.page()?).await?;
    Ok(Json(List::from_page(page, ProjectOut::from)))
}

/// Creates a project (platform admins); the owner defaults to the caller.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProject,
    responses((status = 201, body = ProjectOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectOut>)> {
    let p = s
        .app
        .create_project(&c, &b.name, &b.description, b.owner.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// Reads a project (members; others get 404).
#[utoipa::path(get, path = "/api/v1/projects/{name}", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = ProjectOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<ProjectOut>> {
    Ok(Json(s.app.get_project(&c, &name).await?.into()))
}

/// Updates a project's description and policy attributes (owners).
#[utoipa::path(patch, path = "/api/v1/projects/{name}", tag = "projects", params(("name" = String, Path)), request_body = UpdateProject,
    responses((status = 200, body = ProjectOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Body(b): Body<UpdateProject>,
) -> ApiResult<Json<ProjectOut>> {
    let patch = enclave_app::ProjectPatch {
        description: b.description,
        classification: b.classification,
        tags: b.tags,
        requires_approval: b.requires_approval,
    };
    Ok(Json(s.app.update_project(&c, &name, patch).await?.into()))
}

/// Deletes a project (owners).
#[utoipa::path(delete, path = "/api/v1/projects/{name}", tag = "projects", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_project(&c, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a project's members.
#[utoipa::path(get, path = "/api/v1/projects/{name}/members", tag = "projects", params(("name" = String, Path), ListQuery),
    responses((status = 200, body = List<MemberOut>), (status = 404, body = ErrorBody)))]
pub async fn members(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<List<MemberOut>>> {
    let page = s.app.project_members(&c, &name, &q.page()?).await?;
    Ok(Json(List::from_page(page, |(username, role)| MemberOut {
        username,
        role,
    })))
}

/// Adds a member or changes a member's role (owners).
#[utoipa::path(put, path = "/api/v1/projects/{name}/members/{username}", tag = "projects",
    params(("name" = String, Path), ("username" = String, Path)), request_body = SetMember,
    responses((status = 200, body = MemberOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_member(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((name, username)): Path<(String, String)>,
    Body(b): Body<SetMember>,
) -> ApiResult<Json<MemberOut>> {
    s.app
        .set_project_member(&c, &name, &username, b.role)
        .await?;
    Ok(Json(MemberOut {
        username,
        role: b.role,
    }))
}

/// Removes a member (owners); the last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/projects/{name}/members/{username}", tag = "projects",
    params(("name" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_member(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((name, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.remove_project_member(&c, &name, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}
