//! Master keys (key-encryption keys): the provider trait and the file-backed provider.

use crate::envelope::{aes_key, open_parts, seal_parts, Reader, TAG_LEN};
use crate::{random, valid_key_id, KeyError, KeyMaterial, Result};
use aws_lc_rs::aead::NONCE_LEN;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use zeroize::Zeroizing;

/// Magic of a wrapped data key (format version 1).
const WRAP_MAGIC: &[u8; 4] = b"EKW1";
/// Magic of a sealed key ring (format version 1).
const SEALED_MAGIC: &[u8; 4] = b"EKS1";
/// First significant line of a key ring.
const RING_HEADER: &str = "enclave-keyring v1";
/// KDF identifier in a sealed file: argon2id, version 0x13.
const KDF_ARGON2ID: u8 = 1;
/// Salt length written in new sealed files.
const SALT_LEN: usize = 16;
/// Shortest accepted passphrase for a new sealed file, in bytes.
pub(crate) const MIN_PASSPHRASE: usize = 12;
/// Upper bounds on argon2 parameters read from a file (an altered file must not make the
/// server allocate without limit).
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 64;

/// Master keys (key-encryption keys) that wrap data keys.
///
/// The trait is the seam for external key services (HashiCorp Vault transit, a cloud KMS):
/// they implement `wrap`/`unwrap` remotely. `rotate` and `retire_others` may block (callers run
/// them on a blocking thread); `wrap` and `unwrap` are called inline, only when a data key is
/// created, first used (the application caches unwrapped data keys) or rewrapped, so a remote
/// implementation must bound them with a short timeout.
pub trait MasterKeys: Send + Sync + 'static {
    /// The provider kind: `"file"`, `"passphrase"`, later `"vault-transit"`, ….
    fn kind(&self) -> &'static str;
    /// The id of the master key that `wrap` uses. `Err(Sealed)` while sealed.
    fn current_id(&self) -> Result<String>;
    /// Whether the provider waits for `unseal`.
    fn is_sealed(&self) -> bool;
    /// Wraps a data key under the current master key, binding `context` as associated data.
    /// The output names the master key id (header `"EKW1"` + id + nonce, then GCM).
    fn wrap(&self, dek: &KeyMaterial, context: &[u8]) -> Result<Vec<u8>>;
    /// Unwraps with whichever held master key (current or older) the blob names.
    /// A retired master key: `UnknownKey`; a master key never held here: `WrongMasterKey`;
    /// wrong context or altered bytes: `Corrupt("authentication failed")`.
    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<KeyMaterial>;
    /// The master key id named in a wrapped blob (works while sealed).
    fn wrapped_with(&self, wrapped: &[u8]) -> Result<String>;
    /// Makes a new master key current, persisted durably before returning its id. Older keys
    /// stay available to `unwrap`.
    fn rotate(&self) -> Result<String>;
    /// Drops every master key but the current one (the caller has rewrapped everything
    /// under it), persisted; returns the ids dropped.
    fn retire_others(&self) -> Result<Vec<String>>;
    /// The held master key ids, oldest first (the current one last unless noted otherwise
    /// by the provider). `Err(Sealed)` while sealed.
    fn ids(&self) -> Result<Vec<String>>;
}

/// Argon2id parameters for a passphrase-sealed key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl Default for SealParams {
    /// argon2id with 64 MiB, 3 iterations, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl SealParams {
    /// Cheap parameters for tests only: 8 MiB, 1 iteration, 1 lane.
    pub fn fast_for_tests() -> Self {
        Self {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn in_bounds(&self) -> bool {
        (1..=MAX_MEMORY_KIB).contains(&self.memory_kib)
            && (1..=MAX_ITERATIONS).contains(&self.iterations)
            && (1..=MAX_PARALLELISM).contains(&self.parallelism)
            && self.memory_kib >= 8 * self.parallelism
    }

    /// The 256-bit sealing key for `passphrase` and `salt`.
    fn derive(&self, passphrase: &[u8], salt: &[u8]) -> Result<KeyMaterial> {
        if !self.in_bounds() {
            return Err(KeyError::Corrupt("argon2 parameters out of range"));
        }
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|_| KeyError::Corrupt("argon2 parameters out of range"))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        a.hash_password_into(passphrase, salt, &mut out[..])
            .map_err(|_| KeyError::Corrupt("argon2 rejected the salt or passphrase"))?;
        KeyMaterial::from_slice(&out[..], "argon2 output")
    }
}

