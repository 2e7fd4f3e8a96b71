//! Logins, lockout, sessions, CSRF, tokens.

use crate::BIN;
use enclave_testkit::{Options, Server, PASSWORD};
use serde_json::{json, Value};

async fn session_login(s: &Server, user: &str, pw: &str) -> (u16, Value, Option<String>) {
    let r = s
        .client()
        .post(s.url("/api/v1/auth/session"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap(), cookie)
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same_and_lock_out() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    admin.user(&s, "bob").await;
    let (a, ba, _) = session_login(&s, "bob", "wrong-password-123").await;
    let (b, bb, _) = session_login(&s, "nobody", "wrong-password-123").await;
    assert_eq!((a, b), (401, 401));
    assert_eq!(ba, bb, "same body for unknown user and wrong password");
    assert_eq!(ba["code"], "invalid_credentials");
    // Three more failures (five in all) lock the account, even with the right password.
    for _ in 0..4 {
        session_login(&s, "bob", "wrong-password-123").await;
    }
    let (st, body, _) = session_login(&s, "bob", PASSWORD).await;
    assert_eq!(st, 429, "{body}");
    assert_eq!(body["code"], "too_many_attempts");
    let (_, u) = admin.get("/api/v1/users/bob").await;
    assert_eq!(u["locked"], true);
    let (_, list) = admin.get("/api/v1/users").await;
    let flags: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].clone(), u["locked"].clone()))
        .collect();
    assert_eq!(
        flags,
        vec![(json!("admin"), json!(false)), (json!("bob"), json!(true))]
    );
    // Unknown users lock out the same way.
    for _ in 0..5 {
        session_login(&s, "ghost", "wrong-password-123").await;
    }
    let (st, _, _) = session_login(&s, "ghost", "wrong-password-123").await;
    assert_eq!(st, 429);
    // An admin clears the lockout.
    let (st, _) = admin.post("/api/v1/users/bob/unlock", json!({})).await;
    assert_eq!(st, 204);
    let (st, _, cookie) = session_login(&s, "bob", PASSWORD).await;
    assert_eq!(st, 200);
    assert!(cookie.is_some());
}

