//! A software authenticator and a test-only CBOR encoder that build real WebAuthn responses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use enclave_webauthn::{AuthenticationResponse, RegistrationResponse, RelyingParty};
use serde_json::json;

pub const UP: u8 = 0x01;
pub const UV: u8 = 0x04;
pub const BE: u8 = 0x08;
pub const BS: u8 = 0x10;
pub const AT: u8 = 0x40;
pub const ED: u8 = 0x80;

pub const ORIGIN: &str = "https://localhost:8443";
pub const CHALLENGE: [u8; 32] = [7; 32];
pub const AAGUID: [u8; 16] = [
    0xad, 0xce, 0x00, 0x02, 0x35, 0xbc, 0xc6, 0x0a, 0x64, 0x8b, 0x0b, 0x25, 0xf1, 0xf0, 0x55, 0x03,
];

pub fn rp() -> RelyingParty {
    RelyingParty {
        id: "localhost".into(),
        origin: ORIGIN.into(),
        name: "Enclave".into(),
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A CBOR value for the test encoder.
#[derive(Clone, Debug)]
pub enum C {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<C>),
    Map(Vec<(C, C)>),
    Bool(bool),
    Null,
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend([m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend((n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend((n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend(n.to_be_bytes());
    }
}

impl C {
    pub fn text(s: &str) -> C {
        C::Text(s.into())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            C::Int(n) if *n >= 0 => head(out, 0, *n as u64),
            C::Int(n) => head(out, 1, (-1 - *n) as u64),
            C::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend(b);
            }
            C::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            C::Array(items) => {
                head(out, 4, items.len() as u64);
                for i in items {
                    i.write(out);
                }
            }
            C::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.write(out);
                    v.write(out);
                }
            }
            C::Bool(false) => out.push(0xf4),
            C::Bool(true) => out.push(0xf5),
            C::Null => out.push(0xf6),
        }
    }
}

/// The authenticator's key.
pub enum Key {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(aws_lc_rs::rsa::KeyPair),
    /// ES384: an algorithm Enclave refuses.
    Es384(EcdsaKeyPair),
}

impl Key {
    pub fn es256() -> Key {
        Key::Es256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap())
    }
    pub fn eddsa() -> Key {
        Key::EdDsa(Ed25519KeyPair::generate().unwrap())
    }
    pub fn rs256() -> Key {
        Key::Rs256(aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap())
    }
    pub fn es384() -> Key {
        Key::Es384(EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap())
    }

    pub fn alg(&self) -> i64 {
        match self {
            Key::Es256(_) => -7,
            Key::EdDsa(_) => -8,
            Key::Rs256(_) => -257,
            Key::Es384(_) => -35,
        }
    }

    /// The COSE_Key map.
    pub fn cose(&self) -> C {
        match self {
            Key::Es256(k) | Key::Es384(k) => {
                let point = k.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                let crv = if half == 32 { 1 } else { 2 };
                C::Map(vec![
                    (C::Int(1), C::Int(2)),
                    (C::Int(3), C::Int(self.alg())),
                    (C::Int(-1), C::Int(crv)),
                    (C::Int(-2), C::Bytes(point[1..=half].to_vec())),
                    (C::Int(-3), C::Bytes(point[half + 1..].to_vec())),
                ])
            }
            Key::EdDsa(k) => C::Map(vec![
                (C::Int(1), C::Int(1)),
                (C::Int(3), C::Int(-8)),
                (C::Int(-1), C::Int(6)),
                (C::Int(-2), C::Bytes(k.public_key().as_ref().to_vec())),
            ]),
            Key::Rs256(k) => {
                let public = k.public_key();
                C::Map(vec![
                    (C::Int(1), C::Int(3)),
                    (C::Int(3), C::Int(-257)),
                    (
                        C::Int(-1),
                        C::Bytes(public.modulus().big_endian_without_leading_zero().to_vec()),
                    ),
                    (
                        C::Int(-2),
                        C::Bytes(public.exponent().big_endian_without_leading_zero().to_vec()),
                    ),
                ])
            }
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Key::Es256(k) | Key::Es384(k) => k.sign(&rng, message).unwrap().as_ref().to_vec(),
            Key::EdDsa(k) => k.sign(message).as_ref().to_vec(),
            Key::Rs256(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig).unwrap();
                sig
            }
        }
    }

    /// PKCS#8 of the key (for building a certificate with rcgen).
    pub fn pkcs8(&self) -> Vec<u8> {
        match self {
            Key::Rs256(k) => AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(k)
                .unwrap()
                .as_ref()
                .to_vec(),
            _ => panic!("use generate_pkcs8 for EC keys"),
        }
    }
}

