//! Login, logout and the first-start setup of the first admin.

use super::guard::{Button, MaybeVisitor, PageQuery, Post, PublicPost};
use super::page::{done, fail, in_form, render, repeated, Chrome, Problem};
use crate::auth::{clear_session_cookie, set_session_cookie, Meta};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use enclave_app::LoginOutcome;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    username: String,
}

fn login_page(
    username: String,
    notice: Option<&'static str>,
    problem: Option<&Problem>,
) -> Response {
    let page = LoginPage {
        chrome: Chrome::new("Log in", "", None)
            .narrow()
            .notice(notice)
            .problem(problem),
        username,
    };
    render(super::page::status(problem), &page)
}

/// `GET /login`.
pub async fn login_form(MaybeVisitor(session): MaybeVisitor, q: PageQuery) -> Response {
    if session.is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(String::new(), q.notice, None)
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
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
    match s.app.login_session(&f.username, &f.password, &meta).await {
        Ok(outcome) => signed_in(&outcome),
        Err(e) => login_page(f.username, None, Some(&Problem::of(e))),
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
