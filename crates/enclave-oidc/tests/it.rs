//! Integration test against a real OpenID provider: the OpenID-certified `oidc-provider` npm
//! package (tests/idp/oidc-provider.mjs), started by the test on 127.0.0.1 and stopped by a guard.
//! The browser part of the login is driven with reqwest (cookies kept by hand, redirects off and
//! followed one by one). Skipped, with a printed reason, only if `node` is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use enclave_oidc::{
    ClientSecret, Error, ErrorKind, PendingLogin, Provider, ProviderConfig, TokenAuth,
};
use reqwest::Url;
use serde_json::{json, Value};

const REDIRECT: &str = "https://enclave.example.test/auth/oidc/callback";
const SECRET: &str = "a-long-client-secret-for-the-test-only-0123456789";

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp")
}

/// The running test IdP; killed (and reaped) on drop, also when a test fails.
struct Idp {
    child: Child,
    port: u16,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    async fn jwks_requests(&self) -> u64 {
        let stats: Value = reqwest::get(self.url("/__admin/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["jwks_requests"].as_u64().unwrap()
    }

    async fn rotate(&self) -> Vec<String> {
        let out: Value = reqwest::Client::new()
            .post(self.url("/__admin/rotate"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out["kids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    }
}

/// Starts the IdP, or returns None (after printing why) when node is not installed.
fn start_idp() -> Option<Idp> {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `node` is not installed; scripts/test.sh installs it (apt-get install nodejs npm)");
        return None;
    }
    let dir = idp_dir();
    if !dir.join("node_modules/oidc-provider").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in tests/idp failed");
    }
    let clients = json!([
        {
            "client_id": "enclave-basic",
            "client_secret": SECRET,
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        {
            "client_id": "enclave-post",
            "client_secret": SECRET,
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_post",
            "id_token_signed_response_alg": "ES256",
        },
        {
            "client_id": "enclave-public",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        },
    ]);
    let config = json!({ "port": 0, "clients": clients });
    let mut child = Command::new("node")
        .arg(dir.join("oidc-provider.mjs"))
        .arg(config.to_string())
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().unwrap();
    let mut idp = Idp { child, port: 0 };
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    // Keep draining stdout (oidc-provider prints notices there) until the process exits.
    std::thread::spawn(move || {
        for l in reader.lines().map_while(Result::ok) {
            eprintln!("idp: {l}");
        }
    });
    idp.port = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("the IdP did not start: {line:?}"))
        .parse()
        .unwrap();
    Some(idp)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn config(idp: &Idp, client: &str, auth: TokenAuth) -> ProviderConfig {
    let secret = (auth != TokenAuth::None).then(|| ClientSecret::new(SECRET));
    let mut cfg = ProviderConfig::new(idp.issuer(), client, secret, REDIRECT);
    cfg.scopes = vec![
        "openid".into(),
        "email".into(),
        "profile".into(),
        "groups".into(),
    ];
    cfg.auth_method = auth;
    cfg.internal = true;
    cfg.use_userinfo = true;
    cfg
}

/// A minimal browser: cookies by name (paths ignored), no automatic redirects.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        };
        let resp = req.send().await.unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = set
                .to_ascii_lowercase()
                .contains("expires=thu, 01 jan 1970");
            if value.is_empty() || expired {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location, resp.text().await.unwrap())
    }

    /// Drives the login from the authorization URL to the callback; returns (state, code).
    async fn login(&mut self, auth_url: &str, user: &str, password: &str) -> (String, String) {
        let mut url = Url::parse(auth_url).unwrap();
        let mut request = self.http.get(url.clone());
        for _ in 0..12 {
            let (status, location, body) = self.send(request).await;
            if let Some(location) = location {
                assert!((300..400).contains(&status), "{status} with a location");
                url = url.join(&location).unwrap();
                if url.as_str().starts_with(REDIRECT) {
                    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
                    assert!(!q.contains_key("error"), "the IdP answered an error: {q:?}");
                    return (q["state"].clone(), q["code"].clone());
                }
                request = self.http.get(url.clone());
                continue;
            }
            assert_eq!(status, 200, "unexpected page: {body}");
            assert!(
                !body.contains("wrong login or password"),
                "login refused for {user}"
            );
            let action = body
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no form on the page: {body}"));
            url = url.join(action).unwrap();
            request = if body.contains("name=\"login\"") {
                self.http
                    .post(url.clone())
                    .form(&[("login", user), ("password", password)])
            } else {
                self.http.post(url.clone()).form(&[("confirm", "yes")])
            };
        }
        panic!("the login did not reach the callback");
    }
}

async fn login(provider: &Provider, user: &str) -> (PendingLogin, String, String) {
    let (auth_url, pending) = provider.begin().await.unwrap();
    let parsed = Url::parse(&auth_url).unwrap();
    let q: BTreeMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"], pending.state);
    assert_eq!(q["nonce"], pending.nonce);
    assert!(!auth_url.contains(&pending.pkce_verifier));
    let (state, code) = Browser::new()
        .login(&auth_url, user, &format!("{user}-password"))
        .await;
    (pending, state, code)
}

#[tokio::test]
async fn login_with_basic_auth_userinfo_replay_and_wrong_state() {
    let Some(idp) = start_idp() else { return };
    let provider =
        Provider::new(config(&idp, "enclave-basic", TokenAuth::ClientSecretBasic)).unwrap();

    let info = provider.discover().await.unwrap();
    assert_eq!(info.issuer, idp.issuer());
    assert_eq!(info.token_endpoint, idp.url("/token"));
    assert!(info.signing_algorithms.contains(&"RS256".to_owned()));
    assert_eq!(info.key_ids.len(), 2, "{:?}", info.key_ids);

    let (pending, state, code) = login(&provider, "alice").await;
    assert_eq!(state, pending.state);
    let id = provider
        .finish(&pending, &state, &code, now())
        .await
        .unwrap();
    assert_eq!(id.issuer, idp.issuer());
    assert_eq!(id.subject, "alice");
    assert_eq!(id.email.as_deref(), Some("alice@example.test"));
    assert_eq!(id.email_verified, Some(true));
    assert_eq!(id.name.as_deref(), Some("Alice Example"));
    assert_eq!(
        id.groups,
        vec!["data-scientists".to_owned(), "staff".to_owned()]
    );
    assert_eq!(id.claims["sub"], "alice");
    assert_eq!(id.claims["aud"], "enclave-basic");
    assert!(id.claims["exp"].is_i64() && id.claims["nonce"] == pending.nonce.as_str());

    // The same code again: the provider refuses it (and the error names no secret).
    let err = provider
        .finish(&pending, &state, &code, now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::GrantRejected { ref code } if code == "invalid_grant"),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Rejected);
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains(&code) && !msg.contains(SECRET) && !msg.contains(&pending.pkce_verifier));

    // A callback with another state is refused before the code is used; the right state then works.
    let (pending, _state, code) = login(&provider, "bob").await;
    let err = provider
        .finish(&pending, "forged-state", &code, now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err}");
    assert!(err.is_suspicious());
    let other = login(&provider, "bob").await.0;
    let err = provider
        .finish(&other, &pending.state, &code, now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err}");
    let id = provider
        .finish(&pending, &pending.state, &code, now())
        .await
        .unwrap();
    assert_eq!(id.subject, "bob");
    assert_eq!(id.groups, vec!["contractors".to_owned()]);

    // A wrong client secret is a configuration error.
    let mut cfg = config(&idp, "enclave-basic", TokenAuth::ClientSecretBasic);
    cfg.client_secret = Some(ClientSecret::new("not-the-secret"));
    let wrong = Provider::new(cfg).unwrap();
    let (pending, state, code) = login(&wrong, "alice").await;
    let err = wrong
        .finish(&pending, &state, &code, now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ClientRejected { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Misconfigured);
    assert!(!format!("{err} {err:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn login_with_post_auth_es256_and_public_client() {
    let Some(idp) = start_idp() else { return };

    // client_secret_post, ES256 ID tokens, userinfo: carol's groups claim is one string.
    let provider =
        Provider::new(config(&idp, "enclave-post", TokenAuth::ClientSecretPost)).unwrap();
    let (pending, state, code) = login(&provider, "carol").await;
    let id = provider
        .finish(&pending, &state, &code, now())
        .await
        .unwrap();
    assert_eq!(id.subject, "carol");
    assert_eq!(id.email.as_deref(), Some("carol@other.example"));
    assert_eq!(id.email_verified, Some(false));
    assert_eq!(id.groups, vec!["visitors".to_owned()]);

    // The same client with ES256 not allowed: the token is refused, as not allowed.
    let mut cfg = config(&idp, "enclave-post", TokenAuth::ClientSecretPost);
    cfg.algorithms = vec!["RS256".into()];
    let strict = Provider::new(cfg).unwrap();
    let (pending, state, code) = login(&strict, "carol").await;
    let err = strict
        .finish(&pending, &state, &code, now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlgorithmNotAllowed { ref alg } if alg == "ES256"),
        "{err}"
    );

    // A public client (PKCE only, no secret), without userinfo: oidc-provider puts the scope
    // claims only into userinfo for the code flow, so the identity has the subject alone.
    let mut cfg = config(&idp, "enclave-public", TokenAuth::None);
    cfg.use_userinfo = false;
    let public = Provider::new(cfg).unwrap();
    let (pending, state, code) = login(&public, "bob").await;
    let id = public.finish(&pending, &state, &code, now()).await.unwrap();
    assert_eq!(id.subject, "bob");
    assert_eq!(id.email, None);
    assert!(id.groups.is_empty());

    // A token response for another pending login (wrong PKCE verifier) is refused by the IdP.
    let (pending, state, code) = login(&public, "bob").await;
    let mut tampered = pending.clone();
    tampered.pkce_verifier = "x".repeat(43);
    let err = public
        .finish(&tampered, &state, &code, now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::GrantRejected { .. }), "{err}");
}

fn forge_token(issuer: &str, client_id: &str, nonce: &str, kid: &str) -> String {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string().as_bytes());
    let t = now();
    let msg = format!(
        "{}.{}",
        b64(&json!({"alg": "ES256", "kid": kid, "typ": "JWT"})),
        b64(
            &json!({"iss": issuer, "sub": "alice", "aud": client_id, "exp": t + 600, "iat": t, "nonce": nonce})
        )
    );
    let sig = key.sign(&SystemRandom::new(), msg.as_bytes()).unwrap();
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[tokio::test]
async fn key_rotation_refetches_once_and_unknown_keys_fail() {
    let Some(idp) = start_idp() else { return };
    let provider =
        Provider::new(config(&idp, "enclave-basic", TokenAuth::ClientSecretBasic)).unwrap();
    let t0 = now();

    let (pending, state, code) = login(&provider, "alice").await;
    provider.finish(&pending, &state, &code, t0).await.unwrap();
    let after_first = idp.jwks_requests().await;
    assert!(after_first >= 1);

    // A token signed by a key the IdP never published: one refetch, then refused.
    let forged = forge_token(&idp.issuer(), "enclave-basic", &pending.nonce, "rogue-key");
    let err = provider
        .verify_id_token(&forged, &pending.nonce, t0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownKey { ref kid } if kid == "rogue-key"),
        "{err}"
    );
    assert!(err.is_suspicious());
    assert_eq!(idp.jwks_requests().await, after_first + 1, "one refetch");
    // Within 30 s: no further refetch.
    let err = provider
        .verify_id_token(&forged, &pending.nonce, t0 + 1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownKey { .. }), "{err}");
    assert_eq!(idp.jwks_requests().await, after_first + 1, "rate-limited");

