//! Second factors for local accounts: TOTP enrolment (with re-authentication), confirmation
//! with one-use recovery codes, disabling, and the second step of a password login (answered
//! with a code, a recovery code or a passkey, see [`crate::passkeys`]).
//!
//! Invariants:
//! * Enrolling and disabling need the current password (and, to disable, a current code or a
//!   recovery code); a wrong one is audited.
//! * The ten recovery codes are issued when an account's first second factor (TOTP or
//!   passkey) is confirmed, and stay valid while it has any.
//! * A password login of an account with a second factor opens nothing: it leaves a pending
//!   login (256-bit id, stored hashed, [`PENDING_TTL`], [`MAX_ATTEMPTS`] answers) that
//!   [`App::finish_mfa_login`] turns into a session or a token with `amr` `pwd otp mfa` (or
//!   `pwd hwk mfa` for a passkey).
//! * Each attempt is counted and committed before its code is looked at; each TOTP step and
//!   each recovery code is accepted once (atomically in the store).
//! * The TOTP secret is sealed with the platform key; secrets and codes never reach the audit
//!   trail, a log or an error.

use crate::auth::{AuthMethod, Authentication, LoginOutcome};
use crate::chokepoint::{label, Caller, RequestMeta};
use crate::passkeys::PASSKEY_AMR;
use crate::secrets::{self, hash_secret, plausible_secret, random_bytes};
use crate::tokens::TokenCreated;
use crate::{detail, App};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::authz::Action;
use enclave_core::mfa::{self, TotpSecret};
use enclave_core::model::{TokenScope, User};
use enclave_core::{names, Error, ErrorCode, Result, Timestamp};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long a pending second-factor login waits for its code.
pub const PENDING_TTL: Duration = Duration::from_secs(5 * 60);
/// Codes one pending login may try.
pub const MAX_ATTEMPTS: u32 = 5;
/// The `amr` of a session opened with a password and a TOTP or recovery code.
pub const MFA_AMR: [&str; 3] = ["pwd", "otp", "mfa"];

/// An account's second-factor state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaStatus {
    /// A second factor is on (TOTP or a passkey): password logins ask for it.
    pub enabled: bool,
    /// TOTP is confirmed.
    pub totp: bool,
    /// Passkeys registered.
    pub passkeys: u32,
    /// An enrolment was started and waits for its first code.
    pub pending_confirmation: bool,
    /// When TOTP was confirmed.
    pub confirmed_at: Option<Timestamp>,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
    /// The platform requires MFA of local accounts (`login.require_mfa`).
    pub required: bool,
    /// The account has an Enclave password (MFA here is for such accounts; directory and
    /// single sign-on accounts use their provider's).
    pub local: bool,
}

/// A started TOTP enrolment: what the authenticator app needs. Shown once.
#[derive(Clone)]
pub struct TotpEnrollment {
    /// The secret, base32.
    pub secret: Zeroizing<String>,
    /// The `otpauth://` URI.
    pub otpauth_uri: Zeroizing<String>,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: Zeroizing<String>,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment(..)")
    }
}

/// The answer to a login's second step.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor<'a> {
    /// A TOTP code or a recovery code.
    Code(&'a str),
    /// A passkey's answer to the challenge from [`App::passkey_login_options`].
    Passkey(&'a enclave_webauthn::AuthenticationResponse),
}

/// What a finished second-factor login opened.
#[derive(Debug)]
pub enum MfaLogin {
    /// A browser or API session.
    Session(LoginOutcome),
    /// A personal token (CLI login).
    Token(TokenCreated),
}

/// What a pending login opens once its code is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PendingKind {
    /// A session.
    Session,
    /// A full-scope token with this name and lifetime.
    Token {
        name: String,
        expires_in_days: Option<u32>,
    },
}

fn seal_context(user_id: &str) -> Vec<u8> {
    format!("mfa-totp:{user_id}").into_bytes()
}

