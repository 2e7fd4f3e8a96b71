//! One configured OpenID provider: discovery, the authorization request, the code exchange,
//! ID token verification with the cached JWKS, and the optional userinfo request.

use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{sanitize, Error};
use crate::net;
use crate::token::{self, Expectations, IdTokenClaims, Jwks};

/// At most one JWKS refetch for an unknown key id per this many seconds.
pub const JWKS_REFETCH_INTERVAL_S: i64 = 30;
/// A cached JWKS older than this (seconds) is fetched again before it is used.
pub const JWKS_MAX_AGE_S: i64 = 3600;
/// Longest authorization code accepted from the callback.
const MAX_CODE_LEN: usize = 4096;
/// Longest state accepted from the callback.
const MAX_STATE_LEN: usize = 512;

/// How Enclave authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    /// HTTP Basic with the form-encoded client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// Client id and secret in the form body.
    ClientSecretPost,
    /// A public client: no secret, only the client id (PKCE protects the code).
    None,
}

/// The client secret; zeroized on drop, never printed by `Debug`, never serialized.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl<'de> Deserialize<'de> for ClientSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret itself, for the token request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

/// Names of the claims Enclave reads for the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClaimNames {
    /// The e-mail claim (default `email`).
    pub email: String,
    /// The display name claim (default `name`).
    pub name: String,
    /// The groups claim (default `groups`): an array of strings or one string.
    pub groups: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
        }
    }
}

/// The settings of one OpenID provider.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderConfig {
    /// The issuer, exactly as the provider names itself (`iss`), e.g. `https://login.example.com/realms/x`.
    pub issuer: String,
    /// Enclave's client id at the provider.
    pub client_id: String,
    /// The client secret; `None` for a public client (`auth_method: none`).
    #[serde(default)]
    pub client_secret: Option<ClientSecret>,
    /// Enclave's callback URL, registered at the provider; used verbatim in both requests.
    pub redirect_uri: String,
    /// Scopes to request; `openid` is added when missing. Default: openid, email, profile.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Accepted ID token signature algorithms. Default: RS256, ES256, PS256, EdDSA.
    /// `none` and HS256/384/512 are refused: HMAC tokens are keyed with the client secret.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Which claims hold the e-mail, the name and the groups.
    #[serde(default)]
    pub claims: ClaimNames,
    /// Also ask the userinfo endpoint and merge its claims (its `sub` must match).
    #[serde(default)]
    pub use_userinfo: bool,
    /// The provider is on the internal network: allow non-public addresses, and http on loopback.
    #[serde(default)]
    pub internal: bool,
    /// How Enclave authenticates to the token endpoint.
    #[serde(default)]
    pub auth_method: TokenAuth,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

fn default_algorithms() -> Vec<String> {
    token::DEFAULT_ALGORITHMS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

impl ProviderConfig {
    /// A configuration with the defaults: confidential client with `client_secret_basic`,
    /// scopes openid/email/profile, default algorithms and claim names, public addresses only.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<ClientSecret>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            scopes: default_scopes(),
            algorithms: default_algorithms(),
            claims: ClaimNames::default(),
            use_userinfo: false,
            internal: false,
            auth_method: TokenAuth::default(),
        }
    }
}

/// The one-use state of a login between [`Provider::begin`] and [`Provider::finish`]. The server
/// keeps it (keyed by `state`, for a few minutes) and hands it back once. `Debug` shows only the
/// issuer.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The issuer of the provider that started the login (a login is finished only there).
    pub issuer: String,
    /// The `state` parameter (256-bit random, base64url).
    pub state: String,
    /// The `nonce` parameter (256-bit random, base64url).
    pub nonce: String,
    /// The PKCE code verifier (256-bit random, base64url); secret.
    pub pkce_verifier: String,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        self.pkce_verifier.zeroize();
        self.nonce.zeroize();
    }
}

