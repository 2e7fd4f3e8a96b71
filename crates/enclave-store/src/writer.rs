//! The writer connection, its batches (group commit) and the audit chain head.
//!
//! **Group commit.** The one writer connection keeps an outer `BEGIN IMMEDIATE` transaction
//! open across a *batch* of [`crate::WriteTx`]s, which take the writer lock one after another:
//!
//! * A `WriteTx` that runs SQL of its own does so inside a `SAVEPOINT`, opened lazily before
//!   its first statement. Its audit records are not written one by one: they are chained at
//!   once (sequence number and hash taken from the head in this state) and buffered here; the
//!   batch writes them with a few multi-row `INSERT`s just before its `COMMIT`.
//! * Dropped without commit (an error, or its request cancelled at any await point), a
//!   `WriteTx` is rolled back — to its savepoint, its buffered records discarded, the chain
//!   head restored — at once on the runtime, and in any case before the next holder of the
//!   lock goes on. It changes nothing, and the other members of the batch are unaffected.
//! * `commit()` leaves the savepoint in place (the outer `COMMIT` commits it), joins the batch
//!   and hands the lock on; it returns only once the batch's `COMMIT` has returned, and `Ok`
//!   only if that succeeded — with `synchronous=FULL` in WAL mode, only once it is on disk.
//! * The batch is committed by the last transaction in line (no other task waiting for the
//!   lock) or by the one that fills it to its cap. Members waiting for the result also queue
//!   for the lock behind everyone already in line, so whichever of them gets it first while
//!   the batch is still open commits it: nothing depends on one task staying alive. The
//!   `COMMIT` runs in a task of its own, so cancelling the `commit()` future that started it
//!   cannot interrupt it halfway.
//! * If writing the buffered records or the `COMMIT` fails, the whole batch is rolled back,
//!   every member gets an error (none reports success) and the chain head is reloaded from
//!   what is on disk.
//!
//! **The audit chain** is therefore built under the writer lock, in exactly the order the
//! records commit; a checkpoint that falls due is signed at once and written in the same batch
//! as the record that made it due.

use crate::{map_err, AuditOptions, StoreError, StoreResult};
use enclave_audit::{Chainer, Checkpoint, Hash, GENESIS};
use sqlx::{Executor, Row, SqliteConnection};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{watch, Mutex};

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

pub(crate) type BatchResult = Option<Result<(), String>>;

/// The open batch.
pub(crate) struct Batch {
    pub(crate) id: u64,
    pub(crate) done: watch::Sender<BatchResult>,
    /// Transactions that committed into it and wait for the result.
    pub(crate) members: usize,
}

/// Counters shared outside the lock.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Tasks waiting in [`crate::Store::write`] for the writer lock.
    pub(crate) queued: AtomicUsize,
    /// Successful `COMMIT`s (one fsync each).
    pub(crate) commits: AtomicU64,
    next_batch: AtomicU64,
}

/// A chained audit record waiting to be written with its batch.
pub(crate) struct PendingRecord {
    pub(crate) seq: u64,
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) auth: String,
    pub(crate) source: String,
    pub(crate) action: String,
    pub(crate) resource: String,
    pub(crate) project: Option<String>,
    pub(crate) outcome: &'static str,
    pub(crate) request_id: String,
    pub(crate) detail: String,
    pub(crate) hash: Hash,
}

/// Whether the active transaction's changes can be undone on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Savepoint {
    /// No SQL yet: nothing to undo in the database.
    Pending,
    /// `SAVEPOINT tx` is open; buffered records up to these counts had been written when it
    /// was opened.
    Open { records: usize, checkpoints: usize },
}

/// The active (or abandoned) transaction: what to restore if it is rolled back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxState {
    pub(crate) head: ChainHead,
    pub(crate) records: usize,
    pub(crate) checkpoints: usize,
    pub(crate) savepoint: Savepoint,
}

/// The one connection that writes, behind the writer lock.
pub(crate) struct Writer {
    pub(crate) conn: SqliteConnection,
    pub(crate) options: Arc<AuditOptions>,
    pub(crate) shared: Arc<Shared>,
    /// The open batch: the outer transaction is open exactly when this is `Some`.
    pub(crate) batch: Option<Batch>,
    /// The transaction holding the lock — or, if the lock is free, one that was dropped
    /// without commit and still has to be rolled back.
    pub(crate) tx: Option<TxState>,
    /// The batch can no longer be committed (a rollback to a savepoint failed, or SQL ran
    /// unprotected in a transaction that was then dropped): fail it.
    poisoned: bool,
    /// The chain as this connection sees it (including buffered records).
    pub(crate) head: ChainHead,
    /// The chain as committed on disk.
    pub(crate) committed: ChainHead,
    pub(crate) chainer: Chainer,
    /// Chained records of the open batch, and how many of them are already in the database.
    pub(crate) records: Vec<PendingRecord>,
    pub(crate) records_written: usize,
    /// Checkpoints of the open batch, and how many are already in the database.
    pub(crate) checkpoints: Vec<Checkpoint>,
    pub(crate) checkpoints_written: usize,
}

