//! The error every use case returns: a stable machine code, a message that tells the user what to
//! do, and optional structured details. Messages never contain secrets.

use serde_json::{Map, Value};

/// Stable error codes, part of the public API (see docs/API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed request: bad JSON, wrong type, unknown field, bad query.
    InvalidRequest,
    /// A value failed validation.
    InvalidInput,
    /// No valid credential.
    Unauthenticated,
    /// Login failed; identical for unknown users and wrong passwords.
    InvalidCredentials,
    /// The policy denied the action.
    Forbidden,
    /// Cookie-authenticated change without a valid CSRF token.
    CsrfFailed,
    /// No such resource, or not visible to the caller.
    NotFound,
    /// Name taken or state conflict.
    Conflict,
    /// Setup token unknown, used or expired.
    SetupUnavailable,
    /// Body over the configured limit.
    PayloadTooLarge,
    /// Body is not JSON.
    UnsupportedMediaType,
    /// Login throttled or account locked.
    TooManyAttempts,
    /// The password was right and the account has a second factor: finish the login with a
    /// code and the `mfa_token` from the error's details.
    MfaRequired,
    /// The identity source authenticated the person, but its admission rule does not admit
    /// them to this platform.
    NotAdmitted,
    /// A dependency (store, audit trail, hash pool) is unavailable; nothing changed.
    Unavailable,
    /// Unexpected failure.
    Internal,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::SetupUnavailable => "setup_unavailable",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::MfaRequired => "mfa_required",
            ErrorCode::NotAdmitted => "not_admitted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A use-case error.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// Stable code.
    pub code: ErrorCode,
    /// Human message naming what to fix.
    pub message: String,
    /// Structured details (for example `{"field": "name"}`).
    pub details: Map<String, Value>,
}

impl Error {
    /// A new error with no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds one detail.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// An invalid value in `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidInput, message).with("field", field)
    }

    /// `what` does not exist (or is not visible).
    pub fn not_found(what: &str, name: &str) -> Self {
        Error::new(
            ErrorCode::NotFound,
            format!("{what} '{name}' was not found"),
        )
        .with("resource", what)
    }

    /// The policy refused the action.
    pub fn forbidden() -> Self {
        Error::new(
            ErrorCode::Forbidden,
            "you are not allowed to do this; ask a platform admin or the project owner for access",
        )
    }

    /// No valid credential.
    pub fn unauthenticated() -> Self {
        Error::new(
            ErrorCode::Unauthenticated,
            "authentication required: log in again or pass a valid API token",
        )
    }

    /// A dependency failed; nothing was changed.
    pub fn unavailable(what: &str) -> Self {
        Error::new(
            ErrorCode::Unavailable,
            format!("{what} is unavailable; nothing was changed, retry later"),
        )
    }

    /// An unexpected failure. The cause goes to the log, not to the client.
    pub fn internal() -> Self {
        Error::new(
            ErrorCode::Internal,
            "internal error; the server log has details for this request id",
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl std::error::Error for Error {}

/// Result alias for use cases.
pub type Result<T, E = Error> = std::result::Result<T, E>;
