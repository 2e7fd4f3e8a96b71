//! Backups: a consistent, encrypted archive of the installation, made while it serves.
//!
//! Invariants:
//! * Only callers the policy allows `backup.create` (platform admins) get one, and each is
//!   audited twice: `backup.create` (archive id, file names, master key id) is committed
//!   *before* the snapshot, so the archive's own trail holds it; `backup.complete` (archive
//!   id, size, SHA-256 of the archive; or the failure) after the archive is built.
//! * The database part is one consistent snapshot (`VACUUM INTO`, [`Store::snapshot`])
//!   taken while the writer keeps committing; master rotations and re-encryption passes wait
//!   for it, so the master key in use when the backup starts opens everything in it.
//! * The archive ([`enclave_keys::ArchiveWriter`]) is encrypted under a fresh key wrapped by
//!   the master key; it holds no key material that opens without the master key. Plaintext
//!   copies exist only as unlinked temporary files in the data directory.
//!
//! [`Store::snapshot`]: enclave_store::Store::snapshot

use crate::chokepoint::Caller;
use crate::keys::key_error;
use crate::{detail, secrets, App};
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::{Error, ErrorCode, Result, Timestamp};
use enclave_keys::{ArchiveWriter, MasterKeys};
use enclave_policy::Resource;
use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// The name of the database in an archive.
pub const BACKUP_DB_NAME: &str = "enclave.db";

/// Bytes handed out per [`BackupArchive::read_chunk`].
const READ_CHUNK: usize = 256 * 1024;

/// A finished backup archive, ready to be streamed (a temporary file that is already gone
/// from the directory; dropping this frees it).
#[derive(Debug)]
pub struct BackupArchive {
    /// The archive id (`bkp_…`), as in the audit trail and the archive header.
    pub id: String,
    /// Its length in bytes.
    pub size: u64,
    /// SHA-256 of the whole archive, lowercase hex.
    pub sha256: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// The master key that opens it.
    pub master_key_id: String,
    file: tokio::fs::File,
}

impl BackupArchive {
    /// The next bytes of the archive, `None` at its end.
    pub async fn read_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; READ_CHUNK];
        let n = self.file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(buf))
    }
}

/// Writes through to a file while hashing (SHA-256) what passes.
struct Hashing<W: Write> {
    inner: W,
    digest: aws_lc_rs::digest::Context,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "backup failed: {what}");
    Error::new(
        ErrorCode::Unavailable,
        format!("the backup could not be written ({what}); check the server log and the free space in the data directory, then retry"),
    )
}

impl App {
    /// Names the files of the data directory, besides the database, that go into backups
    /// (the master-sealed audit signing key). Missing files are skipped; the master key file
    /// never goes in.
    pub fn with_backup_files(mut self, files: Vec<PathBuf>) -> App {
        self.backup_files = Arc::new(files);
        self
    }

    /// Makes an encrypted backup archive of the installation: the database as one consistent
    /// snapshot plus the files named by [`App::with_backup_files`], under a fresh archive key
    /// wrapped by the current master key. Platform admins only (`backup.create`); audited as
    /// `backup.create` before the snapshot (so the archive holds that record) and
    /// `backup.complete` with its size and SHA-256 after.
    pub async fn create_backup(&self, caller: &Caller) -> Result<BackupArchive> {
        self.authorize(
            caller,
            Action::BackupCreate,
            &Resource::Platform,
            "backup:platform",
            false,
        )
        .await?;
        let keys = self.keyring()?.clone();
        let master = keys.master().clone();
        let _no_rotation = keys.hold_rotations().await;
        let master_key_id = master.current_id().map_err(key_error)?;
        let id = secrets::new_id("bkp")?;
        let label = format!("backup:{id}");
        let mut names = vec![BACKUP_DB_NAME.to_string()];
        names.extend(
            self.backup_files
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string())),
        );
        let rec = caller.record(
            self,
            Action::BackupCreate.as_str(),
            label.clone(),
            None,
            Outcome::Success,
            detail!(
                "archive" => id.clone(),
                "files" => names.join(","),
                "master_key" => master_key_id.clone(),
            ),
        );
        self.commit(self.store.write().await?, rec).await?;
        let created_at = self.now();
        let built = self
            .build_archive(&id, created_at, master, master_key_id.clone())
            .await;
        let (file, size, sha256) = match built {
            Ok(b) => b,
            Err(e) => {
                let rec = caller.record(
                    self,
                    "backup.complete",
                    label,
                    None,
                    Outcome::Failure,
                    detail!("archive" => id, "reason" => e.message.clone()),
                );
                self.audit(rec).await?;
                return Err(e);
            }
        };
        let rec = caller.record(
            self,
            "backup.complete",
            label,
            None,
            Outcome::Success,
            detail!("archive" => id.clone(), "bytes" => size, "sha256" => sha256.clone()),
        );
        self.audit(rec).await?;
        Ok(BackupArchive {
            id,
            size,
            sha256,
            created_at,
            master_key_id,
            file: tokio::fs::File::from_std(file),
        })
    }

    /// Snapshot, then encrypt it and the extra files into an unlinked temporary file.
    async fn build_archive(
        &self,
        id: &str,
        created_at: Timestamp,
        master: Arc<dyn MasterKeys>,
        master_key_id: String,
    ) -> Result<(std::fs::File, u64, String)> {
        let (snapshot, snapshot_len) = self.store.snapshot().await?;
        let out = self.store.scratch_file()?;
        let files = self.backup_files.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || -> Result<(std::fs::File, u64, String)> {
            let sink = Hashing {
                inner: std::io::BufWriter::with_capacity(1 << 20, out),
                digest: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            };
            let mut w = ArchiveWriter::new(master.as_ref(), &id, created_at.0, sink).map_err(
                |e| match e {
                    enclave_keys::KeyError::Io(io) => failed("writing the archive", io),
                    other => key_error(other),
                },
            )?;
            let mut db = std::io::BufReader::new(snapshot);
            w.add_file(BACKUP_DB_NAME, snapshot_len, &mut db)
                .map_err(|e| failed("archiving the database", e))?;
            for path in files.iter() {
                let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_string()) else {
                    continue;
                };
                let f = match std::fs::File::open(path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(failed(&format!("reading {name}"), e)),
                };
                let len = f
                    .metadata()
                    .map_err(|e| failed(&format!("reading {name}"), e))?
                    .len();
                w.add_file(&name, len, &mut std::io::BufReader::new(f))
                    .map_err(|e| failed(&format!("archiving {name}"), e))?;
            }
            let (sink, size) = w.finish().map_err(|e| failed("finishing the archive", e))?;
            let sha = hex(sink.digest.finish().as_ref());
            let mut file = sink
                .inner
                .into_inner()
                .map_err(|e| failed("writing the archive", e.error()))?;
            file.rewind()
                .map_err(|e| failed("writing the archive", e))?;
            tracing::info!(
                archive = id,
                bytes = size,
                master_key = master_key_id,
                "backup archive written"
            );
            Ok((file, size, sha))
        })
        .await
        .map_err(|e| failed("the archive task", e))?
    }
}
