//! Tamper evidence for Enclave's audit trail. Pure: no IO, no clock (times are passed in).
//!
//! * **Encoding** ([`encoding`]): each record (an [`enclave_core::audit::AuditRecord`] and its
//!   sequence number) has one canonical, versioned (`v1`), length-prefixed byte encoding; its
//!   detail is canonical JSON (sorted keys, no whitespace), which is also the text the store
//!   keeps.
//! * **Chain** ([`chain`]): `hash(seq) = SHA-256(hash(seq - 1) || encoding(seq))`, with 32 zero
//!   bytes before record 1. Sequence numbers start at 1 and have no gaps.
//! * **Checkpoints** ([`checkpoint`]): `{seq, hash, at, key_id}` signed with the installation's
//!   Ed25519 key over a domain-separated message. A checkpoint vouches for every record up to
//!   `seq`: rewriting any of them, even with all hashes recomputed, no longer matches it, and
//!   cutting the trail before `seq` leaves it vouching for records that are gone.
//! * **Verification** ([`verify`]): a streaming [`Verifier`] that names the first bad record and
//!   what was done to it (modified, deleted, inserted, reordered, truncated, bad checkpoint).
//!   It can start from a checkpoint instead of genesis (after pruning, or to check only recent
//!   records).
//! * **Export** ([`export`]): JSON Lines that an outside party holding only the public key can
//!   verify.
//!
//! Invariants the store upholds with these rules: records are chained in commit order under the
//! single writer; a record and any checkpoint it triggers commit in the same transaction; the
//! stored detail text is exactly [`canonical_detail`] of the record's detail.

pub mod chain;
pub mod checkpoint;
pub mod encoding;
pub mod export;
pub mod verify;

pub use chain::{chain_hash, to_hex, Chainer, Hash, GENESIS};
pub use checkpoint::{Checkpoint, CheckpointSigner, KeyError, PublicKey, SigningKey};
pub use encoding::{canonical_detail, canonical_json, RecordView};
pub use verify::{Failure, OwnedRecord, Summary, Tamper, Verifier};
