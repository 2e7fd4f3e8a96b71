//! Cursors: how far each sink has been confirmed, persisted across restarts.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::config::valid_name;
use crate::ForwardError;

/// Persists, per sink name, the highest seq the sink has confirmed. Called from a blocking
/// thread; implementations may do synchronous IO.
pub trait CursorStore: Send + Sync {
    /// The saved cursor; `None` when this sink never confirmed anything (forwarding then starts
    /// at the beginning of the trail).
    fn load(&self, sink_name: &str) -> Result<Option<i64>, ForwardError>;
    /// Saves the cursor durably.
    fn save(&self, sink_name: &str, seq: i64) -> Result<(), ForwardError>;
}

/// One file per sink, `<dir>/<name>.cursor`, holding the seq as decimal text. Written
/// atomically (temporary file, fsync, rename, fsync of the directory), mode 0600; the directory
/// is created with mode 0700 when missing.
#[derive(Debug)]
pub struct FileCursorStore {
    dir: PathBuf,
    counter: AtomicU64,
}

impl FileCursorStore {
    /// Cursors under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileCursorStore {
            dir: dir.into(),
            counter: AtomicU64::new(0),
        }
    }

    /// The file holding a sink's cursor.
    pub fn path_for(&self, sink_name: &str) -> Result<PathBuf, ForwardError> {
        if !valid_name(sink_name) {
            return Err(cursor_err(sink_name, "invalid sink name"));
        }
        Ok(self.dir.join(format!("{sink_name}.cursor")))
    }
}

fn cursor_err(sink: &str, reason: impl Into<String>) -> ForwardError {
    ForwardError::Cursor {
        sink: sink.to_owned(),
        reason: reason.into(),
    }
}

fn io_reason(op: &str, path: &Path, e: &io::Error) -> String {
    format!("{op} {}: {e}", path.display())
}

impl CursorStore for FileCursorStore {
    fn load(&self, sink_name: &str) -> Result<Option<i64>, ForwardError> {
        let path = self.path_for(sink_name)?;
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cursor_err(sink_name, io_reason("read", &path, &e))),
        };
        text.trim().parse::<i64>().map(Some).map_err(|_| {
            cursor_err(
                sink_name,
                format!(
                    "{} does not hold a seq; fix or remove it (removing replays the whole trail)",
                    path.display()
                ),
            )
        })
    }

    fn save(&self, sink_name: &str, seq: i64) -> Result<(), ForwardError> {
        let path = self.path_for(sink_name)?;
        if !self.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| cursor_err(sink_name, io_reason("create", &self.dir, &e)))?;
        }
        // Unique per call, so two saves racing (a cancelled one still running) never share it.
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            ".{sink_name}.cursor.{}.{n}.tmp",
            std::process::id()
        ));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            // The creation mode is filtered by the umask; make it exact.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(format!("{seq}\n").as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(cursor_err(sink_name, io_reason("write", &tmp, &e)));
        }
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(cursor_err(sink_name, io_reason("rename to", &path, &e)));
        }
        // Make the rename itself durable.
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| cursor_err(sink_name, io_reason("sync", &self.dir, &e)))
    }
}

/// Cursors in memory, lost at exit: for tests and for embedding where persistence is elsewhere.
#[derive(Debug, Default)]
pub struct MemoryCursorStore {
    cursors: Mutex<HashMap<String, i64>>,
}

impl MemoryCursorStore {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CursorStore for MemoryCursorStore {
    fn load(&self, sink_name: &str) -> Result<Option<i64>, ForwardError> {
        Ok(self
            .cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sink_name)
            .copied())
    }

    fn save(&self, sink_name: &str, seq: i64) -> Result<(), ForwardError> {
        self.cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sink_name.to_owned(), seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn file_cursor_round_trip_mode_and_atomicity() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCursorStore::new(dir.path().join("cursors"));
        assert_eq!(store.load("siem").unwrap(), None);
        store.save("siem", 41).unwrap();
        store.save("siem", 42).unwrap();
        assert_eq!(store.load("siem").unwrap(), Some(42));
        assert_eq!(store.load("other").unwrap(), None);
        let path = store.path_for("siem").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("cursors"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("cursors"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("siem.cursor")]);
    }

    #[test]
    fn garbage_cursor_is_an_error_not_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCursorStore::new(dir.path());
        fs::write(dir.path().join("siem.cursor"), "not a number").unwrap();
        let err = store.load("siem").unwrap_err().to_string();
        assert!(err.contains("does not hold a seq"), "{err}");
    }

    #[test]
    fn names_are_checked() {
        let store = FileCursorStore::new("/nonexistent");
        assert!(store.path_for("../x").is_err());
        assert!(store.save("a/b", 1).is_err());
    }
}
