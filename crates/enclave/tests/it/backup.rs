//! Backup and restore: `enclave backup` while the server serves and writes go on, then
//! `enclave restore` into a new data directory that a new server starts on, with logins,
//! secrets and the audit trail intact; wrong keys, altered archives and non-admins refused.

use crate::common::{login_cli, run};
use crate::BIN;
use enclave_testkit::{Options, Server, PASSWORD};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const VALUE: &str = "pg-Warehouse-Secret-7731-restore-me";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("ENCLAVE_CONFIG")
        .env_remove("ENCLAVE_DATA_DIR");
    c
}

fn restore(archive: &Path, new: &Path, key: Option<&Path>) -> Output {
    let mut args = vec![
        "restore".to_string(),
        archive.display().to_string(),
        "--data-dir".into(),
        new.display().to_string(),
    ];
    if let Some(k) = key {
        args.push("--master-key".into());
        args.push(k.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(bin(), &args, None)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Entries of `dir` (to show that a failed restore left nothing behind).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn backup_while_serving_then_restore_brings_back_logins_secrets_and_the_trail() {
    let mut s = Server::start(BIN);
    let admin = s.admin().await;
    admin.user(&s, "olivia").await;
    let (st, b) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "fraud", "owner": "olivia"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let owner = s.login("olivia", PASSWORD).await;
    let (st, b) = owner
        .call(
            "PUT",
            "/api/v1/projects/fraud/secrets/DB_PASSWORD",
            Some(json!({"value": VALUE})),
        )
        .await;
    assert_eq!(st, 200, "{b}");

    // Non-admins get no backup.
    let (st, b) = owner.post("/api/v1/admin/backup", json!({})).await;
    assert_eq!(st, 403, "{b}");

    login_cli(&s, "adm", "admin");

    // Writes go on while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, created) = (stop.clone(), created.clone());
        let api = s.login("admin", PASSWORD).await;
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 150 {
                let (st, b) = api
                    .post("/api/v1/groups", json!({"name": format!("team-{i}")}))
                    .await;
                assert_eq!(st, 201, "{b}");
                created.fetch_add(1, Ordering::SeqCst);
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    while created.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before_backup = created.load(Ordering::SeqCst);
    let archive = s.root.path().join("backup.ebk");
    let cli = s.cli("adm");
    let a = archive.clone();
    let o = tokio::task::spawn_blocking(move || {
        run(
            cli,
            &["--output", "json", "backup", "--out", a.to_str().unwrap()],
            None,
        )
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let after_backup = created.load(Ordering::SeqCst);
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = shown["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("bkp_"), "{shown}");

    // The archive: private, its size as announced and audited, nothing readable in it.
    let meta = std::fs::metadata(&archive).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(shown["bytes"].as_u64().unwrap(), meta.len());
    let raw = std::fs::read(&archive).unwrap();
    for (what, needle) in [
        ("secret value", VALUE.as_bytes()),
        ("password", PASSWORD.as_bytes()),
        ("database header", b"SQLite format 3".as_slice()),
        ("user name", b"olivia".as_slice()),
    ] {
        assert!(!contains(&raw, needle), "the archive shows the {what}");
    }
    let (_, page) = admin.get("/api/v1/audit?action=backup.complete").await;
    let done = &page["items"][0];
    assert_eq!(done["detail"]["archive"], id.as_str(), "{page}");
    assert_eq!(done["detail"]["bytes"].as_u64(), Some(meta.len()), "{page}");
    assert_eq!(done["detail"]["sha256"], shown["sha256"], "{page}");
    // No temporary file is left in the data directory.
    assert!(
        entries(&s.data_dir)
            .iter()
            .all(|n| !n.starts_with(".backup-")),
        "{:?}",
        entries(&s.data_dir)
    );

    // An existing file is kept unless --force.
    let o = run(
        s.cli("adm"),
        &["backup", "--out", archive.to_str().unwrap()],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(std::fs::read(&archive).unwrap(), raw);

    s.stop();
    let key = s.data_dir.join("master.key");
    let place = tempfile::tempdir().unwrap();
    let new = place.path().join("restored");

    // Without the master key, or with another installation's, nothing is written.
    let o = restore(&archive, &new, None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--master-key"), "{}", text(&o));
    let other = tempfile::tempdir().unwrap();
    let wrong = other.path().join("master.key");
    enclave_keys::FileMasterKeys::open_or_create_local(&wrong).unwrap();
    let o = restore(&archive, &new, Some(&wrong));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("does not open this archive"),
        "{}",
        text(&o)
    );
    assert!(entries(place.path()).is_empty());

    // A truncated or altered archive is refused, and leaves nothing behind.
    let cut = place.path().join("cut.ebk");
    std::fs::write(&cut, &raw[..raw.len() - 100]).unwrap();
    let o = restore(&cut, &new, Some(&key));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("truncated"), "{}", text(&o));
    let altered = place.path().join("altered.ebk");
    let mut bad = raw.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&altered, &bad).unwrap();
    let o = restore(&altered, &new, Some(&key));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("nothing was written"), "{}", text(&o));
    assert_eq!(entries(place.path()), vec!["altered.ebk", "cut.ebk"]);

    // The right key restores: a private directory with private files and the key file.
    let o = restore(&archive, &new, Some(&key));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("enclave serve --data-dir {}", new.display())),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::metadata(&new).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        entries(&new),
        vec!["audit-signing.key", "enclave.db", "master.key"]
    );
    for f in entries(&new) {
        let mode = std::fs::metadata(new.join(&f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    assert_eq!(
        std::fs::read(new.join("master.key")).unwrap(),
        std::fs::read(&key).unwrap()
    );
    // A second restore into it is refused.
    let o = restore(&archive, &new, Some(&key));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not empty"), "{}", text(&o));

    // A server on the restored directory: logins, secrets and the trail work.
    let root = tempfile::tempdir().unwrap();
    let r = Server::start_in(BIN, root, new.clone(), Options::default());
    let owner = r.login("olivia", PASSWORD).await;
    let (st, b) = owner
        .get("/api/v1/projects/fraud/secrets/DB_PASSWORD/value")
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["value"], VALUE, "{b}");
    let admin = r.login("admin", PASSWORD).await;
    let (_, groups) = admin.get("/api/v1/groups?limit=200").await;
    let restored = groups["items"].as_array().unwrap().len();
    assert!(
        (before_backup..=after_backup).contains(&restored),
        "{before_backup} <= {restored} <= {after_backup}"
    );
    let (_, page) = admin.get("/api/v1/audit?action=backup.create").await;
    assert_eq!(page["items"][0]["detail"]["archive"], id.as_str(), "{page}");
    let (st, v) = admin.post("/api/v1/audit/verify", json!({})).await;
    assert_eq!((st, &v["ok"]), (200, &json!(true)), "{v}");
    let o = run(
        bin(),
        &["admin", "verify-audit", "--data-dir", new.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
}
