//! Record ciphertexts (`ENC1`) under data keys, and the AEAD helpers shared with the
//! master-key formats.

use crate::{random, valid_key_id, KeyError, KeyMaterial, Result};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

/// Length of the AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Magic of a record ciphertext (format version 1).
const ENC_MAGIC: &[u8; 4] = b"ENC1";

/// Which data key sealed a ciphertext (read from its header without decrypting).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRef {
    /// The data key id, e.g. `"project:prj_…"` or `"platform"`.
    pub key_id: String,
    /// The data key version.
    pub version: u32,
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.key_id, self.version)
    }
}

/// A data-encryption key (DEK) for AES-256-GCM, with its id and version.
///
/// `Debug` shows the id and version only.
pub struct DataKey {
    key: LessSafeKey,
    key_id: String,
    version: u32,
    /// `"ENC1" | id_len | id | version`: the header up to the nonce, precomputed.
    prefix: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// A data key named `key_id` (1..=64 bytes of printable ASCII without spaces) at
    /// `version`, from `material`.
    pub fn new(key_id: &str, version: u32, material: &KeyMaterial) -> Result<Self> {
        if !valid_key_id(key_id) {
            return Err(KeyError::InvalidKeyId);
        }
        let mut prefix = Vec::with_capacity(4 + 1 + key_id.len() + 4);
        prefix.extend_from_slice(ENC_MAGIC);
        prefix.push(key_id.len() as u8);
        prefix.extend_from_slice(key_id.as_bytes());
        prefix.extend_from_slice(&version.to_be_bytes());
        Ok(Self {
            key: aes_key(material)?,
            key_id: key_id.to_owned(),
            version,
            prefix,
        })
    }

    /// The id and version of this key.
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            key_id: self.key_id.clone(),
            version: self.version,
        }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Encrypts `plaintext` for the record named by `context`.
    ///
    /// Ciphertext = header (magic `"ENC1"`, key id, version, 96-bit random nonce) +
    /// AES-256-GCM(plaintext) + tag. The associated data is `header || context`, so the
    /// ciphertext opens only with the same context (e.g. `"secret:prj_x:sec_y:3"`).
    /// One allocation; the plaintext is encrypted in place in the output buffer.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        seal_parts(&self.key, &self.prefix, context, plaintext)
    }

    /// Decrypts a ciphertext made by [`DataKey::seal`] with the same key and context.
    ///
    /// Wrong context or altered bytes: `Corrupt("authentication failed")`; a header naming
    /// another key or version: `UnknownKey`; malformed: `Corrupt(..)`.
    pub fn open(&self, context: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let header_len = self.check_header(ciphertext)?;
        let (header, body) = ciphertext.split_at(header_len);
        open_parts(&self.key, header, context, body)
    }
}

impl DataKey {
    /// Decrypts in place, without allocating: `ciphertext` is overwritten and the plaintext
    /// is returned as a sub-slice of it (the bytes after the header). For bulk data (files,
    /// notebooks) where the caller owns the buffer and decides about zeroization; secrets
    /// should use [`DataKey::open`]. On any error the whole buffer is zeroed, so no
    /// unauthenticated plaintext is left in it. Errors as for [`DataKey::open`].
    pub fn open_in_place<'a>(
        &self,
        context: &[u8],
        ciphertext: &'a mut [u8],
    ) -> Result<&'a mut [u8]> {
        let header_len = match self.check_header(ciphertext) {
            Ok(n) => n,
            Err(e) => {
                ciphertext.fill(0);
                return Err(e);
            }
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ciphertext[header_len - NONCE_LEN..header_len]);
        let mut aad = Vec::with_capacity(header_len + context.len());
        aad.extend_from_slice(&ciphertext[..header_len]);
        aad.extend_from_slice(context);
        let opened = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut ciphertext[header_len..],
            )
            .map(|p| p.len())
            .ok();
        match opened {
            Some(n) => Ok(&mut ciphertext[header_len..header_len + n]),
            None => {
                ciphertext.fill(0);
                Err(KeyError::Corrupt("authentication failed"))
            }
        }
    }

    /// Parses the header and checks that it names this key; returns the header length.
    fn check_header(&self, ciphertext: &[u8]) -> Result<usize> {
        let h = parse_enc_header(ciphertext)?;
        if h.key_id.as_bytes() != self.key_id.as_bytes() || h.version != self.version {
            return Err(KeyError::UnknownKey {
                key_id: h.key_id.to_owned(),
                version: h.version,
            });
        }
        Ok(h.header_len)
    }
}

