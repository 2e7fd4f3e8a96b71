//! `/api/v1/users`: account administration.

use super::dto::*;
use super::extract::{Body, Q};
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use enclave_app::{NewUser, UserPatch};

/// Lists accounts (platform admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(ListQuery),
    responses((status = 200, body = List<UserOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<List<UserOut>>> {
    let page = s.app.list_users(&c, &q.page()?).await?;
    Ok(Json(List::from_page(page, |(u, locked)| {
        UserOut::new(u, locked)
    })))
}

/// Creates an account (platform admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    let input = NewUser {
        username: b.username,
        password: b.password,
        display_name: b.display_name,
        email: b.email,
        platform_admin: b.platform_admin,
    };
    let u = s.app.create_user(&c, input).await?;
    Ok((StatusCode::CREATED, Json(UserOut::new(u, false))))
}

/// Reads an account (platform admins, or the account itself).
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "users", params(("username" = String, Path)),
    responses((status = 200, body = UserOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
) -> ApiResult<Json<UserOut>> {
    let u = s.app.get_user(&c, &username).await?;
    let locked = s.app.is_locked(&u.username).await?;
    Ok(Json(UserOut::new(u, locked)))
}

/// Updates an account; disabling it ends its sessions and revokes its tokens.
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "users", params(("username" = String, Path)), request_body = UpdateUser,
    responses((status = 200, body = UserOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
    Body(b): Body<UpdateUser>,
) -> ApiResult<Json<UserOut>> {
    let patch = UserPatch {
        display_name: b.display_name,
        email: b.email,
        disabled: b.disabled,
        platform_admin: b.platform_admin,
    };
    let u = s.app.update_user(&c, &username, patch).await?;
    let locked = s.app.is_locked(&u.username).await?;
    Ok(Json(UserOut::new(u, locked)))
}

/// Deletes an account.
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "users", params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_user(&c, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a new password for an account; its sessions end.
#[utoipa::path(post, path = "/api/v1/users/{username}/password", tag = "users", params(("username" = String, Path)), request_body = ResetPassword,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_password(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
    Body(b): Body<ResetPassword>,
) -> ApiResult<StatusCode> {
    s.app.reset_password(&c, &username, &b.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clears the login lockout of an account.
#[utoipa::path(post, path = "/api/v1/users/{username}/unlock", tag = "users", params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn unlock(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.unlock_user(&c, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of an account.
#[utoipa::path(post, path = "/api/v1/users/{username}/revoke-sessions", tag = "users", params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_sessions(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.revoke_sessions(&c, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The identity source an account signs in with.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UserIdentityOut {
    /// The source's name.
    pub source: String,
    /// The account's stable id at the source.
    pub subject: String,
    /// The groups the source reported last.
    pub groups: Vec<String>,
    /// When the account was linked (first sign-in or provisioning).
    pub linked_at: String,
    /// Last sign-in through the source.
    pub last_login_at: Option<String>,
}

/// The identity source an account signs in with (platform admins, or the account itself);
/// 404 for an account with an Enclave password only.
#[utoipa::path(get, path = "/api/v1/users/{username}/identity", tag = "users", params(("username" = String, Path)),
    responses((status = 200, body = UserIdentityOut), (status = 404, body = ErrorBody)))]
pub async fn identity(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
) -> ApiResult<Json<UserIdentityOut>> {
    let link = s.app.user_identity(&c, &username).await?.ok_or_else(|| {
        enclave_core::Error::new(
            enclave_core::ErrorCode::NotFound,
            format!("'{username}' signs in with an Enclave password, not an identity source"),
        )
    })?;
    Ok(Json(UserIdentityOut {
        source: link.source,
        subject: link.subject,
        groups: link.groups,
        linked_at: link.created_at.rfc3339(),
        last_login_at: link.last_login_at.map(|t| t.rfc3339()),
    }))
}

/// An account's second factors.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UserMfaOut {
    /// TOTP is confirmed.
    pub totp: bool,
    /// The account's passkeys.
    pub passkeys: Vec<super::mfa::PasskeyOut>,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

/// An account's second factors: TOTP and its passkeys (platform admins, or the account
/// itself).
#[utoipa::path(get, path = "/api/v1/users/{username}/mfa", tag = "users", params(("username" = String, Path)),
    responses((status = 200, body = UserMfaOut), (status = 404, body = ErrorBody)))]
pub async fn mfa(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
) -> ApiResult<Json<UserMfaOut>> {
    let m = s.app.user_mfa(&c, &username).await?;
    Ok(Json(UserMfaOut {
        totp: m.totp,
        passkeys: m.passkeys.into_iter().map(Into::into).collect(),
        recovery_codes_left: m.recovery_codes_left,
    }))
}

/// Removes an account's second factors (TOTP, passkeys, recovery codes) when its owner lost
/// them, and ends its sessions (platform admins; not one's own account).
#[utoipa::path(post, path = "/api/v1/users/{username}/mfa/reset", tag = "users", params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reset_mfa(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.reset_user_mfa(&c, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}
