//! The audit trail: search, streaming reads, checkpoints, verification, export and retention.
//!
//! Invariants (see `enclave_audit` for the rules themselves):
//! * `audit_events.seq` is contiguous from 1 (or from the retention anchor + 1 after pruning)
//!   and each row's `hash` chains to the row before; rows are only ever appended by
//!   [`crate::WriteTx::append_audit`] and deleted by [`Store::prune_audit_through`].
//! * `audit_checkpoints` holds signed checkpoints, each written in the transaction of the
//!   record it covers (or by [`Store::checkpoint_now`]); pruning keeps the checkpoint at the
//!   boundary as the trust anchor and documents itself with a chained `audit.prune` record.
//! * [`Store::verify_audit`] reads one consistent snapshot, taken while holding the writer
//!   lock, and checks it against the writer's committed head: rows past the head are
//!   insertions, a trail ending before it was truncated.

use crate::writer::{hash_col, u64_col};
use crate::{map_err, Store, StoreError, StoreResult};
use enclave_audit::export::{checkpoint_line, header_line, record_line};
use enclave_audit::{Checkpoint, Failure, Hash, PublicKey, RecordView, Summary, Tamper, Verifier};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::Timestamp;
use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteRow;
use sqlx::{Executor, Row, SqliteConnection};

/// The action name of the record that documents a pruning.
pub const PRUNE_ACTION: &str = "audit.prune";

/// One stored record with its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Sequence number.
    pub seq: u64,
    /// Chain hash.
    pub hash: Hash,
    /// The record.
    pub record: AuditRecord,
}

/// Search filters; every field set must match (exact match on names, inclusive ranges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Who.
    pub actor: Option<String>,
    /// Action name.
    pub action: Option<String>,
    /// Resource.
    pub resource: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// At or before.
    pub until: Option<Timestamp>,
    /// Sequence number at least.
    pub seq_min: Option<u64>,
    /// Sequence number at most.
    pub seq_max: Option<u64>,
}

/// Order of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditOrder {
    /// Highest sequence number first.
    #[default]
    NewestFirst,
    /// Lowest sequence number first.
    OldestFirst,
}

/// A page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSearchPage {
    /// The records.
    pub items: Vec<AuditEntry>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<u64>,
}

const ENTRY_COLS: &str = "seq, hash, at, actor, auth, source, action, resource, project, \
                          outcome, request_id, detail";

fn outcome(s: &str) -> StoreResult<Outcome> {
    match s {
        "success" => Ok(Outcome::Success),
        "denied" => Ok(Outcome::Denied),
        "failure" => Ok(Outcome::Failure),
        _ => Err(StoreError::Corrupt("audit_events.outcome")),
    }
}

fn entry(r: &SqliteRow) -> StoreResult<AuditEntry> {
    let detail: &str = r.try_get("detail").map_err(map_err)?;
    let detail: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(detail).map_err(|_| StoreError::Corrupt("audit_events.detail"))?;
    Ok(AuditEntry {
        seq: u64_col(r, "seq")?,
        hash: hash_col(r, "hash")?,
        record: AuditRecord {
            at: Timestamp(r.try_get("at").map_err(map_err)?),
            actor: r.try_get("actor").map_err(map_err)?,
            auth: r.try_get("auth").map_err(map_err)?,
            source: r.try_get("source").map_err(map_err)?,
            action: r.try_get("action").map_err(map_err)?,
            resource: r.try_get("resource").map_err(map_err)?,
            project: r.try_get("project").map_err(map_err)?,
            outcome: outcome(r.try_get("outcome").map_err(map_err)?)?,
            request_id: r.try_get("request_id").map_err(map_err)?,
            detail,
        },
    })
}

fn checkpoint(r: &SqliteRow) -> StoreResult<Checkpoint> {
    Ok(Checkpoint {
        seq: u64_col(r, "seq")?,
        hash: hash_col(r, "hash")?,
        at: Timestamp(r.try_get("at").map_err(map_err)?),
        key_id: r.try_get("key_id").map_err(map_err)?,
        signature: r.try_get("signature").map_err(map_err)?,
    })
}

