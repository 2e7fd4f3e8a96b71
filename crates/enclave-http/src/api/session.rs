//! Setup, login, logout, whoami, own password.

use super::dto::*;
use super::extract::Body;
use crate::auth::{clear_session_cookie, set_session_cookie, Authed, Meta};
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use enclave_core::authz::Credential;

/// Creates the first platform admin with the token from the setup URL (works once).
#[utoipa::path(post, path = "/api/v1/setup", tag = "auth", security(()), request_body = Setup,
    responses((status = 201, body = UserOut), (status = 410, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn setup(
    State(s): State<AppState>,
    Meta(meta): Meta,
    Body(b): Body<Setup>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    let user = s
        .app
        .complete_setup(&b.token, &b.username, &b.password, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(UserOut::new(user, false))))
}

/// Logs in with a password and issues a full-scope personal token (used by `enclave login`).
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", security(()), request_body = TokenLogin,
    responses((status = 201, body = TokenCreatedOut), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login_token(
    State(s): State<AppState>,
    Meta(meta): Meta,
    Body(b): Body<TokenLogin>,
) -> ApiResult<(StatusCode, Json<TokenCreatedOut>)> {
    let t = s
        .app
        .login_token(
            b.source.as_deref(),
            &b.username,
            &b.password,
            &b.name,
            b.expires_in_days,
            &meta,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreatedOut {
            meta: t.token.into(),
            token: t.secret,
        }),
    ))
}

/// Logs in with a password and opens a session (sets the `__Host-enclave_session` cookie).
#[utoipa::path(post, path = "/api/v1/auth/session", tag = "auth", security(()), request_body = SessionLogin,
    responses((status = 200, body = SessionOut), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login_session(
    State(s): State<AppState>,
    Meta(meta): Meta,
    Body(b): Body<SessionLogin>,
) -> ApiResult<Response> {
    let out = match &b.source {
        Some(src) => {
            s.app
                .ldap_login(src, &b.username, &b.password, &meta)
                .await?
        }
        None => s.app.login_session(&b.username, &b.password, &meta).await?,
    };
    let me = out.caller.principal.username.clone();
    let user = s.app.get_user(&out.caller, &me).await?;
    let body = SessionOut {
        csrf_token: out.csrf_token,
        user: UserOut::new(user, false),
    };
    let mut resp = Json(body).into_response();
    if let Some(c) = set_session_cookie(&out.session_secret) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// Ends the current session, or revokes the bearer token used for this request.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(s): State<AppState>, Authed(c): Authed) -> ApiResult<Response> {
    s.app.logout(&c).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if c.session_id.is_some() {
        resp.headers_mut()
            .insert(header::SET_COOKIE, clear_session_cookie());
    }
    Ok(resp)
}

/// The caller's account and credential.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(State(s): State<AppState>, Authed(c): Authed) -> ApiResult<Json<WhoAmI>> {
    let user = s.app.get_user(&c, &c.principal.username).await?;
    let locked = s.app.is_locked(&user.username).await?;
    let auth = match &c.principal.credential {
        Credential::Session { .. } => AuthInfo {
            method: "session".into(),
            token_id: None,
            scope: None,
            projects: None,
        },
        Credential::Token { scope, projects } => AuthInfo {
            method: "token".into(),
            token_id: c.token_id.clone(),
            scope: Some(scope.as_str().into()),
            projects: Some(projects.clone()),
        },
    };
    Ok(Json(WhoAmI {
        user: UserOut::new(user, locked),
        auth,
    }))
}

/// Changes the caller's password; all the account's sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", request_body = ChangePassword,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn change_password(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<ChangePassword>,
) -> ApiResult<StatusCode> {
    s.app
        .change_own_password(&c, &b.current_password, &b.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
