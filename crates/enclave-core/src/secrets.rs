//! Secrets and how they reach workloads: names, limits, metadata, and the injection plan a
//! workload declares (which secret becomes which environment variable or file).
//!
//! Values never appear in these types except in [`ResolvedSecret`], which the runtime consumes
//! and drops; its `Debug` output hides the value.

use crate::error::{Error, Result};
use crate::Timestamp;

/// Longest secret name.
pub const MAX_SECRET_NAME: usize = 128;
/// Largest secret value (64 KiB): enough for a certificate chain or a service-account file.
pub const MAX_SECRET_VALUE: usize = 64 * 1024;
/// Most secrets a project (or a user) may hold.
pub const MAX_SECRETS_PER_OWNER: i64 = 1000;
/// Most entries in one injection plan.
pub const MAX_PLAN_ENTRIES: usize = 64;
/// Where secret files are mounted in a sandbox (a tmpfs, never written to disk).
pub const SECRET_FILE_DIR: &str = "/run/secrets";
/// Mode of every injected secret file: read-only for the workload's user.
pub const SECRET_FILE_MODE: u32 = 0o400;

/// A secret name: 1–128 characters of letters, digits, `_`, `-` and `.`, starting with a
/// letter (e.g. `DB_PASSWORD`, `warehouse.token`).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SECRET_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "a secret name must be 1 to {MAX_SECRET_NAME} letters, digits, '_', '-' or '.', starting with a letter"
            ),
        ))
    }
}

/// A secret value: not empty, at most [`MAX_SECRET_VALUE`] bytes. The message never quotes it.
pub fn check_value(value: &[u8]) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(
            "value",
            "the secret value must not be empty",
        ));
    }
    if value.len() > MAX_SECRET_VALUE {
        return Err(Error::invalid(
            "value",
            format!(
                "the secret value is {} bytes; the limit is {MAX_SECRET_VALUE} bytes",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// A secret's metadata. Never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Opaque id (`sec_…`).
    pub id: String,
    /// Its project's name; empty for a personal secret.
    pub project: String,
    /// The owner's username, for a personal secret.
    pub owner: Option<String>,
    /// Its name, unique in the project.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The newest version (1 for a new secret).
    pub current_version: u32,
    /// Who created it (username).
    pub created_by: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its newest version was written.
    pub updated_at: Timestamp,
}

/// One version of a secret's value. Never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionMeta {
    /// Version number, from 1.
    pub version: u32,
    /// Size of the value in bytes.
    pub size: u32,
    /// Who wrote it (username).
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// The project key version its ciphertext is sealed with.
    pub key_version: u32,
}

/// Where a secret goes inside a workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InjectionTarget {
    /// An environment variable of this name.
    Env(String),
    /// A file at this absolute path under [`SECRET_FILE_DIR`], mode [`SECRET_FILE_MODE`].
    File(String),
}

impl InjectionTarget {
    /// `env:NAME` or `file:/run/secrets/…`, as the CLI writes it.
    pub fn to_spec(&self) -> String {
        match self {
            InjectionTarget::Env(v) => format!("env:{v}"),
            InjectionTarget::File(p) => format!("file:{p}"),
        }
    }
}

/// Prefix of a personal secret's name in an injection plan: `@NAME` is the launcher's own
/// secret `NAME` (secret names start with a letter, so this cannot clash).
pub const PERSONAL_PREFIX: char = '@';

/// One line of an injection plan: secret `secret` (its current version) as `target`. A name
/// starting with [`PERSONAL_PREFIX`] is the launcher's personal secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMapping {
    /// The secret's name in the workload's project.
    pub secret: String,
    /// Where it goes.
    pub target: InjectionTarget,
}

impl SecretMapping {
    /// The mapping as written: `NAME=env:VAR` or `NAME=file:PATH` ([`parse_mapping`] reads it).
    pub fn to_spec(&self) -> String {
        format!("{}={}", self.secret, self.target.to_spec())
    }
}

/// Environment variables a secret may not replace: they change how programs load and run.
const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "SHELL",
    "PWD",
    "TMPDIR",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
];

/// Parses `NAME=env:VAR` or `NAME=file:PATH` (a relative `PATH` is placed under
/// [`SECRET_FILE_DIR`]; `@NAME` names the launcher's personal secret). The whole plan is
/// checked by [`check_plan`].
pub fn parse_mapping(spec: &str) -> Result<SecretMapping> {
    let bad = || {
        Error::invalid(
            "map",
            "each mapping is NAME=env:VARIABLE or NAME=file:PATH, e.g. DB_PASSWORD=env:PGPASSWORD",
        )
    };
    let (secret, target) = spec.split_once('=').ok_or_else(bad)?;
    let target = if let Some(var) = target.strip_prefix("env:") {
        InjectionTarget::Env(var.to_string())
    } else if let Some(path) = target.strip_prefix("file:") {
        if path.starts_with('/') {
            InjectionTarget::File(path.to_string())
        } else {
            InjectionTarget::File(format!("{SECRET_FILE_DIR}/{path}"))
        }
    } else {
        return Err(bad());
    };
    let m = SecretMapping {
        secret: secret.to_string(),
        target,
    };
    check_mapping(&m)?;
    Ok(m)
}

