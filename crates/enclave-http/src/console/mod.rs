//! Web console (in progress).
use crate::AppState;
/// Console routes.
pub fn routes() -> axum::Router<AppState> { axum::Router::new() }