    // The IdP rotates to new keys. Within the rate limit the new kid is refused...
    let new_kids = idp.rotate().await;
    let (pending, state, code) = login(&provider, "bob").await;
    let err = provider
        .finish(&pending, &state, &code, t0 + 2)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownKey { ref kid } if new_kids.contains(kid)),
        "{err}"
    );
    assert_eq!(idp.jwks_requests().await, after_first + 1);
    // ...and after it, the JWKS is fetched again once and the login works.
    let (pending, state, code) = login(&provider, "bob").await;
    let id = provider
        .finish(&pending, &state, &code, t0 + 40)
        .await
        .unwrap();
    assert_eq!(id.subject, "bob");
    assert_eq!(idp.jwks_requests().await, after_first + 2);
    // The cached new keys serve the next login without any fetch.
    let (pending, state, code) = login(&provider, "alice").await;
    provider
        .finish(&pending, &state, &code, t0 + 41)
        .await
        .unwrap();
    assert_eq!(idp.jwks_requests().await, after_first + 2);
    // And a forged token is still refused (another refetch, still unknown).
    let forged = forge_token(&idp.issuer(), "enclave-basic", &pending.nonce, "rogue-2");
    let err = provider
        .verify_id_token(&forged, &pending.nonce, t0 + 80)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownKey { .. }), "{err}");
    assert_eq!(idp.jwks_requests().await, after_first + 3);
}

