//! The two ceremonies: registration (§7.1) and authentication (§7.2).

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use serde::Deserialize;

use crate::authdata::{self, AuthenticatorData, FLAG_AT, FLAG_BE, FLAG_BS, FLAG_UP, FLAG_UV};
use crate::cbor::{self, Value};
use crate::cose::{self, CoseKey, ALG_ES256, ALG_RS256};
use crate::der;
use crate::options::CHALLENGE_MIN_LEN;
use crate::response::{
    decode_field, MAX_ATTESTATION_OBJECT, MAX_AUTHENTICATOR_DATA, MAX_CLIENT_DATA, MAX_SIGNATURE,
};
use crate::{
    Assertion, Attestation, AuthenticationResponse, Credential, Error, RegistrationResponse,
    RelyingParty, StoredCredential,
};

/// Transport hints kept from a registration; anything else is dropped.
const KNOWN_TRANSPORTS: [&str; 6] = ["usb", "nfc", "ble", "internal", "hybrid", "smart-card"];

/// Longest challenge accepted inside clientDataJSON, in bytes.
const MAX_CHALLENGE: usize = 1024;

/// The members of CollectedClientData the verifiers read (others are ignored, as the
/// specification requires).
#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
}

/// Checks clientDataJSON (§7.1 steps 7–10, §7.2 steps 11–14).
fn check_client_data(
    raw: &[u8],
    expected_type: &str,
    rp: &RelyingParty,
    expected_challenge: &[u8],
) -> Result<(), Error> {
    if expected_challenge.len() < CHALLENGE_MIN_LEN {
        return Err(Error::WeakChallenge);
    }
    let data: ClientData = serde_json::from_slice(raw)
        .map_err(|_| Error::Malformed("clientDataJSON is not the expected JSON"))?;
    if data.kind != expected_type {
        return Err(Error::WrongType);
    }
    let challenge = decode_field(
        &data.challenge,
        MAX_CHALLENGE,
        "clientDataJSON challenge is not base64url",
    )
    .map_err(|e| match e {
        Error::TooLarge => Error::ChallengeMismatch,
        other => other,
    })?;
    verify_slices_are_equal(&challenge, expected_challenge)
        .map_err(|_| Error::ChallengeMismatch)?;
    if data.origin != rp.origin {
        return Err(Error::OriginMismatch);
    }
    if data.cross_origin == Some(true) {
        return Err(Error::CrossOrigin);
    }
    Ok(())
}

/// Checks the flags and RP ID hash common to both ceremonies.
fn check_auth_data(
    auth: &AuthenticatorData<'_>,
    rp: &RelyingParty,
    require_uv: bool,
) -> Result<(), Error> {
    let expected = digest(&SHA256, rp.id.as_bytes());
    verify_slices_are_equal(auth.rp_id_hash, expected.as_ref()).map_err(|_| Error::RpIdMismatch)?;
    if !auth.has(FLAG_UP) {
        return Err(Error::UserNotPresent);
    }
    if require_uv && !auth.has(FLAG_UV) {
        return Err(Error::UserNotVerified);
    }
    if auth.has(FLAG_BS) && !auth.has(FLAG_BE) {
        return Err(Error::Malformed(
            "authenticator data says backed up but not backup eligible",
        ));
    }
    Ok(())
}

/// `authenticatorData || SHA-256(clientDataJSON)`, the message both ceremonies sign.
fn signed_message(auth_data: &[u8], client_data: &[u8]) -> Vec<u8> {
    let hash = digest(&SHA256, client_data);
    let mut message = Vec::with_capacity(auth_data.len() + hash.as_ref().len());
    message.extend_from_slice(auth_data);
    message.extend_from_slice(hash.as_ref());
    message
}

/// Verifies a registration (WebAuthn §7.1) and returns the credential to store.
///
/// `expected_challenge` is the challenge issued with [`crate::creation_options`] (at least 16
/// bytes). With `require_uv` the authenticator must have verified the user. The caller must
/// still refuse a credential ID that is already registered (§7.1 step 25).
pub fn verify_registration(
    rp: &RelyingParty,
    expected_challenge: &[u8],
    response: &RegistrationResponse,
    require_uv: bool,
) -> Result<Credential, Error> {
    let raw_id = response.credential_id()?;
    let client_data = decode_field(
        &response.response.client_data_json,
        MAX_CLIENT_DATA,
        "clientDataJSON is not base64url",
    )?;
    let attestation_object = decode_field(
        &response.response.attestation_object,
        MAX_ATTESTATION_OBJECT,
        "attestationObject is not base64url",
    )?;

    check_client_data(&client_data, "webauthn.create", rp, expected_challenge)?;

    let object = cbor::decode_exact(&attestation_object)?;
    if object.as_map().is_none() {
        return Err(Error::Malformed("attestationObject is not a map"));
    }
    let fmt = object
        .get_text("fmt")
        .and_then(Value::as_text)
        .ok_or(Error::Malformed("attestationObject has no fmt"))?;
    let statement = object
        .get_text("attStmt")
        .filter(|v| v.as_map().is_some())
        .ok_or(Error::Malformed("attestationObject has no attStmt map"))?;
    let auth_bytes = object
        .get_text("authData")
        .and_then(Value::as_bytes)
        .ok_or(Error::Malformed("attestationObject has no authData"))?;

    let auth = authdata::parse(auth_bytes)?;
    check_auth_data(&auth, rp, require_uv)?;
    let attested = auth
        .attested
        .as_ref()
        .ok_or(Error::Malformed("authenticator data carries no credential"))?;
    if attested.credential_id != raw_id.as_slice() {
        return Err(Error::CredentialMismatch);
    }
    let key = CoseKey::from_value(&attested.public_key_value)?;

    let attestation = match fmt {
        "none" => {
            if statement.as_map().is_some_and(|m| !m.is_empty()) {
                return Err(Error::Malformed("attestation format none has a statement"));
            }
            Attestation::None
        }
        "packed" => verify_packed(
            statement,
            &key,
            attested.aaguid,
            &signed_message(auth_bytes, &client_data),
        )?,
        _ => return Err(Error::UnsupportedAttestation),
    };

    let mut transports: Vec<String> = Vec::new();
    for transport in &response.response.transports {
        if KNOWN_TRANSPORTS.contains(&transport.as_str()) && !transports.contains(transport) {
            transports.push(transport.clone());
        }
    }

    Ok(Credential {
        id: raw_id,
        public_key: attested.public_key.to_vec(),
        algorithm: key.algorithm,
        sign_count: auth.sign_count,
        aaguid: attested.aaguid,
        attestation,
        user_verified: auth.has(FLAG_UV),
        backup_eligible: auth.has(FLAG_BE),
        backed_up: auth.has(FLAG_BS),
        transports,
    })
}