/// The ring of master keys: held keys (oldest first), the current one, retired ids.
#[derive(Clone)]
struct Ring {
    keys: Vec<(String, KeyMaterial)>,
    current: String,
    retired: Vec<String>,
}

impl Ring {
    fn new() -> Result<Self> {
        let id = new_master_id()?;
        Ok(Self {
            keys: vec![(id.clone(), KeyMaterial::generate()?)],
            current: id,
            retired: Vec::new(),
        })
    }

    fn get(&self, id: &str) -> Option<&KeyMaterial> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, m)| m)
    }

    fn current(&self) -> Result<&KeyMaterial> {
        self.get(&self.current)
            .ok_or(KeyError::Corrupt("key ring: current key missing"))
    }

    fn to_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(128 + 80 * self.keys.len()));
        s.push_str(
            "# Enclave master keys. Secret: with this file the platform's data can be decrypted.\n\
             # Back it up separately from the data directory. Mode must stay 0600.\n",
        );
        s.push_str(RING_HEADER);
        s.push('\n');
        s.push_str("current ");
        s.push_str(&self.current);
        s.push('\n');
        for (id, m) in &self.keys {
            let b = Zeroizing::new(B64.encode(m.as_bytes()));
            s.push_str("key ");
            s.push_str(id);
            s.push(' ');
            s.push_str(&b);
            s.push('\n');
        }
        for id in &self.retired {
            s.push_str("retired ");
            s.push_str(id);
            s.push('\n');
        }
        s
    }

    fn parse(bytes: &[u8]) -> Result<Self> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| KeyError::Corrupt("key ring: not UTF-8"))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(RING_HEADER) {
            return Err(KeyError::Corrupt(
                "key ring: missing or unsupported header line",
            ));
        }
        let mut keys: Vec<(String, KeyMaterial)> = Vec::new();
        let mut current = None;
        let mut retired = Vec::new();
        for line in lines {
            let mut f = line.split_ascii_whitespace();
            let (kind, id) = (f.next(), f.next());
            let id = match id {
                Some(id) if valid_key_id(id) => id.to_owned(),
                _ => return Err(KeyError::Corrupt("key ring: bad key id")),
            };
            match kind {
                Some("current") if current.is_none() => current = Some(id),
                Some("key") => {
                    let b64 = f
                        .next()
                        .ok_or(KeyError::Corrupt("key ring: key without material"))?;
                    let raw =
                        Zeroizing::new(B64.decode(b64).map_err(|_| {
                            KeyError::Corrupt("key ring: key material is not base64")
                        })?);
                    let m =
                        KeyMaterial::from_slice(&raw, "key ring: key material is not 32 bytes")?;
                    if keys.iter().any(|(k, _)| *k == id) {
                        return Err(KeyError::Corrupt("key ring: duplicate key id"));
                    }
                    keys.push((id, m));
                }
                Some("retired") => retired.push(id),
                _ => return Err(KeyError::Corrupt("key ring: unknown line")),
            }
            if f.next().is_some() {
                return Err(KeyError::Corrupt("key ring: trailing fields"));
            }
        }
        let current = current.ok_or(KeyError::Corrupt("key ring: no current key"))?;
        let ring = Self {
            keys,
            current,
            retired,
        };
        ring.current()?;
        Ok(ring)
    }
}

/// `mk_` and 16 random hex digits.
fn new_master_id() -> Result<String> {
    let mut b = [0u8; 8];
    random(&mut b)?;
    let mut s = String::with_capacity(19);
    s.push_str("mk_");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    Ok(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Local,
    Passphrase,
}

/// What a passphrase-mode provider keeps after unseal so it can rewrite its file.
struct Sealing {
    key: KeyMaterial,
    salt: Vec<u8>,
    params: SealParams,
}

struct State {
    ring: Option<Ring>,
    sealing: Option<Sealing>,
}

/// The master keys in one file in the data directory. Two modes:
///
/// * local (`kind() == "file"`): [`FileMasterKeys::LOCAL_FILE`], created with mode 0600 on
///   first start; refused if group or others have any access to it. Plain key ring.
/// * passphrase (`kind() == "passphrase"`): [`FileMasterKeys::SEALED_FILE`], the same key
///   ring encrypted with AES-256-GCM under an argon2id key derived from a passphrase (salt
///   and parameters in the file header). Starts sealed until [`FileMasterKeys::unseal`].
///
/// Paths name the file; a path that is an existing directory means the standard file name
/// inside it. Writes are atomic and durable (temporary file 0600 in the same directory,
/// fsync, rename, fsync of the directory). One process should own the file.
pub struct FileMasterKeys {
    path: PathBuf,
    mode: Mode,
    state: RwLock<State>,
    /// Serializes rotate/retire/unseal so that file writes do not race.
    writer: Mutex<()>,
}

impl std::fmt::Debug for FileMasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMasterKeys")
            .field("path", &self.path)
            .field("kind", &self.kind())
            .field("sealed", &self.is_sealed())
            .finish_non_exhaustive()
    }
}

