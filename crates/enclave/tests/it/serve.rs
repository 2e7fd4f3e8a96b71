//! First start, data directory, TLS, headers, health, configuration, shutdown.

use crate::BIN;
use enclave_testkit::{Options, Server, PASSWORD};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn first_start_prints_a_one_time_setup_url_and_keeps_files_private() {
    let s = Server::start(BIN);
    let out = s.stdout.lock().unwrap().join("\n");
    assert!(out.contains("/setup?token="), "setup URL printed: {out}");
    // Nobody else may list or change it; 0711 when sandboxes (root + runc) pass through to
    // the project volumes.
    assert!(
        [0o700, 0o711].contains(&mode(&s.data_dir)),
        "{:o}",
        mode(&s.data_dir)
    );
    assert_eq!(mode(&s.data_dir.join("setup-url")), 0o600);
    assert_eq!(mode(&s.data_dir.join("enclave.db")), 0o600);
    assert_eq!(mode(&s.data_dir.join("tls/key.pem")), 0o600);
    let token = s.setup_token();
    assert!(out.contains(&token));
    let c = s.client();
    // A weak password is refused and nothing is created: the token still works afterwards.
    let r = c
        .post(s.url("/api/v1/setup"))
        .json(&json!({"token": token, "username": "admin", "password": "password1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_input");
    assert_eq!(body["details"]["field"], "password");
    // A wrong token is refused.
    let r = c
        .post(s.url("/api/v1/setup"))
        .json(&json!({"token": "x".repeat(43), "username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    let admin = s.admin().await;
    // The token works once.
    let r = c
        .post(s.url("/api/v1/setup"))
        .json(&json!({"token": token, "username": "second", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    let (st, users) = admin.get("/api/v1/users").await;
    assert_eq!(st, 200);
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
    assert_eq!(users["items"][0]["platform_admin"], true);
    // After a restart with an admin present, no setup link is issued.
    let s = s.restart(Options::default());
    assert!(!s.data_dir.join("setup-url").exists());
    assert!(!s.stdout.lock().unwrap().join("\n").contains("setup?token="));
}

#[tokio::test]
async fn setup_link_expires() {
    let opts = Options {
        env: vec![("ENCLAVE_SETUP_TOKEN_TTL".into(), "1s".into())],
        ..Options::default()
    };
    let s = Server::start_with(BIN, opts);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = s
        .client()
        .post(s.url("/api/v1/setup"))
        .json(&json!({"token": s.setup_token(), "username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
}

#[tokio::test]
async fn admin_bootstrap_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "short\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["admin", "bootstrap", "--data-dir"])
        .arg(&data)
        .args(["--username", "root", "--password-file"])
        .arg(&pw)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "weak password is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("12"));
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["admin", "bootstrap", "--data-dir"])
        .arg(&data)
        .args(["--username", "root", "--password-file"])
        .arg(&pw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Running it twice with the same name is refused.
    let again = std::process::Command::new(BIN)
        .args(["admin", "bootstrap", "--data-dir"])
        .arg(&data)
        .args(["--username", "root", "--password-file"])
        .arg(&pw)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}

#[tokio::test]
async fn security_headers_on_every_response_and_health() {
    let s = Server::start(BIN);
    let c = s.client();
    for path in [
        "/healthz",
        "/readyz",
        "/api/v1/projects",
        "/nope",
        "/api/v1/nope",
        "/login",
        "/api/v1/openapi.json",
    ] {
        let r = c.get(s.url(path)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .contains("max-age="),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h.contains_key("x-request-id"), "{path}");
    }
    assert_eq!(c.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    let r = c.get(s.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn graceful_shutdown_on_sigterm() {
    let mut s = Server::start(BIN);
    let code = s.stop();
    let err = s.stderr.lock().unwrap().join("\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("shutdown requested"), "{err}");
}

#[test]
fn plain_http_only_on_loopback() {
    let out = std::process::Command::new(BIN)
        .args([
            "config",
            "check",
            "--listen",
            "0.0.0.0:8080",
            "--insecure-plain-http",
        ])
        .env_remove("ENCLAVE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[tokio::test]
async fn plain_http_on_loopback_works_when_asked() {
    let s = Server::start_with(
        BIN,
        Options {
            args: vec!["--insecure-plain-http".into()],
            ..Options::default()
        },
    );
    assert!(s.base.starts_with("http://127.0.0.1:"));
    let r = reqwest::get(s.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("strict-transport-security"));
}

#[test]
fn config_check_reports_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("enclave.toml");
    std::fs::write(
        &f,
        "listen = \"127.0.0.1:8443\"\n[sessions]\nidle_timeout = \"soon\"\nbogus = 1\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&f)
        .env_remove("ENCLAVE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("enclave.toml:3"), "{err}");
    assert!(err.contains("sessions.idle_timeout"), "{err}");
    assert!(err.contains("bogus"), "{err}");
    let out = std::process::Command::new(BIN)
        .args(["config", "check"])
        .env("ENCLAVE_LISTN", "x")
        .env_remove("ENCLAVE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ENCLAVE_LISTN"));
    // The example configuration is valid.
    let example = std::process::Command::new(BIN)
        .args(["config", "example"])
        .output()
        .unwrap();
    std::fs::write(&f, &example.stdout).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&f)
        .env_remove("ENCLAVE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn given_certificate_is_used_and_reloaded_on_sighup() {
    // Start once to have a generated pair, then copy it and serve it as "given" files.
    let first = Server::start(BIN);
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::copy(first.cert_path(), &cert).unwrap();
    std::fs::copy(first.data_dir.join("tls/key.pem"), &key).unwrap();
    let opts = Options {
        env: vec![
            (
                "ENCLAVE_TLS_CERT_FILE".into(),
                cert.to_string_lossy().into(),
            ),
            ("ENCLAVE_TLS_KEY_FILE".into(), key.to_string_lossy().into()),
        ],
        ..Options::default()
    };
    let s = Server::start_with(BIN, opts);
    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    assert_eq!(
        client.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
    // Replace the files with another server's pair and send SIGHUP.
    let other = Server::start(BIN);
    std::fs::copy(other.cert_path(), &cert).unwrap();
    std::fs::copy(other.data_dir.join("tls/key.pem"), &key).unwrap();
    s.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let new_pem = std::fs::read(&cert).unwrap();
    let fresh = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&new_pem).unwrap()])
        .build()
        .unwrap();
    assert_eq!(
        fresh.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let stale = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    assert!(stale.get(s.url("/healthz")).send().await.is_err());
}

#[tokio::test]
async fn json_logs_with_an_access_line_per_request_and_no_query_strings() {
    let s = Server::start_with(
        BIN,
        Options {
            args: vec!["--log-format".into(), "json".into()],
            ..Options::default()
        },
    );
    let c = s.client();
    let r = c
        .get(s.url("/healthz?token=do-not-log-me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let lines = s.stderr.lock().unwrap().clone();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(v["level"].is_string());
    }
    let access = lines
        .iter()
        .find(|l| l.contains("enclave::access"))
        .expect("access log line");
    assert!(access.contains("/healthz") && access.contains("200"));
    assert!(!lines.join("\n").contains("do-not-log-me"));
}
