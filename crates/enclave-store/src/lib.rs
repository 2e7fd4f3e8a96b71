//! Enclave's persistent store. This is the only crate that speaks SQL.
//!
//! Invariants:
//! * Reads go through the pool; every write goes through [`WriteTx`], one at a time
//!   (`BEGIN IMMEDIATE` on one dedicated writer connection behind an in-process lock), so
//!   SQLite never fails a write with `SQLITE_BUSY` halfway through a use case. A transaction
//!   abandoned mid-way (its request cancelled) is rolled back before the next one begins.
//! * A write and the audit record describing it commit in the same transaction: if the record
//!   cannot be written, the change is not made either.
//! * Commits are durable (`synchronous=FULL`) before the caller answers its client.
//! * SQL is written to run on SQLite and PostgreSQL alike (`$n` parameters, no upserts beyond
//!   `ON CONFLICT … DO UPDATE`, timestamps as integers); only the migration files differ.

mod migrate;
mod policy;
mod reads;
mod writes;

use enclave_core::{Error, ErrorCode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

pub use migrate::MIGRATIONS;
pub use policy::{AuthzFacts, ProjectFacts, UserFact};
pub use reads::{AuditPage, UserCredentials};
pub use writes::WriteTx;

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
    writer: Arc<Mutex<writes::Writer>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Store> {
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
            .connect_with(opts)
            .await
            .map_err(StoreError::Unavailable)?;
        let store = Store {
            pool,
            writer: Arc::new(Mutex::new(writes::Writer::new(writer))),
        };
        migrate::apply(&store).await?;
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

    /// Starts the single write transaction. Holds the writer lock until commit or drop.
    pub async fn write(&self) -> StoreResult<WriteTx> {
        WriteTx::begin(self.writer.clone()).await
    }

    /// Closes the pool and the writer connection, waiting for them to finish.
    pub async fn close(&self) {
        let mut writer = self.writer.lock().await;
        let _ = writer.recover().await;
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
}