impl FileMasterKeys {
    /// File name of the local (plain) key ring in the data directory.
    pub const LOCAL_FILE: &'static str = "master.key";
    /// File name of the passphrase-sealed key ring in the data directory.
    pub const SEALED_FILE: &'static str = "master.sealed";

    /// Opens the local key file, creating it (mode 0600, one fresh master key) if it does not
    /// exist. Refuses a file that group or others can access (`InsecurePermissions`).
    pub fn open_or_create_local(path: &Path) -> Result<Self> {
        let path = resolve(path, Self::LOCAL_FILE);
        let ring = match std::fs::symlink_metadata(&path) {
            Ok(_) => {
                check_private(&path)?;
                let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| io_err(&path, e))?);
                check_private(&path)?;
                Ring::parse(&bytes)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Ring::new()?;
                write_atomic(&path, ring.to_text().as_bytes(), true)?;
                ring
            }
            Err(e) => return Err(io_err(&path, e)),
        };
        Ok(Self::with(path, Mode::Local, Some(ring), None))
    }

    /// Creates a passphrase-sealed key file with one fresh master key and returns it
    /// unsealed. Refuses to overwrite an existing file; the passphrase must have at least 12
    /// bytes (`WeakPassphrase`).
    pub fn create_sealed(path: &Path, passphrase: &[u8], params: SealParams) -> Result<Self> {
        let path = resolve(path, Self::SEALED_FILE);
        if passphrase.len() < MIN_PASSPHRASE {
            return Err(KeyError::WeakPassphrase {
                min: MIN_PASSPHRASE,
            });
        }
        if !params.in_bounds() {
            return Err(KeyError::Corrupt("argon2 parameters out of range"));
        }
        let mut salt = vec![0u8; SALT_LEN];
        random(&mut salt)?;
        let key = params.derive(passphrase, &salt)?;
        let sealing = Sealing { key, salt, params };
        let ring = Ring::new()?;
        let bytes = seal_ring(&ring, &sealing)?;
        write_atomic(&path, &bytes, true)?;
        Ok(Self::with(
            path,
            Mode::Passphrase,
            Some(ring),
            Some(sealing),
        ))
    }

    /// Opens a passphrase-sealed key file: checks its header only; the result is sealed.
    pub fn open_sealed(path: &Path) -> Result<Self> {
        let path = resolve(path, Self::SEALED_FILE);
        let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        parse_sealed(&bytes)?;
        Ok(Self::with(path, Mode::Passphrase, None, None))
    }

    /// Unseals with the passphrase: derives the sealing key from the file's salt and
    /// parameters and decrypts the key ring. Wrong passphrase: `WrongPassphrase`. Unsealing an
    /// unsealed provider checks the passphrase again and changes nothing.
    pub fn unseal(&self, passphrase: &[u8]) -> Result<()> {
        if self.mode != Mode::Passphrase {
            return Ok(());
        }
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = std::fs::read(&self.path).map_err(|e| io_err(&self.path, e))?;
        let f = parse_sealed(&bytes)?;
        let key = f.params.derive(passphrase, f.salt)?;
        let text = open_parts(&aes_key(&key)?, f.header, b"", f.body)
            .map_err(|_| KeyError::WrongPassphrase)?;
        let ring = Ring::parse(&text)?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.ring = Some(ring);
        st.sealing = Some(Sealing {
            key,
            salt: f.salt.to_vec(),
            params: f.params,
        });
        Ok(())
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with(path: PathBuf, mode: Mode, ring: Option<Ring>, sealing: Option<Sealing>) -> Self {
        Self {
            path,
            mode,
            state: RwLock::new(State { ring, sealing }),
            writer: Mutex::new(()),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Ring) -> Result<T>) -> Result<T> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        match &st.ring {
            Some(r) => f(r),
            None => Err(KeyError::Sealed),
        }
    }

    /// Applies `change` to a copy of the ring, persists it, then makes it live.
    fn update<T>(&self, change: impl FnOnce(&mut Ring) -> Result<T>) -> Result<T> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut ring = {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            st.ring.clone().ok_or(KeyError::Sealed)?
        };
        let out = change(&mut ring)?;
        {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            match self.mode {
                Mode::Local => write_atomic(&self.path, ring.to_text().as_bytes(), false)?,
                Mode::Passphrase => {
                    let sealing = st.sealing.as_ref().ok_or(KeyError::Sealed)?;
                    write_atomic(&self.path, &seal_ring(&ring, sealing)?, false)?
                }
            }
        }
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.ring = Some(ring);
        Ok(out)
    }
}

