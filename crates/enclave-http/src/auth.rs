//! Credentials from requests: bearer tokens, session cookies, CSRF tokens, request metadata.

use crate::error::ApiError;
use crate::headers::RequestId;
use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use enclave_app::{csrf_token_for, secrets, Caller, RequestMeta};
use enclave_core::{Error, ErrorCode};
use std::net::SocketAddr;

/// Name of the session cookie. The `__Host-` prefix makes browsers insist on `Secure`,
/// `Path=/` and no `Domain`.
pub const SESSION_COOKIE: &str = "__Host-enclave_session";

/// Header carrying the CSRF token on cookie-authenticated API changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Request metadata (source address, request id) for the audit trail.
pub fn request_meta(parts: &Parts) -> RequestMeta {
    let source = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "req_unknown".into());
    RequestMeta { source, request_id }
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie `name`, if the request has one.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a new session.
pub fn set_session_cookie(secret: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-enclave_session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
    )
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive, RFC 9110), if
/// the request has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// Request metadata as an extractor.
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Meta(request_meta(parts)))
    }
}

/// Whether the browser says the request comes from another site.
pub fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
}

/// Checks a presented CSRF token against the session's, in constant time.
pub fn csrf_ok(session_secret: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| secrets::constant_time_eq(&csrf_token_for(session_secret), p))
}

fn csrf_failed() -> ApiError {
    ApiError(Error::new(
        ErrorCode::CsrfFailed,
        "missing or wrong CSRF token: send the X-CSRF-Token header returned at login, or use an API token",
    ))
}

/// An authenticated API caller: by bearer token, or by session cookie (with a CSRF token on
/// every state-changing method).
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let meta = request_meta(parts);
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let token = bearer(&parts.headers).ok_or_else(|| ApiError(Error::unauthenticated()))?;
            return match state.app.authenticate_token(token, &meta).await? {
                Some(c) => Ok(Authed(c)),
                None => Err(ApiError(Error::unauthenticated())),
            };
        }
        let Some(secret) = session_cookie(&parts.headers) else {
            return Err(ApiError(Error::unauthenticated()));
        };
        let Some(caller) = state.app.authenticate_session(secret, &meta).await? else {
            return Err(ApiError(Error::unauthenticated()));
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if cross_site(&parts.headers) || !csrf_ok(secret, presented) {
                return Err(csrf_failed());
            }
        }
        Ok(Authed(caller))
    }
}

/// A console visitor with a live session: the caller and the CSRF token for forms.
pub struct ConsoleSession {
    /// The caller.
    pub caller: Caller,
    /// CSRF token to embed in forms.
    pub csrf: String,
    /// Platform-wide actions of [`NAV_ACTIONS`] the visitor may do, to show their links in
    /// the navigation (pages still ask the policy for themselves).
    pub nav: Vec<enclave_core::authz::Action>,
}

/// The platform-wide actions whose pages the console navigation links to.
pub const NAV_ACTIONS: &[enclave_core::authz::Action] = &[
    enclave_core::authz::Action::UserList,
    enclave_core::authz::Action::GroupList,
    enclave_core::authz::Action::RoleList,
    enclave_core::authz::Action::PolicyList,
    enclave_core::authz::Action::PolicyCheck,
    enclave_core::authz::Action::AuditSearch,
    enclave_core::authz::Action::AuditExport,
    enclave_core::authz::Action::AuditVerify,
    enclave_core::authz::Action::KeyRead,
];

/// Reads the console session, if any (never fails).
pub async fn console_session(parts: &Parts, state: &AppState) -> Option<ConsoleSession> {
    let meta = request_meta(parts);
    let secret = session_cookie(&parts.headers)?;
    let caller = state.app.authenticate_session(secret, &meta).await.ok()??;
    let nav = state.app.my_platform_actions(&caller, NAV_ACTIONS).await;
    Some(ConsoleSession {
        caller,
        csrf: csrf_token_for(secret),
        nav,
    })
}
