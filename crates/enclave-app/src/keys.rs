//! The key hierarchy as the application uses it: one master-key provider (key-encryption keys)
//! wrapping per-scope data keys (one scope per project, plus `platform`), kept in the store
//! wrapped and in memory unwrapped; and the key operations (status, project-key rotation with
//! background re-encryption, retirement, master-key rotation).
//!
//! Invariants:
//! * Key material exists in the clear only in memory ([`enclave_keys::DataKey`] and
//!   [`enclave_keys::KeyMaterial`] zeroize on drop); the store holds data keys only wrapped
//!   by a master key, bound to `dek:<scope>:<version>`.
//! * Exactly one version of a scope's key is `active`; new data is sealed with it. Older
//!   versions open old data until re-encryption has moved every ciphertext off them; only
//!   then can they be retired, which erases their wrapped material.
//! * Rotating the master key rewraps every data key (and every file sealed with the master
//!   key) before the old master key is dropped, while requests go on being served.
//! * Every key operation is authorized and audited.

use crate::chokepoint::{label, Caller};
use crate::{detail, App};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::authz::Action;
use enclave_core::{names, Error, ErrorCode, Result, Timestamp};
use enclave_keys::{DataKey, KeyError, KeyMaterial, KeyRef, MasterKeys};
use enclave_policy::Resource;
use enclave_store::{DataKeyRow, KeyState, Store, WriteTx};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Scope of the platform's own data key: data that belongs to no project (password hashes).
pub(crate) const PLATFORM_SCOPE: &str = "platform";

/// Prefix of a password hash sealed with the platform key (base64 of the ciphertext follows).
const SEALED_HASH: &str = "sealed:";

fn password_context(user_id: &str) -> Vec<u8> {
    format!("password:{user_id}").into_bytes()
}

/// Secret versions re-encrypted per write transaction.
const REENCRYPT_BATCH: u32 = 64;

/// The key scope of a project's data, by project id.
pub fn project_scope(project_id: &str) -> String {
    format!("project:{project_id}")
}

fn dek_context(scope: &str, version: u32) -> Vec<u8> {
    format!("dek:{scope}:{version}").into_bytes()
}

/// Something outside the store sealed with the master key (e.g. the audit signing key file),
/// rewritten when the master key rotates.
pub trait MasterSealed: Send + Sync {
    /// What it is, for logs and errors.
    fn name(&self) -> String;
    /// Rewraps it under the master keys' current key (the old key is still held).
    fn rewrap(&self, master: &dyn MasterKeys) -> std::result::Result<(), String>;
}

/// The master keys plus the unwrapped data keys in use. Shared by every clone of [`App`].
pub struct Keyring {
    master: Arc<dyn MasterKeys>,
    cache: RwLock<HashMap<(String, u32), Arc<DataKey>>>,
    sealed_outside: RwLock<Vec<Arc<dyn MasterSealed>>>,
    /// Serializes rotations and re-encryption passes.
    rotation: tokio::sync::Mutex<()>,
}

/// Maps a key error to what the caller may learn; details go to the log only.
pub(crate) fn key_error(e: KeyError) -> Error {
    match e {
        KeyError::Sealed => Error::new(
            ErrorCode::Unavailable,
            "the master key is sealed: run `enclave unseal` with the passphrase, then retry",
        ),
        KeyError::WrongMasterKey | KeyError::WrongPassphrase => {
            tracing::error!(error = %e, "the master key does not open a stored data key");
            Error::new(
                ErrorCode::Unavailable,
                "the master key does not open this installation's data keys; start the server with the right master key",
            )
        }
        other => {
            tracing::error!(error = %other, "key operation failed");
            Error::internal()
        }
    }
}

impl Keyring {
    /// A keyring on `master`.
    pub fn new(master: Arc<dyn MasterKeys>) -> Keyring {
        Keyring {
            master,
            cache: RwLock::default(),
            sealed_outside: RwLock::default(),
            rotation: tokio::sync::Mutex::new(()),
        }
    }

