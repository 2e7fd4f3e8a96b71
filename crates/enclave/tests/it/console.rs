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
