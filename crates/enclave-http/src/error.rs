//! Errors as JSON `{code, message, details}` with a stable code and a fitting HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use enclave_core::{Error, ErrorCode};

/// An error response of the API.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The HTTP status for an error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest | ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated | ErrorCode::InvalidCredentials | ErrorCode::MfaRequired => {
            StatusCode::UNAUTHORIZED
        }
        ErrorCode::Forbidden | ErrorCode::CsrfFailed => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::SetupUnavailable => StatusCode::GONE,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::NotAdmitted => StatusCode::FORBIDDEN,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "code": self.0.code.as_str(),
            "message": self.0.message,
            "details": self.0.details,
        });
        let mut resp = (status_of(self.0.code), axum::Json(body)).into_response();
        if self.0.code == ErrorCode::Unauthenticated {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"enclave\""),
            );
        }
        resp
    }
}

/// Result alias for API handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// Unknown paths: JSON under `/api/`, a short text elsewhere.
pub async fn not_found_fallback(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError(Error::new(
            ErrorCode::NotFound,
            "no such API endpoint; see /api/v1/openapi.json",
        ))
        .into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}
