//! Notebook subdomains (`notebooks.subdomain_domain`): each notebook server is served on its
//! own origin, `{name}--{project}.{domain}`, so JavaScript in one notebook's output can reach
//! neither Enclave's API (the session cookie is host-only and never sent there) nor another
//! notebook (each has its own host-only cookie, and refuses changes from other origins).
//!
//! Invariants:
//! * A request whose host is under the notebook domain is only ever notebook traffic: the
//!   handoff and `/p/{project}/nb/{name}/…` of the notebook the host names; everything else
//!   there (the API, the console, other notebooks' paths, hosts that name no notebook) is 404.
//!   A request whose `Host` and request-target authority disagree is refused.
//! * Enclave's own origin never proxies a notebook in this mode: a signed-in browser is handed
//!   over with a one-time ticket ([`enclave_app::App::notebook_handoff`]); bearer clients are
//!   redirected to the notebook's origin.
//! * On a notebook's origin the credential is a bearer token or that notebook's cookie
//!   ([`NOTEBOOK_COOKIE`], host-only, `Secure`, `HttpOnly`, `SameSite=Lax`); a
//!   cookie-authenticated change or websocket must come from that very origin (`Origin`
//!   present and equal, `Sec-Fetch-Site` same-origin). Every request is then decided by
//!   [`enclave_app::App::open_notebook`], as on Enclave's origin.
//! * Responses from a notebook's origin carry `Cross-Origin-Resource-Policy: same-origin`, so
//!   other notebooks cannot embed its files.

use crate::auth::{cookie, request_meta};
use crate::error::ApiError;
use crate::gateway::{self, is_upgrade, wants_html, Credential, Front};
use crate::{AppState, HttpSettings};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::Router;
use enclave_core::notebook_hosts::{self, classify, next_ok, HostKind};
use enclave_core::notebooks::base_path;
use enclave_core::{Error, ErrorCode};
use serde::Deserialize;
use std::sync::Arc;
use tower::ServiceExt;

/// Name of a notebook origin's cookie. `__Host-` makes browsers insist on `Secure`, `Path=/`
/// and no `Domain`: it is never sent to another host.
pub const NOTEBOOK_COOKIE: &str = "__Host-enclave_nb";

/// Where a notebook's origin redeems a handoff ticket.
pub const HANDOFF_PATH: &str = "/_enclave/handoff";

/// Longest ticket a handoff accepts (tickets are 43 characters).
const MAX_TICKET: usize = 128;

/// Where notebooks are served in subdomain mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookOrigins {
    /// The notebook domain (`nb.enclave.example`).
    pub domain: String,
    /// `https` (or `http` on plain-HTTP loopback servers).
    pub scheme: String,
    /// Enclave's port, when not the scheme's default.
    pub port: Option<u16>,
    /// Enclave's own origin, for links back to it; `None` when unknown (listening on every
    /// address without `public_url`).
    pub main_origin: Option<String>,
}

impl NotebookOrigins {
    /// The notebook origins for `domain`, with the scheme and port of Enclave's base URL
    /// (`https://enclave.example:8443`); `None` when the URL cannot be read.
    pub fn new(domain: &str, base_url: &str) -> Option<NotebookOrigins> {
        let (scheme, rest) = base_url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let host = notebook_hosts::strip_port(authority);
        let port = match authority[host.len()..].strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None => None,
        };
        let default = if scheme == "https" { 443 } else { 80 };
        let unspecified = matches!(host, "0.0.0.0" | "[::]" | "");
        Some(NotebookOrigins {
            domain: domain.to_string(),
            port: port.filter(|p| *p != default),
            main_origin: (!unspecified).then(|| format!("{scheme}://{authority}")),
            scheme,
        })
    }

    /// The origin of a notebook; `None` when its names do not fit in one DNS label.
    pub fn origin(&self, project: &str, name: &str) -> Option<String> {
        notebook_hosts::origin(&self.scheme, self.port, &self.domain, project, name)
    }
}

/// The notebook a request's host named (set by [`by_host`]).
#[derive(Debug, Clone)]
struct HostNotebook {
    project: String,
    name: String,
}

