//! Unit tests of `validate_id_token` with keys generated here (aws-lc-rs) and tokens signed by
//! hand, independently of jsonwebtoken's signing code.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA512, RSA_PSS_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;

const ISS: &str = "https://idp.example.test/realms/enclave";
const CLIENT: &str = "enclave";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: i64 = 1_800_000_000;

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct TestKey {
    kid: String,
    key: Key,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    fn rsa(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            key: Key::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
        }
    }

    fn ec(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            key: Key::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()),
        }
    }

    fn ed(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            key: Key::Ed(Ed25519KeyPair::generate().unwrap()),
        }
    }

    fn jwk(&self) -> Value {
        match &self.key {
            Key::Ed(k) => {
                json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
            Key::Rsa(k) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Key::Ec(k) => {
                let p = k.public_key().as_ref();
                assert_eq!(p[0], 4);
                json!({"kty": "EC", "kid": self.kid, "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
        }
    }

    /// Signs `claims` with `alg` (RS256, RS512, PS256 for RSA; ES256 for EC).
    fn sign(&self, alg: &str, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": alg, "kid": self.kid, "typ": "JWT"}), claims)
    }

    fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let msg = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.key {
            Key::Rsa(k) => {
                let padding = match header["alg"].as_str().unwrap() {
                    "RS256" => &RSA_PKCS1_SHA256,
                    "RS512" => &RSA_PKCS1_SHA512,
                    "PS256" => &RSA_PSS_SHA256,
                    other => panic!("no RSA padding for {other}"),
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, msg.as_bytes(), &mut sig).unwrap();
                sig
            }
            Key::Ec(k) => k.sign(&rng, msg.as_bytes()).unwrap().as_ref().to_vec(),
            Key::Ed(k) => k.sign(msg.as_bytes()).as_ref().to_vec(),
        };
        format!("{msg}.{}", b64(&sig))
    }
}

fn jwks(keys: &[&TestKey]) -> Jwks {
    let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    Jwks::from_json(doc.to_string().as_bytes()).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "user-123", "aud": CLIENT, "exp": NOW + 300, "iat": NOW - 5,
        "nonce": NONCE, "email": "alice@example.test"
    })
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

fn expect() -> Expectations {
    Expectations {
        issuer: ISS.into(),
        client_id: CLIENT.into(),
        nonce: NONCE.into(),
        algorithms: vec![
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::PS256,
            Algorithm::EdDSA,
        ],
        leeway_s: DEFAULT_LEEWAY_S,
    }
}

struct Fixture {
    rsa: TestKey,
    ec: TestKey,
    set: Jwks,
}

/// One fixture for all tests (RSA key generation is the slow part).
fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rsa = TestKey::rsa("rsa-1");
        let ec = TestKey::ec("ec-1");
        let set = jwks(&[&rsa, &ec]);
        Fixture { rsa, ec, set }
    })
}

fn check(f: &Fixture, token: &str) -> Result<IdTokenClaims, Error> {
    validate_id_token(token, &f.set, &expect(), NOW)
}

