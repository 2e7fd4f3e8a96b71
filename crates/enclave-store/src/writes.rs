//! The write transaction and group commit.
//!
//! Every change to the database happens through a [`WriteTx`], and every use case that changes
//! something appends its audit record to the same transaction.
//!
//! **Group commit.** The one writer connection keeps an outer `BEGIN IMMEDIATE` transaction
//! open across a *batch* of `WriteTx`s. Each `WriteTx` holds the writer lock while it works and
//! runs inside its own `SAVEPOINT`:
//!
//! * dropped (an error, or its request cancelled at any await point) it is rolled back to its
//!   savepoint — at once on the runtime, in any case before the next holder of the lock goes on
//!   — and the chain head is restored: it changed nothing;
//! * [`WriteTx::commit`] leaves its savepoint in place (an outer `COMMIT` commits it), hands the
//!   lock on, and waits until the batch's `COMMIT` has returned. It returns `Ok` only after that
//!   `COMMIT` succeeded, which with `synchronous=FULL` in WAL mode means the batch is on disk.
//! * The batch is committed by the last transaction in line: the one that finds nobody else
//!   waiting for the writer lock, or that fills the batch to its cap. Members waiting for the
//!   result also queue for the lock behind everyone already in line, so if the transactions
//!   after them go away (dropped, cancelled), whichever member gets the lock first commits the
//!   batch; nothing depends on a particular task staying alive. The `COMMIT` runs in a task of
//!   its own, so cancelling the `commit()` future that started it cannot interrupt it.
//! * If the `COMMIT` fails, every member of the batch gets an error (none reports success),
//!   the batch is rolled back and the chain head is reloaded from what is on disk.
//!
//! **The audit chain** is built here, under the writer lock: [`WriteTx::append_audit`] takes
//! the next sequence number and the previous hash from the head kept in the writer's state,
//! so records are chained in exactly the order they commit. A signed checkpoint is written in
//! the same transaction as the record that makes it due (every N records or T seconds of
//! record time, see [`crate::AuditOptions`]).

use crate::{map_err, AuditOptions, StoreError, StoreResult};
use enclave_audit::{canonical_detail, Chainer, Checkpoint, Hash, RecordView, GENESIS};
use enclave_core::audit::AuditRecord;
use enclave_core::model::{ApiToken, ProjectRole, User};
use enclave_core::throttle::ThrottleState;
use enclave_core::Timestamp;
use sqlx::{Executor, Row, SqliteConnection};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

/// Where the chain stands: the last record and the last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainHead {
    /// Sequence number of the last record (0 before the first).
    pub(crate) seq: u64,
    /// Its chain hash ([`GENESIS`] before the first).
    pub(crate) hash: Hash,
    /// Sequence number of the last checkpoint (0 if none).
    pub(crate) checkpoint_seq: u64,
    /// Record time of the last checkpoint, or of the first record after open when there is
    /// none yet (the start of the checkpoint interval).
    pub(crate) checkpoint_at: Option<i64>,
}

impl ChainHead {
    const EMPTY: ChainHead = ChainHead {
        seq: 0,
        hash: GENESIS,
        checkpoint_seq: 0,
        checkpoint_at: None,
    };
}

type BatchResult = Option<Result<(), String>>;

/// The current batch: its id and the channel its members wait on.
struct Batch {
    id: u64,
    done: watch::Sender<BatchResult>,
    /// Members that committed (left their savepoint in the batch) and wait for the result.
    members: usize,
}

/// Counters shared outside the lock.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Tasks waiting in [`crate::Store::write`] for the writer lock.
    pub(crate) queued: AtomicUsize,
    /// Successful `COMMIT`s (one fsync each).
    pub(crate) commits: AtomicU64,
    /// Ids for batches.
    next_batch: AtomicU64,
}

/// The one connection that writes, behind the writer lock.
pub(crate) struct Writer {
    pub(crate) conn: SqliteConnection,
    pub(crate) options: Arc<AuditOptions>,
    pub(crate) shared: Arc<Shared>,
    /// The open batch (an outer transaction is open exactly when this is `Some`).
    batch: Option<Batch>,
    /// A [`WriteTx`] opened a savepoint and neither committed nor rolled back (its owner was
    /// dropped): the chain head to restore.
    abandoned: Option<ChainHead>,
    /// The outer transaction may be in an unknown state (a failed statement outside any
    /// savepoint): roll it back before anything else.
    poisoned: bool,
    /// The chain as this connection sees it (including the open batch).
    pub(crate) head: ChainHead,
    /// The chain as committed on disk.
    pub(crate) committed: ChainHead,
    chainer: Chainer,
}

impl Writer {
    pub(crate) fn new(
        conn: SqliteConnection,
        options: Arc<AuditOptions>,
        shared: Arc<Shared>,
    ) -> Writer {
        Writer {
            conn,
            options,
            shared,
            batch: None,
            abandoned: None,
            poisoned: false,
            head: ChainHead::EMPTY,
            committed: ChainHead::EMPTY,
            chainer: Chainer::new(),
        }
    }

