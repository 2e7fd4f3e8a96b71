//! ID token validation: a pure function of the token, the provider's keys, what is expected and
//! the current time. No IO, no clock.

use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::error::{sanitize, Error};

/// Largest ID token Enclave accepts.
pub const MAX_ID_TOKEN_BYTES: usize = 64 * 1024;
/// Default clock leeway for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY_S: i64 = 60;
/// Algorithms accepted when the provider settings name none.
pub const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "ES256", "PS256", "EdDSA"];
/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 100;

/// Parses an algorithm name from the provider settings. `none` and HS256/384/512 are refused:
/// `none` is unsigned, and HMAC-signed ID tokens are keyed with the client secret, so anyone who
/// knows it (every client sharing it, whoever reads the settings) could forge logins.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, Error> {
    if is_forbidden(name) {
        return Err(Error::Config(format!(
            "the signing algorithm {} is never accepted (none is unsigned; HMAC would let anyone who knows the client secret forge tokens)",
            sanitize(name)
        )));
    }
    Algorithm::from_str(name).map_err(|_| {
        Error::Config(format!(
            "unknown signing algorithm {} (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA)",
            sanitize(name)
        ))
    })
}

fn is_forbidden(alg: &str) -> bool {
    alg.eq_ignore_ascii_case("none") || alg.to_ascii_uppercase().starts_with("HS")
}

/// The signing keys a provider publishes (its JWKS). Keys that cannot be used for signatures
/// (symmetric keys, encryption keys, unknown key types) are left out.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`), keeping the usable signing keys.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        let doc: Value = serde_json::from_slice(json).map_err(|e| Error::BadResponse {
            what: "JWKS",
            detail: format!("not JSON ({e})"),
        })?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err(Error::BadResponse {
                what: "JWKS",
                detail: "no \"keys\" array".into(),
            });
        };
        let keys = list
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter(|k| !matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
            .filter(|k| {
                matches!(
                    k.common.public_key_use,
                    None | Some(PublicKeyUse::Signature)
                )
            })
            .take(MAX_KEYS)
            .collect();
        Ok(Self { keys })
    }

    /// The key ids, in order (keys without an id are listed as an empty string).
    pub fn key_ids(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap_or_default())
            .collect()
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this id is published.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.common.key_id.as_deref() == Some(kid))
    }

    /// The key for a token: by `kid`, and compatible with `alg` (key type, curve, the key's own
    /// `alg` if it names one). Without a `kid`, only a JWKS with exactly one compatible key works.
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Jwk> {
        let mut candidates = self.keys.iter().filter(|k| compatible(k, alg));
        match kid {
            Some(kid) => candidates.find(|k| k.common.key_id.as_deref() == Some(kid)),
            None => {
                let first = candidates.next();
                if candidates.next().is_some() {
                    None
                } else {
                    first
                }
            }
        }
    }
}

fn compatible(key: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::EllipticCurve;
    if let Some(key_alg) = key.common.key_algorithm {
        if key_alg.to_string() != format!("{alg:?}") {
            return false;
        }
    }
    match (&key.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// What an ID token must satisfy.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The configured issuer; `iss` must equal it exactly.
    pub issuer: String,
    /// Enclave's client id; `aud` must contain it (and `azp`, if present, must equal it).
    pub client_id: String,
    /// The nonce of the pending login.
    pub nonce: String,
    /// Accepted signature algorithms (`none` and HS* are refused even if listed).
    pub algorithms: Vec<Algorithm>,
    /// Clock leeway in seconds for `exp`, `nbf` and `iat`.
    pub leeway_s: i64,
}

/// The validated claims of an ID token.
#[derive(Debug, Clone)]
pub struct IdTokenClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// The key id that signed the token, if the header named one.
    pub kid: Option<String>,
    /// Every claim of the token.
    pub all: Map<String, Value>,
}

/// The header fields Enclave looks at, read before any cryptography.
#[derive(Debug)]
pub(crate) struct PeekedHeader {
    pub alg: String,
    pub kid: Option<String>,
}

/// Reads a token's header without verifying anything (to pick the key, or to refetch the JWKS).
pub(crate) fn peek_header(token: &str) -> Result<PeekedHeader, Error> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(Error::MalformedToken("it is too large"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::MalformedToken(
            "it is not a signed JWT (three dot-separated parts)",
        ));
    };
    let raw = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Error::MalformedToken("its header is not base64url"))?;
    let header: Value = serde_json::from_slice(&raw)
        .map_err(|_| Error::MalformedToken("its header is not JSON"))?;
    let Some(header) = header.as_object() else {
        return Err(Error::MalformedToken("its header is not a JSON object"));
    };
    if header.contains_key("crit") {
        return Err(Error::MalformedToken(
            "its header has critical extensions Enclave does not understand",
        ));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Error::MalformedToken("its header has no algorithm"))?
        .to_owned();
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Error::MalformedToken("its key id is not a string")),
    };
    Ok(PeekedHeader { alg, kid })
}