/// Who logged in, as the provider asserts it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    /// The issuer.
    pub issuer: String,
    /// The subject (`sub`): stable per user and issuer.
    pub subject: String,
    /// The e-mail claim.
    pub email: Option<String>,
    /// `email_verified` (a boolean, or the strings "true"/"false").
    pub email_verified: Option<bool>,
    /// The name claim.
    pub name: Option<String>,
    /// The groups claim (an array of strings, or one string); empty when absent.
    pub groups: Vec<String>,
    /// Authentication methods (`amr`).
    pub amr: Vec<String>,
    /// Authentication context class (`acr`).
    pub acr: Option<String>,
    /// Every claim of the ID token, merged with userinfo's when configured.
    pub claims: Value,
}

/// What discovery found, for the administrator's "test this provider".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryInfo {
    /// The issuer (equal to the configured one).
    pub issuer: String,
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The userinfo endpoint, if any.
    pub userinfo_endpoint: Option<String>,
    /// The JWKS URL.
    pub jwks_uri: String,
    /// `id_token_signing_alg_values_supported`, as published.
    pub signing_algorithms: Vec<String>,
    /// Key ids of the usable signing keys in the JWKS.
    pub key_ids: Vec<String>,
}

#[derive(Debug)]
struct Discovery {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    userinfo_endpoint: Option<Url>,
    jwks_uri: Url,
    signing_algorithms: Vec<String>,
}

#[derive(Debug, Default)]
struct Cache {
    discovery: Option<Arc<Discovery>>,
    jwks: Option<(Arc<Jwks>, i64)>,
    last_refetch: Option<i64>,
}

/// A configured OpenID provider. Cheap to share (`Arc<Provider>`); caches discovery and JWKS.
#[derive(Debug)]
pub struct Provider {
    cfg: ProviderConfig,
    issuer_url: Url,
    algorithms: Vec<Algorithm>,
    scope: String,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

fn random_token() -> Result<String, Error> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| Error::Config("the system random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn parse_json_object(what: &'static str, body: &[u8]) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::BadResponse {
            what,
            detail: "not a JSON object".into(),
        }),
        Err(e) => Err(Error::BadResponse {
            what,
            detail: format!("not JSON ({e})"),
        }),
    }
}

