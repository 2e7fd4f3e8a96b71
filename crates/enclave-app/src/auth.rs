//! Authentication: password login with throttling, sessions, bearer tokens, logout.

use crate::chokepoint::{label, Caller, RequestMeta};
use crate::memo::Resolved;
use crate::secrets::{self, hash_secret, plausible_secret, TOKEN_PREFIX};
use crate::{detail, App};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::authz::{Action, Credential, Principal};
use enclave_core::model::User;
use enclave_core::session::not_expired;
use enclave_core::throttle::ThrottleRule;
use enclave_core::{password, Error, ErrorCode, Result, Timestamp};
use std::time::Duration;

/// Activity is written back at most this often per session or token, keeping reads cheap.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// How a session was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Username and password of a local account.
    Password,
    /// Username and password checked by an LDAP / Active Directory source.
    Ldap,
    /// OpenID Connect single sign-on.
    Oidc,
}

impl AuthMethod {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Ldap => "ldap",
            AuthMethod::Oidc => "oidc",
        }
    }
}

/// How a person proved who they are, recorded with their session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// The method.
    pub method: AuthMethod,
    /// Authentication method references (RFC 8176), e.g. `pwd`, `otp`, `mfa`; an OIDC
    /// provider's `amr` as it sent them.
    pub amr: Vec<String>,
    /// An OIDC provider's authentication context class (`acr`).
    pub acr: Option<String>,
}

impl Authentication {
    /// A password checked by Enclave or a directory.
    pub fn password(method: AuthMethod) -> Authentication {
        Authentication {
            method,
            amr: vec!["pwd".into()],
            acr: None,
        }
    }
}

/// A successful session login: the cookie secret (give it to the client, never store it) and
/// the user.
#[derive(Debug)]
pub struct LoginOutcome {
    /// The session secret for the cookie.
    pub session_secret: String,
    /// The CSRF token bound to this session.
    pub csrf_token: String,
    /// The caller, ready for further requests.
    pub caller: Caller,
}

fn invalid_credentials() -> Error {
    Error::new(
        ErrorCode::InvalidCredentials,
        "invalid username or password",
    )
}

fn locked() -> Error {
    Error::new(
        ErrorCode::TooManyAttempts,
        "too many failed logins; wait and try again, or ask a platform admin to unlock the account",
    )
}

pub(crate) fn account_key(username: &str) -> String {
    format!("user:{username}")
}

fn address_key(source: &str) -> String {
    format!("addr:{source}")
}

/// Derives the CSRF token of a session from its secret.
pub fn csrf_token_for(session_secret: &str) -> String {
    secrets::mac(session_secret, "enclave-csrf-v1")
}

