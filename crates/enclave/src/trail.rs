//! The audit trail's moving parts on the server host: the installation's checkpoint signing
//! key, the store options that use it, the periodic checkpoint and retention job, and the
//! forwarders to outside collectors.

use enclave_app::App;
use enclave_app::MasterSealed;
use enclave_audit::{CheckpointSigner, PublicKey, SigningKey};
use enclave_config::AuditConfig;
use enclave_forward::{
    BoxFuture, FileCursorStore, ForwardConfig, ForwardError, ForwardRecord, Forwarder,
    ForwarderHandle, RecordSource, SinkKind,
};
use enclave_keys::{DataKey, KeyMaterial, MasterKeys};
use enclave_store::{AuditOptions, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Name of the checkpoint signing key file in the data directory (sealed, mode 0600).
pub const AUDIT_KEY_FILE: &str = "audit-signing.key";

/// Magic of a sealed audit key file: `EAK1`, the public key (32 bytes), a file key wrapped by
/// the master key (u16 big-endian length, then the blob), and the PKCS#8 private key sealed
/// with that file key.
const SEALED_MAGIC: &[u8; 4] = b"EAK1";
const WRAP_CONTEXT: &[u8] = b"audit-signing-key";

fn seal_context(public: &PublicKey) -> Vec<u8> {
    format!("audit-signing-key:{}", public.to_hex()).into_bytes()
}

/// The parts of a sealed audit key file.
struct SealedParts<'a> {
    public: PublicKey,
    wrapped: &'a [u8],
    sealed: &'a [u8],
}

fn parse_sealed(bytes: &[u8]) -> Option<SealedParts<'_>> {
    let rest = bytes.strip_prefix(SEALED_MAGIC.as_slice())?;
    let (public, rest) = rest.split_at_checked(32)?;
    let (len, rest) = rest.split_at_checked(2)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let (wrapped, sealed) = rest.split_at_checked(len)?;
    Some(SealedParts {
        public: PublicKey::from_bytes(public).ok()?,
        wrapped,
        sealed,
    })
}

fn seal_key(master: &dyn MasterKeys, public: &PublicKey, pkcs8: &[u8]) -> Result<Vec<u8>, String> {
    let file_key = KeyMaterial::generate().map_err(|e| e.to_string())?;
    let wrapped = master
        .wrap(&file_key, WRAP_CONTEXT)
        .map_err(|e| e.to_string())?;
    let dek = DataKey::new("audit-signing-key", 1, &file_key).map_err(|e| e.to_string())?;
    let sealed = dek
        .seal(&seal_context(public), pkcs8)
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(wrapped.len()).map_err(|_| "wrapped key too long".to_string())?;
    let mut out = Vec::with_capacity(38 + wrapped.len() + sealed.len());
    out.extend_from_slice(SEALED_MAGIC);
    out.extend_from_slice(public.as_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Writes `bytes` to `path` atomically and durably with mode 0600.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Loads the installation's checkpoint signing key, sealed under the master key, creating it
/// on first start. A key file from before sealing (plain PKCS#8) is sealed in place.
pub fn load_or_create_key(data_dir: &Path, master: &dyn MasterKeys) -> Result<SigningKey, String> {
    let path = data_dir.join(AUDIT_KEY_FILE);
    let fail = |e: String| format!("the audit signing key {}: {e}", path.display());
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, pkcs8) = SigningKey::generate().map_err(|e| fail(e.to_string()))?;
            let pkcs8 = zeroize::Zeroizing::new(pkcs8);
            let sealed = seal_key(master, &key.public_key(), &pkcs8).map_err(fail)?;
            write_atomic(&path, &sealed).map_err(fail)?;
            return Ok(key);
        }
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    let Some(parts) = parse_sealed(&bytes) else {
        // Written before the key was sealed: seal it now.
        let pkcs8 = zeroize::Zeroizing::new(bytes);
        let key = SigningKey::from_pkcs8(&pkcs8).map_err(|e| fail(format!("unreadable: {e}")))?;
        let sealed = seal_key(master, &key.public_key(), &pkcs8).map_err(fail)?;
        write_atomic(&path, &sealed).map_err(fail)?;
        return Ok(key);
    };
    let file_key = master
        .unwrap(parts.wrapped, WRAP_CONTEXT)
        .map_err(|e| fail(e.to_string()))?;
    let dek = DataKey::new("audit-signing-key", 1, &file_key).map_err(|e| fail(e.to_string()))?;
    let pkcs8 = dek
        .open(&seal_context(&parts.public), parts.sealed)
        .map_err(|e| fail(e.to_string()))?;
    SigningKey::from_pkcs8(&pkcs8).map_err(|e| fail(format!("unreadable: {e}")))
}