    /// Reads the chain head from the database (at open, and after a failed commit).
    pub(crate) async fn load_head(&mut self) -> StoreResult<()> {
        let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut self.conn)
            .await
            .map_err(map_err)?;
        let cp =
            sqlx::query("SELECT seq, hash, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut self.conn)
                .await
                .map_err(map_err)?;
        let mut head = ChainHead::EMPTY;
        if let Some(r) = last {
            head.seq = u64_col(&r, "seq")?;
            head.hash = hash_col(&r, "hash")?;
        }
        if let Some(r) = cp {
            let seq = u64_col(&r, "seq")?;
            head.checkpoint_seq = seq;
            head.checkpoint_at = Some(r.try_get("at").map_err(map_err)?);
            if seq > head.seq {
                // Records a checkpoint vouches for are missing (the tail was cut off). Go on
                // after the checkpoint, so the loss shows as a gap instead of being overwritten.
                tracing::error!(
                    checkpoint = seq,
                    last_record = head.seq,
                    "audit trail ends before its latest checkpoint"
                );
                head.seq = seq;
                head.hash = hash_col(&r, "hash")?;
            }
        }
        self.head = head;
        self.committed = head;
        Ok(())
    }

    /// Brings the connection back to a clean state: rolls back a transaction left open by a
    /// dropped [`WriteTx`] (to its savepoint), or a poisoned batch (entirely).
    pub(crate) async fn recover(&mut self) -> StoreResult<()> {
        if let Some(restore) = self.abandoned.take() {
            tracing::warn!("rolling back a write transaction abandoned mid-way");
            let undone = async {
                self.conn.execute("ROLLBACK TO tx").await?;
                self.conn.execute("RELEASE tx").await
            }
            .await;
            match undone {
                Ok(_) => self.head = restore,
                Err(e) => {
                    tracing::error!(error = %e, "rollback to savepoint failed; failing the batch");
                    self.poisoned = true;
                }
            }
        }
        if self.poisoned {
            self.fail_batch("the transaction could not be rolled back to its savepoint")
                .await;
        }
        Ok(())
    }

    /// Opens a batch if none is open, then a savepoint for one transaction.
    async fn open_tx(&mut self) -> StoreResult<()> {
        if self.batch.is_none() {
            self.conn
                .execute("BEGIN IMMEDIATE")
                .await
                .map_err(map_err)?;
            let (done, _) = watch::channel(None);
            self.batch = Some(Batch {
                id: self.shared.next_batch.fetch_add(1, Ordering::Relaxed),
                done,
                members: 0,
            });
        }
        if let Err(e) = self.conn.execute("SAVEPOINT tx").await {
            self.poisoned = true;
            self.recover().await?;
            return Err(map_err(e));
        }
        self.abandoned = Some(self.head);
        Ok(())
    }

    /// Ends the open batch after a transaction went away: an empty batch is rolled back (it
    /// holds SQLite's write lock for nothing); one with members waiting is committed now if
    /// nobody else is in line to do it.
    async fn settle(&mut self) {
        match &self.batch {
            Some(b) if b.members == 0 => {
                let _ = self.conn.execute("ROLLBACK").await;
                self.batch = None;
                self.head = self.committed;
            }
            Some(_) if self.shared.queued.load(Ordering::Acquire) == 0 => {
                self.commit_batch().await;
            }
            _ => {}
        }
    }

    /// `COMMIT`s the open batch and tells its members the result.
    pub(crate) async fn commit_batch(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        match self.conn.execute("COMMIT").await {
            Ok(_) => {
                self.committed = self.head;
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                batch.done.send_replace(Some(Ok(())));
            }
            Err(e) => {
                tracing::error!(error = %e, members = batch.members, "group commit failed");
                self.batch = Some(batch);
                self.fail_batch(&e.to_string()).await;
            }
        }
    }

    /// Rolls the open batch back and fails every member; reloads the chain head from disk.
    async fn fail_batch(&mut self, why: &str) {
        let _ = self.conn.execute("ROLLBACK").await;
        self.poisoned = false;
        self.abandoned = None;
        if let Some(batch) = self.batch.take() {
            batch.done.send_replace(Some(Err(why.to_string())));
        }
        self.head = self.committed;
        if let Err(e) = self.load_head().await {
            tracing::error!(error = %e, "could not reload the audit chain head");
        }
    }

    /// The batch id if one is open.
    fn batch_id(&self) -> Option<u64> {
        self.batch.as_ref().map(|b| b.id)
    }
}

pub(crate) fn u64_col(r: &sqlx::sqlite::SqliteRow, col: &str) -> StoreResult<u64> {
    let v: i64 = r.try_get(col).map_err(map_err)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt("audit sequence number"))
}

pub(crate) fn hash_col(r: &sqlx::sqlite::SqliteRow, col: &str) -> StoreResult<Hash> {
    let v: &[u8] = r.try_get(col).map_err(map_err)?;
    <[u8; 32]>::try_from(v).map_err(|_| StoreError::Corrupt("audit hash"))
}

