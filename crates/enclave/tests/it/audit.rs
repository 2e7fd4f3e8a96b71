//! The audit chokepoint: every change and every denial leaves a record; no secret leaks into
//! the trail, the logs or the store's raw files.

use crate::BIN;
use enclave_store::Store;
use enclave_testkit::{Server, PASSWORD};
use serde_json::json;

/// Every record of the trail.
async fn all_records(s: &Server) -> Vec<(i64, enclave_core::audit::AuditRecord)> {
    let store = Store::open(&s.data_dir.join("enclave.db")).await.unwrap();
    let r = store.audit_after(0, 100_000).await.unwrap();
    store.close().await;
    r
}

/// The records of actions, without the coalesced `token.use` records (those are written when
/// a token's minute ends, whichever request comes next).
async fn records(s: &Server) -> Vec<(i64, enclave_core::audit::AuditRecord)> {
    let mut r = all_records(s).await;
    r.retain(|(_, r)| r.action != "token.use");
    r
}

#[tokio::test]
async fn every_change_and_denial_is_audited_and_no_secret_leaks() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let steps: Vec<(&str, &str, Option<serde_json::Value>, &str)> = vec![
        (
            "POST",
            "/api/v1/users",
            Some(json!({"username": "erin", "password": PASSWORD})),
            "user.create",
        ),
        (
            "PATCH",
            "/api/v1/users/erin",
            Some(json!({"display_name": "Erin"})),
            "user.update",
        ),
        (
            "POST",
            "/api/v1/users/erin/password",
            Some(json!({"password": "Fresh-Passphrase-Nine-3"})),
            "user.reset_password",
        ),
        ("POST", "/api/v1/users/erin/unlock", None, "user.unlock"),
        (
            "POST",
            "/api/v1/users/erin/revoke-sessions",
            None,
            "user.revoke_sessions",
        ),
        (
            "POST",
            "/api/v1/groups",
            Some(json!({"name": "ops"})),
            "group.create",
        ),
        (
            "PATCH",
            "/api/v1/groups/ops",
            Some(json!({"description": "d"})),
            "group.update",
        ),
        (
            "PUT",
            "/api/v1/groups/ops/members/erin",
            None,
            "group.add_member",
        ),
        (
            "DELETE",
            "/api/v1/groups/ops/members/erin",
            None,
            "group.remove_member",
        ),
        ("DELETE", "/api/v1/groups/ops", None, "group.delete"),
        (
            "POST",
            "/api/v1/projects",
            Some(json!({"name": "p1"})),
            "project.create",
        ),
        (
            "PATCH",
            "/api/v1/projects/p1",
            Some(json!({"description": "d"})),
            "project.update",
        ),
        (
            "PUT",
            "/api/v1/projects/p1/members/erin",
            Some(json!({"role": "viewer"})),
            "project.set_member",
        ),
        (
            "DELETE",
            "/api/v1/projects/p1/members/erin",
            None,
            "project.remove_member",
        ),
        (
            "POST",
            "/api/v1/policies",
            Some(json!({
                "name": "no-deletes-for-nobody",
                "body": "forbid (principal is User, action == Action::\"project.delete\", resource)\nwhen { principal.username == \"nobody\" };",
            })),
            "policy.create",
        ),
        (
            "POST",
            "/api/v1/roles",
            Some(json!({"subject": "user:erin", "role": "security_auditor"})),
            "role.bind",
        ),
        (
            "POST",
            "/api/v1/projects/p1/grants",
            Some(json!({"role": "support", "reason": "debugging a failed job", "duration": "1h"})),
            "grant.request",
        ),
        ("DELETE", "/api/v1/projects/p1", None, "project.delete"),
        (
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "extra"})),
            "token.create",
        ),
        ("DELETE", "/api/v1/users/erin", None, "user.delete"),
    ];
    let mut token_secrets = vec![admin.token.clone()];
    for (method, path, body, action) in steps {
        let before = records(&s).await.len();
        let (st, b) = admin.call(method, path, body).await;
        assert!(st < 300, "{method} {path}: {st} {b}");
        if let Some(t) = b.get("token").and_then(|t| t.as_str()) {
            token_secrets.push(t.to_string());
        }
        let after = records(&s).await;
        assert_eq!(
            after.len(),
            before + 1,
            "{method} {path} wrote exactly one record"
        );
        let rec = &after.last().unwrap().1;
        assert_eq!(rec.action, action, "{method} {path}");
        assert_eq!(rec.actor, "admin");
        assert_eq!(rec.outcome.as_str(), "success");
        assert_eq!(rec.source, "127.0.0.1");
        assert!(rec.auth.starts_with("token:tok_"));
        assert!(rec.request_id.starts_with("req_"));
    }
    // Revoking a token and logging out are recorded.
    let (_, tokens) = admin.get("/api/v1/tokens").await;
    let extra = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "extra")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let st = admin
        .call("DELETE", &format!("/api/v1/tokens/{extra}"), None)
        .await
        .0;
    assert_eq!(st, 204);
    let last = records(&s).await.pop().unwrap().1;
    assert_eq!(
        (last.action.as_str(), last.resource.clone()),
        ("token.revoke", format!("token:{extra}"))
    );
    let spare = s.login("admin", PASSWORD).await;
    token_secrets.push(spare.token.clone());
    assert_eq!(spare.post("/api/v1/auth/logout", json!({})).await.0, 204);
    let last = records(&s).await.pop().unwrap().1;
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("auth.logout", "admin")
    );
    // A denial is recorded too.
    let bob = admin.user(&s, "bob").await;
    token_secrets.push(bob.token.clone());
    assert_eq!(
        bob.post("/api/v1/groups", json!({"name": "nope"})).await.0,
        403
    );
    let last = records(&s).await.pop().unwrap().1;
    assert_eq!(
        (
            last.action.as_str(),
            last.outcome.as_str(),
            last.actor.as_str()
        ),
        ("group.create", "denied", "bob")
    );
    // Failed and successful logins are recorded, without the password.
    let r = s
        .client()
        .post(s.url("/api/v1/auth/session"))
        .json(&json!({"username": "bob", "password": "Wrong-Password-999"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .client()
        .post(s.url("/api/v1/auth/session"))
        .json(&json!({"username": "bob", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_string();
    // Every route of the API, the newer ones (policies, roles, grants, audit) included, by
    // the same driver as the policy test: one route list, the server's own.
    let run = crate::policy::drive_every_route(&s, &admin).await;
    assert!(run.checked > 40, "{}", run.checked);
    token_secrets.extend(run.tokens);
    // A security auditor searches and exports the trail; the export is recorded.
    let auditor = admin.user(&s, "aud").await;
    token_secrets.push(auditor.token.clone());
    let (st, b) = admin
        .post(
            "/api/v1/roles",
            json!({"subject": "user:aud", "role": "security_auditor"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, page) = auditor.get("/api/v1/audit?limit=500").await;
    assert_eq!((st, page["scope"].as_str()), (200, Some("all")), "{page}");
    let r = auditor
        .client
        .get(format!("{}/api/v1/audit/export", auditor.base))
        .bearer_auth(&auditor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let export = r.text().await.unwrap();
    assert!(export.lines().count() > 50);
    let last = records(&s).await.pop().unwrap().1;
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("audit.export", "aud")
    );

    let all = all_records(&s).await;
    assert!(all.iter().any(|(_, r)| r.action == "auth.login"
        && r.outcome.as_str() == "failure"
        && r.actor == "bob"));
    assert!(all.iter().any(|(_, r)| r.action == "auth.login"
        && r.outcome.as_str() == "success"
        && r.actor == "bob"));

    // No secret anywhere: audit trail, logs, raw store files.
    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        "Fresh-Passphrase-Nine-3".into(),
        "Wrong-Password-999".into(),
        cookie,
        s.setup_token(),
    ];
    secrets.extend(token_secrets.iter().cloned());
    secrets.extend(
        token_secrets
            .iter()
            .map(|t| t.trim_start_matches("enc_pat_").to_string()),
    );
    let trail: String = all
        .iter()
        .map(|(_, r)| format!("{r:?}"))
        .chain([page.to_string(), export])
        .collect();
    let logs = s.stderr.lock().unwrap().join("\n");
    let mut raw = Vec::new();
    for f in ["enclave.db", "enclave.db-wal"] {
        if let Ok(bytes) = std::fs::read(s.data_dir.join(f)) {
            raw.extend(bytes);
        }
    }
    let raw = String::from_utf8_lossy(&raw).to_string();
    for secret in &secrets {
        assert!(!trail.contains(secret.as_str()), "secret in audit trail");
        assert!(!logs.contains(secret.as_str()), "secret in logs");
        assert!(!raw.contains(secret.as_str()), "secret in store files");
    }
}

#[tokio::test]
async fn token_use_is_recorded_once_a_minute_per_address_with_its_count() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let ana = admin.user(&s, "ana").await;
    for _ in 0..4 {
        assert_eq!(ana.get("/api/v1/projects").await.0, 200);
    }
    let (st, tokens) = ana.get("/api/v1/tokens").await;
    assert_eq!(st, 200, "{tokens}");
    let id = tokens["items"][0]["id"].as_str().unwrap().to_string();
    // Five requests inside one minute: no record per request.
    let uses = |all: &[(i64, enclave_core::audit::AuditRecord)]| {
        all.iter()
            .filter(|(_, r)| r.action == "token.use" && r.actor == "ana")
            .count()
    };
    assert_eq!(uses(&all_records(&s).await), 0);
    // The server records the open minute when it stops; the search finds it.
    let s = s.restart(enclave_testkit::Options::default());
    let ana = s.login("ana", PASSWORD).await;
    let (st, page) = ana.get("/api/v1/audit?action=token.use").await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["scope"], "own");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let r = &items[0];
    assert_eq!(r["actor"], "ana");
    assert_eq!(r["auth"], format!("token:{id}"));
    assert_eq!(r["resource"], format!("token:{id}"));
    assert_eq!(r["source"], "127.0.0.1");
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["detail"]["requests"], 5, "{r}");
    assert!(r["request_id"].as_str().unwrap().starts_with("req_"));
    assert!(r["detail"]["first_at"].as_str().is_some());
    // The admin finds it too, by resource.
    let admin = s.login("admin", PASSWORD).await;
    let (_, page) = admin
        .get(&format!(
            "/api/v1/audit?resource=token:{id}&action=token.use"
        ))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
}