pub(crate) async fn checkpoint_by_seq(
    conn: &mut SqliteConnection,
    seq: u64,
) -> StoreResult<Option<Checkpoint>> {
    let row = sqlx::query(
        "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints WHERE seq = $1",
    )
    .bind(seq as i64)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.as_ref().map(checkpoint).transpose()
}

/// Sequence numbers travel as SQLite integers.
fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Store {
    async fn bulk_reader(&self) -> StoreResult<SqliteConnection> {
        use sqlx::ConnectOptions;
        self.connect
            .clone()
            .read_only(true)
            .row_buffer_size(16_384)
            .connect()
            .await
            .map_err(map_err)
    }

    /// Searches the trail with `filter`, a page at a time (keyset pagination by sequence
    /// number: pass the previous page's `next` as `after`).
    pub async fn search_audit(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        after: Option<u64>,
        limit: u32,
    ) -> StoreResult<AuditSearchPage> {
        let mut sql = format!("SELECT {ENTRY_COLS} FROM audit_events WHERE 1 = 1");
        let mut n = 0;
        let mut param = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if filter.actor.is_some() {
            param(&mut sql, " AND actor = ?");
        }
        if filter.action.is_some() {
            param(&mut sql, " AND action = ?");
        }
        if filter.resource.is_some() {
            param(&mut sql, " AND resource = ?");
        }
        if filter.project.is_some() {
            param(&mut sql, " AND project = ?");
        }
        if filter.outcome.is_some() {
            param(&mut sql, " AND outcome = ?");
        }
        if filter.since.is_some() {
            param(&mut sql, " AND at >= ?");
        }
        if filter.until.is_some() {
            param(&mut sql, " AND at <= ?");
        }
        if filter.seq_min.is_some() {
            param(&mut sql, " AND seq >= ?");
        }
        if filter.seq_max.is_some() {
            param(&mut sql, " AND seq <= ?");
        }
        match (order, after.is_some()) {
            (AuditOrder::NewestFirst, true) => param(&mut sql, " AND seq < ?"),
            (AuditOrder::OldestFirst, true) => param(&mut sql, " AND seq > ?"),
            _ => {}
        }
        sql.push_str(match order {
            AuditOrder::NewestFirst => " ORDER BY seq DESC",
            AuditOrder::OldestFirst => " ORDER BY seq ASC",
        });
        param(&mut sql, " LIMIT ?");
        let mut q = sqlx::query(&sql);
        for v in [
            &filter.actor,
            &filter.action,
            &filter.resource,
            &filter.project,
        ]
        .into_iter()
        .flatten()
        {
            q = q.bind(v);
        }
        if let Some(o) = filter.outcome {
            q = q.bind(o.as_str());
        }
        for t in [filter.since, filter.until].into_iter().flatten() {
            q = q.bind(t.unix());
        }
        for s in [filter.seq_min, filter.seq_max, after]
            .into_iter()
            .flatten()
        {
            q = q.bind(sql_seq(s));
        }
        let limit = limit.max(1);
        q = q.bind(i64::from(limit) + 1);
        let rows = q.fetch_all(&self.pool).await.map_err(map_err)?;
        let mut items = rows.iter().map(entry).collect::<StoreResult<Vec<_>>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditSearchPage { items, next })
    }

    /// Up to `limit` records with sequence number greater than `seq`, oldest first, with their
    /// hashes (for streaming verification and export).
    pub async fn records_after(&self, seq: u64, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let sql =
            format!("SELECT {ENTRY_COLS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(sql_seq(seq))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(entry).collect()
    }

    /// Checkpoints with sequence number greater than `after`, oldest first.
    pub async fn audit_checkpoints(&self, after: u64, limit: u32) -> StoreResult<Vec<Checkpoint>> {
        let rows = sqlx::query(
            "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints WHERE seq > $1
             ORDER BY seq LIMIT $2",
        )
        .bind(sql_seq(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(checkpoint).collect()
    }

    /// The newest checkpoint.
    pub async fn latest_checkpoint(&self) -> StoreResult<Option<Checkpoint>> {
        let row = sqlx::query(
            "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints
             ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(checkpoint).transpose()
    }

    /// The committed chain head: `(seq, hash)` of the last durable record.
    pub async fn audit_head(&self) -> (u64, Hash) {
        let w = self.writer.lock().await;
        (w.committed.seq, w.committed.hash)
    }

    /// Signs a checkpoint for the current head now (for a periodic timer, and before an
    /// export), unless the head has one already; returns the head's checkpoint (`None` while
    /// the trail is empty).
    pub async fn checkpoint_now(&self, at: Timestamp) -> StoreResult<Option<Checkpoint>> {
        let mut tx = self.write().await?;
        let cp = tx.checkpoint_head(at).await?;
        tx.commit().await?;
        Ok(cp)
    }

    /// Retention: deletes every record up to and including the checkpoint at `through` (it
    /// must exist) and the checkpoints before it, and appends `record` — with `through` and
    /// `deleted` added to its detail and its action set to `audit.prune` — in the same
    /// transaction. The checkpoint stays as the trust anchor: verification starts from it.
    /// Returns the number of records deleted.
    pub async fn prune_audit_through(
        &self,
        through: u64,
        record: &AuditRecord,
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let deleted = tx.prune_through(through).await?;
        let mut r = record.clone();
        r.action = PRUNE_ACTION.to_string();
        r.detail.insert("through".into(), through.into());
        r.detail.insert("deleted".into(), deleted.into());
        tx.append_audit(&r).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Verifies the stored trail with `key`: from the checkpoint at `from` if given, else from
    /// genesis — or, after pruning, from the retention anchor, which must be documented by a
    /// chained `audit.prune` record. The snapshot read is checked against the writer's
    /// committed head. The outer `Result` is the store's; the inner one the verdict.
    ///
    /// The table is scanned on a blocking thread with a connection of its own (rusqlite on the
    /// same SQLite library), row by row without allocating, so that verification runs at the
    /// speed of SQLite and SHA-256 rather than at that of handing rows between threads.
    pub async fn verify_audit(
        &self,
        key: &PublicKey,
        from: Option<u64>,
    ) -> StoreResult<Result<Summary, Failure>> {
        let path = self.path.clone();
        let (conn, head) = {
            // Pin the read snapshot while no COMMIT can happen, so that it matches the head.
            let w = self.writer.lock().await;
            let head = (w.committed.seq, w.committed.hash);
            let conn = blocking(move || {
                let conn = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                conn.execute_batch("BEGIN")?;
                conn.query_row("SELECT COUNT(*) FROM audit_checkpoints", [], |r| {
                    r.get::<_, i64>(0)
                })?;
                Ok(conn)
            })
            .await?;
            (conn, head)
        };
        let key = *key;
        blocking(move || verify_snapshot(&conn, &key, from, head)).await
    }

    /// Writes the trail as an export (JSON Lines, see `enclave_audit::export`) to `out`: from
    /// the checkpoint at `from` (an anchor line), else from the start (with the retention
    /// anchor after pruning). Signs a checkpoint for the current head first when a signer is
    /// configured, so the export is vouched for to its end. Returns the number of records.
    pub async fn export_audit<W: std::io::Write + Send>(
        &self,
        from: Option<u64>,
        at: Timestamp,
        out: &mut W,
    ) -> StoreResult<u64> {
        let io = |e: std::io::Error| StoreError::Invalid(format!("export write failed: {e}"));
        let key = self.options.signer.as_ref().map(|s| s.public_key());
        if self.options.signer.is_some() {
            self.checkpoint_now(at).await?;
        }
        let mut conn = self.bulk_reader().await?;
        conn.execute("BEGIN").await.map_err(map_err)?;
        let result: StoreResult<u64> = async {
            if let Some(k) = key {
                writeln!(out, "{}", header_line(&k)).map_err(io)?;
            }
            let anchor = match from {
                Some(s) => Some(
                    checkpoint_by_seq(&mut conn, s)
                        .await?
                        .ok_or_else(|| StoreError::Invalid(format!("no checkpoint at {s}")))?,
                ),
                None => retention_anchor(&mut conn).await?,
            };
            let start = anchor.as_ref().map_or(0, |a| a.seq);
            if let Some(a) = &anchor {
                writeln!(out, "{}", checkpoint_line(a, true)).map_err(io)?;
            }
            let cps = checkpoints_after(&mut conn, start).await?;
            let mut cps = cps.iter().peekable();
            let mut n = 0u64;
            let mut rows = sqlx::query(
                "SELECT seq, hash, at, actor, auth, source, action, resource, project, outcome,
                   request_id, detail FROM audit_events WHERE seq > $1 ORDER BY seq",
            )
            .bind(sql_seq(start))
            .fetch(&mut conn);
            while let Some(r) = rows.try_next().await.map_err(map_err)? {
                let (view, hash) = view(&r)?;
                writeln!(out, "{}", record_line(&view, &hash)).map_err(io)?;
                n += 1;
                while let Some(cp) = cps.next_if(|c| c.seq <= view.seq) {
                    writeln!(out, "{}", checkpoint_line(cp, false)).map_err(io)?;
                }
            }
            Ok(n)
        }
        .await;
        let _ = conn.execute("ROLLBACK").await;
        result
    }
}

async fn checkpoints_after(conn: &mut SqliteConnection, seq: u64) -> StoreResult<Vec<Checkpoint>> {
    let rows = sqlx::query(
        "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints WHERE seq > $1
         ORDER BY seq",
    )
    .bind(sql_seq(seq))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(checkpoint).collect()
}

/// The checkpoint just before the first remaining record, when records were pruned.
async fn retention_anchor(conn: &mut SqliteConnection) -> StoreResult<Option<Checkpoint>> {
    let first = sqlx::query("SELECT MIN(seq) AS s FROM audit_events")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let first: Option<i64> = first.try_get("s").map_err(map_err)?;
    match first {
        Some(f) if f > 1 => checkpoint_by_seq(conn, (f - 1) as u64).await,
        Some(_) => Ok(None),
        // No records at all: the newest checkpoint (if any) is the anchor.
        None => {
            let row = sqlx::query(
                "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints
                 ORDER BY seq DESC LIMIT 1",
            )
            .fetch_optional(conn)
            .await
            .map_err(map_err)?;
            row.as_ref().map(checkpoint).transpose()
        }
    }
}

/// A borrowed view of a row in the hot loop (no allocation).
fn view(r: &SqliteRow) -> StoreResult<(RecordView<'_>, Hash)> {
    let seq: i64 = r.try_get_unchecked(0).map_err(map_err)?;
    let hash: &[u8] = r.try_get_unchecked(1).map_err(map_err)?;
    let hash = <[u8; 32]>::try_from(hash).map_err(|_| StoreError::Corrupt("audit hash"))?;
    Ok((
        RecordView {
            seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("audit sequence number"))?,
            at: r.try_get_unchecked(2).map_err(map_err)?,
            actor: r.try_get_unchecked(3).map_err(map_err)?,
            auth: r.try_get_unchecked(4).map_err(map_err)?,
            source: r.try_get_unchecked(5).map_err(map_err)?,
            action: r.try_get_unchecked(6).map_err(map_err)?,
            resource: r.try_get_unchecked(7).map_err(map_err)?,
            project: r.try_get_unchecked(8).map_err(map_err)?,
            outcome: r.try_get_unchecked(9).map_err(map_err)?,
            request_id: r.try_get_unchecked(10).map_err(map_err)?,
            detail: r.try_get_unchecked(11).map_err(map_err)?,
        },
        hash,
    ))
}

/// Runs `f` on the blocking pool, mapping rusqlite's errors.
async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, rusqlite::Error> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Bulk(e.to_string()))?
        .map_err(|e| StoreError::Bulk(e.to_string()))
}

fn bulk_checkpoint(r: &rusqlite::Row<'_>) -> Result<Checkpoint, rusqlite::Error> {
    let hash: Vec<u8> = r.get(1)?;
    let seq: i64 = r.get(0)?;
    Ok(Checkpoint {
        seq: seq as u64,
        hash: <[u8; 32]>::try_from(hash.as_slice()).unwrap_or([0; 32]),
        at: Timestamp(r.get(2)?),
        key_id: r.get(3)?,
        signature: r.get(4)?,
    })
}

fn bulk_checkpoints(
    conn: &rusqlite::Connection,
    sql: &str,
    seq: u64,
) -> Result<Vec<Checkpoint>, rusqlite::Error> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([sql_seq(seq)], bulk_checkpoint)?;
    rows.collect()
}

fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str, rusqlite::Error> {
    r.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The verification of one snapshot (blocking).
fn verify_snapshot(
    conn: &rusqlite::Connection,
    key: &PublicKey,
    from: Option<u64>,
    (head_seq, head_hash): (u64, Hash),
) -> Result<Result<Summary, Failure>, rusqlite::Error> {
    const CP: &str = "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints";
    let start = match from {
        Some(s) => match bulk_checkpoints(conn, &format!("{CP} WHERE seq = ?1"), s)?.pop() {
            Some(cp) => Some(cp),
            None => {
                return Ok(Err(Failure {
                    seq: s,
                    kind: Tamper::MissingStart,
                }))
            }
        },
        None => {
            // After pruning: the checkpoint just before the first remaining record (or the
            // newest one when no record is left).
            let first: Option<i64> =
                conn.query_row("SELECT MIN(seq) FROM audit_events", [], |r| r.get(0))?;
            match first {
                Some(f) if f > 1 => {
                    bulk_checkpoints(conn, &format!("{CP} WHERE seq = ?1"), (f - 1) as u64)?.pop()
                }
                Some(_) => None,
                None => bulk_checkpoints(
                    conn,
                    &format!("{CP} WHERE seq >= ?1 ORDER BY seq DESC LIMIT 1"),
                    0,
                )?
                .pop(),
            }
        }
    };
    // An anchor reached without `from` must be a documented pruning.
    let undocumented = from
        .is_none()
        .then(|| start.as_ref().map(|a| a.seq))
        .flatten();
    let mut verifier = match &start {
        Some(cp) => match Verifier::from_checkpoint(*key, cp) {
            Ok(v) => v,
            Err(f) => return Ok(Err(f)),
        },
        None => Verifier::new(*key),
    };
    if head_seq > 0 || start.is_some() {
        verifier.expect_head(head_seq, head_hash);
    }
    let begin = start.as_ref().map_or(0, |c| c.seq);
    for cp in bulk_checkpoints(conn, &format!("{CP} WHERE seq > ?1 ORDER BY seq"), begin)? {
        if let Err(f) = verifier.add_checkpoint(&cp) {
            return Ok(Err(f));
        }
    }
    let mut documented = undocumented.is_none();
    let mut stmt = conn.prepare(
        "SELECT seq, hash, at, actor, auth, source, action, resource, project, outcome,
           request_id, detail FROM audit_events WHERE seq > ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([sql_seq(begin)])?;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let hash = r
            .get_ref(1)?
            .as_blob()
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            // A hash that is not 32 bytes matches nothing: reported as a modified record.
            .unwrap_or([0; 32]);
        let project = match r.get_ref(8)? {
            rusqlite::types::ValueRef::Null => None,
            _ => Some(text(r, 8)?),
        };
        let view = RecordView {
            seq: u64::try_from(seq).unwrap_or(0),
            at: r.get(2)?,
            actor: text(r, 3)?,
            auth: text(r, 4)?,
            source: text(r, 5)?,
            action: text(r, 6)?,
            resource: text(r, 7)?,
            project,
            outcome: text(r, 9)?,
            request_id: text(r, 10)?,
            detail: text(r, 11)?,
        };
        if let Err(f) = verifier.push(&view, &hash) {
            return Ok(Err(f));
        }
        if !documented && view.action == PRUNE_ACTION {
            let through = serde_json::from_str::<serde_json::Value>(view.detail)
                .ok()
                .and_then(|d| d.get("through").and_then(serde_json::Value::as_u64));
            documented = through == undocumented;
        }
    }
    let summary = verifier.finish();
    if let (Ok(_), false, Some(anchor)) = (&summary, documented, undocumented) {
        // Records before a checkpoint are gone and no chained record says they were pruned.
        return Ok(Err(Failure {
            seq: 1,
            kind: Tamper::Deleted {
                count: Some(anchor),
            },
        }));
    }
    Ok(summary)
}