/// The installation's public checkpoint key, read from the sealed key file without the master
/// key (what offline verification needs).
pub fn public_key(data_dir: &Path) -> Result<PublicKey, String> {
    let path = data_dir.join(AUDIT_KEY_FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_sealed(&bytes).map(|p| p.public).ok_or_else(|| {
        format!(
            "{} is not a sealed audit key file; start the server once to seal it",
            path.display()
        )
    })
}

/// The sealed audit key file, rewrapped when the master key rotates.
pub struct SealedAuditKey(pub std::path::PathBuf);

impl MasterSealed for SealedAuditKey {
    fn name(&self) -> String {
        format!("the audit signing key {}", self.0.display())
    }

    fn rewrap(&self, master: &dyn MasterKeys) -> Result<(), String> {
        let bytes = std::fs::read(&self.0).map_err(|e| e.to_string())?;
        let parts = parse_sealed(&bytes).ok_or("not a sealed audit key file")?;
        let file_key = master
            .unwrap(parts.wrapped, WRAP_CONTEXT)
            .map_err(|e| e.to_string())?;
        let wrapped = master
            .wrap(&file_key, WRAP_CONTEXT)
            .map_err(|e| e.to_string())?;
        let len = u16::try_from(wrapped.len()).map_err(|_| "wrapped key too long".to_string())?;
        let mut out = Vec::with_capacity(bytes.len() + 8);
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(parts.public.as_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(parts.sealed);
        write_atomic(&self.0, &out)
    }
}

/// The store's audit options for this installation.
pub fn audit_options(
    data_dir: &Path,
    cfg: &AuditConfig,
    master: &dyn MasterKeys,
) -> Result<AuditOptions, String> {
    let key = load_or_create_key(data_dir, master)?;
    Ok(AuditOptions {
        signer: Some(Arc::new(key)),
        checkpoint_every: cfg.checkpoint_every,
        checkpoint_interval: cfg.checkpoint_interval,
        ..AuditOptions::default()
    })
}

/// Signs due checkpoints and applies retention, every checkpoint interval (at most a minute).
pub fn spawn_housekeeping(app: App, cfg: &AuditConfig) -> tokio::task::JoinHandle<()> {
    let period = cfg.checkpoint_interval.min(Duration::from_secs(60));
    let retention = (cfg.retention_days > 0)
        .then(|| Duration::from_secs(u64::from(cfg.retention_days) * 86_400));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if let Err(e) = app.audit_housekeeping(retention).await {
                tracing::warn!(error = %e, "audit housekeeping failed");
            }
        }
    })
}

/// The forwarders' view of the trail: committed records by sequence number.
struct StoreSource(Store);

impl RecordSource for StoreSource {
    fn after(
        &self,
        seq: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ForwardRecord>, ForwardError>> {
        Box::pin(async move {
            let from = u64::try_from(seq.max(0)).unwrap_or(0);
            let limit = u32::try_from(limit).unwrap_or(u32::MAX);
            let entries = self
                .0
                .records_after(from, limit)
                .await
                .map_err(|e| ForwardError::Source(e.to_string()))?;
            Ok(entries
                .into_iter()
                .map(|e| {
                    let r = &e.record;
                    let json = serde_json::json!({
                        "seq": e.seq,
                        "hash": enclave_audit::to_hex(&e.hash),
                        "at": r.at.rfc3339(),
                        "actor": r.actor,
                        "auth": r.auth,
                        "source": r.source,
                        "action": r.action,
                        "resource": r.resource,
                        "project": r.project,
                        "outcome": r.outcome.as_str(),
                        "request_id": r.request_id,
                        "detail": r.detail,
                    });
                    ForwardRecord {
                        seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
                        at: r.at.unix(),
                        action: r.action.clone(),
                        outcome: r.outcome.as_str().to_string(),
                        json: json.to_string(),
                    }
                })
                .collect())
        })
    }

    fn last_seq(&self) -> BoxFuture<'_, Result<Option<i64>, ForwardError>> {
        Box::pin(async move {
            let (seq, _) = self.0.audit_head().await;
            Ok((seq > 0).then(|| i64::try_from(seq).unwrap_or(i64::MAX)))
        })
    }
}

