//! The visitor's own things: personal API tokens and the account (profile, session, password).

use super::guard::{Button, PageQuery, Post, Visitor};
use super::page::{
    done, fail, finish, in_form, next_href, render, repeated, span, status, when, Chrome, Problem,
};
use super::projects::LIST_LIMIT;
use crate::auth::{clear_session_cookie, ConsoleSession};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use enclave_core::model::{ApiToken, PageRequest, TokenScope};
use enclave_core::session::not_expired;
use enclave_core::{Error, Timestamp};
use serde::Deserialize;

struct TokenRow {
    id: String,
    name: String,
    scope: &'static str,
    projects: String,
    created: String,
    expires: String,
    last_used: String,
    state: &'static str,
    live: bool,
}

/// A token's state for people: `revoked`, `expired` or `active`.
fn token_state(t: &ApiToken, now: Timestamp) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if !not_expired(t.expires_at, now) {
        "expired"
    } else {
        "active"
    }
}

/// The projects a token is limited to, for people.
fn projects_label(projects: &[String]) -> String {
    if projects.is_empty() {
        "all your projects".into()
    } else {
        projects.join(", ")
    }
}

fn token_row(t: ApiToken, now: Timestamp) -> TokenRow {
    let state = token_state(&t, now);
    TokenRow {
        state,
        live: state == "active",
        scope: t.scope.as_str(),
        projects: projects_label(&t.projects),
        created: when(t.created_at),
        expires: when(t.expires_at),
        last_used: t.last_used_at.map_or_else(|| "never".into(), when),
        id: t.id,
        name: t.name,
    }
}

/// Values of the create-token form, kept when it is shown again.
struct TokenDraft {
    name: String,
    scope: String,
    projects: String,
    expires_in_days: String,
}

