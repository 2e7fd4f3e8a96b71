//! Fail closed on any route that answers without an authorization decision.
//!
//! Every route except the few in [`UNDECIDED_ROUTES`] must ask the policy (through
//! [`enclave_app::App::authorize`]) before it answers. This layer counts the decisions a request
//! made; a successful answer that no decision covered is replaced by a 500 and logged as a bug,
//! so a handler that forgets to authorize cannot leak anything.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Routes that need no decision: authentication itself (logging in and out, first-time setup),
/// health checks, static assets and the API description.
pub const UNDECIDED_ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/static/app.css",
    "/static/favicon.svg",
    "/static/app.js",
    "/login",
    "/login/mfa",
    "/logout",
    "/setup",
    "/api/v1/auth/session",
    "/api/v1/auth/token",
    "/api/v1/auth/mfa",
    "/api/v1/auth/mfa/passkey",
    "/static/webauthn.js",
    "/api/v1/auth/logout",
    "/api/v1/auth/sources",
    "/auth/oidc/{name}/start",
    "/auth/oidc/{name}/callback",
    "/api/v1/setup",
    "/api/v1/openapi.json",
];

/// The layer: runs the handler counting decisions and refuses an undecided success.
pub async fn require_decision(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let Some(route) = route else {
        return next.run(req).await;
    };
    // SCIM calls are authorized by the bearer token of the identity source named in the path,
    // which reaches only that source's own accounts and groups (see `crate::scim`).
    if UNDECIDED_ROUTES.contains(&route.as_str()) || route.starts_with("/scim/v2/") {
        return next.run(req).await;
    }
    let (resp, decisions) = enclave_app::count_decisions(next.run(req)).await;
    let status = resp.status();
    // Sending an unauthenticated browser to the login page reveals nothing.
    let to_login = status.is_redirection()
        && resp
            .headers()
            .get(axum::http::header::LOCATION)
            .map(|v| v.as_bytes())
            == Some(b"/login".as_slice());
    if decisions == 0 && (status.is_success() || (status.is_redirection() && !to_login)) {
        tracing::error!(
            route,
            "route answered without an authorization decision; refused"
        );
        return crate::error::ApiError(enclave_core::Error::internal()).into_response();
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::response::Redirect;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    async fn status(router: &Router, path: &str) -> StatusCode {
        let req = Request::builder().uri(path).body(Body::empty());
        match req {
            Ok(req) => match router.clone().oneshot(req).await {
                Ok(resp) => resp.status(),
                Err(never) => match never {},
            },
            Err(_) => StatusCode::BAD_REQUEST,
        }
    }

    #[tokio::test]
    async fn an_undecided_success_is_refused_and_exempt_routes_pass() {
        let router = Router::new()
            .route("/forgot", get(|| async { "data" }))
            .route("/gone", get(|| async { Redirect::to("/elsewhere") }))
            .route("/denied", get(|| async { StatusCode::FORBIDDEN }))
            .route("/anon", get(|| async { Redirect::to("/login") }))
            .route("/healthz", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn(require_decision));
        assert_eq!(
            status(&router, "/forgot").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(&router, "/gone").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status(&router, "/denied").await, StatusCode::FORBIDDEN);
        assert_eq!(status(&router, "/anon").await, StatusCode::SEE_OTHER);
        assert_eq!(status(&router, "/healthz").await, StatusCode::OK);
    }
}
