//! The write transaction. Every change to the database happens through a [`WriteTx`], and
//! every use case that changes something appends its audit record to the same transaction.
//! How transactions share one `COMMIT` (group commit) and how the audit chain is built is
//! described in `writer.rs`.

use crate::writer::{batch_result, detach, PendingRecord, Queued, Waiting, Writer};
use crate::{map_err, StoreError, StoreResult};
use enclave_audit::{canonical_detail, Chainer, Checkpoint, RecordView, GENESIS};
use enclave_core::audit::AuditRecord;
use enclave_core::model::{ApiToken, ProjectRole, User};
use enclave_core::throttle::ThrottleState;
use enclave_core::Timestamp;
use sqlx::{Executor, Row, SqliteConnection};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How a session was authenticated, as stored with it.
#[derive(Debug, Clone, Copy)]
pub struct SessionAuth<'a> {
    /// The method: `password`, `ldap`, `oidc`.
    pub method: &'a str,
    /// Space-separated authentication method references (OIDC `amr`, or Enclave's own).
    pub amr: &'a str,
    /// The authentication context class (OIDC `acr`), when the provider gave one.
    pub acr: Option<&'a str>,
}

/// An open write transaction on the writer connection, holding the writer lock. Dropping it
/// without [`WriteTx::commit`] — on an error, or when the request future is cancelled at any
/// await point — rolls everything it did back: at once if a runtime is available, and in any
/// case before the next transaction goes on. Its SQL runs inside a savepoint of the batch's
/// outer transaction; its audit records are chained at once and written with the batch.
pub struct WriteTx {
    writer: Option<OwnedMutexGuard<Writer>>,
    lock: Arc<Mutex<Writer>>,
}

macro_rules! exec {
    ($self:ident, $sql:expr $(, $arg:expr)* $(,)?) => {{
        sqlx::query($sql)
            $(.bind($arg))*
            .execute($self.sql().await?)
            .await
            .map_err(map_err)
            .map(|r| r.rows_affected())
    }};
}

impl WriteTx {
    pub(crate) async fn begin(
        lock: Arc<Mutex<Writer>>,
        shared: &crate::writer::Shared,
    ) -> StoreResult<WriteTx> {
        let mut writer = {
            let _queued = Queued::new(&shared.queued);
            lock.clone().lock_owned().await
        };
        writer.recover().await;
        writer.begin_tx().await?;
        Ok(WriteTx {
            writer: Some(writer),
            lock,
        })
    }

    fn writer(&mut self) -> StoreResult<&mut Writer> {
        self.writer
            .as_deref_mut()
            .ok_or(StoreError::Corrupt("write transaction already finished"))
    }

    /// The connection, inside this transaction's savepoint (opened now if needed). Use this
    /// for every statement: a statement run without it cannot be undone on its own.
    pub(crate) async fn sql(&mut self) -> StoreResult<&mut SqliteConnection> {
        let w = self.writer()?;
        w.ensure_savepoint().await?;
        Ok(&mut w.conn)
    }

    /// Makes every change of this transaction durable: returns `Ok` only once the batch it
    /// joined has been committed to disk. On `Err` none of its changes took effect.
    pub async fn commit(mut self) -> StoreResult<()> {
        let Some(mut w) = self.writer.take() else {
            return Err(StoreError::Corrupt("write transaction already finished"));
        };
        let Some(batch) = w.batch.as_mut() else {
            return Err(StoreError::Corrupt("write transaction without a batch"));
        };
        // The savepoint stays: the outer COMMIT commits it with the batch; so do the records.
        batch.members += 1;
        let members = batch.members;
        let id = batch.id;
        let mut done = batch.done.subscribe();
        w.tx = None;
        let last_in_line = w.shared.queued.load(Ordering::Acquire) == 0;
        if last_in_line || members >= w.options.max_batch {
            if let Some(inline) = detach(async move {
                let mut w = w;
                w.commit_batch().await;
            }) {
                inline.await;
            }
        } else {
            drop(w);
        }
        let mut waiting = Waiting {
            lock: self.lock.clone(),
            batch: id,
            armed: true,
        };
        let result = loop {
            tokio::select! {
                biased;
                r = batch_result(&mut done) => break r,
                mut w = self.lock.clone().lock_owned() => {
                    // Everyone who was in line before us has had their turn.
                    w.recover().await;
                    if w.batch_id() == Some(id) {
                        if let Some(inline) = detach(async move {
                            let mut w = w;
                            w.commit_batch().await;
                        }) {
                            inline.await;
                        }
                    }
                }
            }
        };
        waiting.armed = false;
        result.map_err(StoreError::CommitFailed)
    }