impl MasterKeys for FileMasterKeys {
    fn kind(&self) -> &'static str {
        match self.mode {
            Mode::Local => "file",
            Mode::Passphrase => "passphrase",
        }
    }

    fn current_id(&self) -> Result<String> {
        self.read(|r| Ok(r.current.clone()))
    }

    fn is_sealed(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .ring
            .is_none()
    }

    fn wrap(&self, dek: &KeyMaterial, context: &[u8]) -> Result<Vec<u8>> {
        self.read(|r| {
            let key = aes_key(r.current()?)?;
            let mut prefix = Vec::with_capacity(5 + r.current.len());
            prefix.extend_from_slice(WRAP_MAGIC);
            prefix.push(r.current.len() as u8);
            prefix.extend_from_slice(r.current.as_bytes());
            seal_parts(&key, &prefix, context, dek.as_bytes())
        })
    }

    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<KeyMaterial> {
        let (id, header_len) = parse_wrapped(wrapped)?;
        let key = self.read(|r| match r.get(id) {
            Some(m) => aes_key(m),
            None if r.retired.iter().any(|x| x == id) => Err(KeyError::UnknownKey {
                key_id: id.to_owned(),
                version: 0,
            }),
            None => Err(KeyError::WrongMasterKey),
        })?;
        let (header, body) = wrapped.split_at(header_len);
        let plain = open_parts(&key, header, context, body)?;
        KeyMaterial::from_slice(&plain, "wrapped key: not 32 bytes")
    }

    fn wrapped_with(&self, wrapped: &[u8]) -> Result<String> {
        Ok(parse_wrapped(wrapped)?.0.to_owned())
    }

    fn rotate(&self) -> Result<String> {
        self.update(|r| {
            let id = new_master_id()?;
            r.keys.push((id.clone(), KeyMaterial::generate()?));
            r.current = id.clone();
            Ok(id)
        })
    }

    fn retire_others(&self) -> Result<Vec<String>> {
        self.update(|r| {
            let current = r.current.clone();
            let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut r.keys)
                .into_iter()
                .partition(|(id, _)| *id == current);
            r.keys = keep;
            let dropped: Vec<String> = drop.into_iter().map(|(id, _)| id).collect();
            r.retired.extend(dropped.iter().cloned());
            Ok(dropped)
        })
    }

    fn ids(&self) -> Result<Vec<String>> {
        self.read(|r| Ok(r.keys.iter().map(|(id, _)| id.clone()).collect()))
    }
}

/// `(master key id, header length)` of an `EKW1` blob.
fn parse_wrapped(w: &[u8]) -> Result<(&str, usize)> {
    let mut r = Reader::new(w, "wrapped key: truncated");
    r.magic(
        WRAP_MAGIC,
        "wrapped key: not an Enclave wrapped key",
        "wrapped key: unsupported format version",
    )?;
    let id = r.id("wrapped key: invalid master key id")?;
    r.take(NONCE_LEN)?;
    let header_len = r.pos;
    r.take(32 + TAG_LEN)?;
    if !r.rest().is_empty() {
        return Err(KeyError::Corrupt("wrapped key: trailing bytes"));
    }
    Ok((id, header_len))
}

struct SealedFile<'a> {
    params: SealParams,
    salt: &'a [u8],
    header: &'a [u8],
    body: &'a [u8],
}