impl Default for TokenDraft {
    fn default() -> Self {
        TokenDraft {
            name: String::new(),
            scope: TokenScope::Read.as_str().into(),
            projects: String::new(),
            expires_in_days: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    tokens: Vec<TokenRow>,
    next: Option<String>,
    draft: TokenDraft,
    max_days: u64,
}

async fn tokens_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    draft: TokenDraft,
    problem: Option<Problem>,
) -> Response {
    let listed = match PageRequest::new(Some(LIST_LIMIT), q.after) {
        Ok(page) => s.app.list_tokens(&session.caller, &page).await,
        Err(e) => Err(e),
    };
    let list = match listed {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let now = s.app.now();
    let page = TokensPage {
        chrome: Chrome::new("API tokens", "tokens", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        tokens: list.items.into_iter().map(|t| token_row(t, now)).collect(),
        next: next_href("/tokens", list.next.as_deref()),
        draft,
        max_days: s.app.settings().tokens.max_lifetime.as_secs() / 86_400,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /tokens`.
pub async fn tokens(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    q: PageQuery,
) -> Response {
    tokens_page(&s, &session, q, TokenDraft::default(), None).await
}

/// The create-token form.
#[derive(Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    /// Project names separated by commas; empty for all.
    #[serde(default)]
    projects: String,
    /// Whole days; empty for the default lifetime.
    #[serde(default)]
    expires_in_days: String,
}

/// Splits the comma-separated project list, dropping blanks.
fn parse_projects(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads the optional lifetime in days.
fn parse_days(s: &str) -> Result<Option<u32>, Error> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u32>().map(Some).map_err(|_| {
        Error::invalid(
            "expires_in_days",
            "expires in: enter a whole number of days, or leave it empty for the default",
        )
    })
}

#[derive(Template)]
#[template(path = "token_created.html")]
struct TokenCreatedPage {
    chrome: Chrome,
    name: String,
    scope: &'static str,
    projects: String,
    expires: String,
    secret: String,
}

/// `POST /tokens`: creates a token and shows its secret once.
pub async fn create_token(
    State(s): State<AppState>,
    Post { session, form: f }: Post<NewTokenForm>,
) -> Response {
    let scope = TokenScope::parse(&f.scope)
        .ok_or_else(|| Error::invalid("scope", "choose a scope: read or full"));
    let created = match (scope, parse_days(&f.expires_in_days)) {
        (Ok(scope), Ok(days)) => {
            s.app
                .create_token(
                    &session.caller,
                    &f.name,
                    scope,
                    parse_projects(&f.projects),
                    days,
                )
                .await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match created {
        Ok(c) => {
            let page = TokenCreatedPage {
                chrome: Chrome::new("Token created", "tokens", Some(&session)),
                name: c.token.name,
                scope: c.token.scope.as_str(),
                projects: projects_label(&c.token.projects),
                expires: when(c.token.expires_at),
                secret: c.secret,
            };
            let mut resp = render(StatusCode::CREATED, &page);
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) if in_form(&e) => {
            let draft = TokenDraft {
                name: f.name,
                scope: f.scope,
                projects: f.projects,
                expires_in_days: f.expires_in_days,
            };
            tokens_page(
                &s,
                &session,
                PageQuery::default(),
                draft,
                Some(Problem::of(e)),
            )
            .await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// `POST /tokens/{id}/revoke`.
pub async fn revoke_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s.app.revoke_token(&session.caller, &id).await;
    finish(result, &session, "/tokens", "token-revoked", |p| {
        tokens_page(
            &s,
            &session,
            PageQuery::default(),
            TokenDraft::default(),
            Some(p),
        )
    })
    .await
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    username: String,
    display_name: String,
    email: String,
    admin: bool,
    created: String,
    session: SessionFacts,
    mfa: Option<enclave_app::MfaStatus>,
}

/// What the console knows about the visitor's current session.
struct SessionFacts {
    username: String,
    admin: bool,
    source: String,
    idle: String,
    absolute: String,
}

impl SessionFacts {
    fn of(s: &AppState, session: &ConsoleSession) -> SessionFacts {
        let policy = &s.app.settings().sessions;
        SessionFacts {
            username: session.caller.principal.username.clone(),
            admin: session.caller.principal.platform_admin,
            source: session.caller.meta.source.clone(),
            idle: span(policy.idle),
            absolute: span(policy.absolute),
        }
    }
}

async fn account_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    let user = match s
        .app
        .get_user(&session.caller, &session.caller.principal.username)
        .await
    {
        Ok(u) => u,
        Err(e) => return fail(&e, Some(session)),
    };
    let page = AccountPage {
        chrome: Chrome::new("Account", "account", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        username: user.username,
        display_name: user.display_name,
        email: user.email,
        admin: user.platform_admin,
        created: when(user.created_at),
        session: SessionFacts::of(s, session),
        mfa: s.app.mfa_status(&session.caller).await.ok(),
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /account`.
pub async fn account(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    q: PageQuery,
) -> Response {
    account_page(&s, &session, q, None).await
}

/// The change-password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    repeat: String,
}

/// `POST /account/password`: on success every session ended, so the visitor logs in again.
pub async fn change_password(
    State(s): State<AppState>,
    Post { session, form: f }: Post<PasswordForm>,
) -> Response {
    if let Err(e) = repeated(&f.new, &f.repeat) {
        return account_page(&s, &session, PageQuery::default(), Some(Problem::of(e))).await;
    }
    match s
        .app
        .change_own_password(&session.caller, &f.current, &f.new)
        .await
    {
        Ok(()) => {
            let mut resp = done("/login", "password-changed");
            resp.headers_mut()
                .insert(header::SET_COOKIE, clear_session_cookie());
            resp
        }
        Err(e) if in_form(&e) => {
            account_page(&s, &session, PageQuery::default(), Some(Problem::of(e))).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(revoked: bool, expires: i64) -> ApiToken {
        ApiToken {
            id: "tok_1".into(),
            user_id: "usr_1".into(),
            name: "laptop".into(),
            scope: TokenScope::Read,
            projects: vec![],
            created_at: Timestamp(0),
            expires_at: Timestamp(expires),
            last_used_at: None,
            revoked_at: revoked.then_some(Timestamp(5)),
        }
    }

    #[test]
    fn token_states() {
        assert_eq!(token_state(&token(false, 100), Timestamp(10)), "active");
        assert_eq!(token_state(&token(false, 100), Timestamp(100)), "expired");
        assert_eq!(token_state(&token(true, 100), Timestamp(10)), "revoked");
        let row = token_row(token(false, 100), Timestamp(10));
        assert!(row.live);
        assert_eq!(row.last_used, "never");
        assert_eq!(row.projects, "all your projects");
    }

    #[test]
    fn parses_token_form_fields() {
        assert_eq!(parse_projects(" a, b ,,c "), vec!["a", "b", "c"]);
        assert!(parse_projects("  ").is_empty());
        assert_eq!(parse_days(""), Ok(None));
        assert_eq!(parse_days(" 7 "), Ok(Some(7)));
        assert!(parse_days("seven").is_err());
        assert!(parse_days("-1").is_err());
    }
}

/// A passkey row of the MFA page.
struct PasskeyItem {
    id: String,
    name: String,
    backup_eligible: bool,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "account_mfa.html")]
struct MfaPage {
    chrome: Chrome,
    status: enclave_app::MfaStatus,
    username: String,
    /// The QR code (an SVG Enclave drew) and the secret, right after enrolment started.
    enrollment: Option<(String, String)>,
    /// The recovery codes, right after the first second factor was confirmed.
    recovery_codes: Vec<String>,
    passkeys_available: bool,
    passkeys: Vec<PasskeyItem>,
    /// The name and the creation options (JSON) of a passkey being added.
    passkey_options: Option<(String, String)>,
}

/// What a form's answer adds to the MFA page.
#[derive(Default)]
struct MfaShown {
    notice: Option<&'static str>,
    enrollment: Option<(String, String)>,
    recovery_codes: Vec<String>,
    passkey_options: Option<(String, String)>,
}

async fn mfa_page(
    s: &AppState,
    session: &ConsoleSession,
    shown: MfaShown,
    problem: Option<Problem>,
) -> Response {
    let caller = &session.caller;
    let (status_now, keys) = match (s.app.mfa_status(caller).await, s.app.passkeys(caller).await) {
        (Ok(st), Ok(keys)) => (st, keys),
        (Err(e), _) | (_, Err(e)) => return fail(&e, Some(session)),
    };
    let page = MfaPage {
        chrome: Chrome::new("Two-factor authentication", "account", Some(session))
            .notice(shown.notice)
            .problem(problem.as_ref()),
        status: status_now,
        username: caller.principal.username.clone(),
        enrollment: shown.enrollment,
        recovery_codes: shown.recovery_codes,
        passkeys_available: s.app.passkeys_available(),
        passkeys: keys
            .into_iter()
            .map(|k| PasskeyItem {
                created: when(k.created_at),
                last_used: k.last_used_at.map_or_else(|| "never".into(), when),
                id: k.id,
                name: k.name,
                backup_eligible: k.backup_eligible,
            })
            .collect(),
        passkey_options: shown.passkey_options,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /account/mfa`.
pub async fn mfa(State(s): State<AppState>, Visitor(session): Visitor, q: PageQuery) -> Response {
    let shown = MfaShown {
        notice: q.notice,
        ..MfaShown::default()
    };
    mfa_page(&s, &session, shown, None).await
}

/// The MFA page's forms (each uses some of the fields).
#[derive(Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    credential: String,
}

async fn mfa_result<T>(
    s: &AppState,
    session: &ConsoleSession,
    r: Result<T, Error>,
    ok: impl FnOnce(T) -> MfaShown,
) -> Response {
    match r {
        Ok(v) => mfa_page(s, session, ok(v), None).await,
        Err(e)
            if in_form(&e)
                || matches!(
                    e.code,
                    enclave_core::ErrorCode::Conflict | enclave_core::ErrorCode::NotFound
                ) =>
        {
            mfa_page(s, session, MfaShown::default(), Some(Problem::of(e))).await
        }
        Err(e) => fail(&e, Some(session)),
    }
}

/// `POST /account/mfa/enroll`: checks the password, shows the QR code and the secret.
pub async fn mfa_enroll(
    State(s): State<AppState>,
    Post { session, form: f }: Post<MfaForm>,
) -> Response {
    let r = s.app.enroll_totp(&session.caller, &f.password).await;
    mfa_result(&s, &session, r, |e| MfaShown {
        enrollment: Some((e.qr_svg.to_string(), e.secret.to_string())),
        ..MfaShown::default()
    })
    .await
}

/// `POST /account/mfa/confirm`: the first code turns TOTP on; the recovery codes show once
/// when it is the account's first second factor.
pub async fn mfa_confirm(
    State(s): State<AppState>,
    Post { session, form: f }: Post<MfaForm>,
) -> Response {
    let r = s.app.confirm_totp(&session.caller, &f.code).await;
    mfa_result(&s, &session, r, |codes| MfaShown {
        notice: Some("Your authenticator app is on. Your next logins ask for a second factor."),
        recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
        ..MfaShown::default()
    })
    .await
}

/// `POST /account/mfa/disable`: needs the password and a code or a recovery code.
pub async fn mfa_disable(
    State(s): State<AppState>,
    Post { session, form: f }: Post<MfaForm>,
) -> Response {
    let r = s
        .app
        .disable_mfa(&session.caller, &f.password, &f.code)
        .await;
    mfa_result(&s, &session, r, |()| MfaShown {
        notice: Some("Two-factor authentication is off."),
        ..MfaShown::default()
    })
    .await
}

/// `POST /account/mfa/passkeys/begin`: checks the password and shows the button that asks the
/// browser to create the passkey.
pub async fn passkey_begin(
    State(s): State<AppState>,
    Post { session, form: f }: Post<MfaForm>,
) -> Response {
    let name = f.name.trim().to_string();
    if let Err(e) = enclave_core::names::text("name", &name, true) {
        return mfa_result::<()>(&s, &session, Err(e), |()| MfaShown::default()).await;
    }
    let r = s.app.begin_passkey(&session.caller, &f.password).await;
    mfa_result(&s, &session, r, |options| MfaShown {
        passkey_options: Some((name, options.to_string())),
        ..MfaShown::default()
    })
    .await
}

/// `POST /account/mfa/passkeys/finish`: stores the passkey the browser created.
pub async fn passkey_finish(
    State(s): State<AppState>,
    Post { session, form: f }: Post<MfaForm>,
) -> Response {
    let r = match serde_json::from_str::<enclave_webauthn::RegistrationResponse>(&f.credential) {
        Ok(credential) => {
            s.app
                .finish_passkey(&session.caller, &f.name, &credential)
                .await
        }
        Err(_) => Err(Error::invalid(
            "credential",
            "the browser's passkey answer is missing or malformed; add the passkey again",
        )),
    };
    mfa_result(&s, &session, r, |added| MfaShown {
        notice: Some("The passkey is added. Your next logins can use it as a second factor."),
        recovery_codes: added.recovery_codes.iter().map(|c| c.to_string()).collect(),
        ..MfaShown::default()
    })
    .await
}

/// `POST /account/mfa/passkeys/{id}/remove`: needs the password.
pub async fn passkey_remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Post { session, form: f }: Post<MfaForm>,
) -> Response {
    let r = s
        .app
        .remove_passkey(&session.caller, &id, &f.password)
        .await;
    mfa_result(&s, &session, r, |()| MfaShown {
        notice: Some("The passkey is removed."),
        ..MfaShown::default()
    })
    .await
}