    /// The master-key provider.
    pub fn master(&self) -> &Arc<dyn MasterKeys> {
        &self.master
    }

    /// Holds off master rotations and re-encryption passes while the guard lives (a backup
    /// takes its snapshot under it, so the key file it needs is the one in use now).
    pub(crate) async fn hold_rotations(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.rotation.lock().await
    }

    /// Registers something sealed with the master key outside the store, to be rewrapped when
    /// the master key rotates.
    pub fn register_master_sealed(&self, item: Arc<dyn MasterSealed>) {
        if let Ok(mut v) = self.sealed_outside.write() {
            v.push(item);
        }
    }

    fn cached(&self, scope: &str, version: u32) -> Option<Arc<DataKey>> {
        self.cache
            .read()
            .ok()?
            .get(&(scope.to_string(), version))
            .cloned()
    }

    fn remember(&self, key: DataKey) -> Arc<DataKey> {
        let key = Arc::new(key);
        if let Ok(mut c) = self.cache.write() {
            c.insert((key.key_id().to_string(), key.version()), key.clone());
        }
        key
    }

    fn forget(&self, scope: &str, version: u32) {
        if let Ok(mut c) = self.cache.write() {
            c.remove(&(scope.to_string(), version));
        }
    }

    fn unwrap_row(&self, row: &DataKeyRow) -> Result<Arc<DataKey>> {
        if let Some(k) = self.cached(&row.scope, row.version) {
            return Ok(k);
        }
        let wrapped = row.wrapped.as_deref().ok_or_else(|| {
            tracing::error!(
                scope = row.scope,
                version = row.version,
                "retired key needed"
            );
            Error::internal()
        })?;
        let material = self
            .master
            .unwrap(wrapped, &dek_context(&row.scope, row.version))
            .map_err(key_error)?;
        let key = DataKey::new(&row.scope, row.version, &material).map_err(key_error)?;
        Ok(self.remember(key))
    }

    /// The key that sealed a ciphertext (unwrapped on first use, then cached).
    pub(crate) async fn key_for(&self, store: &Store, r: &KeyRef) -> Result<Arc<DataKey>> {
        if let Some(k) = self.cached(&r.key_id, r.version) {
            return Ok(k);
        }
        let row = store.data_key(&r.key_id, r.version).await?.ok_or_else(|| {
            tracing::error!(
                scope = r.key_id,
                version = r.version,
                "ciphertext names an unknown key"
            );
            Error::internal()
        })?;
        self.unwrap_row(&row)
    }

    /// The active key of `scope` inside `tx`, created (version 1) on first use.
    pub(crate) async fn active_key(
        &self,
        tx: &mut WriteTx,
        scope: &str,
        now: Timestamp,
    ) -> Result<Arc<DataKey>> {
        if let Some(row) = tx.active_data_key(scope).await? {
            return self.unwrap_row(&row);
        }
        let version = tx.latest_data_key_version(scope).await?.saturating_add(1);
        self.new_version(tx, scope, version, now).await
    }

    async fn new_version(
        &self,
        tx: &mut WriteTx,
        scope: &str,
        version: u32,
        now: Timestamp,
    ) -> Result<Arc<DataKey>> {
        let material = KeyMaterial::generate().map_err(key_error)?;
        let master_key_id = self.master.current_id().map_err(key_error)?;
        let wrapped = self
            .master
            .wrap(&material, &dek_context(scope, version))
            .map_err(key_error)?;
        tx.insert_data_key(&DataKeyRow {
            scope: scope.to_string(),
            version,
            wrapped: Some(wrapped),
            master_key_id,
            state: KeyState::Active,
            created_at: now,
            retired_at: None,
        })
        .await?;
        let key = DataKey::new(scope, version, &material).map_err(key_error)?;
        Ok(self.remember(key))
    }
}

