//! Identity source commands against the mock API: every command, the bodies sent (JSON and
//! TOML files, secrets from the environment), local checks that send nothing, API errors and
//! the exit code of a failed test.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{cli, start, Mock, Req, SECRET};
use crate::config::{Credentials, CA_FILE};

/// The client secret the tests pass through the environment.
const CLIENT_SECRET: &str = "oidc-client-SECRET-42";
/// The SCIM token the mock hands out.
const SCIM_TOKEN: &str = "enc_scim_TOKENTOKEN";
/// The LDAP password typed for `idp test`.
const LDAP_PASSWORD: &str = "ldap pass word";

fn oidc_source() -> Value {
    json!({"name": "corp", "kind": "oidc", "display_name": "Corp SSO", "enabled": true,
        "oidc": {"issuer": "https://idp.example", "client_id": "enclave",
            "client_secret_set": true, "scopes": ["openid", "email", "profile"],
            "algorithms": ["RS256"], "email_claim": "email", "name_claim": "name",
            "groups_claim": "groups", "use_userinfo": false, "internal": false,
            "redirect_uri": "https://h/auth/oidc/corp/callback"},
        "ldap": null,
        "admission": {"mode": "domains", "domains": ["corp.example"], "groups": []},
        "mappings": [{"idp_group": "data-scientists", "group": "ds", "platform_role": null,
            "project": "fraud", "project_role": "editor"}],
        "scim_token_set": true, "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T00:00:00Z", "last_sync_at": null})
}