/// The data key named in a ciphertext's header (no decryption; the header is authenticated
/// only when the ciphertext is opened).
pub fn key_ref_of(ciphertext: &[u8]) -> Result<KeyRef> {
    let h = parse_enc_header(ciphertext)?;
    Ok(KeyRef {
        key_id: h.key_id.to_owned(),
        version: h.version,
    })
}

struct EncHeader<'a> {
    key_id: &'a str,
    version: u32,
    header_len: usize,
}

fn parse_enc_header(ct: &[u8]) -> Result<EncHeader<'_>> {
    let mut r = Reader::new(ct, "ciphertext: truncated header");
    r.magic(
        ENC_MAGIC,
        "ciphertext: not an Enclave ciphertext",
        "ciphertext: unsupported format version",
    )?;
    let key_id = r.id("ciphertext: invalid key id")?;
    let version = r.u32()?;
    r.take(NONCE_LEN)?;
    let header_len = r.pos;
    if ct.len() - header_len < TAG_LEN {
        return Err(KeyError::Corrupt("ciphertext: truncated"));
    }
    Ok(EncHeader {
        key_id,
        version,
        header_len,
    })
}

/// An AES-256-GCM key from key material.
pub(crate) fn aes_key(material: &KeyMaterial) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&AES_256_GCM, material.as_bytes())
        .map_err(|_| KeyError::Corrupt("key material rejected"))?;
    Ok(LessSafeKey::new(unbound))
}

