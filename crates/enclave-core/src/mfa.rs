//! Second factors for local accounts: time-based one-time passwords (TOTP, RFC 6238 over
//! HOTP, RFC 4226: HMAC-SHA-1, 6 digits, 30-second steps, one step of clock drift either way)
//! and one-use recovery codes.
//!
//! Invariants:
//! * A code is accepted only for a time step later than the last one accepted for the same
//!   secret ([`verify`] returns the step to remember), so each code works once.
//! * Codes are compared in constant time; nothing here logs, and `Debug` of the secret type
//!   shows no bytes.
//! * Recovery codes are stored as SHA-256 hashes of their normalized form only.
//! * Time and randomness come from the caller.

use crate::Timestamp;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Length of one TOTP time step in seconds.
pub const STEP_SECONDS: i64 = 30;
/// Digits in a code.
pub const DIGITS: usize = 6;
/// Bytes of a TOTP secret (160 bits, the HMAC-SHA-1 block-friendly size RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes given out at confirmation.
pub const RECOVERY_CODES: usize = 10;
/// Random bytes behind one recovery code (10 base32 characters use 50 of its 56 bits).
pub const RECOVERY_CODE_BYTES: usize = 7;
/// Characters of a recovery code, without the separator.
pub const RECOVERY_CODE_CHARS: usize = 10;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "Enclave";
/// Longest second-factor input looked at (a code or a recovery code with spaces or dashes).
pub const MAX_INPUT: usize = 32;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A TOTP secret; its bytes are wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A secret from random bytes supplied by the caller.
    pub fn from_bytes(bytes: &[u8]) -> TotpSecret {
        TotpSecret(Zeroizing::new(bytes.to_vec()))
    }

    /// Parses the base32 form (case and spaces ignored, padding optional); `None` when it is
    /// not base32 or shorter than 80 bits.
    pub fn from_base32(text: &str) -> Option<TotpSecret> {
        let bytes = base32_decode(text)?;
        (bytes.len() >= 10 && bytes.len() <= 64).then(|| TotpSecret(Zeroizing::new(bytes)))
    }

    /// The base32 form (RFC 4648, upper case, no padding) an authenticator app takes.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32_encode(&self.0))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The HOTP value (RFC 4226) of `secret` at `counter`, as `DIGITS` decimal digits.
pub fn hotp(secret: &TotpSecret, counter: u64) -> Zeroizing<String> {
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        secret.as_bytes(),
    );
    let tag = aws_lc_rs::hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = [
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ];
    let binary = u32::from_be_bytes(word) & 0x7fff_ffff;
    Zeroizing::new(format!("{:06}", binary % 1_000_000))
}

/// The time step `now` falls in (`None` before the epoch).
pub fn step_at(now: Timestamp) -> Option<u64> {
    u64::try_from(now.unix().div_euclid(STEP_SECONDS)).ok()
}

/// The code an authenticator shows at `now`.
pub fn code_at(secret: &TotpSecret, now: Timestamp) -> Zeroizing<String> {
    hotp(secret, step_at(now).unwrap_or(0))
}

/// Whether `input` has the shape of a TOTP code (six digits, spaces allowed).
pub fn looks_like_code(input: &str) -> bool {
    normalize_code(input).is_some()
}

fn normalize_code(input: &str) -> Option<Zeroizing<String>> {
    if input.len() > MAX_INPUT {
        return None;
    }
    let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = Zeroizing::new(digits);
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Checks a TOTP `code` at `now`, allowing one step of drift either way, and only for a step
/// later than `last_used_step`. Returns the matched step, which the caller must store as the
/// new last used step so the code cannot be used again.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now: Timestamp,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let code = normalize_code(code)?;
    let current = step_at(now)?;
    let mut matched = None;
    // Look at every candidate step (no early exit), so timing says nothing about which matched.
    for step in [
        current.saturating_sub(1),
        current,
        current.saturating_add(1),
    ] {
        let fresh = last_used_step.is_none_or(|last| step > last);
        let expected = hotp(secret, step);
        let equal =
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes())
                .is_ok();
        if equal && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// The `otpauth://` URI authenticator apps read (from a QR code or pasted): issuer
/// [`ISSUER`], account `account`, SHA-1, 6 digits, 30 seconds.
pub fn otpauth_uri(secret: &TotpSecret, account: &str) -> Zeroizing<String> {
    let label = format!("{}:{}", percent_encode(ISSUER), percent_encode(account));
    Zeroizing::new(format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        base32_encode(secret.as_bytes()),
        percent_encode(ISSUER)
    ))
}

/// A recovery code from `RECOVERY_CODE_BYTES` random bytes, shown as two groups of five base32 characters (`7K2QD-M4XRA`).
pub fn recovery_code(bytes: &[u8; RECOVERY_CODE_BYTES]) -> Zeroizing<String> {
    let all = base32_encode(bytes);
    let chars: String = all.chars().take(RECOVERY_CODE_CHARS).collect();
    let (a, b) = chars.split_at(RECOVERY_CODE_CHARS / 2);
    Zeroizing::new(format!("{a}-{b}"))
}

