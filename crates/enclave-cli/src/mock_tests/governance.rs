//! Policy, role binding, grant, project attribute and subgroup commands against the mock API.

use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use serde_json::{json, Value};

use super::{cli, start, Mock, Req, TestCli, SECRET};
use crate::config::{Credentials, CA_FILE};

const POLICY_TEXT: &str =
    "permit(\n  principal in Group::\"ds\",\n  action == Action::\"project.read\",\n  resource in Project::\"fraud\"\n);\n";

fn policy(project: Option<&str>) -> Value {
    json!({"id": "pol_1", "name": "ds-read", "project": project, "description": "DS may read",
        "body": POLICY_TEXT, "created_by": "alice", "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-02T00:00:00Z"})
}

fn binding() -> Value {
    json!({"id": "rb_1", "subject": "group:ds", "role": "data_scientist", "project": "fraud",
        "expires_at": "2025-01-01T08:00:00Z", "created_by": "alice",
        "created_at": "2025-01-01T00:00:00Z"})
}

fn grant(status: &str) -> Value {
    json!({"id": "grt_1", "project": "fraud", "grantee": "sam", "role": "support",
        "reason": "ticket 4411", "duration_secs": 7200, "status": status,
        "requested_at": "2025-01-01T00:00:00Z", "decided_by": null, "decided_at": null,
        "starts_at": null, "expires_at": null, "revoked_by": null, "revoked_at": null})
}

fn project(tags: Value) -> Value {
    json!({"name": "fraud", "description": "d", "owner": "alice", "your_role": "owner",
        "member_count": 1, "classification": "internal", "tags": tags,
        "requires_approval": true, "created_at": "2025-01-01T00:00:00Z"})
}

fn invalid_body(line: u64, column: u64) -> Value {
    json!({"code": "invalid_input",
        "message": format!("syntax error at {line}:{column}: unexpected token `)`"),
        "details": {"field": "body", "line": line, "column": column}})
}

