//! The hash chain: `hash(seq) = SHA-256(hash(seq - 1) || encoding(seq))`, with 32 zero bytes
//! before the first record.

use crate::encoding::RecordView;
use aws_lc_rs::digest::{digest, SHA256};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// The hash that precedes record 1.
pub const GENESIS: Hash = [0; 32];

/// `SHA-256(prev || encoding)`.
pub fn chain_hash(prev: &Hash, encoding: &[u8]) -> Hash {
    let mut buf = Vec::with_capacity(32 + encoding.len());
    buf.extend_from_slice(prev);
    buf.extend_from_slice(encoding);
    to_hash(digest(&SHA256, &buf).as_ref())
}

fn to_hash(bytes: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&bytes[..32]);
    h
}

/// Computes chain hashes with one reusable buffer, so hashing a stream of records allocates
/// nothing per record.
#[derive(Debug, Default)]
pub struct Chainer {
    buf: Vec<u8>,
}

impl Chainer {
    /// A chainer with an empty buffer.
    pub fn new() -> Chainer {
        Chainer {
            buf: Vec::with_capacity(1024),
        }
    }

    /// The hash of `record` following `prev`.
    pub fn hash(&mut self, prev: &Hash, record: &RecordView<'_>) -> Hash {
        self.buf.clear();
        self.buf.extend_from_slice(prev);
        record.encode_into(&mut self.buf);
        to_hash(digest(&SHA256, &self.buf).as_ref())
    }
}

/// Lower-case hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes from hex (either case); `None` if malformed.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if s.len() & 1 == 1 {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// A [`Hash`] from 64 hex digits.
pub fn hash_from_hex(s: &str) -> Option<Hash> {
    let v = from_hex(s)?;
    <[u8; 32]>::try_from(v.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chainer_matches_the_definition() {
        let r = RecordView {
            seq: 1,
            at: 5,
            actor: "alice",
            auth: "session",
            source: "127.0.0.1",
            action: "user.create",
            resource: "user:bob",
            project: Some("fraud"),
            outcome: "success",
            request_id: "req_1",
            detail: r#"{"a":1}"#,
        };
        let mut c = Chainer::new();
        let h = c.hash(&GENESIS, &r);
        assert_eq!(h, chain_hash(&GENESIS, &r.encode()));
        let mut manual = GENESIS.to_vec();
        manual.extend(r.encode());
        assert_eq!(h.as_slice(), digest(&SHA256, &manual).as_ref());
        assert_ne!(c.hash(&h, &r), h);
    }

    #[test]
    fn hex_round_trips() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex("0001ABff").unwrap(), b);
        assert!(from_hex("0g").is_none());
        assert!(from_hex("abc").is_none());
        assert!(hash_from_hex("00").is_none());
    }
}
