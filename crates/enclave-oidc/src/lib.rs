//! OpenID Connect relying party for Enclave.
//!
//! One [`Provider`] per configured identity provider. A login is
//! [`Provider::begin`] (authorization URL plus a [`PendingLogin`] the server stores, keyed by its
//! `state`) and [`Provider::finish`] (the callback's `state` and `code`, the stored pending
//! login, and the current time), which returns the [`Identity`].
//!
//! - Authorization code flow with PKCE (S256), `state` and `nonce`, each 256 random bits.
//! - Discovery and JWKS fetched and cached; the discovered issuer must equal the configured one.
//!   An ID token with an unknown key id triggers one JWKS refetch (at most one per 30 s).
//! - ID tokens are checked by the pure [`validate_id_token`]: allow-listed algorithm (never
//!   `none` or HS*: HMAC tokens are keyed with the client secret, which would let anyone who knows
//!   it forge logins), key id, `iss`, `aud`/`azp`, `exp`/`nbf`/`iat` with 60 s leeway, `nonce`.
//! - HTTP: no redirects, no proxy, 5 s connect / 10 s total timeouts, 1 MiB responses, https only,
//!   and no loopback/private/link-local/CGNAT/... addresses unless the provider is `internal`
//!   (checked at resolution, so the connection uses exactly the checked addresses).
//! - Errors carry an [`ErrorKind`]: unavailable, misconfigured, rejected, or invalid (audit it).

mod error;
pub mod net;
mod provider;
mod token;

pub use error::{Error, ErrorKind};
/// The signature algorithm type used in [`Expectations`].
pub use jsonwebtoken::Algorithm;
pub use provider::{
    ClaimNames, ClientSecret, DiscoveryInfo, Identity, PendingLogin, Provider, ProviderConfig,
    TokenAuth, JWKS_MAX_AGE_S, JWKS_REFETCH_INTERVAL_S,
};
pub use token::{
    parse_algorithm, validate_id_token, Expectations, IdTokenClaims, Jwks, DEFAULT_ALGORITHMS,
    DEFAULT_LEEWAY_S, MAX_ID_TOKEN_BYTES,
};