/// Packed attestation (§8.2): self attestation or an x5c leaf certificate (not chained to
/// any trust anchor).
fn verify_packed(
    statement: &Value<'_>,
    key: &CoseKey,
    aaguid: [u8; 16],
    message: &[u8],
) -> Result<Attestation, Error> {
    if statement.get_text("ecdaaKeyId").is_some() {
        return Err(Error::UnsupportedAttestation);
    }
    let alg = statement
        .get_text("alg")
        .and_then(Value::as_i64)
        .ok_or(Error::Malformed("packed attestation has no alg"))?;
    let sig = statement
        .get_text("sig")
        .and_then(Value::as_bytes)
        .ok_or(Error::Malformed("packed attestation has no sig"))?;
    if sig.len() > MAX_SIGNATURE {
        return Err(Error::TooLarge);
    }
    match statement.get_text("x5c") {
        None => {
            if alg != key.algorithm {
                return Err(Error::Malformed(
                    "packed self attestation alg differs from the credential's",
                ));
            }
            key.verify(message, sig)?;
            Ok(Attestation::PackedSelf)
        }
        Some(chain) => {
            let leaf = chain
                .as_array()
                .and_then(|certs| certs.first())
                .and_then(Value::as_bytes)
                .ok_or(Error::Malformed(
                    "packed attestation x5c has no certificate",
                ))?;
            if chain
                .as_array()
                .is_some_and(|certs| certs.iter().any(|c| c.as_bytes().is_none()))
            {
                return Err(Error::Malformed(
                    "packed attestation x5c holds a non-certificate",
                ));
            }
            let cert = der::parse_leaf(leaf)?;
            let key_matches = match alg {
                ALG_ES256 => {
                    cert.key_algorithm == der::OID_EC_PUBLIC_KEY
                        && cert.key_curve == Some(der::OID_P256)
                }
                ALG_RS256 => cert.key_algorithm == der::OID_RSA,
                _ => return Err(Error::UnsupportedAlgorithm),
            };
            if !key_matches {
                return Err(Error::Malformed(
                    "attestation certificate key does not match the attestation algorithm",
                ));
            }
            if let Some(cert_aaguid) = cert.aaguid {
                if cert_aaguid != aaguid {
                    return Err(Error::Malformed(
                        "attestation certificate is for another authenticator model",
                    ));
                }
            }
            cose::verify_with_spki(alg, cert.spki, message, sig)?;
            Ok(Attestation::PackedX5c)
        }
    }
}

/// Verifies an authentication assertion (WebAuthn §7.2) made with the stored credential.
///
/// Look the stored credential up with [`AuthenticationResponse::credential_id`] first. On
/// success store [`Assertion::sign_count`]. [`Error::CounterRegression`] means the counter
/// did not increase although the authenticator keeps one: a cloned authenticator may exist, so
/// refuse the sign-in and tell the user to contact an administrator.
pub fn verify_authentication(
    rp: &RelyingParty,
    expected_challenge: &[u8],
    response: &AuthenticationResponse,
    stored: &StoredCredential<'_>,
    require_uv: bool,
) -> Result<Assertion, Error> {
    let id = response.credential_id()?;
    verify_slices_are_equal(&id, stored.id).map_err(|_| Error::CredentialMismatch)?;
    let client_data = decode_field(
        &response.response.client_data_json,
        MAX_CLIENT_DATA,
        "clientDataJSON is not base64url",
    )?;
    let auth_bytes = decode_field(
        &response.response.authenticator_data,
        MAX_AUTHENTICATOR_DATA,
        "authenticatorData is not base64url",
    )?;
    let signature = decode_field(
        &response.response.signature,
        MAX_SIGNATURE,
        "signature is not base64url",
    )?;
    // Size-check the user handle even though its meaning is the caller's business.
    response.user_handle()?;

    check_client_data(&client_data, "webauthn.get", rp, expected_challenge)?;

    let auth = authdata::parse(&auth_bytes)?;
    check_auth_data(&auth, rp, require_uv)?;
    if auth.has(FLAG_AT) {
        return Err(Error::Malformed(
            "authenticator data of a sign-in carries a new credential",
        ));
    }

    let key = CoseKey::from_bytes(stored.public_key)?;
    key.verify(&signed_message(&auth_bytes, &client_data), &signature)?;

    if (stored.sign_count != 0 || auth.sign_count != 0) && auth.sign_count <= stored.sign_count {
        return Err(Error::CounterRegression);
    }

    Ok(Assertion {
        sign_count: auth.sign_count,
        user_verified: auth.has(FLAG_UV),
        backed_up: auth.has(FLAG_BS),
    })
}
