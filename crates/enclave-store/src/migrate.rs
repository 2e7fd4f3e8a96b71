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
        2,
        "audit_chain",
        include_str!("../migrations/sqlite/0002_audit_chain.sql"),
    ),
    (
        3,
        "policy",
        include_str!("../migrations/sqlite/0003_policy.sql"),
    ),
    (
        4,
        "keys_secrets",
        include_str!("../migrations/sqlite/0004_keys_secrets.sql"),
    ),
    (
        5,
        "jobs",
        include_str!("../migrations/sqlite/0005_jobs.sql"),
    ),
    (
        6,
        "notebooks",
        include_str!("../migrations/sqlite/0006_notebooks.sql"),
    ),
    (
        7,
        "identity",
        include_str!("../migrations/sqlite/0007_identity.sql"),
    ),
    (
        8,
        "scim",
        include_str!("../migrations/sqlite/0008_scim.sql"),
    ),
    (9, "mfa", include_str!("../migrations/sqlite/0009_mfa.sql")),
    (
        10,
        "webauthn",
        include_str!("../migrations/sqlite/0010_webauthn.sql"),
    ),
    (
        11,
        "notebook_subdomains",
        include_str!("../migrations/sqlite/0011_notebook_subdomains.sql"),
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
    // Every known migration not yet recorded, in order (not only those above the highest
    // applied one: a database created while a lower-numbered migration was still being
    // written gets it too).
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(&store.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| r.try_get::<i64, _>("version"))
        .collect::<Result<_, _>>()
        .map_err(map_err)?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
        let mut tx = store.write().await?;
        tx.apply_migration(*version, name, sql).await?;
        if *version == 2 {
            // Chain the records written before the chain existed (see 0002_audit_chain.sql).
            let n = tx.chain_legacy_records().await?;
            if n > 0 {
                tracing::info!(
                    records = n,
                    "chained audit records written before migration 2"
                );
            }
        }
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}
