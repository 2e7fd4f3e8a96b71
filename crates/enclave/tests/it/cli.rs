//! The CLI against a real server: login, admin commands, JSON output, exit codes.

use crate::common::{ok, run};
use crate::BIN;
use enclave_testkit::{Server, PASSWORD};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn admin_manages_users_groups_projects_from_the_cli() {
    let s = Server::start(BIN);
    s.admin().await;
    let ca = s.cert_path();
    let ca = ca.to_str().unwrap();
    // Login stores a private credential file.
    let o = run(
        s.cli("adm"),
        &[
            "login",
            "--server",
            &s.base,
            "--username",
            "admin",
            "--password-stdin",
            "--ca",
            ca,
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    ok(&o);
    let creds = s.root.path().join("adm/credentials.json");
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("enc_pat_"),
        "token never printed"
    );
    let who = ok(&run(s.cli("adm"), &["whoami", "--output", "json"], None));
    let who: serde_json::Value = serde_json::from_str(&who).unwrap();
    assert_eq!(who["user"]["username"], "admin");

    ok(&run(
        s.cli("adm"),
        &[
            "users",
            "create",
            "dana",
            "--password-stdin",
            "--display-name",
            "Dana",
        ],
        Some(&format!("{PASSWORD}\n")),
    ));
    ok(&run(
        s.cli("adm"),
        &["groups", "create", "quants", "--description", "Quant team"],
        None,
    ));
    ok(&run(
        s.cli("adm"),
        &["groups", "add-member", "quants", "dana"],
        None,
    ));
    ok(&run(
        s.cli("adm"),
        &[
            "projects",
            "create",
            "churn",
            "--description",
            "Churn model",
        ],
        None,
    ));
    ok(&run(
        s.cli("adm"),
        &[
            "projects",
            "set-member",
            "churn",
            "dana",
            "--role",
            "member",
        ],
        None,
    ));
    let list = ok(&run(
        s.cli("adm"),
        &["projects", "list", "--output", "json"],
        None,
    ));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "churn");
    let members = ok(&run(s.cli("adm"), &["projects", "members", "churn"], None));
    assert!(
        members.contains("dana") && members.contains("member"),
        "{members}"
    );
    let gm = ok(&run(
        s.cli("adm"),
        &["groups", "members", "quants", "--output", "json"],
        None,
    ));
    assert!(gm.contains("dana"));
    let users = ok(&run(s.cli("adm"), &["users", "list"], None));
    assert!(users.contains("dana") && users.contains("admin"));

    // Exit codes: refused by the server (3), usage (2), unreachable (4).
    let dup = run(s.cli("adm"), &["groups", "create", "quants"], None);
    assert_eq!(dup.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("conflict"));
    let usage = run(
        s.cli("adm"),
        &["projects", "set-member", "churn", "dana", "--role", "king"],
        None,
    );
    assert_eq!(usage.status.code(), Some(2));
    // A member logs in and sees the project, but cannot create one.
    ok(&run(
        s.cli("dana"),
        &[
            "login",
            "--server",
            &s.base,
            "--username",
            "dana",
            "--password-stdin",
            "--ca",
            ca,
        ],
        Some(PASSWORD),
    ));
    let mine = ok(&run(s.cli("dana"), &["projects", "list"], None));
    assert!(mine.contains("churn"));
    let denied = run(s.cli("dana"), &["projects", "create", "other"], None);
    assert_eq!(denied.status.code(), Some(3));
    // Logout revokes the token on the server.
    let token = {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(s.root.path().join("dana/credentials.json")).unwrap(),
        )
        .unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    ok(&run(s.cli("dana"), &["logout"], None));
    let api = enclave_testkit::Api {
        client: s.client(),
        base: s.base.clone(),
        token,
    };
    assert_eq!(api.get("/api/v1/whoami").await.0, 401);
    let after = run(s.cli("dana"), &["whoami"], None);
    assert_eq!(after.status.code(), Some(1), "not logged in");
    // Without --ca the self-signed certificate is refused with a hint.
    let no_ca = run(
        s.cli("nca"),
        &[
            "login",
            "--server",
            &s.base,
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert_eq!(no_ca.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("--ca"));
    // Wrong password.
    let bad = run(
        s.cli("bad"),
        &[
            "login",
            "--server",
            &s.base,
            "--username",
            "admin",
            "--password-stdin",
            "--ca",
            ca,
        ],
        Some("Wrong-Password-999"),
    );
    assert_eq!(bad.status.code(), Some(3));
    // Unreachable server.
    let mut stopped = s;
    let base = stopped.base.clone();
    stopped.stop();
    let down = run(stopped.cli("adm"), &["whoami"], None);
    assert_eq!(
        down.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let _ = base;
}

#[tokio::test]
async fn a_user_changes_their_own_password_from_the_cli() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    admin.user(&s, "quinn").await;
    let ca = s.cert_path();
    let ca = ca.to_str().unwrap();
    ok(&run(
        s.cli("quinn"),
        &[
            "login",
            "--server",
            &s.base,
            "--username",
            "quinn",
            "--password-stdin",
            "--ca",
            ca,
        ],
        Some(PASSWORD),
    ));
    // A wrong current password is refused (3) and changes nothing.
    let bad = run(
        s.cli("quinn"),
        &["passwd", "--password-stdin"],
        Some("Not-The-Password-1\nFresh-Orchard-Lantern-Nine-8\n"),
    );
    assert_eq!(bad.status.code(), Some(3));
    // A weak new password is refused too.
    let weak = run(
        s.cli("quinn"),
        &["passwd", "--password-stdin"],
        Some(&format!("{PASSWORD}\npassword1234\n")),
    );
    assert_eq!(weak.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    s.login("quinn", PASSWORD).await;
    // The real change.
    ok(&run(
        s.cli("quinn"),
        &["passwd", "--password-stdin"],
        Some(&format!("{PASSWORD}\nFresh-Orchard-Lantern-Nine-8\n")),
    ));
    let old = s
        .client()
        .post(s.url("/api/v1/auth/token"))
        .json(&serde_json::json!({"username": "quinn", "password": PASSWORD, "name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    s.login("quinn", "Fresh-Orchard-Lantern-Nine-8").await;
    // The CLI's token still works.
    ok(&run(s.cli("quinn"), &["whoami"], None));
}

#[tokio::test]
async fn an_auditor_uses_the_audit_commands() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    admin.user(&s, "ada").await;
    let (st, b) = admin
        .post(
            "/api/v1/roles",
            serde_json::json!({"subject": "user:ada", "role": "security_auditor"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let ca = s.cert_path();
    ok(&run(
        s.cli("ada"),
        &[
            "login",
            "--server",
            &s.base,
            "--username",
            "ada",
            "--password-stdin",
            "--ca",
            ca.to_str().unwrap(),
        ],
        Some(&format!("{PASSWORD}\n")),
    ));
    let found = ok(&run(
        s.cli("ada"),
        &[
            "audit",
            "search",
            "--action",
            "role.bind",
            "--output",
            "json",
        ],
        None,
    ));
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found[0]["actor"], "admin", "{found}");
    let key = ok(&run(
        s.cli("ada"),
        &["audit", "key", "--output", "json"],
        None,
    ));
    let key: serde_json::Value = serde_json::from_str(&key).unwrap();
    let public_key = key["public_key"].as_str().unwrap().to_string();
    let file = s.root.path().join("trail.jsonl");
    ok(&run(
        s.cli("ada"),
        &[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    ));
    let out = ok(&run(s.cli("ada"), &["audit", "verify"], None));
    assert!(out.contains("intact"), "{out}");
    // Offline, with only the public key: intact, then altered (exit 6).
    let out = ok(&run(
        s.cli("ada"),
        &[
            "audit",
            "verify",
            "--export",
            file.to_str().unwrap(),
            "--public-key",
            &public_key,
        ],
        None,
    ));
    assert!(out.contains("intact"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"admin\"", "\"mallory\"", 1)).unwrap();
    let o = run(
        s.cli("ada"),
        &[
            "audit",
            "verify",
            "--export",
            file.to_str().unwrap(),
            "--public-key",
            &public_key,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(6), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("ALTERED"));
}
