//! Signed checkpoints and the installation's Ed25519 key.
//!
//! A checkpoint `{seq, hash, at, key_id}` states "the record at `seq` has chain hash `hash`";
//! its Ed25519 signature covers the domain-separated message
//!
//! ```text
//! "enclave-audit-checkpoint-v1" || seq (u64 BE) || hash (32 bytes) || at (i64 BE)
//!   || key_id length (u64 BE) || key_id (UTF-8)
//! ```
//!
//! so a signature over anything else (another protocol, another version) never reads as a
//! checkpoint. Anyone can compute chain hashes; only the key holder can sign checkpoints, so
//! records up to the latest checkpoint cannot be rewritten without detection, even by someone
//! who recomputes every hash after their change.

use crate::chain::{to_hex, Hash};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use enclave_core::Timestamp;

/// The domain separator of the checkpoint signature.
pub const CHECKPOINT_DOMAIN: &[u8] = b"enclave-audit-checkpoint-v1";

/// Key handling failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PKCS#8 document is not an Ed25519 private key.
    #[error("not an Ed25519 PKCS#8 private key: {0}")]
    Pkcs8(String),
    /// The public key text or bytes are malformed.
    #[error("not an Ed25519 public key (expected 32 bytes as hex or base64)")]
    PublicKey,
    /// The system random generator failed.
    #[error("key generation failed")]
    Generate,
}

/// An Ed25519 public key (raw 32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// From the raw 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        <[u8; 32]>::try_from(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::PublicKey)
    }

    /// From 64 hex digits or standard base64 of the raw 32 bytes (surrounding whitespace is
    /// ignored).
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let t = text.trim();
        if let Some(b) = crate::chain::from_hex(t) {
            return PublicKey::from_bytes(&b);
        }
        let b = B64.decode(t).map_err(|_| KeyError::PublicKey)?;
        PublicKey::from_bytes(&b)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the raw bytes.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Standard base64 of the raw bytes.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// The key id: the first 8 bytes of SHA-256 of the raw public key, in hex (16 digits).
    pub fn key_id(&self) -> String {
        to_hex(&digest(&SHA256, &self.0).as_ref()[..8])
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// Something that signs checkpoints: the installation's key, held in memory
/// ([`SigningKey`]), or elsewhere (an HSM or KMS behind the same trait).
pub trait CheckpointSigner: Send + Sync {
    /// The public half, which verifiers hold.
    fn public_key(&self) -> PublicKey;
    /// Ed25519 signature of `message` (64 bytes).
    fn sign(&self, message: &[u8]) -> Vec<u8>;
    /// The key id written into checkpoints.
    fn key_id(&self) -> String {
        self.public_key().key_id()
    }
}

/// An Ed25519 key pair in memory.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key, returned with its PKCS#8 (v2) document for storage. (The randomness
    /// comes from aws-lc's system generator: the one place this crate touches the OS.)
    pub fn generate() -> Result<(SigningKey, Vec<u8>), KeyError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.to_pkcs8().map_err(|_| KeyError::Generate)?;
        let pkcs8 = pkcs8.as_ref().to_vec();
        Ok((SigningKey::from_pair(pair)?, pkcs8))
    }

    /// Loads a key from a PKCS#8 document (v1 or v2).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| KeyError::Pkcs8(e.to_string()))?;
        SigningKey::from_pair(pair)
    }

    fn from_pair(pair: Ed25519KeyPair) -> Result<SigningKey, KeyError> {
        let public = PublicKey::from_bytes(pair.public_key().as_ref())?;
        Ok(SigningKey {
            pair,
            key_id: public.key_id(),
            public,
        })
    }
}

impl CheckpointSigner for SigningKey {
    fn public_key(&self) -> PublicKey {
        self.public
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
    fn key_id(&self) -> String {
        self.key_id.clone()
    }
}

/// A signed statement that the record at `seq` has chain hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The record it covers.
    pub seq: u64,
    /// That record's chain hash.
    pub hash: Hash,
    /// When it was made (the time of the record that triggered it, or of the timer).
    pub at: Timestamp,
    /// Id of the signing key ([`PublicKey::key_id`]).
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::message`].
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The signed message for these fields.
    pub fn message(seq: u64, hash: &Hash, at: Timestamp, key_id: &str) -> Vec<u8> {
        let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 56 + key_id.len());
        m.extend_from_slice(CHECKPOINT_DOMAIN);
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        m.extend_from_slice(&at.unix().to_be_bytes());
        m.extend_from_slice(&(key_id.len() as u64).to_be_bytes());
        m.extend_from_slice(key_id.as_bytes());
        m
    }

    /// Signs a checkpoint for the record at `seq` with chain hash `hash`.
    pub fn sign(signer: &dyn CheckpointSigner, seq: u64, hash: Hash, at: Timestamp) -> Checkpoint {
        let key_id = signer.key_id();
        let signature = signer.sign(&Checkpoint::message(seq, &hash, at, &key_id));
        Checkpoint {
            seq,
            hash,
            at,
            key_id,
            signature,
        }
    }

    /// Whether the signature is `key`'s over these fields (and the key id names `key`).
    pub fn verify(&self, key: &PublicKey) -> bool {
        self.key_id == key.key_id()
            && key.verify(
                &Checkpoint::message(self.seq, &self.hash, self.at, &self.key_id),
                &self.signature,
            )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip_and_sign() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&pkcs8).unwrap();
        let pk = key.public_key();
        assert_eq!(again.public_key(), pk);
        assert_eq!(PublicKey::parse(&pk.to_hex()).unwrap(), pk);
        assert_eq!(PublicKey::parse(&pk.to_base64()).unwrap(), pk);
        assert_eq!(PublicKey::from_bytes(pk.as_bytes()).unwrap(), pk);
        assert_eq!(pk.key_id().len(), 16);
        assert!(PublicKey::parse("abcd").is_err());
        assert!(SigningKey::from_pkcs8(b"nonsense").is_err());

        let cp = Checkpoint::sign(&again, 42, [7; 32], Timestamp(100));
        assert!(cp.verify(&pk));
        let mut bad = cp.clone();
        bad.seq = 43;
        assert!(!bad.verify(&pk));
        let mut bad = cp.clone();
        bad.at = Timestamp(101);
        assert!(!bad.verify(&pk));
        let (other, _) = SigningKey::generate().unwrap();
        assert!(!cp.verify(&other.public_key()));
        // The signature is over the domain-separated message only.
        assert!(!pk.verify(&cp.hash, &cp.signature));
    }
}
