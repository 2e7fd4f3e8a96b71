//! Store behaviour that the use cases rely on: migrations, atomic writes with their audit
//! record, and recovery from write transactions abandoned mid-way.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::model::{PageRequest, User};
use enclave_core::Timestamp;
use enclave_store::Store;
use std::time::Duration;

fn user(name: &str) -> User {
    User {
        id: format!("usr_{name}"),
        username: name.into(),
        display_name: String::new(),
        email: String::new(),
        platform_admin: false,
        disabled: false,
        created_at: Timestamp(1),
    }
}

fn record(action: &str) -> AuditRecord {
    AuditRecord {
        at: Timestamp(1),
        actor: "t".into(),
        auth: "test".into(),
        source: "local".into(),
        action: action.into(),
        resource: "user:x".into(),
        project: None,
        outcome: Outcome::Success,
        request_id: "req_t".into(),
        detail: serde_json::Map::new(),
    }
}

async fn open() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    (store, dir)
}

#[tokio::test]
async fn migrations_apply_once_and_reopen_cleanly() {
    let (store, dir) = open().await;
    store.ready().await.unwrap();
    store.close().await;
    let again = Store::open(&dir.path().join("s.db")).await.unwrap();
    again.ready().await.unwrap();
}

#[tokio::test]
async fn a_change_and_its_record_commit_together_or_not_at_all() {
    let (store, _dir) = open().await;
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&user("kept"), None).await.unwrap();
    tx.append_audit(&record("user.create")).await.unwrap();
    tx.commit().await.unwrap();
    // Dropped without commit: neither the user nor the record stays.
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&user("dropped"), None).await.unwrap();
    tx.append_audit(&record("user.create")).await.unwrap();
    drop(tx);
    let users = store
        .list_users(&PageRequest::new(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(users.items.len(), 1);
    assert_eq!(store.audit_after(0, 10).await.unwrap().len(), 1);
    // A duplicate is a conflict, not an outage.
    let mut tx = store.write().await.unwrap();
    let e = tx.insert_user(&user("kept"), None).await.unwrap_err();
    assert!(matches!(e, enclave_store::StoreError::Conflict));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_never_leaves_the_database_locked() {
    let (store, _dir) = open().await;
    for i in 0..5 {
        let s = store.clone();
        let task = tokio::spawn(async move {
            let mut tx = s.write().await.unwrap();
            tx.insert_user(&user(&format!("ghost{i}")), None)
                .await
                .unwrap();
            // The client goes away here: the future is dropped at an await point.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            tx.commit().await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        task.abort();
        let _ = task.await;
        let next = tokio::time::timeout(Duration::from_secs(5), async {
            let mut tx = store.write().await.unwrap();
            tx.insert_user(&user(&format!("real{i}")), None)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        })
        .await;
        assert!(next.is_ok(), "the next write went through promptly");
    }
    let users = store
        .list_users(&PageRequest::new(None, None).unwrap())
        .await
        .unwrap();
    let names: Vec<_> = users.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["real0", "real1", "real2", "real3", "real4"]);
}

#[path = "audit/chain.rs"]
mod chain;
