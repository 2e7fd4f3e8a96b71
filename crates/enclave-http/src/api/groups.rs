//! `/api/v1/groups`: groups and members (platform admins).

use super::dto::*;
use super::extract::{Body, Q};
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

/// Lists groups.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", params(ListQuery),
    responses((status = 200, body = List<GroupOut>), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<List<GroupOut>>> {
    let page = s.app.list_groups(&c, &q.page()?).await?;
    Ok(Json(List::from_page(page, GroupOut::from)))
}

/// Creates a group.
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroup,
    responses((status = 201, body = GroupOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<CreateGroup>,
) -> ApiResult<(StatusCode, Json<GroupOut>)> {
    let g = s.app.create_group(&c, &b.name, &b.description).await?;
    Ok((StatusCode::CREATED, Json(g.into())))
}

/// Reads a group.
#[utoipa::path(get, path = "/api/v1/groups/{name}", tag = "groups", params(("name" = String, Path)),
    responses((status = 200, body = GroupOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<GroupOut>> {
    Ok(Json(s.app.get_group(&c, &name).await?.into()))
}

/// Updates a group's description.
#[utoipa::path(patch, path = "/api/v1/groups/{name}", tag = "groups", params(("name" = String, Path)), request_body = UpdateDescription,
    responses((status = 200, body = GroupOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Body(b): Body<UpdateDescription>,
) -> ApiResult<Json<GroupOut>> {
    Ok(Json(
        s.app
            .update_group(&c, &name, b.description.as_deref())
            .await?
            .into(),
    ))
}

/// Deletes a group.
#[utoipa::path(delete, path = "/api/v1/groups/{name}", tag = "groups", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_group(&c, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a group's members.
#[utoipa::path(get, path = "/api/v1/groups/{name}/members", tag = "groups", params(("name" = String, Path), ListQuery),
    responses((status = 200, body = List<GroupMemberOut>), (status = 404, body = ErrorBody)))]
pub async fn members(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<List<GroupMemberOut>>> {
    let page = s.app.group_members(&c, &name, &q.page()?).await?;
    Ok(Json(List::from_page(page, |username| GroupMemberOut {
        username,
    })))
}

/// Adds a user to a group.
#[utoipa::path(put, path = "/api/v1/groups/{name}/members/{username}", tag = "groups",
    params(("name" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn add_member(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((name, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.add_group_member(&c, &name, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user from a group.
#[utoipa::path(delete, path = "/api/v1/groups/{name}/members/{username}", tag = "groups",
    params(("name" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((name, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.remove_group_member(&c, &name, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes group `child` a member of group `name` (its members then hold what `name`'s hold).
#[utoipa::path(put, path = "/api/v1/groups/{name}/subgroups/{child}", tag = "groups",
    params(("name" = String, Path), ("child" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_subgroup(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((name, child)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.add_subgroup(&c, &name, &child).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes group `child` from group `name`.
#[utoipa::path(delete, path = "/api/v1/groups/{name}/subgroups/{child}", tag = "groups",
    params(("name" = String, Path), ("child" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_subgroup(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((name, child)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.remove_subgroup(&c, &name, &child).await?;
    Ok(StatusCode::NO_CONTENT)
}
