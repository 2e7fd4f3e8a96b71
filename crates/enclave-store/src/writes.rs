//! The write transaction. Every change to the database happens through a [`WriteTx`], and every
//! use case that changes something appends its audit record to the same transaction.

use crate::{map_err, StoreResult};
use enclave_core::audit::AuditRecord;
use enclave_core::model::{ApiToken, ProjectRole, User};
use enclave_core::throttle::ThrottleState;
use enclave_core::Timestamp;
use sqlx::{Executor, SqliteConnection};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The one connection that writes, behind the writer lock.
pub(crate) struct Writer {
    pub(crate) conn: SqliteConnection,
    /// A transaction was begun and neither committed nor rolled back (its owner was dropped,
    /// e.g. because the client went away mid-request).
    dirty: bool,
}

impl Writer {
    pub(crate) fn new(conn: SqliteConnection) -> Writer {
        Writer { conn, dirty: false }
    }

    /// Rolls back a transaction left open by a dropped [`WriteTx`].
    pub(crate) async fn recover(&mut self) -> StoreResult<()> {
        if self.dirty {
            tracing::warn!("rolling back a write transaction abandoned mid-way");
            // "no transaction is active" is fine: SQLite may have rolled back already.
            let _ = self.conn.execute("ROLLBACK").await;
            self.dirty = false;
        }
        Ok(())
    }
}

/// An open write transaction on the writer connection, holding the writer lock. Dropping it
/// without [`WriteTx::commit`] — on an error, or when the request future is cancelled at any
/// await point — rolls everything back: at once if a runtime is available, and in any case
/// before the next transaction begins.
pub struct WriteTx {
    writer: Option<OwnedMutexGuard<Writer>>,
}

macro_rules! exec {
    ($self:ident, $sql:expr $(, $arg:expr)* $(,)?) => {{
        sqlx::query($sql)
            $(.bind($arg))*
            .execute($self.conn()?)
            .await
            .map_err(map_err)
            .map(|r| r.rows_affected())
    }};
}

impl WriteTx {
    pub(crate) async fn begin(lock: Arc<Mutex<Writer>>) -> StoreResult<WriteTx> {
        let mut writer = lock.lock_owned().await;
        writer.recover().await?;
        writer.dirty = true;
        if let Err(e) = writer.conn.execute("BEGIN IMMEDIATE").await {
            writer.dirty = false;
            return Err(map_err(e));
        }
        Ok(WriteTx {
            writer: Some(writer),
        })
    }

    pub(crate) fn conn(&mut self) -> StoreResult<&mut SqliteConnection> {
        self.writer
            .as_mut()
            .map(|w| &mut w.conn)
            .ok_or(crate::StoreError::Corrupt(
                "write transaction already finished",
            ))
    }

    /// Makes every change of this transaction durable.
    pub async fn commit(mut self) -> StoreResult<()> {
        let Some(mut writer) = self.writer.take() else {
            return Err(crate::StoreError::Corrupt(
                "write transaction already finished",
            ));
        };
        let result = writer.conn.execute("COMMIT").await;
        match result {
            Ok(_) => {
                writer.dirty = false;
                Ok(())
            }
            Err(e) => {
                writer.recover().await?;
                Err(map_err(e))
            }
        }
    }

    /// Runs a migration script and records its version.
    pub(crate) async fn apply_migration(
        &mut self,
        version: i64,
        name: &str,
        sql: &str,
    ) -> StoreResult<()> {
        self.conn()?.execute(sql).await.map_err(map_err)?;
        exec!(
            self,
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES ($1, $2, CAST(strftime('%s','now') AS INTEGER))",
            version,
            name,
        )?;
        Ok(())
    }

    /// Appends one audit record.
    pub async fn append_audit(&mut self, r: &AuditRecord) -> StoreResult<()> {
        let detail = serde_json::Value::Object(r.detail.clone()).to_string();
        exec!(
            self,
            "INSERT INTO audit_events (at, actor, auth, source, action, resource, project, outcome,
               request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            r.at.unix(),
            &r.actor,
            &r.auth,
            &r.source,
            &r.action,
            &r.resource,
            r.project.as_deref(),
            r.outcome.as_str(),
            &r.request_id,
            detail,
        )?;
        Ok(())
    }

    /// Inserts a user.
    pub async fn insert_user(&mut self, u: &User, password_hash: Option<&str>) -> StoreResult<()> {
        exec!(
            self,
            "INSERT INTO users (id, username, display_name, email, password_hash, platform_admin,
               disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            &u.id,
            &u.username,
            &u.display_name,
            &u.email,
            password_hash,
            u.platform_admin,
            u.disabled,
            u.created_at.unix(),
        )?;
        Ok(())
    }

