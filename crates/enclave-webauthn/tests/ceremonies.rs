//! Registration and authentication ceremonies against a software authenticator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use common::*;
use enclave_webauthn::{
    verify_authentication, verify_registration, Attestation, Credential, Error,
    RegistrationResponse, StoredCredential, MAX_ATTESTATION_OBJECT, MAX_CLIENT_DATA,
};

fn register_ok(auth: &Authenticator, response: &RegistrationResponse) -> Credential {
    let cred = verify_registration(&rp(), &CHALLENGE, response, false).unwrap();
    assert_eq!(cred.id, auth.id);
    assert_eq!(cred.public_key, auth.cose_bytes());
    assert_eq!(cred.algorithm, auth.key.alg());
    assert_eq!(cred.aaguid, AAGUID);
    cred
}

fn stored(cred: &Credential, sign_count: u32) -> StoredCredential<'_> {
    StoredCredential {
        id: &cred.id,
        public_key: &cred.public_key,
        sign_count,
    }
}

/// Registration with `none`, then two sign-ins.
fn round_trip(key: Key) {
    let mut auth = Authenticator::new(key);
    let cred = register_ok(&auth, &auth.register(UP | UV | BE | BS));
    assert_eq!(cred.attestation, Attestation::None);
    assert!(cred.user_verified && cred.backup_eligible && cred.backed_up);
    assert_eq!(cred.transports, ["internal", "hybrid"]);
    assert_eq!(cred.sign_count, 0);

    let response = auth.assert(UP | UV);
    assert_eq!(response.credential_id().unwrap(), auth.id);
    assert_eq!(
        response.user_handle().unwrap().as_deref(),
        Some(&b"user-handle-1"[..])
    );
    let a = verify_authentication(&rp(), &CHALLENGE, &response, &stored(&cred, 0), true).unwrap();
    assert_eq!(a.sign_count, 1);
    assert!(a.user_verified);
    assert!(!a.backed_up);
    let response = auth.assert(UP | BE | BS);
    let a = verify_authentication(&rp(), &CHALLENGE, &response, &stored(&cred, 1), false).unwrap();
    assert_eq!(a.sign_count, 2);
    assert!(!a.user_verified);
    assert!(a.backed_up);
}

#[test]
fn es256_round_trip() {
    round_trip(Key::es256());
}

#[test]
fn eddsa_round_trip() {
    round_trip(Key::eddsa());
}

#[test]
fn rs256_round_trip() {
    round_trip(Key::rs256());
}

#[test]
fn packed_self_attestation_for_each_algorithm() {
    for key in [Key::es256(), Key::eddsa(), Key::rs256()] {
        let mut auth = Authenticator::new(key);
        let cred = register_ok(&auth, &auth.register_packed_self(UP));
        assert_eq!(cred.attestation, Attestation::PackedSelf);
        assert!(!cred.user_verified && !cred.backup_eligible);
        let response = auth.assert(UP);
        verify_authentication(&rp(), &CHALLENGE, &response, &stored(&cred, 0), false).unwrap();
    }
}

