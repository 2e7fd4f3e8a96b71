//! Multi-factor authentication: `/api/v1/me/mfa` (status, TOTP enrolment, confirmation,
//! passkeys, disabling) and `/api/v1/auth/mfa` (the second step of a password login, answered
//! with a code or a passkey).

use super::dto::*;
use super::extract::Body;
use crate::auth::{set_session_cookie, Authed, Meta};
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use enclave_app::{MfaLogin, SecondFactor};
use enclave_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The caller's second-factor state.
#[derive(Serialize, ToSchema)]
pub struct MfaStatusOut {
    /// A second factor is on (TOTP or a passkey): password logins ask for it.
    pub enabled: bool,
    /// TOTP is confirmed.
    pub totp: bool,
    /// Passkeys registered.
    pub passkeys: u32,
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

/// The second step of a login that answered `mfa_required`: a code or a passkey.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishMfa {
    /// `details.mfa_token` of the `mfa_required` error.
    pub mfa_token: String,
    /// A current code or an unused recovery code.
    #[serde(default)]
    pub code: Option<String>,
    /// The passkey's answer (`PublicKeyCredential.toJSON()` of `navigator.credentials.get`
    /// with the options from `/api/v1/auth/mfa/passkey`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub passkey: Option<enclave_webauthn::AuthenticationResponse>,
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
        totp: st.totp,
        passkeys: st.passkeys,
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
    let answer = match (&b.code, &b.passkey) {
        (Some(code), None) => SecondFactor::Code(code),
        (None, Some(p)) => SecondFactor::Passkey(p),
        _ => {
            return Err(Error::invalid(
                "code",
                "send either `code` (a TOTP or recovery code) or `passkey`, not both",
            )
            .into())
        }
    };
    let done = s.app.finish_mfa_login(&b.mfa_token, answer, &meta).await?;
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

/// A passkey of the caller's.
#[derive(Serialize, ToSchema)]
pub struct PasskeyOut {
    /// The credential ID, base64url: names it in `…/passkeys/{id}/remove`.
    pub id: String,
    /// The owner's label.
    pub name: String,
    /// COSE algorithm: -7 ES256, -8 EdDSA, -257 RS256.
    pub algorithm: i64,
    /// Attestation the authenticator gave: `none`, `packed-self` or `packed-x5c` (chains are
    /// not checked against trust anchors).
    pub attestation: String,
    /// A synced (multi-device) passkey.
    pub backup_eligible: bool,
    /// Synced as of its last use.
    pub backed_up: bool,
    /// Transport hints (`usb`, `nfc`, `ble`, `internal`, `hybrid`, `smart-card`).
    pub transports: Vec<String>,
    /// RFC 3339 time it was added.
    pub created_at: String,
    /// RFC 3339 time it last signed a login.
    pub last_used_at: Option<String>,
}

impl From<enclave_app::Passkey> for PasskeyOut {
    fn from(p: enclave_app::Passkey) -> Self {
        PasskeyOut {
            id: p.id,
            name: p.name,
            algorithm: p.algorithm,
            attestation: p.attestation,
            backup_eligible: p.backup_eligible,
            backed_up: p.backed_up,
            transports: p.transports,
            created_at: p.created_at.rfc3339(),
            last_used_at: rfc3339(p.last_used_at),
        }
    }
}

/// Options for the browser's WebAuthn call, binary fields base64url-encoded.
#[derive(Serialize, ToSchema)]
pub struct PasskeyOptionsOut {
    /// `publicKey` for `navigator.credentials.create` or `.get` (decode `challenge`, `user.id`
    /// and the credential `id`s from base64url first).
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// Re-authentication to add or remove a passkey.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyPassword {
    /// The current password.
    pub password: String,
}

/// A new passkey: the browser's answer to the registration options.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPasskey {
    /// A label for it, at most 64 characters ("laptop", "YubiKey").
    pub name: String,
    /// `PublicKeyCredential.toJSON()` of `navigator.credentials.create`.
    #[schema(value_type = Object)]
    pub credential: enclave_webauthn::RegistrationResponse,
}

/// The added passkey, and the recovery codes when it was the first second factor.
#[derive(Serialize, ToSchema)]
pub struct PasskeyAddedOut {
    /// The new passkey.
    pub passkey: PasskeyOut,
    /// Ten one-use codes, shown once, when this turned MFA on; empty otherwise.
    pub recovery_codes: Vec<String>,
}

/// Which pending login the passkey answers.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLogin {
    /// `details.mfa_token` of the `mfa_required` error.
    pub mfa_token: String,
}

/// The caller's passkeys.
#[utoipa::path(get, path = "/api/v1/me/mfa/passkeys", tag = "auth",
    responses((status = 200, body = [PasskeyOut]), (status = 401, body = ErrorBody)))]
pub async fn passkeys(
    State(s): State<AppState>,
    Authed(c): Authed,
) -> ApiResult<Json<Vec<PasskeyOut>>> {
    let keys = s.app.passkeys(&c).await?;
    Ok(Json(keys.into_iter().map(PasskeyOut::from).collect()))
}

/// Starts adding a passkey (needs the current password): the options for
/// `navigator.credentials.create`. Answer within 5 minutes with `POST /api/v1/me/mfa/passkeys`.
#[utoipa::path(post, path = "/api/v1/me/mfa/passkeys/options", tag = "auth", request_body = PasskeyPassword,
    responses((status = 200, body = PasskeyOptionsOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn passkey_options(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<PasskeyPassword>,
) -> ApiResult<Json<PasskeyOptionsOut>> {
    let public_key = s.app.begin_passkey(&c, &b.password).await?;
    Ok(Json(PasskeyOptionsOut { public_key }))
}

/// Adds the passkey the browser created for the started registration.
#[utoipa::path(post, path = "/api/v1/me/mfa/passkeys", tag = "auth", request_body = AddPasskey,
    responses((status = 201, body = PasskeyAddedOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_passkey(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<AddPasskey>,
) -> ApiResult<(StatusCode, Json<PasskeyAddedOut>)> {
    let added = s.app.finish_passkey(&c, &b.name, &b.credential).await?;
    Ok((
        StatusCode::CREATED,
        Json(PasskeyAddedOut {
            passkey: added.passkey.into(),
            recovery_codes: added.recovery_codes.iter().map(|c| c.to_string()).collect(),
        }),
    ))
}

/// Removes one of the caller's passkeys (needs the current password; not the last second
/// factor, which `/api/v1/me/mfa/disable` turns off).
#[utoipa::path(post, path = "/api/v1/me/mfa/passkeys/{id}/remove", tag = "auth", request_body = PasskeyPassword,
    params(("id" = String, Path, description = "The passkey's id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_passkey(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
    Body(b): Body<PasskeyPassword>,
) -> ApiResult<StatusCode> {
    s.app.remove_passkey(&c, &id, &b.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The options for `navigator.credentials.get` that answer a pending login with a passkey;
/// post the answer to `/api/v1/auth/mfa` as `passkey`.
#[utoipa::path(post, path = "/api/v1/auth/mfa/passkey", tag = "auth", security(()), request_body = PasskeyLogin,
    responses((status = 200, body = PasskeyOptionsOut), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn login_passkey_options(
    State(s): State<AppState>,
    Body(b): Body<PasskeyLogin>,
) -> ApiResult<Json<PasskeyOptionsOut>> {
    let public_key = s.app.passkey_login_options(&b.mfa_token).await?;
    Ok(Json(PasskeyOptionsOut { public_key }))
}