/// One version of a data key, for status views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionStatus {
    /// Version number.
    pub version: u32,
    /// `active`, `decrypt_only` or `retired`.
    pub state: &'static str,
    /// The master key that wraps it (empty once retired).
    pub master_key_id: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Retirement time.
    pub retired_at: Option<Timestamp>,
    /// Secret versions sealed with it.
    pub sealed: u64,
}

/// A project's data key: its versions and how much data still waits for re-encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The project.
    pub project: String,
    /// Every version, oldest first (empty before the project stores its first secret).
    pub versions: Vec<KeyVersionStatus>,
    /// Secret versions sealed with a version other than the active one.
    pub pending: u64,
}

/// The master keys: which provider, which key is current, which are still held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterStatus {
    /// `file` or `passphrase`.
    pub provider: &'static str,
    /// The current master key id.
    pub current: String,
    /// Every master key held (the current one and any not yet retired).
    pub held: Vec<String>,
    /// Data keys of every scope.
    pub data_keys: u64,
    /// Data keys still wrapped by an older master key.
    pub pending: u64,
}

impl App {
    /// The keyring, or a clear error when the server was started without one.
    pub(crate) fn keyring(&self) -> Result<&Arc<Keyring>> {
        self.keys.as_ref().ok_or_else(|| {
            Error::new(
                ErrorCode::Unavailable,
                "encryption keys are not configured on this server; secrets are unavailable",
            )
        })
    }

    fn system_record(&self, action: &str, resource: String, project: Option<&str>) -> AuditRecord {
        AuditRecord {
            project: project.map(str::to_string),
            ..crate::RequestMeta::local().record(self.now(), "system", "system", action, resource)
        }
    }

    /// Decides `action` on a project's keys and returns the key scope of the project.
    async fn authorize_project_keys(
        &self,
        caller: &Caller,
        action: Action,
        project: &str,
    ) -> Result<String> {
        names::slug("project", project).map_err(|_| Error::not_found("project", project))?;
        self.authorize(
            caller,
            action,
            &Resource::Project(project.to_string()),
            &label("project", &format!("{project}/keys")),
            true,
        )
        .await?;
        let id = self
            .project_id(Some(project))
            .await?
            .ok_or_else(Error::internal)?;
        Ok(project_scope(&id))
    }

    /// A project's data-key versions and re-encryption progress.
    pub async fn key_status(&self, caller: &Caller, project: &str) -> Result<KeyStatus> {
        let scope = self
            .authorize_project_keys(caller, Action::KeyRead, project)
            .await?;
        self.project_key_status(project, &scope).await
    }

    async fn project_key_status(&self, project: &str, scope: &str) -> Result<KeyStatus> {
        let rows = self.store.data_keys(Some(scope)).await?;
        let counts: HashMap<u32, u64> =
            self.store.sealed_counts(scope).await?.into_iter().collect();
        let active = rows
            .iter()
            .find(|r| r.state == KeyState::Active)
            .map(|r| r.version);
        let pending = counts
            .iter()
            .filter(|(v, _)| Some(**v) != active)
            .map(|(_, n)| n)
            .sum();
        Ok(KeyStatus {
            project: project.to_string(),
            versions: rows
                .into_iter()
                .map(|r| KeyVersionStatus {
                    sealed: counts.get(&r.version).copied().unwrap_or(0),
                    version: r.version,
                    state: r.state.as_str(),
                    master_key_id: if r.wrapped.is_some() {
                        r.master_key_id
                    } else {
                        String::new()
                    },
                    created_at: r.created_at,
                    retired_at: r.retired_at,
                })
                .collect(),
            pending,
        })
    }

