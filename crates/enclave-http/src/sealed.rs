//! What a sealed server serves: its health, its status and the unseal endpoint; every other
//! request is answered 503. Once unsealed, [`gate`] hands every request to the full router.
//!
//! Invariants: nothing but these three routes answers while sealed; the passphrase is never
//! logged or echoed; one unseal attempt runs at a time (the [`Unsealer`] slows failures down).

use crate::error::ApiError;
use crate::HttpSettings;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use enclave_core::{Error, ErrorCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// Why an unseal attempt failed.
#[derive(Debug)]
pub enum UnsealError {
    /// The passphrase does not open the sealed master key.
    WrongPassphrase,
    /// The master key opened but the platform could not start; the message says why.
    Failed(String),
}

/// Unseals the master key and starts the platform.
pub trait Unsealer: Send + Sync + 'static {
    /// Tries `passphrase`, from `source` (the client's address, for the audit trail).
    fn unseal(
        &self,
        passphrase: zeroize::Zeroizing<String>,
        source: String,
    ) -> Pin<Box<dyn Future<Output = Result<(), UnsealError>> + Send + 'static>>;
}

/// The unseal request.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsealIn {
    passphrase: String,
}

fn sealed_error() -> Response {
    ApiError(Error::new(
        ErrorCode::Unavailable,
        "Enclave is sealed: an operator must unseal it with `enclave unseal` first",
    ))
    .into_response()
}

async fn unseal(
    State(u): State<Arc<dyn Unsealer>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(input) = serde_json::from_slice::<UnsealIn>(&body) else {
        return ApiError(Error::new(
            ErrorCode::InvalidRequest,
            "send {\"passphrase\": \"…\"} as JSON",
        ))
        .into_response();
    };
    let passphrase = zeroize::Zeroizing::new(input.passphrase);
    match u.unseal(passphrase, peer.ip().to_string()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(UnsealError::WrongPassphrase) => ApiError(Error::new(
            ErrorCode::InvalidCredentials,
            "wrong passphrase: the sealed master key does not open with it",
        ))
        .into_response(),
        Err(UnsealError::Failed(why)) => {
            ApiError(Error::new(ErrorCode::Unavailable, why)).into_response()
        }
    }
}

/// The router of a sealed server.
pub fn sealed_router(unsealer: Arc<dyn Unsealer>, settings: HttpSettings) -> Router {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route(
            "/readyz",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "sealed\n") }),
        )
        .route(
            "/api/v1/status",
            get(|| async { Json(serde_json::json!({ "sealed": true })) }),
        )
        .route("/api/v1/unseal", post(unseal))
        .fallback(|| async { sealed_error() })
        .layer(DefaultBodyLimit::max(4096))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(settings),
            crate::headers::middleware,
        ))
        .with_state(unsealer)
}

/// One router that serves `sealed` until `live` is set, then `live` for good.
pub fn gate(sealed: Router, live: Arc<OnceLock<Router>>) -> Router {
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let router = live.get().cloned().unwrap_or_else(|| sealed.clone());
        async move { router.oneshot(req).await }
    }))
}
