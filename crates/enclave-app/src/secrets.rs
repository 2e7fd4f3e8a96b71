//! Random identifiers and secrets, their hashes, and constant-time comparison (aws-lc-rs).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use enclave_core::{Error, Result};

/// Prefix of personal API tokens, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "enc_pat_";

/// `n` random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| {
        tracing::error!("system random generator failed");
        Error::internal()
    })?;
    Ok(buf)
}

/// A 256-bit secret, base64url without padding (43 characters).
pub fn new_secret() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// A 128-bit opaque id in lowercase hex, with a short type prefix.
pub fn new_id(prefix: &str) -> Result<String> {
    let bytes = random_bytes::<16>()?;
    let mut s = String::with_capacity(prefix.len() + 33);
    s.push_str(prefix);
    s.push('_');
    push_hex(&mut s, &bytes);
    Ok(s)
}

/// Whether `id` could be one of ours (or a workload id) before it reaches the store: 1 to 64
/// letters, digits, `_` or `-`. Anything else is simply not found.
pub(crate) fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// SHA-256 of a secret, hex encoded: what the store keeps instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    let mut s = String::with_capacity(64);
    push_hex(&mut s, d.as_ref());
    s
}

/// Appends `bytes` as lowercase hex.
fn push_hex(s: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// A keyed MAC of `message` under `key` (HMAC-SHA256), base64url. Used to derive CSRF tokens
/// from the session secret, so no extra state is stored.
pub fn mac(key: &str, message: &str) -> String {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_bytes());
    URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&k, message.as_bytes()).as_ref())
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Whether `s` looks like a secret produced by [`new_secret`] (cheap check before a lookup).
pub fn plausible_secret(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_random_and_plausible() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(plausible_secret(&a));
        assert!(!plausible_secret("short"));
        assert_eq!(hash_secret("x").len(), 64);
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert!(new_id("usr").unwrap().starts_with("usr_"));
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert_ne!(mac("k1", "m"), mac("k2", "m"));
    }
}