#[test]
fn packed_self_attestation_refusals() {
    let auth = Authenticator::new(Key::es256());
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN, None);
    let ad = auth_data(
        "localhost",
        UP | AT,
        0,
        Some((&auth.id, &auth.cose_bytes())),
        None,
    );
    let good_sig = auth.key.sign(&signed(&ad, &cd));
    let build =
        |stmt: C| registration_json(&auth.id, &cd, &attestation_object("packed", stmt, &ad));
    let stmt = |alg: i64, sig: Vec<u8>| {
        C::Map(vec![
            (C::text("alg"), C::Int(alg)),
            (C::text("sig"), C::Bytes(sig)),
        ])
    };

    assert!(
        verify_registration(&rp(), &CHALLENGE, &build(stmt(-7, good_sig.clone())), false).is_ok()
    );
    // Tampered signature.
    let mut bad = good_sig.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &build(stmt(-7, bad)), false),
        Err(Error::BadSignature)
    );
    // A signature by another key.
    let other = Key::es256().sign(&signed(&ad, &cd));
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &build(stmt(-7, other)), false),
        Err(Error::BadSignature)
    );
    // alg differs from the credential's.
    assert!(matches!(
        verify_registration(
            &rp(),
            &CHALLENGE,
            &build(stmt(-257, good_sig.clone())),
            false
        ),
        Err(Error::Malformed(_))
    ));
    // No sig.
    assert!(matches!(
        verify_registration(
            &rp(),
            &CHALLENGE,
            &build(C::Map(vec![(C::text("alg"), C::Int(-7))])),
            false
        ),
        Err(Error::Malformed(_))
    ));
    // ECDAA is not supported.
    let ecdaa = C::Map(vec![
        (C::text("alg"), C::Int(-7)),
        (C::text("sig"), C::Bytes(good_sig)),
        (C::text("ecdaaKeyId"), C::Bytes(vec![1; 32])),
    ]);
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &build(ecdaa), false),
        Err(Error::UnsupportedAttestation)
    );
}

/// A DER OCTET STRING holding the AAGUID, the FIDO extension's value.
fn aaguid_extension(aaguid: [u8; 16]) -> rcgen::CustomExtension {
    let mut content = vec![0x04, 0x10];
    content.extend(aaguid);
    rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4], content)
}

fn certificate(pkcs8: &[u8], aaguid: Option<[u8; 16]>) -> Vec<u8> {
    let key = rcgen::KeyPair::try_from(pkcs8).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(
        rcgen::DnType::OrganizationalUnitName,
        "Authenticator Attestation",
    );
    if let Some(a) = aaguid {
        params.custom_extensions.push(aaguid_extension(a));
    }
    params.self_signed(&key).unwrap().der().to_vec()
}

/// Packed attestation with an x5c certificate whose key is not the credential's.
fn x5c_registration(
    auth: &Authenticator,
    alg: i64,
    cert: Vec<u8>,
    sign: &dyn Fn(&[u8]) -> Vec<u8>,
) -> RegistrationResponse {
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN, None);
    let ad = auth_data(
        "localhost",
        UP | AT,
        3,
        Some((&auth.id, &auth.cose_bytes())),
        None,
    );
    let stmt = C::Map(vec![
        (C::text("alg"), C::Int(alg)),
        (C::text("sig"), C::Bytes(sign(&signed(&ad, &cd)))),
        (C::text("x5c"), C::Array(vec![C::Bytes(cert)])),
    ]);
    registration_json(&auth.id, &cd, &attestation_object("packed", stmt, &ad))
}