fn check_env_name(var: &str) -> Result<()> {
    let ok = !var.is_empty()
        && var.len() <= 128
        && var.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && var
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(Error::invalid(
            "map",
            format!(
                "environment variable {var:?} must be 1 to 128 uppercase letters, digits or '_', not starting with a digit"
            ),
        ));
    }
    if RESERVED_ENV.contains(&var) || var.starts_with("ENCLAVE_") || var.starts_with("LD_") {
        return Err(Error::invalid(
            "map",
            format!("environment variable {var} is reserved; choose another name"),
        ));
    }
    Ok(())
}

fn check_file_path(path: &str) -> Result<()> {
    let rest = path
        .strip_prefix(SECRET_FILE_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or("");
    let ok = !rest.is_empty()
        && path.len() <= 256
        && rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "map",
            format!(
                "secret file {path:?} must be a path under {SECRET_FILE_DIR}/ of letters, digits, '_', '-' and '.' (no '..')"
            ),
        ))
    }
}

fn check_mapping(m: &SecretMapping) -> Result<()> {
    check_name(m.secret.strip_prefix(PERSONAL_PREFIX).unwrap_or(&m.secret))?;
    match &m.target {
        InjectionTarget::Env(v) => check_env_name(v),
        InjectionTarget::File(p) => check_file_path(p),
    }
}

/// Checks a whole plan: at most [`MAX_PLAN_ENTRIES`] entries, each valid, no target used
/// twice (a secret may go to several targets).
pub fn check_plan(plan: &[SecretMapping]) -> Result<()> {
    if plan.len() > MAX_PLAN_ENTRIES {
        return Err(Error::invalid(
            "map",
            format!("a workload may receive at most {MAX_PLAN_ENTRIES} secrets"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for m in plan {
        check_mapping(m)?;
        if !seen.insert(&m.target) {
            return Err(Error::invalid(
                "map",
                format!("{} is the target of two mappings", m.target.to_spec()),
            ));
        }
    }
    Ok(())
}

/// One resolved plan entry: what the runtime puts in the sandbox. Hidden from `Debug`.
pub struct ResolvedSecret {
    /// The secret's name.
    pub secret: String,
    /// The version resolved.
    pub version: u32,
    /// Where it goes.
    pub target: InjectionTarget,
    /// The value (zeroized when dropped).
    pub value: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ResolvedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedSecret")
            .field("secret", &self.secret)
            .field("version", &self.version)
            .field("target", &self.target)
            .field("value", &"<hidden>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names() {
        for ok in ["DB_PASSWORD", "a", "warehouse.token", "x-1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "_x", "a b", "a/b", &"a".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values() {
        assert!(check_value(b"").is_err());
        assert!(check_value(&vec![0u8; MAX_SECRET_VALUE]).is_ok());
        let e = check_value(&vec![b'x'; MAX_SECRET_VALUE + 1]).unwrap_err();
        assert!(!e.message.contains("xxxx"));
    }

    #[test]
    fn mappings_parse_and_check() {
        let m = parse_mapping("DB=env:PGPASSWORD").unwrap();
        assert_eq!(m.target, InjectionTarget::Env("PGPASSWORD".into()));
        assert!(parse_mapping("@GITHUB_TOKEN=env:GH_TOKEN").is_ok());
        assert!(parse_mapping("@@X=env:GH_TOKEN").is_err());
        let f = parse_mapping("cert=file:tls/ca.pem").unwrap();
        assert_eq!(
            f.target,
            InjectionTarget::File("/run/secrets/tls/ca.pem".into())
        );
        assert!(parse_mapping("cert=file:/run/secrets/x").is_ok());
        for bad in [
            "DB",
            "DB=PGPASSWORD",
            "DB=env:",
            "DB=env:lower",
            "DB=env:1X",
            "DB=env:LD_PRELOAD",
            "DB=env:LD_BIND_NOW",
            "DB=env:PATH",
            "DB=env:ENCLAVE_X",
            "DB=file:/etc/passwd",
            "DB=file:../x",
            "DB=file:/run/secrets/../x",
            "DB=file:/run/secrets/",
            "DB=file:/run/secretsx/y",
            "=env:X",
        ] {
            assert!(parse_mapping(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plans_refuse_duplicate_targets_and_size() {
        let a = parse_mapping("A=env:X").unwrap();
        let b = parse_mapping("B=env:X").unwrap();
        assert!(check_plan(&[a.clone(), b]).is_err());
        let c = parse_mapping("A=file:a").unwrap();
        assert!(check_plan(&[a, c]).is_ok());
        let many: Vec<_> = (0..=MAX_PLAN_ENTRIES)
            .map(|i| parse_mapping(&format!("S=env:V{i}")).unwrap())
            .collect();
        assert!(check_plan(&many).is_err());
    }

    #[test]
    fn debug_hides_values() {
        let r = ResolvedSecret {
            secret: "DB".into(),
            version: 1,
            target: InjectionTarget::Env("X".into()),
            value: zeroize::Zeroizing::new(b"hunter2-secret".to_vec()),
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
