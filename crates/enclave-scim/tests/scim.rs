//! Integration tests: the router over `MemoryBackend` through HTTP requests (in process), and
//! the scim2-tester compliance run against the `memory_server` example on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use enclave_scim::{
    router, MemoryBackend, ScimConfig, MAX_BODY_BYTES, MAX_COUNT, SCIM_CONTENT_TYPE,
};
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-token-0123456789";

fn app() -> Router {
    Router::new().nest(
        "/scim/v2/{source}",
        router(Arc::new(MemoryBackend::new(TOKEN)), ScimConfig::default()),
    )
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/scim/v2/okta{path}"))
        .header(header::HOST, "enclave.test");
    let mut has_auth = false;
    for (k, v) in extra {
        has_auth |= k.eq_ignore_ascii_case("authorization");
        req = req.header(*k, *v);
    }
    if !has_auth {
        req = req.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, SCIM_CONTENT_TYPE)
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn assert_scim_error(r: &Resp, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], SCIM_CONTENT_TYPE);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(r.body["status"], status.to_string());
    assert_eq!(
        r.body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{}",
        r.body
    );
    assert!(!r.body.to_string().contains(TOKEN));
}

async fn create_user(app: &Router, name: &str) -> Value {
    let r = call(app, "POST", "/Users", Some(json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":name,"active":true})), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let app = app();
    for path in [
        "/Users",
        "/Groups/x",
        "/ServiceProviderConfig",
        "/Schemas",
        "/ResourceTypes",
        "/nope",
    ] {
        let r = call(&app, "GET", path, None, &[("authorization", "")]).await;
        assert_scim_error(&r, 401, None);
        assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
        let r = call(
            &app,
            "GET",
            path,
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
        )
        .await;
        assert_scim_error(&r, 401, None);
    }
    for path in ["/Users", "/ServiceProviderConfig"] {
        let r = call(
            &app,
            "GET",
            path,
            None,
            &[("authorization", "Bearer wrong-token")],
        )
        .await;
        assert_scim_error(&r, 401, None);
    }
    let r = call(
        &app,
        "GET",
        "/Users",
        None,
        &[("authorization", &format!("Bearer {TOKEN}x"))],
    )
    .await;
    assert_scim_error(&r, 401, None);
}

#[tokio::test]
async fn discovery_documents() {
    let app = app();
    let spc = call(&app, "GET", "/ServiceProviderConfig", None, &[]).await;
    assert_eq!(spc.status, 200);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["bulk"]["supported"], false);
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(spc.body["filter"]["maxResults"], MAX_COUNT);
    assert_eq!(
        spc.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    let rt = call(&app, "GET", "/ResourceTypes/User", None, &[]).await;
    assert_eq!(rt.body["endpoint"], "/Users");
    let s = call(
        &app,
        "GET",
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group",
        None,
        &[],
    )
    .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.body["attributes"][0]["name"], "displayName");
    assert_scim_error(
        &call(&app, "GET", "/Schemas/urn:x", None, &[]).await,
        404,
        None,
    );
    assert_scim_error(&call(&app, "POST", "/Schemas", None, &[]).await, 405, None);
}

#[tokio::test]
async fn crud_with_etags() {
    let app = app();
    let u = call(
        &app,
        "POST",
        "/Users",
        Some(json!({"userName":"alice","name":{"givenName":"Alice"},"unknownAttr":1})),
        &[],
    )
    .await;
    assert_eq!(u.status, 201);
    let id = u.body["id"].as_str().unwrap().to_string();
    assert_eq!(u.headers[header::ETAG], "W/\"1\"");
    assert_eq!(u.body["meta"]["version"], "W/\"1\"");
    let loc = format!("http://enclave.test/scim/v2/okta/Users/{id}");
    assert_eq!(u.body["meta"]["location"], loc.as_str());
    assert_eq!(u.headers[header::LOCATION], loc.as_str());
    assert_eq!(u.headers[header::CONTENT_TYPE], SCIM_CONTENT_TYPE);
    assert!(u.body.get("unknownAttr").is_none());

    let g = call(&app, "GET", &format!("/Users/{id}"), None, &[]).await;
    assert_eq!(
        (g.status, g.headers[header::ETAG].to_str().unwrap()),
        (StatusCode::OK, "W/\"1\"")
    );
    let nm = call(
        &app,
        "GET",
        &format!("/Users/{id}"),
        None,
        &[("if-none-match", "W/\"1\"")],
    )
    .await;
    assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
    let changed = call(
        &app,
        "GET",
        &format!("/Users/{id}"),
        None,
        &[("if-none-match", "W/\"9\"")],
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK);

    let stale = call(
        &app,
        "PUT",
        &format!("/Users/{id}"),
        Some(json!({"userName":"alice2"})),
        &[("if-match", "W/\"0\"")],
    )
    .await;
    assert_scim_error(&stale, 412, None);
    let put = call(
        &app,
        "PUT",
        &format!("/Users/{id}"),
        Some(json!({"userName":"alice2"})),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.headers[header::ETAG], "W/\"2\"");
    assert!(
        put.body.get("name").is_none(),
        "PUT replaces: attributes left out are cleared"
    );

    let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    let stale = call(
        &app,
        "PATCH",
        &format!("/Users/{id}"),
        Some(body.clone()),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_scim_error(&stale, 412, None);
    let p = call(
        &app,
        "PATCH",
        &format!("/Users/{id}"),
        Some(body),
        &[("if-match", "W/\"2\"")],
    )
    .await;
    assert_eq!(p.status, 200);
    assert_eq!(p.body["active"], false);
    assert_eq!(p.headers[header::ETAG], "W/\"3\"");

    assert_scim_error(
        &call(
            &app,
            "DELETE",
            &format!("/Users/{id}"),
            None,
            &[("if-match", "W/\"2\"")],
        )
        .await,
        412,
        None,
    );
    let d = call(
        &app,
        "DELETE",
        &format!("/Users/{id}"),
        None,
        &[("if-match", "W/\"3\"")],
    )
    .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_scim_error(
        &call(&app, "GET", &format!("/Users/{id}"), None, &[]).await,
        404,
        None,
    );
    assert_scim_error(
        &call(&app, "DELETE", &format!("/Users/{id}"), None, &[]).await,
        404,
        None,
    );
    assert_scim_error(
        &call(
            &app,
            "PUT",
            "/Users/nope",
            Some(json!({"userName":"x"})),
            &[],
        )
        .await,
        404,
        None,
    );
}

#[tokio::test]
async fn uniqueness_and_invalid_input() {
    let app = app();
    create_user(&app, "Bob").await;
    let dup = call(&app, "POST", "/Users", Some(json!({"userName":"bob"})), &[]).await;
    assert_scim_error(&dup, 409, Some("uniqueness"));
    assert_scim_error(
        &call(
            &app,
            "POST",
            "/Users",
            Some(json!({"displayName":"no name"})),
            &[],
        )
        .await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        &call(
            &app,
            "POST",
            "/Groups",
            Some(json!({"displayName":"g","members":[{"value":"ghost"}]})),
            &[],
        )
        .await,
        400,
        Some("invalidValue"),
    );
    let r = call(&app, "GET", "/Users?filter=userName%20eq", None, &[]).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    let long = "a".repeat(3000);
    let r = call(
        &app,
        "GET",
        &format!("/Users?filter=userName%20eq%20%22{long}%22"),
        None,
        &[],
    )
    .await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    assert_scim_error(
        &call(&app, "GET", "/Users?count=abc", None, &[]).await,
        400,
        Some("invalidValue"),
    );
    let bad_patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove"}]});
    let id = create_user(&app, "carol").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_scim_error(
        &call(&app, "PATCH", &format!("/Users/{id}"), Some(bad_patch), &[]).await,
        400,
        Some("noTarget"),
    );
}

#[tokio::test]
async fn body_limits_and_media_types() {
    let app = app();
    let big = json!({"userName":"x","displayName":"a".repeat(MAX_BODY_BYTES)});
    assert_scim_error(
        &call(&app, "POST", "/Users", Some(big), &[]).await,
        413,
        None,
    );
    let req = Request::builder()
        .method("POST")
        .uri("/scim/v2/okta/Users")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"userName":"x"}"#))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let req = Request::builder()
        .method("POST")
        .uri("/scim/v2/okta/Users")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"userName":"plainjson"}"#))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::CREATED
    );
    let req = Request::builder()
        .method("POST")
        .uri("/scim/v2/okta/Users")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, SCIM_CONTENT_TYPE)
        .body(Body::from("{not json"))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn filtering_pagination_and_projection() {
    let app = app();
    for i in 0..5 {
        create_user(&app, &format!("user{i}@example.test")).await;
    }
    let r = call(
        &app,
        "GET",
        "/Users?filter=userName%20eq%20%22USER3@example.test%22",
        None,
        &[],
    )
    .await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["userName"], "user3@example.test");
    let r = call(&app, "GET", "/Users?filter=userName%20sw%20%22user%22%20and%20not%20(userName%20ew%20%220@example.test%22)", None, &[]).await;
    assert_eq!(r.body["totalResults"], 4);

    let r = call(&app, "GET", "/Users?startIndex=2&count=2", None, &[]).await;
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(
        (
            r.body["totalResults"].as_u64(),
            r.body["startIndex"].as_u64(),
            r.body["itemsPerPage"].as_u64()
        ),
        (Some(5), Some(2), Some(2))
    );
    assert_eq!(r.body["Resources"][0]["userName"], "user1@example.test");
    let r = call(&app, "GET", "/Users?startIndex=0&count=-3", None, &[]).await;
    assert_eq!(
        (
            r.body["startIndex"].as_u64(),
            r.body["itemsPerPage"].as_u64(),
            r.body["totalResults"].as_u64()
        ),
        (Some(1), Some(0), Some(5))
    );
    let r = call(&app, "GET", "/Users?startIndex=5&count=100000", None, &[]).await;
    assert_eq!(r.body["itemsPerPage"], 1);
    let r = call(&app, "GET", "/Users?startIndex=99", None, &[]).await;
    assert_eq!(
        (
            r.body["itemsPerPage"].as_u64(),
            r.body["totalResults"].as_u64()
        ),
        (Some(0), Some(5))
    );

    let r = call(&app, "GET", "/Users?attributes=userName&count=1", None, &[]).await;
    let u = &r.body["Resources"][0];
    assert!(
        u.get("userName").is_some()
            && u.get("id").is_some()
            && u.get("active").is_none()
            && u.get("meta").is_none()
    );
    let r = call(
        &app,
        "GET",
        "/Users?excludedAttributes=active,meta&count=1",
        None,
        &[],
    )
    .await;
    let u = &r.body["Resources"][0];
    assert!(u.get("userName").is_some() && u.get("active").is_none() && u.get("meta").is_none());

    let search = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName co \"4\"","attributes":["userName"]});
    let r = call(&app, "POST", "/Users/.search", Some(search), &[]).await;
    assert_eq!(r.body["totalResults"], 1);
    assert!(r.body["Resources"][0].get("active").is_none());
}

