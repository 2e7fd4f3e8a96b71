//! Users, groups, projects through the API; roles; bad input; OpenAPI.

use crate::BIN;
use enclave_testkit::{Server, PASSWORD};
use serde_json::{json, Value};

#[tokio::test]
async fn users_groups_projects_roundtrip_and_roles() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let owner = admin.user(&s, "olivia").await;
    let member = admin.user(&s, "mario").await;
    let viewer = admin.user(&s, "vera").await;
    let outsider = admin.user(&s, "otto").await;

    // Groups.
    let (st, g) = admin
        .post(
            "/api/v1/groups",
            json!({"name": "analysts", "description": "Risk analysts"}),
        )
        .await;
    assert_eq!(st, 201, "{g}");
    assert_eq!(
        admin
            .call("PUT", "/api/v1/groups/analysts/members/mario", None)
            .await
            .0,
        204
    );
    assert_eq!(
        admin
            .call("PUT", "/api/v1/groups/analysts/members/vera", None)
            .await
            .0,
        204
    );
    let (_, m) = admin.get("/api/v1/groups/analysts/members").await;
    assert_eq!(
        m["items"],
        json!([{"username": "mario"}, {"username": "vera"}])
    );
    let (_, g) = admin.get("/api/v1/groups/analysts").await;
    assert_eq!(g["member_count"], 2);
    assert_eq!(
        admin
            .call("DELETE", "/api/v1/groups/analysts/members/vera", None)
            .await
            .0,
        204
    );
    assert_eq!(
        admin
            .call("DELETE", "/api/v1/groups/analysts/members/vera", None)
            .await
            .0,
        404
    );
    let (st, g) = admin
        .call(
            "PATCH",
            "/api/v1/groups/analysts",
            Some(json!({"description": "Credit risk"})),
        )
        .await;
    assert_eq!((st, g["description"].clone()), (200, json!("Credit risk")));
    // Non-admins cannot manage groups or users.
    assert_eq!(member.get("/api/v1/groups").await.0, 403);
    assert_eq!(
        member
            .post(
                "/api/v1/users",
                json!({"username": "x1", "password": PASSWORD})
            )
            .await
            .0,
        403
    );
    assert_eq!(member.get("/api/v1/users").await.0, 403);
    assert_eq!(
        member.get("/api/v1/users/mario").await.0,
        200,
        "own account"
    );
    assert_eq!(member.get("/api/v1/users/olivia").await.0, 404);

    // Projects: created by an admin for an owner.
    let (st, p) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "fraud-detection", "description": "Card fraud", "owner": "olivia"}),
        )
        .await;
    assert_eq!(st, 201, "{p}");
    assert_eq!(p["owner"], "olivia");
    assert_eq!(
        member
            .post("/api/v1/projects", json!({"name": "mine"}))
            .await
            .0,
        403
    );
    // The owner manages members.
    for (u, role) in [("mario", "member"), ("vera", "viewer")] {
        let (st, b) = owner
            .call(
                "PUT",
                &format!("/api/v1/projects/fraud-detection/members/{u}"),
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let (_, members) = member.get("/api/v1/projects/fraud-detection/members").await;
    assert_eq!(members["items"].as_array().unwrap().len(), 3);
    // Members and viewers read; they cannot change.
    for api in [&member, &viewer] {
        let (st, p) = api.get("/api/v1/projects/fraud-detection").await;
        assert_eq!(st, 200);
        assert!(p["your_role"] == "member" || p["your_role"] == "viewer");
        assert_eq!(
            api.call(
                "PATCH",
                "/api/v1/projects/fraud-detection",
                Some(json!({"description": "x"}))
            )
            .await
            .0,
            403
        );
        assert_eq!(
            api.call(
                "PUT",
                "/api/v1/projects/fraud-detection/members/otto",
                Some(json!({"role": "member"}))
            )
            .await
            .0,
            403
        );
        assert_eq!(
            api.call("DELETE", "/api/v1/projects/fraud-detection", None)
                .await
                .0,
            403
        );
    }
    // Outsiders do not even see that the project exists.
    let (st, b) = outsider.get("/api/v1/projects/fraud-detection").await;
    assert_eq!(st, 404);
    let (st2, b2) = outsider.get("/api/v1/projects/no-such-project").await;
    assert_eq!(st2, 404);
    assert_eq!(b["code"], b2["code"]);
    let (_, list) = outsider.get("/api/v1/projects").await;
    assert_eq!(list["items"], json!([]));
    let (_, list) = viewer.get("/api/v1/projects").await;
    assert_eq!(list["items"][0]["name"], "fraud-detection");
    // The last owner stays.
    let (st, _) = owner
        .call(
            "DELETE",
            "/api/v1/projects/fraud-detection/members/olivia",
            None,
        )
        .await;
    assert_eq!(st, 409);
    let (st, _) = owner
        .call(
            "PUT",
            "/api/v1/projects/fraud-detection/members/olivia",
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(st, 409);
    // Owner updates and removes.
    let (st, p) = owner
        .call(
            "PATCH",
            "/api/v1/projects/fraud-detection",
            Some(json!({"description": "Card and wire fraud"})),
        )
        .await;
    assert_eq!(
        (st, p["description"].clone()),
        (200, json!("Card and wire fraud"))
    );
    assert_eq!(
        owner
            .call(
                "DELETE",
                "/api/v1/projects/fraud-detection/members/vera",
                None
            )
            .await
            .0,
        204
    );
    assert_eq!(viewer.get("/api/v1/projects/fraud-detection").await.0, 404);
    // The list she read before (and that the server memoizes) reflects the removal at once.
    let (_, list) = viewer.get("/api/v1/projects").await;
    assert_eq!(list["items"], json!([]));

    // Users: update, disable protections, delete.
    let (st, u) = admin
        .call(
            "PATCH",
            "/api/v1/users/mario",
            Some(json!({"display_name": "Mario R.", "email": "mario@example.org"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(u["display_name"], "Mario R.");
    let (st, _) = admin
        .call(
            "PATCH",
            "/api/v1/users/admin",
            Some(json!({"platform_admin": false})),
        )
        .await;
    assert_eq!(st, 409, "the last admin stays admin");
    assert_eq!(
        admin.call("DELETE", "/api/v1/users/admin", None).await.0,
        409
    );
    assert_eq!(
        admin.call("DELETE", "/api/v1/users/otto", None).await.0,
        204
    );
    assert_eq!(admin.get("/api/v1/users/otto").await.0, 404);
    assert_eq!(
        outsider.get("/api/v1/whoami").await.0,
        401,
        "deleted user's token is dead"
    );
    // The only owner of a project cannot be deleted.
    let (st, b) = admin.call("DELETE", "/api/v1/users/olivia", None).await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["details"]["projects"], json!(["fraud-detection"]));
    // Owner deletes the project.
    assert_eq!(
        owner
            .call("DELETE", "/api/v1/projects/fraud-detection", None)
            .await
            .0,
        204
    );
    assert_eq!(admin.get("/api/v1/projects/fraud-detection").await.0, 404);
    assert_eq!(
        admin.call("DELETE", "/api/v1/users/olivia", None).await.0,
        204
    );
}

#[tokio::test]
async fn pagination_walks_every_item_once() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    for i in 0..7 {
        let (st, _) = admin
            .post("/api/v1/groups", json!({"name": format!("team-{i}")}))
            .await;
        assert_eq!(st, 201);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("/api/v1/groups?limit=3&after={a}"),
            None => "/api/v1/groups?limit=3".to_string(),
        };
        let (st, page) = admin.get(&q).await;
        assert_eq!(st, 200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..7).map(|i| format!("team-{i}")).collect::<Vec<_>>()
    );
    for bad in ["?limit=0", "?limit=201", "?limit=abc", "?page=2"] {
        let (st, b) = admin.get(&format!("/api/v1/groups{bad}")).await;
        assert_eq!(st, 400, "{bad}: {b}");
    }
}

async fn group_count(admin: &enclave_testkit::Api) -> usize {
    admin.get("/api/v1/groups").await.1["items"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    admin
        .post("/api/v1/groups", json!({"name": "existing"}))
        .await;
    let before = group_count(&admin).await;
    let c = &admin.client;
    let url = s.url("/api/v1/groups");
    let send = |body: Vec<u8>, ctype: Option<&'static str>| {
        let mut rb = c.post(&url).bearer_auth(&admin.token).body(body);
        if let Some(ct) = ctype {
            rb = rb.header("content-type", ct);
        }
        async move {
            let r = rb.send().await.unwrap();
            let st = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (st, v)
        }
    };
    let json_ct = Some("application/json");
    let cases: Vec<(Vec<u8>, Option<&'static str>, u16, &str)> = vec![
        (b"{not json".to_vec(), json_ct, 400, "invalid_request"),
        (br#"{"name": 42}"#.to_vec(), json_ct, 400, "invalid_request"),
        (
            br#"{"name": "ok-name", "color": "red"}"#.to_vec(),
            json_ct,
            400,
            "invalid_request",
        ),
        (
            br#"{"name": "ok-name"}"#.to_vec(),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            br#"{"name": "existing"}"#.to_vec(),
            json_ct,
            409,
            "conflict",
        ),
        (
            br#"{"name": "Bad Name"}"#.to_vec(),
            json_ct,
            400,
            "invalid_input",
        ),
        (br#"{"name": "a"}"#.to_vec(), json_ct, 400, "invalid_input"),
        (
            format!(r#"{{"name": "{}"}}"#, "a".repeat(41)).into_bytes(),
            json_ct,
            400,
            "invalid_input",
        ),
        (
            br#"{"name": "ok-name", "description": "line\nbreak"}"#.to_vec(),
            json_ct,
            400,
            "invalid_input",
        ),
        (
            format!(
                r#"{{"name": "ok-name", "description": "{}"}}"#,
                "x".repeat(300)
            )
            .into_bytes(),
            json_ct,
            400,
            "invalid_input",
        ),
        (
            format!(
                r#"{{"name": "ok-name", "description": "{}"}}"#,
                "x".repeat(70_000)
            )
            .into_bytes(),
            json_ct,
            413,
            "payload_too_large",
        ),
    ];
    for (body, ct, status, code) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let (st, b) = send(body, ct).await;
        assert_eq!(st, status, "{preview}: {b}");
        assert_eq!(b["code"], code, "{preview}: {b}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(b["details"].is_object());
    }
    assert_eq!(group_count(&admin).await, before, "nothing was created");
    // Invalid user input names the field.
    let (st, b) = admin
        .post(
            "/api/v1/users",
            json!({"username": "dave", "password": "short"}),
        )
        .await;
    assert_eq!(
        (st, b["details"]["field"].clone()),
        (400, json!("password"))
    );
    let (st, b) = admin
        .post(
            "/api/v1/users",
            json!({"username": "dave", "password": PASSWORD, "email": "nope"}),
        )
        .await;
    assert_eq!((st, b["details"]["field"].clone()), (400, json!("email")));
    let (st, b) = admin
        .post(
            "/api/v1/users",
            json!({"username": "../etc", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (st, b["details"]["field"].clone()),
        (400, json!("username"))
    );
    let (st, _) = admin
        .post(
            "/api/v1/users",
            json!({"username": "admin", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 409);
    let (st, b) = admin
        .call(
            "PUT",
            "/api/v1/projects/nope/members/admin",
            Some(json!({"role": "god"})),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    let (_, users) = admin.get("/api/v1/users").await;
    assert_eq!(
        users["items"].as_array().unwrap().len(),
        1,
        "no user was created"
    );
}

fn committed_openapi_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")
}

#[tokio::test]
async fn openapi_served_matches_committed_and_every_route_needs_authentication() {
    let s = Server::start(BIN);
    let c = s.client();
    let served = c
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = committed_openapi_path();
    if std::env::var_os("ENCLAVE_TEST_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "openapi.json is out of date: run `ENCLAVE_TEST_UPDATE_OPENAPI=1 cargo test -p enclave openapi` and commit it"
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    let public = [
        "/api/v1/setup",
        "/api/v1/auth/token",
        "/api/v1/auth/session",
        "/api/v1/auth/mfa",
        "/api/v1/auth/mfa/passkey",
        "/api/v1/auth/sources",
        "/api/v1/openapi.json",
    ];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{username}", "admin")
                .replace("{name}", "p1")
                .replace("{id}", "tok_x");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = c
                .request(m, s.url(&concrete))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            if public.contains(&path.as_str()) {
                assert_ne!(st, 401, "{method} {path} is public");
            } else {
                assert_eq!(st, 401, "{method} {path} must require authentication");
                let b: Value = r.json().await.unwrap();
                assert_eq!(b["code"], "unauthenticated");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations documented");
}
