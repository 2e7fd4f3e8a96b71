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
