//! Extractors of the console: the signed-in visitor, CSRF-checked form posts, public form posts
//! and list queries. Their rejections are finished pages or redirects.

use super::page::{csrf_refused, malformed, notice_for, to_login};
use crate::auth::{console_session, cross_site, csrf_ok, session_cookie, ConsoleSession};
use crate::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, RawForm, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::response::Response;
use axum::Form;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A visitor with a live session. Without one, the request is sent to `/login`.
pub struct Visitor(pub ConsoleSession);

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        console_session(parts, state)
            .await
            .map(Visitor)
            .ok_or_else(to_login)
    }
}

/// The session, if the visitor has one (never rejects).
pub struct MaybeVisitor(pub Option<ConsoleSession>);

impl FromRequestParts<AppState> for MaybeVisitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Ok(MaybeVisitor(console_session(parts, state).await))
    }
}

/// A form with only the CSRF token: a button whose action is in the path.
#[derive(Deserialize)]
pub struct Button {}

/// A form with one field: the new description of a project or group.
#[derive(Deserialize)]
pub struct DescriptionForm {
    /// The new description; empty clears it.
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// Parses form bytes into `T`; `None` when malformed.
async fn parse_form<T: DeserializeOwned>(bytes: axum::body::Bytes) -> Option<T> {
    let req = Request::builder()
        .method(Method::POST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(bytes))
        .ok()?;
    Form::<T>::from_request(req, &())
        .await
        .ok()
        .map(|Form(t)| t)
}

/// A form posted by a signed-in visitor, with its `csrf` field checked against the session.
/// No session: 303 to `/login`; sent from another site or a wrong token: 403 page; a form that
/// cannot be read: 400 page.
pub struct Post<T> {
    /// The visitor.
    pub session: ConsoleSession,
    /// The form.
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Post<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let Some(session) = console_session(&parts, state).await else {
            return Err(to_login());
        };
        if cross_site(&parts.headers) {
            return Err(csrf_refused(Some(&session)));
        }
        let secret = session_cookie(&parts.headers)
            .unwrap_or_default()
            .to_string();
        let RawForm(bytes) = RawForm::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| malformed(Some(&session)))?;
        let Some(field) = parse_form::<CsrfField>(bytes.clone()).await else {
            return Err(malformed(Some(&session)));
        };
        if !csrf_ok(&secret, field.csrf.as_deref()) {
            return Err(csrf_refused(Some(&session)));
        }
        match parse_form::<T>(bytes).await {
            Some(form) => Ok(Post { session, form }),
            None => Err(malformed(Some(&session))),
        }
    }
}

/// A form posted without a session (login, setup): refused when sent from another site,
/// 400 page when it cannot be read.
pub struct PublicPost<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for PublicPost<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        if cross_site(req.headers()) {
            return Err(csrf_refused(None));
        }
        let RawForm(bytes) = RawForm::from_request(req, state)
            .await
            .map_err(|_| malformed(None))?;
        parse_form::<T>(bytes)
            .await
            .map(PublicPost)
            .ok_or_else(|| malformed(None))
    }
}

#[derive(Deserialize, Default)]
struct RawListQuery {
    after: Option<String>,
    done: Option<String>,
}

/// The query of a page: a list cursor and a flash notice from the fixed set.
#[derive(Default)]
pub struct PageQuery {
    /// Cursor of the list page to show.
    pub after: Option<String>,
    /// Success message to show.
    pub notice: Option<&'static str>,
}

impl FromRequestParts<AppState> for PageQuery {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        let Query(q) =
            Query::<RawListQuery>::try_from_uri(&parts.uri).map_err(|_| malformed(None))?;
        Ok(PageQuery {
            after: q.after.filter(|a| !a.is_empty()),
            notice: q.done.as_deref().and_then(notice_for),
        })
    }
}
