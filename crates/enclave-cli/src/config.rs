//! The config directory and the files in it: `credentials.json` and `ca.pem`.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::Failure;

/// Name of the credential file inside the config directory.
pub(crate) const CREDENTIALS_FILE: &str = "credentials.json";
/// Name of the trusted CA bundle inside the config directory.
pub(crate) const CA_FILE: &str = "ca.pem";

/// Resolves the config directory from the environment: `$ENCLAVE_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/enclave` (absolute paths only, as the XDG spec says), else
/// `$HOME/.config/enclave`. Empty variables count as unset.
pub(crate) fn config_dir_from(get: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, Failure> {
    let var = |name: &str| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("ENCLAVE_CONFIG_DIR") {
        return Ok(dir);
    }
    if let Some(xdg) = var("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("enclave"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".config").join("enclave"));
    }
    Err(Failure::local(
        "config",
        "cannot find the config directory: HOME is not set",
        Some("set ENCLAVE_CONFIG_DIR to a directory for the CLI's credentials".into()),
    ))
}

/// What `enclave login` stores: enough to call the API again.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Credentials {
    /// Base URL of the server, without a trailing slash.
    pub server: String,
    /// The user who logged in.
    pub username: String,
    /// The personal API token (secret).
    pub token: String,
    /// The token's id as the server reported it (string or number).
    pub token_id: serde_json::Value,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("token", &"[redacted]")
            .field("token_id", &self.token_id)
            .finish()
    }
}

fn io_failure(what: &str, path: &Path, e: &io::Error) -> Failure {
    Failure::local("io", format!("{what} {}: {e}", path.display()), None)
}

/// Creates the config directory (and missing parents) with mode 0700.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), Failure> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io_failure("cannot create the config directory", dir, &e))
}

/// Writes `data` to `dir/name` atomically: a temporary file created with mode 0600 in the
/// same directory, synced, then renamed over the target.
pub(crate) fn write_private(dir: &Path, name: &str, data: &[u8]) -> Result<(), Failure> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> io::Result<()> {
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &target)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_failure("cannot write", &target, &e)
    })
}

/// Removes `dir/name`; a missing file is not an error. Returns whether a file was removed.
pub(crate) fn remove(dir: &Path, name: &str) -> Result<bool, Failure> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_failure("cannot remove", &path, &e)),
    }
}

/// Stores the credentials in `dir/credentials.json` (0600), creating `dir` (0700).
pub(crate) fn save_credentials(dir: &Path, creds: &Credentials) -> Result<(), Failure> {
    ensure_dir(dir)?;
    let mut json = serde_json::to_vec_pretty(creds)
        .map_err(|e| Failure::local("io", format!("cannot encode credentials: {e}"), None))?;
    json.push(b'\n');
    write_private(dir, CREDENTIALS_FILE, &json)
}

/// Loads `dir/credentials.json`; `Ok(None)` when there is none. A warning is returned when the
/// file is readable by other users.
pub(crate) fn load_credentials(
    dir: &Path,
) -> Result<(Option<Credentials>, Option<String>), Failure> {
    let path = dir.join(CREDENTIALS_FILE);
    let data = match fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, None)),
        Err(e) => return Err(io_failure("cannot read", &path, &e)),
    };
    let creds: Credentials = serde_json::from_slice(&data).map_err(|e| {
        Failure::local(
            "config",
            format!("{} is not a valid credentials file: {e}", path.display()),
            Some("run `enclave login` again".into()),
        )
    })?;
    Ok((Some(creds), permission_warning(&path)))
}

#[cfg(unix)]
fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is accessible by other users (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn permission_warning(_path: &Path) -> Option<String> {
    None
}

/// Loads the credentials or fails with "not logged in".
pub(crate) fn require_credentials(dir: &Path) -> Result<(Credentials, Option<String>), Failure> {
    match load_credentials(dir)? {
        (Some(creds), warning) => Ok((creds, warning)),
        (None, _) => Err(Failure::local(
            "not_logged_in",
            format!(
                "not logged in (no {})",
                dir.join(CREDENTIALS_FILE).display()
            ),
            Some("run `enclave login --server URL --username NAME --password-stdin`".into()),
        )),
    }
}

/// Reads `dir/ca.pem` if present.
pub(crate) fn load_ca(dir: &Path) -> Result<Option<Vec<u8>>, Failure> {
    let path = dir.join(CA_FILE);
    match fs::read(&path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_failure("cannot read", &path, &e)),
    }
}

/// The default token name for `login`: `cli@<hostname>`, at most 64 characters.
pub(crate) fn default_token_name() -> String {
    let from_file = |p: &str| fs::read_to_string(p).ok();
    let host = from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::process::Command::new("hostname")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
        })
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.chars().all(|c| !c.is_control()))
        .unwrap_or_else(|| "unknown".into());
    format!("cli@{host}").chars().take(64).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Result<PathBuf, Failure> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        config_dir_from(|k| map.get(k).cloned())
    }

    #[test]
    fn config_dir_precedence() {
        let all = [
            ("ENCLAVE_CONFIG_DIR", "/a"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(resolve(&all).unwrap(), PathBuf::from("/a"));
        assert_eq!(resolve(&all[1..]).unwrap(), PathBuf::from("/x/enclave"));
        assert_eq!(
            resolve(&all[2..]).unwrap(),
            PathBuf::from("/h/.config/enclave")
        );
        // Empty and relative XDG values are ignored.
        let odd = [
            ("ENCLAVE_CONFIG_DIR", ""),
            ("XDG_CONFIG_HOME", "rel"),
            ("HOME", "/h"),
        ];
        assert_eq!(resolve(&odd).unwrap(), PathBuf::from("/h/.config/enclave"));
        let err = resolve(&[]).unwrap_err();
        assert_eq!(err.exit_code(), 1);
    }

    fn sample() -> Credentials {
        Credentials {
            server: "https://127.0.0.1:8443".into(),
            username: "alice".into(),
            token: "enc_pat_secret".into(),
            token_id: serde_json::json!("tok1"),
        }
    }

    #[test]
    fn credentials_round_trip_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested").join("enclave");
        assert!(load_credentials(&dir).unwrap().0.is_none());
        save_credentials(&dir, &sample()).unwrap();
        let (loaded, warning) = load_credentials(&dir).unwrap();
        assert_eq!(loaded.unwrap(), sample());
        assert!(warning.is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(CREDENTIALS_FILE)), 0o600);
            // Overwriting keeps the mode and leaves no temporary file behind.
            save_credentials(&dir, &sample()).unwrap();
            assert_eq!(mode(&dir.join(CREDENTIALS_FILE)), 0o600);
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
            fs::set_permissions(
                dir.join(CREDENTIALS_FILE),
                fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            assert!(load_credentials(&dir)
                .unwrap()
                .1
                .unwrap()
                .contains("chmod 600"));
        }
        assert!(remove(&dir, CREDENTIALS_FILE).unwrap());
        assert!(!remove(&dir, CREDENTIALS_FILE).unwrap());
        assert_eq!(require_credentials(&dir).unwrap_err().exit_code(), 1);
    }

    #[test]
    fn invalid_credentials_file_is_a_local_error() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(CREDENTIALS_FILE), "{not json").unwrap();
        let err = load_credentials(tmp.path()).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.code, "config");
    }

    #[test]
    fn debug_redacts_token() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("enc_pat_secret"));
        assert!(text.contains("alice"));
    }

    #[test]
    fn token_name_is_bounded() {
        let name = default_token_name();
        assert!(name.starts_with("cli@"));
        assert!(name.chars().count() <= 64);
    }
}