    /// Stores a user's profile fields and flags.
    pub async fn update_user(&mut self, u: &User, now: Timestamp) -> StoreResult<u64> {
        exec!(
            self,
            "UPDATE users SET display_name = $1, email = $2, platform_admin = $3, disabled = $4,
               updated_at = $5 WHERE id = $6",
            &u.display_name,
            &u.email,
            u.platform_admin,
            u.disabled,
            now.unix(),
            &u.id,
        )
    }

    /// Replaces a user's password hash.
    pub async fn set_password(
        &mut self,
        user_id: &str,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<u64> {
        exec!(
            self,
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3",
            hash,
            now.unix(),
            user_id,
        )
    }

    /// Deletes a user (memberships, sessions and tokens go with it).
    pub async fn delete_user(&mut self, user_id: &str) -> StoreResult<u64> {
        exec!(self, "DELETE FROM users WHERE id = $1", user_id)
    }

    /// Number of enabled platform admins other than `except_user_id`.
    pub async fn other_admins(&mut self, except_user_id: &str) -> StoreResult<i64> {
        use sqlx::Row;
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM users WHERE platform_admin = $1 AND disabled = $2 AND id <> $3",
        )
        .bind(true)
        .bind(false)
        .bind(except_user_id)
        .fetch_one(self.conn()?)
        .await
        .map_err(map_err)?;
        r.try_get("n").map_err(map_err)
    }

    /// Inserts a group.
    pub async fn insert_group(
        &mut self,
        id: &str,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        exec!(
            self,
            "INSERT INTO groups (id, name, description, created_at) VALUES ($1, $2, $3, $4)",
            id,
            name,
            description,
            now.unix(),
        )?;
        Ok(())
    }

    /// Updates a group's description.
    pub async fn update_group(&mut self, id: &str, description: &str) -> StoreResult<u64> {
        exec!(
            self,
            "UPDATE groups SET description = $1 WHERE id = $2",
            description,
            id
        )
    }

    /// Deletes a group.
    pub async fn delete_group(&mut self, id: &str) -> StoreResult<u64> {
        exec!(self, "DELETE FROM groups WHERE id = $1", id)
    }

    /// Adds a member (idempotent); returns whether it was added now.
    pub async fn add_group_member(
        &mut self,
        group_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let n = exec!(
            self,
            "INSERT INTO group_members (group_id, user_id, added_at) VALUES ($1, $2, $3)
             ON CONFLICT (group_id, user_id) DO NOTHING",
            group_id,
            user_id,
            now.unix(),
        )?;
        Ok(n > 0)
    }

    /// Removes a member; returns whether one was removed.
    pub async fn remove_group_member(
        &mut self,
        group_id: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        let n = exec!(
            self,
            "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
            group_id,
            user_id
        )?;
        Ok(n > 0)
    }

    /// Inserts a project.
    pub async fn insert_project(
        &mut self,
        id: &str,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        exec!(
            self,
            "INSERT INTO projects (id, name, description, created_at) VALUES ($1, $2, $3, $4)",
            id,
            name,
            description,
            now.unix(),
        )?;
        Ok(())
    }

    /// Updates a project's description.
    pub async fn update_project(&mut self, id: &str, description: &str) -> StoreResult<u64> {
        exec!(
            self,
            "UPDATE projects SET description = $1 WHERE id = $2",
            description,
            id
        )
    }

    /// Deletes a project with its memberships.
    pub async fn delete_project(&mut self, id: &str) -> StoreResult<u64> {
        exec!(self, "DELETE FROM projects WHERE id = $1", id)
    }

    /// Sets a member's role (insert or update).
    pub async fn set_project_member(
        &mut self,
        project_id: &str,
        user_id: &str,
        role: ProjectRole,
        now: Timestamp,
    ) -> StoreResult<()> {
        exec!(
            self,
            "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
            project_id,
            user_id,
            role.as_str(),
            now.unix(),
        )?;
        Ok(())
    }

    /// Removes a member; returns whether one was removed.
    pub async fn remove_project_member(
        &mut self,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        let n = exec!(
            self,
            "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2",
            project_id,
            user_id
        )?;
        Ok(n > 0)
    }