#[tokio::test]
async fn session_cookie_attributes_csrf_and_logout() {
    let s = Server::start(BIN);
    let _admin = s.admin().await;
    let (st, body, cookie) = session_login(&s, "admin", PASSWORD).await;
    assert_eq!(st, 200);
    let cookie = cookie.unwrap();
    assert!(cookie.starts_with("__Host-enclave_session="));
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"));
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    let pair = cookie_pair(&cookie);
    let c = s.client();
    // Reads work with the cookie alone.
    let r = c
        .get(s.url("/api/v1/whoami"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["auth"]["method"], "session");
    // A change without the CSRF token is refused and changes nothing.
    let r = c
        .post(s.url("/api/v1/groups"))
        .header("cookie", &pair)
        .json(&json!({"name": "data-team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "csrf_failed");
    let r = c
        .post(s.url("/api/v1/groups"))
        .header("cookie", &pair)
        .header("x-csrf-token", "forged")
        .json(&json!({"name": "data-team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(s.url("/api/v1/groups/data-team"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing was created");
    // With the token it works.
    let r = c
        .post(s.url("/api/v1/groups"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "data-team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A second login gives a new session id.
    let (_, _, cookie2) = session_login(&s, "admin", PASSWORD).await;
    assert_ne!(cookie_pair(&cookie2.unwrap()), pair);
    // Logout ends the session on the server.
    let r = c
        .post(s.url("/api/v1/auth/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(s.url("/api/v1/whoami"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let opts = Options {
        env: vec![
            ("ENCLAVE_SESSIONS_IDLE_TIMEOUT".into(), "2s".into()),
            ("ENCLAVE_SESSIONS_ABSOLUTE_TIMEOUT".into(), "1h".into()),
        ],
        ..Options::default()
    };
    let s = Server::start_with(BIN, opts);
    s.admin().await;
    let (_, _, cookie) = session_login(&s, "admin", PASSWORD).await;
    let pair = cookie_pair(&cookie.unwrap());
    let c = s.client();
    let r = c
        .get(s.url("/api/v1/whoami"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let r = c
        .get(s.url("/api/v1/whoami"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn password_change_disable_and_admin_revocation_end_sessions() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    admin.user(&s, "carol").await;
    let (_, body, cookie) = session_login(&s, "carol", PASSWORD).await;
    let pair = cookie_pair(&cookie.unwrap());
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    let c = s.client();
    let whoami = |pair: String| {
        let c = c.clone();
        let url = s.url("/api/v1/whoami");
        async move {
            c.get(url)
                .header("cookie", pair)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Admin revocation.
    assert_eq!(whoami(pair.clone()).await, 200);
    let (st, _) = admin
        .post("/api/v1/users/carol/revoke-sessions", json!({}))
        .await;
    assert_eq!(st, 204);
    assert_eq!(whoami(pair.clone()).await, 401);
    // Password change (wrong current password is refused).
    let (_, body, cookie) = session_login(&s, "carol", PASSWORD).await;
    let pair = cookie_pair(&cookie.unwrap());
    let csrf2 = body["csrf_token"].as_str().unwrap().to_string();
    assert_ne!(csrf, csrf2);
    let r = c
        .post(s.url("/api/v1/me/password"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf2)
        .json(&json!({"current_password": "not-the-password", "new_password": "Another-Long-Passphrase-77"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(s.url("/api/v1/me/password"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf2)
        .json(&json!({"current_password": PASSWORD, "new_password": "Another-Long-Passphrase-77"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(whoami(pair.clone()).await, 401);
    let (st, _, _) = session_login(&s, "carol", PASSWORD).await;
    assert_eq!(st, 401, "old password no longer works");
    // Disabling ends sessions and tokens, and blocks login.
    let (_, _, cookie) = session_login(&s, "carol", "Another-Long-Passphrase-77").await;
    let pair = cookie_pair(&cookie.unwrap());
    let carol = s.login("carol", "Another-Long-Passphrase-77").await;
    let (st, _) = admin
        .call(
            "PATCH",
            "/api/v1/users/carol",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(whoami(pair).await, 401);
    assert_eq!(carol.get("/api/v1/whoami").await.0, 401);
    let (st, _, _) = session_login(&s, "carol", "Another-Long-Passphrase-77").await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn tokens_scoped_listed_revoked() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    for p in ["alpha", "beta"] {
        let (st, _) = admin.post("/api/v1/projects", json!({"name": p})).await;
        assert_eq!(st, 201);
    }
    // Read-only token: reads work, changes are forbidden.
    let (st, t) = admin
        .post("/api/v1/tokens", json!({"name": "ro", "scope": "read"}))
        .await;
    assert_eq!(st, 201);
    let secret = t["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("enc_pat_"));
    let ro = enclave_testkit::Api {
        client: s.client(),
        base: s.base.clone(),
        token: secret.clone(),
    };
    assert_eq!(ro.get("/api/v1/projects").await.0, 200);
    let (st, b) = ro.post("/api/v1/groups", json!({"name": "g1"})).await;
    assert_eq!(st, 403, "{b}");
    assert_eq!(b["code"], "forbidden");
    // Project-limited token sees only its project.
    let (_, t) = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "alpha-only", "projects": ["alpha"], "expires_in_days": 7}),
        )
        .await;
    let limited = enclave_testkit::Api {
        client: s.client(),
        base: s.base.clone(),
        token: t["token"].as_str().unwrap().into(),
    };
    let (_, list) = limited.get("/api/v1/projects").await;
    let names: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("alpha")]);
    // Outside its projects the token cannot even learn that a project exists.
    assert_eq!(limited.get("/api/v1/projects/beta").await.0, 404);
    assert_eq!(limited.get("/api/v1/users").await.0, 403);
    // Lifetime limits.
    let (st, b) = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "long", "expires_in_days": 91}),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["details"]["field"], "expires_in_days");
    // Listing shows metadata and last use, never the secret.
    let (st, list) = admin.get("/api/v1/tokens").await;
    assert_eq!(st, 200);
    let text = list.to_string();
    assert!(!text.contains(&secret));
    let ro_meta = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ro")
        .unwrap();
    assert!(ro_meta["last_used_at"].is_string(), "{ro_meta}");
    // Revocation takes effect at once.
    let id = ro_meta["id"].as_str().unwrap();
    assert_eq!(
        admin
            .call("DELETE", &format!("/api/v1/tokens/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(ro.get("/api/v1/projects").await.0, 401);
    // Garbage tokens.
    for bad in [
        "enc_pat_short",
        "nonsense",
        &format!("enc_pat_{}", "A".repeat(43)),
    ] {
        let api = enclave_testkit::Api {
            client: s.client(),
            base: s.base.clone(),
            token: bad.to_string(),
        };
        assert_eq!(api.get("/api/v1/whoami").await.0, 401);
    }
    // Another user's token id is not visible.
    let bob = admin.user(&s, "bob").await;
    let (st, _) = bob.get(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(st, 404);
}