fn string_field<'a>(
    what: &'static str,
    map: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a str, Error> {
    map.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadResponse {
            what,
            detail: format!("it has no \"{key}\""),
        })
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn oauth_error_code(body: &[u8]) -> String {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "no error code".into());
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == ' ')
        .take(40)
        .collect()
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Provider {
    /// Checks the settings and builds the HTTP client. No network traffic.
    pub fn new(cfg: ProviderConfig) -> Result<Self, Error> {
        let issuer_url = net::check_url("issuer", &cfg.issuer, cfg.internal)?;
        if cfg.issuer.contains(['?', '#']) {
            return Err(Error::Config(
                "the issuer must not have a query or fragment".into(),
            ));
        }
        if cfg.client_id.is_empty() || cfg.client_id.len() > 512 {
            return Err(Error::Config(
                "the client id must be 1 to 512 characters".into(),
            ));
        }
        match (cfg.auth_method, &cfg.client_secret) {
            (TokenAuth::None, Some(_)) => {
                return Err(Error::Config(
                    "a client secret is set but the token endpoint authentication method is none; remove the secret or pick client_secret_basic/client_secret_post".into(),
                ))
            }
            (TokenAuth::ClientSecretBasic | TokenAuth::ClientSecretPost, None) => {
                return Err(Error::Config(
                    "the client secret is missing; set it, or choose the authentication method none for a public client".into(),
                ))
            }
            (_, Some(secret)) if secret.expose().is_empty() => {
                return Err(Error::Config("the client secret is empty".into()))
            }
            _ => {}
        }
        let redirect = Url::parse(&cfg.redirect_uri)
            .map_err(|_| Error::Config("the redirect URI is not an absolute URL".into()))?;
        if !matches!(redirect.scheme(), "https" | "http") || redirect.fragment().is_some() {
            return Err(Error::Config(
                "the redirect URI must be an http(s) URL without a fragment".into(),
            ));
        }
        if cfg.algorithms.is_empty() {
            return Err(Error::Config(
                "at least one ID token signing algorithm must be allowed (e.g. RS256)".into(),
            ));
        }
        let algorithms = cfg
            .algorithms
            .iter()
            .map(|a| token::parse_algorithm(a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut scopes: Vec<&str> = vec!["openid"];
        for s in &cfg.scopes {
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
            {
                return Err(Error::Config(format!(
                    "the scope {:?} is not a valid scope token",
                    sanitize(s)
                )));
            }
            if !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        let scope = scopes.join(" ");
        for name in [&cfg.claims.email, &cfg.claims.name, &cfg.claims.groups] {
            if name.is_empty() {
                return Err(Error::Config("a claim name is empty".into()));
            }
        }
        let http = net::client(cfg.internal)?;
        Ok(Self {
            cfg,
            issuer_url,
            algorithms,
            scope,
            http,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.cfg.issuer
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch_discovery(&self) -> Result<Arc<Discovery>, Error> {
        const WHAT: &str = "discovery";
        let mut url = self.issuer_url.clone();
        let path = format!(
            "{}/.well-known/openid-configuration",
            url.path().trim_end_matches('/')
        );
        url.set_path(&path);
        let req = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        let (_, _, body) = net::send(WHAT, req, &[]).await?;
        let doc = parse_json_object(WHAT, &body)?;
        let issuer = string_field(WHAT, &doc, "issuer")?;
        if issuer != self.cfg.issuer {
            return Err(Error::IssuerMismatch {
                configured: sanitize(&self.cfg.issuer),
                discovered: sanitize(issuer),
            });
        }
        let internal = self.cfg.internal;
        let endpoint = |what: &'static str, key: &str| -> Result<Url, Error> {
            net::check_url(what, string_field(WHAT, &doc, key)?, internal)
        };
        let authorization_endpoint = endpoint("authorization endpoint", "authorization_endpoint")?;
        let token_endpoint = endpoint("token endpoint", "token_endpoint")?;
        let jwks_uri = endpoint("JWKS", "jwks_uri")?;
        let userinfo_endpoint = match doc.get("userinfo_endpoint").and_then(Value::as_str) {
            Some(u) => Some(net::check_url("userinfo endpoint", u, internal)?),
            None => None,
        };
        if let Some(methods) = doc.get("code_challenge_methods_supported") {
            if !string_list(Some(methods)).iter().any(|m| m == "S256") {
                return Err(Error::Unsupported("PKCE with S256"));
            }
        }
        if let Some(types) = doc.get("response_types_supported") {
            if !string_list(Some(types)).iter().any(|t| t == "code") {
                return Err(Error::Unsupported("the authorization code flow"));
            }
        }
        let discovery = Arc::new(Discovery {
            issuer: issuer.to_owned(),
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            jwks_uri,
            signing_algorithms: string_list(doc.get("id_token_signing_alg_values_supported")),
        });
        self.cache().discovery = Some(discovery.clone());
        Ok(discovery)
    }

    async fn discovery(&self) -> Result<Arc<Discovery>, Error> {
        let cached = self.cache().discovery.clone();
        match cached {
            Some(d) => Ok(d),
            None => self.fetch_discovery().await,
        }
    }

    async fn fetch_jwks(&self, discovery: &Discovery) -> Result<Jwks, Error> {
        let req = self.http.get(discovery.jwks_uri.clone()).header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        );
        let (_, _, body) = net::send("JWKS", req, &[]).await?;
        Jwks::from_json(&body)
    }

    /// Fetches the discovery document and the JWKS again (for "test this provider") and reports
    /// what they say. Fails when the provider cannot sign ID tokens with an allowed algorithm.
    pub async fn discover(&self) -> Result<DiscoveryInfo, Error> {
        let d = self.fetch_discovery().await?;
        let jwks = self.fetch_jwks(&d).await?;
        if !d.signing_algorithms.is_empty()
            && !d
                .signing_algorithms
                .iter()
                .any(|a| token::parse_algorithm(a).is_ok_and(|alg| self.algorithms.contains(&alg)))
        {
            return Err(Error::Config(format!(
                "the provider signs ID tokens only with {}, none of which is allowed in the provider's settings",
                sanitize(&d.signing_algorithms.join(", "))
            )));
        }
        if jwks.is_empty() {
            return Err(Error::BadResponse {
                what: "JWKS",
                detail: "it has no usable signing key".into(),
            });
        }
        Ok(DiscoveryInfo {
            issuer: d.issuer.clone(),
            authorization_endpoint: d.authorization_endpoint.to_string(),
            token_endpoint: d.token_endpoint.to_string(),
            userinfo_endpoint: d.userinfo_endpoint.as_ref().map(Url::to_string),
            jwks_uri: d.jwks_uri.to_string(),
            signing_algorithms: d.signing_algorithms.clone(),
            key_ids: jwks.key_ids(),
        })
    }

    /// Starts a login: returns the URL to send the browser to and the pending state the server
    /// must keep until the callback. Fetches discovery if it is not cached.
    pub async fn begin(&self) -> Result<(String, PendingLogin), Error> {
        let d = self.discovery().await?;
        let pending = PendingLogin {
            issuer: self.cfg.issuer.clone(),
            state: random_token()?,
            nonce: random_token()?,
            pkce_verifier: random_token()?,
        };
        let mut url = d.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", &self.cfg.redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &pkce_challenge(&pending.pkce_verifier))
            .append_pair("code_challenge_method", "S256");
        Ok((url.into(), pending))
    }

    /// Finishes a login from the callback's `state` and `code`: checks the state, exchanges the
    /// code (with the PKCE verifier), verifies the ID token against `now_unix`, asks userinfo if
    /// configured, and returns the identity. The pending login must not be used again.
    pub async fn finish(
        &self,
        pending: &PendingLogin,
        returned_state: &str,
        code: &str,
        now_unix: i64,
    ) -> Result<Identity, Error> {
        if pending.issuer != self.cfg.issuer {
            return Err(Error::StateMismatch);
        }
        if returned_state.len() > MAX_STATE_LEN
            || pending.state.is_empty()
            || aws_lc_rs::constant_time::verify_slices_are_equal(
                returned_state.as_bytes(),
                pending.state.as_bytes(),
            )
            .is_err()
        {
            return Err(Error::StateMismatch);
        }
        if code.is_empty() || code.len() > MAX_CODE_LEN {
            return Err(Error::GrantRejected {
                code: "missing or oversized code".into(),
            });
        }
        let d = self.discovery().await?;
        let (id_token, access_token) = self.exchange(&d, pending, code).await?;
        let claims = self
            .verify_id_token(&id_token, &pending.nonce, now_unix)
            .await?;
        let mut all = claims.all;
        if self.cfg.use_userinfo {
            let info = self
                .userinfo(&d, access_token.as_ref().map(|t| t.as_str()))
                .await?;
            if info.get("sub").and_then(Value::as_str) != Some(claims.subject.as_str()) {
                return Err(Error::UserinfoSubjectMismatch);
            }
            const PROTOCOL: &[&str] = &[
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "nonce",
                "azp",
                "auth_time",
                "acr",
                "amr",
                "at_hash",
                "c_hash",
                "sid",
                "jti",
            ];
            for (k, v) in info {
                if !PROTOCOL.contains(&k.as_str()) {
                    all.insert(k, v);
                }
            }
        }
        Ok(self.identity(claims.issuer, claims.subject, all))
    }

    async fn exchange(
        &self,
        d: &Discovery,
        pending: &PendingLogin,
        code: &str,
    ) -> Result<(Zeroizing<String>, Option<Zeroizing<String>>), Error> {
        const WHAT: &str = "token";
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.cfg.redirect_uri),
            ("code_verifier", &pending.pkce_verifier),
        ];
        let secret = self.cfg.client_secret.as_ref().map(ClientSecret::expose);
        let mut req = self
            .http
            .post(d.token_endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match (self.cfg.auth_method, secret) {
            (TokenAuth::ClientSecretBasic, Some(secret)) => {
                let user = Zeroizing::new(form_encode(&self.cfg.client_id));
                let pass = Zeroizing::new(form_encode(secret));
                req = req.basic_auth(user.as_str(), Some(pass.as_str()));
            }
            (TokenAuth::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", &self.cfg.client_id));
                form.push(("client_secret", secret));
            }
            _ => form.push(("client_id", &self.cfg.client_id)),
        }
        let (status, _, body) = net::send(WHAT, req.form(&form), &[400, 401]).await?;
        let body = Zeroizing::new(body);
        if status == 400 || status == 401 {
            let code = oauth_error_code(&body);
            return Err(match code.as_str() {
                "invalid_client" | "unauthorized_client" => Error::ClientRejected { code },
                _ => Error::GrantRejected { code },
            });
        }
        let mut doc = parse_json_object(WHAT, &body)?;
        let id_token = match doc.remove("id_token") {
            Some(Value::String(t)) => Zeroizing::new(t),
            _ => {
                return Err(Error::BadResponse {
                    what: WHAT,
                    detail: "it has no id_token (is the openid scope granted?)".into(),
                })
            }
        };
        let bearer = doc
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
        let access_token = match doc.remove("access_token") {
            Some(Value::String(t)) if bearer => Some(Zeroizing::new(t)),
            Some(Value::String(mut t)) => {
                t.zeroize();
                None
            }
            _ => None,
        };
        Ok((id_token, access_token))
    }

    async fn userinfo(
        &self,
        d: &Discovery,
        access_token: Option<&str>,
    ) -> Result<Map<String, Value>, Error> {
        const WHAT: &str = "userinfo";
        let endpoint = d.userinfo_endpoint.clone().ok_or(Error::Unsupported(
            "a userinfo endpoint (use_userinfo is on)",
        ))?;
        let token = access_token.ok_or_else(|| Error::BadResponse {
            what: "token",
            detail: "it has no Bearer access token for the userinfo request".into(),
        })?;
        let req = self
            .http
            .get(endpoint)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json");
        let (_, content_type, body) = net::send(WHAT, req, &[]).await?;
        if content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/jwt"))
        {
            return Err(Error::Unsupported(
                "plain JSON userinfo responses (it sends signed or encrypted ones)",
            ));
        }
        parse_json_object(WHAT, &body)
    }

    async fn jwks_at(&self, d: &Discovery, now_unix: i64) -> Result<Arc<Jwks>, Error> {
        let cached = self.cache().jwks.clone();
        if let Some((jwks, fetched_at)) = cached {
            if now_unix >= fetched_at && now_unix - fetched_at < JWKS_MAX_AGE_S {
                return Ok(jwks);
            }
        }
        let jwks = Arc::new(self.fetch_jwks(d).await?);
        self.cache().jwks = Some((jwks.clone(), now_unix));
        Ok(jwks)
    }

    /// Verifies an ID token from this provider against the nonce of its pending login. If its
    /// key id is not in the cached JWKS, the JWKS is fetched again, at most once per
    /// [`JWKS_REFETCH_INTERVAL_S`] (by `now_unix`); then an unknown key is refused.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
        now_unix: i64,
    ) -> Result<IdTokenClaims, Error> {
        let d = self.discovery().await?;
        let mut jwks = self.jwks_at(&d, now_unix).await?;
        if token::needs_unknown_key(id_token, &jwks, &self.algorithms) {
            let allowed = {
                let mut cache = self.cache();
                let allowed = cache.last_refetch.is_none_or(|last| {
                    now_unix < last || now_unix - last >= JWKS_REFETCH_INTERVAL_S
                });
                if allowed {
                    cache.last_refetch = Some(now_unix);
                }
                allowed
            };
            if allowed {
                tracing::info!(issuer = %self.cfg.issuer, "ID token key id not in the cached JWKS; fetching the JWKS again");
                let fresh = Arc::new(self.fetch_jwks(&d).await?);
                self.cache().jwks = Some((fresh.clone(), now_unix));
                jwks = fresh;
            }
        }
        let expect = Expectations {
            issuer: self.cfg.issuer.clone(),
            client_id: self.cfg.client_id.clone(),
            nonce: nonce.to_owned(),
            algorithms: self.algorithms.clone(),
            leeway_s: token::DEFAULT_LEEWAY_S,
        };
        token::validate_id_token(id_token, &jwks, &expect, now_unix)
    }

    fn identity(&self, issuer: String, subject: String, all: Map<String, Value>) -> Identity {
        let names = &self.cfg.claims;
        let text = |key: &str| all.get(key).and_then(Value::as_str).map(str::to_owned);
        let email_verified = match all.get("email_verified") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        Identity {
            email: text(&names.email),
            name: text(&names.name),
            groups: string_list(all.get(&names.groups)),
            amr: string_list(all.get("amr")),
            acr: text("acr"),
            email_verified,
            issuer,
            subject,
            claims: Value::Object(all),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn cfg() -> ProviderConfig {
        ProviderConfig::new(
            "https://login.example.com/realms/x",
            "enclave",
            Some(ClientSecret::new("s3cret-value")),
            "https://enclave.example.com/auth/oidc/callback",
        )
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let pending = PendingLogin {
            issuer: "https://login.example.com".into(),
            state: random_token().unwrap(),
            nonce: random_token().unwrap(),
            pkce_verifier: random_token().unwrap(),
        };
        let shown = format!("{pending:?}");
        assert!(!shown.contains(&pending.pkce_verifier) && !shown.contains(&pending.nonce));
        assert!(shown.contains("login.example.com"));
        let provider = Provider::new(cfg()).unwrap();
        assert!(!format!("{provider:?}").contains("s3cret-value"));
        // The server stores it as JSON and gets it back intact.
        let back: PendingLogin =
            serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
        assert_eq!(back.pkce_verifier, pending.pkce_verifier);
        assert_eq!(back.state, pending.state);
    }

    #[test]
    fn random_values_are_256_bit_base64url_and_pkce_is_s256() {
        let a = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, random_token().unwrap());
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn settings_are_checked() {
        let bad = |f: fn(&mut ProviderConfig)| {
            let mut c = cfg();
            f(&mut c);
            Provider::new(c).unwrap_err()
        };
        assert!(matches!(
            bad(|c| c.algorithms = vec!["HS256".into()]),
            Error::Config(_)
        ));
        assert!(matches!(
            bad(|c| c.algorithms = vec!["none".into()]),
            Error::Config(_)
        ));
        assert!(matches!(bad(|c| c.algorithms = vec![]), Error::Config(_)));
        assert!(matches!(bad(|c| c.client_secret = None), Error::Config(_)));
        assert!(matches!(
            bad(|c| c.auth_method = TokenAuth::None),
            Error::Config(_)
        ));
        assert!(matches!(
            bad(|c| c.redirect_uri = "/relative".into()),
            Error::Config(_)
        ));
        assert!(matches!(
            bad(|c| c.scopes = vec!["a b".into()]),
            Error::Config(_)
        ));
        assert!(matches!(
            bad(|c| c.issuer = "http://login.example.com".into()),
            Error::UrlNotAllowed { .. }
        ));
        let err = bad(|c| c.client_secret = Some(ClientSecret::new("")));
        assert!(!err.to_string().contains("s3cret"));
        // Defaults from JSON settings.
        let parsed: ProviderConfig = serde_json::from_value(serde_json::json!({
            "issuer": "https://login.example.com", "client_id": "enclave",
            "client_secret": "x", "redirect_uri": "https://enclave.example.com/cb"
        }))
        .unwrap();
        assert_eq!(parsed.auth_method, TokenAuth::ClientSecretBasic);
        assert_eq!(parsed.algorithms, vec!["RS256", "ES256", "PS256", "EdDSA"]);
        assert!(!parsed.internal && !parsed.use_userinfo);
        let p = Provider::new(parsed).unwrap();
        assert_eq!(p.scope, "openid email profile");
    }

    #[test]
    fn identity_reads_configured_claims() {
        let mut c = cfg();
        c.claims = ClaimNames {
            email: "mail".into(),
            name: "displayName".into(),
            groups: "roles".into(),
        };
        let p = Provider::new(c).unwrap();
        let all = serde_json::json!({
            "sub": "u1", "mail": "u1@example.com", "email_verified": "true",
            "displayName": "U One", "roles": "admins", "amr": ["pwd", "mfa"], "acr": "gold"
        });
        let Value::Object(all) = all else { panic!() };
        let id = p.identity("iss".into(), "u1".into(), all);
        assert_eq!(id.email.as_deref(), Some("u1@example.com"));
        assert_eq!(id.email_verified, Some(true));
        assert_eq!(id.name.as_deref(), Some("U One"));
        assert_eq!(id.groups, vec!["admins".to_owned()]);
        assert_eq!(id.amr, vec!["pwd".to_owned(), "mfa".to_owned()]);
        assert_eq!(id.acr.as_deref(), Some("gold"));
        assert_eq!(id.claims["roles"], "admins");
    }
}
