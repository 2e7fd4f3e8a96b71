//! Versioned migrations, embedded in the binary and applied in order at open.

use crate::{map_err, Store, StoreError, StoreResult};
use sqlx::{Executor, Row, SqlitePool};

/// `(version, name, SQL)` in ascending version order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        3,
        "policy",
        include_str!("../migrations/sqlite/0003_policy.sql"),
    ),
];

pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

pub(crate) async fn applied_version(pool: &SqlitePool) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(map_err)?;
    row.try_get::<i64, _>("v").map_err(map_err)
}

pub(crate) async fn apply(store: &Store) -> StoreResult<()> {
    {
        let mut writer = store.writer.lock().await;
        writer
            .conn
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .await
            .map_err(map_err)?;
    }
    let current = applied_version(&store.pool).await?;
    if current > latest_version() {
        tracing::error!(
            current,
            known = latest_version(),
            "database is newer than this binary"
        );
        return Err(StoreError::Corrupt(
            "schema_migrations (database newer than binary)",
        ));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let mut tx = store.write().await?;
        tx.apply_migration(*version, name, sql).await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}
