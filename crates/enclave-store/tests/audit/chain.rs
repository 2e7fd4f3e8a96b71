#![allow(clippy::manual_is_multiple_of)]

//! The audit chain in the store: continuity, group commit, fail-closed commits, tamper
//! detection on the real database file, retention, search and export.

use super::user;
use enclave_audit::export::verify_lines;
use enclave_audit::{
    canonical_detail, Chainer, CheckpointSigner, Failure, RecordView, SigningKey, Tamper,
};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::Timestamp;
use enclave_store::{AuditFilter, AuditOptions, AuditOrder, Store, StoreOptions};
use serde_json::json;
use sqlx::{ConnectOptions, Connection, Executor, Row};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn rec(i: u64) -> AuditRecord {
    let mut detail = serde_json::Map::new();
    detail.insert("i".into(), json!(i));
    detail.insert("b".into(), json!({"y": [1, "two"], "x": null}));
    AuditRecord {
        at: Timestamp(1_800_000_000 + i as i64),
        actor: format!("actor{}", i % 4),
        auth: "session".into(),
        source: "127.0.0.1".into(),
        action: if i % 3 == 0 {
            "user.delete".into()
        } else {
            "user.create".into()
        },
        resource: format!("user:u{i}"),
        project: (i % 2 == 0).then(|| format!("p{}", i % 5)),
        outcome: if i % 7 == 0 {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        request_id: format!("req_{i}"),
        detail,
    }
}

struct Env {
    store: Store,
    key: Arc<SigningKey>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn options(key: &Arc<SigningKey>, every: u64) -> StoreOptions {
    StoreOptions {
        audit: AuditOptions {
            signer: Some(key.clone() as Arc<dyn CheckpointSigner>),
            checkpoint_every: every,
            checkpoint_interval: Duration::from_secs(3600),
            ..AuditOptions::default()
        },
    }
}

async fn env(every: u64) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let key = Arc::new(SigningKey::generate().unwrap().0);
    let store = Store::open_with(&path, options(&key, every)).await.unwrap();
    Env {
        store,
        key,
        path,
        _dir: dir,
    }
}

async fn append(store: &Store, i: u64) {
    let mut tx = store.write().await.unwrap();
    tx.append_audit(&rec(i)).await.unwrap();
    tx.commit().await.unwrap();
}

async fn append_many(store: &Store, from: u64, to: u64) {
    for i in from..=to {
        append(store, i).await;
    }
}

async fn seqs(store: &Store) -> Vec<u64> {
    store
        .records_after(0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect()
}

async fn verify(e: &Env) -> Result<enclave_audit::Summary, Failure> {
    e.store
        .verify_audit(&e.key.public_key(), None)
        .await
        .unwrap()
}

async fn raw(path: &Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap()
}

async fn export(e: &Env) -> String {
    let mut out = Vec::new();
    e.store
        .export_audit(None, Timestamp(1_900_000_000), &mut out)
        .await
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn the_chain_continues_across_reopen_with_checkpoints() {
    let e = env(5).await;
    append_many(&e.store, 1, 12).await;
    e.store.close().await;
    let store = Store::open_with(&e.path, options(&e.key, 5)).await.unwrap();
    append_many(&store, 13, 20).await;
    assert_eq!(seqs(&store).await, (1..=20).collect::<Vec<_>>());
    let cps: Vec<u64> = store
        .audit_checkpoints(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(cps, [5, 10, 15, 20]);
    let s = store
        .verify_audit(&e.key.public_key(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s.records, s.checkpoints, s.last_seq), (20, 4, Some(20)));
    assert_eq!(store.audit_head().await, (20, s.head));
    // Records come back as they went in.
    let got = store.records_after(6, 1).await.unwrap();
    assert_eq!(got[0].record, rec(7));
    // Stored detail is the canonical JSON that was hashed.
    let mut c = raw(&e.path).await;
    let d: String = sqlx::query("SELECT detail FROM audit_events WHERE seq = 7")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    assert_eq!(d, canonical_detail(&rec(7).detail));
    // Verification from a checkpoint.
    let s = store
        .verify_audit(&e.key.public_key(), Some(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s.records, s.started_from), (5, Some(15)));
    // The wrong key fails at the first checkpoint.
    let other = SigningKey::generate().unwrap().0;
    assert_eq!(
        store
            .verify_audit(&other.public_key(), None)
            .await
            .unwrap()
            .unwrap_err(),
        Failure {
            seq: 5,
            kind: Tamper::BadSignature
        }
    );
}

#[tokio::test]
async fn checkpoints_by_record_time_and_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(SigningKey::generate().unwrap().0);
    let mut opts = options(&key, 1000);
    opts.audit.checkpoint_interval = Duration::from_secs(60);
    let store = Store::open_with(&dir.path().join("t.db"), opts)
        .await
        .unwrap();
    for at in [0, 10, 59, 61, 100, 130] {
        let mut r = rec(1);
        r.at = Timestamp(1_000 + at);
        let mut tx = store.write().await.unwrap();
        tx.append_audit(&r).await.unwrap();
        tx.commit().await.unwrap();
    }
    let cps: Vec<u64> = store
        .audit_checkpoints(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    // 61 s after the first record, then 60 s after that checkpoint.
    assert_eq!(cps, [4, 6]);
    // On demand: nothing new to sign returns the head's checkpoint.
    let cp = store
        .checkpoint_now(Timestamp(2_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cp.seq, 6);
    let mut r = rec(2);
    r.at = Timestamp(1_150);
    let mut tx = store.write().await.unwrap();
    tx.append_audit(&r).await.unwrap();
    tx.commit().await.unwrap();
    let cp = store
        .checkpoint_now(Timestamp(2_001))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cp.seq, cp.at), (7, Timestamp(2_001)));
    assert!(cp.verify(&key.public_key()));
    assert_eq!(store.latest_checkpoint().await.unwrap(), Some(cp));
    // Without a signer there is nothing to sign with.
    let plain = Store::open(&dir.path().join("p.db")).await.unwrap();
    assert!(matches!(
        plain.checkpoint_now(Timestamp(1)).await,
        Err(enclave_store::StoreError::NoSigner)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_commits_share_fsyncs_and_chain() {
    let e = env(16).await;
    let before = e.store.commit_count();
    let tasks: Vec<_> = (1..=64)
        .map(|i| {
            let s = e.store.clone();
            tokio::spawn(async move {
                let mut tx = s.write().await?;
                tx.insert_user(&user(&format!("u{i}")), None).await?;
                tx.append_audit(&rec(i)).await?;
                tx.commit().await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let commits = e.store.commit_count() - before;
    assert!(commits < 64, "64 transactions took {commits} commits");
    assert_eq!(seqs(&e.store).await, (1..=64).collect::<Vec<_>>());
    assert_eq!(e.store.count_users().await.unwrap(), 64);
    let s = verify(&e).await.unwrap();
    assert_eq!((s.records, s.checkpoints), (64, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transaction_inside_a_batch_changes_nothing() {
    let e = env(1000).await;
    let commits = e.store.commit_count();
    // A holds the lock; B queues behind it.
    let mut a = e.store.write().await.unwrap();
    let s = e.store.clone();
    let b = tokio::spawn(async move {
        let mut tx = s.write().await.unwrap();
        tx.insert_user(&user("dropped"), None).await.unwrap();
        tx.append_audit(&rec(99)).await.unwrap();
        // Gone without commit (an error, or its client went away).
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.insert_user(&user("kept"), None).await.unwrap();
    a.append_audit(&rec(1)).await.unwrap();
    // B is in line, so A joins the batch and waits for it; B's drop ends the batch.
    a.commit().await.unwrap();
    b.await.unwrap();
    assert_eq!(e.store.commit_count() - commits, 1, "one batch, one COMMIT");
    let names: Vec<_> = e
        .store
        .list_users(&enclave_core::model::PageRequest::new(None, None).unwrap())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["kept"]);
    let got = e.store.records_after(0, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record, rec(1));
    // The chain head was restored: the next record takes seq 2.
    append(&e.store, 2).await;
    assert_eq!(seqs(&e.store).await, [1, 2]);
    verify(&e).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_commit_does_not_stall_its_batch() {
    let e = env(1000).await;
    // A commits while B is in line, then A's caller goes away while it waits.
    let mut a = e.store.write().await.unwrap();
    let s = e.store.clone();
    let (b_ready, b_go) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let (r, g) = (b_ready.clone(), b_go.clone());
    let b = tokio::spawn(async move {
        let tx = s.write().await.unwrap();
        r.notify_one();
        g.notified().await;
        drop(tx);
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.append_audit(&rec(1)).await.unwrap();
    let waiting = tokio::spawn(async move { a.commit().await });
    b_ready.notified().await;
    waiting.abort();
    let _ = waiting.await;
    b_go.notify_one();
    b.await.unwrap();
    // Nobody is left to commit but the guard of A's abandoned wait: the batch still lands.
    let landed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if e.store.audit_head().await.0 == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(landed.is_ok(), "the batch was committed");
    append(&e.store, 2).await;
    assert_eq!(seqs(&e.store).await, [1, 2]);
    verify(&e).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_commit_fails_every_member_of_the_batch() {
    let e = env(4).await;
    append_many(&e.store, 1, 3).await;
    e.store.break_commit_for_tests().await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = e.store.clone();
            tokio::spawn(async move {
                let mut tx = s.write().await?;
                tx.insert_user(&user(&format!("f{i}")), None).await?;
                tx.append_audit(&rec(100 + i)).await?;
                tx.commit().await
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(
            matches!(r, Err(enclave_store::StoreError::CommitFailed(_))),
            "every member fails: {r:?}"
        );
    }
    assert_eq!(e.store.count_users().await.unwrap(), 0);
    assert_eq!(seqs(&e.store).await, [1, 2, 3]);
    e.store.heal_for_tests().await.unwrap();
    // The head was restored: the chain goes on from 3, with its checkpoint at 4.
    append_many(&e.store, 4, 6).await;
    assert_eq!(seqs(&e.store).await, [1, 2, 3, 4, 5, 6]);
    let s = verify(&e).await.unwrap();
    assert_eq!((s.records, s.checkpoints), (6, 1));
}

#[tokio::test]
async fn an_append_that_cannot_be_written_changes_nothing() {
    let e = env(2).await;
    append(&e.store, 1).await;
    e.store.break_audit_for_tests().await.unwrap();
    let mut tx = e.store.write().await.unwrap();
    tx.insert_user(&user("ghost"), None).await.unwrap();
    // The record is written with its batch, just before the COMMIT: the commit fails.
    tx.append_audit(&rec(2)).await.unwrap();
    assert!(matches!(
        tx.commit().await,
        Err(enclave_store::StoreError::CommitFailed(_))
    ));
    e.store.heal_for_tests().await.unwrap();
    assert_eq!(e.store.count_users().await.unwrap(), 0);
    append(&e.store, 2).await;
    assert_eq!(seqs(&e.store).await, [1, 2]);
    assert_eq!(verify(&e).await.unwrap().checkpoints, 1);
}

/// A store with 50 records and checkpoints every 10, and a raw connection to its file with
/// the append-only trigger dropped (as an attacker with file access would).
async fn tampered() -> (Env, sqlx::SqliteConnection) {
    let e = env(10).await;
    append_many(&e.store, 1, 50).await;
    let mut c = raw(&e.path).await;
    c.execute("DROP TRIGGER audit_events_append_only")
        .await
        .unwrap();
    (e, c)
}

async fn expect(e: &Env, seq: u64, kind: Tamper) {
    let f = verify(e).await.unwrap_err();
    assert_eq!(f, Failure { seq, kind });
}

#[tokio::test]
async fn a_modified_row_is_named_in_the_store_and_in_its_export() {
    let (e, mut c) = tampered().await;
    assert!(verify_lines(export(&e).await.lines(), &e.key.public_key(), None).is_ok());
    c.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 23")
        .await
        .unwrap();
    expect(&e, 23, Tamper::Modified).await;
    let f = verify_lines(export(&e).await.lines(), &e.key.public_key(), None).unwrap_err();
    assert_eq!(
        f,
        Failure {
            seq: 23,
            kind: Tamper::Modified
        }
    );
}

#[tokio::test]
async fn a_deleted_row_is_named() {
    let (e, mut c) = tampered().await;
    c.execute("DELETE FROM audit_events WHERE seq = 23")
        .await
        .unwrap();
    expect(&e, 23, Tamper::Deleted { count: Some(1) }).await;
}

#[tokio::test]
async fn inserted_rows_are_named() {
    let (e, mut c) = tampered().await;
    // Appended with a correct hash: only the writer's head shows it does not belong.
    let last = e.store.records_after(49, 1).await.unwrap().remove(0);
    let forged = rec(51);
    let detail = canonical_detail(&forged.detail);
    let hash = Chainer::new().hash(&last.hash, &RecordView::of(51, &forged, &detail));
    insert_row(&mut c, 51, &forged, &detail, &hash).await;
    expect(&e, 51, Tamper::Inserted).await;
    c.execute("DELETE FROM audit_events WHERE seq = 51")
        .await
        .unwrap();
    verify(&e).await.unwrap();
    // Slipped in at 23 with the rest renumbered.
    c.execute("UPDATE audit_events SET seq = -seq - 1 WHERE seq >= 23")
        .await
        .unwrap();
    c.execute("UPDATE audit_events SET seq = -seq WHERE seq < 0")
        .await
        .unwrap();
    insert_row(&mut c, 23, &forged, &detail, &[7; 32]).await;
    expect(&e, 23, Tamper::Inserted).await;
}

async fn insert_row(
    c: &mut sqlx::SqliteConnection,
    seq: i64,
    r: &AuditRecord,
    detail: &str,
    hash: &[u8; 32],
) {
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, auth, source, action, resource, project,
           outcome, request_id, detail, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
    )
    .bind(seq)
    .bind(r.at.unix())
    .bind(&r.actor)
    .bind(&r.auth)
    .bind(&r.source)
    .bind(&r.action)
    .bind(&r.resource)
    .bind(r.project.as_deref())
    .bind(r.outcome.as_str())
    .bind(&r.request_id)
    .bind(detail)
    .bind(&hash[..])
    .execute(c)
    .await
    .unwrap();
}

#[tokio::test]
async fn swapped_rows_are_named() {
    let (e, mut c) = tampered().await;
    c.execute(
        "UPDATE audit_events SET seq = -seq WHERE seq IN (23, 24);
         UPDATE audit_events SET seq = 24 WHERE seq = -23;
         UPDATE audit_events SET seq = 23 WHERE seq = -24;",
    )
    .await
    .unwrap();
    expect(&e, 23, Tamper::Reordered { with: 24 }).await;
}

#[tokio::test]
async fn truncation_after_a_checkpoint_is_named() {
    let (e, mut c) = tampered().await;
    c.execute("DELETE FROM audit_events WHERE seq > 35")
        .await
        .unwrap();
    expect(
        &e,
        36,
        Tamper::Truncated {
            last: Some(35),
            expected: 50,
        },
    )
    .await;
    // The checkpoints deleted too: the writer's head still knows.
    c.execute("DELETE FROM audit_checkpoints WHERE seq > 30")
        .await
        .unwrap();
    expect(
        &e,
        36,
        Tamper::Truncated {
            last: Some(35),
            expected: 50,
        },
    )
    .await;
}

#[tokio::test]
async fn a_rewrite_with_recomputed_hashes_and_a_forged_checkpoint_are_named() {
    let (e, mut c) = tampered().await;
    // Rewrite 23 and recompute every hash after it, as someone who knows the algorithm can.
    c.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 23")
        .await
        .unwrap();
    let rows = e.store.records_after(21, 100).await.unwrap();
    let mut prev = rows[0].hash;
    let mut chainer = Chainer::new();
    for r in &rows[1..] {
        let detail = canonical_detail(&r.record.detail);
        prev = chainer.hash(&prev, &RecordView::of(r.seq, &r.record, &detail));
        sqlx::query("UPDATE audit_events SET hash = $1 WHERE seq = $2")
            .bind(&prev[..])
            .bind(r.seq as i64)
            .execute(&mut c)
            .await
            .unwrap();
    }
    expect(&e, 30, Tamper::CheckpointMismatch).await;
    // A checkpoint altered to match: its signature no longer verifies.
    let h30 = e.store.records_after(29, 1).await.unwrap().remove(0).hash;
    sqlx::query("UPDATE audit_checkpoints SET hash = $1 WHERE seq = 30")
        .bind(&h30[..])
        .execute(&mut c)
        .await
        .unwrap();
    expect(&e, 30, Tamper::BadSignature).await;
}

#[tokio::test]
async fn pruning_keeps_verification_passing() {
    let e = env(10).await;
    append_many(&e.store, 1, 35).await;
    let mut why = rec(0);
    why.actor = "admin".into();
    // Only up to a checkpoint.
    assert!(matches!(
        e.store.prune_audit_through(25, &why).await,
        Err(enclave_store::StoreError::Invalid(_))
    ));
    assert_eq!(e.store.prune_audit_through(20, &why).await.unwrap(), 20);
    let first = e.store.records_after(0, 1).await.unwrap().remove(0);
    assert_eq!(first.seq, 21);
    let last = e.store.records_after(35, 1).await.unwrap().remove(0);
    assert_eq!(last.record.action, enclave_store::PRUNE_ACTION);
    assert_eq!(last.record.detail["through"], json!(20));
    assert_eq!(last.record.detail["deleted"], json!(20));
    let s = verify(&e).await.unwrap();
    assert_eq!((s.started_from, s.records), (Some(20), 16));
    // It survives reopening and more appends; an export verifies from its anchor.
    e.store.close().await;
    let store = Store::open_with(&e.path, options(&e.key, 10))
        .await
        .unwrap();
    append_many(&store, 37, 45).await;
    let e = Env { store, ..e };
    let s = verify(&e).await.unwrap();
    assert_eq!((s.started_from, s.last_seq), (Some(20), Some(45)));
    let s = verify_lines(export(&e).await.lines(), &e.key.public_key(), None).unwrap();
    assert_eq!((s.started_from, s.last_seq), (Some(20), Some(45)));
    // Deleting a prefix by hand up to a checkpoint is not a pruning: no record says so.
    let mut c = raw(&e.path).await;
    c.execute("DELETE FROM audit_events WHERE seq <= 30")
        .await
        .unwrap();
    expect(&e, 1, Tamper::Deleted { count: Some(30) }).await;
}

#[tokio::test]
async fn search_filters_and_pages_both_ways() {
    let e = env(1000).await;
    append_many(&e.store, 1, 40).await;
    let f = AuditFilter {
        actor: Some("actor1".into()),
        ..AuditFilter::default()
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = e
            .store
            .search_audit(&f, AuditOrder::NewestFirst, after, 3)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|i| i.seq));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, [37, 33, 29, 25, 21, 17, 13, 9, 5, 1]);
    let f = AuditFilter {
        action: Some("user.delete".into()),
        project: Some("p1".into()),
        outcome: Some(Outcome::Success),
        since: Some(Timestamp(1_800_000_005)),
        until: Some(Timestamp(1_800_000_040)),
        seq_min: Some(2),
        seq_max: Some(39),
        ..AuditFilter::default()
    };
    let page = e
        .store
        .search_audit(&f, AuditOrder::OldestFirst, None, 100)
        .await
        .unwrap();
    let got: Vec<u64> = page.items.iter().map(|i| i.seq).collect();
    let want: Vec<u64> = (2..=39)
        .filter(|i| i % 3 == 0 && i % 2 == 0 && i % 5 == 1 && i % 7 != 0 && *i >= 5)
        .collect();
    assert_eq!(got, want);
    assert!(page.next.is_none());
    let page = e
        .store
        .search_audit(
            &AuditFilter {
                resource: Some("user:u7".into()),
                ..AuditFilter::default()
            },
            AuditOrder::OldestFirst,
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].record, rec(7));
    assert_eq!(page.items[0].record.outcome, Outcome::Denied);
}

#[tokio::test]
async fn records_written_before_the_chain_are_chained_by_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A database as migration 0001 left it, with records whose detail is not canonical
        // and whose sequence has a gap.
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        c.execute(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
               applied_at BIGINT NOT NULL)",
        )
        .await
        .unwrap();
        c.execute(enclave_store::MIGRATIONS[0].2).await.unwrap();
        c.execute("INSERT INTO schema_migrations VALUES (1, 'foundation', 0)")
            .await
            .unwrap();
        for (seq, detail) in [
            (1, r#"{"z": 1, "a": "x"}"#),
            (2, "{}"),
            (5, r#"{"k":[1 ,2]}"#),
        ] {
            sqlx::query(
                "INSERT INTO audit_events (seq, at, actor, auth, source, action, resource,
                   project, outcome, request_id, detail)
                 VALUES ($1, 10, 'old', 'cli', 'local', 'setup', 'platform', NULL, 'success',
                   'req', $2)",
            )
            .bind(seq)
            .bind(detail)
            .execute(&mut c)
            .await
            .unwrap();
        }
        c.close().await.unwrap();
    }
    let key = Arc::new(SigningKey::generate().unwrap().0);
    let store = Store::open_with(&path, options(&key, 1000)).await.unwrap();
    store.ready().await.unwrap();
    append(&store, 4).await;
    let got = store.records_after(0, 10).await.unwrap();
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(got[0].record.detail["z"], json!(1));
    let s = store
        .verify_audit(&key.public_key(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.records, 4);
    // Chained rows are append-only from now on.
    let mut c = raw(&path).await;
    assert!(c
        .execute("UPDATE audit_events SET actor = 'x' WHERE seq = 1")
        .await
        .is_err());
}