/// `{"type", "challenge", "origin", "crossOrigin"}` as a browser writes it.
pub fn client_data(kind: &str, challenge: &[u8], origin: &str, cross: Option<bool>) -> Vec<u8> {
    let mut v = json!({ "type": kind, "challenge": b64(challenge), "origin": origin });
    if let Some(c) = cross {
        v["crossOrigin"] = json!(c);
    }
    serde_json::to_vec(&v).unwrap()
}

/// Authenticator data; `attested` is (credential id, COSE key bytes).
pub fn auth_data(
    rp_id: &str,
    flags: u8,
    count: u32,
    attested: Option<(&[u8], &[u8])>,
    extensions: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
    out.push(flags);
    out.extend(count.to_be_bytes());
    if let Some((id, key)) = attested {
        out.extend(AAGUID);
        out.extend((id.len() as u16).to_be_bytes());
        out.extend(id);
        out.extend(key);
    }
    if let Some(ext) = extensions {
        out.extend(ext);
    }
    out
}

pub fn signed(auth_data: &[u8], client_data: &[u8]) -> Vec<u8> {
    let mut m = auth_data.to_vec();
    m.extend(digest(&SHA256, client_data).as_ref());
    m
}

pub fn attestation_object(fmt: &str, stmt: C, auth_data: &[u8]) -> Vec<u8> {
    C::Map(vec![
        (C::text("fmt"), C::text(fmt)),
        (C::text("attStmt"), stmt),
        (C::text("authData"), C::Bytes(auth_data.to_vec())),
    ])
    .encode()
}

pub fn registration_json(
    raw_id: &[u8],
    client_data: &[u8],
    attestation_object: &[u8],
) -> RegistrationResponse {
    serde_json::from_value(json!({
        "id": b64(raw_id),
        "rawId": b64(raw_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64(client_data),
            "attestationObject": b64(attestation_object),
            "transports": ["internal", "hybrid", "carrier-pigeon", "internal"],
        },
        "authenticatorAttachment": "platform",
        "clientExtensionResults": { "credProps": { "rk": true } },
    }))
    .unwrap()
}

pub fn authentication_json(
    raw_id: &[u8],
    client_data: &[u8],
    auth_data: &[u8],
    signature: &[u8],
    user_handle: Option<&[u8]>,
) -> AuthenticationResponse {
    serde_json::from_value(json!({
        "id": b64(raw_id),
        "rawId": b64(raw_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64(client_data),
            "authenticatorData": b64(auth_data),
            "signature": b64(signature),
            "userHandle": user_handle.map(b64),
        },
        "clientExtensionResults": {},
    }))
    .unwrap()
}

/// A software authenticator holding one credential.
pub struct Authenticator {
    pub key: Key,
    pub id: Vec<u8>,
    pub counter: u32,
}

impl Authenticator {
    pub fn new(key: Key) -> Authenticator {
        let mut id = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut id).unwrap();
        Authenticator {
            key,
            id,
            counter: 0,
        }
    }

    pub fn cose_bytes(&self) -> Vec<u8> {
        self.key.cose().encode()
    }

    /// A registration with attestation `none`.
    pub fn register(&self, flags: u8) -> RegistrationResponse {
        let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN, Some(false));
        let ad = auth_data(
            "localhost",
            flags | AT,
            self.counter,
            Some((&self.id, &self.cose_bytes())),
            None,
        );
        let ao = attestation_object("none", C::Map(vec![]), &ad);
        registration_json(&self.id, &cd, &ao)
    }

    /// A registration with packed self attestation.
    pub fn register_packed_self(&self, flags: u8) -> RegistrationResponse {
        let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN, None);
        let ad = auth_data(
            "localhost",
            flags | AT,
            self.counter,
            Some((&self.id, &self.cose_bytes())),
            None,
        );
        let sig = self.key.sign(&signed(&ad, &cd));
        let stmt = C::Map(vec![
            (C::text("alg"), C::Int(self.key.alg())),
            (C::text("sig"), C::Bytes(sig)),
        ]);
        registration_json(&self.id, &cd, &attestation_object("packed", stmt, &ad))
    }

    /// An assertion over the given client data, with the counter advanced first.
    pub fn assert_with(&mut self, cd: &[u8], rp_id: &str, flags: u8) -> AuthenticationResponse {
        self.counter += 1;
        let ad = auth_data(rp_id, flags, self.counter, None, None);
        let sig = self.key.sign(&signed(&ad, cd));
        authentication_json(&self.id, cd, &ad, &sig, Some(b"user-handle-1"))
    }

    /// A normal assertion for the test RP and challenge.
    pub fn assert(&mut self, flags: u8) -> AuthenticationResponse {
        let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN, Some(false));
        self.assert_with(&cd, "localhost", flags)
    }
}
