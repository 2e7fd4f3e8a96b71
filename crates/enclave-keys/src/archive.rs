//! Encrypted backup archives (`EBK1`): files of a data directory, encrypted in chunks under a
//! fresh archive key that the master key wraps.
//!
//! ```text
//! header: "EBK1" | id_len: u8 | archive_id | created_at: i64 (Unix seconds) | chunk_size: u32
//!         | wrapped_len: u16 | wrapped archive key ("EKW1", context "backup:<archive_id>")
//! chunks: final: u8 (0 = more follow, 1 = last) | len: u32 | AES-256-GCM(plaintext) | tag
//! ```
//!
//! The archive key is 256 random bits, used for this archive only; chunk `i` uses the nonce
//! `0u32 || i: u64` (unique under a fresh key) and the associated data
//! `header || "chunk" || i: u64 || final: u8`. So a chunk opens only in its own archive (the
//! header names the archive id and the wrapped key), at its own position, with its own
//! final flag: altering, reordering, dropping or swapping chunks, cutting the archive short
//! (no final chunk) or appending to it are all detected. Without the master key that wrapped
//! the archive key nothing decrypts.
//!
//! The plaintext stream (cut into chunks of at most `chunk_size` bytes) is a list of files,
//! each `name_len: u8 | name | len: u64 | content`, ended by a `0` name length. Names are
//! plain file names (see [`valid_archive_name`]); the end marker lies in the final chunk, and
//! nothing may follow it.

use crate::envelope::{aes_key, Reader, TAG_LEN};
use crate::{valid_key_id, KeyError, KeyMaterial, MasterKeys, Result};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, NONCE_LEN};
use std::io::{Read, Write};

/// Magic of a backup archive (format version 1).
const ARCHIVE_MAGIC: &[u8; 4] = b"EBK1";
/// Plaintext bytes per chunk written by [`ArchiveWriter`].
pub const ARCHIVE_CHUNK: usize = 1024 * 1024;
/// Largest chunk size a reader accepts (bounds memory for altered headers).
const MAX_CHUNK: u32 = 16 * 1024 * 1024;
/// Longest wrapped key accepted in a header.
const MAX_WRAPPED: usize = 1024;
/// Longest file name in an archive.
const MAX_NAME: usize = 128;

/// The context binding an archive's wrapped key to its archive id.
fn wrap_context(archive_id: &str) -> Vec<u8> {
    format!("backup:{archive_id}").into_bytes()
}

/// Whether `name` may name a file in an archive: 1 to 128 bytes of ASCII letters, digits,
/// `.`, `_` or `-`, not starting with `.` (so never a path, `.` or `..`).
pub fn valid_archive_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What an archive's header says (readable without the master key; authenticated only once
/// the chunks open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// The archive id chosen by the writer, e.g. `bkp_…`.
    pub archive_id: String,
    /// When it was written (Unix seconds, the writer's clock).
    pub created_at: i64,
    /// The master key that wrapped the archive key.
    pub master_key_id: String,
}

/// One file found in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedFile {
    /// Its name.
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
}

