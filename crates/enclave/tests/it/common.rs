//! Helpers shared by the end-to-end tests that drive the CLI.

use enclave_testkit::{Server, PASSWORD};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `cmd args…`, feeding `stdin` when given, and returns its output.
pub fn run(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Output {
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// The standard output of a command that must have succeeded (else both streams are shown).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Logs the CLI config `name` in to `s` as `user` (with the kit's password).
pub fn login_cli(s: &Server, name: &str, user: &str) {
    let ca = s.cert_path();
    ok(&run(
        s.cli(name),
        &[
            "login",
            "--server",
            &s.base,
            "--username",
            user,
            "--password-stdin",
            "--ca",
            ca.to_str().unwrap(),
        ],
        Some(&format!("{PASSWORD}\n")),
    ));
}

/// A platform admin; `olivia` owns project `fraud`, `victor` views it; with `secret`, the
/// project also holds `DB_PASSWORD` with that value. Returns the admin's and olivia's APIs.
pub async fn fraud_project(
    s: &Server,
    secret: Option<&str>,
) -> (enclave_testkit::Api, enclave_testkit::Api) {
    let admin = s.admin().await;
    admin.user(s, "olivia").await;
    admin.user(s, "victor").await;
    let (st, b) = admin
        .post(
            "/api/v1/projects",
            serde_json::json!({"name": "fraud", "owner": "olivia"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let owner = s.login("olivia", PASSWORD).await;
    let (st, b) = owner
        .call(
            "PUT",
            "/api/v1/projects/fraud/members/victor",
            Some(serde_json::json!({"role": "viewer"})),
        )
        .await;
    assert!(st == 200 || st == 204, "{st} {b}");
    if let Some(value) = secret {
        let (st, b) = owner
            .call(
                "PUT",
                "/api/v1/projects/fraud/secrets/DB_PASSWORD",
                Some(serde_json::json!({ "value": value })),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    (admin, owner)
}