    /// Runs a migration script and records its version.
    /// Runs a migration script and records its version.
    pub(crate) async fn apply_migration(
        &mut self,
        version: i64,
        name: &str,
        sql: &str,
    ) -> StoreResult<()> {
        self.sql().await?.execute(sql).await.map_err(map_err)?;
        exec!(
            self,
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES ($1, $2, CAST(strftime('%s','now') AS INTEGER))",
            version,
            name,
        )?;
        Ok(())
    }

    /// Appends one audit record: takes the next sequence number, chains its hash to the
    /// previous record's and signs a checkpoint when one is due. The record is written with
    /// the batch this transaction commits in (see `writer.rs`); if that write or the
    /// `COMMIT` fails, [`WriteTx::commit`] fails and nothing of the transaction takes effect.
    pub async fn append_audit(&mut self, r: &AuditRecord) -> StoreResult<()> {
        let detail = canonical_detail(&r.detail);
        let w = self.writer()?;
        if w.tx.is_none() {
            return Err(StoreError::Corrupt("write transaction already finished"));
        }
        let mut head = w.head;
        let seq = head.seq + 1;
        let hash = w.chainer.hash(&head.hash, &RecordView::of(seq, r, &detail));
        w.records.push(PendingRecord {
            seq,
            at: r.at.unix(),
            actor: r.actor.clone(),
            auth: r.auth.clone(),
            source: r.source.clone(),
            action: r.action.clone(),
            resource: r.resource.clone(),
            project: r.project.clone(),
            outcome: r.outcome.as_str(),
            request_id: r.request_id.clone(),
            detail,
            hash,
        });
        head.seq = seq;
        head.hash = hash;
        let at = r.at.unix();
        let since = *head.checkpoint_at.get_or_insert(at);
        let due = seq - head.checkpoint_seq >= w.options.checkpoint_every
            || at.saturating_sub(since) >= w.options.interval_secs();
        if due {
            if let Some(signer) = w.options.signer.clone() {
                w.checkpoints
                    .push(Checkpoint::sign(signer.as_ref(), seq, hash, r.at));
                head.checkpoint_seq = seq;
                head.checkpoint_at = Some(at);
            }
        }
        w.head = head;
        Ok(())
    }

    /// Signs a checkpoint for the current head, unless it has one already; returns it.
    pub(crate) async fn checkpoint_head(
        &mut self,
        at: Timestamp,
    ) -> StoreResult<Option<Checkpoint>> {
        let w = self.writer()?;
        let Some(signer) = w.options.signer.clone() else {
            return Err(StoreError::NoSigner);
        };
        let mut head = w.head;
        if head.seq == 0 {
            return Ok(None);
        }
        if head.checkpoint_seq == head.seq {
            if let Some(cp) = w.checkpoints.iter().find(|c| c.seq == head.seq) {
                return Ok(Some(cp.clone()));
            }
            let conn = self.sql().await?;
            return crate::audit::checkpoint_by_seq(conn, head.seq).await;
        }
        let cp = Checkpoint::sign(signer.as_ref(), head.seq, head.hash, at);
        w.checkpoints.push(cp.clone());
        head.checkpoint_seq = head.seq;
        head.checkpoint_at = Some(at.unix());
        w.head = head;
        Ok(Some(cp))
    }