/// The normalized form of a typed recovery code (upper case, no dashes or spaces), or `None`
/// when it cannot be one.
pub fn normalize_recovery_code(input: &str) -> Option<Zeroizing<String>> {
    if input.len() > MAX_INPUT {
        return None;
    }
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let s = Zeroizing::new(s);
    (s.len() == RECOVERY_CODE_CHARS && s.bytes().all(|b| BASE32.contains(&b))).then_some(s)
}

/// What the store keeps for a recovery code: SHA-256 (hex) of its normalized form. `None`
/// when `input` cannot be a recovery code.
pub fn hash_recovery_code(input: &str) -> Option<String> {
    let n = normalize_recovery_code(input)?;
    let digest = Sha256::digest(format!("enclave-recovery-v1:{}", n.as_str()).as_bytes());
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether a session's authentication method references (RFC 8176, space separated) include
/// a second factor: `otp` or `mfa` from Enclave's own TOTP step, or `mfa`, `otp` or `hwk` vouched
/// for by an OpenID provider.
pub fn amr_has_second_factor(amr: &str) -> bool {
    amr.split_whitespace()
        .any(|v| matches!(v, "otp" | "mfa" | "hwk"))
}

/// RFC 4648 base32, upper case, no padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes RFC 4648 base32 (case, spaces and `=` padding ignored); `None` on any other
/// character or more than 128 characters.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() > 128 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in text.chars() {
        if c.is_whitespace() || c == '=' {
            continue;
        }
        let u = c.to_ascii_uppercase();
        let v = BASE32.iter().position(|&x| char::from(x) == u)?;
        buffer = (buffer << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890")
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let expect = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (i, e) in expect.iter().enumerate() {
            assert_eq!(hotp(&rfc_secret(), i as u64).as_str(), *e);
        }
    }

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        // RFC 6238 appendix B (SHA-1), last six of the eight digits.
        let vectors = [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ];
        for (t, code) in vectors {
            assert_eq!(code_at(&rfc_secret(), Timestamp(t)).as_str(), code, "t={t}");
            assert!(verify(&rfc_secret(), code, Timestamp(t), None).is_some());
        }
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let s = rfc_secret();
        let t = Timestamp(1_234_567_890);
        let step = step_at(t).unwrap();
        let code = code_at(&s, t);
        assert_eq!(
            verify(&s, &code, Timestamp(t.unix() - 30), None),
            Some(step)
        );
        assert_eq!(
            verify(&s, &code, Timestamp(t.unix() + 30), None),
            Some(step)
        );
        assert_eq!(verify(&s, &code, Timestamp(t.unix() + 60), None), None);
        assert_eq!(verify(&s, &code, Timestamp(t.unix() - 60), None), None);
    }

    #[test]
    fn a_code_works_once() {
        let s = rfc_secret();
        let t = Timestamp(1_700_000_000);
        let code = code_at(&s, t);
        let step = verify(&s, &code, t, None).unwrap();
        assert_eq!(verify(&s, &code, t, Some(step)), None);
        // The next step's code is still good.
        let later = Timestamp(t.unix() + 30);
        let next = code_at(&s, later);
        assert_eq!(verify(&s, &next, later, Some(step)), Some(step + 1));
        // An earlier step's code is refused after a later one was used.
        let earlier = code_at(&s, Timestamp(t.unix() - 30));
        assert_eq!(verify(&s, &earlier, t, Some(step)), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let s = rfc_secret();
        let t = Timestamp(1_700_000_000);
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "12 34 5x",
            &"1".repeat(100),
        ] {
            assert_eq!(verify(&s, bad, t, None), None, "{bad}");
        }
        let spaced = code_at(&s, t);
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert!(verify(&s, &spaced, t, None).is_some());
        assert!(looks_like_code("123 456"));
        assert!(!looks_like_code("ABCDE-FGHIJ"));
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert!(base32_decode("MZXW1").is_none());
        let s = rfc_secret();
        let back = TotpSecret::from_base32(&s.to_base32()).unwrap();
        assert_eq!(back, s);
        assert!(TotpSecret::from_base32("MZXW6").is_none());
        assert_eq!(format!("{s:?}"), "TotpSecret(..)");
    }

    #[test]
    fn otpauth_uri_names_issuer_and_account() {
        let uri = otpauth_uri(&rfc_secret(), "ada lovelace");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Enclave:ada%20lovelace?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Enclave&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_normalize_and_hash() {
        let code = recovery_code(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(code.len(), RECOVERY_CODE_CHARS + 1);
        assert_eq!(&code[5..6], "-");
        let h = hash_recovery_code(&code).unwrap();
        assert_eq!(h.len(), 64);
        let typed = code.to_ascii_lowercase().replace('-', " ");
        assert_eq!(hash_recovery_code(&typed).unwrap(), h);
        assert_ne!(
            hash_recovery_code(&recovery_code(&[9, 2, 3, 4, 5, 6, 7])).unwrap(),
            h
        );
        assert!(hash_recovery_code("123456").is_none());
        assert!(hash_recovery_code("ABCDE-FGHI1").is_none());
    }

    #[test]
    fn second_factor_amr_values() {
        assert!(amr_has_second_factor("pwd otp"));
        assert!(amr_has_second_factor("pwd otp mfa"));
        assert!(amr_has_second_factor("hwk"));
        assert!(!amr_has_second_factor("pwd"));
        assert!(!amr_has_second_factor(""));
        assert!(!amr_has_second_factor("pwdotp"));
    }
}
