//! Enterprise identity end to end, against real servers the test starts on loopback: the
//! OpenID-certified `oidc-provider` (npm, `tests/idp/`) driven through its real login form, and
//! OpenLDAP `slapd` with an AD-like directory (nested groups, a disabled account). An admin
//! connects both through the API; people sign in, are admitted or refused by the rules, land in
//! the mapped project with the mapped role; replays, foreign browsers, filter injection and
//! empty passwords are refused; a directory sync and a deactivation end access, and a
//! deactivated account's running job ends within `access.deprovision_within`.

#[path = "../../../enclave-ldap/tests/slapd/mod.rs"]
mod slapd;

use enclave_testkit::{Api, Options, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLIENT_SECRET: &str = "e2e-client-secret-Lantern-Quartz-0042";

/// The test IdP (`tests/idp/oidc-provider.mjs`), killed on drop.
struct Idp {
    child: Child,
    port: u16,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_idp(redirect_uri: &str) -> Idp {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp");
    if !dir.join("node_modules/oidc-provider").is_dir() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (scripts/test.sh installs node and npm)");
        assert!(st.success(), "npm ci in tests/idp failed");
    }
    let config = json!({"port": 0, "clients": [{
        "client_id": "enclave",
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "client_secret_basic",
    }]});
    let mut child = Command::new("node")
        .arg(dir.join("oidc-provider.mjs"))
        .arg(config.to_string())
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    std::thread::spawn(move || for _ in reader.lines() {});
    let port = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("the IdP did not start: {line:?}"))
        .parse()
        .unwrap();
    Idp { child, port }
}

/// A small browser: one cookie jar (by name), no automatic redirects, trusting Enclave's
/// certificate.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(s: &Server) -> Browser {
        Browser {
            http: s.client(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let req = if jar.is_empty() {
            req
        } else {
            req.header("cookie", jar.join("; "))
        };
        let resp = req.send().await.unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().into(), value.into());
            }
        }
        Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string()),
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let r = self.http.get(url);
        self.send(r).await
    }

    /// From Enclave's "Sign in with …" link through the provider's login form back to the
    /// callback URL (returned, not yet visited).
    async fn sign_in_at_idp(&mut self, s: &Server, source: &str, user: &str) -> String {
        let start = self
            .get(&s.url(&format!("/auth/oidc/{source}/start")))
            .await;
        assert_eq!(start.status, 303, "{}", start.body);
        let mut url = reqwest::Url::parse(&start.location.unwrap()).unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        let mut req = self.http.get(url.clone());
        for _ in 0..12 {
            let p = self.send(req).await;
            if let Some(loc) = p.location {
                url = url.join(&loc).unwrap();
                if url.as_str().starts_with(&s.base) {
                    return url.to_string();
                }
                req = self.http.get(url.clone());
                continue;
            }
            assert_eq!(p.status, 200, "unexpected IdP page: {}", p.body);
            let action = p
                .body
                .split("action=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("no form on the IdP page: {}", p.body));
            url = url.join(action).unwrap();
            let pw = format!("{user}-password");
            req = if p.body.contains("name=\"login\"") {
                self.http
                    .post(url.clone())
                    .form(&[("login", user), ("password", pw.as_str())])
            } else {
                self.http.post(url.clone()).form(&[("confirm", "yes")])
            };
        }
        panic!("the sign-in did not come back to Enclave");
    }

    /// A session API handle from the browser's session cookie.
    async fn whoami(&mut self, s: &Server) -> Value {
        let p = self.get(&s.url("/api/v1/whoami")).await;
        assert_eq!(p.status, 200, "{}", p.body);
        serde_json::from_str(&p.body).unwrap()
    }
}

async fn audit(admin: &Api, action: &str) -> Vec<Value> {
    let (st, b) = admin
        .get(&format!("/api/v1/audit?action={action}&limit=200"))
        .await;
    assert_eq!(st, 200, "{b}");
    b["items"].as_array().unwrap().clone()
}