fn wrong_code() -> Error {
    Error::invalid(
        "code",
        "the code is not correct: enter the current 6-digit code from your authenticator app \
         (each code works once), or one of your recovery codes",
    )
}

pub(crate) fn pending_gone() -> Error {
    Error::new(
        ErrorCode::InvalidCredentials,
        "this sign-in expired or used up its attempts; sign in again with your password",
    )
}

/// An SVG rendering of `text` as a QR code (medium error correction, 4-module quiet zone).
pub fn qr_svg(text: &str) -> Result<String> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|_| {
        Error::invalid("otpauth_uri", "the enrolment URI is too long for a QR code")
    })?;
    let border = 4;
    let size = qr.size() + 2 * border;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         width=\"240\" height=\"240\" shape-rendering=\"crispEdges\" role=\"img\" \
         aria-label=\"QR code for the authenticator app\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <path d=\"{path}\" fill=\"#000000\"/></svg>"
    ))
}

impl App {
    /// The caller's second-factor state.
    pub async fn mfa_status(&self, caller: &Caller) -> Result<MfaStatus> {
        self.authorize_self(caller, Action::SelfRead).await?;
        let me = &caller.principal.user_id;
        let row = self.store.mfa_totp(me).await?;
        let passkeys = u32::try_from(self.store.passkeys(me).await?.len()).unwrap_or(u32::MAX);
        let totp = row.as_ref().is_some_and(|r| r.confirmed_at.is_some());
        let local = self
            .store
            .user_by_id(me)
            .await?
            .is_some_and(|c| c.password_hash.is_some());
        Ok(MfaStatus {
            enabled: totp || passkeys > 0,
            totp,
            passkeys,
            pending_confirmation: row.as_ref().is_some_and(|r| r.confirmed_at.is_none()),
            confirmed_at: row.and_then(|r| r.confirmed_at),
            recovery_codes_left: self.store.mfa_recovery_left(me).await?,
            required: self.settings.require_mfa,
            local,
        })
    }

    /// Starts a TOTP enrolment after checking the caller's password: a new secret, its
    /// `otpauth://` URI and QR code. Starting again before confirming replaces the secret.
    pub async fn enroll_totp(&self, caller: &Caller, password: &str) -> Result<TotpEnrollment> {
        self.authorize_self(caller, Action::SelfChangePassword)
            .await?;
        self.reauthenticate(caller, "mfa.enroll", "password", password)
            .await?;
        let me = caller.principal.user_id.clone();
        let secret =
            TotpSecret::from_bytes(&Zeroizing::new(random_bytes::<{ mfa::SECRET_BYTES }>()?)[..]);
        let b32 = secret.to_base32();
        let uri = mfa::otpauth_uri(&secret, &caller.principal.username);
        let svg = Zeroizing::new(qr_svg(&uri)?);
        let now = self.now();
        let mut tx = self.store.write().await?;
        let sealed = self
            .seal_platform_value(&mut tx, &seal_context(&me), &b32)
            .await?;
        if !tx.begin_mfa_totp(&me, &sealed, now).await? {
            drop(tx);
            return Err(Error::new(
                ErrorCode::Conflict,
                "MFA is already on for this account; disable it first to enrol a new authenticator",
            ));
        }
        let rec = caller.record_self(
            self,
            "mfa.enroll",
            Outcome::Success,
            detail!("factor" => "totp"),
        );
        self.commit(tx, rec).await?;
        Ok(TotpEnrollment {
            secret: b32,
            otpauth_uri: uri,
            qr_svg: svg,
        })
    }