    /// Names of the projects whose only owner is `user_id`, in name order.
    pub async fn projects_only_owned_by(&mut self, user_id: &str) -> StoreResult<Vec<String>> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT p.name FROM projects p JOIN project_members m ON m.project_id = p.id
             WHERE m.user_id = $1 AND m.role = 'owner'
               AND (SELECT COUNT(*) FROM project_members o
                    WHERE o.project_id = p.id AND o.role = 'owner') = 1
             ORDER BY p.name",
        )
        .bind(user_id)
        .fetch_all(self.conn()?)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("name").map_err(map_err))
            .collect()
    }

    /// Number of owners of a project.
    pub async fn count_owners(&mut self, project_id: &str) -> StoreResult<i64> {
        use sqlx::Row;
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM project_members WHERE project_id = $1 AND role = 'owner'",
        )
        .bind(project_id)
        .fetch_one(self.conn()?)
        .await
        .map_err(map_err)?;
        r.try_get("n").map_err(map_err)
    }

    /// Inserts a session.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_session(
        &mut self,
        id: &str,
        secret_hash: &str,
        user_id: &str,
        auth_method: &str,
        source: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        exec!(
            self,
            "INSERT INTO sessions (id, secret_hash, user_id, auth_method, source, created_at,
               last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            id,
            secret_hash,
            user_id,
            auth_method,
            source,
            now.unix(),
        )?;
        Ok(())
    }

    /// Records activity on a session.
    pub async fn touch_session(&mut self, id: &str, now: Timestamp) -> StoreResult<u64> {
        exec!(
            self,
            "UPDATE sessions SET last_seen_at = $1 WHERE id = $2",
            now.unix(),
            id
        )
    }

    /// Ends one session.
    pub async fn delete_session(&mut self, id: &str) -> StoreResult<u64> {
        exec!(self, "DELETE FROM sessions WHERE id = $1", id)
    }

    /// Ends every session of a user; returns how many.
    pub async fn delete_sessions_of(&mut self, user_id: &str) -> StoreResult<u64> {
        exec!(self, "DELETE FROM sessions WHERE user_id = $1", user_id)
    }

    /// Removes sessions idle since before `idle_before` or created before `created_before`.
    pub async fn prune_sessions(
        &mut self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> StoreResult<u64> {
        exec!(
            self,
            "DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2",
            idle_before.unix(),
            created_before.unix()
        )
    }

    /// Inserts a token.
    pub async fn insert_token(&mut self, t: &ApiToken, secret_hash: &str) -> StoreResult<()> {
        exec!(
            self,
            "INSERT INTO api_tokens (id, secret_hash, user_id, name, scope, projects, created_at,
               expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &t.id,
            secret_hash,
            &t.user_id,
            &t.name,
            t.scope.as_str(),
            t.projects.join(","),
            t.created_at.unix(),
            t.expires_at.unix(),
        )?;
        Ok(())
    }

    /// Records a token's use.
    pub async fn touch_token(&mut self, id: &str, now: Timestamp) -> StoreResult<u64> {
        exec!(
            self,
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
            now.unix(),
            id
        )
    }

    /// Revokes one token; returns whether it was live.
    pub async fn revoke_token(&mut self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let n = exec!(
            self,
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            now.unix(),
            id
        )?;
        Ok(n > 0)
    }

    /// Revokes every live token of a user; returns how many.
    pub async fn revoke_tokens_of(&mut self, user_id: &str, now: Timestamp) -> StoreResult<u64> {
        exec!(
            self,
            "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            now.unix(),
            user_id
        )
    }

    /// Stores throttle state for a key.
    pub async fn put_throttle(&mut self, key: &str, s: &ThrottleState) -> StoreResult<()> {
        exec!(
            self,
            "INSERT INTO login_throttle (key, failures, window_start, locked_until)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
               window_start = excluded.window_start, locked_until = excluded.locked_until",
            key,
            i64::from(s.failures),
            s.window_start.unix(),
            s.locked_until.map(Timestamp::unix),
        )?;
        Ok(())
    }

    /// Forgets a key's failures and lockout; returns whether there was any.
    pub async fn clear_throttle(&mut self, key: &str) -> StoreResult<bool> {
        Ok(exec!(self, "DELETE FROM login_throttle WHERE key = $1", key)? > 0)
    }

    /// Removes throttle rows whose window and lockout both ended before `before`.
    pub async fn prune_throttle(
        &mut self,
        window_start_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64> {
        exec!(
            self,
            "DELETE FROM login_throttle WHERE window_start < $1
               AND (locked_until IS NULL OR locked_until < $2)",
            window_start_before.unix(),
            now.unix()
        )
    }

    /// Inserts a setup token, replacing unused ones.
    pub async fn insert_setup_token(
        &mut self,
        id: &str,
        secret_hash: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        exec!(self, "DELETE FROM setup_tokens WHERE used_at IS NULL")?;
        exec!(
            self,
            "INSERT INTO setup_tokens (id, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            id,
            secret_hash,
            now.unix(),
            expires_at.unix(),
        )?;
        Ok(())
    }

    /// Marks a setup token used; false if it was already used.
    pub async fn use_setup_token(&mut self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let n = exec!(
            self,
            "UPDATE setup_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
            now.unix(),
            id
        )?;
        Ok(n > 0)
    }

    /// Number of users, read inside the transaction (for the one-time setup).
    pub async fn count_users(&mut self) -> StoreResult<i64> {
        use sqlx::Row;
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.conn()?)
            .await
            .map_err(map_err)?;
        r.try_get("n").map_err(map_err)
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = writer.recover().await;
                });
            }
            // Without a runtime the guard is released here; `recover` runs at the next begin.
        }
    }
}
