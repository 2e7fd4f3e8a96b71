//! Passkeys as a second factor through the real server's REST API, answered by a software
//! authenticator that signs real WebAuthn responses (the browser test drives Chromium's
//! virtual authenticator through the console): adding one with re-authentication and the
//! recovery codes, the passkey login step with `amr` `pwd hwk mfa`, replayed and foreign
//! answers, a counter that goes backwards, removal rules, disabling, and the audit trail.

use crate::mfa::{audit, get_with_cookie, mfa_token_for, post_open};
use crate::BIN;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use enclave_testkit::{Options, Server, PASSWORD};
use serde_json::{json, Value};

#[path = "../../../enclave-webauthn/tests/common/mod.rs"]
mod soft;

use soft::{Authenticator, Key, C, UP, UV};

/// A server whose public URL names `localhost` (WebAuthn needs a host name), on a port chosen
/// before the start.
fn server() -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("https://localhost:{port}");
    let opts = Options {
        env: vec![("ENCLAVE_PUBLIC_URL".into(), origin.clone())],
        ..Options::default()
    };
    (
        Server::start_on(BIN, &format!("127.0.0.1:{port}"), opts),
        origin,
    )
}

fn unb64(v: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap()
}

/// The authenticator's answer to creation options, as the browser posts it.
fn register(a: &Authenticator, options: &Value, origin: &str) -> Value {
    let challenge = unb64(&options["challenge"]);
    let rp_id = options["rp"]["id"].as_str().unwrap();
    let cd = soft::client_data("webauthn.create", &challenge, origin, Some(false));
    let ad = soft::auth_data(
        rp_id,
        UP | UV | soft::AT,
        a.counter,
        Some((&a.id, &a.cose_bytes())),
        None,
    );
    let ao = soft::attestation_object("none", C::Map(vec![]), &ad);
    serde_json::to_value(soft::registration_json(&a.id, &cd, &ao)).unwrap()
}

/// The authenticator's answer to request options, with its counter moved to `counter`.
fn assert_login(a: &mut Authenticator, options: &Value, origin: &str, counter: u32) -> Value {
    let challenge = unb64(&options["challenge"]);
    let cd = soft::client_data("webauthn.get", &challenge, origin, Some(false));
    a.counter = counter - 1;
    let rp_id = options["rpId"].as_str().or(options["rp"]["id"].as_str());
    let r = a.assert_with(&cd, rp_id.unwrap(), UP | UV);
    serde_json::to_value(r).unwrap()
}

async fn begin(owner: &enclave_testkit::Api) -> Value {
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/passkeys/options",
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b["public_key"].clone()
}

async fn login_options(s: &Server, pending: &str) -> Value {
    let (st, b, _) = post_open(s, "/api/v1/auth/mfa/passkey", json!({"mfa_token": pending})).await;
    assert_eq!(st, 200, "{b}");
    b["public_key"].clone()
}

