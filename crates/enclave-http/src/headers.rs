//! Security headers on every response, and a request id on every request.

use crate::HttpSettings;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The Content-Security-Policy: same-origin scripts and styles only, no inline code, no
/// framing, forms post only to Enclave.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The Content-Security-Policy of notebook pages served through the gateway (`/p/…`):
/// JupyterLab needs inline styles, `eval` and blob workers, but it may still talk only to
/// Enclave's origin — a notebook's output cannot send data to another site from the browser.
pub const NOTEBOOK_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'self'; object-src 'none'";

/// Whether a path is served by the notebook gateway.
pub fn is_gateway_path(path: &str) -> bool {
    path.starts_with("/p/")
}

/// Request id of the current request (also returned as `X-Request-Id`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Adds the request id, logs the request (method, path, status, duration; never the query),
/// then adds the security headers to whatever the handler returned.
pub async fn middleware(
    State(settings): State<Arc<HttpSettings>>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = enclave_app::secrets::new_id("req").unwrap_or_else(|_| "req_unknown".into());
    req.extensions_mut().insert(RequestId(id.clone()));
    // Only the path is logged: query strings can carry one-time tokens (the setup link).
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    tracing::info!(
        target: "enclave::access",
        request_id = %id,
        %method,
        path = %path.chars().take(256).collect::<String>(),
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    let h = resp.headers_mut();
    if settings.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    let notebook = is_gateway_path(&path);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if notebook { NOTEBOOK_CSP } else { CSP }),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static(if notebook { "SAMEORIGIN" } else { "DENY" }),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    resp
}