fn api(req: &Req) -> (u16, String) {
    if req.header("authorization") != Some(&format!("Bearer {SECRET}")) {
        return (
            401,
            json!({"code": "unauthenticated", "message": "no"}).to_string(),
        );
    }
    let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
    let (status, answer) = match (req.method.as_str(), req.target.as_str()) {
        ("GET", "/api/v1/policies") => (200, json!({"items": [policy(None)], "next": null})),
        ("GET", "/api/v1/policies?project=fraud") => {
            (200, json!({"items": [policy(Some("fraud"))]}))
        }
        ("GET", "/api/v1/policies/pol_1") => (200, policy(Some("fraud"))),
        ("POST", "/api/v1/policies") if body["name"] == "broken" => (400, invalid_body(3, 35)),
        // The wrapped error shape is understood too.
        ("POST", "/api/v1/policies") if body["name"] == "wrapped" => {
            (400, json!({"error": invalid_body(1, 7)}))
        }
        ("POST", "/api/v1/policies") => (201, policy(body["project"].as_str())),
        ("PATCH", "/api/v1/policies/pol_1") if body["body"] == "permit(oops);" => {
            (400, invalid_body(1, 8))
        }
        ("PATCH", "/api/v1/policies/pol_1") => (200, policy(Some("fraud"))),
        ("DELETE", "/api/v1/policies/pol_1")
        | ("DELETE", "/api/v1/roles/rb_1")
        | ("PUT", "/api/v1/groups/ds/subgroups/ds-juniors")
        | ("DELETE", "/api/v1/groups/ds/subgroups/ds-juniors") => return (204, String::new()),
        ("POST", "/api/v1/policy/check") if body["principal"] == "alice" => (
            200,
            json!({"allowed": true, "decision": "allow",
                "determining": ["builtin.project_owner", "custom.pol_1"],
                "explanation": "permitted by builtin.project_owner (role project_owner on project fraud)",
                "roles": [{"role": "project_owner", "origin": "membership", "scope": "project:fraud",
                    "via_group": null, "expires_at": null}],
                "errors": []}),
        ),
        ("POST", "/api/v1/policy/check") if body["principal"] == "user:bob" => (
            200,
            json!({"allowed": false, "decision": "deny", "determining": [],
                "explanation": "no policy permits", "roles": [],
                "errors": ["custom.pol_9: attribute `tags` not found"]}),
        ),
        ("POST", "/api/v1/policy/check") => (
            403,
            json!({"code": "forbidden", "message": "you may not explain decisions"}),
        ),
        ("GET", "/api/v1/policy/can?principal=alice&project=fraud") => (
            200,
            json!({"principal": "alice", "project": "fraud",
                "actions": ["project.read", "project.update"]}),
        ),
        ("GET", "/api/v1/policy/can?principal=nobody&project=fraud") => (
            200,
            json!({"principal": "nobody", "project": "fraud", "actions": []}),
        ),
        ("GET", "/api/v1/roles?project=fraud") => (200, json!({"items": [binding()]})),
        ("GET", "/api/v1/roles") => (
            200,
            json!({"items": [{"id": "rb_0", "subject": "user:alice", "role": "security_auditor",
                "project": null, "expires_at": null, "created_by": "admin",
                "created_at": "2025-01-01T00:00:00Z"}]}),
        ),
        ("POST", "/api/v1/roles") => (201, binding()),
        ("GET", "/api/v1/projects/fraud/grants") => {
            (200, json!({"items": [grant("pending"), grant("expired")]}))
        }
        ("POST", "/api/v1/projects/fraud/grants") => (201, grant("pending")),
        ("POST", "/api/v1/grants/grt_1/approve") => (200, grant("active")),
        ("POST", "/api/v1/grants/grt_1/deny") => (200, grant("denied")),
        ("POST", "/api/v1/grants/grt_1/revoke") => (200, grant("revoked")),
        ("POST", "/api/v1/grants/grt_2/approve") => (
            409,
            json!({"code": "conflict", "message": "the grant is not pending"}),
        ),
        ("GET", "/api/v1/projects/fraud") => (200, project(json!({"team": "risk", "cost": "c1"}))),
        ("PATCH", "/api/v1/projects/fraud") => {
            let mut p = project(body.get("tags").cloned().unwrap_or(json!({})));
            if let Some(c) = body.get("classification") {
                p["classification"] = c.clone();
            }
            (200, p)
        }
        _ => (
            404,
            json!({"code": "not_found", "message": "no such thing"}),
        ),
    };
    (status, answer.to_string())
}