#[tokio::test]
async fn http_guard_refuses_non_public_insecure_oversized_and_redirects() {
    let Some(idp) = start_idp() else { return };
    let port = idp.port;

    // Not internal: loopback refused, by literal (at construction) and by name (at resolution,
    // before any connection), and http refused.
    let cfg = |issuer: String, internal: bool| {
        let mut c = ProviderConfig::new(
            issuer,
            "enclave-basic",
            Some(ClientSecret::new(SECRET)),
            REDIRECT,
        );
        c.internal = internal;
        c
    };
    let err = Provider::new(cfg(format!("https://127.0.0.1:{port}"), false)).unwrap_err();
    assert!(matches!(err, Error::AddressNotAllowed { .. }), "{err}");
    let err = Provider::new(cfg(format!("http://127.0.0.1:{port}"), false)).unwrap_err();
    assert!(matches!(err, Error::UrlNotAllowed { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Misconfigured);
    let err = Provider::new(cfg("https://169.254.169.254".into(), false)).unwrap_err();
    assert!(matches!(err, Error::AddressNotAllowed { .. }), "{err}");
    let by_name = Provider::new(cfg(format!("https://localhost:{port}"), false)).unwrap();
    let err = by_name.discover().await.unwrap_err();
    assert!(
        matches!(err, Error::AddressNotAllowed { ref host, .. } if host == "localhost"),
        "{err}"
    );

    // The discovered issuer must equal the configured one exactly.
    let slash = Provider::new(cfg(format!("http://127.0.0.1:{port}/"), true)).unwrap();
    let err = slash.discover().await.unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err}");

    // A host name goes through the guarded resolver; internal allows loopback (the IdP answers,
    // and names itself 127.0.0.1, not localhost).
    let named = Provider::new(cfg(format!("http://localhost:{port}"), true)).unwrap();
    let err = named.discover().await.unwrap_err();
    assert!(
        matches!(err, Error::IssuerMismatch { ref discovered, .. } if discovered.contains("127.0.0.1")),
        "{err}"
    );

    // Oversized responses are cut off; redirects are not followed.
    let big = Provider::new(cfg(format!("http://127.0.0.1:{port}/__big"), true)).unwrap();
    let err = big.discover().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err}"
    );
    let redirect = Provider::new(cfg(format!("http://127.0.0.1:{port}/__redirect"), true)).unwrap();
    let err = redirect.discover().await.unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 302, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);

    // Nothing listens: unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = Provider::new(cfg(format!("http://127.0.0.1:{closed_port}"), true)).unwrap();
    let err = down.begin().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
}