    /// Deletes the records up to and including the checkpoint at `through`, and the checkpoints
    /// before it; that checkpoint stays as the trust anchor. Returns the number of records
    /// deleted.
    pub(crate) async fn prune_through(&mut self, through: u64) -> StoreResult<u64> {
        self.sql().await?;
        // Everything buffered in the batch goes in first, so the boundary is seen whole.
        self.writer()?.flush().await?;
        let conn = self.sql().await?;
        if crate::audit::checkpoint_by_seq(conn, through)
            .await?
            .is_none()
        {
            return Err(StoreError::Invalid(format!(
                "there is no checkpoint at {through}: records can only be pruned up to one"
            )));
        }
        let n = exec!(
            self,
            "DELETE FROM audit_events WHERE seq <= $1",
            through as i64
        )?;
        exec!(
            self,
            "DELETE FROM audit_checkpoints WHERE seq < $1",
            through as i64
        )?;
        Ok(n)
    }

    /// Rewrites legacy records (written before the chain existed, migration 0001) into the
    /// chain: canonical detail, contiguous sequence numbers from 1, hashes. Runs inside the
    /// transaction of migration 0002.
    pub(crate) async fn chain_legacy_records(&mut self) -> StoreResult<u64> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, auth, source, action, resource, project, outcome,
               request_id, detail FROM audit_events ORDER BY seq",
        )
        .fetch_all(self.sql().await?)
        .await
        .map_err(map_err)?;
        let mut chainer = Chainer::new();
        let mut prev = GENESIS;
        let mut n = 0u64;
        for r in &rows {
            n += 1;
            let old_seq: i64 = r.try_get("seq").map_err(map_err)?;
            let detail: String = r.try_get("detail").map_err(map_err)?;
            let detail: serde_json::Value = serde_json::from_str(&detail)
                .map_err(|_| StoreError::Corrupt("audit_events.detail"))?;
            let detail = enclave_audit::canonical_json(&detail);
            let project: Option<String> = r.try_get("project").map_err(map_err)?;
            let view = RecordView {
                seq: n,
                at: r.try_get("at").map_err(map_err)?,
                actor: r.try_get("actor").map_err(map_err)?,
                auth: r.try_get("auth").map_err(map_err)?,
                source: r.try_get("source").map_err(map_err)?,
                action: r.try_get("action").map_err(map_err)?,
                resource: r.try_get("resource").map_err(map_err)?,
                project: project.as_deref(),
                outcome: r.try_get("outcome").map_err(map_err)?,
                request_id: r.try_get("request_id").map_err(map_err)?,
                detail: &detail,
            };
            prev = chainer.hash(&prev, &view);
            exec!(
                self,
                "UPDATE audit_events SET seq = $1, detail = $2, hash = $3 WHERE seq = $4",
                n as i64,
                &detail,
                &prev[..],
                old_seq,
            )?;
        }
        Ok(n)
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
               updated_at = $5,
               disabled_at = CASE WHEN $4 THEN COALESCE(disabled_at, $5) ELSE NULL END
             WHERE id = $6",
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
        .fetch_one(self.sql().await?)
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
        .fetch_all(self.sql().await?)
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
        .fetch_one(self.sql().await?)
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
        auth: &SessionAuth<'_>,
        source: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        exec!(
            self,
            "INSERT INTO sessions (id, secret_hash, user_id, auth_method, amr, acr, source,
               created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            id,
            secret_hash,
            user_id,
            auth.method,
            auth.amr,
            auth.acr,
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
            .fetch_one(self.sql().await?)
            .await
            .map_err(map_err)?;
        r.try_get("n").map_err(map_err)
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            // Without a runtime the guard is released here; `recover` runs at the next begin.
            let _ = detach(async move {
                writer.recover().await;
                writer.settle().await;
            });
        }
    }
}