/// Whether the token's key is missing from `jwks` (the caller may refetch the JWKS once).
/// False for tokens that fail for any other reason.
pub(crate) fn needs_unknown_key(token: &str, jwks: &Jwks, allowed: &[Algorithm]) -> bool {
    let Ok(header) = peek_header(token) else {
        return false;
    };
    let Ok(alg) = Algorithm::from_str(&header.alg) else {
        return false;
    };
    if is_forbidden(&header.alg) || !allowed.contains(&alg) {
        return false;
    }
    jwks.select(header.kid.as_deref(), alg).is_none()
}

fn int_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Error> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(Error::MissingClaim(name)),
    }
}

/// Validates an ID token: signature with an allowed algorithm and a published key, `iss`,
/// `aud`/`azp`, `exp`, `nbf`, `iat` and `nonce` (compared in constant time), all against
/// `now_unix`. Pure: no IO, no clock.
pub fn validate_id_token(
    token: &str,
    jwks: &Jwks,
    expect: &Expectations,
    now_unix: i64,
) -> Result<IdTokenClaims, Error> {
    let header = peek_header(token)?;
    if is_forbidden(&header.alg) {
        return Err(Error::AlgorithmForbidden {
            alg: sanitize(&header.alg),
        });
    }
    let alg = Algorithm::from_str(&header.alg)
        .ok()
        .filter(|a| expect.algorithms.contains(a))
        .ok_or_else(|| Error::AlgorithmNotAllowed {
            alg: sanitize(&header.alg),
        })?;
    let jwk = jwks
        .select(header.kid.as_deref(), alg)
        .ok_or_else(|| Error::UnknownKey {
            kid: header
                .kid
                .as_deref()
                .map_or_else(|| "(none)".to_owned(), sanitize),
        })?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Error::UnknownKey {
        kid: sanitize(header.kid.as_deref().unwrap_or("(none)")),
    })?;

    // jsonwebtoken checks the signature only; every claim is checked below with `now_unix`.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Error::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Error::AlgorithmNotAllowed {
                alg: sanitize(&header.alg),
            },
            jsonwebtoken::errors::ErrorKind::Json(_)
            | jsonwebtoken::errors::ErrorKind::Utf8(_)
            | jsonwebtoken::errors::ErrorKind::Base64(_)
            | jsonwebtoken::errors::ErrorKind::InvalidToken => {
                Error::MalformedToken("its payload is not a base64url JSON object")
            }
            _ => Error::BadSignature,
        },
    )?;
    let claims = data.claims;

    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(Error::MissingClaim("iss"))?;
    if iss != expect.issuer {
        return Err(Error::WrongIssuer {
            found: sanitize(iss),
        });
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(Error::MissingClaim("sub"))?;
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(Error::MissingClaim("aud")),
    };
    if !audiences.contains(&expect.client_id.as_str()) {
        return Err(Error::WrongAudience);
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if *azp == expect.client_id => {}
        Some(_) => return Err(Error::WrongAudience),
        None if audiences.len() > 1 => return Err(Error::WrongAudience),
        None => {}
    }
    let exp = int_claim(&claims, "exp")?.ok_or(Error::MissingClaim("exp"))?;
    if now_unix > exp.saturating_add(expect.leeway_s) {
        return Err(Error::Expired);
    }
    if let Some(nbf) = int_claim(&claims, "nbf")? {
        if nbf > now_unix.saturating_add(expect.leeway_s) {
            return Err(Error::NotYetValid);
        }
    }
    let iat = int_claim(&claims, "iat")?.ok_or(Error::MissingClaim("iat"))?;
    if iat > now_unix.saturating_add(expect.leeway_s) {
        return Err(Error::IssuedInFuture);
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(Error::NonceMismatch)?;
    if expect.nonce.is_empty()
        || aws_lc_rs::constant_time::verify_slices_are_equal(
            nonce.as_bytes(),
            expect.nonce.as_bytes(),
        )
        .is_err()
    {
        return Err(Error::NonceMismatch);
    }

    Ok(IdTokenClaims {
        issuer: iss.to_owned(),
        subject: sub.to_owned(),
        expires_at: exp,
        issued_at: iat,
        kid: header.kid,
        all: claims,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "token_tests.rs"]
mod tests;