/// `prefix | nonce | GCM(plaintext) | tag`, with associated data `prefix | nonce | context`.
/// One allocation of the final size; encryption happens in place.
pub(crate) fn seal_parts(
    key: &LessSafeKey,
    prefix: &[u8],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let header_len = prefix.len() + NONCE_LEN;
    let mut out = Vec::with_capacity(header_len + plaintext.len() + TAG_LEN);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&nonce);
    let mut aad = Vec::with_capacity(header_len + context.len());
    aad.extend_from_slice(&out);
    aad.extend_from_slice(context);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad[..]),
            &mut out[header_len..],
        )
        .map_err(|_| KeyError::Corrupt("encryption failed: input too large"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens `body` (`GCM(plaintext) | tag`) whose `header` ends with the nonce, with associated
/// data `header | context`.
pub(crate) fn open_parts(
    key: &LessSafeKey,
    header: &[u8],
    context: &[u8],
    body: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if header.len() < NONCE_LEN || body.len() < TAG_LEN {
        return Err(KeyError::Corrupt("ciphertext: truncated"));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&header[header.len() - NONCE_LEN..]);
    let mut aad = Vec::with_capacity(header.len() + context.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(context);
    let mut buf = Zeroizing::new(body.to_vec());
    let n = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad[..]),
            &mut buf[..],
        )
        .map_err(|_| KeyError::Corrupt("authentication failed"))?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// A bounds-checked cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
    short: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader that reports `Corrupt(short)` when input runs out.
    pub(crate) fn new(buf: &'a [u8], short: &'static str) -> Self {
        Self { buf, pos: 0, short }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(KeyError::Corrupt(self.short))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(KeyError::Corrupt(self.short))?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A 4-byte magic: the first three bytes name the format, the fourth its version.
    pub(crate) fn magic(
        &mut self,
        magic: &[u8; 4],
        foreign: &'static str,
        version: &'static str,
    ) -> Result<()> {
        let m = self.take(4)?;
        if m == magic {
            Ok(())
        } else if m[..3] == magic[..3] {
            Err(KeyError::Corrupt(version))
        } else {
            Err(KeyError::Corrupt(foreign))
        }
    }

    /// `len: u8 | id`, checked with [`valid_key_id`].
    pub(crate) fn id(&mut self, bad: &'static str) -> Result<&'a str> {
        let n = self.u8()? as usize;
        let raw = self.take(n)?;
        let id = std::str::from_utf8(raw).map_err(|_| KeyError::Corrupt(bad))?;
        if !valid_key_id(id) {
            return Err(KeyError::Corrupt(bad));
        }
        Ok(id)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn key(id: &str, version: u32) -> DataKey {
        DataKey::new(id, version, &KeyMaterial::from_bytes([7u8; 32])).unwrap()
    }

    fn auth_failed(r: Result<Zeroizing<Vec<u8>>>) -> bool {
        matches!(r, Err(KeyError::Corrupt("authentication failed")))
    }

    #[test]
    fn roundtrip_various_sizes() {
        let k = DataKey::new("project:prj_1", 3, &KeyMaterial::generate().unwrap()).unwrap();
        for n in [0usize, 1, 15, 16, 17, 1024, 1 << 20] {
            let pt: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let ct = k.seal(b"ctx", &pt).unwrap();
            assert_eq!(&ct[..4], b"ENC1");
            assert_eq!(ct.len(), 4 + 1 + 13 + 4 + 12 + n + 16);
            assert_eq!(ct.capacity(), ct.len(), "one exact allocation");
            assert_eq!(&k.open(b"ctx", &ct).unwrap()[..], &pt[..]);
        }
    }

    #[test]
    fn open_in_place_roundtrip_and_failure_zeroes() {
        let k = key("project:prj_x", 1);
        let ct = k.seal(b"ctx", b"bulk data").unwrap();
        let mut buf = ct.clone();
        assert_eq!(k.open_in_place(b"ctx", &mut buf).unwrap(), b"bulk data");
        let mut buf = ct.clone();
        assert!(matches!(
            k.open_in_place(b"other", &mut buf),
            Err(KeyError::Corrupt("authentication failed"))
        ));
        assert!(buf.iter().all(|b| *b == 0));
        let mut buf = ct.clone();
        assert!(matches!(
            key("project:prj_x", 2).open_in_place(b"ctx", &mut buf),
            Err(KeyError::UnknownKey { version: 1, .. })
        ));
        assert!(buf.iter().all(|b| *b == 0));
        for n in 0..ct.len() {
            let mut buf = ct[..n].to_vec();
            assert!(k.open_in_place(b"ctx", &mut buf).is_err());
        }
    }

    #[test]
    fn nonces_differ() {
        let k = key("platform", 1);
        assert_ne!(
            k.seal(b"c", b"same").unwrap(),
            k.seal(b"c", b"same").unwrap()
        );
    }

    #[test]
    fn wrong_context_fails() {
        let k = key("platform", 1);
        let ct = k.seal(b"secret:prj_x:sec_y:3", b"hunter2").unwrap();
        assert!(auth_failed(k.open(b"secret:prj_x:sec_y:4", &ct)));
        assert!(auth_failed(k.open(b"", &ct)));
    }

    #[test]
    fn swapped_ciphertexts_fail() {
        let k = key("project:prj_x", 1);
        let a = k.seal(b"secret:prj_x:sec_a:1", b"value a").unwrap();
        let b = k.seal(b"secret:prj_x:sec_b:1", b"value b").unwrap();
        assert!(auth_failed(k.open(b"secret:prj_x:sec_a:1", &b)));
        assert!(auth_failed(k.open(b"secret:prj_x:sec_b:1", &a)));
        assert_eq!(
            &k.open(b"secret:prj_x:sec_a:1", &a).unwrap()[..],
            b"value a"
        );
    }

    #[test]
    fn every_altered_byte_fails() {
        let k = key("project:prj_x", 2);
        let ct = k.seal(b"ctx", b"some secret value").unwrap();
        for i in 0..ct.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = ct.clone();
                bad[i] ^= flip;
                assert!(k.open(b"ctx", &bad).is_err(), "byte {i} flip {flip:#x}");
            }
        }
    }

    #[test]
    fn every_truncation_fails() {
        let k = key("project:prj_x", 2);
        let ct = k.seal(b"ctx", b"some secret value").unwrap();
        for n in 0..ct.len() {
            assert!(k.open(b"ctx", &ct[..n]).is_err(), "length {n}");
            let _ = key_ref_of(&ct[..n]);
        }
        let mut longer = ct.clone();
        longer.push(0);
        assert!(k.open(b"ctx", &longer).is_err());
    }

    #[test]
    fn unknown_key_ref() {
        let v1 = key("project:prj_x", 1);
        let v2 = key("project:prj_x", 2);
        let other = key("project:prj_y", 1);
        let ct = v1.seal(b"ctx", b"x").unwrap();
        assert_eq!(
            key_ref_of(&ct).unwrap(),
            KeyRef {
                key_id: "project:prj_x".into(),
                version: 1
            }
        );
        match v2.open(b"ctx", &ct) {
            Err(KeyError::UnknownKey { key_id, version }) => {
                assert_eq!((key_id.as_str(), version), ("project:prj_x", 1))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            other.open(b"ctx", &ct),
            Err(KeyError::UnknownKey { .. })
        ));
        // Same id and version, other material: authentication fails.
        let impostor =
            DataKey::new("project:prj_x", 1, &KeyMaterial::from_bytes([8u8; 32])).unwrap();
        assert!(auth_failed(impostor.open(b"ctx", &ct)));
    }

    #[test]
    fn malformed_headers() {
        assert!(matches!(key_ref_of(b""), Err(KeyError::Corrupt(_))));
        assert!(matches!(
            key_ref_of(b"NOPE\x01a\0\0\0\x01"),
            Err(KeyError::Corrupt("ciphertext: not an Enclave ciphertext"))
        ));
        let k = key("platform", 1);
        let mut ct = k.seal(b"", b"x").unwrap();
        ct[3] = b'2';
        assert!(matches!(
            key_ref_of(&ct),
            Err(KeyError::Corrupt("ciphertext: unsupported format version"))
        ));
        ct[3] = b'1';
        ct[4] = 0; // empty key id
        assert!(key_ref_of(&ct).is_err());
        ct[4] = 200; // longer than the input
        assert!(key_ref_of(&ct).is_err());
    }

    #[test]
    fn random_input_never_panics() {
        let k = key("platform", 1);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000usize {
            let n = round % 96;
            let mut buf = Vec::with_capacity(n);
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            if round % 3 == 0 && n >= 5 {
                buf[..4].copy_from_slice(b"ENC1");
                buf[4] = (x % 70) as u8;
            }
            let _ = key_ref_of(&buf);
            assert!(k.open(b"", &buf).is_err());
        }
    }

    #[test]
    fn key_ids_are_checked() {
        let m = KeyMaterial::from_bytes([1; 32]);
        assert!(matches!(
            DataKey::new("", 1, &m),
            Err(KeyError::InvalidKeyId)
        ));
        assert!(DataKey::new(&"a".repeat(64), 1, &m).is_ok());
        assert!(DataKey::new(&"a".repeat(65), 1, &m).is_err());
        assert!(DataKey::new("has space", 1, &m).is_err());
        assert!(DataKey::new("naïve", 1, &m).is_err());
    }

    #[test]
    fn debug_hides_material() {
        let m = KeyMaterial::from_bytes([0xab; 32]);
        assert_eq!(format!("{m:?}"), "KeyMaterial(..)");
        let k = DataKey::new("platform", 4, &m).unwrap();
        let d = format!("{k:?}");
        assert!(d.contains("platform") && !d.contains("171") && !d.contains("ab"));
        assert_eq!(k.key_ref().to_string(), "platform v4");
    }
}