fn ldap_source() -> Value {
    json!({"name": "dir", "kind": "ldap", "display_name": "Directory", "enabled": false,
        "oidc": null,
        "ldap": {"url": "ldaps://dir.example", "starttls": false, "allow_plain": false,
            "ca_pem_set": false, "bind_dn": "cn=enclave,dc=example", "bind_password_set": true,
            "user_base": "ou=people,dc=example", "user_filter": "(uid={username})",
            "group_base": "ou=groups,dc=example", "username_attr": "uid", "email_attr": "mail",
            "name_attr": "cn", "nested_groups": "member_of", "disabled_filter": null,
            "sync_interval": "5m"},
        "admission": {"mode": "all", "domains": [], "groups": []},
        "mappings": [], "scim_token_set": false, "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "last_sync_at": "2026-01-03T00:00:00Z"})
}

/// The mock API: `corp` (OIDC) and `dir` (LDAP) exist; `dir` passes the test with
/// LDAP_PASSWORD, `corp`'s test fails; `broken` answers 500.
fn answer(req: &Req) -> (u16, String) {
    if req.header("authorization") != Some(&format!("Bearer {SECRET}")) {
        let no = json!({"code": "unauthenticated", "message": "no"});
        return (401, no.to_string());
    }
    let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
    let (status, answer) = match (req.method.as_str(), req.target.as_str()) {
        ("GET", "/api/v1/identity-sources") => {
            (200, json!({"sources": [oidc_source(), ldap_source()]}))
        }
        ("GET", "/api/v1/identity-sources/corp") => (200, oidc_source()),
        ("GET", "/api/v1/identity-sources/dir") => (200, ldap_source()),
        ("PUT", "/api/v1/identity-sources/corp") | ("PUT", "/api/v1/identity-sources/dir") => {
            if body["admission"]["mode"] == "nobody" {
                (
                    400,
                    json!({"code": "invalid_input", "message": "admission mode must be all, domains or groups",
                        "details": {"field": "admission.mode"}}),
                )
            } else {
                let mut source = if body["kind"] == "ldap" {
                    ldap_source()
                } else {
                    oidc_source()
                };
                source["display_name"] = body["display_name"].clone();
                (200, source)
            }
        }
        ("DELETE", "/api/v1/identity-sources/corp") => return (204, String::new()),
        ("POST", "/api/v1/identity-sources/dir/test") => {
            if body == json!({"username": "alice", "password": LDAP_PASSWORD}) {
                (
                    200,
                    json!({"ok": true, "detail": "bound as uid=alice,ou=people",
                        "identity": {"subject": "uid=alice,ou=people", "email": "alice@example",
                            "name": "Alice", "groups": ["data-scientists", "staff"]},
                        "admitted": true, "reason": null}),
                )
            } else {
                (
                    200,
                    json!({"ok": false, "detail": "invalid credentials", "identity": null,
                        "admitted": null, "reason": null}),
                )
            }
        }
        ("POST", "/api/v1/identity-sources/corp/test") => (
            200,
            json!({"ok": false, "detail": "cannot reach https://idp.example: connection refused",
                "identity": null, "admitted": null, "reason": null}),
        ),
        ("GET", "/api/v1/identity-sources/corp/last-login") => (
            200,
            json!({"at": "2026-01-05T10:00:00Z", "subject": "00u1", "admitted": false,
                "reason": "email domain other.example is not admitted",
                "claims": {"sub": "00u1", "email": "bob@other.example", "groups": ["x"],
                    "nested": {"amr": ["pwd", "mfa"]}}}),
        ),
        ("POST", "/api/v1/identity-sources/corp/scim-token") => (
            200,
            json!({"token": SCIM_TOKEN, "scim_url": "https://h/scim/v2/corp"}),
        ),
        ("POST", "/api/v1/identity-sources/dir/sync") => {
            (200, json!({"checked": 12, "updated": 3, "deactivated": 1}))
        }
        ("GET", "/api/v1/identity-sources/broken") => (
            500,
            json!({"code": "internal", "message": "unexpected", "details": {"request_id": "req-7"}}),
        ),
        _ => (
            404,
            json!({"code": "not_found", "message": "identity source not found"}),
        ),
    };
    (status, answer.to_string())
}

/// A mock API and a config dir logged in to it.
async fn session() -> (Mock, tempfile::TempDir) {
    let mock = start(Arc::new(answer)).await;
    let tmp = tempfile::tempdir().unwrap();
    let creds = Credentials {
        server: mock.url(),
        username: "alice".into(),
        token: SECRET.into(),
        token_id: json!("t1"),
    };
    crate::config::save_credentials(tmp.path(), &creds).unwrap();
    crate::config::write_private(tmp.path(), CA_FILE, mock.cert_pem.as_bytes()).unwrap();
    (mock, tmp)
}

/// The requests made: method and target.
fn calls(mock: &Mock) -> Vec<(String, String)> {
    mock.requests()
        .into_iter()
        .map(|r| (r.method, r.target))
        .collect()
}

fn call(method: &str, target: &str) -> (String, String) {
    (method.to_string(), target.to_string())
}

/// The JSON body of the last request.
fn last_body(mock: &Mock) -> Value {
    serde_json::from_str(&mock.requests().last().unwrap().body).unwrap()
}

#[tokio::test]
async fn list_and_show() {
    let (mock, tmp) = session().await;
    let (code, out, err) = cli(tmp.path(), &["idp", "list"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "NAME  KIND  ENABLED  ADMISSION              SCIM TOKEN  DISPLAY NAME\n\
         corp  oidc  yes      domains: corp.example  yes         Corp SSO\n\
         dir   ldap  no       everyone               no          Directory\n"
    );
    let (code, out, _) = cli(tmp.path(), &["--output", "json", "idp", "list"], "").await;
    assert_eq!(code, 0);
    let items: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(items, vec![oidc_source(), ldap_source()]);

    let (code, out, err) = cli(tmp.path(), &["idp", "show", "dir"], "").await;
    assert_eq!(code, 0, "{err}");
    for line in [
        "kind:            ldap\n",
        "url:             ldaps://dir.example\n",
        "bind password:   set\n",
        "ca pem:          not set\n",
        "user filter:     (uid={username})\n",
        "admission:       everyone\n",
        "last sync at:    2026-01-03T00:00:00Z\n",
        "mappings: - (no IdP group gives a group or role)\n",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    let (code, out, _) = cli(tmp.path(), &["--output", "json", "idp", "show", "corp"], "").await;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), oidc_source());

    // Not found: the API's error and a hint at the listing (exit 3).
    let (code, out, err) = cli(tmp.path(), &["idp", "show", "nope"], "").await;
    assert_eq!((code, out.as_str()), (3, ""));
    assert_eq!(
        err,
        "error: identity source not found (not_found)\nhint: check the name: `enclave idp \
         list` lists the identity sources\n"
    );
    // A server failure names the request id (exit 4).
    let (code, _, err) = cli(tmp.path(), &["idp", "show", "broken"], "").await;
    assert_eq!(code, 4, "{err}");
    assert!(
        err.starts_with("error: unexpected (internal)\n") && err.contains("req-7"),
        "{err}"
    );
    assert_eq!(
        calls(&mock),
        vec![
            call("GET", "/api/v1/identity-sources"),
            call("GET", "/api/v1/identity-sources"),
            call("GET", "/api/v1/identity-sources/dir"),
            call("GET", "/api/v1/identity-sources/corp"),
            call("GET", "/api/v1/identity-sources/nope"),
            call("GET", "/api/v1/identity-sources/broken"),
        ]
    );
}

#[tokio::test]
async fn put_json_with_a_secret_from_the_environment() {
    let (mock, tmp) = session().await;
    // The output of `idp show --output json` is a valid file: read-only fields are dropped.
    let file = tmp.path().join("corp.json");
    let mut shown = oidc_source();
    shown["display_name"] = json!("Corp SSO 2");
    std::fs::write(&file, serde_json::to_vec(&shown).unwrap()).unwrap();
    let var = format!("ENCLAVE_TEST_IDP_SECRET_{}", std::process::id());
    std::env::set_var(&var, CLIENT_SECRET);
    let args = [
        "idp",
        "put",
        "corp",
        "--file",
        file.to_str().unwrap(),
        "--client-secret-env",
        &var,
    ];
    let (code, out, err) = cli(tmp.path(), &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("name:          corp\n") && out.contains("display name:  Corp SSO 2\n"),
        "{out}"
    );
    assert!(out.contains("client secret: set\n"), "{out}");
    assert!(!out.contains(CLIENT_SECRET) && !err.contains(CLIENT_SECRET));
    assert_eq!(
        calls(&mock),
        vec![call("PUT", "/api/v1/identity-sources/corp")]
    );
    let mut expected = shown.clone();
    let o = expected.as_object_mut().unwrap();
    for key in [
        "name",
        "created_at",
        "updated_at",
        "last_sync_at",
        "scim_token_set",
    ] {
        o.remove(key);
    }
    let oidc = expected["oidc"].as_object_mut().unwrap();
    oidc.remove("client_secret_set");
    oidc.remove("redirect_uri");
    oidc.insert("client_secret".into(), json!(CLIENT_SECRET));
    assert_eq!(last_body(&mock), expected);

    // With --output json the answer is printed as the server sent it, never a secret.
    let json_args = [&["--output", "json"][..], &args[..]].concat();
    let (code, out, _) = cli(tmp.path(), &json_args, "").await;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["name"], "corp");
    assert!(!out.contains(CLIENT_SECRET));

    // The API refuses the source: its error is printed (exit 3) and the secret redacted.
    let mut refused = shown.clone();
    refused["admission"]["mode"] = json!("nobody");
    std::fs::write(&file, serde_json::to_vec(&refused).unwrap()).unwrap();
    let (code, out, err) = cli(tmp.path(), &args, "").await;
    std::env::remove_var(&var);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert_eq!(
        err,
        "error: admission mode must be all, domains or groups (invalid_input)\nhint: fix the \
         value of `admission.mode`\n"
    );
    assert_eq!(last_body(&mock)["oidc"]["client_secret"], CLIENT_SECRET);

    // The variable is gone now: a clear error, nothing sent.
    let before = mock.requests().len();
    let (code, _, err) = cli(tmp.path(), &args, "").await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: the environment variable {var} (--client-secret-env) is not set (usage)\n"
        )),
        "{err}"
    );
    assert_eq!(mock.requests().len(), before);
}