    /// Confirms the started enrolment with a first code: MFA is on from now, and the ten
    /// recovery codes are returned (shown once; only their hashes are kept) unless the
    /// account had a passkey already (its codes stay valid).
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<Vec<Zeroizing<String>>> {
        self.authorize_self(caller, Action::SelfChangePassword)
            .await?;
        let me = caller.principal.user_id.clone();
        let row = match self.store.mfa_totp(&me).await? {
            Some(r) if r.confirmed_at.is_none() => r,
            Some(_) => {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    "MFA is already on for this account",
                ))
            }
            None => {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    "no enrolment was started: start one with your password first",
                ))
            }
        };
        let secret = self.open_totp_secret(&me, &row.secret).await?;
        let now = self.now();
        let Some(step) = mfa::verify(&secret, code, now, None) else {
            let rec = caller.record_self(
                self,
                "mfa.confirm",
                Outcome::Failure,
                detail!("reason" => "code wrong"),
            );
            self.audit(rec).await?;
            return Err(wrong_code());
        };
        let mut tx = self.store.write().await?;
        let had_factor = self.has_second_factor_tx(&mut tx, &me).await?;
        if !tx.confirm_mfa_totp(&me, step, now).await? {
            drop(tx);
            return Err(Error::new(
                ErrorCode::Conflict,
                "the enrolment changed meanwhile; start it again",
            ));
        }
        let codes = if had_factor {
            Vec::new()
        } else {
            self.issue_recovery_codes(&mut tx, &me).await?
        };
        let rec = caller.record_self(
            self,
            "mfa.confirm",
            Outcome::Success,
            detail!("factor" => "totp", "recovery_codes" => codes.len()),
        );
        self.commit(tx, rec).await?;
        Ok(codes)
    }

    /// Turns MFA off after checking the password and a current code or a recovery code: the
    /// TOTP secret, every passkey and the recovery codes are removed.
    pub async fn disable_mfa(&self, caller: &Caller, password: &str, code: &str) -> Result<()> {
        self.authorize_self(caller, Action::SelfChangePassword)
            .await?;
        self.reauthenticate(caller, "mfa.disable", "password", password)
            .await?;
        let me = caller.principal.user_id.clone();
        let row = self.store.mfa_totp(&me).await?;
        let passkeys = self.store.passkeys(&me).await?.len();
        if row.is_none() && passkeys == 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                "MFA is not on for this account",
            ));
        }
        let totp = self.confirmed_totp(&me, row).await?;
        let mut tx = self.store.write().await?;
        let used = if totp.is_some() || passkeys > 0 {
            self.use_second_factor(&mut tx, &me, totp.as_ref(), code)
                .await?
        } else {
            // An unconfirmed enrolment is dropped with the password alone.
            Some("none")
        };
        let Some(factor) = used else {
            drop(tx);
            let rec = caller.record_self(
                self,
                "mfa.disable",
                Outcome::Failure,
                detail!("reason" => "code wrong"),
            );
            self.audit(rec).await?;
            return Err(wrong_code());
        };
        tx.delete_mfa(&me).await?;
        let rec = caller.record_self(
            self,
            "mfa.disable",
            Outcome::Success,
            detail!("factor_used" => factor),
        );
        self.commit(tx, rec).await
    }

    /// Removes another account's second factors (TOTP, passkeys, recovery codes) for someone
    /// who lost them (`user.reset_mfa`, platform admins), and ends that account's sessions.
    /// One's own factors are changed on the account page, with the password and a code.
    pub async fn reset_user_mfa(&self, caller: &Caller, username: &str) -> Result<()> {
        let user = self
            .find_user_authorized(caller, Action::UserResetMfa, username, false)
            .await?;
        if user.id == caller.principal.user_id {
            return Err(Error::new(
                ErrorCode::Conflict,
                "you cannot reset your own second factors here: turn them off on your account \
                 page with your password and a code, or ask another administrator",
            ));
        }
        let mut tx = self.store.write().await?;
        let had = tx.delete_mfa(&user.id).await?;
        let ended = tx.delete_sessions_of(&user.id).await?;
        let rec = caller.record(
            self,
            Action::UserResetMfa.as_str(),
            label("user", username),
            None,
            Outcome::Success,
            detail!("had_mfa" => had, "sessions_ended" => ended),
        );
        self.commit(tx, rec).await
    }

    /// The account's confirmed TOTP secret and last used step, opened; `None` without one.
    async fn confirmed_totp(
        &self,
        user_id: &str,
        row: Option<enclave_store::MfaTotpRow>,
    ) -> Result<Option<(TotpSecret, Option<u64>)>> {
        match row.filter(|r| r.confirmed_at.is_some()) {
            Some(r) => Ok(Some((
                self.open_totp_secret(user_id, &r.secret).await?,
                r.last_step,
            ))),
            None => Ok(None),
        }
    }

    /// Ten new recovery codes for the account, replacing any it had; only their hashes are
    /// stored, inside `tx`.
    pub(crate) async fn issue_recovery_codes(
        &self,
        tx: &mut enclave_store::WriteTx,
        user_id: &str,
    ) -> Result<Vec<Zeroizing<String>>> {
        let mut codes = Vec::with_capacity(mfa::RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(mfa::RECOVERY_CODES);
        for _ in 0..mfa::RECOVERY_CODES {
            let c = mfa::recovery_code(&random_bytes::<{ mfa::RECOVERY_CODE_BYTES }>()?);
            hashes.push(mfa::hash_recovery_code(&c).ok_or_else(Error::internal)?);
            codes.push(c);
        }
        tx.replace_mfa_recovery(user_id, &hashes).await?;
        Ok(codes)
    }

    async fn open_totp_secret(&self, user_id: &str, sealed: &str) -> Result<TotpSecret> {
        let b32 = self
            .open_platform_value(&seal_context(user_id), sealed)
            .await?;
        TotpSecret::from_base32(&b32).ok_or_else(|| {
            tracing::error!("a stored TOTP secret is not base32");
            Error::internal()
        })
    }

    /// Accepts a TOTP code (a step later than the last used, when the account has TOTP) or an
    /// unused recovery code inside `tx`; returns which (`totp` or `recovery_code`), or `None`
    /// when neither matches.
    async fn use_second_factor(
        &self,
        tx: &mut enclave_store::WriteTx,
        user_id: &str,
        totp: Option<&(TotpSecret, Option<u64>)>,
        code: &str,
    ) -> Result<Option<&'static str>> {
        let now = self.now();
        if mfa::looks_like_code(code) {
            if let Some((secret, last_step)) = totp {
                if let Some(step) = mfa::verify(secret, code, now, *last_step) {
                    if tx.use_mfa_step(user_id, step).await? {
                        return Ok(Some("totp"));
                    }
                }
            }
            return Ok(None);
        }
        if let Some(hash) = mfa::hash_recovery_code(code) {
            if tx.use_mfa_recovery(user_id, &hash, now).await? {
                return Ok(Some("recovery_code"));
            }
        }
        Ok(None)
    }

    /// After a right password: when the account has a second factor, stores a pending login
    /// and returns the `mfa_required` error carrying its one-use id as `mfa_token` and the
    /// accepted answers as `factors`; `None` when no second factor is needed.
    pub(crate) async fn second_factor_gate(
        &self,
        user: &User,
        kind: PendingKind,
        meta: &RequestMeta,
    ) -> Result<Option<Error>> {
        let totp = self
            .store
            .mfa_totp(&user.id)
            .await?
            .is_some_and(|r| r.confirmed_at.is_some());
        let passkeys = !self.store.passkeys(&user.id).await?.is_empty();
        if !totp && !passkeys {
            return Ok(None);
        }
        let mut factors = Vec::new();
        if totp {
            factors.push("totp");
        }
        if passkeys {
            factors.push("passkey");
        }
        factors.push("recovery_code");
        let now = self.now();
        let token = Zeroizing::new(secrets::new_secret()?);
        let (kind_name, detail) = match &kind {
            PendingKind::Session => ("session", serde_json::json!({})),
            PendingKind::Token {
                name,
                expires_in_days,
            } => (
                "token",
                serde_json::json!({"name": name, "expires_in_days": expires_in_days}),
            ),
        };
        let mut tx = self.store.write().await?;
        tx.prune_mfa_pending(Timestamp(now.unix() - PENDING_TTL.as_secs() as i64))
            .await?;
        tx.insert_mfa_pending(
            &hash_secret(&token),
            &user.id,
            kind_name,
            &detail.to_string(),
            now,
        )
        .await?;
        let rec = self.mfa_record(
            meta,
            &user.username,
            "auth.mfa",
            Outcome::Success,
            detail!("step" => "code requested", "opens" => kind_name),
        );
        self.commit(tx, rec).await?;
        let message = if totp {
            "enter the 6-digit code from your authenticator app (or a recovery code) to finish \
             signing in"
        } else {
            "confirm with your passkey (or enter a recovery code) to finish signing in"
        };
        Ok(Some(
            Error::new(ErrorCode::MfaRequired, message)
                .with("mfa_token", token.as_str())
                .with("factors", factors),
        ))
    }

    fn mfa_record(
        &self,
        meta: &RequestMeta,
        actor: &str,
        action: &str,
        outcome: Outcome,
        detail: serde_json::Map<String, serde_json::Value>,
    ) -> AuditRecord {
        AuditRecord {
            outcome,
            detail,
            ..meta.record(self.now(), actor, "password", action, label("user", actor))
        }
    }

    /// The pending login named by `mfa_token` (its store key and row), when it is still
    /// open: not expired and with attempts left. Counts no attempt.
    pub(crate) async fn pending_login(
        &self,
        mfa_token: &str,
    ) -> Result<(String, enclave_store::MfaPendingRow)> {
        if !plausible_secret(mfa_token) {
            return Err(pending_gone());
        }
        let key = hash_secret(mfa_token);
        let Some(pending) = self.store.mfa_pending(&key).await? else {
            return Err(pending_gone());
        };
        let expired = self.now().unix() >= pending.created_at.unix() + PENDING_TTL.as_secs() as i64;
        if expired || pending.attempts >= MAX_ATTEMPTS {
            return Err(pending_gone());
        }
        Ok((key, pending))
    }

    /// Finishes a password login that answered `mfa_required`: checks the answer (a TOTP
    /// code, a recovery code or a passkey) against the pending login named by `mfa_token`,
    /// then opens what the login asked for, with `amr` [`MFA_AMR`] (or [`PASSKEY_AMR`]). Each
    /// pending login takes at most [`MAX_ATTEMPTS`] answers within [`PENDING_TTL`].
    pub async fn finish_mfa_login(
        &self,
        mfa_token: &str,
        answer: SecondFactor<'_>,
        meta: &RequestMeta,
    ) -> Result<MfaLogin> {
        let oversized = matches!(answer, SecondFactor::Code(c) if c.len() > mfa::MAX_INPUT);
        if !plausible_secret(mfa_token) || oversized {
            return Err(pending_gone());
        }
        let key = hash_secret(mfa_token);
        let now = self.now();
        // Count the attempt before the code is looked at.
        let mut tx = self.store.write().await?;
        let Some(pending) = tx.attempt_mfa_pending(&key).await? else {
            drop(tx);
            let rec = self.mfa_record(
                meta,
                "unknown",
                "auth.mfa",
                Outcome::Failure,
                detail!("reason" => "unknown or finished sign-in"),
            );
            self.audit(rec).await?;
            return Err(pending_gone());
        };
        let expired = now.unix() >= pending.created_at.unix() + PENDING_TTL.as_secs() as i64;
        let too_many = pending.attempts > MAX_ATTEMPTS;
        if expired || too_many {
            tx.delete_mfa_pending(&key).await?;
        }
        tx.commit().await?;
        let creds = self.store.user_by_id(&pending.user_id).await?;
        let Some(user) = creds.map(|c| c.user) else {
            return Err(pending_gone());
        };
        if expired || too_many || user.disabled {
            let reason = if user.disabled {
                "account disabled"
            } else if expired {
                "expired"
            } else {
                "too many attempts"
            };
            let rec = self.mfa_record(
                meta,
                &user.username,
                "auth.mfa",
                Outcome::Failure,
                detail!("reason" => reason),
            );
            self.audit(rec).await?;
            return Err(pending_gone());
        }
        let totp = self.store.mfa_totp(&user.id).await?;
        let totp = self.confirmed_totp(&user.id, totp).await?;
        let mut tx = self.store.write().await?;
        let used = match answer {
            SecondFactor::Code(code) => self
                .use_second_factor(&mut tx, &user.id, totp.as_ref(), code)
                .await?
                .ok_or(("code wrong".to_string(), wrong_code())),
            SecondFactor::Passkey(response) => self
                .use_passkey(&mut tx, &key, &user.id, response)
                .await?
                .map(|()| "passkey")
                .map_err(|r| (r.reason(), r.error())),
        };
        let factor = match used {
            Ok(f) => f,
            Err((reason, refusal)) => {
                let left = MAX_ATTEMPTS.saturating_sub(pending.attempts);
                if left == 0 {
                    tx.delete_mfa_pending(&key).await?;
                }
                let rec = self.mfa_record(
                    meta,
                    &user.username,
                    "auth.mfa",
                    Outcome::Failure,
                    detail!("reason" => reason, "attempts_left" => left),
                );
                self.commit(tx, rec).await?;
                return Err(if left == 0 {
                    pending_gone()
                } else {
                    refusal.with("attempts_left", left)
                });
            }
        };
        tx.delete_mfa_pending(&key).await?;
        let rec = self.mfa_record(
            meta,
            &user.username,
            "auth.mfa",
            Outcome::Success,
            detail!("factor" => factor),
        );
        self.commit(tx, rec).await?;
        if factor == "recovery_code" {
            let left = self.store.mfa_recovery_left(&user.id).await?;
            let rec = self.mfa_record(
                meta,
                &user.username,
                "mfa.recovery_used",
                Outcome::Success,
                detail!("recovery_codes_left" => left),
            );
            self.audit(rec).await?;
        }
        let amr: &[&str] = if factor == "passkey" {
            &PASSKEY_AMR
        } else {
            &MFA_AMR
        };
        let auth = Authentication {
            method: AuthMethod::Password,
            amr: amr.iter().map(|s| s.to_string()).collect(),
            acr: None,
        };
        match pending.kind.as_str() {
            "token" => {
                let d: serde_json::Value =
                    serde_json::from_str(&pending.detail).map_err(|_| Error::internal())?;
                let name = d["name"].as_str().unwrap_or("cli").to_string();
                names::text("name", &name, true)?;
                let days = d["expires_in_days"]
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok());
                let caller = Caller {
                    principal: crate::auth::principal(
                        &user,
                        enclave_core::authz::Credential::Session {
                            mfa: true,
                            local: true,
                        },
                    ),
                    session_id: None,
                    token_id: None,
                    meta: meta.clone(),
                };
                let t = self
                    .create_token(&caller, &name, TokenScope::Full, Vec::new(), days)
                    .await?;
                Ok(MfaLogin::Token(t))
            }
            _ => Ok(MfaLogin::Session(
                self.open_session(&user, &auth, meta).await?,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn qr_svg_is_an_svg_of_modules() {
        let svg = qr_svg("otpauth://totp/Enclave:ada?secret=ABC").unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.matches("h1v1h-1z").count() > 100);
        assert!(!svg.contains("<script"));
        assert!(qr_svg(&"x".repeat(5000)).is_err());
    }
}
