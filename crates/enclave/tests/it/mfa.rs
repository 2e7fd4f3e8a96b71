//! TOTP second factor through the real server: enrolment with re-authentication, confirmation
//! and recovery codes, the two-step login (session and token), codes and recovery codes used
//! once, disabling, the audit trail, and a Cedar policy that requires `context.mfa`.

use crate::common::fraud_project;
use crate::BIN;
use enclave_core::mfa::{code_at, TotpSecret};
use enclave_core::Timestamp;
use enclave_testkit::{Server, PASSWORD};
use serde_json::{json, Value};

fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Timestamp(i64::try_from(secs).unwrap())
}

/// The code of the next time step: accepted (one step of drift) and later than any code used
/// so far in this test, whatever the clock did meanwhile.
fn next_code(secret: &TotpSecret) -> String {
    code_at(secret, Timestamp(now().unix() + 30)).to_string()
}

/// POSTs without credentials; returns status, body and the session cookie if one was set.
pub(crate) async fn post_open(s: &Server, path: &str, body: Value) -> (u16, Value, Option<String>) {
    let r = s
        .client()
        .post(s.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.split(';').next().map(str::to_string));
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v, cookie)
}

pub(crate) async fn get_with_cookie(s: &Server, path: &str, cookie: &str) -> (u16, Value) {
    let r = s
        .client()
        .get(s.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn audit(admin: &enclave_testkit::Api, action: &str) -> Vec<Value> {
    let (st, b) = admin
        .get(&format!("/api/v1/audit?action={action}&limit=200"))
        .await;
    assert_eq!(st, 200, "{b}");
    b["items"].as_array().unwrap().clone()
}

pub(crate) async fn mfa_token_for(s: &Server, path: &str, extra: Value) -> String {
    let mut body = json!({"username": "olivia", "password": PASSWORD});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (st, b, cookie) = post_open(s, path, body).await;
    assert_eq!(st, 401, "{b}");
    assert_eq!(b["code"], "mfa_required", "{b}");
    assert!(cookie.is_none(), "no session before the second factor");
    b["details"]["mfa_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn totp_enrolment_login_recovery_and_the_mfa_policy_condition() {
    let s = Server::start(BIN);
    let (admin, owner) = fraud_project(&s, Some("hunter2-value")).await;

    // A Cedar policy: secret values only with a second factor.
    let body = r#"forbid (principal, action == Action::"secret.read_value", resource) unless { context.mfa };"#;
    let (st, b) = admin
        .post(
            "/api/v1/policies",
            json!({"name": "mfa-for-values", "body": body}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    const VALUE: &str = "/api/v1/projects/fraud/secrets/DB_PASSWORD/value";

    // A password-only session is refused the value.
    let (st, b, cookie) = post_open(
        &s,
        "/api/v1/auth/session",
        json!({"username": "olivia", "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let pwd_cookie = cookie.unwrap();
    // Refused like a missing secret (404), and audited as a denial.
    assert_eq!(get_with_cookie(&s, VALUE, &pwd_cookie).await.0, 404);
    assert!(audit(&admin, "secret.read_value")
        .await
        .iter()
        .any(|r| r["actor"] == "olivia" && r["outcome"] == "denied"));

    // Status before, enrolment with a wrong password (refused and audited).
    let (st, b) = owner.get("/api/v1/me/mfa").await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["enabled"], false);
    assert_eq!(b["local"], true);
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/totp",
            json!({"password": "not-the-password"}),
        )
        .await;
    assert_eq!(
        (st, b["details"]["field"].as_str()),
        (400, Some("password")),
        "{b}"
    );
    assert!(audit(&admin, "mfa.enroll")
        .await
        .iter()
        .any(|r| r["actor"] == "olivia" && r["outcome"] == "failure"));

    let (st, b) = owner
        .post("/api/v1/me/mfa/totp", json!({"password": PASSWORD}))
        .await;
    assert_eq!(st, 201, "{b}");
    let secret_b32 = b["secret"].as_str().unwrap().to_string();
    assert!(b["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Enclave:olivia?secret="));
    assert!(b["qr_svg"].as_str().unwrap().starts_with("<svg"));
    let secret = TotpSecret::from_base32(&secret_b32).unwrap();

    // Confirmation: a wrong code is refused, the right one turns MFA on with 10 codes.
    let (st, _) = owner
        .post("/api/v1/me/mfa/totp/confirm", json!({"code": "000000"}))
        .await;
    assert_eq!(st, 400);
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/totp/confirm",
            json!({"code": code_at(&secret, now()).to_string()}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let recovery: Vec<String> = b["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);
    let (_, st_body) = owner.get("/api/v1/me/mfa").await;
    assert_eq!(st_body["enabled"], true);
    assert_eq!(st_body["recovery_codes_left"], 10);

    // Login: the password alone opens nothing; a wrong code is refused; the right one opens a
    // session whose amr says otp.
    let pending = mfa_token_for(&s, "/api/v1/auth/session", json!({})).await;
    let (st, b, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "code": "123456"}),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["details"]["attempts_left"], 4, "{b}");
    let code = next_code(&secret);
    let (st, b, cookie) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "code": code, "kind": "session"}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["user"]["username"], "olivia");
    let otp_cookie = cookie.unwrap();
    let created = audit(&admin, "session.create").await;
    assert!(
        created
            .iter()
            .any(|r| r["actor"] == "olivia" && r["detail"]["amr"] == "pwd otp mfa"),
        "{created:?}"
    );
    // The pending login is finished: its token does not work again.
    let (st, _, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "code": next_code(&secret)}),
    )
    .await;
    assert_eq!(st, 401);

    // The policy condition: the TOTP session reads the value, the password one still cannot.
    let (st, b) = get_with_cookie(&s, VALUE, &otp_cookie).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["value"], "hunter2-value");
    assert_eq!(get_with_cookie(&s, VALUE, &pwd_cookie).await.0, 404);

    // The same code again is refused (each code works once).
    let pending = mfa_token_for(&s, "/api/v1/auth/session", json!({})).await;
    let (st, b, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "code": code}),
    )
    .await;
    assert_eq!(st, 400, "{b}");

    // A recovery code finishes a token login, once; its use is audited.
    let pending = mfa_token_for(&s, "/api/v1/auth/token", json!({"name": "cli@laptop"})).await;
    let (st, b, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "code": recovery[0].to_lowercase()}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert!(b["token"].as_str().unwrap().starts_with("enc_pat_"));
    assert_eq!(b["name"], "cli@laptop");
    let pending = mfa_token_for(&s, "/api/v1/auth/session", json!({})).await;
    let (st, _, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "code": recovery[0]}),
    )
    .await;
    assert_eq!(st, 400, "a recovery code works once");
    assert!(audit(&admin, "mfa.recovery_used")
        .await
        .iter()
        .any(|r| r["actor"] == "olivia" && r["detail"]["recovery_codes_left"] == 9));
    let fails = audit(&admin, "auth.mfa").await;
    assert!(fails
        .iter()
        .any(|r| r["outcome"] == "failure" && r["detail"]["reason"] == "code wrong"));

    // Five wrong codes end a pending login.
    let pending = mfa_token_for(&s, "/api/v1/auth/session", json!({})).await;
    for _ in 0..5 {
        post_open(
            &s,
            "/api/v1/auth/mfa",
            json!({"mfa_token": pending, "code": "ZZZZZ-ZZZZZ"}),
        )
        .await;
    }
    let (st, _, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "code": recovery[1]}),
    )
    .await;
    assert_eq!(st, 401);

    // Disabling needs the password and a code.
    let (st, _) = owner
        .post(
            "/api/v1/me/mfa/disable",
            json!({"password": "wrong", "code": recovery[1]}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = owner
        .post(
            "/api/v1/me/mfa/disable",
            json!({"password": PASSWORD, "code": "ABCDE-ABCDE"}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/disable",
            json!({"password": PASSWORD, "code": recovery[1]}),
        )
        .await;
    assert_eq!(st, 204, "{b}");
    assert!(audit(&admin, "mfa.disable")
        .await
        .iter()
        .any(|r| r["actor"] == "olivia" && r["outcome"] == "success"));
    // Password logins open a session directly again.
    let (st, b, cookie) = post_open(
        &s,
        "/api/v1/auth/session",
        json!({"username": "olivia", "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert!(cookie.is_some());

    // No secret, code or pending id reached the trail.
    let (_, all) = admin.get("/api/v1/audit?limit=500").await;
    let all = all.to_string();
    assert!(!all.contains(&secret_b32));
    assert!(!all.contains(&recovery[2]));
    assert!(!all.contains(&code));
}

/// The `value` of a hidden form field in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn require_mfa_allows_only_enrolment_and_the_console_asks_for_the_code() {
    let opts = enclave_testkit::Options {
        env: vec![("ENCLAVE_LOGIN_REQUIRE_MFA".into(), "true".into())],
        ..enclave_testkit::Options::default()
    };
    let s = Server::start_with(BIN, opts);
    let c = s.client();
    let r = c
        .post(s.url("/api/v1/setup"))
        .json(&json!({"token": s.setup_token(), "username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A CLI token needs MFA first.
    let (st, b, _) = post_open(
        &s,
        "/api/v1/auth/token",
        json!({"username": "admin", "password": PASSWORD, "name": "t"}),
    )
    .await;
    assert_eq!(st, 403, "{b}");
    assert!(b["message"]
        .as_str()
        .unwrap()
        .starts_with("enroll in MFA first"));
    // A session may read itself and enrol, nothing else.
    let (st, b, cookie) = post_open(
        &s,
        "/api/v1/auth/session",
        json!({"username": "admin", "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let cookie = cookie.unwrap();
    let csrf = b["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(get_with_cookie(&s, "/api/v1/whoami", &cookie).await.0, 200);
    let (st, b) = get_with_cookie(&s, "/api/v1/users", &cookie).await;
    assert_eq!(st, 403, "{b}");
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("enroll in MFA first"));
    let post = |path: &'static str, body: Value| {
        c.post(s.url(path))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let r = post("/api/v1/me/mfa/totp", json!({"password": PASSWORD}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    let secret = TotpSecret::from_base32(b["secret"].as_str().unwrap()).unwrap();
    let r = post(
        "/api/v1/me/mfa/totp/confirm",
        json!({"code": code_at(&secret, now()).to_string()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // The old session still lacks the second factor.
    assert_eq!(get_with_cookie(&s, "/api/v1/users", &cookie).await.0, 403);

    // The console: password, then a page asking for the code, then the session.
    let r = c
        .post(s.url("/login"))
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("Second factor"), "{html}");
    let token = hidden(&html, "mfa_token");
    let r = c
        .post(s.url("/login/mfa"))
        .form(&[("mfa_token", token.as_str()), ("code", "000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not correct"));
    let r = c
        .post(s.url("/login/mfa"))
        .form(&[
            ("mfa_token", token.as_str()),
            ("code", next_code(&secret).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let web = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    assert_eq!(get_with_cookie(&s, "/api/v1/users", &web).await.0, 200);
    // The account page links the MFA page, which shows it on.
    let r = c
        .get(s.url("/account/mfa"))
        .header("cookie", &web)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Recovery codes left"), "{html}");
    assert!(html.contains("action=\"/account/mfa/disable\""), "{html}");
}