#[tokio::test]
async fn passkey_registration_login_replays_counters_and_removal() {
    let (s, origin) = server();
    let (admin, owner) = crate::common::fraud_project(&s, None).await;

    // Nothing yet; a wrong password starts nothing and is audited.
    let (st, b) = owner.get("/api/v1/me/mfa/passkeys").await;
    assert_eq!((st, b.clone()), (200, json!([])), "{b}");
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/passkeys/options",
            json!({"password": "not-it"}),
        )
        .await;
    assert_eq!(
        (st, b["details"]["field"].as_str()),
        (400, Some("password")),
        "{b}"
    );

    // The creation options name this server and the account; the challenge is 32 bytes.
    let options = begin(&owner).await;
    assert_eq!(options["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["user"]["name"], "olivia");
    assert_eq!(unb64(&options["challenge"]).len(), 32);
    let algs: Vec<i64> = options["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alg"].as_i64().unwrap())
        .collect();
    assert!(algs.contains(&-7) && algs.contains(&-257), "{algs:?}");

    // An answer made for another origin is refused, and the challenge is used up with it.
    let laptop = Authenticator::new(Key::es256());
    let foreign = register(&laptop, &options, "https://evil.example");
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/passkeys",
            json!({"name": "laptop", "credential": foreign}),
        )
        .await;
    assert_eq!(
        (st, b["details"]["field"].as_str()),
        (400, Some("passkey")),
        "{b}"
    );
    let good = register(&laptop, &options, &origin);
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/passkeys",
            json!({"name": "laptop", "credential": good}),
        )
        .await;
    assert_eq!(
        st, 409,
        "the challenge was taken by the refused answer: {b}"
    );

    // Bad input changes nothing: an empty name, a credential that is not one.
    let options = begin(&owner).await;
    for body in [
        json!({"name": " ", "credential": register(&laptop, &options, &origin)}),
        json!({"name": "laptop", "credential": {"id": "x"}}),
    ] {
        let (st, b) = owner.post("/api/v1/me/mfa/passkeys", body).await;
        assert_eq!(st, 400, "{b}");
    }
    let (_, b) = owner.get("/api/v1/me/mfa").await;
    assert_eq!(
        (b["enabled"].clone(), b["passkeys"].clone()),
        (json!(false), json!(0)),
        "{b}"
    );

    // Added: the first second factor brings the ten recovery codes.
    let options = begin(&owner).await;
    let answer = register(&laptop, &options, &origin);
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/passkeys",
            json!({"name": "laptop", "credential": answer.clone()}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["passkey"]["name"], "laptop");
    assert_eq!(b["passkey"]["attestation"], "none");
    let recovery: Vec<String> = b["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);
    let laptop_id = b["passkey"]["id"].as_str().unwrap().to_string();
    // The same answer again: no registration is waiting.
    let (st, _) = owner
        .post(
            "/api/v1/me/mfa/passkeys",
            json!({"name": "laptop-2", "credential": answer}),
        )
        .await;
    assert_eq!(st, 409);
    let (_, b) = owner.get("/api/v1/me/mfa").await;
    assert_eq!(b["enabled"], true, "{b}");
    assert_eq!(
        (b["totp"].clone(), b["passkeys"].clone()),
        (json!(false), json!(1))
    );
    // An admin sees the account's devices (the API, the CLI and the users page); another user
    // cannot.
    let (st, b) = admin.get("/api/v1/users/olivia/mfa").await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (b["totp"].clone(), b["passkeys"][0]["name"].clone()),
        (json!(false), json!("laptop"))
    );
    let victor = s.login("victor", PASSWORD).await;
    let (st, _) = victor.get("/api/v1/users/olivia/mfa").await;
    assert!(st == 403 || st == 404, "{st}");
    crate::common::login_cli(&s, "admin-cli", "admin");
    let out = crate::common::run(s.cli("admin-cli"), &["users", "mfa", "olivia"], None);
    let text = crate::common::ok(&out);
    assert!(text.contains("laptop"), "{text}");

    // A password login now waits for the passkey.
    let pending = mfa_token_for(&s, "/api/v1/auth/session", json!({})).await;
    // Answering without asking for the options first is refused (and counted).
    let mut laptop = laptop;
    let stale = assert_login(&mut laptop, &options, &origin, 1);
    let (st, b, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "passkey": stale}),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["details"]["attempts_left"], 4, "{b}");
    // Code and passkey together are refused.
    let (st, _, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "code": "123456", "passkey": stale}),
    )
    .await;
    assert_eq!(st, 400);

    let req = login_options(&s, &pending).await;
    assert_eq!(req["rpId"], "localhost");
    assert_eq!(req["allowCredentials"][0]["id"], laptop_id.as_str());
    // A passkey the account does not have is refused.
    let mut stranger = Authenticator::new(Key::es256());
    let other = assert_login(&mut stranger, &req, &origin, 1);
    let (st, b, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "passkey": other}),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    // The right one, on a fresh challenge, opens a session with amr pwd hwk mfa.
    let req = login_options(&s, &pending).await;
    let signed = assert_login(&mut laptop, &req, &origin, 5);
    let (st, b, cookie) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "passkey": signed.clone()}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let cookie = cookie.unwrap();
    assert_eq!(get_with_cookie(&s, "/api/v1/whoami", &cookie).await.0, 200);
    let created = audit(&admin, "session.create").await;
    assert!(
        created
            .iter()
            .any(|r| r["actor"] == "olivia" && r["detail"]["amr"] == "pwd hwk mfa"),
        "{created:?}"
    );

    // The same signed answer on another login is refused (another challenge).
    let pending = mfa_token_for(&s, "/api/v1/auth/session", json!({})).await;
    login_options(&s, &pending).await;
    let (st, _, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "passkey": signed}),
    )
    .await;
    assert_eq!(st, 400);
    // A counter that goes backwards (a cloned authenticator) is refused and audited.
    let req = login_options(&s, &pending).await;
    let cloned = assert_login(&mut laptop, &req, &origin, 3);
    let (st, b, _) = post_open(
        &s,
        "/api/v1/auth/mfa",
        json!({"mfa_token": pending, "passkey": cloned}),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("cloned"), "{b}");
    let fails = audit(&admin, "auth.mfa").await;
    assert!(
        fails.iter().any(|r| r["outcome"] == "failure"
            && r["detail"]["reason"]
                .as_str()
                .is_some_and(|x| x.contains("cloned"))),
        "{fails:?}"
    );

    // The last second factor cannot be removed on its own; with a second passkey it can.
    let (st, b) = owner
        .post(
            &format!("/api/v1/me/mfa/passkeys/{laptop_id}/remove"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    let phone = Authenticator::new(Key::eddsa());
    let options = begin(&owner).await;
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/passkeys",
            json!({"name": "phone", "credential": register(&phone, &options, &origin)}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(
        b["recovery_codes"],
        json!([]),
        "codes only with the first factor"
    );
    let (st, _) = owner
        .post(
            &format!("/api/v1/me/mfa/passkeys/{laptop_id}/remove"),
            json!({"password": "wrong"}),
        )
        .await;
    assert_eq!(st, 400);
    // Another account cannot remove, or even see, olivia's passkeys.
    let (st, _) = victor
        .post(
            &format!("/api/v1/me/mfa/passkeys/{laptop_id}/remove"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 404);
    let (_, b) = victor.get("/api/v1/me/mfa/passkeys").await;
    assert_eq!(b, json!([]));
    // A made-up pending login gets no passkey options.
    let (st, _, _) = post_open(
        &s,
        "/api/v1/auth/mfa/passkey",
        json!({"mfa_token": "x".repeat(43)}),
    )
    .await;
    assert_eq!(st, 401);
    let (st, b) = owner
        .post(
            &format!("/api/v1/me/mfa/passkeys/{laptop_id}/remove"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 204, "{b}");
    let (_, b) = owner.get("/api/v1/me/mfa/passkeys").await;
    let names: Vec<&str> = b
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["phone"]);

    // Turning MFA off needs the password and a recovery code; it removes the passkeys.
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/disable",
            json!({"password": PASSWORD, "code": recovery[0]}),
        )
        .await;
    assert_eq!(st, 204, "{b}");
    let (_, b) = owner.get("/api/v1/me/mfa").await;
    assert_eq!(
        (b["enabled"].clone(), b["passkeys"].clone()),
        (json!(false), json!(0))
    );
    let (st, _, cookie) = post_open(
        &s,
        "/api/v1/auth/session",
        json!({"username": "olivia", "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 200);
    assert!(cookie.is_some());

    // Lost everything: an admin removes the account's factors (not their own, and nobody else
    // may), which also ends its sessions.
    let options = begin(&owner).await;
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/passkeys",
            json!({"name": "phone", "credential": register(&phone, &options, &origin)}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, _) = victor
        .post("/api/v1/users/olivia/mfa/reset", json!({}))
        .await;
    assert!(st == 403 || st == 404, "{st}");
    let (st, b) = admin.post("/api/v1/users/admin/mfa/reset", json!({})).await;
    assert_eq!(st, 409, "{b}");
    let (st, b) = admin
        .post("/api/v1/users/olivia/mfa/reset", json!({}))
        .await;
    assert_eq!(st, 204, "{b}");
    let (_, b) = admin.get("/api/v1/users/olivia/mfa").await;
    assert_eq!(
        (b["passkeys"].clone(), b["recovery_codes_left"].clone()),
        (json!([]), json!(0))
    );

    for (action, actor) in [
        ("mfa.passkey.add", "olivia"),
        ("mfa.passkey.remove", "olivia"),
        ("mfa.disable", "olivia"),
        ("user.reset_mfa", "admin"),
    ] {
        assert!(
            audit(&admin, action)
                .await
                .iter()
                .any(|r| r["actor"] == actor && r["outcome"] == "success"),
            "{action}"
        );
    }
}

#[tokio::test]
async fn passkeys_need_a_host_name() {
    // The default public URL is https://127.0.0.1:PORT: no relying party can be formed.
    let s = Server::start(BIN);
    let (_admin, owner) = crate::common::fraud_project(&s, None).await;
    let (st, b) = owner
        .post(
            "/api/v1/me/mfa/passkeys/options",
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    assert!(b["message"].as_str().unwrap().contains("public_url"), "{b}");
}
