//! The notebook gateway's front: `/p/{project}/nb/{name}/…` reaches a user's JupyterLab
//! through [`enclave_gateway::Gateway`] after Enclave authenticated and authorized the request.
//!
//! Invariants:
//! * Every request and every websocket upgrade is authenticated (session cookie or bearer
//!   token) and decided by [`enclave_app::App::open_notebook`] (`notebook.open` on the server
//!   itself) before anything is forwarded; nothing reaches a notebook server otherwise.
//! * Cookie-authenticated requests that change state, and every websocket upgrade, must come
//!   from Enclave's own pages (no `Sec-Fetch-Site: cross-site`, an `Origin` naming this host):
//!   the gateway presents Jupyter's token upstream, so Jupyter's own XSRF check no longer
//!   protects the browser.
//! * Enclave's cookies and the client's `Authorization` never reach JupyterLab (the gateway
//!   crate strips them); Jupyter's token never reaches the client (it is blanked out of the
//!   HTML pages JupyterLab writes it into).
//! * Each executed cell and terminal line is recorded in the audit trail before it is
//!   forwarded (when the project records code); if it cannot be recorded, the websocket is
//!   closed and the code does not run.
//! * An open websocket is checked again every [`RECHECK`]: when its session ends, its token
//!   is revoked or the user may no longer open the server, it is closed.
//! * In subdomain mode ([`crate::notebook_origin`]) Enclave's own origin never proxies a
//!   notebook: it hands the browser over to the notebook's own origin, where the credential is
//!   a bearer token or that notebook's cookie (never the session cookie), changes must come
//!   from that very origin, and the same [`enclave_app::App::open_notebook`] decides.

use crate::auth::{bearer, cookie, cross_site, request_meta, session_cookie};
use crate::error::ApiError;
use crate::notebook_origin::{self, NOTEBOOK_COOKIE};
use crate::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::any;
use axum::Router;
use enclave_app::{Caller, Execution, NotebookTarget, RequestMeta};
use enclave_core::{Error, ErrorCode};
use enclave_gateway::{Executed, Gateway, GatewayConfig, Labels, Tap, Upstream, Verdict};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// How often an open websocket's access is checked again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The gateway with Enclave's settings: Enclave's cookie names are stripped.
pub fn new_gateway() -> Gateway {
    Gateway::new(GatewayConfig {
        strip_cookie_prefixes: vec!["enclave_".into()],
        ..GatewayConfig::default()
    })
}

/// The gateway's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{project}/nb/{name}", any(bare))
        .route("/p/{project}/nb/{name}/", any(forward_root))
        .route("/p/{project}/nb/{name}/{*rest}", any(forward))
}

/// Which origin a notebook request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    /// Enclave's own origin.
    Main,
    /// The notebook's own origin (subdomain mode; the host named this very notebook).
    Notebook,
}

/// How a request authenticated.
pub(crate) enum Credential {
    Session(Zeroizing<String>),
    Token(Zeroizing<String>),
    /// A notebook cookie, good only on the origin of `(project, name)`.
    Notebook {
        secret: Zeroizing<String>,
        project: String,
        name: String,
    },
}

/// Enclave's credential: a bearer token, or else the session cookie on Enclave's origin, or
/// the notebook's cookie on a notebook's origin (the session cookie counts for nothing
/// there). Other `Authorization` schemes (JupyterLab's own `token …` header) are not
/// Enclave's and are ignored here; the gateway strips them before forwarding.
fn credential(headers: &HeaderMap, front: Front, project: &str, name: &str) -> Option<Credential> {
    if let Some(t) = bearer(headers) {
        return Some(Credential::Token(Zeroizing::new(t.to_string())));
    }
    match front {
        Front::Main => {
            session_cookie(headers).map(|s| Credential::Session(Zeroizing::new(s.to_string())))
        }
        Front::Notebook => cookie(headers, NOTEBOOK_COOKIE).map(|s| Credential::Notebook {
            secret: Zeroizing::new(s.to_string()),
            project: project.to_string(),
            name: name.to_string(),
        }),
    }
}

/// Largest HTML page from JupyterLab the gateway reads to take the Jupyter token out of it.
const MAX_HTML: usize = 4 << 20;

/// JupyterLab writes its server token into its pages' configuration; the browser must never
/// see it. HTML answers are read whole (they are small), the token is blanked, and anything
/// that cannot be checked (compressed, too large) is refused.
async fn scrub_token(resp: Response, token: &str) -> Response {
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return resp;
    }
    let refused = || {
        (
            StatusCode::BAD_GATEWAY,
            "the notebook server sent a page the gateway cannot check",
        )
            .into_response()
    };
    if resp.headers().contains_key(header::CONTENT_ENCODING) {
        return refused();
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_HTML).await else {
        return refused();
    };
    let clean = blank(&bytes, token.as_bytes());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(clean))
}