#[test]
fn packed_x5c_attestation() {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let att_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let sign = |m: &[u8]| att_key.sign(&rng, m).unwrap().as_ref().to_vec();
    let auth = Authenticator::new(Key::eddsa());

    for aaguid in [Some(AAGUID), None] {
        let cert = certificate(pkcs8.as_ref(), aaguid);
        let cred = register_ok(&auth, &x5c_registration(&auth, -7, cert, &sign));
        assert_eq!(cred.attestation, Attestation::PackedX5c);
        assert_eq!(cred.sign_count, 3);
    }

    // The certificate names another authenticator model.
    let cert = certificate(pkcs8.as_ref(), Some([9; 16]));
    assert!(matches!(
        verify_registration(
            &rp(),
            &CHALLENGE,
            &x5c_registration(&auth, -7, cert, &sign),
            false
        ),
        Err(Error::Malformed(_))
    ));
    // Signed by the credential key instead of the certificate's.
    let cert = certificate(pkcs8.as_ref(), Some(AAGUID));
    let wrong = |m: &[u8]| auth.key.sign(m);
    assert_eq!(
        verify_registration(
            &rp(),
            &CHALLENGE,
            &x5c_registration(&auth, -7, cert.clone(), &wrong),
            false
        ),
        Err(Error::BadSignature)
    );
    // RS256 claimed with a P-256 certificate.
    assert!(matches!(
        verify_registration(
            &rp(),
            &CHALLENGE,
            &x5c_registration(&auth, -257, cert.clone(), &sign),
            false
        ),
        Err(Error::Malformed(_))
    ));
    // EdDSA is not an x5c algorithm here.
    assert_eq!(
        verify_registration(
            &rp(),
            &CHALLENGE,
            &x5c_registration(&auth, -8, cert, &sign),
            false
        ),
        Err(Error::UnsupportedAlgorithm)
    );
    // Garbage instead of a certificate.
    assert!(matches!(
        verify_registration(
            &rp(),
            &CHALLENGE,
            &x5c_registration(&auth, -7, vec![0x30, 0x03, 1, 2, 3], &sign),
            false
        ),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn packed_x5c_attestation_rs256() {
    let att = Key::rs256();
    let cert = certificate(&att.pkcs8(), Some(AAGUID));
    let auth = Authenticator::new(Key::es256());
    let sign = |m: &[u8]| att.sign(m);
    let cred = register_ok(&auth, &x5c_registration(&auth, -257, cert.clone(), &sign));
    assert_eq!(cred.attestation, Attestation::PackedX5c);
    assert!(matches!(
        verify_registration(
            &rp(),
            &CHALLENGE,
            &x5c_registration(&auth, -7, cert, &sign),
            false
        ),
        Err(Error::Malformed(_))
    ));
}

/// Builds a `none` registration from parts, for the refusal tests.
struct Parts {
    kind: &'static str,
    challenge: Vec<u8>,
    origin: &'static str,
    cross: Option<bool>,
    rp_id: &'static str,
    flags: u8,
    fmt: &'static str,
    cose: Option<Vec<u8>>,
    auth_id: Option<Vec<u8>>,
}

impl Parts {
    fn new() -> Parts {
        Parts {
            kind: "webauthn.create",
            challenge: CHALLENGE.to_vec(),
            origin: ORIGIN,
            cross: None,
            rp_id: "localhost",
            flags: UP | AT,
            fmt: "none",
            cose: None,
            auth_id: None,
        }
    }

    fn verify(self, auth: &Authenticator, require_uv: bool) -> Result<Credential, Error> {
        let cd = client_data(self.kind, &self.challenge, self.origin, self.cross);
        let cose = self.cose.unwrap_or_else(|| auth.cose_bytes());
        let id = self.auth_id.unwrap_or_else(|| auth.id.clone());
        let ad = auth_data(self.rp_id, self.flags, 0, Some((&id, &cose)), None);
        let ao = attestation_object(self.fmt, C::Map(vec![]), &ad);
        verify_registration(
            &rp(),
            &CHALLENGE,
            &registration_json(&auth.id, &cd, &ao),
            require_uv,
        )
    }
}

#[test]
fn registration_refusals() {
    let auth = Authenticator::new(Key::es256());
    assert!(Parts::new().verify(&auth, false).is_ok());
    let cases: Vec<(Parts, Error)> = vec![
        (
            Parts {
                origin: "https://evil.localhost:8443",
                ..Parts::new()
            },
            Error::OriginMismatch,
        ),
        (
            Parts {
                origin: "https://localhost:8444",
                ..Parts::new()
            },
            Error::OriginMismatch,
        ),
        (
            Parts {
                origin: "http://localhost:8443",
                ..Parts::new()
            },
            Error::OriginMismatch,
        ),
        (
            Parts {
                rp_id: "example.org",
                ..Parts::new()
            },
            Error::RpIdMismatch,
        ),
        (
            Parts {
                challenge: vec![8; 32],
                ..Parts::new()
            },
            Error::ChallengeMismatch,
        ),
        (
            Parts {
                challenge: CHALLENGE[..31].to_vec(),
                ..Parts::new()
            },
            Error::ChallengeMismatch,
        ),
        (
            Parts {
                challenge: vec![],
                ..Parts::new()
            },
            Error::ChallengeMismatch,
        ),
        (
            Parts {
                kind: "webauthn.get",
                ..Parts::new()
            },
            Error::WrongType,
        ),
        (
            Parts {
                cross: Some(true),
                ..Parts::new()
            },
            Error::CrossOrigin,
        ),
        (
            Parts {
                flags: AT | UV,
                ..Parts::new()
            },
            Error::UserNotPresent,
        ),
        (
            Parts {
                fmt: "tpm",
                ..Parts::new()
            },
            Error::UnsupportedAttestation,
        ),
        (
            Parts {
                fmt: "fido-u2f",
                ..Parts::new()
            },
            Error::UnsupportedAttestation,
        ),
        (
            Parts {
                auth_id: Some(vec![1; 32]),
                ..Parts::new()
            },
            Error::CredentialMismatch,
        ),
    ];
    for (parts, expected) in cases {
        assert_eq!(parts.verify(&auth, false), Err(expected));
    }
    // UV: refused only when required.
    assert_eq!(
        Parts {
            flags: UP | AT,
            ..Parts::new()
        }
        .verify(&auth, true),
        Err(Error::UserNotVerified)
    );
    assert!(Parts {
        flags: UP | UV | AT,
        ..Parts::new()
    }
    .verify(&auth, true)
    .is_ok());
    // Backed up without being backup eligible; no attested credential.
    for flags in [UP | AT | BS, UP] {
        assert!(matches!(
            Parts {
                flags,
                ..Parts::new()
            }
            .verify(&auth, false),
            Err(Error::Malformed(_))
        ));
    }
    // The server's own challenge must be long enough.
    let cd = client_data("webauthn.create", &[1; 8], ORIGIN, None);
    let ad = auth_data(
        "localhost",
        UP | AT,
        0,
        Some((&auth.id, &auth.cose_bytes())),
        None,
    );
    let r = registration_json(
        &auth.id,
        &cd,
        &attestation_object("none", C::Map(vec![]), &ad),
    );
    assert_eq!(
        verify_registration(&rp(), &[1; 8], &r, false),
        Err(Error::WeakChallenge)
    );
}

#[test]
fn unsupported_and_invalid_keys() {
    // ES384 (-35) with a real P-384 key.
    let p384 = Authenticator::new(Key::es384());
    assert_eq!(p384.register(UP).credential_id().unwrap(), p384.id);
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &p384.register(UP), false),
        Err(Error::UnsupportedAlgorithm)
    );

    let auth = Authenticator::new(Key::es256());
    let mut point = C::Map(vec![
        (C::Int(1), C::Int(2)),
        (C::Int(3), C::Int(-7)),
        (C::Int(-1), C::Int(1)),
        (C::Int(-2), C::Bytes(vec![1; 32])),
        (C::Int(-3), C::Bytes(vec![2; 32])),
    ]);
    let bad_keys = vec![
        // Not on the curve.
        point.clone(),
        // Wrong curve for ES256.
        {
            if let C::Map(ref mut e) = point {
                e[2].1 = C::Int(2);
            }
            point.clone()
        },
        // Ed25519 key labelled as EC2.
        C::Map(vec![
            (C::Int(1), C::Int(2)),
            (C::Int(3), C::Int(-8)),
            (C::Int(-1), C::Int(6)),
            (C::Int(-2), C::Bytes(vec![3; 32])),
        ]),
        // Short Ed25519 key.
        C::Map(vec![
            (C::Int(1), C::Int(1)),
            (C::Int(3), C::Int(-8)),
            (C::Int(-1), C::Int(6)),
            (C::Int(-2), C::Bytes(vec![3; 31])),
        ]),
        // 1024-bit RSA.
        C::Map(vec![
            (C::Int(1), C::Int(3)),
            (C::Int(3), C::Int(-257)),
            (C::Int(-1), C::Bytes(vec![0xc5; 128])),
            (C::Int(-2), C::Bytes(vec![1, 0, 1])),
        ]),
        // RSA with an even exponent.
        C::Map(vec![
            (C::Int(1), C::Int(3)),
            (C::Int(3), C::Int(-257)),
            (C::Int(-1), C::Bytes(vec![0xc5; 256])),
            (C::Int(-2), C::Bytes(vec![1, 0, 0])),
        ]),
        // Not a map.
        C::Array(vec![C::Int(1)]),
    ];
    for key in bad_keys {
        let r = Parts {
            cose: Some(key.encode()),
            ..Parts::new()
        }
        .verify(&auth, false);
        assert!(
            matches!(r, Err(Error::Malformed(_))),
            "accepted {key:?}: {r:?}"
        );
    }
    // A valid key carrying its private part is refused too.
    let mut with_d = Key::es256().cose();
    if let C::Map(ref mut e) = with_d {
        e.push((C::Int(-4), C::Bytes(vec![5; 32])));
    }
    assert!(matches!(
        Parts {
            cose: Some(with_d.encode()),
            ..Parts::new()
        }
        .verify(&auth, false),
        Err(Error::Malformed(_))
    ));
}

/// Wraps raw attestation-object bytes in a response.
fn raw_registration(auth: &Authenticator, ao: &[u8]) -> Result<Credential, Error> {
    let cd = client_data("webauthn.create", &CHALLENGE, ORIGIN, None);
    verify_registration(
        &rp(),
        &CHALLENGE,
        &registration_json(&auth.id, &cd, ao),
        false,
    )
}

#[test]
fn garbage_attestation_objects() {
    let auth = Authenticator::new(Key::es256());
    let ad = auth_data(
        "localhost",
        UP | AT,
        0,
        Some((&auth.id, &auth.cose_bytes())),
        None,
    );
    let good = attestation_object("none", C::Map(vec![]), &ad);
    assert!(raw_registration(&auth, &good).is_ok());

    let mut trailing = good.clone();
    trailing.push(0x00);
    let mut bomb = vec![0xa1, 0x63, b'f', b'm', b't'];
    bomb.extend(vec![0x81; 5000]);
    bomb.push(0x00);
    let huge_len = vec![
        0xa1, 0x63, b'f', b'm', b't', 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    let huge_map = vec![0xbb, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00];
    let tagged = C::Map(vec![])
        .encode()
        .into_iter()
        .fold(vec![0xd8, 0x18], |mut v, b| {
            v.push(b);
            v
        });
    let not_a_map = C::Array(vec![C::text("none")]).encode();
    let no_fmt = C::Map(vec![
        (C::text("attStmt"), C::Map(vec![])),
        (C::text("authData"), C::Bytes(ad.clone())),
    ])
    .encode();
    let none_with_statement = attestation_object(
        "none",
        C::Map(vec![(C::text("sig"), C::Bytes(vec![1]))]),
        &ad,
    );
    let stmt_not_map = attestation_object("none", C::Array(vec![]), &ad);
    let duplicate_key = {
        let mut v = vec![0xa4];
        v.extend(&good[1..]);
        v.extend(C::text("fmt").encode());
        v.extend(C::text("none").encode());
        v
    };
    let mut cases = vec![
        ("empty", vec![]),
        ("trailing", trailing),
        ("bomb", bomb),
        ("huge length", huge_len),
        ("huge map", huge_map),
        ("tag", tagged),
        ("array", not_a_map),
        ("no fmt", no_fmt),
        ("none with statement", none_with_statement),
        ("statement not a map", stmt_not_map),
        ("duplicate key", duplicate_key),
        ("random", (0..200u8).map(|i| i.wrapping_mul(37)).collect()),
    ];
    for cut in [1, 10, good.len() / 2, good.len() - 1] {
        cases.push(("truncated", good[..cut].to_vec()));
    }
    for (name, bytes) in cases {
        let r = raw_registration(&auth, &bytes);
        assert!(matches!(r, Err(Error::Malformed(_))), "{name}: {r:?}");
    }

    // Authenticator data inside a well-formed object: truncated or with trailing bytes.
    let mut ad_trailing = ad.clone();
    ad_trailing.push(0);
    for bad_ad in [ad[..36].to_vec(), ad[..ad.len() - 1].to_vec(), ad_trailing] {
        let r = raw_registration(&auth, &attestation_object("none", C::Map(vec![]), &bad_ad));
        assert!(matches!(r, Err(Error::Malformed(_))), "{r:?}");
    }
    // Extensions are accepted (and ignored) when flagged, refused when not a map.
    let ext = C::Map(vec![(C::text("credProtect"), C::Int(2))]).encode();
    let with_ext = auth_data(
        "localhost",
        UP | AT | ED,
        0,
        Some((&auth.id, &auth.cose_bytes())),
        Some(&ext),
    );
    assert!(raw_registration(
        &auth,
        &attestation_object("none", C::Map(vec![]), &with_ext)
    )
    .is_ok());
    let bad_ext = auth_data(
        "localhost",
        UP | AT | ED,
        0,
        Some((&auth.id, &auth.cose_bytes())),
        Some(&[0x01]),
    );
    assert!(matches!(
        raw_registration(&auth, &attestation_object("none", C::Map(vec![]), &bad_ext)),
        Err(Error::Malformed(_))
    ));
    let unflagged_ext = auth_data(
        "localhost",
        UP | AT,
        0,
        Some((&auth.id, &auth.cose_bytes())),
        Some(&ext),
    );
    assert!(matches!(
        raw_registration(
            &auth,
            &attestation_object("none", C::Map(vec![]), &unflagged_ext)
        ),
        Err(Error::Malformed(_))
    ));
    // Credential ID too long.
    let long_id = vec![1u8; 1024];
    let ad = auth_data(
        "localhost",
        UP | AT,
        0,
        Some((&long_id, &auth.cose_bytes())),
        None,
    );
    assert!(matches!(
        raw_registration(&auth, &attestation_object("none", C::Map(vec![]), &ad)),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn oversize_and_badly_encoded_fields() {
    let auth = Authenticator::new(Key::es256());
    let good = auth.register(UP);

    let mut r = good.clone();
    r.response.client_data_json = b64(&vec![b' '; MAX_CLIENT_DATA + 1]);
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &r, false),
        Err(Error::TooLarge)
    );
    let mut r = good.clone();
    r.response.attestation_object = b64(&vec![0; MAX_ATTESTATION_OBJECT + 1]);
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &r, false),
        Err(Error::TooLarge)
    );
    let mut r = good.clone();
    r.raw_id = b64(&[1; 1024]);
    r.id = r.raw_id.clone();
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &r, false),
        Err(Error::TooLarge)
    );
    let mut r = good.clone();
    r.response.client_data_json = "not*base64".into();
    assert!(matches!(
        verify_registration(&rp(), &CHALLENGE, &r, false),
        Err(Error::Malformed(_))
    ));
    let mut r = good.clone();
    r.response.client_data_json = b64(b"{\"type\":\"webauthn.create\"");
    assert!(matches!(
        verify_registration(&rp(), &CHALLENGE, &r, false),
        Err(Error::Malformed(_))
    ));
    let mut r = good.clone();
    r.id = b64(&[9; 32]);
    assert!(matches!(
        verify_registration(&rp(), &CHALLENGE, &r, false),
        Err(Error::Malformed(_))
    ));
    let mut r = good.clone();
    r.kind = "password".into();
    assert!(matches!(
        verify_registration(&rp(), &CHALLENGE, &r, false),
        Err(Error::Malformed(_))
    ));
    // A challenge in clientDataJSON far too long is a mismatch, not a crash.
    let cd = client_data("webauthn.create", &[7; 1500], ORIGIN, None);
    let mut r = good;
    r.response.client_data_json = b64(&cd);
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &r, false),
        Err(Error::ChallengeMismatch)
    );
}

