//! SCIM error responses (RFC 7644 §3.12) and the backend's error type.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Media type of every SCIM response body.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// Schema URN of SCIM error bodies.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// What a [`crate::ScimBackend`] returns when an operation fails. Messages must not contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The resource does not exist (or the caller may not know it does).
    #[error("resource not found")]
    NotFound,
    /// A uniqueness constraint failed (e.g. the userName is taken); the message says which.
    #[error("{0}")]
    Conflict(String),
    /// The bearer token is missing, unknown, expired or not valid for this source.
    #[error("the bearer token is not valid for this SCIM endpoint")]
    Unauthorized,
    /// The token is valid but may not do this.
    #[error("this token may not perform this operation")]
    Forbidden,
    /// The request is well-formed but its content is refused; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The version passed for an optimistic check is no longer current.
    #[error("the resource changed since it was read")]
    VersionMismatch,
    /// The backend cannot serve now (store down, overloaded); the client should retry later.
    #[error("the service is temporarily unavailable")]
    Unavailable,
}

/// A SCIM error response: status code, optional `scimType` and a detail for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    /// HTTP status.
    pub status: StatusCode,
    /// RFC 7644 `scimType` (`invalidFilter`, `uniqueness`, ...).
    pub scim_type: Option<&'static str>,
    /// Human-readable detail; never contains secrets.
    pub detail: String,
}

impl ScimError {
    /// An error with a status, an optional `scimType` and a detail.
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    /// 400 with a `scimType`.
    pub fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
    /// 401 for a request without a bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "send the SCIM token of this identity source as 'Authorization: Bearer <token>'",
        )
    }
    /// 412 for an `If-Match` that does not match the current version.
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "the resource changed since the version given in If-Match; read it again and retry",
        )
    }
    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        let mut v = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, v.as_object_mut()) {
            obj.insert("scimType".into(), t.into());
        }
        v
    }
}

impl From<BackendError> for ScimError {
    fn from(e: BackendError) -> Self {
        let detail = e.to_string();
        match e {
            BackendError::NotFound => ScimError::not_found(detail),
            BackendError::Conflict(_) => {
                ScimError::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
            }
            BackendError::Unauthorized => ScimError::new(StatusCode::UNAUTHORIZED, None, detail),
            BackendError::Forbidden => ScimError::new(StatusCode::FORBIDDEN, None, detail),
            BackendError::Invalid(_) => ScimError::bad_request("invalidValue", detail),
            BackendError::VersionMismatch => ScimError::precondition_failed(),
            BackendError::Unavailable => ScimError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the service is temporarily unavailable; retry later",
            ),
        }
    }
}

impl From<crate::filter::FilterError> for ScimError {
    fn from(e: crate::filter::FilterError) -> Self {
        ScimError::bad_request("invalidFilter", e.0)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut resp = (self.status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"SCIM\""),
            );
        }
        resp
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn maps_backend_errors() {
        let cases = [
            (BackendError::NotFound, 404, None),
            (
                BackendError::Conflict("userName 'a' is taken".into()),
                409,
                Some("uniqueness"),
            ),
            (BackendError::Unauthorized, 401, None),
            (BackendError::Forbidden, 403, None),
            (
                BackendError::Invalid("bad".into()),
                400,
                Some("invalidValue"),
            ),
            (BackendError::VersionMismatch, 412, None),
            (BackendError::Unavailable, 503, None),
        ];
        for (e, status, t) in cases {
            let s: ScimError = e.into();
            assert_eq!(s.status.as_u16(), status);
            assert_eq!(s.scim_type, t);
            let body = s.body();
            assert_eq!(body["schemas"][0], ERROR_SCHEMA);
            assert_eq!(body["status"], status.to_string());
            assert_eq!(body.get("scimType").and_then(|v| v.as_str()), t);
        }
    }

    #[test]
    fn error_response_has_scim_content_type() {
        let r = ScimError::unauthorized().into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[header::CONTENT_TYPE], SCIM_CONTENT_TYPE);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
