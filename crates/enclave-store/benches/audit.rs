//! Durable audit appends with group commit, against one `write + fdatasync` per record on the
//! same disk, and verification speed over 1,000,000 records.
//!
//! `cargo bench -p enclave-store --bench audit` prints JSON (also written to `$BENCH_OUT` when
//! set). Knobs: `WRITERS` (64), `SECONDS` (3), `VERIFY_RECORDS` (1000000). `MICRO=1` instead
//! prints the cost of the parts (one sqlx round trip, one INSERT, a 10,000-record batch).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use enclave_audit::{canonical_detail, CheckpointSigner, RecordView, SigningKey, Verifier};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::Timestamp;
use enclave_store::{AuditOptions, Store, StoreOptions};
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn record(i: u64) -> AuditRecord {
    let mut detail = serde_json::Map::new();
    detail.insert("name".into(), json!(format!("user{i}")));
    detail.insert("reason".into(), json!("policy permit: project owner"));
    AuditRecord {
        at: Timestamp(1_800_000_000 + (i / 1000) as i64),
        actor: format!("user{}", i % 100),
        auth: "session".into(),
        source: "10.0.0.7".into(),
        action: "dataset.read".into(),
        resource: format!("dataset:d{}", i % 1000),
        project: Some(format!("project{}", i % 10)),
        outcome: Outcome::Success,
        request_id: format!("req_{i:016x}"),
        detail,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// The anchor: one `write + fdatasync` per record on a file in the same directory.
fn fdatasync_anchor(dir: &std::path::Path, seconds: u64) -> f64 {
    let mut f = std::fs::File::create(dir.join("anchor.log")).unwrap();
    let line = [b'x'; 255];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        f.write_all(&line).unwrap();
        f.write_all(b"\n").unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn options(key: &Arc<SigningKey>) -> StoreOptions {
    StoreOptions {
        audit: AuditOptions {
            signer: Some(key.clone() as Arc<dyn CheckpointSigner>),
            ..AuditOptions::default()
        },
    }
}

async fn group_commit(
    dir: &std::path::Path,
    key: &Arc<SigningKey>,
    writers: u64,
    seconds: u64,
) -> serde_json::Value {
    let store = Store::open_with(&dir.join("appends.db"), options(key))
        .await
        .unwrap();
    let commits_before = store.commit_count();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(100_000);
                let mut i = w;
                while Instant::now() < deadline {
                    let rec = record(i);
                    let t = Instant::now();
                    let mut tx = store.write().await.unwrap();
                    tx.append_audit(&rec).await.unwrap();
                    tx.commit().await.unwrap();
                    lat.push(t.elapsed());
                    i += writers;
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let commits = store.commit_count() - commits_before;
    lat.sort_unstable();
    let n = lat.len() as f64;
    let (head, _) = store.audit_head().await;
    let verified = store
        .verify_audit(&key.public_key(), None)
        .await
        .unwrap()
        .is_ok();
    store.close().await;
    json!({
        "writers": writers,
        "seconds": elapsed,
        "appends": lat.len(),
        "appends_per_s": n / elapsed,
        "p50_ms": percentile(&lat, 0.50),
        "p99_ms": percentile(&lat, 0.99),
        "max_ms": percentile(&lat, 1.0),
        "commits": commits,
        "records_per_fsync": n / commits.max(1) as f64,
        "chain_head": head,
        "chain_verifies": verified,
    })
}

async fn verification(
    dir: &std::path::Path,
    key: &Arc<SigningKey>,
    records: u64,
) -> serde_json::Value {
    let store = Store::open_with(&dir.join("verify.db"), options(key))
        .await
        .unwrap();
    // Fill through the real append path, many records per transaction.
    let fill = Instant::now();
    let mut i = 0;
    while i < records {
        let mut tx = store.write().await.unwrap();
        for _ in 0..10_000.min(records - i) {
            i += 1;
            tx.append_audit(&record(i)).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let fill_s = fill.elapsed().as_secs_f64();
    let start = Instant::now();
    let summary = store
        .verify_audit(&key.public_key(), None)
        .await
        .unwrap()
        .unwrap();
    let verify_s = start.elapsed().as_secs_f64();
    assert_eq!(summary.records, records);

    // The verifier alone, on records already in memory (no SQLite).
    let recs: Vec<_> = (1..=records.min(1_000_000))
        .map(|i| {
            let r = record(i);
            let d = canonical_detail(&r.detail);
            (r, d)
        })
        .collect();
    let mut chainer = enclave_audit::Chainer::new();
    let mut prev = enclave_audit::GENESIS;
    let hashes: Vec<_> = recs
        .iter()
        .enumerate()
        .map(|(n, (r, d))| {
            prev = chainer.hash(&prev, &RecordView::of(n as u64 + 1, r, d));
            prev
        })
        .collect();
    let start = Instant::now();
    let mut v = Verifier::new(key.public_key());
    for (n, ((r, d), h)) in recs.iter().zip(&hashes).enumerate() {
        v.push(&RecordView::of(n as u64 + 1, r, d), h).unwrap();
    }
    v.finish().unwrap();
    let mem_s = start.elapsed().as_secs_f64();
    store.close().await;
    json!({
        "records": records,
        "fill_seconds": fill_s,
        "store_verify_seconds": verify_s,
        "store_verify_records_per_s": records as f64 / verify_s,
        "checkpoints_checked": summary.checkpoints,
        "in_memory_verify_records_per_s": recs.len() as f64 / mem_s,
    })
}

/// Costs of the parts: one statement round trip, one INSERT in a big transaction.
async fn micro(dir: &std::path::Path) -> serde_json::Value {
    use sqlx::{ConnectOptions, Executor};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("micro.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        sqlx::query("SELECT 1").execute(&mut c).await.unwrap();
    }
    let select_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    c.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, h BLOB)")
        .await
        .unwrap();
    c.execute("BEGIN").await.unwrap();
    let t = Instant::now();
    for i in 0..n {
        sqlx::query("INSERT INTO t (a, b, h) VALUES ($1, $2, $3)")
            .bind(i as i64)
            .bind("some text of about forty bytes, more or less")
            .bind(&[7u8; 32][..])
            .execute(&mut c)
            .await
            .unwrap();
    }
    let insert_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    c.execute("COMMIT").await.unwrap();
    json!({"select_1_us": select_us, "insert_us": insert_us})
}

fn main() {
    if std::env::var("MICRO").is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        println!("{}", rt.block_on(micro(dir.path())));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        println!("current_thread {}", rt.block_on(micro(dir2.path())));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let key = Arc::new(SigningKey::generate().unwrap().0);
            let store = Store::open_with(&dir2.path().join("f.db"), options(&key))
                .await
                .unwrap();
            let mut i = 0;
            for round in 0..6 {
                let t = Instant::now();
                let mut tx = store.write().await.unwrap();
                for _ in 0..10_000 {
                    i += 1;
                    tx.append_audit(&record(i)).await.unwrap();
                }
                let appended = t.elapsed();
                tx.commit().await.unwrap();
                println!(
                    "round {round}: append {:?} commit {:?}",
                    appended,
                    t.elapsed() - appended
                );
            }
            let t = Instant::now();
            let n = store
                .verify_audit(&key.public_key(), None)
                .await
                .unwrap()
                .unwrap()
                .records;
            println!("verify {n} in {:?}", t.elapsed());
        });
        return;
    }
    let writers = env_or("WRITERS", 64);
    let seconds = env_or("SECONDS", 3);
    let verify_records = env_or("VERIFY_RECORDS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(SigningKey::generate().unwrap().0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let anchor = fdatasync_anchor(dir.path(), seconds);
    let appends = rt.block_on(group_commit(dir.path(), &key, writers, seconds));
    let verify = rt.block_on(verification(dir.path(), &key, verify_records));
    let rate = appends["appends_per_s"].as_f64().unwrap_or(0.0);
    let out = json!({
        "benchmark": "audit",
        "anchor_fdatasync_per_record_per_s": anchor,
        "group_commit": appends,
        "ratio_vs_anchor": rate / anchor,
        "verification": verify,
        "targets": {
            "appends_per_s": 50_000,
            "p99_ms": 10,
            "verify_records_per_s": 1_000_000,
        },
    });
    let text = serde_json::to_string_pretty(&out).unwrap();
    println!("{text}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, text + "\n").unwrap();
    }
}