#[test]
fn padded_fields_are_accepted() {
    let auth = Authenticator::new(Key::es256());
    let mut r = auth.register(UP);
    let pad = |s: &str| {
        let mut s = s.to_string();
        while !s.len().is_multiple_of(4) {
            s.push('=');
        }
        s
    };
    r.response.client_data_json = pad(&r.response.client_data_json);
    r.response.attestation_object = pad(&r.response.attestation_object);
    r.raw_id = pad(&r.raw_id);
    assert!(verify_registration(&rp(), &CHALLENGE, &r, false).is_ok());
}

#[test]
fn authentication_refusals() {
    let mut auth = Authenticator::new(Key::es256());
    let cred = register_ok(&auth, &auth.register(UP));
    let st = stored(&cred, 0);
    let verify = |r: &enclave_webauthn::AuthenticationResponse, uv: bool| {
        verify_authentication(&rp(), &CHALLENGE, r, &st, uv)
    };

    let cases: Vec<(Vec<u8>, &str, u8, Error)> = vec![
        (
            client_data("webauthn.get", &CHALLENGE, "https://evil.example", None),
            "localhost",
            UP,
            Error::OriginMismatch,
        ),
        (
            client_data("webauthn.get", &CHALLENGE, ORIGIN, None),
            "example.org",
            UP,
            Error::RpIdMismatch,
        ),
        (
            client_data("webauthn.get", &[6; 32], ORIGIN, None),
            "localhost",
            UP,
            Error::ChallengeMismatch,
        ),
        (
            client_data("webauthn.create", &CHALLENGE, ORIGIN, None),
            "localhost",
            UP,
            Error::WrongType,
        ),
        (
            client_data("webauthn.get", &CHALLENGE, ORIGIN, Some(true)),
            "localhost",
            UP,
            Error::CrossOrigin,
        ),
        (
            client_data("webauthn.get", &CHALLENGE, ORIGIN, None),
            "localhost",
            UV,
            Error::UserNotPresent,
        ),
    ];
    for (cd, rp_id, flags, expected) in cases {
        let r = auth.assert_with(&cd, rp_id, flags);
        assert_eq!(verify(&r, false), Err(expected));
    }
    let r = auth.assert(UP);
    assert_eq!(verify(&r, true), Err(Error::UserNotVerified));
    assert!(verify(&r, false).is_ok());
    assert!(matches!(
        verify(&auth.assert(UP | BS), false),
        Err(Error::Malformed(_))
    ));

    // Tampered signature.
    let mut r = auth.assert(UP);
    let mut sig = base64_decode(&r.response.signature);
    let n = sig.len() - 3;
    sig[n] ^= 0x40;
    r.response.signature = b64(&sig);
    assert_eq!(verify(&r, false), Err(Error::BadSignature));
    // Tampered authenticator data: the UV bit set after signing.
    let mut r = auth.assert(UP);
    let mut ad = base64_decode(&r.response.authenticator_data);
    ad[32] |= UV;
    r.response.authenticator_data = b64(&ad);
    assert_eq!(verify(&r, true), Err(Error::BadSignature));
    // Tampered client data (signature covers its hash).
    let mut r = auth.assert(UP);
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN, Some(false));
    let mut cd2 = cd.clone();
    cd2.truncate(cd.len() - 1);
    cd2.extend(b",\"extra\":1}");
    r.response.client_data_json = b64(&cd2);
    assert_eq!(verify(&r, false), Err(Error::BadSignature));
    // Signed by another authenticator that claims this credential's ID.
    let mut other = Authenticator::new(Key::es256());
    other.id = auth.id.clone();
    assert_eq!(verify(&other.assert(UP), false), Err(Error::BadSignature));
    // Another credential ID than the stored one.
    let mut stranger = Authenticator::new(Key::es256());
    assert_eq!(
        verify(&stranger.assert(UP), false),
        Err(Error::CredentialMismatch)
    );
    // Attested credential data in an assertion.
    let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN, None);
    let ad = auth_data(
        "localhost",
        UP | AT,
        99,
        Some((&auth.id, &auth.cose_bytes())),
        None,
    );
    let sig = auth.key.sign(&signed(&ad, &cd));
    let r = authentication_json(&auth.id, &cd, &ad, &sig, None);
    assert!(matches!(verify(&r, false), Err(Error::Malformed(_))));
    // Oversize fields.
    let mut r = auth.assert(UP);
    r.response.signature = b64(&[1; 1025]);
    assert_eq!(verify(&r, false), Err(Error::TooLarge));
    let mut r = auth.assert(UP);
    r.response.authenticator_data = b64(&vec![1; 16 * 1024 + 1]);
    assert_eq!(verify(&r, false), Err(Error::TooLarge));
    let mut r = auth.assert(UP);
    r.response.user_handle = Some(b64(&[1; 65]));
    assert_eq!(verify(&r, false), Err(Error::TooLarge));
    // Garbage authenticator data and stored key.
    let mut r = auth.assert(UP);
    r.response.authenticator_data = b64(&[0; 36]);
    assert!(matches!(verify(&r, false), Err(Error::Malformed(_))));
    let r = auth.assert(UP);
    let garbage = StoredCredential {
        public_key: &[0xa1, 0x01],
        ..st
    };
    assert!(matches!(
        verify_authentication(&rp(), &CHALLENGE, &r, &garbage, false),
        Err(Error::Malformed(_))
    ));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[test]