/// The forwarders the configuration asks for.
pub fn forward_configs(cfg: &AuditConfig) -> Vec<ForwardConfig> {
    let mut out = Vec::new();
    if let Some(address) = &cfg.forward_syslog {
        out.push(ForwardConfig {
            name: "syslog".into(),
            kind: SinkKind::Syslog,
            address: Some(address.clone()),
            tls: cfg.forward_syslog_tls,
            ca_file: cfg.forward_syslog_ca_file.clone(),
            server_name: cfg.forward_syslog_server_name.clone(),
            client_cert: None,
            client_key: None,
            path: None,
            facility: None,
            severity: None,
            hostname: None,
            batch: None,
        });
    }
    if let Some(path) = &cfg.forward_file {
        out.push(ForwardConfig {
            name: "file".into(),
            kind: SinkKind::File,
            address: None,
            tls: false,
            ca_file: None,
            server_name: None,
            client_cert: None,
            client_key: None,
            path: Some(path.clone()),
            facility: None,
            severity: None,
            hostname: None,
            batch: None,
        });
    }
    out
}

/// Running forwarders and the way to stop them.
#[derive(Clone)]
pub struct Forwarders {
    handles: Vec<ForwarderHandle>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Forwarders {
    /// Starts one forwarder per configured destination; an invalid destination is an error.
    pub fn start(store: &Store, data_dir: &Path, cfg: &AuditConfig) -> Result<Forwarders, String> {
        let configs = forward_configs(cfg);
        enclave_forward::validate_all(&configs).map_err(|e| e.to_string())?;
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        if configs.is_empty() {
            return Ok(Forwarders {
                handles,
                tasks: Arc::default(),
                stop: Arc::new(stop),
            });
        }
        let cursor_dir = data_dir.join("forward");
        let source: Arc<dyn RecordSource> = Arc::new(StoreSource(store.clone()));
        let cursors = Arc::new(FileCursorStore::new(cursor_dir));
        for c in &configs {
            let f = Forwarder::from_config(c, source.clone(), cursors.clone())
                .map_err(|e| e.to_string())?;
            handles.push(f.handle());
            let mut rx = stop.subscribe();
            tasks.push(tokio::spawn(f.run(async move {
                let _ = rx.changed().await;
            })));
        }
        Ok(Forwarders {
            handles,
            tasks: Arc::new(std::sync::Mutex::new(tasks)),
            stop: Arc::new(stop),
        })
    }

    /// Wakes every forwarder (after a commit) instead of waiting for its next poll.
    pub fn notify(&self) {
        for h in &self.handles {
            h.notify();
        }
    }

    /// Stops every forwarder, letting each confirm what it sent (bounded).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let tasks = match self.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use enclave_keys::FileMasterKeys;

    fn master(dir: &Path) -> FileMasterKeys {
        FileMasterKeys::open_or_create_local(&dir.join("master.key")).unwrap()
    }

    #[test]
    fn the_key_is_created_once_sealed_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let m = master(dir.path());
        let a = load_or_create_key(dir.path(), &m).unwrap();
        let b = load_or_create_key(dir.path(), &m).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(public_key(dir.path()).unwrap(), a.public_key());
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(AUDIT_KEY_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Another master key opens nothing.
        let other = tempfile::tempdir().unwrap();
        assert!(load_or_create_key(dir.path(), &master(other.path())).is_err());
        // Garbage is refused.
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load_or_create_key(dir.path(), &m).is_err());
    }

    #[test]
    fn a_plain_key_is_sealed_in_place_and_rewraps_on_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let m = master(dir.path());
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let path = dir.path().join(AUDIT_KEY_FILE);
        std::fs::write(&path, &pkcs8).unwrap();
        let loaded = load_or_create_key(dir.path(), &m).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        let raw = std::fs::read(&path).unwrap();
        assert!(raw.starts_with(SEALED_MAGIC));
        assert!(!raw.windows(pkcs8.len()).any(|w| w == pkcs8.as_slice()));

        m.rotate().unwrap();
        SealedAuditKey(path.clone()).rewrap(&m).unwrap();
        m.retire_others().unwrap();
        let again = load_or_create_key(dir.path(), &m).unwrap();
        assert_eq!(again.public_key(), key.public_key());
    }
}
