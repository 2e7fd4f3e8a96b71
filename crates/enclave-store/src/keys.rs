//! Storage of data-encryption keys (wrapped, never in the clear), versioned secrets (sealed,
//! never in the clear) and workloads as principals. The store never sees key material or
//! secret values: it keeps the opaque blobs the application hands it.

use crate::policy::{corrupt, s, ts};
use crate::writes::WriteTx;
use crate::{map_err, Store, StoreResult};
use enclave_core::secrets::{SecretMeta, SecretVersionMeta};
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// The state of one data-key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Seals new data (one per scope).
    Active,
    /// Opens old data only; re-encryption moves its data to the active version.
    DecryptOnly,
    /// Its material is gone; nothing may still need it.
    Retired,
}

impl KeyState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt_only",
            KeyState::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Option<KeyState> {
        match s {
            "active" => Some(KeyState::Active),
            "decrypt_only" => Some(KeyState::DecryptOnly),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// One data-key version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRow {
    /// `platform` or `project:<project id>`.
    pub scope: String,
    /// Version, from 1.
    pub version: u32,
    /// The key wrapped by the master key (`None` once retired).
    pub wrapped: Option<Vec<u8>>,
    /// Which master key wrapped it.
    pub master_key_id: String,
    /// Its state.
    pub state: KeyState,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was retired.
    pub retired_at: Option<Timestamp>,
}

/// A sealed secret version waiting for re-encryption.
#[derive(Debug, Clone)]
pub struct SealedVersion {
    /// The secret's id.
    pub secret_id: String,
    /// The version.
    pub version: u32,
    /// Its ciphertext.
    pub ciphertext: Vec<u8>,
    /// The key version that sealed it.
    pub key_version: u32,
}

/// A running workload as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadFact {
    /// Workload id.
    pub id: String,
    /// Its project's name.
    pub project: String,
    /// `notebook`, `job` or `endpoint`.
    pub kind: String,
    /// The user who launched it.
    pub owner: Option<String>,
}

fn u32_of(r: &SqliteRow, c: &'static str) -> StoreResult<u32> {
    u32::try_from(r.try_get::<i64, _>(c).map_err(map_err)?).map_err(|_| corrupt(c))
}

fn data_key(r: &SqliteRow) -> StoreResult<DataKeyRow> {
    Ok(DataKeyRow {
        scope: s(r, "scope")?,
        version: u32_of(r, "version")?,
        wrapped: r.try_get("wrapped").map_err(map_err)?,
        master_key_id: s(r, "master_key_id")?,
        state: KeyState::parse(&s(r, "state")?).ok_or(corrupt("data_keys.state"))?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("data_keys.created_at"))?,
        retired_at: ts(r, "retired_at")?,
    })
}

const KEY_SELECT: &str =
    "SELECT scope, version, wrapped, master_key_id, state, created_at, retired_at FROM data_keys";

const SECRET_SELECT: &str = "SELECT s.id, COALESCE(p.name, '') AS project, u.username AS owner,
    s.name, s.description, s.current_version, s.created_by, s.created_at, s.updated_at
    FROM secrets s LEFT JOIN projects p ON p.id = s.project_id
    LEFT JOIN users u ON u.id = s.owner_id";

/// Who holds a secret, by store id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder<'a> {
    /// A project, by id.
    Project(&'a str),
    /// A person (personal secrets), by user id.
    Person(&'a str),
}

impl Holder<'_> {
    /// The column and value that select this holder's secrets.
    fn column(self) -> (&'static str, String) {
        match self {
            Holder::Project(id) => ("project_id", id.to_string()),
            Holder::Person(id) => ("owner_id", id.to_string()),
        }
    }
}