async fn put_source(admin: &Api, name: &str, body: Value) -> Value {
    let (st, b) = admin
        .call(
            "PUT",
            &format!("/api/v1/identity-sources/{name}"),
            Some(body),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b
}

async fn member_role(admin: &Api, project: &str, user: &str) -> Option<String> {
    let (st, b) = admin
        .get(&format!("/api/v1/projects/{project}/members"))
        .await;
    assert_eq!(st, 200, "{b}");
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == user)
        .map(|m| m["role"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn oidc_sign_in_admits_maps_and_refuses() {
    let s = Server::start(crate::BIN);
    let (admin, _owner) = crate::common::fraud_project(&s, None).await;
    let redirect = s.url("/auth/oidc/corp/callback");
    let idp = start_idp(&redirect);
    let issuer = format!("http://127.0.0.1:{}", idp.port);

    // Bad input changes nothing: plain http without `internal`, HS256, a mapping to a project
    // that does not exist, an unknown field.
    for (body, field) in [
        (
            json!({"kind": "oidc", "display_name": "Corp", "oidc": {"issuer": issuer, "client_id": "enclave"}}),
            "oidc.issuer",
        ),
        (
            json!({"kind": "oidc", "display_name": "Corp", "oidc": {"issuer": issuer, "client_id": "enclave", "internal": true, "algorithms": ["HS256"]}}),
            "oidc.algorithms",
        ),
        (
            json!({"kind": "oidc", "display_name": "Corp", "oidc": {"issuer": issuer, "client_id": "enclave", "internal": true},
                "mappings": [{"idp_group": "staff", "project": "nope", "project_role": "member"}]}),
            "mappings.project",
        ),
        (
            json!({"kind": "oidc", "display_name": "Corp", "oidc": {"issuer": issuer, "client_id": "enclave", "internal": true, "color": "red"}}),
            "oidc",
        ),
    ] {
        let (st, b) = admin
            .call("PUT", "/api/v1/identity-sources/corp", Some(body))
            .await;
        assert_eq!(st, 400, "{b}");
        assert_eq!(b["details"]["field"], field, "{b}");
    }
    let (_, list) = admin.get("/api/v1/identity-sources").await;
    assert_eq!(list["sources"], json!([]));

    let src = put_source(
        &admin,
        "corp",
        json!({
            "kind": "oidc", "display_name": "Corp SSO",
            "oidc": {"issuer": issuer, "client_id": "enclave", "client_secret": CLIENT_SECRET,
                     "scopes": ["openid", "email", "profile", "groups"], "internal": true, "use_userinfo": true},
            "admission": {"mode": "groups", "groups": ["staff"]},
            "mappings": [{"idp_group": "data-scientists", "project": "fraud", "project_role": "member"}]
        }),
    )
    .await;
    assert_eq!(src["oidc"]["redirect_uri"], redirect);
    assert_eq!(src["oidc"]["client_secret_set"], true);
    assert!(!src.to_string().contains(CLIENT_SECRET), "{src}");
    let (st, t) = admin
        .post("/api/v1/identity-sources/corp/test", json!({}))
        .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["ok"], true, "{t}");

    // The login page offers the provider.
    let mut visitor = Browser::new(&s);
    let login = visitor.get(&s.url("/login")).await;
    assert!(
        login.body.contains("/auth/oidc/corp/start"),
        "{}",
        login.body
    );
    assert!(login.body.contains("Sign in with Corp SSO"));

    // Alice was provisioned through SCIM before her first sign-in (Okta style: userName is
    // her email, externalId the provider's subject): the sign-in finds that account.
    let (st, scim) = admin
        .post("/api/v1/identity-sources/corp/scim-token", json!({}))
        .await;
    assert_eq!(st, 200, "{scim}");
    let r = s
        .client()
        .post(scim["scim_url"].as_str().unwrap().to_string() + "/Users")
        .bearer_auth(scim["token"].as_str().unwrap())
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "userName": "Alice@example.test", "externalId": "alice", "active": true,
                   "emails": [{"value": "alice@example.test", "primary": true}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let alice_name = "alice-example.test";

    // Alice (staff, data-scientists) signs in and lands in `fraud` as a member.
    let mut alice = Browser::new(&s);
    let callback = alice.sign_in_at_idp(&s, "corp", "alice").await;
    let binding = alice.cookies["__Host-enclave_oidc"].clone();
    let done = alice.get(&callback).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/"));
    let me = alice.whoami(&s).await;
    assert_eq!(me["user"]["username"], alice_name);
    assert_eq!(me["user"]["email"], "alice@example.test");
    assert_eq!(
        member_role(&admin, "fraud", alice_name).await.as_deref(),
        Some("member")
    );
    let (st, link) = admin
        .get(&format!("/api/v1/users/{alice_name}/identity"))
        .await;
    assert_eq!(st, 200, "{link}");
    assert_eq!(
        (link["source"].as_str(), link["subject"].as_str()),
        (Some("corp"), Some("Alice@example.test"))
    );
    let (st, _) = admin.get("/api/v1/users/olivia/identity").await;
    assert_eq!(st, 404, "a local account has no linked identity");
    let sessions = audit(&admin, "session.create").await;
    assert!(
        sessions
            .iter()
            .any(|r| r["actor"] == alice_name && r["detail"]["method"] == "oidc"),
        "{sessions:?}"
    );

    // The same callback again (a replayed state and code) is refused, and so is a callback
    // carried to a browser that did not start the sign-in.
    alice.cookies.insert("__Host-enclave_oidc".into(), binding);
    let replay = alice.get(&callback).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    let mut other = Browser::new(&s);
    let callback2 = other.sign_in_at_idp(&s, "corp", "alice").await;
    let mut thief = Browser::new(&s);
    let stolen = thief.get(&callback2).await;
    assert_eq!(stolen.status, 401, "{}", stolen.body);
    assert!(
        stolen.body.contains("not started in this browser"),
        "{}",
        stolen.body
    );
    assert!(!thief.cookies.contains_key("__Host-enclave_session"));

    // Bob (contractors only) is authenticated by the provider but not admitted.
    let mut bob = Browser::new(&s);
    let cb = bob.sign_in_at_idp(&s, "corp", "bob").await;
    let refused = bob.get(&cb).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("Not authorized for this platform"),
        "{}",
        refused.body
    );
    assert!(!bob.cookies.contains_key("__Host-enclave_session"));
    let (st, last) = admin.get("/api/v1/identity-sources/corp/last-login").await;
    assert_eq!(st, 200, "{last}");
    assert_eq!(last["subject"], "bob");
    assert_eq!(last["admitted"], false);
    assert_eq!(last["claims"]["groups"], json!(["contractors"]));
    let (st, users) = admin.get("/api/v1/users/bob").await;
    assert_eq!(st, 404, "no account for someone not admitted: {users}");
    let fails = audit(&admin, "auth.login").await;
    assert!(
        fails.iter().any(|r| r["outcome"] == "failure"
            && r["detail"]["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with("not admitted")),
        "{fails:?}"
    );
    for reason in [
        "unknown, used or expired state",
        "callback in a browser that did not start the sign-in",
    ] {
        assert!(
            fails.iter().any(|r| r["detail"]["reason"] == reason),
            "{reason}: {fails:?}"
        );
    }

    // Admission by email domain: carol's address is at other.example (and not verified).
    put_source(
        &admin,
        "corp",
        json!({
            "kind": "oidc", "display_name": "Corp SSO",
            "oidc": {"issuer": issuer, "client_id": "enclave",
                     "scopes": ["openid", "email", "profile", "groups"], "internal": true, "use_userinfo": true},
            "admission": {"mode": "domains", "domains": ["example.test"]},
            "mappings": []
        }),
    )
    .await;
    let mut carol = Browser::new(&s);
    let cb = carol.sign_in_at_idp(&s, "corp", "carol").await;
    assert_eq!(carol.get(&cb).await.status, 403);
    // Alice signs in again: her mapping is gone, so is the membership it gave.
    let mut alice2 = Browser::new(&s);
    let cb = alice2.sign_in_at_idp(&s, "corp", "alice").await;
    assert_eq!(alice2.get(&cb).await.status, 303);
    assert_eq!(alice2.whoami(&s).await["user"]["username"], alice_name);
    assert_eq!(member_role(&admin, "fraud", alice_name).await, None);

    // The trail never holds the client secret.
    let (_, all) = admin.get("/api/v1/audit?limit=500").await;
    assert!(!all.to_string().contains(CLIENT_SECRET));
}

fn ldap_source(d: &slapd::Slapd) -> Value {
    json!({
        "kind": "ldap", "display_name": "Corp directory",
        "ldap": {
            "url": d.ldaps_url(), "ca_pem": d.ca_pem,
            "bind_dn": slapd::SERVICE_DN, "bind_password": slapd::SERVICE_PW,
            "user_base": "ou=people,dc=corp,dc=test",
            "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
            "group_base": "ou=groups,dc=corp,dc=test",
            "disabled_filter": "(employeeType=disabled)",
            "sync_interval_secs": 3600
        },
        "admission": {"mode": "groups", "groups": ["all-staff"]},
        "mappings": [{"idp_group": "analytics", "project": "fraud", "project_role": "member"}]
    })
}

async fn ldap_login(s: &Server, user: &str, password: &str) -> (u16, Value) {
    let r = s
        .client()
        .post(s.url("/api/v1/auth/token"))
        .json(&json!({"username": user, "password": password, "name": "t", "source": "corp-ldap"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn ldap_sign_in_with_nested_groups_sync_and_refusals() {
    let mut dir = slapd::Slapd::start().unwrap();
    let s = Server::start(crate::BIN);
    let (admin, _owner) = crate::common::fraud_project(&s, None).await;
    // Plain ldap:// without starttls is refused unless asked for.
    let mut plain = ldap_source(&dir);
    plain["ldap"]["url"] = json!(dir.ldap_url());
    let (st, b) = admin
        .call("PUT", "/api/v1/identity-sources/corp-ldap", Some(plain))
        .await;
    assert_eq!(
        (st, b["details"]["field"].as_str()),
        (400, Some("ldap.url")),
        "{b}"
    );
    // The admin connects the directory from the console: settings as JSON, the bind password
    // in its own field.
    let web = crate::console::Web::login(&s, "admin").await;
    let mut settings = ldap_source(&dir);
    settings["ldap"]
        .as_object_mut()
        .unwrap()
        .remove("bind_password");
    let (st, to, page) = web
        .post(
            "/admin/identity",
            &[
                ("name", "corp-ldap"),
                ("settings", &settings.to_string()),
                ("secret", slapd::SERVICE_PW),
            ],
        )
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/identity/corp-ldap")),
        "{page}"
    );
    let (st, page) = web.get("/admin/identity").await;
    assert_eq!(st, 200);
    assert!(page.contains("groups: all-staff"), "{page}");
    let (_, to, page) = web
        .post(
            "/admin/identity/corp-ldap/test",
            &[("username", "alice"), ("password", "alice-pw-1")],
        )
        .await;
    assert_eq!(to, None);
    assert!(
        page.contains("groups: ") && page.contains("all-staff"),
        "{page}"
    );
    assert!(page.contains("admitted by the admission rule"), "{page}");
    let (_, src) = admin.get("/api/v1/identity-sources/corp-ldap").await;
    assert_eq!(src["ldap"]["bind_password_set"], true);
    assert!(!src.to_string().contains(slapd::SERVICE_PW));

    // "Try this user": alice's nested groups and the admission verdict.
    let (st, t) = admin
        .post(
            "/api/v1/identity-sources/corp-ldap/test",
            json!({"username": "alice", "password": "alice-pw-1"}),
        )
        .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(t["admitted"], true, "{t}");
    let groups = t["identity"]["groups"].as_array().unwrap();
    for g in ["data-scientists", "analytics", "all-staff"] {
        assert!(groups.contains(&json!(g)), "{t}");
    }

    // Alice signs in with her directory password and lands in `fraud` through `analytics`.
    let (st, tok) = ldap_login(&s, "alice", "alice-pw-1").await;
    assert_eq!(st, 201, "{tok}");
    let alice = Api {
        client: s.client(),
        base: s.base.clone(),
        token: tok["token"].as_str().unwrap().to_string(),
    };
    let (st, me) = alice.get("/api/v1/whoami").await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["user"]["username"], "alice");
    assert_eq!(
        member_role(&admin, "fraud", "alice").await.as_deref(),
        Some("member")
    );

    // An LDAP user logs the CLI in through the directory.
    let ca = s.cert_path();
    let out = crate::common::ok(&crate::common::run(
        s.cli("cli-alice"),
        &[
            "login",
            "--server",
            &s.base,
            "--username",
            "alice",
            "--password-stdin",
            "--ca",
            ca.to_str().unwrap(),
            "--source",
            "corp-ldap",
        ],
        Some("alice-pw-1\n"),
    ));
    assert!(out.contains("alice"), "{out}");
    let me = crate::common::ok(&crate::common::run(s.cli("cli-alice"), &["whoami"], None));
    assert!(me.contains("alice"), "{me}");

    // The CLI lists the source and tries a user (password on stdin).
    crate::common::login_cli(&s, "cli-admin", "admin");
    let out = crate::common::ok(&crate::common::run(
        s.cli("cli-admin"),
        &["idp", "list"],
        None,
    ));
    assert!(
        out.contains("corp-ldap") && out.contains("groups: all-staff"),
        "{out}"
    );
    let out = crate::common::ok(&crate::common::run(
        s.cli("cli-admin"),
        &["idp", "test", "corp-ldap", "--username", "alice"],
        Some("alice-pw-1\n"),
    ));
    assert!(
        out.contains("all-staff") && !out.contains("alice-pw-1"),
        "{out}"
    );
    let bad = crate::common::run(
        s.cli("cli-admin"),
        &["idp", "test", "corp-ldap", "--username", "alice"],
        Some("wrong\n"),
    );
    assert!(!bad.status.success(), "a failed test exits non-zero");

    // The console's login page offers the directory, and signs in through it.
    let (_, login) = (
        200,
        s.client()
            .get(s.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(login.contains("<option value=\"corp-ldap\""), "{login}");
    let r = s
        .client()
        .post(s.url("/login"))
        .form(&[
            ("username", "alice"),
            ("password", "alice-pw-1"),
            ("source", "corp-ldap"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers().get("set-cookie").is_some());

    // Refusals: not admitted, disabled, wrong and empty passwords, filter injection.
    let (st, b) = ldap_login(&s, "bob", "bob-pw-1").await;
    assert_eq!((st, b["code"].as_str()), (403, Some("not_admitted")), "{b}");
    for (user, pw) in [
        ("dave", "dave-pw-1"),
        ("alice", "wrong"),
        ("alice", ""),
        ("*", "alice-pw-1"),
        ("alice)(uid=*", "alice-pw-1"),
        ("*)(|(uid=*", "x"),
    ] {
        let (st, b) = ldap_login(&s, user, pw).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (401, Some("invalid_credentials")),
            "{user}: {b}"
        );
    }
    let fails = audit(&admin, "auth.login").await;
    assert!(
        fails
            .iter()
            .any(|r| r["detail"]["reason"] == "account disabled in the directory"),
        "{fails:?}"
    );

    // The directory removes alice; a sync deactivates her and her token stops working.
    dir.admin("ldapdelete", &["uid=alice,ou=people,dc=corp,dc=test"])
        .unwrap();
    let (st, r) = admin
        .post("/api/v1/identity-sources/corp-ldap/sync", json!({}))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["checked"].as_u64(), r["deactivated"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    let (st, _) = alice.get("/api/v1/whoami").await;
    assert_eq!(st, 401);
    let deact = audit(&admin, "user.deactivate").await;
    assert!(
        deact
            .iter()
            .any(|r| r["detail"]["by"] == "ldap-sync:corp-ldap"),
        "{deact:?}"
    );

    // A directory that is down is a clear error, never a weaker fallback.
    dir.stop();
    let (st, b) = ldap_login(&s, "bob", "bob-pw-1").await;
    assert_eq!((st, b["code"].as_str()), (503, Some("unavailable")), "{b}");
}

#[tokio::test]
async fn a_deactivated_accounts_running_job_ends_within_the_bound() {
    let s = Server::start_with(
        crate::BIN,
        Options {
            env: vec![("ENCLAVE_ACCESS_DEPROVISION_WITHIN".into(), "10s".into())],
            ..Default::default()
        },
    );
    let (admin, owner) = crate::common::fraud_project(&s, None).await;
    let victor = s.login("victor", enclave_testkit::PASSWORD).await;
    let (st, job) = owner
        .post(
            "/api/v1/projects/fraud/jobs",
            json!({"command": ["sleep", "600"]}),
        )
        .await;
    assert_eq!(st, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/projects/fraud/jobs/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while owner.get(&path).await.1["state"] != "running" {
        assert!(Instant::now() < deadline, "the job did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (st, b) = admin
        .call(
            "PATCH",
            "/api/v1/users/olivia",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, _) = owner.get("/api/v1/whoami").await;
    assert_eq!(st, 401, "her token ends at once");
    let ended = Instant::now();
    loop {
        let (_, j) = victor.get(&path).await;
        if j["state"] == "cancelled" {
            break;
        }
        assert!(
            ended.elapsed() < Duration::from_secs(10),
            "the job still runs {:?} after the deactivation: {j}",
            ended.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cancels = audit(&admin, "job.cancel").await;
    assert!(
        cancels.iter().any(|r| r["actor"] == "system"
            && r["detail"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("deactivated")),
        "{cancels:?}"
    );
}
