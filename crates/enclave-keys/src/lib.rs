//! Enclave's key hierarchy: the cryptographic core of encryption at rest.
//!
//! * A **data key** ([`DataKey`], a DEK) encrypts records with AES-256-GCM. Each project has
//!   its own (`"project:prj_…"`), the platform has one (`"platform"`); each has versions.
//! * A **master key** (a KEK, behind the [`MasterKeys`] trait) wraps data keys. The built-in
//!   provider, [`FileMasterKeys`], keeps a ring of master keys in one file in the data
//!   directory, either plain (`master.key`, mode 0600) or sealed under a passphrase
//!   (`master.sealed`, argon2id + AES-256-GCM). External key services (Vault transit, a cloud
//!   KMS) implement the same trait.
//!
//! The only crypto provider is aws-lc-rs; nonces come from `aws_lc_rs::rand`.
//!
//! # Formats
//!
//! Every format starts with a 4-byte magic whose last character is the format version, so a
//! reader can tell a newer format from a corrupt one. Integers are big-endian. Ids are 1..=64
//! bytes of printable ASCII without spaces (`0x21..=0x7e`).
//!
//! **Record ciphertext** (`ENC1`), made by [`DataKey::seal`]:
//!
//! ```text
//! "ENC1" | id_len: u8 | key_id | key_version: u32 | nonce: 12 bytes | AES-256-GCM(plaintext) | tag: 16 bytes
//! ```
//!
//! [`DataKey::open`] returns the plaintext in a `Zeroizing` buffer (for secrets);
//! [`DataKey::open_in_place`] decrypts in the caller's buffer without allocating (for bulk
//! data; zeroizing a large buffer byte by byte on drop costs about as much as decrypting it).
//!
//! **Wrapped data key** (`EKW1`), made by [`MasterKeys::wrap`]:
//!
//! ```text
//! "EKW1" | id_len: u8 | master_key_id | nonce: 12 bytes | AES-256-GCM(32-byte data key) | tag: 16 bytes
//! ```
//!
//! In both, the associated data is `header || context`, where the header is everything before
//! the encrypted bytes and the context is chosen by the caller to name the record the
//! ciphertext belongs to (e.g. `"secret:prj_x:sec_y:3"`). A ciphertext therefore opens only
//! under the same key and the same context: it cannot be moved to another record, and its key
//! reference cannot be altered.
//!
//! **Local key ring** (`master.key`, UTF-8 text, mode 0600):
//!
//! ```text
//! # comment lines
//! enclave-keyring v1
//! current mk_<16 hex>
//! key mk_<16 hex> <base64 of 32 bytes>     (one per held master key, oldest first)
//! retired mk_<16 hex>                       (master keys dropped by retire_others)
//! ```
//!
//! **Sealed key ring** (`master.sealed`): the same text, encrypted under a key derived from a
//! passphrase with argon2id (version 0x13):
//!
//! ```text
//! "EKS1" | kdf: u8 (1 = argon2id) | memory_kib: u32 | iterations: u32 | parallelism: u32
//!        | salt_len: u8 | salt | nonce: 12 bytes | AES-256-GCM(key ring text) | tag: 16 bytes
//! ```
//!
//! with everything before the encrypted bytes as associated data.
//!
//! **Backup archive** (`EBK1`): files of a data directory, in AES-256-GCM chunks under a
//! fresh archive key wrapped by the master key; see [`ArchiveWriter`] and the `archive`
//! module for the layout. Restoring one needs the master key that made it.
//!
//! # Invariants
//!
//! * Key material lives in [`KeyMaterial`] or `Zeroizing` buffers and is zeroized on drop;
//!   no type here prints key bytes in `Debug`.
//! * Nonces are 96 bits from the system RNG. With random nonces one key must not seal more
//!   than about 2^32 messages; data keys are rotated long before that.
//! * Parsing is bounds-checked: truncated or altered input yields an error, never a panic.
//! * Master-key files are written atomically and durably (temporary file 0600 in the same
//!   directory, fsync, rename, fsync of the directory); a new master key is on disk before
//!   [`MasterKeys::rotate`] returns it.

mod archive;
mod envelope;
mod master;

pub use archive::{
    valid_archive_name, ArchiveInfo, ArchiveReader, ArchiveWriter, ArchivedFile, ARCHIVE_CHUNK,
};
pub use envelope::{key_ref_of, DataKey, KeyRef};
pub use master::{FileMasterKeys, MasterKeys, SealParams};

use zeroize::Zeroizing;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, KeyError>;

/// Everything that can go wrong with keys and ciphertexts.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The master key does not match the data (another key file, or a wrong key).
    #[error("the master key does not open this data (wrong key file or passphrase) — nothing was decrypted")]
    WrongMasterKey,
    /// `unseal` was given a wrong passphrase (or the sealed file was altered).
    #[error("wrong passphrase: the sealed master key file does not open with it")]
    WrongPassphrase,
    /// The passphrase for a new sealed file is too short.
    #[error("passphrase too weak: use at least {min} bytes")]
    WeakPassphrase {
        /// The minimum length in bytes.
        min: usize,
    },
    /// A ciphertext names a key that is not held (retired, or never held here). Master keys
    /// have no versions: for them `version` is 0.
    #[error("unknown key {key_id} version {version}: it is not held (retired, or from another installation)")]
    UnknownKey {
        /// The key id named in the ciphertext.
        key_id: String,
        /// The key version named in the ciphertext (0 for master keys).
        version: u32,
    },
    /// A key id is empty, longer than 64 bytes, or not printable ASCII.
    #[error("invalid key id: 1 to 64 bytes of printable ASCII without spaces")]
    InvalidKeyId,
    /// Malformed or altered ciphertext or file; the text says which part.
    #[error("corrupt data: {0}")]
    Corrupt(&'static str),
    /// The master keys are sealed: `unseal` first.
    #[error("the master keys are sealed: unseal with the passphrase first")]
    Sealed,
    /// A local key file that group or others may access.
    #[error("{path}: master key file is accessible to group or others (mode {mode:04o}); run `chmod 600 {path}`")]
    InsecurePermissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A file operation failed; the message names the path where known.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// 256 bits of key material, zeroized on drop. `Debug` prints `KeyMaterial(..)`.
///
/// Kept on the heap so that moving it does not leave copies on the stack.
#[derive(Clone)]
pub struct KeyMaterial(Box<Zeroizing<[u8; 32]>>);

impl KeyMaterial {
    /// Fresh random key material from the system RNG.
    pub fn generate() -> Result<Self> {
        let mut k = Box::new(Zeroizing::new([0u8; 32]));
        random(&mut k[..])?;
        Ok(Self(k))
    }

    /// Wraps existing bytes. The caller's copy of `b` is not zeroized by this call.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(Box::new(Zeroizing::new(b)))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Copies 32 bytes from a slice (errors with `Corrupt(what)` on another length).
    pub(crate) fn from_slice(s: &[u8], what: &'static str) -> Result<Self> {
        let mut k = Box::new(Zeroizing::new([0u8; 32]));
        if s.len() != 32 {
            return Err(KeyError::Corrupt(what));
        }
        k.copy_from_slice(s);
        Ok(Self(k))
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(..)")
    }
}

/// Fills `buf` from the system RNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| KeyError::Random)
}

/// Whether `id` is a valid key id: 1..=64 bytes of printable ASCII without spaces.
pub fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}