    /// Adds a new version of a project's data key: new data is sealed with it at once, and a
    /// background pass re-encrypts existing data with it (see [`App::key_status`] for
    /// progress). Older versions stay readable until retired.
    pub async fn rotate_project_key(&self, caller: &Caller, project: &str) -> Result<KeyStatus> {
        let scope = self
            .authorize_project_keys(caller, Action::KeyRotate, project)
            .await?;
        let keys = self.keyring()?.clone();
        let now = self.now();
        let mut tx = self.store.write().await?;
        let version = tx.latest_data_key_version(&scope).await?.saturating_add(1);
        tx.demote_data_keys(&scope).await?;
        keys.new_version(&mut tx, &scope, version, now).await?;
        let rec = caller.record(
            self,
            Action::KeyRotate.as_str(),
            label("key", &scope),
            Some(project),
            Outcome::Success,
            detail!("new_version" => version),
        );
        self.commit(tx, rec).await?;
        let app = self.clone();
        let (p, s) = (project.to_string(), scope.clone());
        tokio::spawn(async move {
            if let Err(e) = app.reencrypt_scope(Some(&p), &s).await {
                tracing::error!(error = %e, scope = s, "re-encryption stopped; it resumes with housekeeping");
            }
        });
        self.project_key_status(project, &scope).await
    }

    /// Re-encrypts every secret version of `scope` that is not sealed with its active key, in
    /// small transactions, then records the pass in the audit trail. Safe to run again (and
    /// concurrently with writes): each row moves only if it is still sealed as read.
    pub(crate) async fn reencrypt_scope(&self, project: Option<&str>, scope: &str) -> Result<u64> {
        let keys = self.keyring()?.clone();
        let _one_at_a_time = keys.rotation.lock().await;
        let mut moved = 0u64;
        loop {
            let rows = self.store.data_keys(Some(scope)).await?;
            let Some(active_row) = rows.iter().find(|r| r.state == KeyState::Active) else {
                return Ok(moved);
            };
            let active = keys.unwrap_row(active_row)?;
            let batch = self
                .store
                .stale_secret_versions(scope, active.version(), REENCRYPT_BATCH)
                .await?;
            if batch.is_empty() {
                break;
            }
            let mut tx = self.store.write().await?;
            for v in &batch {
                let r = enclave_keys::key_ref_of(&v.ciphertext).map_err(key_error)?;
                let old = keys.key_for(&self.store, &r).await?;
                let ctx = crate::project_secrets::value_context(&v.secret_id, v.version);
                let plain = old.open(&ctx, &v.ciphertext).map_err(key_error)?;
                let sealed = active.seal(&ctx, &plain).map_err(key_error)?;
                moved += tx
                    .reseal_secret_version(
                        &v.secret_id,
                        v.version,
                        v.key_version,
                        &sealed,
                        active.version(),
                    )
                    .await?;
            }
            tx.commit().await?;
        }
        if moved > 0 {
            let rec = AuditRecord {
                detail: detail!("reencrypted" => moved),
                ..self.system_record("key.reencrypt", label("key", scope), project)
            };
            self.audit(rec).await?;
        }
        Ok(moved)
    }

    /// Resumes any re-encryption left unfinished (e.g. by a restart). Run by housekeeping.
    pub async fn resume_reencryption(&self) -> Result<()> {
        if self.keys.is_none() {
            return Ok(());
        }
        let mut scopes: Vec<String> = self
            .store
            .data_keys(None)
            .await?
            .into_iter()
            .filter(|r| r.state == KeyState::DecryptOnly)
            .map(|r| r.scope)
            .collect();
        scopes.dedup();
        for scope in scopes {
            let project = match scope.strip_prefix("project:") {
                Some(id) => self.store.project_name_by_id(id).await?,
                None => None,
            };
            self.reencrypt_scope(project.as_deref(), &scope).await?;
        }
        Ok(())
    }

