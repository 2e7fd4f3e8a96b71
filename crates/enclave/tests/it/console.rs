//! The web console over HTTP: login form, session cookie, pages, CSRF on every form.

use crate::BIN;
use enclave_testkit::{Server, PASSWORD};
use serde_json::json;

fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("page has a csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn console_login_pages_and_csrf() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    admin
        .post(
            "/api/v1/projects",
            json!({"name": "credit-risk", "description": "PD models"}),
        )
        .await;
    let c = s.client();
    // Without a session every page redirects to the login form.
    for page in [
        "/",
        "/tokens",
        "/account",
        "/admin/users",
        "/admin/groups",
        "/projects/credit-risk",
    ] {
        let r = c.get(s.url(page)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{page}");
        assert_eq!(r.headers()["location"], "/login");
    }
    let r = c.get(s.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<form") && !html.contains("<script>"),
        "no inline script"
    );
    // Wrong password re-renders the form.
    let r = c
        .post(s.url("/login"))
        .form(&[("username", "admin"), ("password", "nope-nope-nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Login sets the session cookie and redirects.
    let r = c
        .post(s.url("/login"))
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("__Host-enclave_session="));
    let page = |path: &'static str| {
        let c = c.clone();
        let url = s.url(path);
        let cookie = cookie.clone();
        async move {
            let r = c.get(url).header("cookie", cookie).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (st, dash) = page("/").await;
    assert_eq!(st, 200);
    assert!(dash.contains("credit-risk"), "dashboard lists the project");
    let (st, proj) = page("/projects/credit-risk").await;
    assert_eq!(st, 200);
    assert!(proj.contains("admin") && proj.contains("owner"));
    let (st, users) = page("/admin/users").await;
    assert_eq!(st, 200);
    assert!(users.contains("admin"));
    let (st, _) = page("/admin/groups").await;
    assert_eq!(st, 200);
    let (st, tokens) = page("/tokens").await;
    assert_eq!(st, 200);
    let csrf = csrf_from(&tokens);
    // A form post without the CSRF field is refused and creates nothing.
    let r = c
        .post(s.url("/admin/groups"))
        .header("cookie", &cookie)
        .form(&[("name", "web-team"), ("description", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(s.url("/admin/groups"))
        .header("cookie", &cookie)
        .form(&[
            ("name", "web-team"),
            ("description", ""),
            ("csrf", "forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(admin.get("/api/v1/groups/web-team").await.0, 404);
    // With it, the group is created.
    let r = c
        .post(s.url("/admin/groups"))
        .header("cookie", &cookie)
        .form(&[
            ("name", "web-team"),
            ("description", "Web"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status() == 303 || r.status() == 200, "{}", r.status());
    assert_eq!(admin.get("/api/v1/groups/web-team").await.0, 200);
    // A token created in the console is shown once.
    let r = c
        .post(s.url("/tokens"))
        .header("cookie", &cookie)
        .form(&[
            ("name", "notebook"),
            ("scope", "read"),
            ("projects", ""),
            ("expires_in_days", ""),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let shown = r.text().await.unwrap();
    assert!(shown.contains("enc_pat_"), "token shown once");
    let (_, list) = page("/tokens").await;
    assert!(
        list.contains("notebook") && !list.contains("enc_pat_"),
        "never shown again"
    );
    // A non-admin gets 403 on admin pages.
    admin.user(&s, "nina").await;
    let r = c
        .post(s.url("/login"))
        .form(&[("username", "nina"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let nina = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = c
        .get(s.url("/admin/users"))
        .header("cookie", &nina)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(s.url("/projects/credit-risk"))
        .header("cookie", &nina)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Logout ends the session.
    let r = c
        .post(s.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c
        .get(s.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // Stylesheet is served from the same origin.
    let r = c.get(s.url("/static/app.css")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

/// Logs in through the console form; returns the session cookie.
async fn console_login(s: &Server, c: &reqwest::Client, username: &str, password: &str) -> String {
    let r = c
        .post(s.url("/login"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "console login of {username}");
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Whether a password logs in (API password login).
async fn password_works(s: &Server, username: &str, password: &str) -> bool {
    let r = s
        .client()
        .post(s.url("/api/v1/auth/token"))
        .json(&json!({"username": username, "password": password, "name": "check"}))
        .send()
        .await
        .unwrap();
    r.status() == 201
}

#[tokio::test]
async fn console_edits_and_deletes_through_forms() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    admin.user(&s, "bob").await;
    admin.user(&s, "nina").await;
    let (st, _) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "churn", "description": "old"}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "keep-me", "description": ""}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = admin
        .post(
            "/api/v1/groups",
            json!({"name": "quants", "description": "old"}),
        )
        .await;
    assert_eq!(st, 201);
    let c = s.client();
    let cookie = console_login(&s, &c, "admin", PASSWORD).await;
    let get = |path: String, cookie: String| {
        let c = c.clone();
        let url = s.url(&path);
        async move {
            let r = c.get(url).header("cookie", cookie).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Posts a form as the admin; `None` leaves the token out.
    let post =
        |path: &'static str, fields: Vec<(&'static str, &'static str)>, csrf: Option<String>| {
            let c = c.clone();
            let url = s.url(path);
            let cookie = cookie.clone();
            async move {
                let mut form: Vec<(&str, String)> = fields
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string()))
                    .collect();
                if let Some(t) = csrf {
                    form.push(("csrf", t));
                }
                let r = c
                    .post(url)
                    .header("cookie", cookie)
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                let location = r
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_string());
                (r.status().as_u16(), location, r.text().await.unwrap())
            }
        };
    let (st, users) = get("/admin/users".into(), cookie.clone()).await;
    assert_eq!(st, 200);
    for action in ["profile", "password", "admin", "delete"] {
        assert!(
            users.contains(&format!("action=\"/admin/users/bob/{action}\"")),
            "users page has the {action} form"
        );
    }
    let csrf = Some(csrf_from(&users));
    let bob = || async { admin.get("/api/v1/users/bob").await.1 };

    // Profile: refused without the token, saved with it.
    let fields = vec![
        ("display_name", "Bob Builder"),
        ("email", "bob@example.org"),
    ];
    let (st, _, _) = post("/admin/users/bob/profile", fields.clone(), None).await;
    assert_eq!(st, 403);
    assert_eq!(bob().await["display_name"], "");
    let (st, to, _) = post("/admin/users/bob/profile", fields, csrf.clone()).await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/users?done=user-saved"))
    );
    let u = bob().await;
    assert_eq!(u["display_name"], "Bob Builder");
    assert_eq!(u["email"], "bob@example.org");
    let (_, users) = get("/admin/users?done=user-saved".into(), cookie.clone()).await;
    assert!(users.contains("User details saved.") && users.contains("Bob Builder"));

    // Platform admin: refused without the token, granted and removed with it.
    let (st, _, _) = post(
        "/admin/users/bob/admin",
        vec![("platform_admin", "true")],
        None,
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(bob().await["platform_admin"], false);
    let (st, to, _) = post(
        "/admin/users/bob/admin",
        vec![("platform_admin", "true")],
        csrf.clone(),
    )
    .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/users?done=admin-granted"))
    );
    assert_eq!(bob().await["platform_admin"], true);
    let (st, _, _) = post(
        "/admin/users/bob/admin",
        vec![("platform_admin", "false")],
        csrf.clone(),
    )
    .await;
    assert_eq!(st, 303);
    assert_eq!(bob().await["platform_admin"], false);
    let (st, _, _) = post(
        "/admin/users/bob/admin",
        vec![("platform_admin", "maybe")],
        csrf.clone(),
    )
    .await;
    assert_eq!(st, 400, "the value must be true or false");
    // The last admin cannot demote themselves; the error is shown on the users page.
    let (st, _, page) = post(
        "/admin/users/admin/admin",
        vec![("platform_admin", "false")],
        csrf.clone(),
    )
    .await;
    assert_eq!(st, 400);
    assert!(page.contains("last enabled platform admin"));

    // Password reset: refused without the token, a weak or mistyped one is refused, the
    // old password keeps working; a good one replaces it.
    const NEW: &str = "Copper-Meadow-Falcon-271";
    let (st, _, _) = post(
        "/admin/users/bob/password",
        vec![("new", NEW), ("repeat", NEW)],
        None,
    )
    .await;
    assert_eq!(st, 403);
    let (st, _, page) = post(
        "/admin/users/bob/password",
        vec![("new", "short"), ("repeat", "short")],
        csrf.clone(),
    )
    .await;
    assert_eq!(st, 400);
    assert!(page.contains("flash-error"), "the error is shown");
    let (st, _, page) = post(
        "/admin/users/bob/password",
        vec![("new", NEW), ("repeat", "Copper-Meadow-Falcon-272")],
        csrf.clone(),
    )
    .await;
    assert_eq!(st, 400);
    assert!(page.contains("the two passwords differ"));
    assert!(
        password_works(&s, "bob", PASSWORD).await,
        "old password kept"
    );
    let (st, to, _) = post(
        "/admin/users/bob/password",
        vec![("new", NEW), ("repeat", NEW)],
        csrf.clone(),
    )
    .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/users?done=password-reset"))
    );
    assert!(password_works(&s, "bob", NEW).await, "new password works");
    assert!(
        !password_works(&s, "bob", PASSWORD).await,
        "old password gone"
    );

    // Delete: refused without the token; admins cannot delete themselves; then bob is gone.
    let (st, _, _) = post("/admin/users/bob/delete", vec![], None).await;
    assert_eq!(st, 403);
    assert_eq!(admin.get("/api/v1/users/bob").await.0, 200);
    let (st, _, page) = post("/admin/users/admin/delete", vec![], csrf.clone()).await;
    assert_eq!(st, 400);
    assert!(page.contains("cannot delete your own account"));
    let (st, to, _) = post("/admin/users/bob/delete", vec![], csrf.clone()).await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/users?done=user-deleted"))
    );
    assert_eq!(admin.get("/api/v1/users/bob").await.0, 404);

    // Group description.
    let (st, _, _) = post(
        "/admin/groups/quants/description",
        vec![("description", "Quant team")],
        None,
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(
        admin.get("/api/v1/groups/quants").await.1["description"],
        "old"
    );
    let (st, to, _) = post(
        "/admin/groups/quants/description",
        vec![("description", "Quant team")],
        csrf.clone(),
    )
    .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/groups/quants?done=group-saved"))
    );
    assert_eq!(
        admin.get("/api/v1/groups/quants").await.1["description"],
        "Quant team"
    );

    // Project description and deletion; the forms are shown to owners and admins only.
    let (st, _) = admin
        .call(
            "PUT",
            "/api/v1/projects/churn/members/nina",
            Some(json!({"role": "member"})),
        )
        .await;
    assert!(st == 200 || st == 204, "{st}");
    let nina = console_login(&s, &c, "nina", PASSWORD).await;
    let (st, page) = get("/projects/churn".into(), nina).await;
    assert_eq!(st, 200);
    assert!(page.contains("churn") && !page.contains("/projects/churn/delete"));
    let (_, page) = get("/projects/churn".into(), cookie.clone()).await;
    assert!(page.contains("action=\"/projects/churn/delete\""));
    assert!(page.contains("action=\"/projects/churn/description\""));
    let (st, _, _) = post(
        "/projects/churn/description",
        vec![("description", "Churn models")],
        None,
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(
        admin.get("/api/v1/projects/churn").await.1["description"],
        "old"
    );
    let (st, to, _) = post(
        "/projects/churn/description",
        vec![("description", "Churn models")],
        csrf.clone(),
    )
    .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/projects/churn?done=project-saved"))
    );
    assert_eq!(
        admin.get("/api/v1/projects/churn").await.1["description"],
        "Churn models"
    );
    let (st, _, _) = post("/projects/churn/delete", vec![("confirm", "churn")], None).await;
    assert_eq!(st, 403);
    assert_eq!(admin.get("/api/v1/projects/churn").await.0, 200);
    for wrong in ["", "chur", "keep-me", "CHURN"] {
        let (st, _, page) = post(
            "/projects/churn/delete",
            vec![("confirm", wrong)],
            csrf.clone(),
        )
        .await;
        assert_eq!(st, 400, "confirm {wrong:?}");
        assert!(page.contains("type its name exactly"));
        assert_eq!(admin.get("/api/v1/projects/churn").await.0, 200);
    }
    let (st, to, _) = post(
        "/projects/churn/delete",
        vec![("confirm", "churn")],
        csrf.clone(),
    )
    .await;
    assert_eq!((st, to.as_deref()), (303, Some("/?done=project-deleted")));
    assert_eq!(admin.get("/api/v1/projects/churn").await.0, 404);
    assert_eq!(admin.get("/api/v1/projects/keep-me").await.0, 200);

    // The account page shows the person and the session, read-only.
    let (st, page) = get("/account".into(), cookie.clone()).await;
    assert_eq!(st, 200);
    assert!(page.contains("Personal details") && page.contains("This session"));
    assert!(page.contains("Signed in as</dt><dd>admin"));
    assert!(page.contains("platform admin"));
    assert!(!page.contains("action=\"/admin/users/admin/profile\""));
}

/// A signed-in console visitor: cookie and CSRF token of one session.
pub(crate) struct Web<'a> {
    s: &'a Server,
    c: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl<'a> Web<'a> {
    pub(crate) async fn login(s: &'a Server, username: &str) -> Web<'a> {
        let c = s.client();
        let cookie = console_login(s, &c, username, PASSWORD).await;
        let mut web = Web {
            s,
            c,
            cookie,
            csrf: String::new(),
        };
        let (st, page) = web.get("/account").await;
        assert_eq!(st, 200, "{page}");
        web.csrf = csrf_from(&page);
        web
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .c
            .get(self.s.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token: status, redirect target and page.
    pub(crate) async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.csrf));
        let r = self
            .c
            .post(self.s.url(path))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (r.status().as_u16(), location, r.text().await.unwrap())
    }
}

/// The actions refused to `actor`, as the audit trail recorded them.
async fn denials_of(s: &Server, actor: &str) -> Vec<String> {
    let store = enclave_store::Store::open(&s.data_dir.join("enclave.db"))
        .await
        .unwrap();
    let records = store.audit_after(0, 10_000).await.unwrap();
    store.close().await;
    records
        .into_iter()
        .filter(|(_, r)| r.actor == actor && r.outcome == enclave_core::audit::Outcome::Denied)
        .map(|(_, r)| r.action)
        .collect()
}

/// Project `alpha` owned by olivia, with sam as a member (data scientist) and vera a user.
pub(crate) async fn governed_project(s: &Server) -> enclave_testkit::Api {
    let admin = s.admin().await;
    for u in ["olivia", "sam", "vera"] {
        admin.user(s, u).await;
    }
    let (st, b) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "alpha", "owner": "olivia"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = admin
        .call(
            "PUT",
            "/api/v1/projects/alpha/members/sam",
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    admin
}

#[tokio::test]
async fn console_policies_with_positions_and_explain() {
    let s = Server::start(BIN);
    let admin = governed_project(&s).await;
    let web = Web::login(&s, "admin").await;
    let (_, dash) = web.get("/").await;
    for link in ["/policies", "/admin/roles", "/policy/check"] {
        assert!(
            dash.contains(&format!("href=\"{link}\"")),
            "admin nav links {link}"
        );
    }
    let (st, form) = web.get("/policies/new").await;
    assert_eq!(st, 200);
    assert!(form.contains("name=\"body\""));

    // A policy with an error: the message with its line and column next to the text, the
    // text kept, nothing stored.
    let broken = "permit(principal, action, resource)\nwhen { resource.nosuch == 1 };";
    let (st, _, page) = web
        .post(
            "/policies",
            &[
                ("name", "broken"),
                ("description", "oops"),
                ("body", broken),
            ],
        )
        .await;
    assert_eq!(st, 400, "{page}");
    assert!(page.contains("id=\"pol-body-error\""), "{page}");
    assert!(page.contains("line 2, column "), "{page}");
    assert!(page.contains("when { resource.nosuch == 1 };"), "text kept");
    assert!(page.contains("value=\"broken\""), "name kept");
    let (_, list) = admin.get("/api/v1/policies").await;
    assert_eq!(list["items"], json!([]), "nothing stored");

    // A valid one is stored and shown.
    let forbid = r#"forbid (principal, action == Action::"project.delete", resource) unless { context.mfa };"#;
    let (st, to, _) = web
        .post(
            "/policies",
            &[
                ("name", "mfa-for-deletes"),
                ("description", "deletes need MFA"),
                ("body", forbid),
            ],
        )
        .await;
    assert_eq!(st, 303);
    let to = to.unwrap();
    assert!(to.ends_with("?done=policy-created"), "{to}");
    let (_, list) = admin.get("/api/v1/policies").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(to, format!("/policies/{id}?done=policy-created"));
    let (st, page) = web.get(&to).await;
    assert_eq!(st, 200);
    assert!(page.contains("Policy created") && page.contains("mfa-for-deletes"));
    let (_, page) = web.get("/policies").await;
    assert!(page.contains(&format!("href=\"/policies/{id}\"")));

    // The explain page is filled in from its query; a query it cannot read fills in nothing.
    let (st, page) = web
        .get("/policy/check?principal=sam&resource=project%3Aalpha")
        .await;
    assert_eq!(st, 200);
    assert!(page.contains("value=\"sam\"") && page.contains("value=\"project:alpha\""));
    let (st, _) = web.get("/policy/check?principal=%zz&x=1").await;
    assert_eq!(st, 200);
    // Explain: ALLOW with the policy and the role that decided, DENY by the custom forbid.
    let (st, _, page) = web
        .post(
            "/policy/check",
            &[
                ("principal", "sam"),
                ("action", "project.read"),
                ("resource", "project:alpha"),
                ("context", ""),
            ],
        )
        .await;
    assert_eq!(st, 200, "{page}");
    assert!(
        page.contains("decision-allow") && page.contains(">ALLOW<"),
        "{page}"
    );
    assert!(page.contains("builtin.data_scientist"), "{page}");
    assert!(page.contains("role data_scientist"), "{page}");
    let (st, _, page) = web
        .post(
            "/policy/check",
            &[
                ("principal", "olivia"),
                ("action", "project.delete"),
                ("resource", "project:alpha"),
                ("context", r#"{"mfa": false}"#),
            ],
        )
        .await;
    assert_eq!(st, 200, "{page}");
    assert!(
        page.contains("decision-deny") && page.contains(">DENY<"),
        "{page}"
    );
    assert!(page.contains(&format!("href=\"/policies/{id}\">custom.{id}")));
    let (st, _, page) = web
        .post(
            "/policy/check",
            &[
                ("principal", "olivia"),
                ("action", "project.delete"),
                ("resource", "project:alpha"),
                ("context", r#"{"mfa": true}"#),
            ],
        )
        .await;
    assert_eq!(st, 200);
    assert!(page.contains(">ALLOW<"), "with MFA the owner may delete");
    let (st, _, page) = web
        .post(
            "/policy/check",
            &[
                ("principal", "sam"),
                ("action", "project.read"),
                ("resource", "project:alpha"),
                ("context", "{nope"),
            ],
        )
        .await;
    assert_eq!(st, 400);
    assert!(page.contains("JSON object"));
    // What can sam do in alpha?
    let (st, _, page) = web
        .post("/policy/can", &[("principal", "sam"), ("project", "alpha")])
        .await;
    assert_eq!(st, 200, "{page}");
    let answer = page.split("id=\"can-result\"").nth(1).unwrap_or_default();
    assert!(answer.contains(">secret.read_value<"), "{page}");
    assert!(!answer.contains(">project.delete<"), "{page}");

    // A refused edit keeps the visitor's text and changes nothing; a good one is saved.
    let path = format!("/policies/{id}");
    let (st, _, page) = web
        .post(&path, &[("description", "x"), ("body", "forbid (")])
        .await;
    assert_eq!(st, 400, "{page}");
    assert!(page.contains("line 1, column") && page.contains(">forbid (</textarea>"));
    assert_eq!(
        admin.get(&format!("/api/v1/policies/{id}")).await.1["body"],
        forbid
    );
    let (st, to, _) = web
        .post(&path, &[("description", "still MFA"), ("body", forbid)])
        .await;
    assert_eq!((st, to), (303, Some(format!("{path}?done=policy-saved"))));
    assert_eq!(
        admin.get(&format!("/api/v1/policies/{id}")).await.1["description"],
        "still MFA"
    );
    // Deletion needs the name typed again.
    let (st, _, page) = web
        .post(&format!("{path}/delete"), &[("confirm", "mfa")])
        .await;
    assert_eq!(st, 400);
    assert!(page.contains("type its name exactly"));
    assert_eq!(admin.get(&format!("/api/v1/policies/{id}")).await.0, 200);
    let (st, to, _) = web
        .post(&format!("{path}/delete"), &[("confirm", "mfa-for-deletes")])
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/policies?done=policy-deleted"))
    );
    assert_eq!(admin.get(&format!("/api/v1/policies/{id}")).await.0, 404);

    // The project owner writes a policy for her project from its page.
    let owner = Web::login(&s, "olivia").await;
    let (_, page) = owner.get("/projects/alpha").await;
    assert!(
        page.contains("href=\"/projects/alpha/policies/new\""),
        "{page}"
    );
    assert!(page.contains("Explain a decision in this project"));
    assert!(
        !page.contains("href=\"/policies\""),
        "no platform links for owners"
    );
    let (st, _) = owner.get("/projects/alpha/policies/new").await;
    assert_eq!(st, 200);
    let scoped = r#"forbid (principal, action == Action::"secret.read_value", resource in Project::"alpha") unless { context.mfa };"#;
    let (st, to, _) = owner
        .post(
            "/projects/alpha/policies",
            &[
                ("name", "mfa-for-secrets"),
                ("description", ""),
                ("body", scoped),
            ],
        )
        .await;
    assert_eq!(st, 303);
    let pid = to
        .unwrap()
        .trim_start_matches("/policies/")
        .trim_end_matches("?done=policy-created")
        .to_string();
    // Outside the project: refused with the reason, nothing stored.
    let outside =
        r#"permit (principal, action == Action::"project.read", resource in Project::"beta");"#;
    let (st, _, page) = owner
        .post(
            "/projects/alpha/policies",
            &[
                ("name", "reach-out"),
                ("description", ""),
                ("body", outside),
            ],
        )
        .await;
    assert_eq!(st, 400, "{page}");
    assert!(page.contains("pol-body-error"));

    // The data scientist reads it but gets no forms, and a forged edit is refused.
    let sam = Web::login(&s, "sam").await;
    let (_, page) = sam.get("/projects/alpha").await;
    assert!(page.contains("mfa-for-secrets") && !page.contains("/policies/new"));
    let (st, page) = sam.get(&format!("/policies/{pid}")).await;
    assert_eq!(st, 200);
    assert!(page.contains("secret.read_value") && !page.contains("name=\"body\""));
    let (st, _, _) = sam
        .post(
            &format!("/policies/{pid}"),
            &[("description", ""), ("body", outside)],
        )
        .await;
    assert_eq!(st, 403);
    let (st, _, _) = sam
        .post(
            &format!("/policies/{pid}/delete"),
            &[("confirm", "mfa-for-secrets")],
        )
        .await;
    assert_eq!(st, 403);
    assert_eq!(admin.get(&format!("/api/v1/policies/{pid}")).await.0, 200);
    // Platform pages are not for him.
    assert_eq!(sam.get("/policies").await.0, 403);
    let (st, _, _) = sam
        .post(
            "/policy/check",
            &[
                ("principal", "sam"),
                ("action", "project.read"),
                ("resource", "platform"),
                ("context", ""),
            ],
        )
        .await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn console_grants_need_an_owner_and_show_a_banner() {
    let s = Server::start(BIN);
    let admin = governed_project(&s).await;
    let web = Web::login(&s, "admin").await;
    let (_, page) = web.get("/projects/alpha").await;
    assert!(
        page.contains("action=\"/projects/alpha/grants\""),
        "request form for admins"
    );
    // Bad requests change nothing.
    for (reason, duration) in [("", "60"), ("ticket 4411", "5h"), ("ticket 4411", "soon")] {
        let (st, _, page) = web
            .post(
                "/projects/alpha/grants",
                &[
                    ("role", "support"),
                    ("reason", reason),
                    ("duration", duration),
                ],
            )
            .await;
        assert_eq!(st, 400, "{reason:?} {duration:?}");
        assert!(
            page.contains(&format!("value=\"{duration}\"")),
            "draft kept"
        );
    }
    let (st, to, _) = web
        .post(
            "/projects/alpha/grants",
            &[
                ("role", "support"),
                ("reason", "ticket 4411: kernel crash"),
                ("duration", "90"),
            ],
        )
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/projects/alpha?done=grant-requested"))
    );
    let (_, grants) = admin.get("/api/v1/projects/alpha/grants").await;
    let id = grants["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(grants["items"][0]["status"], "pending");
    assert_eq!(grants["items"][0]["duration_secs"], 5400);
    let approve = format!("/projects/alpha/grants/{id}/approve");
    // The requester gets no approve button (and could not approve anyway).
    let (_, page) = web.get("/projects/alpha").await;
    assert!(page.contains("ticket 4411") && !page.contains(&approve));
    assert!(page.contains(&format!("/projects/alpha/grants/{id}/revoke")));

    // A member sees the pending request and its reason, but no buttons; a forged approval is
    // refused and changes nothing.
    let sam = Web::login(&s, "sam").await;
    let (st, page) = sam.get("/projects/alpha").await;
    assert_eq!(st, 200);
    assert!(page.contains("ticket 4411: kernel crash") && page.contains("status-pending"));
    assert!(!page.contains(&approve) && !page.contains("/revoke\""));
    assert!(!page.contains("banner-access"), "no banner while pending");
    // Viewing the page asked the policy nothing that it refused (a refusal would be audited).
    assert_eq!(denials_of(&s, "sam").await, Vec::<String>::new());
    let (st, _, page) = sam.post(&approve, &[]).await;
    assert_eq!(st, 403, "{page}");
    assert!(page.contains("Not allowed"));
    assert_eq!(
        denials_of(&s, "sam").await,
        vec!["grant.approve".to_string()]
    );
    let (_, grants) = admin.get("/api/v1/projects/alpha/grants").await;
    assert_eq!(grants["items"][0]["status"], "pending");
    // Without the CSRF token even the owner's approval is refused.
    let owner = Web::login(&s, "olivia").await;
    let r = owner
        .c
        .post(s.url(&approve))
        .header("cookie", &owner.cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The owner approves in the console; everyone sees the banner.
    let (_, page) = owner.get("/projects/alpha").await;
    assert!(page.contains(&approve), "the owner gets the approve button");
    let (st, to, _) = owner.post(&approve, &[]).await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/projects/alpha?done=grant-approved"))
    );
    for who in [&owner, &sam, &web] {
        let (_, page) = who.get("/projects/alpha").await;
        assert!(page.contains("banner-access"), "{page}");
        assert!(
            page.contains("admin&#39;s support access is active until")
                || page.contains("admin's support access is active until"),
            "{page}"
        );
        assert!(page.contains("Reason: ticket 4411: kernel crash · approved by olivia"));
    }
    let (_, grants) = admin.get("/api/v1/projects/alpha/grants").await;
    assert_eq!(grants["items"][0]["status"], "active");
    // Approving twice is shown as a conflict on the page.
    let (st, _, page) = owner.post(&approve, &[]).await;
    assert_eq!(st, 400);
    assert!(page.contains("not pending"));
    // The owner revokes it: the banner goes.
    let (st, to, _) = owner
        .post(&format!("/projects/alpha/grants/{id}/revoke"), &[])
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/projects/alpha?done=grant-revoked"))
    );
    let (_, page) = sam.get("/projects/alpha").await;
    assert!(!page.contains("banner-access") && page.contains("status-revoked"));

    // Settings: a bad tag line is refused with its line; good ones are saved.
    let (st, _, page) = owner
        .post(
            "/projects/alpha/settings",
            &[
                ("classification", "confidential"),
                ("tags", "team=risk\nno equals sign"),
                ("requires_approval", "on"),
            ],
        )
        .await;
    assert_eq!(st, 400);
    assert!(page.contains("line 2") && page.contains("no equals sign"));
    let (st, to, _) = owner
        .post(
            "/projects/alpha/settings",
            &[
                ("classification", "confidential"),
                ("tags", "team=risk\ncost-center = 42\n"),
            ],
        )
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/projects/alpha?done=settings-saved"))
    );
    let (_, p) = admin.get("/api/v1/projects/alpha").await;
    assert_eq!(p["classification"], "confidential");
    assert_eq!(p["tags"], json!({"team": "risk", "cost-center": "42"}));
    assert_eq!(p["requires_approval"], false);
    let (_, page) = sam.get("/projects/alpha").await;
    assert!(page.contains("team=risk") && !page.contains("/settings\""));
    // Without approval, a request applies at once.
    let (st, to, _) = web
        .post(
            "/projects/alpha/grants",
            &[
                ("role", "project_admin"),
                ("reason", "migration"),
                ("duration", "1h"),
            ],
        )
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/projects/alpha?done=grant-active"))
    );
    let (_, page) = sam.get("/projects/alpha").await;
    assert!(page.contains("project admin access is active until"));

    // Role bindings on the project.
    let (st, _, page) = owner
        .post(
            "/projects/alpha/roles",
            &[("subject", "vera"), ("role", "viewer"), ("expires_in", "")],
        )
        .await;
    assert_eq!(st, 400);
    assert!(page.contains("user:NAME") && page.contains("value=\"vera\""));
    let (st, to, _) = owner
        .post(
            "/projects/alpha/roles",
            &[
                ("subject", "user:vera"),
                ("role", "viewer"),
                ("expires_in", "7d"),
            ],
        )
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/projects/alpha?done=role-bound"))
    );
    let (_, roles) = admin.get("/api/v1/roles?project=alpha").await;
    let rb = roles["items"][0]["id"].as_str().unwrap().to_string();
    let vera = Web::login(&s, "vera").await;
    let (st, page) = vera.get("/projects/alpha").await;
    assert_eq!(st, 200, "the binding gives vera the project");
    assert!(page.contains("user:vera") && !page.contains("/remove\""));
    let (st, _, _) = vera
        .post(&format!("/projects/alpha/roles/{rb}/remove"), &[])
        .await;
    assert!(st == 403 || st == 404, "{st}");
    let (st, to, _) = owner
        .post(&format!("/projects/alpha/roles/{rb}/remove"), &[])
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/projects/alpha?done=role-removed"))
    );
    assert_eq!(vera.get("/projects/alpha").await.0, 404);
}

#[tokio::test]
async fn console_platform_roles_and_subgroups() {
    let s = Server::start(BIN);
    let admin = governed_project(&s).await;
    admin.user(&s, "ada").await;
    for g in ["security", "auditors"] {
        assert_eq!(
            admin.post("/api/v1/groups", json!({"name": g})).await.0,
            201
        );
    }
    assert_eq!(
        admin
            .call("PUT", "/api/v1/groups/auditors/members/ada", None)
            .await
            .0,
        204
    );
    let web = Web::login(&s, "admin").await;
    let (st, page) = web.get("/admin/roles").await;
    assert_eq!(st, 200);
    assert!(page.contains("action=\"/admin/roles\""));
    let (st, to, _) = web
        .post(
            "/admin/roles",
            &[
                ("subject", "group:security"),
                ("role", "security_auditor"),
                ("expires_in", ""),
            ],
        )
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/roles?done=role-bound"))
    );
    // Grant-only roles cannot be bound; the reason is shown.
    let (st, _, page) = web
        .post(
            "/admin/roles",
            &[
                ("subject", "user:sam"),
                ("role", "support"),
                ("expires_in", ""),
            ],
        )
        .await;
    assert_eq!(st, 400);
    assert!(page.contains("time-bound grant"));
    let (_, page) = web.get("/admin/roles").await;
    assert!(page.contains("group:security") && page.contains("security_auditor"));

    // Nesting auditors into security makes ada an auditor.
    let ada = Web::login(&s, "ada").await;
    assert_eq!(ada.get("/policies").await.0, 403);
    let (st, to, _) = web
        .post("/admin/groups/security/subgroups", &[("child", "auditors")])
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/groups/security?done=subgroup-added"))
    );
    let (st, _, page) = web
        .post("/admin/groups/auditors/subgroups", &[("child", "security")])
        .await;
    assert_eq!(st, 400, "no cycles");
    assert!(page.contains("cannot contain themselves"));
    let (st, _, page) = web
        .post("/admin/groups/security/subgroups", &[("child", "nope")])
        .await;
    assert_eq!(st, 400);
    assert!(page.contains("group &#39;nope&#39; was not found") || page.contains("nope"));
    assert_eq!(ada.get("/policies").await.0, 200);
    let (st, page) = ada.get("/admin/roles").await;
    assert_eq!(st, 200, "auditors read the bindings");
    assert!(!page.contains("action=\"/admin/roles\"") && !page.contains("/remove\""));
    // The auditor sees a project's grants and may explain decisions there, changing nothing.
    let (st, page) = ada.get("/projects/alpha").await;
    assert_eq!(st, 200);
    assert!(page.contains("Access grants") && page.contains("Explain a decision in this project"));
    assert!(!page.contains("action=\"/projects/alpha/settings\""));
    let (st, _, page) = ada
        .post(
            "/policy/check",
            &[
                ("principal", "sam"),
                ("action", "secret.read_value"),
                ("resource", "secret:alpha/db"),
                ("context", ""),
            ],
        )
        .await;
    assert_eq!(st, 200);
    assert!(page.contains(">ALLOW<"));
    let (st, _, _) = ada
        .post(
            "/admin/roles",
            &[
                ("subject", "user:ada"),
                ("role", "platform_admin"),
                ("expires_in", ""),
            ],
        )
        .await;
    assert_eq!(st, 403, "auditors change nothing");

    let (st, to, _) = web
        .post(
            "/admin/groups/security/subgroups/remove",
            &[("child", "auditors")],
        )
        .await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/groups/security?done=subgroup-removed"))
    );
    assert_eq!(ada.get("/policies").await.0, 403);
    let (_, roles) = admin.get("/api/v1/roles").await;
    let id = roles["items"][0]["id"].as_str().unwrap().to_string();
    let (st, to, _) = web.post(&format!("/admin/roles/{id}/remove"), &[]).await;
    assert_eq!(
        (st, to.as_deref()),
        (303, Some("/admin/roles?done=role-removed"))
    );
    let (_, roles) = admin.get("/api/v1/roles").await;
    assert_eq!(roles["items"], json!([]));
}
