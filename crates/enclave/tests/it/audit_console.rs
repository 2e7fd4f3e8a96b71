//! The console's audit pages, scoped like the API: the security auditor sees every record and
//! the key, a project owner their project, everyone else only their own actions; bad filters
//! are a 400 with the reason, never a 500.

use crate::console::{governed_project, Web};
use crate::BIN;
use enclave_testkit::Server;
use serde_json::json;

/// The actors of the rows of an audit results table.
fn actors(page: &str) -> Vec<String> {
    let Some(table) = page.split("id=\"audit-records\"").nth(1) else {
        return Vec::new();
    };
    table
        .split("<tbody>")
        .nth(1)
        .unwrap_or_default()
        .split("<tr>")
        .skip(1)
        .filter_map(|row| {
            let cells: Vec<&str> = row.split("<td").collect();
            // The third cell is the actor: `<td>NAME<div …>`.
            cells
                .get(3)
                .and_then(|c| c.strip_prefix('>'))
                .and_then(|c| c.split('<').next())
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn console_audit_pages_are_scoped_like_the_api() {
    let s = Server::start(BIN);
    let admin = governed_project(&s).await;
    admin.user(&s, "ada").await;
    let (st, b) = admin
        .post(
            "/api/v1/roles",
            json!({"subject": "user:ada", "role": "security_auditor"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    // The admin (not a member of alpha) changes something there: olivia should see it.
    let (st, b) = admin
        .call(
            "PATCH",
            "/api/v1/projects/alpha",
            Some(json!({"tags": {"touched": "by-admin"}})),
        )
        .await;
    assert_eq!(st, 200, "{b}");

    // Without a session: the login page.
    let r = s.client().get(s.url("/audit")).send().await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (303, "/login")
    );

    // The auditor holds no project, yet the nav leads to the audit pages and what they review.
    let ada = Web::login(&s, "ada").await;
    let (st, dash) = ada.get("/").await;
    assert_eq!(st, 200);
    for link in ["/audit", "/policies", "/admin/roles", "/policy/check"] {
        assert!(
            dash.contains(&format!("href=\"{link}\"")),
            "auditor nav {link}"
        );
    }
    assert!(!dash.contains("href=\"/admin/users\""), "no user admin");
    let (st, page) = ada.get("/audit").await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("every record of the installation"), "{page}");
    assert!(page.contains("href=\"/audit/key\""));
    let seen = actors(&page);
    assert!(seen.iter().any(|a| a == "admin"), "{seen:?}");
    assert!(seen.iter().any(|a| a == "sam"), "{seen:?}");
    assert!(page.contains("project.update"));
    // Filters: actor, action, outcome, project and a time range.
    let (st, page) = ada
        .get("/audit?actor=admin&action=project.update&outcome=success&project=alpha&since=2000-01-01&until=2999-12-31+23%3A59")
        .await;
    assert_eq!(st, 200, "{page}");
    let seen = actors(&page);
    assert_eq!(seen, vec!["admin".to_string()], "{page}");
    assert!(page.contains("by-admin"), "detail shown");
    assert!(
        page.contains("value=\"project.update\""),
        "filter kept in the form"
    );
    let (_, page) = ada.get("/audit?since=2999-01-01").await;
    assert!(page.contains("No records match."));
    // Pages: the next link carries the filters.
    let (_, page) = ada.get("/audit?actor=admin").await;
    let next = page
        .split("href=\"/audit?actor=admin&amp;after=")
        .nth(1)
        .map(|rest| rest.split('"').next().unwrap().to_string());
    if let Some(after) = next {
        let (st, older) = ada.get(&format!("/audit?actor=admin&after={after}")).await;
        assert_eq!(st, 200);
        assert!(actors(&older).iter().all(|a| a == "admin"));
    }

    // Bad filters: 400 with the reason next to the form, never a 500.
    for (query, reason) in [
        ("since=yesterday", "write a UTC time"),
        ("until=2026-13-45", "write a UTC time"),
        ("outcome=maybe", "one of success, denied, failure"),
        ("project=Not+A+Slug", "project"),
        ("after=x", "page link is damaged"),
        ("since=2026-02-01&until=2026-01-01", "before its start"),
    ] {
        let (st, page) = ada.get(&format!("/audit?{query}")).await;
        assert_eq!(st, 400, "{query}: {page}");
        assert!(page.contains(reason), "{query}: {page}");
        assert!(
            page.contains("id=\"audit-filter\""),
            "the form is shown again"
        );
    }
    let (st, _) = ada.get(&format!("/audit?actor={}", "x".repeat(300))).await;
    assert_eq!(st, 400);

    // The key and checkpoint, to copy or download, and verification.
    let (st, page) = ada.get("/audit/key").await;
    assert_eq!(st, 200, "{page}");
    let (_, key) = admin.get("/api/v1/audit/key").await;
    let public_key = key["public_key"].as_str().unwrap();
    assert!(page.contains(public_key));
    assert!(page.contains("id=\"checkpoint\""), "{page}");
    let r = ada.get("/audit/key.json").await;
    assert_eq!(r.0, 200);
    let file: serde_json::Value = serde_json::from_str(&r.1).unwrap();
    assert_eq!(file["public_key"], public_key);
    assert!(file["latest_checkpoint"]["seq"].as_u64().unwrap() > 0);
    let (st, _, page) = ada.post("/audit/verify", &[]).await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("Intact:"), "{page}");
    let (st, export) = ada.get("/audit/export").await;
    assert_eq!(st, 200);
    assert!(export.lines().count() > 10, "{export}");

    // An ordinary member sees only the records of their own actions, whatever they ask for.
    let sam = Web::login(&s, "sam").await;
    let (st, dash) = sam.get("/").await;
    assert_eq!(st, 200);
    assert!(dash.contains("href=\"/audit\""));
    assert!(!dash.contains("href=\"/policies\"") && !dash.contains("href=\"/admin/roles\""));
    for path in ["/audit", "/audit?actor=admin", "/audit?project=alpha"] {
        let (st, page) = sam.get(path).await;
        assert_eq!(st, 200, "{path}: {page}");
        assert!(page.contains("the records of your own actions"), "{path}");
        let seen = actors(&page);
        assert!(seen.iter().all(|a| a == "sam"), "{path}: {seen:?}");
        assert!(!page.contains("href=\"/audit/key\""));
    }
    let (_, page) = sam.get("/audit").await;
    assert!(!actors(&page).is_empty(), "sam's own logins are there");
    assert_eq!(sam.get("/audit/key").await.0, 403);
    assert_eq!(sam.get("/audit/key.json").await.0, 403);
    assert_eq!(sam.get("/audit/export").await.0, 403);
    assert_eq!(sam.post("/audit/verify", &[]).await.0, 403);

    // The owner sees the project's records, and who outside it acted there.
    let olivia = Web::login(&s, "olivia").await;
    let (st, page) = olivia.get("/audit?project=alpha").await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("the records of project alpha"), "{page}");
    assert!(actors(&page).iter().any(|a| a == "admin"));
    let (st, page) = olivia.get("/audit/my-work").await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("by-admin"), "{page}");
    assert!(page.contains("<td>admin<div"), "{page}");
    let (st, page) = sam.get("/audit/my-work").await;
    assert_eq!(st, 200);
    assert!(page.contains("by-admin"), "members see it too");
    let vera = Web::login(&s, "vera").await;
    let (_, page) = vera.get("/audit/my-work").await;
    assert!(page.contains("Nobody outside your projects"), "{page}");
}