fn chunk_nonce(index: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn chunk_aad(header: &[u8], index: u64, last: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 14);
    aad.extend_from_slice(header);
    aad.extend_from_slice(b"chunk");
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

/// Writes an archive: [`ArchiveWriter::new`], [`ArchiveWriter::add_file`] for each file,
/// [`ArchiveWriter::finish`].
pub struct ArchiveWriter<W: Write> {
    out: W,
    key: LessSafeKey,
    header: Vec<u8>,
    /// Plaintext not yet sealed (less than one chunk).
    buf: Vec<u8>,
    index: u64,
    written: u64,
    names: Vec<String>,
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("chunks", &self.index)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive named `archive_id` (a valid key id, e.g. `bkp_…`): draws a fresh
    /// archive key, wraps it with `master`'s current key and writes the header to `out`.
    pub fn new(
        master: &dyn MasterKeys,
        archive_id: &str,
        created_at: i64,
        mut out: W,
    ) -> Result<Self> {
        if !valid_key_id(archive_id) {
            return Err(KeyError::InvalidKeyId);
        }
        let material = KeyMaterial::generate()?;
        let wrapped = master.wrap(&material, &wrap_context(archive_id))?;
        let wrapped_len =
            u16::try_from(wrapped.len()).map_err(|_| KeyError::Corrupt("wrapped key too long"))?;
        let mut header = Vec::with_capacity(64 + wrapped.len());
        header.extend_from_slice(ARCHIVE_MAGIC);
        header.push(archive_id.len() as u8);
        header.extend_from_slice(archive_id.as_bytes());
        header.extend_from_slice(&created_at.to_be_bytes());
        header.extend_from_slice(&(ARCHIVE_CHUNK as u32).to_be_bytes());
        header.extend_from_slice(&wrapped_len.to_be_bytes());
        header.extend_from_slice(&wrapped);
        out.write_all(&header)?;
        Ok(Self {
            out,
            key: aes_key(&material)?,
            written: header.len() as u64,
            header,
            buf: Vec::with_capacity(ARCHIVE_CHUNK + TAG_LEN),
            index: 0,
            names: Vec::new(),
        })
    }

    /// Adds a file of exactly `len` bytes read from `content` (fewer bytes: an error; more
    /// are not read). Names must be valid ([`valid_archive_name`]) and distinct.
    pub fn add_file(&mut self, name: &str, len: u64, content: &mut dyn Read) -> Result<()> {
        if !valid_archive_name(name) || self.names.iter().any(|n| n == name) {
            return Err(KeyError::Corrupt(
                "backup archive: invalid or repeated file name",
            ));
        }
        self.names.push(name.to_owned());
        self.push(&[name.len() as u8])?;
        self.push(name.as_bytes())?;
        self.push(&len.to_be_bytes())?;
        let mut left = len;
        while left > 0 {
            let room = ARCHIVE_CHUNK - self.buf.len();
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(room);
            let start = self.buf.len();
            self.buf.resize(start + want, 0);
            let n = match content.read(&mut self.buf[start..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(e.into());
                }
            };
            self.buf.truncate(start + n);
            if n == 0 && want > 0 {
                return Err(KeyError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{name}: shorter than announced while being archived"),
                )));
            }
            left -= n as u64;
            if self.buf.len() == ARCHIVE_CHUNK {
                self.seal_chunk(false)?;
            }
        }
        Ok(())
    }

    /// Writes the end marker and the final chunk, flushes, and returns the output with the
    /// archive's total length in bytes.
    pub fn finish(mut self) -> Result<(W, u64)> {
        self.push(&[0])?;
        self.seal_chunk(true)?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }

    /// Appends plaintext, sealing every full chunk (never the last: `finish` always adds
    /// the end marker after it).
    fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let n = (ARCHIVE_CHUNK - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == ARCHIVE_CHUNK {
                self.seal_chunk(false)?;
            }
        }
        Ok(())
    }

    fn seal_chunk(&mut self, last: bool) -> Result<()> {
        let aad = chunk_aad(&self.header, self.index, last);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                chunk_nonce(self.index),
                Aad::from(&aad[..]),
                &mut self.buf[..],
            )
            .map_err(|_| KeyError::Corrupt("encryption failed"))?;
        let len = (self.buf.len() + TAG_LEN) as u32;
        self.out.write_all(&[u8::from(last)])?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&self.buf)?;
        self.out.write_all(tag.as_ref())?;
        self.written += 5 + u64::from(len);
        self.index += 1;
        self.buf.clear();
        Ok(())
    }
}

/// Reads an archive: [`ArchiveReader::new`] parses the header, [`ArchiveReader::unlock`]
/// unwraps the archive key with the master key, [`ArchiveReader::extract`] decrypts and
/// verifies every chunk.
pub struct ArchiveReader<R: Read> {
    input: R,
    info: ArchiveInfo,
    header: Vec<u8>,
    wrapped: Vec<u8>,
    chunk_size: u32,
    key: Option<LessSafeKey>,
    index: u64,
    /// The current chunk's plaintext and how much of it was consumed.
    plain: Vec<u8>,
    pos: usize,
    seen_last: bool,
}

