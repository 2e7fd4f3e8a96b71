//! The WebAuthn Level 3 specification's own test vectors (§16): bytes produced by another
//! implementation, verified here byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use enclave_webauthn::{
    verify_authentication, verify_registration, Attestation, AuthenticationResponse, Credential,
    Error, RegistrationResponse, RelyingParty, StoredCredential,
};
use serde_json::json;

const DATA: &str = include_str!("data/w3c_vectors.txt");

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// section -> (phase field -> bytes)
fn vectors() -> HashMap<String, HashMap<String, Vec<u8>>> {
    let mut all: HashMap<String, HashMap<String, Vec<u8>>> = HashMap::new();
    for line in DATA
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 4, "{line}");
        all.entry(parts[0].to_string())
            .or_default()
            .insert(format!("{} {}", parts[1], parts[2]), hex(parts[3]));
    }
    all
}

fn rp() -> RelyingParty {
    RelyingParty {
        id: "example.org".into(),
        origin: "https://example.org".into(),
        name: "Example".into(),
    }
}

struct Vector<'a>(&'a HashMap<String, Vec<u8>>);

impl Vector<'_> {
    fn get(&self, key: &str) -> &[u8] {
        self.0.get(key).unwrap_or_else(|| panic!("missing {key}"))
    }

    fn register(&self) -> Result<Credential, Error> {
        let id = self.get("reg credential_id");
        let response: RegistrationResponse = serde_json::from_value(json!({
            "id": b64(id), "rawId": b64(id), "type": "public-key",
            "response": {
                "clientDataJSON": b64(self.get("reg clientDataJSON")),
                "attestationObject": b64(self.get("reg attestationObject")),
            },
        }))
        .unwrap();
        verify_registration(&rp(), self.get("reg challenge"), &response, false)
    }

    fn authenticate(&self, public_key: &[u8]) -> Result<u32, Error> {
        let id = self.get("reg credential_id");
        let response: AuthenticationResponse = serde_json::from_value(json!({
            "id": b64(id), "rawId": b64(id), "type": "public-key",
            "response": {
                "clientDataJSON": b64(self.get("auth clientDataJSON")),
                "authenticatorData": b64(self.get("auth authenticatorData")),
                "signature": b64(self.get("auth signature")),
            },
        }))
        .unwrap();
        let stored = StoredCredential {
            id,
            public_key,
            sign_count: 0,
        };
        verify_authentication(&rp(), self.get("auth challenge"), &response, &stored, false)
            .map(|a| a.sign_count)
    }
}

#[test]
fn accepted_vectors_register_and_authenticate() {
    let all = vectors();
    let accepted = [
        ("none-es256", Attestation::None, -7),
        ("none-es256-long-credential-id", Attestation::None, -7),
        ("packed-self-es256", Attestation::PackedSelf, -7),
        ("packed-es256", Attestation::PackedX5c, -7),
        ("packed-rs256", Attestation::PackedX5c, -257),
        ("packed-eddsa", Attestation::PackedX5c, -8),
    ];
    for (name, attestation, algorithm) in accepted {
        let v = Vector(&all[name]);
        let cred = v.register().unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(cred.attestation, attestation, "{name}");
        assert_eq!(cred.algorithm, algorithm, "{name}");
        assert_eq!(cred.id, v.get("reg credential_id"), "{name}");
        assert_eq!(
            v.authenticate(&cred.public_key),
            Ok(0),
            "{name} authentication"
        );

        // The same bytes with one bit flipped in the signature are refused.
        let mut sig = v.get("auth signature").to_vec();
        let n = sig.len() / 2;
        sig[n] ^= 0x01;
        let mut tampered = v.0.clone();
        tampered.insert("auth signature".into(), sig);
        assert!(
            Vector(&tampered).authenticate(&cred.public_key).is_err(),
            "{name} tampered"
        );
        // And a registration answering another challenge is refused.
        let mut other = v.0.clone();
        other.insert("reg challenge".into(), vec![0; 32]);
        assert_eq!(Vector(&other).register(), Err(Error::ChallengeMismatch));
    }
}

#[test]
fn refused_vectors() {
    let all = vectors();
    let refused = [
        ("none-es256-crossOrigin", Error::CrossOrigin),
        ("none-es256-topOrigin", Error::CrossOrigin),
        ("packed-es384", Error::UnsupportedAlgorithm),
        ("packed-es512", Error::UnsupportedAlgorithm),
        ("packed-ed448", Error::UnsupportedAlgorithm),
        ("tpm-es256", Error::UnsupportedAttestation),
        ("android-key-es256", Error::UnsupportedAttestation),
        ("apple-es256", Error::UnsupportedAttestation),
        ("fido-u2f-es256", Error::UnsupportedAttestation),
    ];
    for (name, expected) in refused {
        assert_eq!(Vector(&all[name]).register(), Err(expected), "{name}");
    }
    // The cross-origin sign-in is refused too, even with the right key.
    let none = Vector(&all["none-es256"]).register().unwrap();
    let cross = Vector(&all["none-es256-crossOrigin"]);
    assert!(cross.authenticate(&none.public_key).is_err());
    // A vector checked against another RP is refused.
    let v = Vector(&all["none-es256"]);
    let id = v.get("reg credential_id");
    let response: RegistrationResponse = serde_json::from_value(json!({
        "id": b64(id), "rawId": b64(id), "type": "public-key",
        "response": {
            "clientDataJSON": b64(v.get("reg clientDataJSON")),
            "attestationObject": b64(v.get("reg attestationObject")),
        },
    }))
    .unwrap();
    let other_rp = RelyingParty {
        origin: "https://example.org".into(),
        id: "example.com".into(),
        name: "x".into(),
    };
    assert_eq!(
        verify_registration(&other_rp, v.get("reg challenge"), &response, false),
        Err(Error::RpIdMismatch)
    );
}