fn parse_sealed(b: &[u8]) -> Result<SealedFile<'_>> {
    let mut r = Reader::new(b, "sealed key file: truncated");
    r.magic(
        SEALED_MAGIC,
        "sealed key file: not an Enclave sealed key file",
        "sealed key file: unsupported format version",
    )?;
    if r.u8()? != KDF_ARGON2ID {
        return Err(KeyError::Corrupt("sealed key file: unknown key derivation"));
    }
    let params = SealParams {
        memory_kib: r.u32()?,
        iterations: r.u32()?,
        parallelism: r.u32()?,
    };
    if !params.in_bounds() {
        return Err(KeyError::Corrupt(
            "sealed key file: argon2 parameters out of range",
        ));
    }
    let salt_len = r.u8()? as usize;
    if !(8..=64).contains(&salt_len) {
        return Err(KeyError::Corrupt("sealed key file: bad salt length"));
    }
    let salt = r.take(salt_len)?;
    r.take(NONCE_LEN)?;
    let header_len = r.pos;
    let body = r.rest();
    if body.len() < TAG_LEN {
        return Err(KeyError::Corrupt("sealed key file: truncated"));
    }
    Ok(SealedFile {
        params,
        salt,
        header: b.get(..header_len).unwrap_or(&[]),
        body,
    })
}

fn seal_ring(ring: &Ring, s: &Sealing) -> Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(4 + 1 + 12 + 1 + s.salt.len());
    prefix.extend_from_slice(SEALED_MAGIC);
    prefix.push(KDF_ARGON2ID);
    prefix.extend_from_slice(&s.params.memory_kib.to_be_bytes());
    prefix.extend_from_slice(&s.params.iterations.to_be_bytes());
    prefix.extend_from_slice(&s.params.parallelism.to_be_bytes());
    prefix.push(s.salt.len() as u8);
    prefix.extend_from_slice(&s.salt);
    seal_parts(&aes_key(&s.key)?, &prefix, b"", ring.to_text().as_bytes())
}

fn resolve(path: &Path, name: &str) -> PathBuf {
    if path.is_dir() {
        path.join(name)
    } else {
        path.to_path_buf()
    }
}

