//! COSE_Key (RFC 9052/9053, RFC 8230) parsing for the three algorithms Enclave accepts, and
//! signature verification with aws-lc-rs.

use aws_lc_rs::signature::{
    self, ParsedPublicKey, RsaPublicKeyComponents, ECDSA_P256_SHA256_ASN1, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};

use crate::cbor::{self, Value};
use crate::Error;

/// COSE algorithm ES256: ECDSA with P-256 and SHA-256 (signature DER-encoded, as WebAuthn sends it).
pub const ALG_ES256: i64 = -7;
/// COSE algorithm EdDSA (Ed25519 here).
pub const ALG_EDDSA: i64 = -8;
/// COSE algorithm RS256: RSASSA-PKCS1-v1_5 with SHA-256.
pub const ALG_RS256: i64 = -257;

const KTY_OKP: i64 = 1;
const KTY_EC2: i64 = 2;
const KTY_RSA: i64 = 3;
const CRV_P256: i64 = 1;
const CRV_ED25519: i64 = 6;
/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (aws-lc-rs verifies up to 8192).
const MAX_RSA_BITS: usize = 8192;

/// A credential public key, validated and ready to verify signatures.
pub struct CoseKey {
    /// The COSE algorithm (one of [`ALG_ES256`], [`ALG_EDDSA`], [`ALG_RS256`]).
    pub algorithm: i64,
    key: ParsedPublicKey,
}

impl std::fmt::Debug for CoseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoseKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl CoseKey {
    /// Parses a COSE_Key that must span exactly `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_value(&cbor::decode_exact(bytes)?)
    }

    /// Parses an already decoded COSE_Key map.
    pub fn from_value(value: &Value<'_>) -> Result<Self, Error> {
        if value.as_map().is_none() {
            return Err(Error::Malformed(
                "credential public key is not a COSE key map",
            ));
        }
        let int = |label: i64| value.get_int(label).and_then(Value::as_i64);
        let bytes = |label: i64| value.get_int(label).and_then(Value::as_bytes);
        let kty = int(1).ok_or(Error::Malformed("credential public key has no key type"))?;
        let algorithm = int(3).ok_or(Error::UnsupportedAlgorithm)?;
        let key = match algorithm {
            ALG_ES256 => {
                if kty != KTY_EC2 || int(-1) != Some(CRV_P256) {
                    return Err(Error::Malformed(
                        "ES256 credential key is not an EC2 key on P-256",
                    ));
                }
                if value.get_int(-4).is_some() {
                    return Err(Error::Malformed(
                        "credential public key contains a private key",
                    ));
                }
                let (x, y) = match (bytes(-2), bytes(-3)) {
                    (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => (x, y),
                    _ => {
                        return Err(Error::Malformed(
                            "ES256 credential key needs 32-byte x and y coordinates",
                        ))
                    }
                };
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point)
                    .map_err(|_| Error::Malformed("ES256 credential key is not a point on P-256"))?
            }
            ALG_EDDSA => {
                if kty != KTY_OKP || int(-1) != Some(CRV_ED25519) {
                    return Err(Error::Malformed(
                        "EdDSA credential key is not an OKP key on Ed25519",
                    ));
                }
                if value.get_int(-4).is_some() {
                    return Err(Error::Malformed(
                        "credential public key contains a private key",
                    ));
                }
                let x = bytes(-2)
                    .filter(|x| x.len() == 32)
                    .ok_or(Error::Malformed("EdDSA credential key needs a 32-byte x"))?;
                ParsedPublicKey::new(&ED25519, x)
                    .map_err(|_| Error::Malformed("EdDSA credential key is not valid"))?
            }
            ALG_RS256 => {
                if kty != KTY_RSA {
                    return Err(Error::Malformed("RS256 credential key is not an RSA key"));
                }
                if value.get_int(-3).is_some() {
                    return Err(Error::Malformed(
                        "credential public key contains a private key",
                    ));
                }
                let n = bytes(-1)
                    .map(strip_leading_zeros)
                    .ok_or(Error::Malformed("RS256 credential key has no modulus"))?;
                let e = bytes(-2)
                    .map(strip_leading_zeros)
                    .ok_or(Error::Malformed("RS256 credential key has no exponent"))?;
                let bits = bit_length(n);
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(Error::Malformed(
                        "RS256 credential key must have a 2048 to 8192-bit modulus",
                    ));
                }
                // Public exponents are odd, at least 3, and at most 33 bits in aws-lc.
                let odd = e.last().is_some_and(|b| b & 1 == 1);
                if !odd || e.len() > 4 || e == [1] {
                    return Err(Error::Malformed(
                        "RS256 credential key has an invalid exponent",
                    ));
                }
                RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|_| Error::Malformed("RS256 credential key is not valid"))?
            }
            _ => return Err(Error::UnsupportedAlgorithm),
        };
        Ok(CoseKey { algorithm, key })
    }

    /// Verifies `signature` over `message` with this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        self.key
            .verify_sig(message, signature)
            .map_err(|_| Error::BadSignature)
    }
}

/// Verifies a signature with a certificate's SubjectPublicKeyInfo for ES256 or RS256.
pub fn verify_with_spki(
    algorithm: i64,
    spki: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    let alg: &'static dyn signature::VerificationAlgorithm = match algorithm {
        ALG_ES256 => &ECDSA_P256_SHA256_ASN1,
        ALG_RS256 => &RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(Error::UnsupportedAlgorithm),
    };
    let key = ParsedPublicKey::new(alg, spki).map_err(|_| {
        Error::Malformed("attestation certificate key does not match the attestation algorithm")
    })?;
    key.verify_sig(message, signature)
        .map_err(|_| Error::BadSignature)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

fn bit_length(n: &[u8]) -> usize {
    match n.first() {
        Some(top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0x7f; 256]), 2047);
        assert_eq!(strip_leading_zeros(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(strip_leading_zeros(&[0, 0]), &[] as &[u8]);
    }

    #[test]
    fn refuses_non_map_and_unknown_algorithms() {
        assert!(matches!(
            CoseKey::from_bytes(&[0x01]),
            Err(Error::Malformed(_))
        ));
        // {1: 2, 3: -35}: ES384 is not accepted.
        assert!(matches!(
            CoseKey::from_bytes(&[0xa2, 0x01, 0x02, 0x03, 0x38, 0x22]),
            Err(Error::UnsupportedAlgorithm)
        ));
        // {1: 2}: no algorithm.
        assert!(matches!(
            CoseKey::from_bytes(&[0xa1, 0x01, 0x02]),
            Err(Error::UnsupportedAlgorithm)
        ));
    }
}