    /// Retires an old version of a project's data key: its wrapped material is erased. Refused
    /// while it is active or while any data is still sealed with it.
    pub async fn retire_project_key(
        &self,
        caller: &Caller,
        project: &str,
        version: u32,
    ) -> Result<KeyStatus> {
        let scope = self
            .authorize_project_keys(caller, Action::KeyRotate, project)
            .await?;
        let keys = self.keyring()?.clone();
        let now = self.now();
        let mut tx = self.store.write().await?;
        let still = tx.count_sealed_with(&scope, version).await?;
        if still > 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "key version {version} still seals {still} secret versions; wait for re-encryption to finish (`enclave keys status --project {project}`) and retry"
                ),
            ));
        }
        if tx.retire_data_key(&scope, version, now).await? == 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "key version {version} of project {project} is not an older, unretired version; only versions replaced by a rotation can be retired"
                ),
            ));
        }
        let rec = caller.record(
            self,
            "key.retire",
            label("key", &scope),
            Some(project),
            Outcome::Success,
            detail!("version" => version),
        );
        self.commit(tx, rec).await?;
        keys.forget(&scope, version);
        self.project_key_status(project, &scope).await
    }

    /// The master keys' provider and state.
    pub async fn master_status(&self, caller: &Caller) -> Result<MasterStatus> {
        self.authorize(
            caller,
            Action::KeyRead,
            &Resource::Platform,
            "key:master",
            false,
        )
        .await?;
        self.master_status_unchecked().await
    }

    async fn master_status_unchecked(&self) -> Result<MasterStatus> {
        let keys = self.keyring()?;
        let master = keys.master();
        let current = master.current_id().map_err(key_error)?;
        let rows = self.store.data_keys(None).await?;
        let live: Vec<_> = rows.iter().filter(|r| r.wrapped.is_some()).collect();
        Ok(MasterStatus {
            provider: master.kind(),
            held: master.ids().map_err(key_error)?,
            data_keys: u64::try_from(live.len()).unwrap_or(0),
            pending: u64::try_from(live.iter().filter(|r| r.master_key_id != current).count())
                .unwrap_or(0),
            current,
        })
    }

    /// Rotates the master key: a new one becomes current, every data key (and every file
    /// sealed with the master key) is rewrapped under it, then the old ones are dropped. The
    /// server keeps serving throughout; a pass interrupted by a crash is finished by running
    /// the rotation again.
    pub async fn rotate_master_key(&self, caller: &Caller) -> Result<MasterStatus> {
        self.authorize(
            caller,
            Action::KeyRotateMaster,
            &Resource::Platform,
            "key:master",
            false,
        )
        .await?;
        let keys = self.keyring()?.clone();
        let _one_at_a_time = keys.rotation.lock().await;
        let master = keys.master().clone();
        let old = master.current_id().map_err(key_error)?;
        let new = tokio::task::spawn_blocking({
            let m = master.clone();
            move || m.rotate()
        })
        .await
        .map_err(|_| Error::internal())?
        .map_err(key_error)?;
        let mut rewrapped = 0u64;
        loop {
            let rows = self.store.data_keys_not_wrapped_by(&new, 256).await?;
            if rows.is_empty() {
                break;
            }
            let mut tx = self.store.write().await?;
            for row in &rows {
                let Some(w) = row.wrapped.as_deref() else {
                    continue;
                };
                let ctx = dek_context(&row.scope, row.version);
                let material = master.unwrap(w, &ctx).map_err(key_error)?;
                let again = master.wrap(&material, &ctx).map_err(key_error)?;
                rewrapped += tx
                    .rewrap_data_key(&row.scope, row.version, &row.master_key_id, &again, &new)
                    .await?;
            }
            tx.commit().await?;
        }
        let outside: Vec<_> = keys
            .sealed_outside
            .read()
            .map(|v| v.clone())
            .unwrap_or_default();
        for item in outside {
            item.rewrap(master.as_ref()).map_err(|e| {
                tracing::error!(item = item.name(), error = e, "rewrap under the new master key failed");
                Error::new(
                    ErrorCode::Unavailable,
                    format!(
                        "{} could not be rewrapped under the new master key; the old key is kept, run the rotation again",
                        item.name()
                    ),
                )
            })?;
        }
        let dropped = tokio::task::spawn_blocking({
            let m = master.clone();
            move || m.retire_others()
        })
        .await
        .map_err(|_| Error::internal())?
        .map_err(key_error)?;
        let rec = caller.record(
            self,
            Action::KeyRotateMaster.as_str(),
            "key:master".into(),
            None,
            Outcome::Success,
            detail!(
                "previous" => old,
                "current" => new,
                "rewrapped_data_keys" => rewrapped,
                "retired" => dropped.join(","),
            ),
        );
        self.audit(rec).await?;
        self.master_status_unchecked().await
    }

    /// Records that an operator unsealed the master key from `source`, after `failed` wrong
    /// passphrases since the server started.
    pub async fn record_unseal(&self, source: &str, failed: u64) -> Result<()> {
        let rec = AuditRecord {
            source: source.to_string(),
            detail: detail!("failed_attempts" => failed),
            ..self.system_record("key.unseal", "key:master".into(), None)
        };
        self.audit(rec).await
    }

    /// Seals a password hash (argon2 PHC string) with the platform key inside `tx`, bound to
    /// the user: a copied store reveals no hash to crack offline. Without keys (tests of other
    /// parts) the hash is kept as is.
    pub(crate) async fn seal_password_hash(
        &self,
        tx: &mut WriteTx,
        user_id: &str,
        phc: &str,
    ) -> Result<String> {
        self.seal_platform_value(tx, &password_context(user_id), phc)
            .await
    }

    /// The PHC string of a stored password hash: opened when sealed, as is otherwise.
    pub(crate) async fn open_password_hash(
        &self,
        user_id: &str,
        stored: Option<&str>,
    ) -> Result<Option<zeroize::Zeroizing<String>>> {
        match stored {
            Some(s) => Ok(Some(
                self.open_platform_value(&password_context(user_id), s)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// Seals a small text value with the platform key inside `tx`, bound to `context` (so a
    /// ciphertext copied to another row does not open). Without keys (tests of other parts)
    /// the value is kept as is.
    pub(crate) async fn seal_platform_value(
        &self,
        tx: &mut WriteTx,
        context: &[u8],
        value: &str,
    ) -> Result<String> {
        let Some(keys) = self.keys.clone() else {
            return Ok(value.to_string());
        };
        let key = keys.active_key(tx, PLATFORM_SCOPE, self.now()).await?;
        let sealed = key.seal(context, value.as_bytes()).map_err(key_error)?;
        use base64::Engine;
        Ok(format!(
            "{SEALED_HASH}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed)
        ))
    }

    /// Opens a value sealed by [`App::seal_platform_value`] with the same `context`; a value
    /// stored before sealing existed is returned as is.
    pub(crate) async fn open_platform_value(
        &self,
        context: &[u8],
        stored: &str,
    ) -> Result<zeroize::Zeroizing<String>> {
        let Some(b64) = stored.strip_prefix(SEALED_HASH) else {
            return Ok(zeroize::Zeroizing::new(stored.to_string()));
        };
        use base64::Engine;
        let sealed = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64)
            .map_err(|_| {
                tracing::error!("a sealed platform value is not base64");
                Error::internal()
            })?;
        let keys = self.keyring()?.clone();
        let r = enclave_keys::key_ref_of(&sealed).map_err(key_error)?;
        let key = keys.key_for(&self.store, &r).await?;
        let plain = key.open(context, &sealed).map_err(key_error)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| Error::internal())?;
        Ok(zeroize::Zeroizing::new(text))
    }

    /// Seals every password hash still stored in the clear (written before hashes were
    /// sealed). Run at start; returns how many were sealed.
    pub async fn seal_plain_password_hashes(&self) -> Result<u64> {
        if self.keys.is_none() {
            return Ok(0);
        }
        let mut sealed = 0;
        loop {
            let batch = self.store.plain_password_hashes(100).await?;
            if batch.is_empty() {
                return Ok(sealed);
            }
            let mut tx = self.store.write().await?;
            for (user_id, phc) in &batch {
                let new = self.seal_password_hash(&mut tx, user_id, phc).await?;
                sealed += tx.reseal_password_hash(user_id, phc, &new).await?;
            }
            tx.commit().await?;
        }
    }
}
