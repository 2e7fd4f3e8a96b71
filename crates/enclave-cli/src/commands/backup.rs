//! The backup command: streams the server's encrypted archive into a file.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{Res, Runner};
use crate::client::Failure;
use crate::output::Column;

/// Longest a backup download may take.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

const BACKUP: &[Column] = &[
    ("ARCHIVE", "id"),
    ("FILE", "file"),
    ("BYTES", "bytes"),
    ("SHA-256", "sha256"),
];

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(crate::client::sanitize)
        .unwrap_or_default()
}

/// A new private file next to `out` for the download (renamed into place when complete).
fn partial_file(out: &Path) -> Result<(std::path::PathBuf, std::fs::File), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| Failure::usage("--out must name a file", None))?;
    let tmp = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| {
            Failure::local(
                "io",
                format!("cannot create {}: {e}", tmp.display()),
                Some("give --out a file in a directory you can write to".into()),
            )
        })?;
    Ok((tmp, f))
}

impl Runner<'_, '_> {
    pub(super) async fn backup(&mut self, out: &Path, force: bool) -> Res {
        if !force && std::fs::symlink_metadata(out).is_ok() {
            return Err(Failure::local(
                "exists",
                format!("{} already exists; nothing was written", out.display()),
                Some("choose another --out file, or add --force to replace it".into()),
            ));
        }
        let client = self.api()?;
        let (tmp, file) = partial_file(out)?;
        let mut sink = std::io::BufWriter::new(file);
        let got = client
            .download(
                Method::POST,
                &["admin", "backup"],
                &mut sink,
                BACKUP_TIMEOUT,
            )
            .await;
        let finished = got.and_then(|(bytes, headers)| {
            let file = sink.into_inner().map_err(|e| {
                Failure::local(
                    "io",
                    format!("cannot write {}: {}", tmp.display(), e.error()),
                    None,
                )
            })?;
            file.sync_all()
                .and_then(|()| std::fs::rename(&tmp, out))
                .map_err(|e| {
                    Failure::local("io", format!("cannot write {}: {e}", out.display()), None)
                })?;
            Ok((bytes, headers))
        });
        let (bytes, headers) = match finished {
            Ok(v) => v,
            Err(f) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(f);
            }
        };
        let value = json!({
            "id": header(&headers, "x-enclave-backup-id"),
            "file": out.display().to_string(),
            "bytes": bytes,
            "sha256": header(&headers, "x-enclave-backup-sha256"),
        });
        self.show(BACKUP, &value)?;
        if self.ctx.output == crate::OutputFormat::Text {
            self.write_out(
                "keep the master key (DATA_DIR/master.key, or master.sealed and its passphrase) apart from the archive: restoring needs both\n",
            )?;
        }
        Ok(())
    }
}
