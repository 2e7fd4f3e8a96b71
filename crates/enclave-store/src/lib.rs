//! Enclave's persistent store. This is the only crate that speaks SQL.
//!
//! Invariants:
//! * Reads go through the pool; every write goes through [`WriteTx`], one at a time on one
//!   dedicated writer connection behind an in-process lock, inside an outer `BEGIN IMMEDIATE`
//!   transaction shared by a batch of `WriteTx`s (group commit, see `writer.rs`), so SQLite
//!   never fails a write with `SQLITE_BUSY` halfway through a use case. Each `WriteTx` runs in
//!   its own savepoint: one abandoned mid-way (its request cancelled) is rolled back before
//!   the next one goes on and changes nothing, while the rest of its batch commits.
//! * A write and the audit record describing it commit in the same transaction: if the record
//!   cannot be written, the change is not made either. [`WriteTx::commit`] returns `Ok` only
//!   after the batch's `COMMIT` succeeded; if it fails, every member of the batch gets an error.
//! * Commits are durable (`synchronous=FULL`, WAL) before the caller answers its client.
//! * The audit trail is a hash chain built under the writer lock, in commit order, with signed
//!   checkpoints (`enclave-audit` holds the rules; `audit.rs` the reads, verification, export
//!   and retention). Chained rows are append-only (a trigger refuses updates); only pruning
//!   up to a checkpoint deletes them, and it leaves a chained record saying so.
//! * SQL is written to run on SQLite and PostgreSQL alike (`$n` parameters, no upserts beyond
//!   `ON CONFLICT … DO UPDATE`, timestamps as integers); only the migration files differ. The
//!   one SQLite-specific path is the bulk scan for audit verification (rusqlite on the same
//!   library, on a blocking thread).

mod audit;
mod backup;
mod identity;
mod jobs;
mod keys;
mod mfa;
mod migrate;
mod notebooks;
mod policy;
mod reads;
mod scim;
mod webauthn;
mod writer;
mod writes;

use enclave_audit::CheckpointSigner;
use enclave_core::{Error, ErrorCode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

pub use identity::{ExternalLink, LastLogin, StoredSource};
pub use keys::{DataKeyRow, Holder, KeyState, SealedVersion, WorkloadFact};
pub use mfa::{MfaPendingRow, MfaTotpRow};
pub use migrate::MIGRATIONS;
pub use notebooks::{NotebookCookieRow, NotebookHandoffRow, MAX_NOTEBOOK_COOKIES_PER_SESSION};
pub use policy::{AuthzFacts, ProjectFacts, UserFact};
pub use reads::{AuditPage, UserCredentials};
pub use scim::{ScimGroupRow, ScimUserRow};
pub use webauthn::PasskeyRow;
pub use writes::{SessionAuth, WriteTx};

pub use audit::{AuditEntry, AuditFilter, AuditOrder, AuditSearchPage, PRUNE_ACTION};

/// How the store keeps the audit trail.
#[derive(Clone)]
pub struct AuditOptions {
    /// Signs checkpoints (the installation's Ed25519 key). Without one no checkpoints are
    /// written: the chain still shows changes, but a rewrite with recomputed hashes or a cut
    /// tail cannot be proven. Production passes the installation key.
    pub signer: Option<Arc<dyn CheckpointSigner>>,
    /// A checkpoint is due after this many records ...
    pub checkpoint_every: u64,
    /// ... or when this much record time has passed since the last one.
    pub checkpoint_interval: Duration,
    /// Most transactions committed together by one `COMMIT`.
    pub max_batch: usize,
}

impl AuditOptions {
    pub(crate) fn interval_secs(&self) -> i64 {
        i64::try_from(self.checkpoint_interval.as_secs()).unwrap_or(i64::MAX)
    }
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            signer: None,
            checkpoint_every: 1024,
            checkpoint_interval: Duration::from_secs(60),
            max_batch: 512,
        }
    }
}

impl std::fmt::Debug for AuditOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditOptions")
            .field("signer", &self.signer.as_ref().map(|s| s.key_id()))
            .field("checkpoint_every", &self.checkpoint_every)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

/// Options for [`Store::open_with`].
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// The audit trail.
    pub audit: AuditOptions,
}