impl<R: Read> std::fmt::Debug for ArchiveReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveReader")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end of input before the first
/// byte, `Corrupt(short)` at an end after it.
fn read_full(input: &mut dyn Read, buf: &mut [u8], short: &'static str) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(KeyError::Corrupt(short)),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

const TRUNCATED: &str = "backup archive: truncated (the final chunk is missing)";

impl<R: Read> ArchiveReader<R> {
    /// Reads and checks the header (no key needed).
    pub fn new(mut input: R) -> Result<Self> {
        const SHORT: &str = "backup archive: truncated header";
        let mut fixed = [0u8; 5];
        if !read_full(&mut input, &mut fixed, SHORT)? {
            return Err(KeyError::Corrupt(SHORT));
        }
        let mut r = Reader::new(&fixed, SHORT);
        r.magic(
            ARCHIVE_MAGIC,
            "not an Enclave backup archive",
            "backup archive: unsupported format version (made by a newer Enclave?)",
        )?;
        let id_len = r.u8()? as usize;
        let mut rest = vec![0u8; id_len + 8 + 4 + 2];
        if !read_full(&mut input, &mut rest, SHORT)? {
            return Err(KeyError::Corrupt(SHORT));
        }
        let mut header = fixed.to_vec();
        header.extend_from_slice(&rest);
        let mut r = Reader::new(&header, SHORT);
        r.take(4)?;
        let archive_id = r.id("backup archive: invalid archive id")?.to_owned();
        let t = r.take(8)?;
        let created_at = i64::from_be_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
        let chunk_size = r.u32()?;
        let w = r.take(2)?;
        let wrapped_len = usize::from(u16::from_be_bytes([w[0], w[1]]));
        if chunk_size == 0 || chunk_size > MAX_CHUNK || wrapped_len > MAX_WRAPPED {
            return Err(KeyError::Corrupt("backup archive: header out of range"));
        }
        let mut wrapped = vec![0u8; wrapped_len];
        if !read_full(&mut input, &mut wrapped, SHORT)? {
            return Err(KeyError::Corrupt(SHORT));
        }
        header.extend_from_slice(&wrapped);
        let master_key_id = wrapped_master_id(&wrapped)?;
        Ok(Self {
            input,
            info: ArchiveInfo {
                archive_id,
                created_at,
                master_key_id,
            },
            header,
            wrapped,
            chunk_size,
            key: None,
            index: 0,
            plain: Vec::new(),
            pos: 0,
            seen_last: false,
        })
    }

    /// What the header says.
    pub fn info(&self) -> &ArchiveInfo {
        &self.info
    }

    /// Unwraps the archive key with `master`. A master key not held there:
    /// `WrongMasterKey` (or `UnknownKey` if it was retired); altered: `Corrupt`.
    pub fn unlock(&mut self, master: &dyn MasterKeys) -> Result<()> {
        let material = master.unwrap(&self.wrapped, &wrap_context(&self.info.archive_id))?;
        self.key = Some(aes_key(&material)?);
        Ok(())
    }

    /// Decrypts and verifies the whole archive, handing each file's content to the writer
    /// that `open(name, len)` returns. Returns the files in archive order. Any alteration,
    /// truncation or trailing data is an error — possibly after some files were handed out,
    /// so callers write into a temporary place and keep it only on `Ok`.
    pub fn extract<F, W>(mut self, mut open: F) -> Result<Vec<ArchivedFile>>
    where
        F: FnMut(&str, u64) -> std::io::Result<W>,
        W: Write,
    {
        if self.key.is_none() {
            return Err(KeyError::Sealed);
        }
        let mut files: Vec<ArchivedFile> = Vec::new();
        loop {
            let mut n = [0u8; 1];
            self.read_plain(&mut n)?;
            let name_len = usize::from(n[0]);
            if name_len == 0 {
                break;
            }
            let mut name = vec![0u8; name_len];
            self.read_plain(&mut name)?;
            let name = String::from_utf8(name)
                .ok()
                .filter(|s| valid_archive_name(s) && !files.iter().any(|f| &f.name == s))
                .ok_or(KeyError::Corrupt(
                    "backup archive: invalid or repeated file name",
                ))?;
            let mut l = [0u8; 8];
            self.read_plain(&mut l)?;
            let len = u64::from_be_bytes(l);
            let mut out = open(&name, len)?;
            let mut left = len;
            while left > 0 {
                if self.pos == self.plain.len() {
                    self.next_chunk()?;
                }
                let avail = self.plain.len() - self.pos;
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(avail);
                out.write_all(&self.plain[self.pos..self.pos + n])?;
                self.pos += n;
                left -= n as u64;
            }
            out.flush()?;
            files.push(ArchivedFile { name, len });
        }
        if !self.seen_last || self.pos != self.plain.len() {
            return Err(KeyError::Corrupt(
                "backup archive: data after the end marker",
            ));
        }
        let mut extra = [0u8; 1];
        if read_full(&mut self.input, &mut extra, TRUNCATED)? {
            return Err(KeyError::Corrupt(
                "backup archive: unexpected data after the final chunk",
            ));
        }
        Ok(files)
    }

    /// Fills `buf` from the plaintext stream, opening chunks as needed.
    fn read_plain(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            if self.pos == self.plain.len() {
                self.next_chunk()?;
            }
            let n = (self.plain.len() - self.pos).min(buf.len() - got);
            buf[got..got + n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
            self.pos += n;
            got += n;
        }
        Ok(())
    }

    /// Reads, authenticates and decrypts the next chunk.
    fn next_chunk(&mut self) -> Result<()> {
        if self.seen_last {
            return Err(KeyError::Corrupt(
                "backup archive: the final chunk ends inside a file",
            ));
        }
        let key = self.key.as_ref().ok_or(KeyError::Sealed)?;
        let mut frame = [0u8; 5];
        if !read_full(&mut self.input, &mut frame, TRUNCATED)? {
            return Err(KeyError::Corrupt(TRUNCATED));
        }
        let last = match frame[0] {
            0 => false,
            1 => true,
            _ => return Err(KeyError::Corrupt("backup archive: bad chunk flag")),
        };
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
        if (len as usize) < TAG_LEN || len > self.chunk_size.saturating_add(TAG_LEN as u32) {
            return Err(KeyError::Corrupt("backup archive: bad chunk length"));
        }
        self.plain.resize(len as usize, 0);
        if !read_full(&mut self.input, &mut self.plain, TRUNCATED)? {
            return Err(KeyError::Corrupt(TRUNCATED));
        }
        let aad = chunk_aad(&self.header, self.index, last);
        let n = key
            .open_in_place(
                chunk_nonce(self.index),
                Aad::from(&aad[..]),
                &mut self.plain[..],
            )
            .map_err(|_| {
                KeyError::Corrupt(
                    "backup archive: a chunk failed authentication (altered, reordered or from another archive)",
                )
            })?
            .len();
        self.plain.truncate(n);
        self.pos = 0;
        self.index += 1;
        self.seen_last = last;
        Ok(())
    }
}

/// The master key id named in a wrapped key (`"EKW1" | id_len | id | …`).
fn wrapped_master_id(wrapped: &[u8]) -> Result<String> {
    let mut r = Reader::new(wrapped, "backup archive: truncated wrapped key");
    r.magic(
        b"EKW1",
        "backup archive: not a wrapped key",
        "backup archive: unsupported wrapped key version",
    )?;
    Ok(r.id("backup archive: invalid master key id")?.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::FileMasterKeys;

    fn master(dir: &tempfile::TempDir) -> FileMasterKeys {
        FileMasterKeys::open_or_create_local(&dir.path().join("master.key")).unwrap()
    }

    fn build(m: &dyn MasterKeys, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = ArchiveWriter::new(m, "bkp_test", 1_700_000_000, Vec::new()).unwrap();
        for (name, content) in files {
            w.add_file(name, content.len() as u64, &mut &content[..])
                .unwrap();
        }
        let (out, len) = w.finish().unwrap();
        assert_eq!(out.len() as u64, len);
        out
    }

    fn extract(m: &dyn MasterKeys, bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
        let mut r = ArchiveReader::new(bytes)?;
        r.unlock(m)?;
        let got = std::cell::RefCell::new(Vec::new());
        let files = r.extract(|name, _| {
            got.borrow_mut().push((name.to_string(), Vec::new()));
            Ok(Sink(&got))
        })?;
        let got = got.into_inner();
        assert_eq!(files.len(), got.len());
        for (f, (n, c)) in files.iter().zip(&got) {
            assert_eq!(&f.name, n);
            assert_eq!(f.len, c.len() as u64);
        }
        Ok(got)
    }

    struct Sink<'a>(&'a std::cell::RefCell<Vec<(String, Vec<u8>)>>);
    impl Write for Sink<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .borrow_mut()
                .last_mut()
                .unwrap()
                .1
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn big() -> Vec<u8> {
        (0..(2 * ARCHIVE_CHUNK + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect()
    }

    #[test]
    fn round_trip_small_empty_and_multi_chunk_files() {
        let d = tempfile::tempdir().unwrap();
        let m = master(&d);
        let files = vec![
            ("enclave.db", big()),
            ("empty", Vec::new()),
            ("audit-signing.key", b"opaque".to_vec()),
        ];
        let bytes = build(&m, &files);
        let info = ArchiveReader::new(&bytes[..]).unwrap().info().clone();
        assert_eq!(info.archive_id, "bkp_test");
        assert_eq!(info.created_at, 1_700_000_000);
        assert_eq!(info.master_key_id, m.current_id().unwrap());
        let got = extract(&m, &bytes).unwrap();
        let want: Vec<(String, Vec<u8>)> =
            files.into_iter().map(|(n, c)| (n.to_string(), c)).collect();
        assert_eq!(got, want);
        // Exactly one chunk boundary case: a file filling the first chunk to the byte.
        let exact = vec![9u8; ARCHIVE_CHUNK - 1 - 2 - 8];
        let bytes = build(&m, &[("ab", exact.clone())]);
        assert_eq!(extract(&m, &bytes).unwrap()[0].1, exact);
        // Content never appears in the clear.
        let marker = b"plaintext-marker-4711".to_vec();
        let bytes = build(&m, &[("x", marker.clone())]);
        assert!(!bytes.windows(marker.len()).any(|w| w == &marker[..]));
    }

    #[test]
    fn wrong_master_key_opens_nothing() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bytes = build(&master(&d1), &[("a", b"hello".to_vec())]);
        let mut r = ArchiveReader::new(&bytes[..]).unwrap();
        assert!(matches!(
            r.unlock(&master(&d2)),
            Err(KeyError::WrongMasterKey)
        ));
        assert!(matches!(
            r.extract(|_, _| Ok(Vec::new())),
            Err(KeyError::Sealed)
        ));
    }

    #[test]
    fn truncation_alteration_reordering_and_trailing_data_are_detected() {
        let d = tempfile::tempdir().unwrap();
        let m = master(&d);
        let bytes = build(&m, &[("enclave.db", big()), ("k", b"key".to_vec())]);
        // Cut anywhere: header, chunk frame, inside a chunk, whole final chunk dropped.
        for cut in [3, 30, bytes.len() / 2, bytes.len() - 1] {
            assert!(extract(&m, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Flip one byte anywhere (header, ciphertext, tag).
        for at in [10, 40, 200, bytes.len() / 3, bytes.len() - 3] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            assert!(extract(&m, &b).is_err(), "flip at {at}");
        }
        // Trailing bytes.
        let mut b = bytes.clone();
        b.push(0);
        assert!(matches!(extract(&m, &b), Err(KeyError::Corrupt(_))));
        // Parse the chunks, then reorder, drop the last one, or mark a middle one final.
        let header_len = {
            let r = ArchiveReader::new(&bytes[..]).unwrap();
            r.header.len()
        };
        let mut chunks = Vec::new();
        let mut p = header_len;
        while p < bytes.len() {
            let len = u32::from_be_bytes(bytes[p + 1..p + 5].try_into().unwrap()) as usize;
            chunks.push(bytes[p..p + 5 + len].to_vec());
            p += 5 + len;
        }
        assert_eq!(chunks.len(), 3);
        let join = |cs: &[Vec<u8>]| {
            let mut v = bytes[..header_len].to_vec();
            for c in cs {
                v.extend_from_slice(c);
            }
            v
        };
        let swapped = [chunks[1].clone(), chunks[0].clone(), chunks[2].clone()];
        assert!(extract(&m, &join(&swapped)).is_err());
        assert!(matches!(
            extract(&m, &join(&chunks[..2])),
            Err(KeyError::Corrupt(TRUNCATED))
        ));
        let mut early = chunks[..2].to_vec();
        early[1][0] = 1;
        assert!(extract(&m, &join(&early)).is_err());
        // A chunk from another archive under the same master key does not open here.
        let other = build(&m, &[("enclave.db", big()), ("k", b"key".to_vec())]);
        let mut mixed = other[..header_len].to_vec();
        mixed.extend_from_slice(&chunks[0]);
        mixed.extend_from_slice(&other[header_len + chunks[0].len()..]);
        assert!(extract(&m, &mixed).is_err());
    }

    #[test]
    fn bad_names_and_short_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let m = master(&d);
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(!valid_archive_name(bad), "{bad}");
        }
        assert!(valid_archive_name("audit-signing.key"));
        let mut w = ArchiveWriter::new(&m, "bkp_x", 0, Vec::new()).unwrap();
        assert!(w.add_file("../x", 0, &mut &b""[..]).is_err());
        assert!(w.add_file("a", 10, &mut &b"short"[..]).is_err());
        assert!(ArchiveReader::new(&b"EBK2xxxxxxxxxxxxxxxxxxxxxxxx"[..]).is_err());
        assert!(ArchiveReader::new(&b"nope"[..]).is_err());
    }
}
