//! Secrets and keys in the web console: the add form never shows a value again, the reveal
//! form is the only page that carries one (no-store, audited), viewers see names only, bad
//! input changes nothing, and project and master keys rotate from their pages.

use crate::BIN;
use enclave_testkit::{Server, PASSWORD};
use serde_json::json;

const VALUE: &str = "pg-Console-Otter-Marmalade-9921";
const VALUE2: &str = "pg-Console-Heron-Quince-3385";

/// A signed-in console visitor who keeps every page it was shown.
struct Browser<'a> {
    s: &'a Server,
    c: reqwest::Client,
    cookie: String,
    csrf: String,
    seen: std::cell::RefCell<Vec<(String, String)>>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    cache_control: Option<String>,
    page: String,
}

impl<'a> Browser<'a> {
    async fn login(s: &'a Server, username: &str) -> Browser<'a> {
        let c = s.client();
        let r = c
            .post(s.url("/login"))
            .form(&[("username", username), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "console login of {username}");
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut b = Browser {
            s,
            c,
            cookie,
            csrf: String::new(),
            seen: Default::default(),
        };
        let (st, page) = b.get("/account").await;
        assert_eq!(st, 200, "{page}");
        let marker = "name=\"csrf\" value=\"";
        let start = page.find(marker).unwrap() + marker.len();
        b.csrf = page[start..].split('"').next().unwrap().to_string();
        b
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .c
            .get(self.s.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        let page = r.text().await.unwrap();
        self.seen
            .borrow_mut()
            .push((format!("GET {path}"), page.clone()));
        (st, page)
    }

    /// Posts a form; `csrf: false` leaves the token out.
    async fn send(&self, path: &str, fields: &[(&str, &str)], csrf: bool) -> Answer {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if csrf {
            form.push(("csrf", &self.csrf));
        }
        let r = self
            .c
            .post(self.s.url(path))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|l| l.to_str().unwrap().to_string())
        };
        let (location, cache_control) = (header("location"), header("cache-control"));
        let a = Answer {
            status: r.status().as_u16(),
            location,
            cache_control,
            page: r.text().await.unwrap(),
        };
        self.seen
            .borrow_mut()
            .push((format!("POST {path}"), a.page.clone()));
        a
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.send(path, fields, true).await
    }

    /// Every page shown so far whose request does not match `except` and contains `needle`.
    fn pages_with(&self, needle: &str, except: &str) -> Vec<String> {
        self.seen
            .borrow()
            .iter()
            .filter(|(what, page)| !what.contains(except) && page.contains(needle))
            .map(|(what, _)| what.clone())
            .collect()
    }
}

/// An admin; `olivia` owns project `fraud`, `victor` views it.
async fn setup(s: &Server) -> enclave_testkit::Api {
    let admin = s.admin().await;
    admin.user(s, "olivia").await;
    admin.user(s, "victor").await;
    let (st, b) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "fraud", "owner": "olivia"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = admin
        .call(
            "PUT",
            "/api/v1/projects/fraud/members/victor",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    admin
}

/// `(action, outcome)` of every audit record of `actor`.
async fn audit_of(s: &Server, actor: &str) -> Vec<(String, String)> {
    let store = enclave_store::Store::open(&s.data_dir.join("enclave.db"))
        .await
        .unwrap();
    let records = store.audit_after(0, 10_000).await.unwrap();
    store.close().await;
    records
        .into_iter()
        .filter(|(_, r)| r.actor == actor)
        .map(|(_, r)| (r.action, format!("{:?}", r.outcome).to_lowercase()))
        .collect()
}

/// The project's secrets as the API lists them: `(name, current_version)`.
async fn listed(api: &enclave_testkit::Api) -> Vec<(String, u64)> {
    let (st, b) = api.get("/api/v1/projects/fraud/secrets").await;
    assert_eq!(st, 200, "{b}");
    let items = b.get("items").unwrap_or(&b).as_array().unwrap().clone();
    items
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["current_version"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn console_secret_values_appear_only_on_the_reveal_page() {
    let s = Server::start(BIN);
    let _admin = setup(&s).await;
    let owner = s.login("olivia", PASSWORD).await;
    let olivia = Browser::login(&s, "olivia").await;

    let (st, project) = olivia.get("/projects/fraud").await;
    assert_eq!(st, 200);
    assert!(project.contains("href=\"/projects/fraud/secrets\""));
    let (st, page) = olivia.get("/projects/fraud/secrets").await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("holds no secrets yet"));
    assert!(page.contains("action=\"/projects/fraud/secrets\""));
    assert!(page.contains("autocomplete=\"off\""));
    assert!(page.contains("href=\"/projects/fraud/keys\""));

    // Added through the form: listed with its metadata, never its value.
    let a = olivia
        .post(
            "/projects/fraud/secrets",
            &[
                ("name", "DB_PASSWORD"),
                ("description", "warehouse login"),
                ("value", VALUE),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.page);
    let to = a.location.unwrap();
    assert_eq!(to, "/projects/fraud/secrets/DB_PASSWORD?done=secret-saved");
    let (st, one) = olivia.get(&to).await;
    assert_eq!(st, 200);
    assert!(one.contains("not shown again"));
    assert!(one.contains("Reveal value"));
    assert!(one.contains("v1"));
    let (_, page) = olivia.get("/projects/fraud/secrets").await;
    assert!(page.contains("DB_PASSWORD") && page.contains("warehouse login"));
    assert!(page.contains("olivia"));

    // A new version through the secret's own form.
    let a = olivia
        .post(
            "/projects/fraud/secrets",
            &[
                ("name", "DB_PASSWORD"),
                ("description", ""),
                ("value", VALUE2),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.page);
    let (_, one) = olivia.get("/projects/fraud/secrets/DB_PASSWORD").await;
    assert!(
        one.contains("v2") && one.contains("warehouse login"),
        "{one}"
    );
    assert_eq!(listed(&owner).await, vec![("DB_PASSWORD".to_string(), 2)]);

    // The plan check: versions and targets, no values.
    let a = olivia
        .post(
            "/projects/fraud/secret-plan",
            &[(
                "map",
                "DB_PASSWORD=env:PGPASSWORD\r\n\r\nDB_PASSWORD=file:db/pw\r\n",
            )],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.page);
    assert!(a.page.contains("env:PGPASSWORD"));
    assert!(a.page.contains("file:/run/secrets/db/pw"));
    assert!(a.page.contains("v2"));
    let a = olivia
        .post("/projects/fraud/secret-plan", &[("map", "NOPE=env:NOPE")])
        .await;
    assert_eq!(a.status, 400, "{}", a.page);
    assert!(a.page.contains("NOPE"), "the plan is kept: {}", a.page);
    let a = olivia
        .post(
            "/projects/fraud/secret-plan",
            &[("map", "DB_PASSWORD=env:PATH")],
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(
        a.page.contains("line 1") && a.page.contains("reserved"),
        "{}",
        a.page
    );

    // Reveal is a CSRF-checked POST, answered once with no-store.
    let (st, _) = olivia
        .get("/projects/fraud/secrets/DB_PASSWORD/reveal")
        .await;
    assert_ne!(st, 200, "a GET (a prefetch) reveals nothing");
    let a = olivia
        .send("/projects/fraud/secrets/DB_PASSWORD/reveal", &[], false)
        .await;
    assert_eq!(a.status, 403);
    assert!(!a.page.contains(VALUE2));
    let a = olivia
        .post(
            "/projects/fraud/secrets/DB_PASSWORD/reveal",
            &[("version", "1")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.page);
    assert!(a.page.contains(VALUE) && !a.page.contains(VALUE2));
    assert_eq!(a.cache_control.as_deref(), Some("no-store"));
    let a = olivia
        .post(
            "/projects/fraud/secrets/DB_PASSWORD/reveal",
            &[("version", "")],
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.page.contains(VALUE2));
    let reads = audit_of(&s, "olivia")
        .await
        .into_iter()
        .filter(|(action, outcome)| action == "secret.read_value" && outcome == "success")
        .count();
    assert_eq!(reads, 2, "every reveal is audited");

    // Bad input: a clear message, the value not echoed, nothing changed.
    let big = "x".repeat(64 * 1024 + 1);
    for (name, value, message) in [
        (
            "1bad name",
            "Fresh-Value-Tortoise-1",
            "a secret name must be",
        ),
        ("EMPTY_ONE", "", "must not be empty"),
        ("HUGE", big.as_str(), "the limit is 65536 bytes"),
    ] {
        let a = olivia
            .post(
                "/projects/fraud/secrets",
                &[("name", name), ("description", "kept"), ("value", value)],
            )
            .await;
        assert_eq!(a.status, 400, "{name}: {}", a.page);
        assert!(a.page.contains(message), "{name}: {}", a.page);
        assert!(a.page.contains("value=\"kept\""), "the description is kept");
        if !value.is_empty() {
            assert!(!a.page.contains(value), "{name}: the value is not echoed");
        }
    }
    assert_eq!(listed(&owner).await, vec![("DB_PASSWORD".to_string(), 2)]);

    // Deletion needs the name typed again.
    let a = olivia
        .post(
            "/projects/fraud/secrets/DB_PASSWORD/delete",
            &[("confirm", "db_password")],
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.page.contains("type its name exactly"));
    assert_eq!(listed(&owner).await.len(), 1);
    let a = olivia
        .post(
            "/projects/fraud/secrets/DB_PASSWORD/delete",
            &[("confirm", "DB_PASSWORD")],
        )
        .await;
    assert_eq!(a.status, 303);
    assert_eq!(
        a.location.as_deref(),
        Some("/projects/fraud/secrets?done=secret-deleted")
    );
    assert!(listed(&owner).await.is_empty());

    // No page but the reveal answers ever carried a value.
    for v in [VALUE, VALUE2] {
        let hits = olivia.pages_with(v, "/reveal");
        assert!(hits.is_empty(), "value shown on {hits:?}");
    }
}

#[tokio::test]
async fn console_viewers_see_names_but_cannot_reveal() {
    let s = Server::start(BIN);
    let _admin = setup(&s).await;
    let owner = s.login("olivia", PASSWORD).await;
    let olivia = Browser::login(&s, "olivia").await;
    let a = olivia
        .post(
            "/projects/fraud/secrets",
            &[("name", "API_TOKEN"), ("description", ""), ("value", VALUE)],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.page);

    let victor = Browser::login(&s, "victor").await;
    let (st, page) = victor.get("/projects/fraud/secrets").await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("API_TOKEN"));
    assert!(
        !page.contains("action=\"/projects/fraud/secrets\""),
        "no add form"
    );
    assert!(!page.contains("/keys"), "no keys link for a viewer");
    let (st, one) = victor.get("/projects/fraud/secrets/API_TOKEN").await;
    assert_eq!(st, 200);
    assert!(!one.contains("Reveal value") && !one.contains("/reveal"));
    assert!(!one.contains("/delete"));

    // Forged forms are refused by the use case and audited.
    let a = victor
        .post(
            "/projects/fraud/secrets/API_TOKEN/reveal",
            &[("version", "")],
        )
        .await;
    assert!(a.status == 403 || a.status == 404, "{}", a.status);
    assert!(!a.page.contains(VALUE));
    let a = victor
        .post(
            "/projects/fraud/secrets",
            &[("name", "API_TOKEN"), ("description", ""), ("value", "x")],
        )
        .await;
    assert!(a.status == 403 || a.status == 404, "{}", a.status);
    let a = victor
        .post(
            "/projects/fraud/secrets/API_TOKEN/delete",
            &[("confirm", "API_TOKEN")],
        )
        .await;
    assert!(a.status == 403 || a.status == 404, "{}", a.status);
    let (st, _) = victor.get("/projects/fraud/keys").await;
    assert!(st == 403 || st == 404, "{st}");
    assert_eq!(listed(&owner).await, vec![("API_TOKEN".to_string(), 1)]);
    let denied: Vec<String> = audit_of(&s, "victor")
        .await
        .into_iter()
        .filter(|(_, outcome)| outcome == "denied")
        .map(|(action, _)| action)
        .collect();
    for action in [
        "secret.read_value",
        "secret.write",
        "secret.delete",
        "key.read",
    ] {
        assert!(
            denied.iter().any(|a| a == action),
            "{action} denied and audited: {denied:?}"
        );
    }
    assert!(victor.pages_with(VALUE, "\u{0}").is_empty());

    // The platform admin manages keys but holds no secret.read_value.
    let root = Browser::login(&s, "admin").await;
    let (_, one) = root.get("/projects/fraud/secrets/API_TOKEN").await;
    assert!(!one.contains("Reveal value"));
}

#[tokio::test]
async fn console_rotates_project_and_master_keys() {
    let s = Server::start(BIN);
    let _admin = setup(&s).await;
    let olivia = Browser::login(&s, "olivia").await;
    let a = olivia
        .post(
            "/projects/fraud/secrets",
            &[
                ("name", "DB_PASSWORD"),
                ("description", ""),
                ("value", VALUE),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.page);
    let (st, keys) = olivia.get("/projects/fraud/keys").await;
    assert_eq!(st, 200, "{keys}");
    assert!(keys.contains("v1") && keys.contains("active"));
    assert!(keys.contains("Rotate project key"));

    let a = olivia.post("/projects/fraud/keys/rotate", &[]).await;
    assert_eq!(a.status, 303, "{}", a.page);
    assert_eq!(
        a.location.as_deref(),
        Some("/projects/fraud/keys?done=key-rotated")
    );
    // Two versions; once re-encryption is done the old one can be retired.
    let mut keys = String::new();
    for _ in 0..100 {
        keys = olivia.get("/projects/fraud/keys").await.1;
        if keys.contains("/keys/1/retire") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(keys.contains("v2") && keys.contains("v1"), "{keys}");
    assert!(keys.contains("decrypt_only"), "{keys}");
    assert!(keys.contains("/keys/1/retire"), "{keys}");
    let a = olivia.post("/projects/fraud/keys/2/retire", &[]).await;
    assert_eq!(a.status, 400, "the active version cannot be retired");
    assert!(
        a.page.contains("still seals 1 secret versions"),
        "{}",
        a.page
    );
    let a = olivia.post("/projects/fraud/keys/1/retire", &[]).await;
    assert_eq!(a.status, 303, "{}", a.page);
    let (_, keys) = olivia.get("/projects/fraud/keys").await;
    assert!(keys.contains("retired"));
    // The value still opens under the new key.
    let a = olivia
        .post("/projects/fraud/secrets/DB_PASSWORD/reveal", &[])
        .await;
    assert!(a.page.contains(VALUE));

    // The master key: admins only, in the nav, rotation needs the box ticked.
    let (_, dash) = olivia.get("/").await;
    assert!(!dash.contains("href=\"/admin/keys\""));
    let (st, _) = olivia.get("/admin/keys").await;
    assert_eq!(st, 403);
    let root = Browser::login(&s, "admin").await;
    let (_, dash) = root.get("/").await;
    assert!(dash.contains("href=\"/admin/keys\""));
    let (st, master) = root.get("/admin/keys").await;
    assert_eq!(st, 200, "{master}");
    assert!(master.contains("Rotate master key"));
    let current = |page: &str| {
        let at = page.find("Current key</dt><dd class=\"mono\">").unwrap();
        page[at..]
            .split('>')
            .nth(2)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string()
    };
    let before = current(&master);
    let a = root.post("/admin/keys/rotate", &[]).await;
    assert_eq!(a.status, 400);
    assert!(a.page.contains("tick the confirmation box"));
    assert_eq!(current(&root.get("/admin/keys").await.1), before);
    let a = root.post("/admin/keys/rotate", &[("confirm", "yes")]).await;
    assert_eq!(a.status, 303, "{}", a.page);
    let (_, master) = root.get(a.location.as_deref().unwrap()).await;
    assert_ne!(current(&master), before);
    assert!(master.contains("Master key rotated"));
    let a = olivia
        .post("/admin/keys/rotate", &[("confirm", "yes")])
        .await;
    assert_eq!(a.status, 403);
    let a = olivia
        .post("/projects/fraud/secrets/DB_PASSWORD/reveal", &[])
        .await;
    assert!(
        a.page.contains(VALUE),
        "values open after the master key rotated"
    );
}