#[test]
fn valid_tokens_are_accepted() {
    let f = fixture();
    for (key, alg) in [(&f.rsa, "RS256"), (&f.rsa, "PS256"), (&f.ec, "ES256")] {
        let out = check(f, &key.sign(alg, &claims())).unwrap();
        assert_eq!(out.subject, "user-123");
        assert_eq!(out.issuer, ISS);
        assert_eq!(out.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(out.all["email"], "alice@example.test");
    }
    // Several audiences with azp = client id, and expiry within the leeway.
    let c = with(claims(), "aud", json!([CLIENT, "other"]));
    let c = with(c, "azp", json!(CLIENT));
    let c = with(c, "exp", json!(NOW - 30));
    check(f, &f.rsa.sign("RS256", &c)).unwrap();
    // EdDSA (Ed25519).
    let ed = TestKey::ed("ed-1");
    let set = jwks(&[&f.rsa, &ed]);
    let out = validate_id_token(
        &ed.sign_with_header(&json!({"alg": "EdDSA", "kid": "ed-1"}), &claims()),
        &set,
        &expect(),
        NOW,
    )
    .unwrap();
    assert_eq!(out.subject, "user-123");
}

#[test]
fn alg_none_is_refused() {
    let f = fixture();
    let header = b64(json!({"alg": "none", "kid": "rsa-1"})
        .to_string()
        .as_bytes());
    let body = b64(claims().to_string().as_bytes());
    for token in [format!("{header}.{body}."), format!("{header}.{body}.AAAA")] {
        let err = check(f, &token).unwrap_err();
        assert!(matches!(err, Error::AlgorithmForbidden { .. }), "{err}");
        assert!(err.is_suspicious());
        assert!(err.to_string().contains("(none") || err.to_string().contains("uses none"));
    }
    let none_header = b64(json!({"alg": "NONE"}).to_string().as_bytes());
    let err = check(f, &format!("{none_header}.{body}.")).unwrap_err();
    assert!(matches!(err, Error::AlgorithmForbidden { .. }), "{err}");
}

#[test]
fn hs256_is_refused_even_with_the_secret_as_a_published_key() {
    let f = fixture();
    // The classic confusion: an HMAC token keyed with a secret an attacker knows, and a JWKS
    // that even contains that secret as an oct key.
    let secret = b"the-client-secret-everyone-knows";
    let header = b64(json!({"alg": "HS256", "kid": "oct"}).to_string().as_bytes());
    let body = b64(claims().to_string().as_bytes());
    let msg = format!("{header}.{body}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, msg.as_bytes());
    let token = format!("{msg}.{}", b64(tag.as_ref()));
    let doc = json!({"keys": [f.rsa.jwk(), {"kty": "oct", "kid": "oct", "k": b64(secret)}]});
    let set = Jwks::from_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 1, "oct keys are never kept");
    let mut e = expect();
    e.algorithms.push(Algorithm::HS256); // even if someone built Expectations with it
    let err = validate_id_token(&token, &set, &e, NOW).unwrap_err();
    assert!(matches!(err, Error::AlgorithmForbidden { .. }), "{err}");
    assert!(err.to_string().contains("HS256"));
    assert!(!err.to_string().contains("the-client-secret"));
    // The settings refuse it too.
    assert!(matches!(parse_algorithm("HS256"), Err(Error::Config(_))));
    assert!(matches!(parse_algorithm("none"), Err(Error::Config(_))));
    assert_eq!(parse_algorithm("ES256").unwrap(), Algorithm::ES256);
}

#[test]
fn algorithm_outside_the_allow_list_is_refused() {
    let f = fixture();
    let err = check(f, &f.rsa.sign("RS512", &claims())).unwrap_err();
    assert!(
        matches!(err, Error::AlgorithmNotAllowed { ref alg } if alg == "RS512"),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("allow it in the provider's settings"));
    let mut e = expect();
    e.algorithms.push(Algorithm::RS512);
    validate_id_token(&f.rsa.sign("RS512", &claims()), &f.set, &e, NOW).unwrap();
}

#[test]
fn wrong_signature_is_refused() {
    let f = fixture();
    // Signed by another key that claims the published key's id.
    let impostor = TestKey::rsa("rsa-1");
    let err = check(f, &impostor.sign("RS256", &claims())).unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err}");
    assert!(err.is_suspicious());
    // A valid token with its payload swapped.
    let good = f.ec.sign("ES256", &claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = b64(with(claims(), "sub", json!("admin")).to_string().as_bytes());
    parts[1] = &forged;
    let err = check(f, &parts.join(".")).unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err}");
}

#[test]
fn unknown_kid_is_refused() {
    let f = fixture();
    let stranger = TestKey::ec("ec-unknown");
    let token = stranger.sign("ES256", &claims());
    let err = check(f, &token).unwrap_err();
    assert!(
        matches!(err, Error::UnknownKey { ref kid } if kid == "ec-unknown"),
        "{err}"
    );
    assert!(needs_unknown_key(&token, &f.set, &expect().algorithms));
    assert!(!needs_unknown_key(
        &f.ec.sign("ES256", &claims()),
        &f.set,
        &expect().algorithms
    ));
    // A kid of an RSA key on an ES256 token: no compatible key (no algorithm confusion).
    let confused =
        f.ec.sign_with_header(&json!({"alg": "ES256", "kid": "rsa-1"}), &claims());
    assert!(matches!(
        check(f, &confused).unwrap_err(),
        Error::UnknownKey { .. }
    ));
    // No kid: fine only when exactly one key fits.
    let single = jwks(&[&f.ec]);
    let no_kid = f.ec.sign_with_header(&json!({"alg": "ES256"}), &claims());
    validate_id_token(&no_kid, &single, &expect(), NOW).unwrap();
    let two = jwks(&[&f.ec, &TestKey::ec("ec-2")]);
    let err = validate_id_token(&no_kid, &two, &expect(), NOW).unwrap_err();
    assert!(
        matches!(err, Error::UnknownKey { ref kid } if kid == "(none)"),
        "{err}"
    );
}

#[test]
fn wrong_issuer_is_refused() {
    let f = fixture();
    for iss in [
        json!("https://evil.example.test/realms/enclave"),
        json!(format!("{ISS}/")),
        json!(ISS.to_uppercase()),
    ] {
        let err = check(f, &f.rsa.sign("RS256", &with(claims(), "iss", iss))).unwrap_err();
        assert!(matches!(err, Error::WrongIssuer { .. }), "{err}");
    }
    let err = check(f, &f.rsa.sign("RS256", &without(claims(), "iss"))).unwrap_err();
    assert!(matches!(err, Error::MissingClaim("iss")), "{err}");
}