/// A mock API and a config dir logged in to it.
async fn session() -> (Mock, tempfile::TempDir) {
    let mock = start(Arc::new(api)).await;
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

/// The last request: method, target and JSON body (`Null` when empty).
fn last(mock: &Mock) -> (String, String, Value) {
    let req = mock.requests().last().cloned().unwrap();
    let body = serde_json::from_str(&req.body).unwrap_or(Value::Null);
    (req.method, req.target, body)
}

fn sent(method: &str, target: &str, body: Value) -> (String, String, Value) {
    (method.to_string(), target.to_string(), body)
}

fn parse(args: &[&str]) -> Result<TestCli, clap::Error> {
    TestCli::try_parse_from(std::iter::once("enclave").chain(args.iter().copied()))
}

fn write(dir: &Path, name: &str, content: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn bad_arguments_are_usage_errors() {
    let refused = |args: &[&str], needle: &str| {
        let err = parse(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
        let text = err.to_string();
        assert!(text.contains(needle), "{args:?}: {text}");
    };
    refused(&["policy", "create", "p"], "--file");
    refused(
        &["policy", "create", "p", "--file", "f", "--stdin"],
        "cannot be used",
    );
    refused(
        &["policy", "update", "x", "--file", "f", "--stdin"],
        "cannot be used",
    );
    refused(
        &[
            "policy",
            "check",
            "--principal",
            "a",
            "--action",
            "x",
            "--resource",
            "platform",
            "--context",
            "[1]",
        ],
        "JSON object",
    );
    refused(
        &[
            "policy",
            "check",
            "--principal",
            "a",
            "--action",
            "x",
            "--resource",
            "platform",
            "--context",
            "{mfa: true}",
        ],
        "not valid JSON",
    );
    refused(
        &["policy", "check", "--principal", "a", "--action", "x"],
        "--resource",
    );
    refused(&["policy", "can", "--principal", "a"], "--project");
    refused(&["roles", "bind", "viewer"], "--user");
    refused(
        &["roles", "bind", "viewer", "--user", "a", "--group", "g"],
        "cannot be used",
    );
    refused(&["grants", "list"], "--project");
    for bad in ["", "h", "2 hours", "1h30m", "5mm", "2w", "1.5h"] {
        refused(
            &[
                "roles",
                "bind",
                "viewer",
                "--user",
                "a",
                "--expires-in",
                bad,
            ],
            "e.g. 30m",
        );
    }
    for good in ["90", "45s", "30m", "8h", "2d"] {
        assert!(parse(&[
            "roles",
            "bind",
            "viewer",
            "--user",
            "a",
            "--expires-in",
            good
        ])
        .is_ok());
    }
    let request = [
        "grants",
        "request",
        "--project",
        "p",
        "--reason",
        "r",
        "--duration",
        "2h",
    ];
    let with_role = |role: &str| {
        let mut args = request.to_vec();
        args.extend(["--role", role]);
        parse(&args)
    };
    assert!(with_role("project_admin").is_ok());
    assert!(with_role("project-admin").is_ok());
    assert!(with_role("support").is_ok());
    assert_eq!(with_role("boss").unwrap_err().exit_code(), 2);
    refused(
        &[
            "grants",
            "request",
            "--project",
            "p",
            "--role",
            "support",
            "--reason",
            "r",
            "--duration",
            "soon",
        ],
        "e.g. 30m",
    );
    refused(&["projects", "update", "p", "--tag", "team"], "KEY=VALUE");
    refused(&["projects", "update", "p", "--tag", "=x"], "KEY=VALUE");
    refused(
        &["projects", "update", "p", "--requires-approval", "maybe"],
        "true",
    );
    refused(
        &[
            "projects",
            "update",
            "p",
            "--clear-tags",
            "--remove-tag",
            "a",
        ],
        "cannot be used",
    );
    assert!(parse(&["projects", "update", "p", "--tag", "empty="]).is_ok());
    refused(&["groups", "add-subgroup", "g"], "CHILD");
}

#[tokio::test]
async fn bad_local_input_sends_nothing() {
    let (mock, tmp) = session().await;
    let dir = tmp.path();
    let big = write(dir, "big.cedar", &vec![b' '; 16 * 1024 + 1]);
    let latin1 = write(
        dir,
        "latin1.cedar",
        b"permit(principal, action, resource) when { \xe9 };",
    );
    let blank = write(dir, "blank.cedar", b" \n\t\n");
    let too_long = "x".repeat(16 * 1024 + 1);
    let cases: Vec<(Vec<&str>, &str, i32, &str)> = vec![
        (
            vec!["policy", "create", "p", "--file", &big],
            "",
            2,
            "larger than 16 KiB",
        ),
        (
            vec!["policy", "create", "p", "--stdin"],
            &too_long,
            2,
            "<stdin> is larger",
        ),
        (
            vec!["policy", "create", "p", "--file", &latin1],
            "",
            2,
            "not UTF-8",
        ),
        (
            vec!["policy", "create", "p", "--file", &blank],
            "",
            2,
            "is empty",
        ),
        (
            vec!["policy", "create", "p", "--stdin"],
            "",
            2,
            "<stdin> is empty",
        ),
        (
            vec!["policy", "create", "p", "--file", "/nonexistent/p.cedar"],
            "",
            1,
            "cannot read the policy file",
        ),
        (
            vec!["policy", "update", "pol_1"],
            "",
            2,
            "nothing to change",
        ),
        (
            vec!["projects", "update", "fraud"],
            "",
            2,
            "nothing to change",
        ),
        (
            vec![
                "grants",
                "request",
                "--project",
                "fraud",
                "--role",
                "support",
                "--reason",
                "  ",
                "--duration",
                "2h",
            ],
            "",
            2,
            "--reason is empty",
        ),
        (
            vec![
                "policy",
                "check",
                "--principal",
                "",
                "--action",
                "a",
                "--resource",
                "platform",
            ],
            "",
            2,
            "--principal is empty",
        ),
    ];
    for (args, stdin, code, needle) in cases {
        let (got, out, err) = cli(dir, &args, stdin).await;
        assert_eq!((got, out.as_str()), (code, ""), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());

    // Exactly 16 KiB is accepted locally (the server decides).
    let max = write(dir, "max.cedar", &vec![b'a'; 16 * 1024]);
    let (code, _, err) = cli(dir, &["policy", "create", "p", "--file", &max], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(last(&mock).2["body"].as_str().unwrap().len(), 16 * 1024);
}

#[tokio::test]
async fn policies() {
    let (mock, tmp) = session().await;
    let dir = tmp.path();

    let (code, out, err) = cli(dir, &["policy", "list"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(last(&mock), sent("GET", "/api/v1/policies", Value::Null));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ID     NAME     PROJECT     CREATED BY"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("pol_1  ds-read  (platform)  alice"),
        "{out}"
    );
    assert!(lines[1].ends_with("DS may read"), "{out}");

    let (code, out, _) = cli(
        dir,
        &["--output", "json", "policy", "list", "--project", "fraud"],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(last(&mock).1, "/api/v1/policies?project=fraud");
    let items: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(items, json!([policy(Some("fraud"))]));

    // Show: fields, then the Cedar text indented.
    let (code, out, _) = cli(dir, &["policy", "show", "pol_1"], "").await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("id:          pol_1\nname:        ds-read\nproject:     fraud\n"),
        "{out}"
    );
    assert!(
        out.ends_with("body:\n  permit(\n    principal in Group::\"ds\",\n    action == Action::\"project.read\",\n    resource in Project::\"fraud\"\n  );\n"),
        "{out}"
    );

    // Create from a file and from stdin.
    let file = write(dir, "ds-read.cedar", POLICY_TEXT.as_bytes());
    let args = [
        "policy",
        "create",
        "ds-read",
        "--project",
        "fraud",
        "--description",
        "DS may read",
        "--file",
        &file,
    ];
    let (code, out, err) = cli(dir, &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        last(&mock),
        sent(
            "POST",
            "/api/v1/policies",
            json!({"name": "ds-read", "project": "fraud",
            "description": "DS may read", "body": POLICY_TEXT})
        )
    );
    assert!(
        out.contains("id:          pol_1") && out.contains("body:\n  permit("),
        "{out}"
    );
    let (code, _, err) = cli(dir, &["policy", "create", "plat", "--stdin"], POLICY_TEXT).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(last(&mock).2, json!({"name": "plat", "body": POLICY_TEXT}));

    // Update: description only, then a new text.
    let (code, _, err) = cli(
        dir,
        &["policy", "update", "pol_1", "--description", "new"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        last(&mock),
        sent(
            "PATCH",
            "/api/v1/policies/pol_1",
            json!({"description": "new"})
        )
    );
    let (code, _, err) = cli(dir, &["policy", "update", "pol_1", "--stdin"], POLICY_TEXT).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(last(&mock).2, json!({"body": POLICY_TEXT}));

    // Delete: a line in text mode, nothing in JSON mode.
    let (code, out, _) = cli(dir, &["policy", "delete", "pol_1"], "").await;
    assert_eq!((code, out.as_str()), (0, "Deleted policy pol_1.\n"));
    assert_eq!(
        last(&mock),
        sent("DELETE", "/api/v1/policies/pol_1", Value::Null)
    );
    let (code, out, _) = cli(dir, &["--output", "json", "policy", "delete", "pol_1"], "").await;
    assert_eq!((code, out.as_str()), (0, ""));

    // Unknown id: the hint names the list command.
    let (code, _, err) = cli(dir, &["policy", "show", "pol_404"], "").await;
    assert_eq!(code, 3);
    assert!(err.contains("`enclave policy list [--project P]`"), "{err}");
}

#[tokio::test]
async fn invalid_policy_points_at_line_and_column() {
    let (_mock, tmp) = session().await;
    let dir = tmp.path();
    let text = "permit(\n  principal,\n  action == Action::\"project.read\")\n  resource\n);\n";
    let file = write(dir, "bad.cedar", text.as_bytes());

    let (code, out, err) = cli(dir, &["policy", "create", "broken", "--file", &file], "").await;
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    let expected = format!(
        "error: {file}:3:35: syntax error at 3:35: unexpected token `)` (invalid_input)\n  \
         |\n\
         3 |   action == Action::\"project.read\")\n  \
         | {}^\n\
         hint: fix the value of `body` at line 3, column 35\n",
        " ".repeat(34)
    );
    assert_eq!(err, expected);

    // From stdin, and with the error wrapped in {"error": …}.
    let (code, _, err) = cli(dir, &["policy", "create", "wrapped", "--stdin"], text).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.starts_with("error: <stdin>:1:7: syntax error at 1:7"),
        "{err}"
    );
    assert!(err.contains("\n1 | permit(\n  |       ^\n"), "{err}");

    // Update with a new text.
    let (code, _, err) = cli(
        dir,
        &["policy", "update", "pol_1", "--stdin"],
        "permit(oops);",
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.starts_with("error: <stdin>:1:8: ")
            && err.contains("1 | permit(oops);\n  |        ^\n"),
        "{err}"
    );
    assert!(!err.contains(SECRET));
}

#[tokio::test]
async fn policy_check_and_can() {
    let (mock, tmp) = session().await;
    let dir = tmp.path();
    let check = |who: &'static str| {
        vec![
            "policy",
            "check",
            "--principal",
            who,
            "--action",
            "project.read",
            "--resource",
            "project:fraud",
        ]
    };

    let mut args = check("alice");
    args.extend(["--context", r#"{"mfa": true, "source_ip": "10.0.0.5"}"#]);
    let (code, out, err) = cli(dir, &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        last(&mock),
        sent(
            "POST",
            "/api/v1/policy/check",
            json!({"principal": "alice",
            "action": "project.read", "resource": "project:fraud",
            "context": {"mfa": true, "source_ip": "10.0.0.5"}})
        )
    );
    assert_eq!(
        out,
        "ALLOW\n\
         explanation: permitted by builtin.project_owner (role project_owner on project fraud)\n\
         determining: builtin.project_owner, custom.pol_1\n\
         roles:\n  \
           ROLE           ORIGIN      SCOPE          VIA GROUP  EXPIRES\n  \
           project_owner  membership  project:fraud  -          -\n"
    );

    // Deny: exit 5, in text and in JSON.
    let (code, out, err) = cli(dir, &check("user:bob"), "").await;
    assert_eq!((code, err.as_str()), (crate::EXIT_DENIED, ""));
    assert_eq!(code, 5);
    assert_eq!(
        out,
        "DENY\nexplanation: no policy permits\ndetermining: -\nroles: -\n\
         evaluation errors:\n  custom.pol_9: attribute `tags` not found\n"
    );
    assert_eq!(last(&mock).2.get("context"), None);
    let mut args = vec!["--output", "json"];
    args.extend(check("user:bob"));
    let (code, out, _) = cli(dir, &args, "").await;
    assert_eq!(code, 5);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["decision"], "deny");

    // A refusal is exit 3, not a deny.
    let (code, out, err) = cli(dir, &check("carol"), "").await;
    assert_eq!((code, out.as_str()), (3, ""));
    assert!(err.contains("(forbidden)"), "{err}");

    // can: one action per line; JSON as the server sent it.
    let can = [
        "policy",
        "can",
        "--principal",
        "alice",
        "--project",
        "fraud",
    ];
    let (code, out, _) = cli(dir, &can, "").await;
    assert_eq!((code, out.as_str()), (0, "project.read\nproject.update\n"));
    assert_eq!(
        last(&mock).1,
        "/api/v1/policy/can?principal=alice&project=fraud"
    );
    let mut args = vec!["--output", "json"];
    args.extend(can);
    let (_, out, _) = cli(dir, &args, "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["actions"][1],
        "project.update"
    );
    let (code, out, err) = cli(
        dir,
        &[
            "policy",
            "can",
            "--principal",
            "nobody",
            "--project",
            "fraud",
        ],
        "",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(err, "nobody may do nothing in project fraud.\n");
}

#[tokio::test]
async fn role_bindings() {
    let (mock, tmp) = session().await;
    let dir = tmp.path();

    let (code, out, _) = cli(dir, &["roles", "list"], "").await;
    assert_eq!(code, 0);
    assert_eq!(last(&mock).1, "/api/v1/roles");
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("rb_0  user:alice  security_auditor  (platform)  -"),
        "{out}"
    );
    let (code, out, _) = cli(
        dir,
        &["--output", "json", "roles", "list", "--project", "fraud"],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(last(&mock).1, "/api/v1/roles?project=fraud");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!([binding()])
    );

    let bind = [
        "roles",
        "bind",
        "data_scientist",
        "--group",
        "ds",
        "--project",
        "fraud",
        "--expires-in",
        "8h",
    ];
    let (code, out, err) = cli(dir, &bind, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        last(&mock),
        sent(
            "POST",
            "/api/v1/roles",
            json!({"subject": "group:ds", "role": "data_scientist",
            "project": "fraud", "expires_in": "8h"})
        )
    );
    assert!(
        out.starts_with("id:         rb_1\nsubject:    group:ds\nrole:       data_scientist\n"),
        "{out}"
    );
    for (flag, subject) in [("--user", "user:dana"), ("--workload", "workload:dana")] {
        let (code, _, _) = cli(dir, &["roles", "bind", "viewer", flag, "dana"], "").await;
        assert_eq!(code, 0);
        assert_eq!(last(&mock).2, json!({"subject": subject, "role": "viewer"}));
    }

    let (code, out, _) = cli(dir, &["roles", "unbind", "rb_1"], "").await;
    assert_eq!((code, out.as_str()), (0, "Removed role binding rb_1.\n"));
    assert_eq!(
        last(&mock),
        sent("DELETE", "/api/v1/roles/rb_1", Value::Null)
    );
    let (code, _, err) = cli(dir, &["roles", "unbind", "rb_9"], "").await;
    assert_eq!(code, 3);
    assert!(err.contains("`enclave roles list [--project P]`"), "{err}");
}

#[tokio::test]
async fn access_grants() {
    let (mock, tmp) = session().await;
    let dir = tmp.path();

    let (code, out, _) = cli(dir, &["grants", "list", "--project", "fraud"], "").await;
    assert_eq!(code, 0);
    assert_eq!(
        last(&mock),
        sent("GET", "/api/v1/projects/fraud/grants", Value::Null)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ID     GRANTEE  ROLE     STATUS   DURATION  REQUESTED"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("grt_1  sam      support  pending  2h        2025-01-01T00:00:00Z  -"),
        "{out}"
    );
    assert!(lines[1].ends_with("ticket 4411"), "{out}");
    let (_, out, _) = cli(
        dir,
        &["--output", "json", "grants", "list", "--project", "fraud"],
        "",
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()[0]["duration_secs"],
        7200
    );

    let request = [
        "grants",
        "request",
        "--project",
        "fraud",
        "--role",
        "project_admin",
        "--reason",
        "ticket 4411",
        "--duration",
        "2h",
    ];
    let (code, out, err) = cli(dir, &request, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        last(&mock),
        sent(
            "POST",
            "/api/v1/projects/fraud/grants",
            json!({"role": "project_admin",
            "reason": "ticket 4411", "duration": "2h"})
        )
    );
    assert!(
        out.contains("status:       pending\n") && out.contains("duration:     2h\n"),
        "{out}"
    );
    assert!(!out.contains("duration secs"), "{out}");
    assert!(
        out.ends_with("The grant waits for a project owner: `enclave grants approve grt_1`.\n"),
        "{out}"
    );

    for (verb, status) in [
        ("approve", "active"),
        ("deny", "denied"),
        ("revoke", "revoked"),
    ] {
        let (code, out, err) = cli(dir, &["grants", verb, "grt_1"], "").await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            last(&mock),
            sent("POST", &format!("/api/v1/grants/grt_1/{verb}"), Value::Null)
        );
        assert!(out.contains(&format!("status:       {status}\n")), "{out}");
    }
    let (code, _, err) = cli(dir, &["grants", "approve", "grt_2"], "").await;
    assert_eq!(code, 3);
    assert!(
        err.starts_with("error: the grant is not pending (conflict)\n"),
        "{err}"
    );
    let (code, _, err) = cli(dir, &["grants", "revoke", "grt_9"], "").await;
    assert_eq!(code, 3);
    assert!(err.contains("`enclave grants list --project P`"), "{err}");
}

#[tokio::test]
async fn project_attributes_and_subgroups() {
    let (mock, tmp) = session().await;
    let dir = tmp.path();

    // Attributes without tags: one PATCH.
    let args = [
        "projects",
        "update",
        "fraud",
        "--classification",
        "restricted",
        "--requires-approval",
        "false",
        "--description",
        "d2",
    ];
    let (code, out, err) = cli(dir, &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(
        last(&mock),
        sent(
            "PATCH",
            "/api/v1/projects/fraud",
            json!({"classification": "restricted",
            "requires_approval": false, "description": "d2"})
        )
    );
    assert!(out.contains("classification:    restricted\n"), "{out}");

    // --tag and --remove-tag start from the current tags.
    let args = [
        "projects",
        "update",
        "fraud",
        "--tag",
        "team=fraud",
        "--tag",
        "pii=yes=really",
        "--remove-tag",
        "cost",
        "--remove-tag",
        "nope",
    ];
    let (code, out, err) = cli(dir, &args, "").await;
    assert_eq!(code, 0, "{err}");
    let reqs = mock.requests();
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].target.as_str()),
        ("GET", "/api/v1/projects/fraud")
    );
    assert_eq!(
        last(&mock),
        sent(
            "PATCH",
            "/api/v1/projects/fraud",
            json!({"tags": {"team": "fraud", "pii": "yes=really"}})
        )
    );
    assert_eq!(err, "warning: project fraud has no tag `nope`\n");
    assert!(
        out.contains("tags:              pii=yes=really,team=fraud\n"),
        "{out}"
    );

    // --clear-tags: exactly the tags given, without reading the current ones.
    let before = mock.requests().len();
    let (code, _, _) = cli(
        dir,
        &[
            "projects",
            "update",
            "fraud",
            "--clear-tags",
            "--tag",
            "a=1",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(mock.requests().len(), before + 1);
    assert_eq!(last(&mock).2, json!({"tags": {"a": "1"}}));
    let (code, _, _) = cli(dir, &["projects", "update", "fraud", "--clear-tags"], "").await;
    assert_eq!(code, 0);
    assert_eq!(last(&mock).2, json!({"tags": {}}));

    // Subgroups.
    let (code, out, _) = cli(dir, &["groups", "add-subgroup", "ds", "ds-juniors"], "").await;
    assert_eq!(
        (code, out.as_str()),
        (0, "Nested group ds-juniors in group ds.\n")
    );
    assert_eq!(
        last(&mock),
        sent("PUT", "/api/v1/groups/ds/subgroups/ds-juniors", Value::Null)
    );
    let (code, out, _) = cli(dir, &["groups", "remove-subgroup", "ds", "ds-juniors"], "").await;
    assert_eq!(
        (code, out.as_str()),
        (0, "Took group ds-juniors out of group ds.\n")
    );
    assert_eq!(
        last(&mock),
        sent(
            "DELETE",
            "/api/v1/groups/ds/subgroups/ds-juniors",
            Value::Null
        )
    );
    let (code, _, err) = cli(dir, &["groups", "add-subgroup", "ds", "nope"], "").await;
    assert_eq!(code, 3);
    assert!(
        err.contains("(not_found)") && err.contains("enclave groups list"),
        "{err}"
    );
}

#[test]
fn help_documents_the_deny_exit_code() {
    use clap::CommandFactory;
    let mut cmd = TestCli::command();
    let check = cmd
        .find_subcommand_mut("policy")
        .and_then(|c| c.find_subcommand_mut("check"))
        .unwrap();
    let help = check.render_long_help().to_string();
    assert!(help.contains("Exit code 0 for allow, 5 for deny"), "{help}");
}
