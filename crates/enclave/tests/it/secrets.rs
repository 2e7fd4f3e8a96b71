//! Secrets and keys end to end: a project owner stores a secret with the CLI, a job's plan
//! names it, nobody without the permission reads it, the raw files reveal nothing, a wrong
//! or missing master key decrypts nothing, keys rotate while the server serves, and a sealed
//! server serves nothing until unsealed.

use crate::common::{login_cli, ok, run};
use crate::BIN;
use enclave_testkit::{Options, Server, PASSWORD};
use serde_json::{json, Value};
use std::process::{Command, Output, Stdio};

const DB_VALUE: &str = "pg-Secret-Walrus-Tangerine-4471";

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// An admin, `olivia` owning project `fraud`, `victor` viewing it. Returns the admin's API.
async fn setup(s: &Server) -> enclave_testkit::Api {
    crate::common::fraud_project(s, None).await.0
}

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            hits.push(entry.display().to_string());
        }
    }
    hits
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn an_owner_stores_a_secret_a_job_plan_names_it_and_nobody_else_reads_it() {
    let s = Server::start(BIN);
    let admin = setup(&s).await;
    login_cli(&s, "olivia", "olivia");
    login_cli(&s, "victor", "victor");

    ok(&run(
        s.cli("olivia"),
        &[
            "secrets",
            "set",
            "DB_PASSWORD",
            "--project",
            "fraud",
            "--from-stdin",
            "--description",
            "warehouse login",
        ],
        Some(DB_VALUE),
    ));
    // A file value, binary-safe.
    let file = s.root.path().join("ca.bin");
    std::fs::write(&file, [0u8, 159, 146, 150, 10]).unwrap();
    ok(&run(
        s.cli("olivia"),
        &[
            "secrets",
            "set",
            "tls.ca",
            "--project",
            "fraud",
            "--from-file",
            file.to_str().unwrap(),
        ],
        None,
    ));

    let list = ok(&run(
        s.cli("olivia"),
        &["secrets", "list", "--project", "fraud"],
        None,
    ));
    assert!(
        list.contains("DB_PASSWORD") && list.contains("warehouse login"),
        "{list}"
    );
    assert!(!list.contains(DB_VALUE));
    // The viewer lists names, never values.
    let list = ok(&run(
        s.cli("victor"),
        &["secrets", "list", "--project", "fraud"],
        None,
    ));
    assert!(list.contains("DB_PASSWORD"));
    let denied = run(
        s.cli("victor"),
        &["secrets", "get", "DB_PASSWORD", "--project", "fraud"],
        None,
    );
    assert_eq!(denied.status.code(), Some(3));
    assert!(!out(&denied).contains(DB_VALUE));
    // The admin reaches no project data without a grant.
    let (st, b) = admin
        .get("/api/v1/projects/fraud/secrets/DB_PASSWORD/value")
        .await;
    assert!(st == 403 || st == 404, "{st} {b}");

    // The owner reads it back, exactly.
    let got = run(
        s.cli("olivia"),
        &["secrets", "get", "DB_PASSWORD", "--project", "fraud"],
        None,
    );
    assert_eq!(ok(&got), DB_VALUE);
    let bin_out = s.root.path().join("ca.out");
    ok(&run(
        s.cli("olivia"),
        &[
            "secrets",
            "get",
            "tls.ca",
            "--project",
            "fraud",
            "--out",
            bin_out.to_str().unwrap(),
        ],
        None,
    ));
    assert_eq!(
        std::fs::read(&bin_out).unwrap(),
        vec![0u8, 159, 146, 150, 10]
    );

    // A new version; the old one stays readable by version.
    ok(&run(
        s.cli("olivia"),
        &[
            "secrets",
            "set",
            "DB_PASSWORD",
            "--project",
            "fraud",
            "--from-stdin",
        ],
        Some("second-Value-Oboe-88"),
    ));
    let versions = ok(&run(
        s.cli("olivia"),
        &["secrets", "versions", "DB_PASSWORD", "--project", "fraud"],
        None,
    ));
    assert!(versions.lines().count() >= 3, "{versions}");
    let v1 = run(
        s.cli("olivia"),
        &[
            "secrets",
            "get",
            "DB_PASSWORD",
            "--project",
            "fraud",
            "--version",
            "1",
        ],
        None,
    );
    assert_eq!(ok(&v1), DB_VALUE);

    // The plan a job would receive: env var and file, no values.
    let plan = ok(&run(
        s.cli("olivia"),
        &[
            "secrets",
            "plan",
            "--project",
            "fraud",
            "--map",
            "DB_PASSWORD=env:PGPASSWORD",
            "--map",
            "tls.ca=file:ca.pem",
        ],
        None,
    ));
    assert!(
        plan.contains("env:PGPASSWORD") && plan.contains("file:/run/secrets/ca.pem"),
        "{plan}"
    );
    assert!(plan.contains("0400"));
    assert!(!plan.contains(DB_VALUE) && !plan.contains("Oboe"));
    // Bad input: a clear error, exit 3 (server) or 2 (usage), nothing stored.
    let bad = run(
        s.cli("olivia"),
        &[
            "secrets",
            "plan",
            "--project",
            "fraud",
            "--map",
            "DB_PASSWORD=env:LD_PRELOAD",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("reserved"));
    let bad = run(
        s.cli("olivia"),
        &[
            "secrets",
            "set",
            "1nope",
            "--project",
            "fraud",
            "--from-stdin",
        ],
        Some("x"),
    );
    assert_eq!(bad.status.code(), Some(3));
    let empty = run(
        s.cli("olivia"),
        &[
            "secrets",
            "set",
            "EMPTY",
            "--project",
            "fraud",
            "--from-stdin",
        ],
        Some(""),
    );
    assert_eq!(empty.status.code(), Some(2));
    let owner = s.login("olivia", PASSWORD).await;
    let (st, b) = owner
        .call(
            "PUT",
            "/api/v1/projects/fraud/secrets/BIG",
            Some(json!({"value": "x".repeat(70 * 1024)})),
        )
        .await;
    assert!(st == 400 || st == 413, "{st} {b}");
    let (_, list) = owner.get("/api/v1/projects/fraud/secrets").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Personal secrets: the owner's alone.
    ok(&run(
        s.cli("olivia"),
        &["secrets", "set", "GH_TOKEN", "--mine", "--from-stdin"],
        Some("ghp_Personal-Lynx-31"),
    ));
    let mine = run(
        s.cli("olivia"),
        &["secrets", "get", "GH_TOKEN", "--mine"],
        None,
    );
    assert_eq!(ok(&mine), "ghp_Personal-Lynx-31");
    let theirs = ok(&run(s.cli("victor"), &["secrets", "list", "--mine"], None));
    assert!(!theirs.contains("GH_TOKEN"), "{theirs}");
    let denied = run(
        s.cli("victor"),
        &["secrets", "get", "GH_TOKEN", "--mine"],
        None,
    );
    assert_eq!(denied.status.code(), Some(3));
    let both = run(
        s.cli("olivia"),
        &["secrets", "list", "--mine", "--project", "fraud"],
        None,
    );
    assert_eq!(
        both.status.code(),
        Some(2),
        "--mine and --project exclude each other"
    );
    let plan = ok(&run(
        s.cli("olivia"),
        &[
            "secrets",
            "plan",
            "--project",
            "fraud",
            "--map",
            "@GH_TOKEN=env:GH_TOKEN",
        ],
        None,
    ));
    assert!(plan.contains("@GH_TOKEN"), "{plan}");

    // Every read and write is in the trail, without the value.
    let (_, page) = admin
        .get("/api/v1/audit?action=secret.read_value&project=fraud")
        .await;
    let items = page["items"].as_array().unwrap();
    assert!(items
        .iter()
        .any(|r| r["actor"] == "olivia" && r["outcome"] == "success"));
    assert!(items
        .iter()
        .any(|r| r["actor"] == "victor" && r["outcome"] == "denied"));
    let (_, all) = admin.get("/api/v1/audit?project=fraud&limit=500").await;
    assert!(!all.to_string().contains(DB_VALUE));
}

#[tokio::test]
async fn the_raw_files_reveal_nothing_and_a_wrong_master_key_decrypts_nothing() {
    let mut s = Server::start(BIN);
    let admin = setup(&s).await;
    let owner = s.login("olivia", PASSWORD).await;
    let (st, b) = owner
        .call(
            "PUT",
            "/api/v1/projects/fraud/secrets/DB_PASSWORD",
            Some(json!({"value": DB_VALUE})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    // A browser session too, so that a session id exists.
    let r = s
        .client()
        .post(s.url("/api/v1/auth/session"))
        .json(&json!({"username": "olivia", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie: String = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_default();
    s.stop();

    let copy = tempfile::tempdir().unwrap();
    let stolen = copy.path().join("data");
    std::fs::create_dir(&stolen).unwrap();
    for f in walk(&s.data_dir) {
        let rel = f.strip_prefix(&s.data_dir).unwrap();
        if rel.to_str() == Some("master.key") {
            continue;
        }
        let to = stolen.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
    let mut needles: Vec<(&str, Vec<u8>)> = vec![
        ("secret value", DB_VALUE.as_bytes().to_vec()),
        ("password", PASSWORD.as_bytes().to_vec()),
        ("admin token", admin.token.as_bytes().to_vec()),
        ("owner token", owner.token.as_bytes().to_vec()),
    ];
    if cookie.len() > 16 {
        needles.push(("session id", cookie.as_bytes().to_vec()));
    }
    for (what, needle) in &needles {
        let hits = files_containing(&stolen, needle);
        assert!(hits.is_empty(), "{what} found in {hits:?}");
    }

    // Without the master key the server refuses to start; nothing is decrypted.
    let o = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            stolen.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("ENCLAVE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no master key file"), "{err}");
    assert!(!stolen.join("master.key").exists(), "no new key was made");

    // With another installation's master key: a clear error, nothing decrypted.
    let other = Server::start(BIN);
    std::fs::copy(other.data_dir.join("master.key"), stolen.join("master.key")).unwrap();
    let o = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            stolen.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("ENCLAVE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("master key does not open"), "{err}");
    assert!(!err.contains(DB_VALUE));
}

#[tokio::test]
async fn keys_rotate_while_the_server_serves() {
    let s = Server::start(BIN);
    let admin = setup(&s).await;
    let owner = s.login("olivia", PASSWORD).await;
    for i in 0..40 {
        let (st, b) = owner
            .call(
                "PUT",
                &format!("/api/v1/projects/fraud/secrets/S{i}"),
                Some(json!({"value": format!("value-{i}")})),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    login_cli(&s, "olivia", "olivia");
    login_cli(&s, "adm", "admin");

    // Readers keep reading while both keys rotate.
    let reader = {
        let api = s.login("olivia", PASSWORD).await;
        tokio::spawn(async move {
            let mut reads = 0;
            for round in 0..60 {
                let i = round % 40;
                let (st, b) = api
                    .get(&format!("/api/v1/projects/fraud/secrets/S{i}/value"))
                    .await;
                assert_eq!(st, 200, "{b}");
                assert_eq!(b["value"], format!("value-{i}"));
                reads += 1;
            }
            reads
        })
    };
    let rotated = ok(&run(
        s.cli("olivia"),
        &["keys", "rotate", "--project", "fraud"],
        None,
    ));
    assert!(
        rotated.contains("decrypt_only") && rotated.contains("active"),
        "{rotated}"
    );
    // A viewer may not rotate.
    login_cli(&s, "victor", "victor");
    let denied = run(
        s.cli("victor"),
        &["keys", "rotate", "--project", "fraud"],
        None,
    );
    assert_eq!(denied.status.code(), Some(3));

    let master = ok(&run(
        s.cli("adm"),
        &["keys", "rotate-master", "--output", "json"],
        None,
    ));
    let master: Value = serde_json::from_str(&master).unwrap();
    assert_eq!(master["pending"], 0);
    assert_eq!(master["held"].as_array().unwrap().len(), 1);
    assert_eq!(reader.await.unwrap(), 60);

    // Re-encryption finishes; then version 1 can be retired.
    let mut pending = u64::MAX;
    for _ in 0..200 {
        let (_, st) = owner.get("/api/v1/projects/fraud/keys").await;
        pending = st["pending"].as_u64().unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 0);
    ok(&run(
        s.cli("olivia"),
        &["keys", "retire", "--project", "fraud", "--version", "1"],
        None,
    ));
    let (_, audit) = admin.get("/api/v1/audit?project=fraud&limit=500").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for a in ["key.rotate", "key.reencrypt", "key.retire"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let (_, audit) = admin.get("/api/v1/audit?action=key.rotate_master").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);

    // After a restart with the rotated master key, everything still opens.
    let s = s.restart(Options::default());
    let owner = s.login("olivia", PASSWORD).await;
    let (st, b) = owner.get("/api/v1/projects/fraud/secrets/S39/value").await;
    assert_eq!((st, b["value"].as_str()), (200, Some("value-39")));
}

#[tokio::test]
async fn a_sealed_server_serves_nothing_until_an_operator_unseals_it() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let passphrase = "correct horse battery staple 42";
    let o = run(
        {
            let mut c = Command::new(BIN);
            c.env_remove("ENCLAVE_CONFIG");
            c
        },
        &[
            "admin",
            "init-sealed",
            "--data-dir",
            data.to_str().unwrap(),
            "--passphrase-stdin",
        ],
        Some(&format!("{passphrase}\n")),
    );
    ok(&o);
    let opts = Options {
        env: vec![("ENCLAVE_KEYS_MASTER".into(), "passphrase".into())],
        ..Options::default()
    };
    let s = Server::start_in(BIN, root, data, opts);
    assert!(s
        .stdout
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("SEALED")));
    let c = s.client();
    let r = c.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = c.get(s.url("/api/v1/status")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["sealed"], true);
    let r = c.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(!s.data_dir.join("setup-url").exists());

    let ca = s.cert_path();
    let unseal = |pass: &str| {
        let mut cmd = Command::new(BIN);
        cmd.env_remove("ENCLAVE_CONFIG");
        run(
            cmd,
            &[
                "unseal",
                "--server",
                &s.base,
                "--ca",
                ca.to_str().unwrap(),
                "--passphrase-stdin",
            ],
            Some(&format!("{pass}\n")),
        )
    };
    // Bad input to the unseal endpoint: a clear error, still sealed.
    let r = c
        .post(s.url("/api/v1/unseal"))
        .json(&json!({"pass": passphrase}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(s.url("/api/v1/unseal"))
        .json(&json!({"passphrase": "x".repeat(8192)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let wrong = unseal("not the passphrase at all");
    assert_eq!(wrong.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    let r = c.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_eq!(r.status(), 503);

    ok(&unseal(passphrase));
    // Unsealed: the platform serves, the setup link exists, secrets work.
    let admin = s.admin().await;
    admin.user(&s, "olivia").await;
    let (st, _) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "fraud", "owner": "olivia"}),
        )
        .await;
    assert_eq!(st, 201);
    let owner = s.login("olivia", PASSWORD).await;
    let (st, b) = owner
        .call(
            "PUT",
            "/api/v1/projects/fraud/secrets/DB_PASSWORD",
            Some(json!({"value": DB_VALUE})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let again = ok(&unseal(passphrase));
    assert!(again.contains("not sealed"), "{again}");
    let (_, audit) = admin.get("/api/v1/audit?action=key.unseal").await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{audit}");
    assert_eq!(items[0]["detail"]["failed_attempts"], 1);
    // The sealed file never holds the passphrase or the value.
    assert!(files_containing(&s.data_dir, passphrase.as_bytes()).is_empty());
    assert!(files_containing(&s.data_dir, DB_VALUE.as_bytes()).is_empty());

    // A backup of a sealed installation restores with its sealed key file and passphrase,
    // and the restored server starts sealed too.
    login_cli(&s, "adm", "admin");
    let archive = s.root.path().join("sealed.backup");
    ok(&run(
        s.cli("adm"),
        &["backup", "--out", archive.to_str().unwrap()],
        None,
    ));
    let mut s = s;
    s.stop();
    let restored_root = tempfile::tempdir().unwrap();
    let restored = restored_root.path().join("data");
    let restore = |pass: &str| {
        let mut cmd = Command::new(BIN);
        cmd.env_remove("ENCLAVE_CONFIG");
        run(
            cmd,
            &[
                "restore",
                archive.to_str().unwrap(),
                "--data-dir",
                restored.to_str().unwrap(),
                "--master-key",
                s.data_dir.join("master.sealed").to_str().unwrap(),
                "--passphrase-stdin",
            ],
            Some(&format!("{pass}\n")),
        )
    };
    assert_eq!(restore("not the passphrase at all").status.code(), Some(1));
    assert!(!restored.exists(), "a wrong passphrase writes nothing");
    ok(&restore(passphrase));
    let r = Server::start_in(
        BIN,
        restored_root,
        restored,
        Options {
            env: vec![("ENCLAVE_KEYS_MASTER".into(), "passphrase".into())],
            ..Options::default()
        },
    );
    let c = r.client();
    assert_eq!(
        c.get(r.url("/api/v1/users")).send().await.unwrap().status(),
        503
    );
    let mut cmd = Command::new(BIN);
    cmd.env_remove("ENCLAVE_CONFIG");
    let ca = r.cert_path();
    ok(&run(
        cmd,
        &[
            "unseal",
            "--server",
            &r.base,
            "--ca",
            ca.to_str().unwrap(),
            "--passphrase-stdin",
        ],
        Some(&format!("{passphrase}\n")),
    ));
    let owner = r.login("olivia", PASSWORD).await;
    let (st, b) = owner
        .get("/api/v1/projects/fraud/secrets/DB_PASSWORD/value")
        .await;
    assert_eq!((st, b["value"].as_str()), (200, Some(DB_VALUE)));
}