/// Rows per multi-row `INSERT` (largest first); each size has one cached statement.
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];
const RECORD_COLS: usize = 12;

fn insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|&n| {
                let mut s = String::from(
                    "INSERT INTO audit_events (seq, at, actor, auth, source, action, resource, \
                     project, outcome, request_id, detail, hash) VALUES ",
                );
                for r in 0..n {
                    if r > 0 {
                        s.push(',');
                    }
                    // Anonymous parameters: SQLite looks named ones up by a linear scan, which
                    // makes binding thousands of `$n` quadratic.
                    s.push('(');
                    for c in 0..RECORD_COLS {
                        if c > 0 {
                            s.push(',');
                        }
                        s.push('?');
                    }
                    s.push(')');
                }
                s
            })
            .collect()
    });
    let i = CHUNKS
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(CHUNKS.len() - 1);
    all.get(i).map_or("", String::as_str)
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
            tx: None,
            poisoned: false,
            head: ChainHead::EMPTY,
            committed: ChainHead::EMPTY,
            chainer: Chainer::new(),
            records: Vec::new(),
            records_written: 0,
            checkpoints: Vec::new(),
            checkpoints_written: 0,
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

    /// Brings the connection back to a clean state before the next transaction: rolls back a
    /// transaction that was dropped without commit, and fails a poisoned batch.
    pub(crate) async fn recover(&mut self) {
        if self.tx.is_some() {
            tracing::warn!("rolling back a write transaction abandoned mid-way");
            self.rollback_tx().await;
        }
        if self.poisoned {
            self.fail_batch("the batch could not be kept after a failed transaction")
                .await;
        }
    }

    /// Starts a transaction: opens a batch (`BEGIN IMMEDIATE`) if none is open.
    pub(crate) async fn begin_tx(&mut self) -> StoreResult<()> {
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
        self.tx = Some(TxState {
            head: self.head,
            records: self.records.len(),
            checkpoints: self.checkpoints.len(),
            savepoint: Savepoint::Pending,
        });
        Ok(())
    }

    /// Opens the active transaction's savepoint if it has none yet.
    pub(crate) async fn ensure_savepoint(&mut self) -> StoreResult<()> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(StoreError::Corrupt("write transaction already finished"));
        };
        if tx.savepoint == Savepoint::Pending {
            if let Err(e) = self.conn.execute("SAVEPOINT tx").await {
                // Whether it opened is unknown: the batch cannot be trusted any more.
                self.poisoned = true;
                return Err(map_err(e));
            }
            if let Some(tx) = self.tx.as_mut() {
                tx.savepoint = Savepoint::Open {
                    records: self.records_written,
                    checkpoints: self.checkpoints_written,
                };
            }
        }
        Ok(())
    }

    /// Undoes the active (or abandoned) transaction.
    async fn rollback_tx(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        match tx.savepoint {
            Savepoint::Pending => {}
            Savepoint::Open {
                records,
                checkpoints,
            } => {
                let undone = async {
                    self.conn.execute("ROLLBACK TO tx").await?;
                    self.conn.execute("RELEASE tx").await
                }
                .await;
                match undone {
                    Ok(_) => {
                        self.records_written = records;
                        self.checkpoints_written = checkpoints;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "rollback to savepoint failed");
                        self.poisoned = true;
                    }
                }
            }
        }
        self.records.truncate(tx.records);
        self.checkpoints.truncate(tx.checkpoints);
        self.records_written = self.records_written.min(self.records.len());
        self.checkpoints_written = self.checkpoints_written.min(self.checkpoints.len());
        self.head = tx.head;
    }

    /// After a transaction went away: an empty batch is rolled back (it holds SQLite's write
    /// lock for nothing); one with members is committed now if nobody else is in line to.
    pub(crate) async fn settle(&mut self) {
        match &self.batch {
            Some(b) if b.members == 0 => {
                let _ = self.conn.execute("ROLLBACK").await;
                self.batch = None;
                self.records.clear();
                self.checkpoints.clear();
                self.records_written = 0;
                self.checkpoints_written = 0;
                self.head = self.committed;
            }
            Some(_) if self.shared.queued.load(Ordering::Acquire) == 0 => {
                self.commit_batch().await;
            }
            _ => {}
        }
    }

    /// Writes the buffered records and checkpoints into the open transaction.
    pub(crate) async fn flush(&mut self) -> StoreResult<()> {
        while self.records_written < self.records.len() {
            let left = self.records.len() - self.records_written;
            let n = CHUNKS.iter().copied().find(|&c| c <= left).unwrap_or(1);
            let rows = &self.records[self.records_written..self.records_written + n];
            let mut q = sqlx::query(insert_sql(n));
            for r in rows {
                q = q
                    .bind(i64::try_from(r.seq).unwrap_or(i64::MAX))
                    .bind(r.at)
                    .bind(r.actor.as_str())
                    .bind(r.auth.as_str())
                    .bind(r.source.as_str())
                    .bind(r.action.as_str())
                    .bind(r.resource.as_str())
                    .bind(r.project.as_deref())
                    .bind(r.outcome)
                    .bind(r.request_id.as_str())
                    .bind(r.detail.as_str())
                    .bind(&r.hash[..]);
            }
            q.execute(&mut self.conn).await.map_err(map_err)?;
            self.records_written += n;
        }
        while let Some(cp) = self.checkpoints.get(self.checkpoints_written) {
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(i64::try_from(cp.seq).unwrap_or(i64::MAX))
            .bind(&cp.hash[..])
            .bind(cp.at.unix())
            .bind(cp.key_id.as_str())
            .bind(cp.signature.as_slice())
            .execute(&mut self.conn)
            .await
            .map_err(map_err)?;
            self.checkpoints_written += 1;
        }
        Ok(())
    }

    /// Writes the open batch's records and `COMMIT`s it; tells its members the result.
    pub(crate) async fn commit_batch(&mut self) {
        if self.batch.is_none() {
            return;
        }
        let result = match self.flush().await {
            Ok(()) => self.conn.execute("COMMIT").await.map_err(map_err),
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => {
                self.committed = self.head;
                self.records.clear();
                self.checkpoints.clear();
                self.records_written = 0;
                self.checkpoints_written = 0;
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                if let Some(batch) = self.batch.take() {
                    batch.done.send_replace(Some(Ok(())));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                self.fail_batch(&e.to_string()).await;
            }
        }
    }

    /// Rolls the open batch back and fails every member; reloads the chain head from disk.
    async fn fail_batch(&mut self, why: &str) {
        let _ = self.conn.execute("ROLLBACK").await;
        self.poisoned = false;
        self.tx = None;
        self.records.clear();
        self.checkpoints.clear();
        self.records_written = 0;
        self.checkpoints_written = 0;
        if let Some(batch) = self.batch.take() {
            batch.done.send_replace(Some(Err(why.to_string())));
        }
        self.head = self.committed;
        if let Err(e) = self.load_head().await {
            tracing::error!(error = %e, "could not reload the audit chain head");
        }
    }

    /// The batch id if one is open.
    pub(crate) fn batch_id(&self) -> Option<u64> {
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

/// Counts a task waiting for the writer lock while it waits (got it, or went away).
pub(crate) struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    pub(crate) fn new(n: &'a AtomicUsize) -> Queued<'a> {
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
/// else hands it back for the caller to run.
pub(crate) fn detach<F>(f: F) -> Option<F>
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

/// Waits for a batch's result.
pub(crate) async fn batch_result(done: &mut watch::Receiver<BatchResult>) -> Result<(), String> {
    match done.wait_for(Option::is_some).await {
        Ok(v) => v.clone().unwrap_or(Err("no result".into())),
        Err(_) => Err("the writer closed before the batch committed".into()),
    }
}

/// Makes sure a batch whose member stopped waiting (its `commit()` future was dropped) still
/// gets committed.
pub(crate) struct Waiting {
    pub(crate) lock: Arc<Mutex<Writer>>,
    pub(crate) batch: u64,
    pub(crate) armed: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.armed {
            let lock = self.lock.clone();
            let batch = self.batch;
            let _ = detach(async move {
                let mut w = lock.lock_owned().await;
                w.recover().await;
                if w.batch_id() == Some(batch) {
                    w.settle().await;
                }
            });
        }
    }
}