fn secret(r: &SqliteRow) -> StoreResult<SecretMeta> {
    Ok(SecretMeta {
        id: s(r, "id")?,
        project: s(r, "project")?,
        owner: r.try_get("owner").map_err(map_err)?,
        name: s(r, "name")?,
        description: s(r, "description")?,
        current_version: u32_of(r, "current_version")?,
        created_by: s(r, "created_by")?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("secrets.created_at"))?,
        updated_at: ts(r, "updated_at")?.ok_or(corrupt("secrets.updated_at"))?,
    })
}

impl Store {
    /// One data-key version.
    pub async fn data_key(&self, scope: &str, version: u32) -> StoreResult<Option<DataKeyRow>> {
        sqlx::query(&format!("{KEY_SELECT} WHERE scope = $1 AND version = $2"))
            .bind(scope)
            .bind(i64::from(version))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(data_key)
            .transpose()
    }

    /// Every version of a scope's data key (or of every scope), by scope then version.
    pub async fn data_keys(&self, scope: Option<&str>) -> StoreResult<Vec<DataKeyRow>> {
        sqlx::query(&format!(
            "{KEY_SELECT} WHERE $1 IS NULL OR scope = $1 ORDER BY scope, version"
        ))
        .bind(scope)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(data_key)
        .collect()
    }