#[test]
fn wrong_audience_is_refused() {
    let f = fixture();
    let cases = [
        with(claims(), "aud", json!("another-client")),
        with(claims(), "aud", json!(["another-client", "third"])),
        // Several audiences need azp = client id.
        with(claims(), "aud", json!([CLIENT, "other"])),
        with(
            with(claims(), "aud", json!([CLIENT, "other"])),
            "azp",
            json!("other"),
        ),
        with(claims(), "azp", json!("other")),
    ];
    for c in cases {
        let err = check(f, &f.rsa.sign("RS256", &c)).unwrap_err();
        assert!(matches!(err, Error::WrongAudience), "{c}: {err}");
    }
    let err = check(f, &f.rsa.sign("RS256", &without(claims(), "aud"))).unwrap_err();
    assert!(matches!(err, Error::MissingClaim("aud")), "{err}");
}

#[test]
fn expired_token_is_refused() {
    let f = fixture();
    let err = check(
        f,
        &f.rsa.sign("RS256", &with(claims(), "exp", json!(NOW - 61))),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Expired), "{err}");
    let err = check(f, &f.rsa.sign("RS256", &without(claims(), "exp"))).unwrap_err();
    assert!(matches!(err, Error::MissingClaim("exp")), "{err}");
    let err = check(
        f,
        &f.rsa.sign("RS256", &with(claims(), "exp", json!("soon"))),
    )
    .unwrap_err();
    assert!(matches!(err, Error::MissingClaim("exp")), "{err}");
}

#[test]
fn not_yet_valid_token_is_refused() {
    let f = fixture();
    let err = check(
        f,
        &f.rsa
            .sign("RS256", &with(claims(), "nbf", json!(NOW + 120))),
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotYetValid), "{err}");
    check(
        f,
        &f.rsa.sign("RS256", &with(claims(), "nbf", json!(NOW + 30))),
    )
    .unwrap();
    let err = check(
        f,
        &f.rsa
            .sign("RS256", &with(claims(), "iat", json!(NOW + 3600))),
    )
    .unwrap_err();
    assert!(matches!(err, Error::IssuedInFuture), "{err}");
    let err = check(f, &f.rsa.sign("RS256", &without(claims(), "iat"))).unwrap_err();
    assert!(matches!(err, Error::MissingClaim("iat")), "{err}");
}

#[test]
fn nonce_mismatch_is_refused() {
    let f = fixture();
    for nonce in [
        json!("another-nonce"),
        json!(format!("{NONCE}x")),
        json!(""),
        json!(42),
    ] {
        let err = check(f, &f.ec.sign("ES256", &with(claims(), "nonce", nonce))).unwrap_err();
        assert!(matches!(err, Error::NonceMismatch), "{err}");
    }
    // An empty expected nonce never matches.
    let mut e = expect();
    e.nonce = String::new();
    let token = f.ec.sign("ES256", &with(claims(), "nonce", json!("")));
    assert!(matches!(
        validate_id_token(&token, &f.set, &e, NOW),
        Err(Error::NonceMismatch)
    ));
}

#[test]
fn missing_nonce_is_refused() {
    let f = fixture();
    let err = check(f, &f.ec.sign("ES256", &without(claims(), "nonce"))).unwrap_err();
    assert!(matches!(err, Error::NonceMismatch), "{err}");
}

#[test]
fn malformed_tokens_are_refused() {
    let f = fixture();
    let good = f.rsa.sign("RS256", &claims());
    let huge = "a".repeat(MAX_ID_TOKEN_BYTES + 1);
    let crit = f.rsa.sign_with_header(
        &json!({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1}),
        &claims(),
    );
    for token in [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.",
        &format!("{good}.extra"),
        &huge,
        &crit,
    ] {
        let err = check(f, token).unwrap_err();
        assert!(matches!(err, Error::MalformedToken(_)), "{err}");
    }
    let err = check(f, &f.rsa.sign("RS256", &without(claims(), "sub"))).unwrap_err();
    assert!(matches!(err, Error::MissingClaim("sub")), "{err}");
}

#[test]
fn jwks_keeps_only_usable_signing_keys() {
    let f = fixture();
    let doc = json!({"keys": [
        f.rsa.jwk(),
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        {"kty": "weird", "kid": "w"},
        "not an object",
        f.ec.jwk(),
    ]});
    let set = Jwks::from_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.key_ids(), vec!["rsa-1".to_owned(), "ec-1".to_owned()]);
    assert!(set.contains_kid("ec-1") && !set.contains_kid("enc"));
    assert!(Jwks::from_json(b"{}").is_err());
    assert!(Jwks::from_json(b"[1]").is_err());
}

#[test]
fn error_messages_do_not_echo_control_characters() {
    let f = fixture();
    let evil_kid = "x\n\u{1b}[31mFAKE LOG LINE";
    let stranger = TestKey::ec(evil_kid);
    let err = check(f, &stranger.sign("ES256", &claims())).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg}");
}
