//! SCIM provisioning end to end against the real server: an admin makes an identity source and
//! its SCIM token; the real compliance tool (`scim2-tester`, PyPI) runs against
//! `/scim/v2/{source}`; deactivating an account through SCIM ends its session and tokens at
//! once and is audited as done by `scim:<source>`; wrong tokens, another source's token and bad
//! input are refused and change nothing.

use crate::BIN;
use enclave_testkit::{Api, Server, PASSWORD};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Creates OIDC source `name` (its issuer is an unused loopback port: nothing is contacted
/// unless someone signs in) and returns its SCIM token and URL.
async fn source(admin: &Api, name: &str) -> (String, String) {
    let (st, b) = admin
        .call(
            "PUT",
            &format!("/api/v1/identity-sources/{name}"),
            Some(json!({"kind": "oidc", "display_name": "Corp",
                "oidc": {"issuer": "http://127.0.0.1:9", "client_id": "enclave", "internal": true}})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = admin
        .post(
            &format!("/api/v1/identity-sources/{name}/scim-token"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    (
        b["token"].as_str().unwrap().to_string(),
        b["scim_url"].as_str().unwrap().to_string(),
    )
}

/// A SCIM request with a bearer token; returns status and JSON body (Null when empty).
async fn scim(
    s: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = s
        .client()
        .request(m, s.url(path))
        .header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let r = rb.send().await.unwrap();
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (st, v)
}

async fn whoami(s: &Server, header: (&str, String)) -> u16 {
    s.client()
        .get(s.url("/api/v1/whoami"))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn scim2_tester_finds_no_failure() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let (token, url) = source(&admin, "corp").await;
    assert_eq!(url, s.url("/scim/v2/corp"));
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../enclave-scim/tests/scim_compliance.py");
    let cert = s.cert_path();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(&url)
            .arg("-")
            .arg("--json")
            .env("SCIM_TOKEN", &token)
            // Trust exactly the test server's self-signed certificate.
            .env("SSL_CERT_FILE", cert)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "scim2-tester failed (install: python3 -m pip install --break-system-packages \
         scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3)\n{stdout}\n{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["failed"], json!([]), "{summary}");
    assert!(summary["passed"].as_u64().unwrap() > 20, "{summary}");
    // Everything the tool did was audited as the source's SCIM client, from loopback.
    let (st, page) = admin
        .get("/api/v1/audit?action=scim.user.create&limit=5")
        .await;
    assert_eq!(st, 200, "{page}");
    let r = &page["items"][0];
    assert_eq!(
        (&r["actor"], &r["auth"], &r["source"]),
        (&json!("scim:corp"), &json!("scim"), &json!("127.0.0.1")),
        "{r}"
    );
}

#[tokio::test]
async fn deactivation_through_scim_ends_access_at_once() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let (token, _) = source(&admin, "corp").await;
    let (st, u) = scim(
        &s,
        &token,
        "POST",
        "/scim/v2/corp/Users",
        Some(
            json!({"schemas": [USER_SCHEMA], "userName": "Dana.Scully@corp.example",
            "externalId": "00u1", "name": {"givenName": "Dana", "familyName": "Scully"},
            "emails": [{"value": "dana@corp.example", "type": "work", "primary": true}],
            "active": true}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{u}");
    let id = u["id"].as_str().unwrap().to_string();
    assert_eq!(u["userName"], "Dana.Scully@corp.example");
    assert_eq!(u["active"], true);
    assert_eq!(u["meta"]["version"], "W/\"1\"");
    // The account: username derived from the userName, profile from the SCIM attributes.
    let name = "dana.scully-corp.example";
    let (st, acct) = admin.get(&format!("/api/v1/users/{name}")).await;
    assert_eq!(st, 200, "{acct}");
    assert_eq!(acct["display_name"], "Dana Scully");
    assert_eq!(acct["email"], "dana@corp.example");
    assert_eq!(acct["disabled"], false);
    // A SCIM group with the user: an Enclave group Cedar sees.
    let (st, g) = scim(
        &s,
        &token,
        "POST",
        "/scim/v2/corp/Groups",
        Some(
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Data Science",
            "members": [{"value": id}]}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let (st, grp) = admin.get("/api/v1/groups/data-science").await;
    assert_eq!((st, &grp["member_count"]), (200, &json!(1)), "{grp}");
    let (_, u) = scim(
        &s,
        &token,
        "GET",
        &format!("/scim/v2/corp/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(u["groups"][0]["value"], gid.as_str(), "{u}");
    // The person works: a project membership, a session and a personal token.
    let (st, b) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "fraud", "owner": "admin"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = admin
        .call(
            "PUT",
            &format!("/api/v1/projects/fraud/members/{name}"),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert!(st == 200 || st == 204, "{st} {b}");
    let (st, b) = admin
        .post(
            &format!("/api/v1/users/{name}/password"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert!(st == 200 || st == 204, "{st} {b}");
    let r = s
        .client()
        .post(s.url("/api/v1/auth/session"))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let dana = s.login(name, PASSWORD).await;
    let bearer = ("authorization", format!("Bearer {}", dana.token));
    assert_eq!(whoami(&s, ("cookie", cookie.clone())).await, 200);
    assert_eq!(whoami(&s, bearer.clone()).await, 200);
    let (st, _) = dana.get("/api/v1/projects/fraud").await;
    assert_eq!(st, 200);

    // Okta's shape of a deactivation.
    let (st, u) = scim(
        &s,
        &token,
        "PATCH",
        &format!("/scim/v2/corp/Users/{id}"),
        Some(json!({"schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"active": false}}]})),
    )
    .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["active"], false);
    assert_eq!(u["meta"]["version"], "W/\"2\"");
    assert_eq!(whoami(&s, ("cookie", cookie.clone())).await, 401);
    assert_eq!(whoami(&s, bearer.clone()).await, 401);
    let (_, acct) = admin.get(&format!("/api/v1/users/{name}")).await;
    assert_eq!(acct["disabled"], true, "{acct}");
    let (st, page) = admin.get("/api/v1/audit?action=user.deactivate").await;
    assert_eq!(st, 200, "{page}");
    let rec = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == format!("user:{name}"))
        .unwrap_or_else(|| panic!("no user.deactivate record: {page}"));
    assert_eq!(rec["detail"]["by"], "scim:corp", "{rec}");
    assert_eq!(rec["detail"]["sessions_ended"], 1, "{rec}");
    assert!(
        rec["detail"]["tokens_revoked"].as_u64().unwrap() >= 1,
        "{rec}"
    );
    let (_, page) = admin.get("/api/v1/audit?action=scim.user.update").await;
    let upd = &page["items"][0];
    assert_eq!(
        (&upd["actor"], &upd["auth"], &upd["source"]),
        (&json!("scim:corp"), &json!("scim"), &json!("127.0.0.1")),
        "{upd}"
    );

    // active=true enables the account again; the ended session stays ended.
    let (st, u) = scim(
        &s,
        &token,
        "PATCH",
        &format!("/scim/v2/corp/Users/{id}"),
        Some(json!({"schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "active", "value": true}]})),
    )
    .await;
    assert_eq!((st, &u["active"]), (200, &json!(true)), "{u}");
    let (_, acct) = admin.get(&format!("/api/v1/users/{name}")).await;
    assert_eq!(acct["disabled"], false, "{acct}");
    assert_eq!(whoami(&s, ("cookie", cookie)).await, 401);
    let again = s.login(name, PASSWORD).await;
    assert_eq!(
        whoami(&s, ("authorization", format!("Bearer {}", again.token))).await,
        200
    );

    // DELETE deprovisions: the account stays, disabled; SCIM no longer knows it.
    let (st, b) = scim(
        &s,
        &token,
        "DELETE",
        &format!("/scim/v2/corp/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(st, 204, "{b}");
    let (st, _) = scim(
        &s,
        &token,
        "GET",
        &format!("/scim/v2/corp/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(
        whoami(&s, ("authorization", format!("Bearer {}", again.token))).await,
        401
    );
    let (st, acct) = admin.get(&format!("/api/v1/users/{name}")).await;
    assert_eq!((st, &acct["disabled"]), (200, &json!(true)), "{acct}");
    let (_, g) = scim(
        &s,
        &token,
        "GET",
        &format!("/scim/v2/corp/Groups/{gid}"),
        None,
    )
    .await;
    assert!(g.get("members").is_none(), "{g}");
    let (_, page) = admin.get("/api/v1/audit?action=scim.user.delete").await;
    assert_eq!(page["items"][0]["actor"], "scim:corp", "{page}");
    // The group goes with DELETE too.
    let (st, _) = scim(
        &s,
        &token,
        "DELETE",
        &format!("/scim/v2/corp/Groups/{gid}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = admin.get("/api/v1/groups/data-science").await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn wrong_tokens_and_bad_input_change_nothing() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let (token, _) = source(&admin, "corp").await;
    let (other, _) = source(&admin, "other").await;
    let wrong = "scim_not-the-right-token-Harbor-77";
    for (t, path) in [
        (wrong, "/scim/v2/corp/Users"),
        (other.as_str(), "/scim/v2/corp/Users"),
        (token.as_str(), "/scim/v2/nope/Users"),
        (token.as_str(), "/scim/v2/other/Groups"),
        (wrong, "/scim/v2/corp/ServiceProviderConfig"),
    ] {
        let (st, b) = scim(&s, t, "GET", path, None).await;
        assert_eq!(st, 401, "{path}: {b}");
    }
    let r = s
        .client()
        .get(s.url("/scim/v2/corp/Users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (st, page) = admin
        .get("/api/v1/audit?action=scim.auth&outcome=failure&limit=50")
        .await;
    assert_eq!(st, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|r| r["actor"] == "scim:corp" && r["detail"]["reason"] == "wrong token"),
        "{page}"
    );
    assert!(items.iter().any(|r| r["actor"] == "scim:nope"), "{page}");
    let text = page.to_string();
    assert!(!text.contains(wrong) && !text.contains(&token) && !text.contains(&other));

    // A rotated token replaces the old one at once.
    let (fresh, _) = {
        let (st, b) = admin
            .post("/api/v1/identity-sources/other/scim-token", json!({}))
            .await;
        assert_eq!(st, 200, "{b}");
        (b["token"].as_str().unwrap().to_string(), ())
    };
    let (st, _) = scim(&s, &other, "GET", "/scim/v2/other/Users", None).await;
    assert_eq!(st, 401);
    let (st, _) = scim(&s, &fresh, "GET", "/scim/v2/other/Users", None).await;
    assert_eq!(st, 200);

    let user = |un: &str, email: &str| json!({"schemas": [USER_SCHEMA], "userName": un, "emails": [{"value": email}]});
    let (st, alice) = scim(
        &s,
        &token,
        "POST",
        "/scim/v2/corp/Users",
        Some(user("alice", "alice@corp.example")),
    )
    .await;
    assert_eq!(st, 201, "{alice}");
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let (_, before) = admin.get("/api/v1/users").await;
    let (st, b) = scim(
        &s,
        &token,
        "POST",
        "/scim/v2/corp/Users",
        Some(user("bob", "not-an-email")),
    )
    .await;
    assert_eq!((st, &b["scimType"]), (400, &json!("invalidValue")), "{b}");
    let (st, b) = scim(
        &s,
        &token,
        "POST",
        "/scim/v2/corp/Users",
        Some(user("ALICE", "a2@corp.example")),
    )
    .await;
    assert_eq!((st, &b["scimType"]), (409, &json!("uniqueness")), "{b}");
    // The same userName in another source is another person.
    let (st, b) = scim(
        &s,
        &fresh,
        "POST",
        "/scim/v2/other/Users",
        Some(user("alice", "alice@other.example")),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let other_alice = b["id"].as_str().unwrap().to_string();
    // Another source's user is not found here, and cannot join this source's groups.
    let (st, _) = scim(
        &s,
        &token,
        "GET",
        &format!("/scim/v2/corp/Users/{other_alice}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, b) = scim(
        &s,
        &token,
        "POST",
        "/scim/v2/corp/Groups",
        Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "Ops",
            "members": [{"value": other_alice}]})),
    )
    .await;
    assert_eq!((st, &b["scimType"]), (400, &json!("invalidValue")), "{b}");
    let (st, b) = scim(
        &s,
        &token,
        "PATCH",
        &format!("/scim/v2/corp/Users/{alice_id}"),
        Some(json!({"schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "emails", "value": [{"value": "x y@z"}]}]})),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    // A stale If-Match is refused.
    let r = s
        .client()
        .put(s.url(&format!("/scim/v2/corp/Users/{alice_id}")))
        .header("authorization", format!("Bearer {token}"))
        .header("if-match", "W/\"7\"")
        .header("content-type", "application/scim+json")
        .body(user("alice", "new@corp.example").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    // Nothing changed: one user in this source, the account list (but for other's alice) as before.
    let (st, list) = scim(&s, &token, "GET", "/scim/v2/corp/Users", None).await;
    assert_eq!((st, &list["totalResults"]), (200, &json!(1)), "{list}");
    assert_eq!(
        list["Resources"][0]["emails"][0]["value"],
        "alice@corp.example"
    );
    assert_eq!(list["Resources"][0]["meta"]["version"], "W/\"1\"");
    let (_, after) = admin.get("/api/v1/users").await;
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        before["items"].as_array().unwrap().len() + 1
    );
    let (st, groups) = scim(&s, &token, "GET", "/scim/v2/corp/Groups", None).await;
    assert_eq!((st, &groups["totalResults"]), (200, &json!(0)), "{groups}");
    // Filters work on the stored users.
    let (st, list) = scim(
        &s,
        &token,
        "GET",
        "/scim/v2/corp/Users?filter=userName%20eq%20%22ALICE%22",
        None,
    )
    .await;
    assert_eq!((st, &list["totalResults"]), (200, &json!(1)), "{list}");
}
