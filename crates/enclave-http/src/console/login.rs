//! Login, logout and the first-start setup of the first admin.

use super::guard::{Button, MaybeVisitor, PageQuery, Post, PublicPost};
use super::page::{done, fail, in_form, render, repeated, Chrome, Problem};
use crate::auth::{clear_session_cookie, cookie, set_session_cookie, Meta};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use enclave_app::{LoginOption, LoginOutcome};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    username: String,
    source: String,
    sso: Vec<LoginOption>,
    directories: Vec<LoginOption>,
}

async fn login_page(
    s: &AppState,
    username: String,
    source: String,
    notice: Option<&'static str>,
    problem: Option<&Problem>,
) -> Response {
    // Without the list (store trouble), the local login still shows.
    let options = s.app.login_options().await.unwrap_or_default();
    let (sso, directories) = options
        .into_iter()
        .partition(|o| o.kind == enclave_core::identity::SourceKind::Oidc);
    let page = LoginPage {
        chrome: Chrome::new("Log in", "", None)
            .narrow()
            .notice(notice)
            .problem(problem),
        username,
        source,
        sso,
        directories,
    };
    render(super::page::status(problem), &page)
}

/// `GET /login`.
pub async fn login_form(
    State(s): State<AppState>,
    MaybeVisitor(session): MaybeVisitor,
    q: PageQuery,
) -> Response {
    if session.is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&s, String::new(), String::new(), q.notice, None).await
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// An LDAP source, or empty for a local account.
    #[serde(default)]
    source: String,
}

/// 303 to `/` with the new session's cookie.
fn signed_in(outcome: &LoginOutcome) -> Response {
    let mut resp = Redirect::to("/").into_response();
    match set_session_cookie(&outcome.session_secret) {
        Some(cookie) => {
            resp.headers_mut().insert(header::SET_COOKIE, cookie);
            resp
        }
        None => super::page::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "the session could not be started; try again",
            None,
        ),
    }
}

/// `POST /login`.
pub async fn login(
    State(s): State<AppState>,
    Meta(meta): Meta,
    PublicPost(f): PublicPost<LoginForm>,
) -> Response {
    let result = if f.source.is_empty() {
        s.app.login_session(&f.username, &f.password, &meta).await
    } else {
        s.app
            .ldap_login(&f.source, &f.username, &f.password, &meta)
            .await
    };
    match result {
        Ok(outcome) => signed_in(&outcome),
        Err(e) if e.code == enclave_core::ErrorCode::MfaRequired => {
            let token = e
                .details
                .get("mfa_token")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            mfa_page(&s, token, None).await
        }
        Err(e) => login_page(&s, f.username, f.source, None, Some(&Problem::of(e))).await,
    }
}

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct MfaPage {
    chrome: Chrome,
    mfa_token: String,
    /// The options (JSON) for answering with a passkey, when the account has one.
    passkey_options: Option<String>,
}

/// The second-step page. When the account has passkeys, it gets a fresh passkey challenge.
async fn mfa_page(s: &AppState, mfa_token: String, problem: Option<&Problem>) -> Response {
    let passkey_options = s
        .app
        .passkey_login_options(&mfa_token)
        .await
        .ok()
        .map(|o| o.to_string());
    let page = MfaPage {
        chrome: Chrome::new("Second factor", "", None)
            .narrow()
            .problem(problem),
        mfa_token,
        passkey_options,
    };
    render(super::page::status(problem), &page)
}

/// The second-factor form after a right password.
#[derive(Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    mfa_token: String,
    #[serde(default)]
    code: String,
    /// The passkey's answer, JSON written by `/static/webauthn.js`.
    #[serde(default)]
    passkey: String,
}

/// `POST /login/mfa`: finishes a password login with a TOTP or recovery code, or a passkey.
pub async fn login_mfa(
    State(s): State<AppState>,
    Meta(meta): Meta,
    PublicPost(f): PublicPost<MfaForm>,
) -> Response {
    let passkey = if f.passkey.is_empty() {
        None
    } else {
        match serde_json::from_str::<enclave_webauthn::AuthenticationResponse>(&f.passkey) {
            Ok(p) => Some(p),
            Err(_) => {
                let e = enclave_core::Error::invalid(
                    "passkey",
                    "the browser's passkey answer is malformed; try again",
                );
                return mfa_page(&s, f.mfa_token, Some(&Problem::of(e))).await;
            }
        }
    };
    let answer = match &passkey {
        Some(p) => enclave_app::SecondFactor::Passkey(p),
        None => enclave_app::SecondFactor::Code(&f.code),
    };
    match s.app.finish_mfa_login(&f.mfa_token, answer, &meta).await {
        Ok(enclave_app::MfaLogin::Session(outcome)) => signed_in(&outcome),
        Ok(enclave_app::MfaLogin::Token(_)) => super::page::error_page(
            StatusCode::BAD_REQUEST,
            "Request not accepted",
            "this sign-in was started for a token, not a browser session; log in again here",
            None,
        ),
        Err(e) if e.code == enclave_core::ErrorCode::InvalidInput => {
            mfa_page(&s, f.mfa_token, Some(&Problem::of(e))).await
        }
        Err(e) => {
            login_page(
                &s,
                String::new(),
                String::new(),
                None,
                Some(&Problem::of(e)),
            )
            .await
        }
    }
}