#[tokio::test]
async fn put_toml_and_stdin() {
    let (mock, tmp) = session().await;
    let file = tmp.path().join("dir.toml");
    std::fs::write(
        &file,
        r#"# The company directory.
kind = "ldap"
display_name = "Directory"
enabled = true

[ldap]
url = "ldaps://dir.example"
bind_dn = "cn=enclave,dc=example"
bind_password = "bind-SECRET-pw"
user_base = "ou=people,dc=example"
user_filter = "(uid={username})"
nested_groups = "member_of"
sync_interval = "5m"

[admission]
mode = "groups"
groups = ["staff"]

[[mappings]]
idp_group = "data-scientists"
group = "ds"

[[mappings]]
idp_group = "admins"
platform_role = "admin"
"#,
    )
    .unwrap();
    let (code, out, err) = cli(
        tmp.path(),
        &["idp", "put", "dir", "--file", file.to_str().unwrap()],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bind password:   set\n"), "{out}");
    assert!(!out.contains("bind-SECRET-pw"));
    assert_eq!(
        last_body(&mock),
        json!({"kind": "ldap", "display_name": "Directory", "enabled": true,
            "ldap": {"url": "ldaps://dir.example", "bind_dn": "cn=enclave,dc=example",
                "bind_password": "bind-SECRET-pw", "user_base": "ou=people,dc=example",
                "user_filter": "(uid={username})", "nested_groups": "member_of",
                "sync_interval": "5m"},
            "admission": {"mode": "groups", "groups": ["staff"]},
            "mappings": [{"idp_group": "data-scientists", "group": "ds"},
                         {"idp_group": "admins", "platform_role": "admin"}]})
    );

    // `-` reads JSON from stdin; the bind password comes from the environment.
    let var = format!("ENCLAVE_TEST_IDP_BIND_{}", std::process::id());
    std::env::set_var(&var, "env-bind-SECRET");
    let stdin = json!({"kind": "ldap", "display_name": "From stdin",
        "ldap": {"url": "ldaps://dir.example"}, "admission": {"mode": "all"}})
    .to_string();
    let args = [
        "idp",
        "put",
        "dir",
        "--file",
        "-",
        "--bind-password-env",
        &var,
    ];
    let (code, out, err) = cli(tmp.path(), &args, &stdin).await;
    std::env::remove_var(&var);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("display name:    From stdin\n"), "{out}");
    assert!(!out.contains("env-bind-SECRET"));
    assert_eq!(
        last_body(&mock),
        json!({"kind": "ldap", "display_name": "From stdin",
            "ldap": {"url": "ldaps://dir.example", "bind_password": "env-bind-SECRET"},
            "admission": {"mode": "all"}})
    );
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn bad_files_send_nothing() {
    let (mock, tmp) = session().await;
    let dir = tmp.path().to_path_buf();
    let put = |file: String| {
        let dir = dir.clone();
        async move {
            let args = ["idp", "put", "corp", "--file", file.as_str()];
            cli(&dir, &args, "{").await
        }
    };
    let path = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };

    let (code, _, err) = put(path("bad.toml", "kind = \"oidc\"\n[oidc\nissuer = 1\n")).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: {} is not valid TOML (usage)\n",
            tmp.path().join("bad.toml").display()
        )) && err.contains("line 2"),
        "{err}"
    );

    let (code, _, err) = put(path("bad.json", "{\"kind\": \"oidc\",}")).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.json is not valid JSON"), "{err}");

    let (code, _, err) = put(path(
        "typo.json",
        r#"{"kind": "oidc", "oidc": {}, "admision": {}}"#,
    ))
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("typo.json: unknown field `admision`"), "{err}");

    let (code, _, err) = put(path("source.yaml", "kind: oidc\n")).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("name the file .json or .toml"), "{err}");

    let big = format!("{{\"display_name\": \"{}\"}}", "x".repeat(70 * 1024));
    let (code, _, err) = put(path("big.json", &big)).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("larger than 64 KiB"), "{err}");

    let missing = tmp.path().join("missing.json");
    let (code, _, err) = put(missing.to_str().unwrap().to_string()).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot read the source file"), "{err}");

    // Stdin (`-`) is JSON: the `{` the helper pipes in is incomplete.
    let (code, _, err) = put("-".into()).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("<stdin> is not valid JSON"), "{err}");

    // A secret flag for the other kind.
    let file = path(
        "ldap.json",
        r#"{"kind": "ldap", "ldap": {"url": "ldaps://x"}}"#,
    );
    std::env::set_var("ENCLAVE_TEST_IDP_UNUSED", "unused-secret");
    let args = [
        "idp",
        "put",
        "dir",
        "--file",
        file.as_str(),
        "--client-secret-env",
        "ENCLAVE_TEST_IDP_UNUSED",
    ];
    let (code, out, err) = cli(tmp.path(), &args, "").await;
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("the file has none") && !err.contains("unused-secret"),
        "{err}"
    );

    assert!(mock.requests().is_empty(), "{:?}", calls(&mock));
}