/// Failures of the store, mapped to domain errors by [`From`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write.
    #[error("already exists")]
    Conflict,
    /// The database is unreachable, full, corrupt or otherwise failing.
    #[error("store unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// A stored value does not parse (schema drift or corruption).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// The group commit this transaction joined failed: none of the batch took effect.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The store was opened without a checkpoint signer.
    #[error("no audit checkpoint key configured")]
    NoSigner,
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A bulk read (audit verification) failed.
    #[error("store unavailable: {0}")]
    Bulk(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Error::new(ErrorCode::Conflict, "that name is already taken"),
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "store failure");
                Error::unavailable("the store")
            }
            StoreError::Corrupt(what) => {
                tracing::error!(what, "corrupt stored value");
                Error::internal()
            }
            StoreError::CommitFailed(cause) => {
                tracing::error!(error = %cause, "commit failed");
                Error::unavailable("the store")
            }
            StoreError::NoSigner => Error::unavailable("the audit checkpoint key"),
            StoreError::Invalid(why) => Error::new(ErrorCode::InvalidInput, why),
            StoreError::Bulk(cause) => {
                tracing::error!(error = %cause, "bulk read failed");
                Error::unavailable("the store")
            }
        }
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Unavailable(e),
    }
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// How to open a connection of its own (bulk reads of the audit trail).
    connect: SqliteConnectOptions,
    /// The database file.
    path: std::path::PathBuf,
    writer: Arc<Mutex<writer::Writer>>,
    shared: Arc<writer::Shared>,
    options: Arc<AuditOptions>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations,
    /// with default options: the audit trail is hash-chained but no checkpoints are signed
    /// (see [`Store::open_with`]).
    pub async fn open(path: &Path) -> StoreResult<Store> {
        Store::open_with(path, StoreOptions::default()).await
    }

    /// Opens (creating if needed) the SQLite database at `path`, applies pending migrations
    /// and loads the audit chain's head.
    pub async fn open_with(path: &Path, options: StoreOptions) -> StoreResult<Store> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = opts.connect().await.map_err(StoreError::Unavailable)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone())
            .await
            .map_err(StoreError::Unavailable)?;
        let audit = Arc::new(options.audit);
        let shared = Arc::new(writer::Shared::default());
        let store = Store {
            pool,
            connect: opts,
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer::Writer::new(
                writer,
                audit.clone(),
                shared.clone(),
            ))),
            shared,
            options: audit,
        };
        migrate::apply(&store).await?;
        store.writer.lock().await.load_head().await?;
        Ok(store)
    }

    /// Readiness: the database answers and every migration is applied.
    pub async fn ready(&self) -> StoreResult<()> {
        let applied = migrate::applied_version(&self.pool).await?;
        if applied == migrate::latest_version() {
            Ok(())
        } else {
            Err(StoreError::Corrupt("schema_migrations"))
        }
    }

    /// Starts a write transaction. Holds the writer lock until commit or drop; see
    /// [`WriteTx`] for how transactions are committed together.
    pub async fn write(&self) -> StoreResult<WriteTx> {
        WriteTx::begin(self.writer.clone(), &self.shared).await
    }

    /// Number of `COMMIT`s (each one fsync) since open: with the number of records appended,
    /// shows how well group commit batches.
    pub fn commit_count(&self) -> u64 {
        self.shared
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The audit options the store was opened with.
    pub fn audit_options(&self) -> &AuditOptions {
        &self.options
    }

    /// Closes the pool and the writer connection, waiting for them to finish (a batch still
    /// open is committed first).
    pub async fn close(&self) {
        let mut writer = self.writer.lock().await;
        writer.recover().await;
        writer.commit_batch().await;
        self.pool.close().await;
    }
}

#[cfg(feature = "fault-injection")]
impl Store {
    /// Test support: makes every later audit insert fail, as a full or broken disk would.
    pub async fn break_audit_for_tests(&self) -> StoreResult<()> {
        use sqlx::Executor;
        self.pool
            .execute(
                "CREATE TRIGGER IF NOT EXISTS audit_broken BEFORE INSERT ON audit_events
                 BEGIN SELECT RAISE(ABORT, 'audit trail unavailable (fault injection)'); END",
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Test support: makes every later `COMMIT` of a batch holding an audit record fail, as a
    /// disk that stops taking writes at the fsync would (a deferred constraint that only
    /// `COMMIT` checks, so every statement before it succeeds).
    pub async fn break_commit_for_tests(&self) -> StoreResult<()> {
        use sqlx::Executor;
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS fault_parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE IF NOT EXISTS fault_child (parent INTEGER
                   REFERENCES fault_parent(id) DEFERRABLE INITIALLY DEFERRED);
                 CREATE TRIGGER IF NOT EXISTS commit_broken AFTER INSERT ON audit_events
                 BEGIN INSERT INTO fault_child (parent) VALUES (-1); END",
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Test support: undoes [`Store::break_audit_for_tests`] and
    /// [`Store::break_commit_for_tests`].
    pub async fn heal_for_tests(&self) -> StoreResult<()> {
        use sqlx::Executor;
        self.pool
            .execute("DROP TRIGGER IF EXISTS audit_broken; DROP TRIGGER IF EXISTS commit_broken")
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
