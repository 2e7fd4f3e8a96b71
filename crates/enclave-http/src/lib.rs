//! Enclave's HTTP front: the REST API under `/api/v1`, the server-rendered web console, health
//! endpoints and security headers. This is the only crate that knows JSON, forms and cookies.
//!
//! Invariants:
//! * Handlers hold no business rules: they parse and validate the shape of input, call one
//!   [`enclave_app::App`] use case (which authorizes and audits), and render the result.
//! * Every response carries the security headers ([`headers`]); every body has a size limit.
//! * Session cookies are `__Host-` prefixed, `Secure`, `HttpOnly`, `SameSite=Lax`; every
//!   cookie-authenticated state change carries a CSRF token bound to the session.

pub mod api;
pub mod auth;
pub mod console;
pub mod decided;
pub mod error;
pub mod gateway;
pub mod headers;
pub mod notebook_origin;
pub mod scim;
pub mod sealed;

use axum::extract::DefaultBodyLimit;
pub use axum::Router;
use enclave_app::App;
use std::sync::Arc;

/// Settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Send `Strict-Transport-Security` (true when serving HTTPS).
    pub hsts: bool,
    /// Serve each notebook on its own subdomain (`notebooks.subdomain_domain`), when set.
    pub notebook_origins: Option<notebook_origin::NotebookOrigins>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body_bytes: 64 * 1024,
            hsts: true,
            notebook_origins: None,
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub app: App,
    /// HTTP settings.
    pub settings: Arc<HttpSettings>,
    /// The notebook gateway (its connection pools and open websockets).
    pub gateway: enclave_gateway::Gateway,
}

/// The complete router: API, console, health, static assets, with security headers, request
/// ids and body limits applied to every route.
pub fn router(app: App, settings: HttpSettings) -> Router {
    let state = AppState {
        app,
        settings: Arc::new(settings.clone()),
        gateway: gateway::new_gateway(),
    };
    let (api, _doc) = api::routes().split_for_parts();
    let main = Router::new()
        .merge(api)
        .merge(console::routes())
        .merge(gateway::routes())
        .merge(health_routes())
        .nest_service(scim::SCIM_PATH, scim::routes(state.app.clone()))
        .route_layer(axum::middleware::from_fn(decided::require_decision))
        .fallback(error::not_found_fallback)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(state.clone());
    // In subdomain mode, hosts under the notebook domain never reach Enclave's own routes.
    // The dispatch wraps the whole router (not its routes), so it decides before any routing.
    let routed = match &settings.notebook_origins {
        Some(o) => {
            let dispatch = axum::middleware::from_fn_with_state(
                Arc::new(notebook_origin::Dispatch::new(
                    &o.domain,
                    state.clone(),
                    settings.max_body_bytes,
                )),
                notebook_origin::by_host,
            );
            Router::new().fallback_service(tower::Layer::layer(&dispatch, main))
        }
        None => main,
    };
    routed.layer(axum::middleware::from_fn_with_state(
        state.settings.clone(),
        headers::middleware,
    ))
}

fn health_routes() -> Router<AppState> {
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::get;
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.app.ready().await {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
}