/// `POST /logout`.
pub async fn logout(State(s): State<AppState>, post: Post<Button>) -> Response {
    match s.app.logout(&post.session.caller).await {
        Ok(()) => {
            let mut resp = done("/login", "logged-out");
            resp.headers_mut()
                .insert(header::SET_COOKIE, clear_session_cookie());
            resp
        }
        Err(e) => fail(&e, Some(&post.session)),
    }
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    chrome: Chrome,
    token: String,
    username: String,
}

#[derive(Template)]
#[template(path = "setup_gone.html")]
struct SetupGonePage {
    chrome: Chrome,
}

fn setup_gone() -> Response {
    let page = SetupGonePage {
        chrome: Chrome::new("Setup link not valid", "", None).narrow(),
    };
    render(StatusCode::GONE, &page)
}

fn setup_page(token: String, username: String, problem: Option<&Problem>) -> Response {
    let page = SetupPage {
        chrome: Chrome::new("Set up Enclave", "", None)
            .narrow()
            .problem(problem),
        token,
        username,
    };
    render(super::page::status(problem), &page)
}

/// The query of the setup link.
#[derive(Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
}

/// `GET /setup?token=…`.
pub async fn setup_form(
    State(s): State<AppState>,
    q: Result<Query<SetupQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(token) = q.ok().and_then(|Query(q)| q.token) else {
        return setup_gone();
    };
    match s.app.needs_setup().await {
        Ok(true) => {}
        Ok(false) => return setup_gone(),
        Err(e) => return fail(&e, None),
    }
    match s.app.setup_token_valid(&token).await {
        Ok(true) => setup_page(token, String::new(), None),
        Ok(false) => setup_gone(),
        Err(e) => fail(&e, None),
    }
}

/// The setup form.
#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    repeat: String,
}

/// `POST /setup`: creates the first admin and signs them in.
pub async fn setup(
    State(s): State<AppState>,
    Meta(meta): Meta,
    PublicPost(f): PublicPost<SetupForm>,
) -> Response {
    if let Err(e) = repeated(&f.password, &f.repeat) {
        return setup_page(f.token, f.username, Some(&Problem::of(e)));
    }
    match s
        .app
        .complete_setup(&f.token, &f.username, &f.password, &meta)
        .await
    {
        Ok(user) => match s
            .app
            .login_session(&user.username, &f.password, &meta)
            .await
        {
            Ok(outcome) => signed_in(&outcome),
            Err(_) => done("/login", "setup-done"),
        },
        Err(e) if e.code == enclave_core::ErrorCode::SetupUnavailable => setup_gone(),
        Err(e) if in_form(&e) => setup_page(f.token, f.username, Some(&Problem::of(e))),
        Err(e) => fail(&e, None),
    }
}

/// Cookie binding an OIDC login to the browser that started it (the `state`, for ten minutes):
/// a callback URL carried to another browser does not sign that browser in.
const OIDC_COOKIE: &str = "__Host-enclave_oidc";

/// `GET /auth/oidc/{name}/start`: to the provider's login page.
pub async fn oidc_start(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.app.oidc_begin(&name).await {
        Ok((url, state)) => {
            let mut resp = Redirect::to(&url).into_response();
            if let Ok(c) = HeaderValue::from_str(&format!(
                "{OIDC_COOKIE}={state}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600"
            )) {
                resp.headers_mut().insert(header::SET_COOKIE, c);
            }
            resp
        }
        Err(e) => fail(&e, None),
    }
}

/// The provider's answer.
#[derive(Deserialize)]
pub struct OidcCallback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /auth/oidc/{name}/callback`: finishes the login and opens a session.
pub async fn oidc_callback(
    State(s): State<AppState>,
    Meta(meta): Meta,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<OidcCallback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let clear = HeaderValue::from_static(
        "__Host-enclave_oidc=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
    );
    let refused = |message: String| {
        let mut r =
            super::page::error_page(StatusCode::UNAUTHORIZED, "Sign-in failed", message, None);
        r.headers_mut().insert(header::SET_COOKIE, clear.clone());
        r
    };
    let Ok(Query(q)) = q else {
        return refused(
            "the identity provider's answer is malformed; start again from the login page".into(),
        );
    };
    if let Some(err) = q.error {
        let shown: String = err
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        return refused(format!(
            "the identity provider refused the sign-in ({shown}); start again from the login page"
        ));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return refused(
            "the identity provider's answer has no code; start again from the login page".into(),
        );
    };
    let bound = cookie(&headers, OIDC_COOKIE)
        .is_some_and(|c| enclave_app::secrets::constant_time_eq(c, &state));
    match s.app.oidc_finish(&name, &state, &code, bound, &meta).await {
        Ok(outcome) => {
            let mut resp = signed_in(&outcome);
            resp.headers_mut().append(header::SET_COOKIE, clear);
            resp
        }
        Err(e) => {
            let mut r = fail(&e, None);
            r.headers_mut().insert(header::SET_COOKIE, clear);
            r
        }
    }
}