/// Decrements the queue count when a task stops waiting for the lock (got it or went away).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(n: &'a AtomicUsize) -> Queued<'a> {
        n.fetch_add(1, Ordering::AcqRel);
        Queued(n)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `f` on the runtime if there is one (so cancelling the caller cannot interrupt it),
/// else returns it for the caller to run.
fn detach<F>(f: F) -> Option<F>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(f);
            None
        }
        Err(_) => Some(f),
    }
}

/// Waits for the batch's result.
async fn batch_result(done: &mut watch::Receiver<BatchResult>) -> Result<(), String> {
    match done.wait_for(Option::is_some).await {
        Ok(v) => v.clone().unwrap_or(Err("no result".into())),
        Err(_) => Err("the writer closed before the batch committed".into()),
    }
}

/// Makes sure a batch whose member stopped waiting (its `commit()` future was dropped) still
/// gets committed.
struct Waiting {
    lock: Arc<Mutex<Writer>>,
    batch: u64,
    armed: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.armed {
            let lock = self.lock.clone();
            let batch = self.batch;
            let _ = detach(async move {
                let mut w = lock.lock_owned().await;
                let _ = w.recover().await;
                if w.batch_id() == Some(batch) {
                    w.settle().await;
                }
            });
        }
    }
}

/// An open write transaction on the writer connection, holding the writer lock. Dropping it
/// without [`WriteTx::commit`] — on an error, or when the request future is cancelled at any
/// await point — rolls everything it did back: at once if a runtime is available, and in any
/// case before the next transaction goes on.
pub struct WriteTx {
    writer: Option<OwnedMutexGuard<Writer>>,
    lock: Arc<Mutex<Writer>>,
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
    pub(crate) async fn begin(lock: Arc<Mutex<Writer>>, shared: &Shared) -> StoreResult<WriteTx> {
        let mut writer = {
            let _queued = Queued::new(&shared.queued);
            lock.clone().lock_owned().await
        };
        writer.recover().await?;
        writer.open_tx().await?;
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

    pub(crate) fn conn(&mut self) -> StoreResult<&mut SqliteConnection> {
        Ok(&mut self.writer()?.conn)
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
        // The savepoint stays: the outer COMMIT commits it with the batch.
        batch.members += 1;
        let members = batch.members;
        let id = batch.id;
        let mut done = batch.done.subscribe();
        w.abandoned = None;
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
                    let _ = w.recover().await;
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

    /// Appends one audit record: takes the next sequence number, chains its hash to the
    /// previous record's, and writes a signed checkpoint in the same transaction when one is
    /// due. If anything fails, the transaction must not be committed (drop it).
    pub async fn append_audit(&mut self, r: &AuditRecord) -> StoreResult<()> {
        let detail = canonical_detail(&r.detail);
        let w = self.writer()?;
        let mut head = w.head;
        let seq = head.seq + 1;
        let hash = w.chainer.hash(&head.hash, &RecordView::of(seq, r, &detail));
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor, auth, source, action, resource, project,
               outcome, request_id, detail, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
               $11, $12)",
        )
        .bind(seq as i64)
        .bind(r.at.unix())
        .bind(&r.actor)
        .bind(&r.auth)
        .bind(&r.source)
        .bind(&r.action)
        .bind(&r.resource)
        .bind(r.project.as_deref())
        .bind(r.outcome.as_str())
        .bind(&r.request_id)
        .bind(&detail)
        .bind(&hash[..])
        .execute(&mut w.conn)
        .await
        .map_err(map_err)?;
        head.seq = seq;
        head.hash = hash;
        let at = r.at.unix();
        let since = *head.checkpoint_at.get_or_insert(at);
        let due = seq - head.checkpoint_seq >= w.options.checkpoint_every
            || at.saturating_sub(since) >= w.options.interval_secs();
        if due {
            if let Some(signer) = w.options.signer.clone() {
                let cp = Checkpoint::sign(signer.as_ref(), seq, hash, r.at);
                insert_checkpoint(&mut w.conn, &cp).await?;
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
            return crate::audit::checkpoint_by_seq(&mut w.conn, head.seq).await;
        }
        let cp = Checkpoint::sign(signer.as_ref(), head.seq, head.hash, at);
        insert_checkpoint(&mut w.conn, &cp).await?;
        head.checkpoint_seq = head.seq;
        head.checkpoint_at = Some(at.unix());
        w.head = head;
        Ok(Some(cp))
    }

    /// Deletes the records up to and including the checkpoint at `through`, and the checkpoints
    /// before it; that checkpoint stays as the trust anchor. Returns the number of records
    /// deleted.
    pub(crate) async fn prune_through(&mut self, through: u64) -> StoreResult<u64> {
        let conn = self.conn()?;
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
        .fetch_all(self.conn()?)
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

async fn insert_checkpoint(conn: &mut SqliteConnection, cp: &Checkpoint) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(cp.seq as i64)
    .bind(&cp.hash[..])
    .bind(cp.at.unix())
    .bind(&cp.key_id)
    .bind(&cp.signature)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            // Without a runtime the guard is released here; `recover` runs at the next begin.
            let _ = detach(async move {
                let _ = writer.recover().await;
                writer.settle().await;
            });
        }
    }
}
