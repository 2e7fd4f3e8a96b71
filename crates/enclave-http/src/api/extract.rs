//! JSON body and query extractors whose rejections use the API's error format.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use enclave_core::{Error, ErrorCode};
use serde::de::DeserializeOwned;

/// A JSON request body; unknown fields and wrong types are refused with `invalid_request`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rej) => Err(ApiError(json_error(&rej))),
        }
    }
}

fn json_error(rej: &JsonRejection) -> Error {
    match rej {
        JsonRejection::MissingJsonContentType(_) => Error::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(e) => Error::new(
            ErrorCode::InvalidRequest,
            format!(
                "the JSON body does not match the expected shape: {}",
                clip(&e.body_text())
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => Error::new(
            ErrorCode::InvalidRequest,
            format!("the body is not valid JSON: {}", clip(&e.body_text())),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::new(ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        other => Error::new(
            ErrorCode::InvalidRequest,
            format!("unreadable body: {}", clip(&other.body_text())),
        ),
    }
}

/// Serde messages can quote input; keep them short so nothing large is echoed back.
fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// A query string; unknown parameters and wrong types are refused with `invalid_request`.
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError(Error::new(
                ErrorCode::InvalidRequest,
                format!("bad query string: {}", clip(&e.body_text())),
            ))),
            Err(e) => Err(ApiError(Error::new(
                ErrorCode::InvalidRequest,
                clip(&e.body_text()),
            ))),
        }
    }
}