fn io_err(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| io_err(path, e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<()> {
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: a temporary file (mode 0600) in the same
/// directory, fsync, rename over `path` (or hard-link when `create_new`, so an existing file
/// is never replaced), fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8], create_new: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io_err(path, std::io::Error::other("not a file name")))?;
    let mut tag = [0u8; 6];
    random(&mut tag)?;
    let suffix: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{suffix}"));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(f);
        if create_new {
            std::fs::hard_link(&tmp, path).map_err(|e| io_err(path, e))?;
            std::fs::remove_file(&tmp).map_err(|e| io_err(&tmp, e))?;
        } else {
            std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
        }
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const PASS: &[u8] = b"correct horse battery staple";

    fn dek() -> KeyMaterial {
        KeyMaterial::generate().unwrap()
    }

    fn local(dir: &Path) -> FileMasterKeys {
        FileMasterKeys::open_or_create_local(&dir.join(FileMasterKeys::LOCAL_FILE)).unwrap()
    }

    #[test]
    fn local_created_private_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mk = local(dir.path());
        assert_eq!(mk.kind(), "file");
        assert!(!mk.is_sealed());
        let path = dir.path().join("master.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let d = dek();
        let w = mk.wrap(&d, b"dek:project:prj_1:1").unwrap();
        assert_eq!(&w[..4], b"EKW1");
        assert_eq!(mk.wrapped_with(&w).unwrap(), mk.current_id().unwrap());
        let id = mk.current_id().unwrap();
        drop(mk);
        // A directory path means the standard file inside it.
        let again = FileMasterKeys::open_or_create_local(dir.path()).unwrap();
        assert_eq!(again.path(), path);
        assert_eq!(again.current_id().unwrap(), id);
        assert_eq!(again.ids().unwrap(), vec![id]);
        let back = again.unwrap(&w, b"dek:project:prj_1:1").unwrap();
        assert_eq!(back.as_bytes(), d.as_bytes());
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn local_refuses_group_or_other_access() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        drop(local(dir.path()));
        let path = dir.path().join("master.key");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            match FileMasterKeys::open_or_create_local(&path) {
                Err(e @ KeyError::InsecurePermissions { .. }) => {
                    assert!(e.to_string().contains("chmod 600"), "{e}")
                }
                other => panic!("{mode:o}: {other:?}"),
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(FileMasterKeys::open_or_create_local(&path).is_ok());
    }

    #[test]
    fn wrap_binds_context_and_rejects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let mk = local(dir.path());
        let w = mk.wrap(&dek(), b"a").unwrap();
        assert!(matches!(
            mk.unwrap(&w, b"b"),
            Err(KeyError::Corrupt("authentication failed"))
        ));
        for i in 0..w.len() {
            let mut bad = w.clone();
            bad[i] ^= 0x01;
            assert!(mk.unwrap(&bad, b"a").is_err(), "byte {i}");
        }
        for n in 0..w.len() {
            assert!(mk.unwrap(&w[..n], b"a").is_err(), "length {n}");
            let _ = mk.wrapped_with(&w[..n]);
        }
    }

    #[test]
    fn other_installation_is_wrong_master_key() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let w = local(a.path()).wrap(&dek(), b"c").unwrap();
        let e = local(b.path()).unwrap(&w, b"c").unwrap_err();
        assert!(matches!(e, KeyError::WrongMasterKey));
        assert!(e.to_string().contains("nothing was decrypted"));
    }

    #[test]
    fn rotate_then_unwrap_old_then_retire() {
        let dir = tempfile::tempdir().unwrap();
        let mk = local(dir.path());
        let old_id = mk.current_id().unwrap();
        let d = dek();
        let old = mk.wrap(&d, b"c").unwrap();
        let new_id = mk.rotate().unwrap();
        assert_ne!(new_id, old_id);
        assert_eq!(mk.current_id().unwrap(), new_id);
        assert_eq!(mk.ids().unwrap(), vec![old_id.clone(), new_id.clone()]);
        assert_eq!(mk.unwrap(&old, b"c").unwrap().as_bytes(), d.as_bytes());
        let new = mk.wrap(&d, b"c").unwrap();
        assert_eq!(mk.wrapped_with(&new).unwrap(), new_id);

        // Rotation is on disk.
        let reopened = local(dir.path());
        assert_eq!(
            reopened.ids().unwrap(),
            vec![old_id.clone(), new_id.clone()]
        );
        assert_eq!(
            reopened.unwrap(&old, b"c").unwrap().as_bytes(),
            d.as_bytes()
        );

        assert_eq!(mk.retire_others().unwrap(), vec![old_id.clone()]);
        assert_eq!(mk.ids().unwrap(), vec![new_id.clone()]);
        let unknown = |m: &FileMasterKeys| match m.unwrap(&old, b"c") {
            Err(KeyError::UnknownKey { key_id, version: 0 }) => assert_eq!(key_id, old_id),
            other => panic!("{other:?}"),
        };
        unknown(&mk);
        assert_eq!(mk.unwrap(&new, b"c").unwrap().as_bytes(), d.as_bytes());
        // Retirement is on disk too.
        let reopened = local(dir.path());
        unknown(&reopened);
        assert_eq!(reopened.retire_others().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn sealed_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FileMasterKeys::SEALED_FILE);
        assert!(matches!(
            FileMasterKeys::create_sealed(&path, b"short", SealParams::fast_for_tests()),
            Err(KeyError::WeakPassphrase { min: 12 })
        ));
        let mk = FileMasterKeys::create_sealed(&path, PASS, SealParams::fast_for_tests()).unwrap();
        assert_eq!(mk.kind(), "passphrase");
        assert!(!mk.is_sealed());
        let first = mk.current_id().unwrap();
        let d = dek();
        let w = mk.wrap(&d, b"c").unwrap();
        // Refuses to overwrite.
        assert!(matches!(
            FileMasterKeys::create_sealed(&path, PASS, SealParams::fast_for_tests()),
            Err(KeyError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists
        ));
        // The key ring is not in the file in plaintext.
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(&raw[..4], b"EKS1");
        assert!(!raw.windows(first.len()).any(|x| x == first.as_bytes()));
        drop(mk);

        let mk = FileMasterKeys::open_sealed(&path).unwrap();
        assert!(mk.is_sealed());
        assert!(matches!(mk.current_id(), Err(KeyError::Sealed)));
        assert!(matches!(mk.wrap(&d, b"c"), Err(KeyError::Sealed)));
        assert!(matches!(mk.unwrap(&w, b"c"), Err(KeyError::Sealed)));
        assert!(matches!(mk.rotate(), Err(KeyError::Sealed)));
        assert!(matches!(mk.ids(), Err(KeyError::Sealed)));
        assert_eq!(mk.wrapped_with(&w).unwrap(), first);
        assert!(matches!(
            mk.unseal(b"wrong passphrase!"),
            Err(KeyError::WrongPassphrase)
        ));
        assert!(mk.is_sealed());
        mk.unseal(PASS).unwrap();
        assert!(!mk.is_sealed());
        assert_eq!(mk.unwrap(&w, b"c").unwrap().as_bytes(), d.as_bytes());

        // Rotate, reopen, unseal: both keys held, the new one current.
        let second = mk.rotate().unwrap();
        drop(mk);
        let mk = FileMasterKeys::open_sealed(dir.path()).unwrap();
        mk.unseal(PASS).unwrap();
        assert_eq!(mk.ids().unwrap(), vec![first.clone(), second.clone()]);
        assert_eq!(mk.current_id().unwrap(), second);
        assert_eq!(mk.unwrap(&w, b"c").unwrap().as_bytes(), d.as_bytes());
        assert_eq!(mk.retire_others().unwrap(), vec![first]);
        drop(mk);
        let mk = FileMasterKeys::open_sealed(&path).unwrap();
        mk.unseal(PASS).unwrap();
        assert!(matches!(
            mk.unwrap(&w, b"c"),
            Err(KeyError::UnknownKey { .. })
        ));
    }

    #[test]
    fn sealed_file_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.sealed");
        drop(FileMasterKeys::create_sealed(&path, PASS, SealParams::fast_for_tests()).unwrap());
        let good = std::fs::read(&path).unwrap();
        let header_len = parse_sealed(&good).unwrap().header.len();
        for n in 0..good.len() {
            std::fs::write(&path, &good[..n]).unwrap();
            match FileMasterKeys::open_sealed(&path) {
                Err(KeyError::Corrupt(_)) => assert!(n < header_len + TAG_LEN),
                Err(e) => panic!("length {n}: {e}"),
                Ok(mk) => assert!(matches!(mk.unseal(PASS), Err(KeyError::WrongPassphrase))),
            }
        }
        // Any altered byte: a parse error or, once the passphrase is tried, WrongPassphrase.
        // The argon2 parameter bytes are skipped past (altered, they could ask for gigabytes).
        let altered = |i: usize| {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            match FileMasterKeys::open_sealed(&path) {
                Err(_) => {}
                Ok(mk) => assert!(mk.unseal(PASS).is_err(), "byte {i}"),
            }
        };
        for i in (0..5)
            .chain(17..header_len)
            .chain([header_len, good.len() - 1])
        {
            altered(i);
        }
        let mut huge = good.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(parse_sealed(&huge), Err(KeyError::Corrupt(_))));
    }

    #[test]
    fn damaged_local_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        drop(local(dir.path()));
        let path = dir.path().join("master.key");
        let text = std::fs::read_to_string(&path).unwrap();
        let cases = [
            String::new(),
            text.replace(RING_HEADER, "enclave-keyring v2"),
            text.replace("current ", "current mk_missing\n#"),
            text.lines()
                .filter(|l| !l.starts_with("key "))
                .collect::<Vec<_>>()
                .join("\n"),
            text.replace("key mk_", "key  mk_").replace('=', "=!"),
            format!("{text}key mk_x AAAA\n"),
            format!("{text}bogus line\n"),
        ];
        for (i, c) in cases.iter().enumerate() {
            std::fs::write(&path, c).unwrap();
            assert!(
                matches!(
                    FileMasterKeys::open_or_create_local(&path),
                    Err(KeyError::Corrupt(_))
                ),
                "case {i}"
            );
        }
    }

    #[test]
    fn ring_parse_random_input_never_panics() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for n in 0..3000usize {
            let mut buf = b"enclave-keyring v1\n".to_vec();
            for _ in 0..(n % 80) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(b" \nckrey_mt0AZ=+/"[(x % 16) as usize]);
            }
            let _ = Ring::parse(&buf);
            let _ = parse_sealed(&buf);
            let _ = parse_wrapped(&buf);
        }
    }
}
