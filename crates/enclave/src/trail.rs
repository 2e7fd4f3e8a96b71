//! The audit trail's moving parts on the server host: the installation's checkpoint signing
//! key, the store options that use it, the periodic checkpoint and retention job, and the
//! forwarders to outside collectors.

use enclave_app::App;
use enclave_audit::SigningKey;
use enclave_config::AuditConfig;
use enclave_forward::{
    BoxFuture, FileCursorStore, ForwardConfig, ForwardError, ForwardRecord, Forwarder,
    ForwarderHandle, RecordSource, SinkKind,
};
use enclave_store::{AuditOptions, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Name of the checkpoint signing key (PKCS#8, mode 0600) in the data directory.
pub const AUDIT_KEY_FILE: &str = "audit-signing.key";

/// Loads the installation's checkpoint signing key, creating it (0600) on first start.
pub fn load_or_create_key(data_dir: &Path) -> Result<SigningKey, String> {
    let path = data_dir.join(AUDIT_KEY_FILE);
    enclave_store::load_or_create_audit_key(&path)
        .map_err(|e| format!("the audit signing key {}: {e}", path.display()))
}

/// The store's audit options for this installation.
pub fn audit_options(data_dir: &Path, cfg: &AuditConfig) -> Result<AuditOptions, String> {
    let key = load_or_create_key(data_dir)?;
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
