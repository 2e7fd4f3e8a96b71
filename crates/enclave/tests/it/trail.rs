//! The tamper-evident trail as a security auditor meets it: search, export, public key,
//! verification that names the first altered record, forwarding, "who accessed my work", and
//! the crash test (kill -9 under 64 concurrent writers, ten times).

use crate::BIN;
use enclave_testkit::{Api, Options, Server};
use serde_json::{json, Value};
use std::io::{BufRead, Read};

fn run(s: &Server, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(s.bin())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn auditor(s: &Server, admin: &Api) -> Api {
    admin.user(s, "ada").await;
    let (st, b) = admin
        .post(
            "/api/v1/roles",
            json!({"subject": "user:ada", "role": "security_auditor"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    s.login("ada", enclave_testkit::PASSWORD).await
}

/// Edits the store behind Enclave's back, as someone with access to the files could (first
/// removing the triggers that keep the trail append-only).
async fn tamper(s: &Server, sql: &str) {
    use sqlx::{ConnectOptions, Row};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(s.data_dir.join("enclave.db"))
        .connect()
        .await
        .unwrap();
    let triggers = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for t in triggers {
        let name: String = t.get("name");
        sqlx::query(&format!("DROP TRIGGER \"{name}\""))
            .execute(&mut c)
            .await
            .unwrap();
    }
    sqlx::query(sql).execute(&mut c).await.unwrap();
}

#[tokio::test]
async fn an_auditor_searches_exports_hands_out_the_key_and_detects_an_edit() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let ada = auditor(&s, &admin).await;
    let olivia = admin.user(&s, "olivia").await;
    let (st, _) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "alpha", "owner": "olivia"}),
        )
        .await;
    assert_eq!(st, 201);
    // The admin (not a member) changes olivia's project: olivia sees it in "my work".
    let (st, _) = admin
        .call(
            "PATCH",
            "/api/v1/projects/alpha",
            Some(json!({"description": "seen by the owner"})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, mine) = olivia.get("/api/v1/audit/my-work").await;
    assert_eq!(st, 200, "{mine}");
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor"] == "admin" && r["action"] == "project.update"),
        "{mine}"
    );

    // Search: the auditor sees everything; olivia only her own actions.
    let (st, page) = ada
        .get("/api/v1/audit?action=project.update&project=alpha")
        .await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["scope"], "all");
    assert_eq!(page["items"][0]["actor"], "admin");
    let (_, own) = olivia.get("/api/v1/audit?actor=admin").await;
    assert_eq!(own["scope"], "own");
    assert!(own["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["actor"] == "olivia"));
    // Bad filters are refused clearly.
    for q in [
        "outcome=maybe",
        "since=yesterday",
        "order=sideways",
        "bogus=1",
    ] {
        let (st, b) = ada.get(&format!("/api/v1/audit?{q}")).await;
        assert_eq!(st, 400, "{q}: {b}");
    }
    // Only governance roles export or verify.
    assert_eq!(olivia.get("/api/v1/audit/export").await.0, 403);
    assert_eq!(olivia.post("/api/v1/audit/verify", json!({})).await.0, 403);

    // The key and the latest checkpoint, for an outside party.
    let (st, key) = ada.get("/api/v1/audit/key").await;
    assert_eq!(st, 200, "{key}");
    let public_key = key["public_key"].as_str().unwrap().to_string();
    let checkpoint = key["latest_checkpoint"]["seq"].as_u64().unwrap();
    assert!(checkpoint > 0);

    // The export verifies with nothing but the public key; an edited export does not.
    let r = ada
        .client
        .get(s.url("/api/v1/audit/export"))
        .bearer_auth(&ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let export = r.text().await.unwrap();
    let key = enclave_audit::PublicKey::parse(&public_key).unwrap();
    let summary = enclave_audit::export::verify_lines(export.lines(), &key, None).unwrap();
    assert!(summary.records > 5);
    let edited = export.replacen("\"admin\"", "\"mallory\"", 1);
    let failure = enclave_audit::export::verify_lines(edited.lines(), &key, None).unwrap_err();
    assert!(failure.seq >= 1, "{failure}");

    // Verification through the API and on the host pass...
    let (st, v) = ada.post("/api/v1/audit/verify", json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    let (code, out) = run(
        &s,
        &[
            "admin",
            "verify-audit",
            "--data-dir",
            s.data_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");

    // ... until someone edits a record behind Enclave's back: the first bad one is named.
    let (_, page) = ada
        .get("/api/v1/audit?action=project.update&project=alpha")
        .await;
    let seq = page["items"][0]["seq"].as_u64().unwrap();
    tamper(
        &s,
        &format!("UPDATE audit_events SET actor = 'mallory' WHERE seq = {seq}"),
    )
    .await;
    let (_, v) = ada.post("/api/v1/audit/verify", json!({})).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["failure"]["seq"], seq, "{v}");
    assert_eq!(v["failure"]["kind"], "modified", "{v}");
    let (code, out) = run(
        &s,
        &[
            "admin",
            "verify-audit",
            "--data-dir",
            s.data_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 6, "{out}");
    assert!(out.contains(&format!("record {seq}")), "{out}");
}

#[tokio::test]
async fn records_are_forwarded_to_a_file_and_a_syslog_collector() {
    // A plain-TCP syslog collector on loopback (TLS is covered by enclave-forward's tests).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let received = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let mut buf = [0u8; 65536];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let s = Server::start_with(
        BIN,
        Options {
            env: vec![
                (
                    "ENCLAVE_AUDIT_FORWARD_FILE".into(),
                    file.display().to_string(),
                ),
                ("ENCLAVE_AUDIT_FORWARD_SYSLOG".into(), addr.to_string()),
                ("ENCLAVE_AUDIT_FORWARD_SYSLOG_TLS".into(), "false".into()),
            ],
            ..Options::default()
        },
    );
    let admin = s.admin().await;
    assert_eq!(
        admin
            .post("/api/v1/groups", json!({"name": "forwarded"}))
            .await
            .0,
        201
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let in_file = std::fs::read_to_string(&file).unwrap_or_default();
        let in_syslog = received.lock().unwrap().clone();
        if in_file.contains("group:forwarded") && in_syslog.contains("group:forwarded") {
            // One JSON object per line in the file; RFC 5424 with the seq in syslog.
            for line in in_file.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert!(v["seq"].as_u64().is_some(), "{line}");
            }
            assert!(in_syslog.contains("enclave@32473 seq="), "{in_syslog}");
            assert!(in_syslog.contains(" enclave "), "{in_syslog}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not forwarded: file={in_file:?} syslog={in_syslog:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let _ = std::io::BufReader::new(std::fs::File::open(&file).unwrap())
        .lines()
        .count();
}

#[tokio::test]
async fn kill_9_under_64_writers_loses_no_acknowledged_action_ten_times() {
    let mut s = Server::start(BIN);
    s.admin().await;
    for round in 0..10 {
        let admin = s.login("admin", enclave_testkit::PASSWORD).await;
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut tasks = Vec::new();
        for client in 0..64 {
            let api = Api {
                client: s.client(),
                base: s.base.clone(),
                token: admin.token.clone(),
            };
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let name = format!("r{round}-c{client}-{i}");
                    let r = api
                        .client
                        .post(format!("{}/api/v1/groups", api.base))
                        .bearer_auth(&api.token)
                        .json(&json!({ "name": name }))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().as_u16() == 201 => {
                            acked.lock().unwrap().push(name);
                        }
                        _ => break,
                    }
                }
            }));
        }
        // Let the writers run, then kill the server without warning.
        while acked.lock().unwrap().len() < 150 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        s.signal("KILL");
        for t in tasks {
            let _ = t.await;
        }
        s = s.restart(Options::default());
        let admin = s.login("admin", enclave_testkit::PASSWORD).await;
        // Every acknowledged creation is in the trail (and the group exists).
        let mut recorded = std::collections::HashSet::new();
        let mut after: Option<u64> = None;
        loop {
            let q = match after {
                Some(a) => format!("/api/v1/audit?action=group.create&limit=500&after={a}"),
                None => "/api/v1/audit?action=group.create&limit=500".to_string(),
            };
            let (st, page) = admin.get(&q).await;
            assert_eq!(st, 200, "{q}: {page}");
            for r in page["items"].as_array().unwrap() {
                recorded.insert(r["resource"].as_str().unwrap().to_string());
            }
            match page["next"].as_u64() {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() >= 150);
        for name in &acked {
            assert!(
                recorded.contains(&format!("group:{name}")),
                "round {round}: acknowledged {name} missing from the trail"
            );
        }
        let (st, v) = admin.post("/api/v1/audit/verify", json!({})).await;
        assert_eq!(st, 200);
        assert_eq!(v["ok"], true, "round {round}: {v}");
    }
}
