//! Consistent copies of the database while it serves (for backups).
//!
//! `VACUUM INTO` runs on a pool connection inside one read transaction: the copy is the
//! database exactly as of one commit, while the writer goes on committing. The copy is made
//! in a new file (mode 0600) next to the database, opened, and unlinked at once, so it leaves
//! nothing behind even if the process dies while the caller reads it.

use crate::{map_err, Store, StoreError, StoreResult};
use std::path::PathBuf;

impl Store {
    /// A consistent snapshot of the whole database as of now (every commit that returned
    /// before this call is in it), as an open file positioned at its start, already removed
    /// from the directory. Returns the file and its length.
    pub async fn snapshot(&self) -> StoreResult<(std::fs::File, u64)> {
        let path = self.scratch_path("snapshot.db")?;
        // SQLite creates the copy with the process's default mode: create it first, private
        // (VACUUM INTO accepts an existing empty file).
        {
            let p = path.clone();
            tokio::task::spawn_blocking(move || create_private(&p))
                .await
                .map_err(|e| StoreError::Bulk(e.to_string()))?
                .map_err(|e| StoreError::Bulk(format!("{}: {e}", path.display())))?;
        }
        let target = path.to_string_lossy().to_string();
        let res = sqlx::query("VACUUM INTO $1")
            .bind(&target)
            .execute(&self.pool)
            .await
            .map_err(map_err);
        let opened = res.and_then(|_| {
            let f = std::fs::File::open(&path)
                .map_err(|e| StoreError::Bulk(format!("{}: {e}", path.display())))?;
            let len = f
                .metadata()
                .map_err(|e| StoreError::Bulk(format!("{}: {e}", path.display())))?
                .len();
            Ok((f, len))
        });
        // Unlink in every case: the open handle (if any) keeps the data readable.
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("db-journal"));
        opened
    }

    /// A new private (0600) temporary file next to the database, open for reading and
    /// writing, already removed from the directory (for building an archive).
    pub fn scratch_file(&self) -> StoreResult<std::fs::File> {
        let path = self.scratch_path("scratch")?;
        let f = create_private(&path)
            .map_err(|e| StoreError::Bulk(format!("{}: {e}", path.display())))?;
        let _ = std::fs::remove_file(&path);
        Ok(f)
    }

    /// `<db dir>/.backup-<pid>-<nanos>-<n>.<suffix>`.
    fn scratch_path(&self, suffix: &str) -> StoreResult<PathBuf> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Unique in this process and across processes; `create_new` refuses any clash.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let pid = std::process::id();
        Ok(dir.join(format!(".backup-{pid}-{nanos}-{n}.{suffix}")))
    }
}

fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use crate::Store;
    use std::io::Read;

    #[tokio::test]
    async fn snapshot_is_a_consistent_database_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("enclave.db")).await.unwrap();
        let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        let (mut f, len) = store.snapshot().await.unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert!(bytes.starts_with(b"SQLite format 3\0"));
        let after: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(before.len(), after.len());
        // The copy opens as a store with the current schema.
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, &bytes).unwrap();
        let restored = Store::open(&copy).await.unwrap();
        restored.ready().await.unwrap();
        let _scratch = store.scratch_file().unwrap();
    }
}