#[tokio::test]
async fn delete_claims_scim_token_and_sync() {
    let (mock, tmp) = session().await;
    let (code, out, err) = cli(tmp.path(), &["idp", "delete", "corp"], "").await;
    assert_eq!(
        (code, out.as_str()),
        (0, "Deleted identity source corp.\n"),
        "{err}"
    );
    let (code, out, _) = cli(
        tmp.path(),
        &["--output", "json", "idp", "delete", "corp"],
        "",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, _, err) = cli(tmp.path(), &["idp", "delete", "gone"], "").await;
    assert_eq!(code, 3);
    assert!(err.contains("`enclave idp list`"), "{err}");

    let (code, out, err) = cli(tmp.path(), &["idp", "claims", "corp"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "at:       2026-01-05T10:00:00Z\nsubject:  00u1\nadmitted: no\n\
             reason:   email domain other.example is not admitted\nclaims:\n{\n"
        ),
        "{out}"
    );
    let claims: Value = serde_json::from_str(out.split_once("claims:\n").unwrap().1).unwrap();
    assert_eq!(claims["nested"]["amr"], json!(["pwd", "mfa"]));
    assert!(
        out.contains("\n  \"email\": \"bob@other.example\",\n"),
        "{out}"
    );
    let (code, out, _) = cli(
        tmp.path(),
        &["--output", "json", "idp", "claims", "corp"],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["claims"]["sub"],
        "00u1"
    );
    let (code, _, err) = cli(tmp.path(), &["idp", "claims", "dir"], "").await;
    assert_eq!(code, 3);
    assert!(
        err.contains("nobody has signed in through identity source dir yet"),
        "{err}"
    );

    let (code, out, err) = cli(tmp.path(), &["idp", "scim-token", "corp"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "scim url: https://h/scim/v2/corp\ntoken:    {SCIM_TOKEN}\nThis token is shown only \
             once: store it now, in the identity provider's SCIM settings. It replaces the \
             previous token.\n"
        )
    );
    let (code, out, err) = cli(
        tmp.path(),
        &["--output", "json", "idp", "scim-token", "corp"],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"token": SCIM_TOKEN, "scim_url": "https://h/scim/v2/corp"})
    );
    assert!(err.contains("shown only once"), "{err}");

    let (code, out, err) = cli(tmp.path(), &["idp", "sync", "dir"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "checked:     12\nupdated:     3\ndeactivated: 1\n");
    let (code, out, _) = cli(tmp.path(), &["--output", "json", "idp", "sync", "dir"], "").await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"checked": 12, "updated": 3, "deactivated": 1})
    );
    assert_eq!(
        calls(&mock),
        vec![
            call("DELETE", "/api/v1/identity-sources/corp"),
            call("DELETE", "/api/v1/identity-sources/corp"),
            call("DELETE", "/api/v1/identity-sources/gone"),
            call("GET", "/api/v1/identity-sources/corp/last-login"),
            call("GET", "/api/v1/identity-sources/corp/last-login"),
            call("GET", "/api/v1/identity-sources/dir/last-login"),
            call("POST", "/api/v1/identity-sources/corp/scim-token"),
            call("POST", "/api/v1/identity-sources/corp/scim-token"),
            call("POST", "/api/v1/identity-sources/dir/sync"),
            call("POST", "/api/v1/identity-sources/dir/sync"),
        ]
    );
}