/// What [`by_host`] needs: the notebook domain and the router of notebook origins.
pub struct Dispatch {
    domain: String,
    router: Router,
}

impl Dispatch {
    /// The dispatcher of a server whose notebooks live under `domain`.
    pub(crate) fn new(domain: &str, state: AppState, max_body: usize) -> Dispatch {
        Dispatch {
            domain: domain.to_string(),
            router: notebook_router(state, max_body),
        }
    }
}

/// Sends requests for a notebook's origin to the notebook router, refuses other hosts under
/// the notebook domain, and lets everything else through to Enclave's own routes.
pub async fn by_host(State(d): State<Arc<Dispatch>>, mut req: Request, next: Next) -> Response {
    let from_header = req
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().map(str::to_string));
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    let host = match (from_header, authority) {
        (Some(Err(_)), _) => return bad_host(),
        (Some(Ok(h)), Some(a)) if !h.eq_ignore_ascii_case(&a) => return bad_host(),
        (Some(Ok(h)), _) => h,
        (None, Some(a)) => a,
        (None, None) => String::new(),
    };
    match classify(&host, &d.domain) {
        HostKind::Main => next.run(req).await,
        HostKind::Unknown => not_found().await,
        HostKind::Notebook { project, name } => {
            req.extensions_mut().insert(HostNotebook { project, name });
            let mut resp = match d.router.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            resp.headers_mut().insert(
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            );
            resp
        }
    }
}

fn bad_host() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "the Host header and the request target name different hosts\n",
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The routes of a notebook's origin, with the same decision check and body limit as
/// Enclave's own.
fn notebook_router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route(HANDOFF_PATH, get(handoff))
        .route("/p/{project}/nb/{name}", any(bare))
        .route("/p/{project}/nb/{name}/", any(forward_root))
        .route("/p/{project}/nb/{name}/{*rest}", any(forward))
        .route_layer(axum::middleware::from_fn(crate::decided::require_decision))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The host's notebook, if the path names the same one.
fn same_notebook(req: &Request, project: &str, name: &str) -> Option<HostNotebook> {
    req.extensions()
        .get::<HostNotebook>()
        .filter(|h| h.project == project && h.name == name)
        .cloned()
}

async fn bare(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let Some(nb) = same_notebook(&req, &project, &name) else {
        return not_found().await;
    };
    let (parts, _) = req.into_parts();
    let meta = request_meta(&parts);
    let at = (nb.project.as_str(), nb.name.as_str());
    match gateway::admit(
        &s,
        &parts.headers,
        &parts.method,
        &meta,
        at,
        Front::Notebook,
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("{}lab", base_path(&project, &name))).into_response(),
        Err(r) => r,
    }
}

async fn forward_root(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    match same_notebook(&req, &project, &name) {
        Some(nb) => gateway::proxy(s, nb.project, nb.name, req, Front::Notebook).await,
        None => not_found().await,
    }
}

async fn forward(
    State(s): State<AppState>,
    Path((project, name, _)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    match same_notebook(&req, &project, &name) {
        Some(nb) => gateway::proxy(s, nb.project, nb.name, req, Front::Notebook).await,
        None => not_found().await,
    }
}

/// Whether a cookie-authenticated change or websocket on a notebook's origin comes from
/// anywhere but that origin: `Sec-Fetch-Site` other than `same-origin` (sibling notebooks
/// are `same-site`), or an `Origin` missing or naming another host.
pub(crate) fn foreign(headers: &HeaderMap) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or_default());
    if site.is_some_and(|v| v != "same-origin" && v != "none") {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(o), Some(h)) => {
            let o = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .unwrap_or("");
            !o.eq_ignore_ascii_case(h)
        }
        _ => true,
    }
}