#[tokio::test]
async fn okta_and_entra_patch_shapes() {
    let app = app();
    let alice = create_user(&app, "alice").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = create_user(&app, "bob").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = |ops: Value| json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":ops});

    // Okta: deactivate with a path-less replace; Entra: capitalised op and a string boolean.
    let r = call(
        &app,
        "PATCH",
        &format!("/Users/{alice}"),
        Some(patch(json!([{"op":"replace","value":{"active":false}}]))),
        &[],
    )
    .await;
    assert_eq!(r.body["active"], false);
    let r = call(
        &app,
        "PATCH",
        &format!("/Users/{alice}"),
        Some(patch(
            json!([{"op":"Replace","path":"active","value":"True"}]),
        )),
        &[],
    )
    .await;
    assert_eq!(r.body["active"], true);
    let r = call(&app, "PATCH", &format!("/Users/{bob}"), Some(patch(json!([
        {"op":"Add","path":"emails[type eq \"work\"].value","value":"bob@work.test"},
        {"op":"Replace","path":"displayName","value":"Bob B"},
        {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"7"}
    ]))), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["emails"][0]["value"], "bob@work.test");
    assert_eq!(r.body["emails"][0]["type"], "work");

    let g = call(
        &app,
        "POST",
        "/Groups",
        Some(json!({"displayName":"analysts"})),
        &[],
    )
    .await;
    let gid = g.body["id"].as_str().unwrap().to_string();
    let r = call(
        &app,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(patch(
            json!([{"op":"add","path":"members","value":[{"value":alice},{"value":bob}]}]),
        )),
        &[],
    )
    .await;
    assert_eq!(r.body["members"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.body["members"][1]["$ref"],
        format!("http://enclave.test/scim/v2/okta/Users/{bob}").as_str()
    );
    let u = call(&app, "GET", &format!("/Users/{alice}"), None, &[]).await;
    assert_eq!(u.body["groups"][0]["value"], gid.as_str());
    assert_eq!(u.body["groups"][0]["display"], "analysts");
    let path = format!("members[value eq \"{alice}\"]");
    let r = call(
        &app,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(patch(json!([{"op":"remove","path":path}]))),
        &[],
    )
    .await;
    assert_eq!(r.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["members"][0]["value"], bob.as_str());
    let u = call(&app, "GET", &format!("/Users/{alice}"), None, &[]).await;
    assert!(u.body.get("groups").is_none());
    let r = call(
        &app,
        "GET",
        &format!("/Groups?filter=members.value%20eq%20%22{bob}%22"),
        None,
        &[],
    )
    .await;
    assert_eq!(r.body["totalResults"], 1);
    // Deleting a user removes it from its groups.
    call(&app, "DELETE", &format!("/Users/{bob}"), None, &[]).await;
    let g = call(&app, "GET", &format!("/Groups/{gid}"), None, &[]).await;
    assert!(g.body.get("members").is_none());
    let e = call(
        &app,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(patch(
            json!([{"op":"replace","path":"members[value eq \"x\"].display","value":"y"}]),
        )),
        &[],
    )
    .await;
    assert_scim_error(&e, 400, Some("noTarget"));
}

/// Kills the example server when the test ends, passing or not.
struct ServerGuard(std::process::Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs scim2-tester (through tests/scim_compliance.py) against the memory_server example.
#[test]
fn scim2_tester_compliance() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let probe = Command::new("python3")
        .args(["-c", "import scim2_tester, scim2_client, httpx2"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "scim2-tester is missing: python3 -m pip install --break-system-packages scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3"
    );
    // cargo test builds the examples next to the test binaries: target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("memory_server");
    assert!(
        server_bin.exists(),
        "{} is missing; run `cargo test -p enclave-scim` (it builds the examples)",
        server_bin.display()
    );

    let token = format!("compliance-{}", std::process::id());
    let mut child = Command::new(&server_bin)
        .arg("0")
        .env("SCIM_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = ServerGuard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("server said {line:?}"));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scim_compliance.py");
    let out = Command::new("python3")
        .args([
            script,
            &format!("http://127.0.0.1:{port}/scim/v2/compliance"),
            "-",
            "--json",
        ])
        .env("SCIM_TOKEN", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .expect("the runner's last line is a JSON summary");
    assert_eq!(summary["failed"], json!([]), "scim2-tester checks failed");
    assert!(out.status.success());
    // Only the two cross-type POST /.search checks may be skipped (RFC 7644 §3.4.3 makes it optional).
    assert_eq!(summary["skipped"], 2, "{stdout}");
    assert!(summary["passed"].as_u64().unwrap() >= 60, "{stdout}");
    assert!(!stdout.contains(&token));
}