/// `haystack` with every occurrence of `needle` removed.
fn blank(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if !needle.is_empty() && haystack[i..].starts_with(needle) {
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

async fn authenticate(s: &AppState, cred: &Credential, meta: &RequestMeta) -> Option<Caller> {
    let r = match cred {
        Credential::Session(secret) => s.app.authenticate_session(secret, meta).await,
        Credential::Token(token) => s.app.authenticate_token(token, meta).await,
        Credential::Notebook {
            secret,
            project,
            name,
        } => {
            s.app
                .authenticate_notebook_cookie(secret, project, name, meta)
                .await
        }
    };
    r.ok().flatten()
}

pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Whether a cookie-authenticated request comes from somewhere else than Enclave's pages.
fn foreign(headers: &HeaderMap) -> bool {
    if cross_site(headers) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        host,
    ) {
        (Some(origin), Some(host)) => {
            let o = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .unwrap_or("");
            o != host
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Authenticates and authorizes a request for a notebook server.
pub(crate) async fn admit(
    s: &AppState,
    headers: &HeaderMap,
    method: &axum::http::Method,
    meta: &RequestMeta,
    (project, name): (&str, &str),
    front: Front,
) -> Result<(Caller, Credential, NotebookTarget), Response> {
    let unauthenticated = || match front {
        Front::Notebook => notebook_origin::signed_out(&s.settings, headers, project, name),
        Front::Main if wants_html(headers) => Redirect::to("/login").into_response(),
        Front::Main => ApiError(Error::unauthenticated()).into_response(),
    };
    let Some(cred) = credential(headers, front, project, name) else {
        return Err(unauthenticated());
    };
    let Some(caller) = authenticate(s, &cred, meta).await else {
        return Err(unauthenticated());
    };
    let safe = matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let refused = match (&cred, front) {
        (Credential::Token(_), _) => false,
        (_, Front::Main) => foreign(headers),
        (_, Front::Notebook) => notebook_origin::foreign(headers),
    };
    if (!safe || is_upgrade(headers)) && refused {
        return Err(ApiError(Error::new(
            ErrorCode::CsrfFailed,
            "requests to a notebook must come from Enclave's own pages",
        ))
        .into_response());
    }
    match s.app.open_notebook(&caller, project, name).await {
        Ok(t) => Ok((caller, cred, t)),
        Err(e) => Err(ApiError(e).into_response()),
    }
}

/// `/p/{project}/nb/{name}`: to JupyterLab's page, once the caller may open the server.
async fn bare(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    if s.settings.notebook_origins.is_some() {
        return notebook_origin::hand_over(s, project, name, req, true).await;
    }
    let (parts, _) = req.into_parts();
    let meta = request_meta(&parts);
    let nb = (project.as_str(), name.as_str());
    match admit(&s, &parts.headers, &parts.method, &meta, nb, Front::Main).await {
        Ok(_) => Redirect::to(&format!("/p/{project}/nb/{name}/lab")).into_response(),
        Err(r) => r,
    }
}

async fn forward_root(
    State(s): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    if s.settings.notebook_origins.is_some() {
        return notebook_origin::hand_over(s, project, name, req, false).await;
    }
    proxy(s, project, name, req, Front::Main).await
}

async fn forward(
    State(s): State<AppState>,
    Path((project, name, _)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    if s.settings.notebook_origins.is_some() {
        return notebook_origin::hand_over(s, project, name, req, false).await;
    }
    proxy(s, project, name, req, Front::Main).await
}

/// Numbers the websockets of this process (part of their labels).
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Authenticates, authorizes and forwards a request to the notebook server.
pub(crate) async fn proxy(
    s: AppState,
    project: String,
    name: String,
    req: Request,
    front: Front,
) -> Response {
    let (parts, body) = req.into_parts();
    let meta = request_meta(&parts);
    let nb = (project.as_str(), name.as_str());
    let (caller, cred, target) =
        match admit(&s, &parts.headers, &parts.method, &meta, nb, front).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    s.app.touch_notebook(&target);
    let upgrade = is_upgrade(&parts.headers);
    let dial_target = target.clone();
    let connect: enclave_gateway::ConnectFn = Arc::new(move || {
        let t = dial_target.clone();
        Box::pin(async move {
            let std = tokio::task::spawn_blocking(move || t.dial(Duration::from_secs(5)))
                .await
                .map_err(std::io::Error::other)??;
            std.set_nonblocking(true)?;
            tokio::net::TcpStream::from_std(std)
        })
    });
    let upstream = match Upstream::new(target.key.clone(), connect, target.token()) {
        Ok(u) => u,
        Err(_) => return ApiError(Error::internal()).into_response(),
    };
    let who = caller
        .session_id
        .clone()
        .or_else(|| caller.token_id.clone())
        .unwrap_or_default();
    let labels = Labels {
        session: format!("{who}/{}", CONNECTIONS.fetch_add(1, Ordering::Relaxed)),
        user: caller.principal.username.clone(),
        project: project.clone(),
        notebook: name.clone(),
    };
    let tap = Arc::new(AuditTap {
        app: s.app.clone(),
        caller: caller.clone(),
        target: target.clone(),
    });
    let resp = s
        .gateway
        .forward(
            Request::from_parts(parts, body),
            &upstream,
            labels.clone(),
            tap,
        )
        .await;
    if upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        tokio::spawn(watch(s, cred, meta, labels));
        return resp;
    }
    scrub_token(resp, target.token()).await
}

/// Whether a websocket with exactly these labels is still open.
fn is_open(gw: &Gateway, id: &str) -> bool {
    let seen = AtomicBool::new(false);
    gw.close_websockets(|l| {
        if l.session == id {
            seen.store(true, Ordering::Relaxed);
        }
        false
    });
    seen.load(Ordering::Relaxed)
}

/// Checks an open websocket's access every [`RECHECK`] while it lasts; closes it when its
/// credential or its right to open the server is gone.
async fn watch(s: AppState, cred: Credential, meta: RequestMeta, labels: Labels) {
    loop {
        tokio::time::sleep(RECHECK).await;
        if !is_open(&s.gateway, &labels.session) {
            return;
        }
        let allowed = match authenticate(&s, &cred, &meta).await {
            Some(caller) => {
                s.app
                    .may_still_open(&caller, &labels.project, &labels.notebook)
                    .await
            }
            None => false,
        };
        if !allowed {
            let n = s.gateway.close_websockets(|l| l.session == labels.session);
            tracing::info!(
                user = %labels.user,
                project = %labels.project,
                notebook = %labels.notebook,
                closed = n,
                "closed a notebook websocket: access ended"
            );
            return;
        }
    }
}

/// Records what users run, before the gateway forwards it.
struct AuditTap {
    app: enclave_app::App,
    caller: Caller,
    target: NotebookTarget,
}

impl Tap for AuditTap {
    fn executed(&self, _labels: &Labels, event: Executed) -> Verdict {
        self.app.touch_notebook(&self.target);
        if !self.target.audit_code {
            return Verdict::Forward;
        }
        let what = match event {
            Executed::Cell { kernel, code, .. } => Execution::Cell { code, kernel },
            Executed::Terminal { terminal, line } => Execution::Terminal { line, terminal },
        };
        let handle = tokio::runtime::Handle::current();
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            // Cannot wait here without stalling the only worker: refuse rather than run
            // unrecorded code.
            return Verdict::Refuse;
        }
        let recorded = tokio::task::block_in_place(|| {
            handle.block_on(self.app.record_execution(&self.caller, &self.target, &what))
        });
        match recorded {
            Ok(()) => Verdict::Forward,
            Err(e) => {
                tracing::warn!(error = %e.message, "executed code could not be recorded; the websocket is closed");
                Verdict::Refuse
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn blanks_the_token() {
        assert_eq!(blank(b"a jt_1 b jt_1", b"jt_1"), b"a  b ".to_vec());
        assert_eq!(blank(b"nothing", b"jt_1"), b"nothing".to_vec());
    }

    #[test]
    fn only_bearer_is_enclaves_credential() {
        let cred = |h: &HeaderMap, front| credential(h, front, "p1", "n1");
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "token jt_abc".parse().unwrap());
        assert!(cred(&h, Front::Main).is_none());
        h.insert(
            header::COOKIE,
            format!("{}=s3cret", crate::auth::SESSION_COOKIE)
                .parse()
                .unwrap(),
        );
        assert!(matches!(
            cred(&h, Front::Main),
            Some(Credential::Session(_))
        ));
        // On a notebook's own origin the session cookie is no credential; its cookie is.
        assert!(cred(&h, Front::Notebook).is_none());
        h.append(
            header::COOKIE,
            format!("{NOTEBOOK_COOKIE}=nbsecret").parse().unwrap(),
        );
        assert!(matches!(
            cred(&h, Front::Notebook),
            Some(Credential::Notebook { .. })
        ));
        assert!(matches!(
            cred(&h, Front::Main),
            Some(Credential::Session(_))
        ));
        h.insert(header::AUTHORIZATION, "Bearer enc_pat_x".parse().unwrap());
        assert!(matches!(cred(&h, Front::Main), Some(Credential::Token(_))));
        assert!(matches!(
            cred(&h, Front::Notebook),
            Some(Credential::Token(_))
        ));
    }
}
