//! Multi-factor authentication: `/api/v1/me/mfa` (status, TOTP enrolment, confirmation,
//! disabling) and `/api/v1/auth/mfa` (the second step of a password login).

use super::dto::*;
use super::extract::Body;
use crate::auth::{set_session_cookie, Authed, Meta};
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use enclave_app::MfaLogin;
use enclave_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The caller's second-factor state.
#[derive(Serialize, ToSchema)]
pub struct MfaStatusOut {
    /// TOTP is confirmed: password logins ask for a code.
    pub enabled: bool,
    /// An enrolment waits for its first code.
    pub pending_confirmation: bool,
    /// RFC 3339 time of confirmation.
    pub confirmed_at: Option<String>,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
    /// The platform requires MFA of local accounts.
    pub required: bool,
    /// The account has an Enclave password (MFA here applies to such accounts).
    pub local: bool,
}

/// Re-authentication to start a TOTP enrolment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollTotp {
    /// The current password.
    pub password: String,
}

/// A started enrolment, shown once.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrollmentOut {
    /// The secret, base32, for typing into an authenticator app.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// A code from the authenticator app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotp {
    /// The current 6-digit code.
    pub code: String,
}

/// The recovery codes, shown once.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesOut {
    /// Ten one-use codes for when the authenticator is lost.
    pub recovery_codes: Vec<String>,
}

/// Turning MFA off.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableMfa {
    /// The current password.
    pub password: String,
    /// A current code or an unused recovery code.
    pub code: String,
}

/// The second step of a login that answered `mfa_required`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishMfa {
    /// `details.mfa_token` of the `mfa_required` error.
    pub mfa_token: String,
    /// A current code or an unused recovery code.
    pub code: String,
    /// `session` or `token` (optional: the first step already decided what opens).
    #[serde(default)]
    pub kind: Option<String>,
}

/// What a finished login opened: a session (cookie set) or a token.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum MfaLoginOut {
    /// A session; the cookie is in `Set-Cookie`.
    Session(SessionOut),
    /// A personal token.
    Token(TokenCreatedOut),
}

fn rfc3339(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.rfc3339())
}

/// The caller's second-factor state.
#[utoipa::path(get, path = "/api/v1/me/mfa", tag = "auth",
    responses((status = 200, body = MfaStatusOut), (status = 401, body = ErrorBody)))]
pub async fn status(State(s): State<AppState>, Authed(c): Authed) -> ApiResult<Json<MfaStatusOut>> {
    let st = s.app.mfa_status(&c).await?;
    Ok(Json(MfaStatusOut {
        enabled: st.enabled,
        pending_confirmation: st.pending_confirmation,
        confirmed_at: rfc3339(st.confirmed_at),
        recovery_codes_left: st.recovery_codes_left,
        required: st.required,
        local: st.local,
    }))
}

/// Starts a TOTP enrolment (needs the current password): the secret, its URI and QR code.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "auth", request_body = EnrollTotp,
    responses((status = 201, body = TotpEnrollmentOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enroll(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<EnrollTotp>,
) -> ApiResult<(StatusCode, Json<TotpEnrollmentOut>)> {
    let e = s.app.enroll_totp(&c, &b.password).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrollmentOut {
            secret: e.secret.to_string(),
            otpauth_uri: e.otpauth_uri.to_string(),
            qr_svg: e.qr_svg.to_string(),
        }),
    ))
}

/// Confirms the enrolment with a first code; MFA is on and the recovery codes are returned.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/confirm", tag = "auth", request_body = ConfirmTotp,
    responses((status = 200, body = RecoveryCodesOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn confirm(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<ConfirmTotp>,
) -> ApiResult<Json<RecoveryCodesOut>> {
    let codes = s.app.confirm_totp(&c, &b.code).await?;
    Ok(Json(RecoveryCodesOut {
        recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
    }))
}

/// Turns MFA off (needs the current password and a code or a recovery code).
#[utoipa::path(post, path = "/api/v1/me/mfa/disable", tag = "auth", request_body = DisableMfa,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<DisableMfa>,
) -> ApiResult<StatusCode> {
    s.app.disable_mfa(&c, &b.password, &b.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Finishes a password login that answered `mfa_required`: opens the session (cookie set, as
/// `/api/v1/auth/session`) or issues the token (as `/api/v1/auth/token`).
#[utoipa::path(post, path = "/api/v1/auth/mfa", tag = "auth", security(()), request_body = FinishMfa,
    responses((status = 200, body = MfaLoginOut), (status = 201, body = MfaLoginOut),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn finish(
    State(s): State<AppState>,
    Meta(meta): Meta,
    Body(b): Body<FinishMfa>,
) -> ApiResult<Response> {
    if let Some(k) = b.kind.as_deref() {
        if k != "session" && k != "token" {
            return Err(Error::invalid("kind", "kind is `session` or `token`").into());
        }
    }
    let done = s.app.finish_mfa_login(&b.mfa_token, &b.code, &meta).await?;
    match done {
        MfaLogin::Session(out) => {
            let me = out.caller.principal.username.clone();
            let user = s.app.get_user(&out.caller, &me).await?;
            let body = MfaLoginOut::Session(SessionOut {
                csrf_token: out.csrf_token,
                user: UserOut::new(user, false),
            });
            let mut resp = Json(body).into_response();
            if let Some(c) = set_session_cookie(&out.session_secret) {
                resp.headers_mut().insert(header::SET_COOKIE, c);
            }
            Ok(resp)
        }
        MfaLogin::Token(t) => Ok((
            StatusCode::CREATED,
            Json(MfaLoginOut::Token(TokenCreatedOut {
                meta: t.token.into(),
                token: t.secret,
            })),
        )
            .into_response()),
    }
}