fn signature_counter() {
    let mut auth = Authenticator::new(Key::eddsa());
    let cred = register_ok(&auth, &auth.register(UP));
    let check = |r: &enclave_webauthn::AuthenticationResponse, stored_count: u32| {
        verify_authentication(&rp(), &CHALLENGE, r, &stored(&cred, stored_count), false)
            .map(|a| a.sign_count)
    };

    // An authenticator without a counter: 0 then 0 again is fine.
    let zero = {
        let cd = client_data("webauthn.get", &CHALLENGE, ORIGIN, None);
        let ad = auth_data("localhost", UP, 0, None, None);
        let sig = auth.key.sign(&signed(&ad, &cd));
        authentication_json(&auth.id, &cd, &ad, &sig, None)
    };
    assert_eq!(check(&zero, 0), Ok(0));
    // A zero counter after a non-zero one is a regression.
    assert_eq!(check(&zero, 5), Err(Error::CounterRegression));

    auth.counter = 4; // the next assertion carries 5
    let five = auth.assert(UP);
    assert_eq!(check(&five, 0), Ok(5));
    assert_eq!(check(&five, 4), Ok(5));
    assert_eq!(check(&five, 5), Err(Error::CounterRegression));
    assert_eq!(check(&five, 6), Err(Error::CounterRegression));
}

#[test]
fn error_messages_do_not_echo_input() {
    let auth = Authenticator::new(Key::es256());
    let mut r = auth.register(UP);
    r.response.client_data_json = b64(&serde_json::to_vec(&serde_json::json!({
        "type": "webauthn.create<script>", "challenge": "x", "origin": "https://evil"
    }))
    .unwrap());
    let e = verify_registration(&rp(), &CHALLENGE, &r, false).unwrap_err();
    assert_eq!(e, Error::WrongType);
    let message = e.to_string();
    assert!(
        !message.contains("script") && !message.contains("evil"),
        "{message}"
    );
}