impl App {
    fn anonymous_record(
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

    /// Checks a username and password. Unknown users, wrong passwords and disabled accounts give
    /// the same answer in the same time. Failures count towards per-account and per-address
    /// lockouts; every attempt is audited.
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<User> {
        let now = self.now();
        // Bound what reaches the audit trail and the store: an over-long name is not a user.
        let name: String = username.chars().take(64).collect();
        let akey = account_key(&name);
        let skey = address_key(&meta.source);
        let s = &self.settings;
        let acct = self.store.throttle(&akey).await?;
        let addr = self.store.throttle(&skey).await?;
        if s.account_throttle.is_locked(&acct, now) || s.address_throttle.is_locked(&addr, now) {
            let rec = self.anonymous_record(
                meta,
                &name,
                "auth.login",
                Outcome::Failure,
                detail!("reason" => "locked"),
            );
            self.audit(rec).await?;
            return Err(locked());
        }
        let creds = if enclave_core::names::username("username", &name).is_ok() {
            self.store.user_credentials(&name).await?
        } else {
            None
        };
        let usable = password.len() <= 4 * password::MAX_LEN && !password.is_empty();
        let hash = match &creds {
            Some(c) => {
                self.open_password_hash(&c.user.id, c.password_hash.as_deref())
                    .await?
            }
            None => None,
        };
        let verified = self
            .hasher
            .verify(
                if usable { password } else { "" },
                hash.as_deref().map(|h| h.as_str()),
            )
            .await?
            && usable;
        match creds {
            Some(c) if verified && !c.user.disabled => {
                let mut tx = self.store.write().await?;
                tx.clear_throttle(&akey).await?;
                let rec = self.anonymous_record(
                    meta,
                    &name,
                    "auth.login",
                    Outcome::Success,
                    detail!("method" => "password"),
                );
                self.commit(tx, rec).await?;
                Ok(c.user)
            }
            c => {
                let reason = match c {
                    Some(c) if c.user.disabled && verified => "account disabled",
                    _ => "invalid credentials",
                };
                let mut tx = self.store.write().await?;
                // Re-read inside the write transaction so concurrent failures all count.
                let acct = self.store.throttle(&akey).await?;
                let addr = self.store.throttle(&skey).await?;
                let acct = s.account_throttle.after_failure(&acct, now);
                let addr = s.address_throttle.after_failure(&addr, now);
                tx.put_throttle(&akey, &acct).await?;
                tx.put_throttle(&skey, &addr).await?;
                let mut d = detail!("reason" => reason);
                if locks_now(&s.account_throttle, &acct, now) {
                    d.insert("lockout".into(), "account".into());
                }
                if locks_now(&s.address_throttle, &addr, now) {
                    d.insert("lockout_address".into(), meta.source.clone().into());
                }
                let rec = self.anonymous_record(meta, &name, "auth.login", Outcome::Failure, d);
                self.commit(tx, rec).await?;
                Err(invalid_credentials())
            }
        }
    }

    /// Password login that opens a session.
    pub async fn login_session(
        &self,
        username: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let user = self.check_password(username, password, meta).await?;
        if let Some(e) = self
            .second_factor_gate(&user, crate::mfa::PendingKind::Session, meta)
            .await?
        {
            return Err(e);
        }
        self.open_session(&user, &Authentication::password(AuthMethod::Password), meta)
            .await
    }

    /// Opens a session for an already authenticated user (a fresh id every login).
    pub async fn open_session(
        &self,
        user: &User,
        auth: &Authentication,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let now = self.now();
        let secret = secrets::new_secret()?;
        let id = secrets::new_id("ses")?;
        let amr = auth.amr.join(" ");
        let mut tx = self.store.write().await?;
        tx.insert_session(
            &id,
            &hash_secret(&secret),
            &user.id,
            &enclave_store::SessionAuth {
                method: auth.method.as_str(),
                amr: &amr,
                acr: auth.acr.as_deref(),
            },
            &meta.source,
            now,
        )
        .await?;
        let caller = Caller {
            principal: principal(
                user,
                Credential::Session {
                    mfa: enclave_core::mfa::amr_has_second_factor(&amr),
                    local: auth.method == AuthMethod::Password,
                },
            ),
            session_id: Some(id.clone()),
            token_id: None,
            meta: meta.clone(),
        };
        let rec = caller.record(
            self,
            "session.create",
            label("user", &user.username),
            None,
            Outcome::Success,
            {
                let mut d =
                    detail!("method" => auth.method.as_str(), "session" => id, "amr" => amr);
                if let Some(acr) = &auth.acr {
                    d.insert("acr".into(), acr.clone().into());
                }
                d
            },
        );
        self.commit(tx, rec).await?;
        Ok(LoginOutcome {
            csrf_token: csrf_token_for(&secret),
            session_secret: secret,
            caller,
        })
    }

    /// Resolves a session cookie value into a caller; `None` when unknown, expired or the
    /// account is disabled.
    pub async fn authenticate_session(
        &self,
        secret: &str,
        meta: &RequestMeta,
    ) -> Result<Option<Caller>> {
        if !plausible_secret(secret) {
            return Ok(None);
        }
        let key = hash_secret(secret);
        let now = self.now();
        let (session, user) = match self.auth_cache.get(&key, now) {
            (Some(Resolved::Session(s, u)), _) => (s, u),
            (_, generation) => {
                let Some((s, u)) = self.store.session_by_hash(&key).await? else {
                    return Ok(None);
                };
                let value = Resolved::Session(s.clone(), u.clone());
                self.auth_cache.put(key.clone(), value, now, generation);
                (s, u)
            }
        };
        if user.disabled
            || !self
                .settings
                .sessions
                .is_live(session.created_at, session.last_seen_at, now)
        {
            return Ok(None);
        }
        if now >= session.last_seen_at.plus(TOUCH_INTERVAL) {
            let mut tx = self.store.write().await?;
            tx.touch_session(&session.id, now).await?;
            tx.commit().await?;
            self.auth_cache.update(&key, |r| {
                if let Resolved::Session(s, _) = r {
                    s.last_seen_at = now;
                }
            });
        }
        Ok(Some(Caller {
            principal: principal(
                &user,
                Credential::Session {
                    mfa: enclave_core::mfa::amr_has_second_factor(&session.amr),
                    local: session.auth_method == AuthMethod::Password.as_str(),
                },
            ),
            session_id: Some(session.id),
            token_id: None,
            meta: meta.clone(),
        }))
    }

    /// Resolves a bearer token into a caller; `None` when malformed, unknown, expired, revoked
    /// or the account is disabled.
    pub async fn authenticate_token(
        &self,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<Option<Caller>> {
        let Some(secret) = token.strip_prefix(TOKEN_PREFIX) else {
            return Ok(None);
        };
        if !plausible_secret(secret) {
            return Ok(None);
        }
        let key = hash_secret(token);
        let now = self.now();
        let (t, user) = match self.auth_cache.get(&key, now) {
            (Some(Resolved::Token(t, u)), _) => (t, u),
            (_, generation) => {
                let Some((t, u)) = self.store.token_by_hash(&key).await? else {
                    return Ok(None);
                };
                self.auth_cache.put(
                    key.clone(),
                    Resolved::Token(t.clone(), u.clone()),
                    now,
                    generation,
                );
                (t, u)
            }
        };
        if user.disabled || t.revoked_at.is_some() || !not_expired(t.expires_at, now) {
            return Ok(None);
        }
        if t.last_used_at
            .is_none_or(|last| now >= last.plus(TOUCH_INTERVAL))
        {
            let mut tx = self.store.write().await?;
            tx.touch_token(&t.id, now).await?;
            tx.commit().await?;
            self.auth_cache.update(&key, |r| {
                if let Resolved::Token(t, _) = r {
                    t.last_used_at = Some(now);
                }
            });
        }
        // Token use is audited coalesced: one record per token, address and minute.
        self.note_token_use(&crate::token_use::TokenRequest {
            token_id: &t.id,
            actor: &user.username,
            source: &meta.source,
            request_id: &meta.request_id,
        })
        .await?;
        Ok(Some(Caller {
            principal: principal(
                &user,
                Credential::Token {
                    scope: t.scope,
                    projects: t.projects,
                },
            ),
            session_id: None,
            token_id: Some(t.id),
            meta: meta.clone(),
        }))
    }

    /// Ends the caller's session, or revokes the token it used.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let resource = if let Some(id) = &caller.session_id {
            tx.delete_session(id).await?;
            label("session", id)
        } else if let Some(id) = &caller.token_id {
            tx.revoke_token(id, now).await?;
            label("token", id)
        } else {
            return Err(Error::unauthenticated());
        };
        let rec = caller.record(
            self,
            "auth.logout",
            resource,
            None,
            Outcome::Success,
            detail!(),
        );
        self.commit(tx, rec).await
    }

