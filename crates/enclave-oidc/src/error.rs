//! Errors of the relying party. Messages never contain a secret (client secret, code, token,
//! PKCE verifier); values that come from the provider or the token (algorithm, key id, issuer)
//! are shortened and stripped of control characters before they appear in a message.

/// What kind of failure an [`Error`] is, so the server can react: retry later, tell the
/// administrator, tell the user, or audit an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The identity provider could not be reached or answered with a server error.
    Unavailable,
    /// The provider settings (in Enclave or at the provider) are wrong; an administrator must act.
    Misconfigured,
    /// The provider refused the login (for example an expired or already used code).
    Rejected,
    /// A token, state or response failed validation: possibly forged or replayed. Audit it.
    Invalid,
}

/// An error of the OpenID Connect relying party.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A provider setting is invalid.
    #[error("the OIDC provider settings are invalid: {0}")]
    Config(String),
    /// A URL is not https (or http on loopback for an internal provider), or has no host.
    #[error("the identity provider's {what} URL {url} is not allowed: {reason}")]
    UrlNotAllowed {
        /// Which URL (issuer, token endpoint, ...).
        what: &'static str,
        /// The URL without user info, query or fragment.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// A host resolved (or is) a non-public address and the provider is not marked internal.
    #[error("the identity provider's host {host} resolves to the non-public address {addr}; Enclave refuses it unless the provider is marked internal (internal: true)")]
    AddressNotAllowed {
        /// The host name.
        host: String,
        /// The refused address.
        addr: std::net::IpAddr,
    },
    /// The host name could not be resolved.
    #[error(
        "the identity provider's host {host} could not be resolved; check the issuer URL and DNS"
    )]
    Resolve {
        /// The host name.
        host: String,
    },
    /// Network failure: connect error, timeout, TLS failure.
    #[error("the identity provider could not be reached ({what}): {detail}; check that it is up and reachable from Enclave")]
    Unreachable {
        /// Which request.
        what: &'static str,
        /// What failed (no URL, no secret).
        detail: &'static str,
    },
    /// The provider answered with an unexpected HTTP status.
    #[error("the identity provider answered the {what} request with HTTP {status}")]
    HttpStatus {
        /// Which request.
        what: &'static str,
        /// The status code.
        status: u16,
    },
    /// A response was larger than Enclave accepts.
    #[error(
        "the identity provider's {what} response is larger than {limit} bytes; Enclave refuses it"
    )]
    TooLarge {
        /// Which response.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// A response could not be parsed or lacks a required field.
    #[error("the identity provider's {what} response is malformed: {detail}")]
    BadResponse {
        /// Which response.
        what: &'static str,
        /// What is wrong (no content of the response).
        detail: String,
    },
    /// The discovery document names another issuer than the configured one.
    #[error("the discovery document names the issuer {discovered}, but the provider is configured with {configured}; the two must match exactly (check a trailing slash)")]
    IssuerMismatch {
        /// The configured issuer.
        configured: String,
        /// The issuer in the discovery document (sanitized).
        discovered: String,
    },
    /// The provider does not support what Enclave needs (PKCE S256, the authorization code flow).
    #[error("the identity provider does not support {0}, which Enclave requires")]
    Unsupported(&'static str),
    /// The token endpoint refused the client (wrong client id/secret or authentication method).
    #[error("the identity provider refused Enclave's client credentials ({code}); check the client id, the secret and the token endpoint authentication method")]
    ClientRejected {
        /// The OAuth error code.
        code: String,
    },
    /// The token endpoint refused the code (expired, already used, wrong redirect URI or verifier).
    #[error(
        "the identity provider refused the authorization code ({code}); start the login again"
    )]
    GrantRejected {
        /// The OAuth error code.
        code: String,
    },
    /// The `state` returned to the callback is not the one of this pending login.
    #[error(
        "the login response does not belong to this login (state mismatch); start the login again"
    )]
    StateMismatch,
    /// The ID token is not a well-formed JWS.
    #[error("the identity provider's ID token is malformed: {0}")]
    MalformedToken(&'static str),
    /// The token's algorithm is not in the provider's allow-list.
    #[error("the identity provider's ID token is signed with an algorithm Enclave does not accept ({alg}); allow it in the provider's settings or fix the provider")]
    AlgorithmNotAllowed {
        /// The algorithm (sanitized).
        alg: String,
    },
    /// The token's algorithm is one Enclave never accepts (`none`, HS*).
    #[error("the identity provider's ID token uses {alg}, which Enclave never accepts (none is unsigned; HMAC would let anyone who knows the client secret forge tokens); configure the provider to sign ID tokens with RS256 or ES256")]
    AlgorithmForbidden {
        /// The algorithm (sanitized).
        alg: String,
    },
    /// No key in the provider's JWKS matches the token's key id (after one refetch).
    #[error(
        "the ID token is signed with a key the identity provider does not publish (kid {kid})"
    )]
    UnknownKey {
        /// The key id (sanitized), or "(none)".
        kid: String,
    },
    /// The signature does not verify.
    #[error("the ID token's signature is invalid")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("the ID token was issued by {found}, not by the configured issuer")]
    WrongIssuer {
        /// The token's issuer (sanitized).
        found: String,
    },
    /// `aud` does not contain the client id, or `azp` is not the client id.
    #[error("the ID token was issued for another client (audience or authorized party)")]
    WrongAudience,
    /// `exp` is in the past.
    #[error("the ID token has expired; check the clocks of Enclave and the identity provider")]
    Expired,
    /// `nbf` is in the future.
    #[error(
        "the ID token is not valid yet; check the clocks of Enclave and the identity provider"
    )]
    NotYetValid,
    /// `iat` is in the future.
    #[error("the ID token claims to be issued in the future; check the clocks of Enclave and the identity provider")]
    IssuedInFuture,
    /// The nonce is missing or differs from the pending login's.
    #[error("the ID token's nonce does not match this login")]
    NonceMismatch,
    /// A required claim is missing or has the wrong type.
    #[error("the ID token lacks the required claim {0} (or it has the wrong type)")]
    MissingClaim(&'static str),
    /// The userinfo response is for another subject than the ID token.
    #[error("the identity provider's userinfo response is for another user than the ID token")]
    UserinfoSubjectMismatch,
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_)
            | Error::UrlNotAllowed { .. }
            | Error::AddressNotAllowed { .. }
            | Error::IssuerMismatch { .. }
            | Error::Unsupported(_)
            | Error::ClientRejected { .. } => ErrorKind::Misconfigured,
            Error::Resolve { .. }
            | Error::Unreachable { .. }
            | Error::HttpStatus { .. }
            | Error::TooLarge { .. }
            | Error::BadResponse { .. } => ErrorKind::Unavailable,
            Error::GrantRejected { .. } => ErrorKind::Rejected,
            Error::StateMismatch
            | Error::MalformedToken(_)
            | Error::AlgorithmNotAllowed { .. }
            | Error::AlgorithmForbidden { .. }
            | Error::UnknownKey { .. }
            | Error::BadSignature
            | Error::WrongIssuer { .. }
            | Error::WrongAudience
            | Error::Expired
            | Error::NotYetValid
            | Error::IssuedInFuture
            | Error::NonceMismatch
            | Error::MissingClaim(_)
            | Error::UserinfoSubjectMismatch => ErrorKind::Invalid,
        }
    }

    /// Whether the server should audit this as a possible attack (forged, replayed or
    /// misdirected token or response).
    pub fn is_suspicious(&self) -> bool {
        self.kind() == ErrorKind::Invalid
    }
}

/// Shortens an untrusted value for a message: at most 80 characters, printable ASCII only.
pub(crate) fn sanitize(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if value.chars().count() > 80 {
        out.push_str("...");
    }
    out
}
