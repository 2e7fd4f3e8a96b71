//! File sink: an append-only JSON Lines file.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::syslog::one_line;
use crate::{BoxFuture, ForwardError, ForwardRecord, Sink};

/// Appends one JSON object per line to a file opened with `O_APPEND`, `fsync`ing after every
/// batch. A new file is created with mode 0600 (an existing file keeps its mode). If the path
/// is renamed or removed (log rotation), the next batch goes to a new file at the path. A line
/// left incomplete by a crash is closed with a newline before appending; the records of that
/// batch are then written again in full.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: Option<OpenFile>,
}

#[derive(Debug)]
struct OpenFile {
    file: fs::File,
    dev: u64,
    ino: u64,
}

impl FileSink {
    /// A sink appending to `path` (opened at the first connect).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSink {
            path: path.into(),
            file: None,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn file_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ForwardError + 'a {
    move |source| ForwardError::File {
        op,
        path: path.to_owned(),
        source,
    }
}

fn open(path: &Path) -> Result<OpenFile, ForwardError> {
    let file = match fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => {
            // The creation mode is filtered by the umask; make it exact.
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(file_err("chmod", path))?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(file_err("sync", parent))?;
            }
            file
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(file_err("open", path))?,
        Err(e) => return Err(file_err("create", path)(e)),
    };
    let meta = file.metadata().map_err(file_err("stat", path))?;
    if meta.len() > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, meta.len() - 1)
            .map_err(file_err("read", path))?;
        if last[0] != b'\n' {
            (&file).write_all(b"\n").map_err(file_err("append", path))?;
        }
    }
    Ok(OpenFile {
        file,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

impl Sink for FileSink {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn durable(&self) -> bool {
        true
    }

    fn is_connected(&self) -> bool {
        self.file.is_some()
    }

    fn connect(&mut self) -> BoxFuture<'_, Result<(), ForwardError>> {
        Box::pin(async move {
            self.file = None;
            let path = self.path.clone();
            let opened = tokio::task::spawn_blocking(move || open(&path))
                .await
                .map_err(|e| ForwardError::File {
                    op: "open",
                    path: self.path.clone(),
                    source: io::Error::other(e.to_string()),
                })??;
            self.file = Some(opened);
            Ok(())
        })
    }

    fn send<'a>(
        &'a mut self,
        records: &'a [ForwardRecord],
    ) -> BoxFuture<'a, Result<(), ForwardError>> {
        Box::pin(async move {
            let mut current = self.file.take().ok_or(ForwardError::NotConnected)?;
            let mut buf = Vec::new();
            for record in records {
                buf.extend_from_slice(one_line(&record.json).as_bytes());
                buf.push(b'\n');
            }
            let path = self.path.clone();
            let written = tokio::task::spawn_blocking(move || {
                let rotated = match fs::metadata(&path) {
                    Ok(m) => m.dev() != current.dev || m.ino() != current.ino,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                    Err(e) => return Err(file_err("stat", &path)(e)),
                };
                if rotated {
                    tracing::info!(path = %path.display(), "audit forward file was rotated; reopening");
                    current = open(&path)?;
                }
                (&current.file)
                    .write_all(&buf)
                    .map_err(file_err("append", &path))?;
                current.file.sync_data().map_err(file_err("fsync", &path))?;
                Ok(current)
            })
            .await
            .map_err(|e| ForwardError::File {
                op: "append",
                path: self.path.clone(),
                source: io::Error::other(e.to_string()),
            })??;
            self.file = Some(written);
            Ok(())
        })
    }

    fn probe(&mut self) -> Result<(), ForwardError> {
        Ok(())
    }

    fn close(&mut self) -> BoxFuture<'_, Result<bool, ForwardError>> {
        Box::pin(async move {
            self.file = None;
            Ok(true)
        })
    }

    fn disconnect(&mut self) {
        self.file = None;
    }
}
