//! Cedar in practice, through the real server: built-in roles as a new user meets them, custom
//! policies in force at once, explain, role bindings through nested groups, time-bound grants
//! with two-person approval, and every route decided by the policy.

use crate::BIN;
use enclave_testkit::{Api, Server};
use serde_json::{json, Value};

async fn project_with_roles(admin: &Api, s: &Server) -> (Api, Api, Api, Api) {
    let owner = admin.user(s, "olivia").await;
    let scientist = admin.user(s, "sam").await;
    let viewer = admin.user(s, "vera").await;
    let outsider = admin.user(s, "otto").await;
    for (project, who) in [("alpha", "olivia"), ("beta", "otto")] {
        let (st, b) = admin
            .post("/api/v1/projects", json!({"name": project, "owner": who}))
            .await;
        assert_eq!(st, 201, "{b}");
    }
    for (who, role) in [("sam", "member"), ("vera", "viewer")] {
        let (st, b) = admin
            .call(
                "PUT",
                &format!("/api/v1/projects/alpha/members/{who}"),
                Some(json!({ "role": role })),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    (owner, scientist, viewer, outsider)
}

async fn check(api: &Api, principal: &str, action: &str, resource: &str) -> Value {
    let (st, b) = api
        .post(
            "/api/v1/policy/check",
            json!({"principal": principal, "action": action, "resource": resource}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b
}

#[tokio::test]
async fn roles_do_what_they_say_and_nothing_more() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let (owner, scientist, viewer, outsider) = project_with_roles(&admin, &s).await;
    let patch = json!({"description": "changed"});

    // Owner manages the project; the data scientist and the viewer read it; others see nothing.
    assert_eq!(
        owner
            .call("PATCH", "/api/v1/projects/alpha", Some(patch.clone()))
            .await
            .0,
        200
    );
    for api in [&scientist, &viewer] {
        assert_eq!(api.get("/api/v1/projects/alpha").await.0, 200);
        assert_eq!(
            api.call("PATCH", "/api/v1/projects/alpha", Some(patch.clone()))
                .await
                .0,
            403
        );
    }
    assert_eq!(outsider.get("/api/v1/projects/alpha").await.0, 404);
    assert_eq!(owner.get("/api/v1/projects/beta").await.0, 404);
    // A project owner's rights stop at the project: no platform administration.
    assert_eq!(owner.get("/api/v1/users").await.0, 403);
    assert_eq!(
        owner
            .post("/api/v1/projects", json!({"name": "gamma"}))
            .await
            .0,
        403
    );

    // A security auditor (bound through a group nested in another) reads governance, not data.
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
    assert_eq!(
        admin
            .call("PUT", "/api/v1/groups/security/subgroups/auditors", None)
            .await
            .0,
        204
    );
    // Nesting cannot close a cycle.
    let (st, b) = admin
        .call("PUT", "/api/v1/groups/auditors/subgroups/security", None)
        .await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = admin
        .post(
            "/api/v1/roles",
            json!({"subject": "group:security", "role": "security_auditor"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let auditor = s.login("ada", enclave_testkit::PASSWORD).await;
    assert_eq!(auditor.get("/api/v1/policies").await.0, 200);
    assert_eq!(auditor.get("/api/v1/roles").await.0, 200);
    let (st, list) = auditor.get("/api/v1/projects").await;
    assert_eq!(st, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(
        auditor
            .call("PATCH", "/api/v1/projects/alpha", Some(patch.clone()))
            .await
            .0,
        403
    );
    assert_eq!(
        auditor
            .post(
                "/api/v1/roles",
                json!({"subject": "user:ada", "role": "platform_admin"})
            )
            .await
            .0,
        403
    );
    let d = check(
        &admin,
        "ada",
        "secret.read_value",
        "secret:alpha/db-password",
    )
    .await;
    assert_eq!(d["allowed"], false, "{d}");
    let d = check(&admin, "ada", "audit.search", "audit").await;
    assert_eq!(d["allowed"], true, "{d}");
    assert!(
        d["explanation"]
            .as_str()
            .unwrap()
            .contains("builtin.security_auditor"),
        "{d}"
    );

    // Explain names the deciding policy, or says nothing permits.
    let d = check(&admin, "olivia", "project.update", "project:alpha").await;
    assert_eq!(d["decision"], "allow", "{d}");
    assert!(d["determining"]
        .as_array()
        .unwrap()
        .contains(&json!("builtin.project_owner")));
    let d = check(&admin, "sam", "project.update", "project:alpha").await;
    assert_eq!(d["decision"], "deny");
    assert_eq!(d["explanation"], "no policy permits");
    let (st, can) = admin
        .get("/api/v1/policy/can?principal=sam&project=alpha")
        .await;
    assert_eq!(st, 200, "{can}");
    let actions: Vec<&str> = can["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(actions.contains(&"job.run"), "{can}");
    assert!(!actions.contains(&"project.delete"), "{can}");
    // Explaining needs the right too: a data scientist cannot ask about others.
    assert_eq!(
        scientist
            .post(
                "/api/v1/policy/check",
                json!({"principal": "olivia", "action": "project.read", "resource": "platform"})
            )
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn custom_policies_validate_confine_and_apply_at_once() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let (owner, scientist, _viewer, _outsider) = project_with_roles(&admin, &s).await;

    // Invalid text is refused with the position of the problem; nothing is stored.
    let (st, b) = admin
        .post(
            "/api/v1/policies",
            json!({"name": "broken", "body": "permit(principal, action, resource)\nwhen { resource.nosuch == 1 };"}),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["details"]["field"], "body", "{b}");
    assert_eq!(b["details"]["line"], 2, "{b}");
    let (_, list) = admin.get("/api/v1/policies").await;
    assert_eq!(list["items"], json!([]));

    // A platform-wide forbid by source network takes effect for the next request.
    let forbid = r#"@description("no project reads for sam from loopback")
forbid (principal, action == Action::"project.read", resource)
when { principal is User && principal.username == "sam" && context.source_ip.isInRange(ip("127.0.0.0/8")) };"#;
    let (st, p) = admin
        .post(
            "/api/v1/policies",
            json!({"name": "no-loopback-sam", "body": forbid}),
        )
        .await;
    assert_eq!(st, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(scientist.get("/api/v1/projects/alpha").await.0, 404);
    let (_, d) = admin
        .post(
            "/api/v1/policy/check",
            json!({"principal": "sam", "action": "project.read", "resource": "project:alpha",
                   "context": {"source_ip": "127.0.0.1"}}),
        )
        .await;
    assert_eq!(d["decision"], "deny", "{d}");
    assert!(d["determining"]
        .as_array()
        .unwrap()
        .contains(&json!(format!("custom.{id}"))));
    assert_eq!(
        admin
            .call("DELETE", &format!("/api/v1/policies/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(scientist.get("/api/v1/projects/alpha").await.0, 200);

    // A project owner's policy must stay inside the project.
    let outside =
        r#"permit (principal, action == Action::"project.read", resource in Project::"beta");"#;
    let (st, b) = owner
        .post(
            "/api/v1/policies",
            json!({"name": "reach-out", "project": "alpha", "body": outside}),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    // ... and cannot be platform-wide.
    let inside = r#"forbid (principal, action == Action::"project.update", resource in Project::"alpha") unless { context.mfa };"#;
    assert_eq!(
        owner
            .post("/api/v1/policies", json!({"name": "mfa", "body": inside}))
            .await
            .0,
        403
    );
    let (st, b) = owner
        .post(
            "/api/v1/policies",
            json!({"name": "mfa-for-changes", "project": "alpha", "body": inside}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    // Owners now need MFA for changes, which their password session does not have.
    assert_eq!(
        owner
            .call(
                "PATCH",
                "/api/v1/projects/alpha",
                Some(json!({"description": "x"}))
            )
            .await
            .0,
        403
    );
    // The data scientist reads the rules that govern the project but cannot change them.
    let (st, list) = scientist.get("/api/v1/policies?project=alpha").await;
    assert_eq!(st, 200);
    assert_eq!(list["items"][0]["name"], "mfa-for-changes");
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        scientist
            .call("DELETE", &format!("/api/v1/policies/{id}"), None)
            .await
            .0,
        403
    );
    assert_eq!(
        scientist
            .post(
                "/api/v1/policies",
                json!({"name": "mine", "project": "alpha", "body": inside})
            )
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn support_grants_need_a_reason_an_approver_and_end() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let (owner, scientist, _viewer, _outsider) = project_with_roles(&admin, &s).await;

    // The admin cannot read project data without a grant.
    let d = check(&admin, "admin", "notebook.open", "notebook:alpha/nb1").await;
    assert_eq!(d["allowed"], false, "{d}");

    // Bad requests change nothing.
    for body in [
        json!({"role": "support", "reason": "", "duration": "1h"}),
        json!({"role": "support", "reason": "ticket 7", "duration": "5h"}),
        json!({"role": "root", "reason": "ticket 7", "duration": "1h"}),
        json!({"role": "support", "reason": "ticket 7", "duration": "soon"}),
    ] {
        let (st, b) = admin.post("/api/v1/projects/alpha/grants", body).await;
        assert!(st == 400 || st == 422, "{st} {b}");
    }
    let (_, list) = owner.get("/api/v1/projects/alpha/grants").await;
    assert_eq!(list["items"], json!([]));

    let (st, g) = admin
        .post(
            "/api/v1/projects/alpha/grants",
            json!({"role": "support", "reason": "ticket 4411: kernel crash", "duration": "2h"}),
        )
        .await;
    assert_eq!(st, 201, "{g}");
    assert_eq!(g["status"], "pending");
    let id = g["id"].as_str().unwrap().to_string();
    // Pending: no access yet. The requester cannot approve it; a data scientist cannot either.
    let d = check(&admin, "admin", "notebook.open", "notebook:alpha/nb1").await;
    assert_eq!(d["allowed"], false, "{d}");
    let approve = format!("/api/v1/grants/{id}/approve");
    assert_eq!(admin.post(&approve, json!({})).await.0, 403);
    assert_eq!(scientist.post(&approve, json!({})).await.0, 403);
    // Members see it, with its reason.
    let (_, list) = scientist.get("/api/v1/projects/alpha/grants").await;
    assert_eq!(list["items"][0]["reason"], "ticket 4411: kernel crash");

    let (st, g) = owner.post(&approve, json!({})).await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["status"], "active");
    assert_eq!(g["decided_by"], "olivia");
    let d = check(&owner, "admin", "notebook.open", "notebook:alpha/nb1").await;
    assert_eq!(d["allowed"], true, "{d}");
    // Support never reads secret values.
    let d = check(&owner, "admin", "secret.read_value", "secret:alpha/db").await;
    assert_eq!(d["allowed"], false, "{d}");
    // Approving twice is a conflict.
    assert_eq!(owner.post(&approve, json!({})).await.0, 409);

    // Revoked: access ends at once.
    let (st, g) = owner
        .post(&format!("/api/v1/grants/{id}/revoke"), json!({}))
        .await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["status"], "revoked");
    let d = check(&owner, "admin", "notebook.open", "notebook:alpha/nb1").await;
    assert_eq!(d["allowed"], false, "{d}");
}

/// Fills the path parameters of an OpenAPI route with objects that exist.
fn concrete(path: &str, ids: &Value) -> String {
    path.replace("{name}", ids["name"].as_str().unwrap_or("alpha"))
        .replace("{username}", "sam")
        .replace("{child}", "auditors")
        .replace("{id}", ids["id"].as_str().unwrap_or("unknown"))
}

/// What [`drive_every_route`] did.
pub(crate) struct RouteRun {
    /// Operations of the OpenAPI description called.
    pub checked: usize,
    /// The bearer tokens of the accounts it created (for secret scans).
    pub tokens: Vec<String>,
}

/// Calls every operation of the served OpenAPI description three ways: unauthenticated (401),
/// as another tenant on a project's routes (404 or 403, never data) and as `admin` with the
/// route's objects existing (never 500, and every successful change leaves an audit record).
/// Creates users olivia, sam, vera and otto, projects alpha and beta, groups security and
/// auditors. Shared by the policy test and the audit secret scan, so there is one route list:
/// the server's own.
pub(crate) async fn drive_every_route(s: &Server, admin: &Api) -> RouteRun {
    let (owner, scientist, viewer, outsider) = project_with_roles(admin, s).await;
    for g in ["security", "auditors"] {
        admin.post("/api/v1/groups", json!({"name": g})).await;
    }
    let (_, spec) = admin.get("/api/v1/openapi.json").await;
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() > 30, "{}", paths.len());
    let undecided = [
        "/api/v1/auth/session",
        "/api/v1/auth/token",
        "/api/v1/auth/mfa",
        "/api/v1/auth/mfa/passkey",
        "/api/v1/auth/sources",
        "/api/v1/auth/logout",
        "/api/v1/setup",
        "/api/v1/openapi.json",
    ];
    let mut checked = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            if undecided.contains(&path.as_str()) {
                continue;
            }
            // Unauthenticated: refused before anything else.
            let url = s.url(&concrete(path, &json!({"name": "alpha"})));
            let anon = s
                .client()
                .request(method.parse().unwrap(), &url)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(anon.status().as_u16(), 401, "{method} {path}");
            // Another tenant: a project's routes give 404 or 403, never data.
            if path.contains("/projects/{name}") {
                let (st, b) = outsider
                    .call(
                        &method,
                        &concrete(path, &json!({"name": "alpha"})),
                        Some(json!({})),
                    )
                    .await;
                // (A body of the wrong shape is refused before anything is looked up.)
                let shape = st == 400 && b["code"] == "invalid_request";
                assert!(st == 404 || st == 403 || shape, "{method} {path}: {st} {b}");
            }
            // As the admin, with the route's objects existing: a handler that forgot to ask
            // the policy would answer 500 here (the router refuses undecided answers).
            let head = |page: Value| page["items"][0]["seq"].as_u64().unwrap_or(0);
            let before = head(admin.get("/api/v1/audit?limit=1").await.1);
            let (st, b) = admin
                .call(
                    &method,
                    &concrete(path, &json!({"name": "alpha"})),
                    Some(json!({})),
                )
                .await;
            assert_ne!(st, 500, "{method} {path}: {b}");
            // Every change that succeeds leaves a record (POSTs that only read excepted).
            let reads = ["/api/v1/policy/check", "/api/v1/audit/verify"];
            if method != "GET" && st < 300 && !reads.contains(&path.as_str()) {
                let after = head(admin.get("/api/v1/audit?limit=1").await.1);
                assert!(
                    after > before,
                    "{method} {path} changed something without a record"
                );
            }
            checked += 1;
        }
    }
    RouteRun {
        checked,
        tokens: [owner, scientist, viewer, outsider]
            .into_iter()
            .map(|a| a.token)
            .collect(),
    }
}

#[tokio::test]
async fn every_route_is_decided_and_other_tenants_see_nothing() {
    let s = Server::start(BIN);
    let admin = s.admin().await;
    let run = drive_every_route(&s, &admin).await;
    assert!(run.checked > 40, "{}", run.checked);
}