    /// Checks the caller's Enclave password again before a sensitive change (`field` names the
    /// form field it came in). A wrong one is audited as a failed `action` and refused as
    /// invalid input; an account without an Enclave password (directory, single sign-on) is
    /// refused as a conflict.
    pub(crate) async fn reauthenticate(
        &self,
        caller: &Caller,
        action: &str,
        field: &str,
        password: &str,
    ) -> Result<()> {
        let me = &caller.principal.user_id;
        let Some(creds) = self.store.user_by_id(me).await? else {
            return Err(Error::unauthenticated());
        };
        let stored = self
            .open_password_hash(me, creds.password_hash.as_deref())
            .await?;
        if stored.is_none() {
            return Err(Error::new(
                ErrorCode::Conflict,
                "this account has no Enclave password: it signs in through its directory or \
                 single sign-on provider",
            ));
        }
        let usable = !password.is_empty() && password.len() <= 4 * password::MAX_LEN;
        let ok = self
            .hasher
            .verify(
                if usable { password } else { "" },
                stored.as_deref().map(|h| h.as_str()),
            )
            .await?
            && usable;
        if !ok {
            let words = field.replace('_', " ");
            let rec = caller.record_self(
                self,
                action,
                Outcome::Failure,
                detail!("reason" => format!("{words} wrong")),
            );
            self.audit(rec).await?;
            return Err(Error::invalid(field, format!("the {words} is not correct")));
        }
        Ok(())
    }

    /// Changes the caller's own password after checking the current one; ends all sessions
    /// of the account.
    pub async fn change_own_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
    ) -> Result<()> {
        let me = caller.principal.user_id.clone();
        self.authorize_self(caller, Action::SelfChangePassword)
            .await?;
        self.reauthenticate(
            caller,
            Action::SelfChangePassword.as_str(),
            "current_password",
            current,
        )
        .await?;
        let Some(creds) = self.store.user_by_id(&me).await? else {
            return Err(Error::unauthenticated());
        };
        check_new_password(new, &creds.user.username)?;
        let hash = self.hasher.hash(new).await?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let hash = self.seal_password_hash(&mut tx, &me, &hash).await?;
        tx.set_password(&me, &hash, now).await?;
        let ended = tx.delete_sessions_of(&me).await?;
        let rec = caller.record_self(
            self,
            Action::SelfChangePassword.as_str(),
            Outcome::Success,
            detail!("sessions_ended" => ended),
        );
        self.commit(tx, rec).await
    }
}

fn locks_now(
    rule: &ThrottleRule,
    s: &enclave_core::throttle::ThrottleState,
    now: Timestamp,
) -> bool {
    rule.is_locked(s, now) && s.failures == rule.max_failures
}

/// Validates a new password against the policy, as an `invalid_input` error on `password`.
pub(crate) fn check_new_password(password: &str, username: &str) -> Result<()> {
    password::check_password(password, username)
        .map_err(|p| Error::invalid("password", p.to_string()))
}

pub(crate) fn principal(user: &User, credential: Credential) -> Principal {
    Principal {
        user_id: user.id.clone(),
        username: user.username.clone(),
        platform_admin: user.platform_admin,
        credential,
    }
}