#[tokio::test]
async fn test_ldap_and_oidc_sources() {
    let (mock, tmp) = session().await;
    let args = ["idp", "test", "dir", "--username", "alice"];
    let (code, out, err) = cli(tmp.path(), &args, &format!("{LDAP_PASSWORD}\nmore\n")).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "result:   ok\ndetail:   bound as uid=alice,ou=people\nsubject:  uid=alice,ou=people\n\
         email:    alice@example\nname:     Alice\ngroups:   data-scientists, staff\n\
         admitted: yes\n"
    );
    assert!(!out.contains(LDAP_PASSWORD) && !err.contains(LDAP_PASSWORD));
    assert_eq!(
        last_body(&mock),
        json!({"username": "alice", "password": LDAP_PASSWORD})
    );

    // A wrong password: the result is printed, then an error (exit 1).
    let (code, out, err) = cli(tmp.path(), &args, "wrong-password\n").await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        out,
        "result:   FAILED\ndetail:   invalid credentials\nadmitted: - (not checked)\n"
    );
    assert!(
        err.starts_with("error: identity source dir did not pass the test (test_failed)\nhint: "),
        "{err}"
    );
    // The same with --output json: the result on stdout, exit 1.
    let json_args = [&["--output", "json"][..], &args[..]].concat();
    let (code, out, _) = cli(tmp.path(), &json_args, "wrong-password\n").await;
    assert_eq!(code, 1);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["ok"], false);

    // LDAP without --username, or without a password: nothing is tested.
    let before = mock.requests().len();
    let (code, _, err) = cli(tmp.path(), &["idp", "test", "dir"], "pw\n").await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give --username U"), "{err}");
    let (code, _, err) = cli(tmp.path(), &args, "").await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("empty password on stdin"), "{err}");
    let tests = mock
        .requests()
        .iter()
        .skip(before)
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(tests, 0);

    // OIDC: an empty body, no password read; the provider cannot be reached (exit 1).
    let (code, out, err) = cli(
        tmp.path(),
        &["idp", "test", "corp", "--username", "bob"],
        "",
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        out.starts_with("result:   FAILED\ndetail:   cannot reach https://idp.example"),
        "{out}"
    );
    assert!(
        err.starts_with("warning: identity source corp is not LDAP"),
        "{err}"
    );
    assert_eq!(last_body(&mock), json!({}));
    let (code, _, err) = cli(tmp.path(), &["idp", "test", "nope"], "").await;
    assert_eq!(code, 3, "{err}");
}