/// `Set-Cookie` for a notebook origin's cookie (a browser-session cookie: it dies with the
/// browser, and with the Enclave session it hangs off).
fn set_cookie(secret: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{NOTEBOOK_COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

/// Minimal HTML escaping for text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small page (for browsers) or the API's error (for others).
fn page(status: StatusCode, headers: &HeaderMap, e: Error, link: Option<String>) -> Response {
    if !wants_html(headers) {
        return ApiError(e).into_response();
    }
    let link = link
        .map(|l| {
            format!(
                "<p><a href=\"{}\">Open the notebook from Enclave</a></p>",
                escape(&l)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Enclave notebook</title></head><body><p>{}</p>{link}</body></html>",
        escape(&e.message)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Enclave's own entry to a notebook (which hands the browser over again), when known.
fn entry(settings: &HttpSettings, project: &str, name: &str) -> Option<String> {
    let main = settings.notebook_origins.as_ref()?.main_origin.clone()?;
    Some(format!("{main}{}lab", base_path(project, name)))
}

/// The answer to a request on a notebook's origin without a usable credential: browsers get
/// a page linking back to Enclave (which hands them over again), others a 401.
pub(crate) fn signed_out(
    settings: &HttpSettings,
    headers: &HeaderMap,
    project: &str,
    name: &str,
) -> Response {
    let e = Error::new(
        ErrorCode::Unauthenticated,
        "this notebook's address has no Enclave sign-in (it was never opened from Enclave here, \
         or the session ended): open the notebook from Enclave",
    );
    page(
        StatusCode::UNAUTHORIZED,
        headers,
        e,
        entry(settings, project, name),
    )
}

#[derive(Deserialize)]
struct HandoffQuery {
    ticket: String,
    next: Option<String>,
}

/// `GET /_enclave/handoff?ticket=…&next=…` on a notebook's origin: redeems the ticket, sets
/// the notebook cookie and sends the browser on to `next` (a path inside the notebook).
async fn handoff(State(s): State<AppState>, req: Request) -> Response {
    let Some(nb) = req.extensions().get::<HostNotebook>().cloned() else {
        return not_found().await;
    };
    let (parts, _) = req.into_parts();
    let meta = request_meta(&parts);
    let link = entry(&s.settings, &nb.project, &nb.name);
    let malformed = || {
        page(
            StatusCode::BAD_REQUEST,
            &parts.headers,
            Error::invalid(
                "next",
                "this link to the notebook is malformed: open the notebook again from Enclave",
            ),
            link.clone(),
        )
    };
    let Ok(Query(q)) = Query::<HandoffQuery>::try_from_uri(&parts.uri) else {
        return malformed();
    };
    let base = base_path(&nb.project, &nb.name);
    let next = match q.next {
        None => format!("{base}lab"),
        Some(n) if next_ok(&n, &nb.project, &nb.name) => n,
        Some(_) => return malformed(),
    };
    if q.ticket.len() > MAX_TICKET {
        return malformed();
    }
    let current = cookie(&parts.headers, NOTEBOOK_COOKIE);
    match s
        .app
        .redeem_notebook_handoff(&q.ticket, &nb.project, &nb.name, current, &meta)
        .await
    {
        Ok(entered) => {
            let mut resp = Redirect::to(&next).into_response();
            if let Some(secret) = entered.cookie {
                match set_cookie(&secret) {
                    Some(v) => {
                        resp.headers_mut().append(header::SET_COOKIE, v);
                    }
                    None => return ApiError(Error::internal()).into_response(),
                }
            }
            resp
        }
        Err(e) => page(crate::error::status_of(e.code), &parts.headers, e, link),
    }
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A gateway request on Enclave's own origin in subdomain mode: authenticated and authorized
/// as always, then a signed-in browser's `GET` is handed over to the notebook's origin with a
/// one-time ticket (303 to its handoff), a bearer client is redirected there (307), and
/// anything else is refused: the notebook is never served on Enclave's origin.
pub(crate) async fn hand_over(
    s: AppState,
    project: String,
    name: String,
    req: Request,
    bare: bool,
) -> Response {
    let Some(origins) = s.settings.notebook_origins.clone() else {
        return not_found().await;
    };
    let (parts, _) = req.into_parts();
    let meta = request_meta(&parts);
    let at = (project.as_str(), name.as_str());
    let (caller, cred, _) =
        match gateway::admit(&s, &parts.headers, &parts.method, &meta, at, Front::Main).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let Some(origin) = origins.origin(&project, &name) else {
        return ApiError(Error::new(
            ErrorCode::Conflict,
            "this notebook server's name and its project's name together are longer than 61 \
             characters, too long for its own subdomain: create it again under a shorter name",
        ))
        .into_response();
    };
    let base = base_path(&project, &name);
    let here = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| base.clone());
    let next = if bare || !next_ok(&here, &project, &name) {
        format!("{base}lab")
    } else {
        here
    };
    match cred {
        Credential::Session(_) if parts.method == Method::GET && !is_upgrade(&parts.headers) => {
            match s.app.notebook_handoff(&caller, &project, &name).await {
                Ok(ticket) => Redirect::to(&format!(
                    "{origin}{HANDOFF_PATH}?ticket={}&next={}",
                    encode(&ticket),
                    encode(&next)
                ))
                .into_response(),
                Err(e) => ApiError(e).into_response(),
            }
        }
        Credential::Token(_) => Redirect::temporary(&format!("{origin}{next}")).into_response(),
        _ => ApiError(Error::new(
            ErrorCode::InvalidRequest,
            format!("this server serves each notebook on its own address: use {origin}{base}"),
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins_follow_enclaves_scheme_and_port() {
        let o = NotebookOrigins::new("nb.localhost", "https://127.0.0.1:8443").unwrap();
        assert_eq!(
            o.origin("p1", "n1").as_deref(),
            Some("https://n1--p1.nb.localhost:8443")
        );
        assert_eq!(o.main_origin.as_deref(), Some("https://127.0.0.1:8443"));
        let o = NotebookOrigins::new("nb.example", "https://enclave.example/base").unwrap();
        assert_eq!(
            o.origin("p1", "n1").as_deref(),
            Some("https://n1--p1.nb.example")
        );
        let o = NotebookOrigins::new("nb.example", "https://enclave.example:443").unwrap();
        assert_eq!(o.port, None);
        let o = NotebookOrigins::new("nb.example", "http://[::1]:8080").unwrap();
        assert_eq!(
            o.origin("p1", "n1").as_deref(),
            Some("http://n1--p1.nb.example:8080")
        );
        let o = NotebookOrigins::new("nb.example", "https://0.0.0.0:8443").unwrap();
        assert_eq!(o.main_origin, None);
        assert!(NotebookOrigins::new("nb.example", "ftp://x").is_none());
        assert!(NotebookOrigins::new("nb.example", "https://x:99999").is_none());
        assert!(NotebookOrigins::new("nb.example", "x").is_none());
        let long = "n".repeat(40);
        assert_eq!(o.origin("pp", &long).map(|_| ()), Some(()));
        assert_eq!(o.origin(&long, &long), None);
    }

    #[test]
    fn only_the_notebooks_own_origin_may_change_it() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            m
        };
        let host = ("host", "a1--p1.nb.localhost:8443");
        assert!(!foreign(&h(&[
            host,
            ("origin", "https://a1--p1.nb.localhost:8443")
        ])));
        assert!(!foreign(&h(&[
            host,
            ("origin", "https://a1--p1.nb.localhost:8443"),
            ("sec-fetch-site", "same-origin")
        ])));
        // A sibling notebook is same-site, not same-origin.
        assert!(foreign(&h(&[
            host,
            ("origin", "https://b1--p1.nb.localhost:8443"),
            ("sec-fetch-site", "same-site")
        ])));
        assert!(foreign(&h(&[
            host,
            ("origin", "https://b1--p1.nb.localhost:8443")
        ])));
        assert!(foreign(&h(&[host, ("origin", "https://127.0.0.1:8443")])));
        assert!(foreign(&h(&[
            host,
            ("origin", "https://a1--p1.nb.localhost:8443"),
            ("sec-fetch-site", "same-site")
        ])));
        // No Origin: refused (browsers always send one on changes and websockets).
        assert!(foreign(&h(&[host])));
        assert!(foreign(&h(&[(
            "origin",
            "https://a1--p1.nb.localhost:8443"
        )])));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("/p/a/nb/b/lab?x=1&y"),
            "%2Fp%2Fa%2Fnb%2Fb%2Flab%3Fx%3D1%26y"
        );
        assert_eq!(encode("Ab-_.~9"), "Ab-_.~9");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