    /// Data keys still wrapped by a master key other than `master_key_id` (at most `limit`).
    pub async fn data_keys_not_wrapped_by(
        &self,
        master_key_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<DataKeyRow>> {
        sqlx::query(&format!(
            "{KEY_SELECT} WHERE master_key_id <> $1 AND wrapped IS NOT NULL
             ORDER BY scope, version LIMIT $2"
        ))
        .bind(master_key_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(data_key)
        .collect()
    }

    /// How many secret versions are sealed with each version of `scope`'s key:
    /// `(key version, count)`.
    pub async fn sealed_counts(&self, scope: &str) -> StoreResult<Vec<(u32, u64)>> {
        sqlx::query(
            "SELECT key_version, COUNT(*) AS n FROM secret_versions WHERE key_scope = $1
             GROUP BY key_version ORDER BY key_version",
        )
        .bind(scope)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            let n: i64 = r.try_get("n").map_err(map_err)?;
            Ok((u32_of(r, "key_version")?, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
    }

    /// Secret versions of `scope` sealed with a key version other than `active` (at most
    /// `limit`), for re-encryption.
    pub async fn stale_secret_versions(
        &self,
        scope: &str,
        active: u32,
        limit: u32,
    ) -> StoreResult<Vec<SealedVersion>> {
        sqlx::query(
            "SELECT secret_id, version, ciphertext, key_version FROM secret_versions
             WHERE key_scope = $1 AND key_version <> $2 ORDER BY secret_id, version LIMIT $3",
        )
        .bind(scope)
        .bind(i64::from(active))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(SealedVersion {
                secret_id: s(r, "secret_id")?,
                version: u32_of(r, "version")?,
                ciphertext: r.try_get("ciphertext").map_err(map_err)?,
                key_version: u32_of(r, "key_version")?,
            })
        })
        .collect()
    }

    /// A holder's secrets, by name.
    pub async fn list_secrets(&self, holder: Holder<'_>) -> StoreResult<Vec<SecretMeta>> {
        let (column, id) = holder.column();
        sqlx::query(&format!(
            "{SECRET_SELECT} WHERE s.{column} = $1 ORDER BY s.name"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(secret)
        .collect()
    }

    /// One of a holder's secrets, by name.
    pub async fn secret(&self, holder: Holder<'_>, name: &str) -> StoreResult<Option<SecretMeta>> {
        let (column, id) = holder.column();
        sqlx::query(&format!(
            "{SECRET_SELECT} WHERE s.{column} = $1 AND s.name = $2"
        ))
        .bind(id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(secret)
        .transpose()
    }

    /// Several secrets of one holder with the sealed value of their current version, in one
    /// read (for resolving an injection plan). Names not found are simply absent.
    pub async fn current_secrets(
        &self,
        holder: Holder<'_>,
        names: &[&str],
    ) -> StoreResult<Vec<(SecretMeta, Vec<u8>)>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let (column, id) = holder.column();
        let placeholders: Vec<String> = (2..names.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT s.id, COALESCE(p.name, '') AS project, u.username AS owner, s.name,
               s.description, s.current_version, s.created_by, s.created_at, s.updated_at,
               v.ciphertext
             FROM secrets s LEFT JOIN projects p ON p.id = s.project_id
             LEFT JOIN users u ON u.id = s.owner_id
             JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
             WHERE s.{column} = $1 AND s.name IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(id);
        for n in names {
            q = q.bind(*n);
        }
        q.fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| Ok((secret(r)?, r.try_get("ciphertext").map_err(map_err)?)))
            .collect()
    }

    /// A secret's versions, newest first. Never the values.
    pub async fn secret_versions(&self, secret_id: &str) -> StoreResult<Vec<SecretVersionMeta>> {
        sqlx::query(
            "SELECT version, size, created_by, created_at, key_version FROM secret_versions
             WHERE secret_id = $1 ORDER BY version DESC",
        )
        .bind(secret_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(SecretVersionMeta {
                version: u32_of(r, "version")?,
                size: u32_of(r, "size")?,
                created_by: s(r, "created_by")?,
                created_at: ts(r, "created_at")?.ok_or(corrupt("secret_versions.created_at"))?,
                key_version: u32_of(r, "key_version")?,
            })
        })
        .collect()
    }

    /// The sealed value of one secret version.
    pub async fn secret_ciphertext(
        &self,
        secret_id: &str,
        version: u32,
    ) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query("SELECT ciphertext FROM secret_versions WHERE secret_id = $1 AND version = $2")
            .bind(secret_id)
            .bind(i64::from(version))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| r.try_get("ciphertext").map_err(map_err))
            .transpose()
    }

    /// Users whose password hash is still stored in the clear (an argon2 PHC string), at most
    /// `limit`: `(user id, hash)`.
    pub async fn plain_password_hashes(&self, limit: u32) -> StoreResult<Vec<(String, String)>> {
        sqlx::query(
            "SELECT id, password_hash FROM users WHERE password_hash LIKE '$argon2%' LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| Ok((s(r, "id")?, s(r, "password_hash")?)))
        .collect()
    }

    /// The user who launched a running workload.
    pub async fn workload_owner(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query("SELECT owner_id FROM workloads WHERE id = $1 AND ended_at IS NULL")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?
                .map(|r| r.try_get::<Option<String>, _>("owner_id"))
                .transpose()
                .map_err(map_err)?
                .flatten(),
        )
    }

    /// A project's name by its id.
    pub async fn project_name_by_id(&self, id: &str) -> StoreResult<Option<String>> {
        sqlx::query("SELECT name FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| s(&r, "name"))
            .transpose()
    }

    /// Running workloads, for the policy directory.
    pub(crate) async fn workload_facts(
        c: &mut sqlx::SqliteConnection,
    ) -> StoreResult<Vec<WorkloadFact>> {
        sqlx::query(
            "SELECT w.id, p.name AS project, w.kind, w.owner_id FROM workloads w
             JOIN projects p ON p.id = w.project_id WHERE w.ended_at IS NULL",
        )
        .fetch_all(c)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(WorkloadFact {
                id: s(r, "id")?,
                project: s(r, "project")?,
                kind: s(r, "kind")?,
                owner: r.try_get("owner_id").map_err(map_err)?,
            })
        })
        .collect()
    }
}

impl WriteTx {
    /// The active version of a scope's data key, read inside this transaction.
    pub async fn active_data_key(&mut self, scope: &str) -> StoreResult<Option<DataKeyRow>> {
        sqlx::query(&format!(
            "{KEY_SELECT} WHERE scope = $1 AND state = 'active' ORDER BY version DESC LIMIT 1"
        ))
        .bind(scope)
        .fetch_optional(self.sql().await?)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(data_key)
        .transpose()
    }

    /// The highest version of a scope's data key, whatever its state.
    pub async fn latest_data_key_version(&mut self, scope: &str) -> StoreResult<u32> {
        let v: Option<i64> =
            sqlx::query("SELECT MAX(version) AS v FROM data_keys WHERE scope = $1")
                .bind(scope)
                .fetch_one(self.sql().await?)
                .await
                .map_err(map_err)?
                .try_get("v")
                .map_err(map_err)?;
        u32::try_from(v.unwrap_or(0)).map_err(|_| corrupt("data_keys.version"))
    }

    /// Adds a data-key version.
    pub async fn insert_data_key(&mut self, k: &DataKeyRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO data_keys (scope, version, wrapped, master_key_id, state, created_at,
               retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.scope)
        .bind(i64::from(k.version))
        .bind(k.wrapped.as_deref())
        .bind(&k.master_key_id)
        .bind(k.state.as_str())
        .bind(k.created_at.unix())
        .bind(k.retired_at.map(Timestamp::unix))
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Moves every active version of `scope` to decrypt-only.
    pub async fn demote_data_keys(&mut self, scope: &str) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE data_keys SET state = 'decrypt_only' WHERE scope = $1 AND state = 'active'",
        )
        .bind(scope)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    /// Retires a decrypt-only version: its wrapped material is erased. Returns rows changed
    /// (0 when it is not decrypt-only).
    pub async fn retire_data_key(
        &mut self,
        scope: &str,
        version: u32,
        now: Timestamp,
    ) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE data_keys SET state = 'retired', wrapped = NULL, retired_at = $3
             WHERE scope = $1 AND version = $2 AND state = 'decrypt_only'",
        )
        .bind(scope)
        .bind(i64::from(version))
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    /// How many secret versions still use one key version (inside this transaction).
    pub async fn count_sealed_with(&mut self, scope: &str, version: u32) -> StoreResult<u64> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM secret_versions WHERE key_scope = $1 AND key_version = $2",
        )
        .bind(scope)
        .bind(i64::from(version))
        .fetch_one(self.sql().await?)
        .await
        .map_err(map_err)?
        .try_get("n")
        .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Replaces a data key's wrapping (master-key rotation), only if it is still wrapped by
    /// `old_master`. Returns rows changed.
    pub async fn rewrap_data_key(
        &mut self,
        scope: &str,
        version: u32,
        old_master: &str,
        wrapped: &[u8],
        new_master: &str,
    ) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE data_keys SET wrapped = $4, master_key_id = $5
             WHERE scope = $1 AND version = $2 AND master_key_id = $3 AND wrapped IS NOT NULL",
        )
        .bind(scope)
        .bind(i64::from(version))
        .bind(old_master)
        .bind(wrapped)
        .bind(new_master)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    /// A holder's secret by name: `(id, current version)`, read inside this transaction.
    pub async fn secret_head(
        &mut self,
        holder: Holder<'_>,
        name: &str,
    ) -> StoreResult<Option<(String, u32)>> {
        let (column, id) = holder.column();
        sqlx::query(&format!(
            "SELECT id, current_version FROM secrets WHERE {column} = $1 AND name = $2"
        ))
        .bind(id)
        .bind(name)
        .fetch_optional(self.sql().await?)
        .await
        .map_err(map_err)?
        .map(|r| Ok((s(&r, "id")?, u32_of(&r, "current_version")?)))
        .transpose()
    }

    /// How many secrets a holder has.
    pub async fn count_secrets(&mut self, holder: Holder<'_>) -> StoreResult<i64> {
        let (column, id) = holder.column();
        sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM secrets WHERE {column} = $1"
        ))
        .bind(id)
        .fetch_one(self.sql().await?)
        .await
        .map_err(map_err)?
        .try_get("n")
        .map_err(map_err)
    }

    /// Creates a secret (its first version is added with [`WriteTx::insert_secret_version`]).
    pub async fn insert_secret(&mut self, m: &SecretMeta, holder: Holder<'_>) -> StoreResult<()> {
        let (project_id, owner_id) = match holder {
            Holder::Project(id) => (Some(id), None),
            Holder::Person(id) => (None, Some(id)),
        };
        sqlx::query(
            "INSERT INTO secrets (id, project_id, owner_id, name, description, current_version,
               created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&m.id)
        .bind(project_id)
        .bind(owner_id)
        .bind(&m.name)
        .bind(&m.description)
        .bind(i64::from(m.current_version))
        .bind(&m.created_by)
        .bind(m.created_at.unix())
        .bind(m.updated_at.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Points a secret at a new current version (and a new description, when given).
    pub async fn set_secret_version(
        &mut self,
        secret_id: &str,
        version: u32,
        description: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE secrets SET current_version = $2, updated_at = $3,
               description = COALESCE($4, description) WHERE id = $1",
        )
        .bind(secret_id)
        .bind(i64::from(version))
        .bind(now.unix())
        .bind(description)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    /// Stores a sealed version of a secret.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_secret_version(
        &mut self,
        secret_id: &str,
        version: u32,
        ciphertext: &[u8],
        key_scope: &str,
        key_version: u32,
        size: u32,
        created_by: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO secret_versions (secret_id, version, ciphertext, key_scope, key_version,
               size, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(secret_id)
        .bind(i64::from(version))
        .bind(ciphertext)
        .bind(key_scope)
        .bind(i64::from(key_version))
        .bind(i64::from(size))
        .bind(created_by)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Replaces one version's ciphertext after re-encryption, only if it is still sealed with
    /// `old_key_version` (a concurrent delete or re-encryption wins). Returns rows changed.
    pub async fn reseal_secret_version(
        &mut self,
        secret_id: &str,
        version: u32,
        old_key_version: u32,
        ciphertext: &[u8],
        key_version: u32,
    ) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE secret_versions SET ciphertext = $4, key_version = $5
             WHERE secret_id = $1 AND version = $2 AND key_version = $3",
        )
        .bind(secret_id)
        .bind(i64::from(version))
        .bind(i64::from(old_key_version))
        .bind(ciphertext)
        .bind(i64::from(key_version))
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    /// Replaces a password hash with its sealed form, only if it is still `old`.
    pub async fn reseal_password_hash(
        &mut self,
        user_id: &str,
        old: &str,
        new: &str,
    ) -> StoreResult<u64> {
        Ok(
            sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                .bind(user_id)
                .bind(old)
                .bind(new)
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?
                .rows_affected(),
        )
    }

    /// Deletes a secret and every version of it. Returns rows removed.
    pub async fn delete_secret(&mut self, secret_id: &str) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM secrets WHERE id = $1")
            .bind(secret_id)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?
            .rows_affected())
    }

    /// Registers a running workload (its roles are role bindings with subject kind
    /// `workload`).
    pub async fn insert_workload(
        &mut self,
        w: &WorkloadFact,
        project_id: &str,
        name: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO workloads (id, project_id, kind, name, owner_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&w.id)
        .bind(project_id)
        .bind(&w.kind)
        .bind(name)
        .bind(w.owner.as_deref())
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Marks a workload ended: it no longer acts as a principal, and its role bindings go.
    pub async fn end_workload(&mut self, id: &str, now: Timestamp) -> StoreResult<u64> {
        let n =
            sqlx::query("UPDATE workloads SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
                .bind(id)
                .bind(now.unix())
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
        sqlx::query(
            "DELETE FROM role_bindings WHERE subject_kind = 'workload' AND subject_id = $1",
        )
        .bind(id)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(n)
    }
}
