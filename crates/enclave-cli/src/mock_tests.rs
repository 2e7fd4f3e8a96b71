//! Command tests against a small HTTPS mock of the API (self-signed certificate).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use clap::{CommandFactory, Parser};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::config::{Credentials, CA_FILE, CREDENTIALS_FILE};
use crate::{commands, ClientCommand, Ctx, OutputFormat};

mod governance;
mod idp;
mod notebooks;

const SECRET: &str = "enc_pat_SECRETSECRET";

#[derive(Parser, Debug)]
struct TestCli {
    #[arg(long, global = true, value_enum, default_value = "text")]
    output: OutputFormat,
    #[command(subcommand)]
    cmd: ClientCommand,
}

#[derive(Clone, Debug)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&Req) -> (u16, String) + Send + Sync>;

struct Mock {
    addr: SocketAddr,
    cert_pem: String,
    requests: Arc<Mutex<Vec<Req>>>,
}

impl Mock {
    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }
}

async fn start(handler: Handler) -> Mock {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, handler, log) = (acceptor.clone(), handler.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut stream = BufReader::new(tls);
                let mut line = String::new();
                stream.read_line(&mut line).await.unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    stream.read_line(&mut h).await.unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; len];
                stream.read_exact(&mut body).await.unwrap();
                let req = Req {
                    method,
                    target,
                    headers,
                    body: String::from_utf8(body).unwrap(),
                };
                let (status, body) = handler(&req);
                log.lock().unwrap().push(req);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut tls = stream.into_inner();
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Mock {
        addr,
        cert_pem: ck.cert.pem(),
        requests,
    }
}

async fn cli(dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let parsed =
        TestCli::try_parse_from(std::iter::once("enclave").chain(args.iter().copied())).unwrap();
    let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut ctx = Ctx {
        config_dir: dir.to_path_buf(),
        stdin: &mut input,
        out: &mut out,
        err: &mut err,
        output: parsed.output,
        err_is_terminal: false,
        stdin_is_terminal: false,
    };
    let code = commands::execute(&mut ctx, parsed.cmd).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

const MFA_TOKEN: &str = "mfa-pending-0123456789abcdefghijklmnopqrstuv";

fn token_json(with_secret: bool) -> Value {
    let mut t = json!({"id": "t1", "name": "cli@test", "scope": "full", "projects": [],
        "created_at": "2025-01-01T00:00:00Z", "expires_at": null, "last_used_at": null});
    if with_secret {
        t["token"] = json!(SECRET);
    }
    t
}

fn user(name: &str) -> Value {
    json!({"username": name, "display_name": "", "email": null, "platform_admin": false,
        "disabled": false, "locked": false, "created_at": "2025-01-01T00:00:00Z"})
}

fn api(req: &Req) -> (u16, String) {
    let authed = req.header("authorization") == Some(&format!("Bearer {SECRET}"));
    let (status, body) = match (req.method.as_str(), req.target.as_str()) {
        ("POST", "/api/v1/auth/token") => {
            let body: Value = serde_json::from_str(&req.body).unwrap();
            if body["username"] == "alice" && body["password"] == "pw d" {
                (201, token_json(true))
            } else if body["username"] == "mona" && body["password"] == "pw d" {
                (
                    401,
                    json!({"code": "mfa_required", "message": "enter the code",
                        "details": {"mfa_token": MFA_TOKEN}}),
                )
            } else {
                (
                    401,
                    json!({"code": "invalid_credentials", "message": "login failed"}),
                )
            }
        }
        ("POST", "/api/v1/auth/mfa") => {
            let body: Value = serde_json::from_str(&req.body).unwrap();
            if body["mfa_token"] == MFA_TOKEN && body["code"] == "123456" && body["kind"] == "token"
            {
                (201, token_json(true))
            } else {
                (
                    400,
                    json!({"code": "invalid_input", "message": "the code is not correct",
                        "details": {"field": "code"}}),
                )
            }
        }
        ("GET", "/api/v1/me/mfa") if authed => (
            200,
            json!({"enabled": true, "pending_confirmation": false, "confirmed_at": null,
                "recovery_codes_left": 9, "required": false, "local": true}),
        ),
        _ if !authed => (
            401,
            json!({"code": "unauthenticated", "message": format!("bad token {SECRET}")}),
        ),
        ("GET", "/api/v1/whoami") => (
            200,
            json!({"user": user("alice"), "auth": {"method": "token", "token_id": "t1", "scope": "full"}}),
        ),
        ("GET", "/api/v1/users?limit=200") => (
            200,
            json!({"items": [user("alice"), user("bob")], "next": "c1"}),
        ),
        ("GET", "/api/v1/users?limit=200&after=c1") => {
            (200, json!({"items": [user("carol")], "next": null}))
        }
        ("GET", "/api/v1/users?limit=1") => (200, json!({"items": [user("alice")], "next": "c1"})),
        ("POST", "/api/v1/tokens") => (201, token_json(true)),
        ("PATCH", "/api/v1/users/bob") => (200, user("bob")),
        ("PUT", "/api/v1/projects/p1/members/bob") => {
            (200, json!({"username": "bob", "role": "viewer"}))
        }
        ("DELETE", "/api/v1/users/bob") | ("POST", "/api/v1/auth/logout") => {
            return (204, String::new())
        }
        ("GET", "/api/v1/users/boom") => (
            500,
            json!({"code": "internal", "message": "unexpected", "details": {"request_id": "req-9"}}),
        ),
        _ => (
            404,
            json!({"code": "not_found", "message": "no such thing"}),
        ),
    };
    (status, body.to_string())
}

#[test]
fn clap_definition_is_valid() {
    TestCli::command().debug_assert();
    let parse = |args: &[&str]| {
        TestCli::try_parse_from(std::iter::once("enclave").chain(args.iter().copied()))
    };
    assert!(parse(&["users", "update", "bob", "--disable", "--enable"]).is_err());
    assert!(parse(&["users", "update", "bob", "--admin", "maybe"]).is_err());
    assert!(parse(&["login", "--server", "https://h", "--username", "a"]).is_err());
    assert!(parse(&["users", "list", "--limit", "0"]).is_err());
    assert!(parse(&["projects", "set-member", "p", "u", "--role", "boss"]).is_err());
    assert!(parse(&[
        "tokens",
        "create",
        "t",
        "--scope",
        "read",
        "--project",
        "a",
        "--expires-in-days",
        "3"
    ])
    .is_ok());
}

#[test]
fn run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let future = crate::run(ClientCommand::Whoami, OutputFormat::Text);
    assert_send(&future);
}

#[tokio::test]
async fn full_session_with_ca() {
    let mock = start(Arc::new(api)).await;
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("cert.pem");
    std::fs::write(&ca, &mock.cert_pem).unwrap();
    let dir = tmp.path().join("cfg");
    let server = mock.url();

    let login = [
        "login",
        "--server",
        &server,
        "--username",
        "alice",
        "--password-stdin",
    ];
    let mut args = login.to_vec();
    args.extend(["--ca", ca.to_str().unwrap(), "--token-name", "cli@test"]);
    let (code, out, err) = cli(&dir, &args, "pw d\r\n").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Logged in to") && out.contains("t1"), "{out}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
    let creds: Credentials =
        serde_json::from_slice(&std::fs::read(dir.join(CREDENTIALS_FILE)).unwrap()).unwrap();
    assert_eq!(
        (creds.server.as_str(), creds.token.as_str()),
        (server.as_str(), SECRET)
    );
    assert_eq!(creds.token_id, json!("t1"));
    assert_eq!(
        std::fs::read_to_string(dir.join(CA_FILE)).unwrap(),
        mock.cert_pem
    );
    let first = &mock.requests()[0];
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(
        body,
        json!({"username": "alice", "password": "pw d", "name": "cli@test"})
    );
    assert!(first
        .header("user-agent")
        .unwrap()
        .starts_with("enclave-cli/"));
    assert!(first.header("authorization").is_none());

    let (code, out, _) = cli(&dir, &["whoami"], "").await;
    assert_eq!(code, 0);
    assert!(
        out.contains("username:") && out.contains("alice") && out.contains("auth:"),
        "{out}"
    );
    assert!(out.contains("token id:"), "{out}");

    let (code, out, _) = cli(&dir, &["--output", "json", "users", "list"], "").await;
    assert_eq!(code, 0);
    let names: Vec<Value> = serde_json::from_str::<Vec<Value>>(&out)
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, vec![json!("alice"), json!("bob"), json!("carol")]);

    let (code, out, _) = cli(&dir, &["users", "list", "--limit", "1"], "").await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.starts_with("USERNAME"));

    let (code, out, err) = cli(&dir, &["groups", "show", "nope"], "").await;
    assert_eq!((code, out.as_str()), (3, ""));
    assert!(
        err.starts_with("error: no such thing (not_found)\nhint: "),
        "{err}"
    );
    assert!(err.contains("enclave groups list"));

    let (code, _, err) = cli(&dir, &["users", "show", "boom"], "").await;
    assert_eq!(code, 4);
    assert!(err.contains("req-9"), "{err}");

    let (code, out, _) = cli(
        &dir,
        &[
            "tokens",
            "create",
            "ci",
            "--scope",
            "read",
            "--project",
            "p1",
            "--project",
            "p2",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("token:") && l.ends_with(SECRET))
            && out.contains("will not be shown again"),
        "{out}"
    );
    let sent: Value = serde_json::from_str(&mock.requests().last().unwrap().body).unwrap();
    assert_eq!(
        sent,
        json!({"name": "ci", "scope": "read", "projects": ["p1", "p2"]})
    );

    let (code, out, _) = cli(
        &dir,
        &["projects", "set-member", "p1", "bob", "--role", "viewer"],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("role:") && out.contains("viewer"), "{out}");

    let (code, out, _) = cli(&dir, &["--output", "json", "users", "delete", "bob"], "").await;
    assert_eq!((code, out.as_str()), (0, ""));

    let (code, _, err) = cli(&dir, &["users", "update", "bob"], "").await;
    assert_eq!(code, 2, "{err}");
    let update = [
        "users",
        "update",
        "bob",
        "--admin",
        "false",
        "--disable",
        "--email",
        "b@x",
    ];
    let (code, out, err) = cli(&dir, &update, "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("username:"), "{out}");
    let sent: Value = serde_json::from_str(&mock.requests().last().unwrap().body).unwrap();
    assert_eq!(
        sent,
        json!({"platform_admin": false, "disabled": true, "email": "b@x"})
    );

    let (code, out, err) = cli(&dir, &["logout"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"));
    assert!(!dir.join(CREDENTIALS_FILE).exists() && !dir.join(CA_FILE).exists());
    let (code, _, err) = cli(&dir, &["whoami"], "").await;
    assert_eq!(code, 1);
    assert!(
        err.contains("(not_logged_in)") && err.contains("enclave login"),
        "{err}"
    );
}

#[tokio::test]
async fn login_failures() {
    let mock = start(Arc::new(api)).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let server = mock.url();
    let login = [
        "login",
        "--server",
        &server,
        "--username",
        "alice",
        "--password-stdin",
    ];

    // Self-signed certificate without --ca.
    let (code, _, err) = cli(&dir, &login, "pw d\n").await;
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("(tls_unknown_issuer)") && err.contains("--ca FILE"),
        "{err}"
    );

    // Empty password: nothing is sent.
    let (code, _, err) = cli(&dir, &login, "\n").await;
    assert_eq!(code, 2, "{err}");

    // Bad CA files.
    let bad = tmp.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    for file in [bad.to_str().unwrap(), "/nonexistent/ca.pem"] {
        let mut args = login.to_vec();
        args.extend(["--ca", file]);
        let (code, _, err) = cli(&dir, &args, "pw d\n").await;
        assert_eq!(code, 1, "{err}");
    }

    // Wrong password.
    let ca = tmp.path().join("cert.pem");
    std::fs::write(&ca, &mock.cert_pem).unwrap();
    let mut args = login.to_vec();
    args.extend(["--ca", ca.to_str().unwrap()]);
    let (code, _, err) = cli(&dir, &args, "wrong\n").await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("(invalid_credentials)") && !err.contains("wrong"),
        "{err}"
    );
    assert!(!dir.join(CREDENTIALS_FILE).exists());
    assert!(mock.requests().len() == 1);
}

#[tokio::test]
async fn rejected_token_is_redacted_and_hints_login() {
    let mock = start(Arc::new(api)).await;
    let tmp = tempfile::tempdir().unwrap();
    let creds = Credentials {
        server: mock.url(),
        username: "alice".into(),
        token: "enc_pat_OLDTOKEN".into(),
        token_id: json!("t0"),
    };
    crate::config::save_credentials(tmp.path(), &creds).unwrap();
    crate::config::write_private(tmp.path(), CA_FILE, mock.cert_pem.as_bytes()).unwrap();
    let (code, _, err) = cli(tmp.path(), &["whoami"], "").await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("(unauthenticated)") && err.contains("run `enclave login` again"),
        "{err}"
    );
    assert!(!err.contains("enc_pat_OLDTOKEN"));
}

#[tokio::test]
async fn unreachable_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let tmp = tempfile::tempdir().unwrap();
    let server = format!("https://{addr}");
    let creds = Credentials {
        server: server.clone(),
        username: "alice".into(),
        token: SECRET.into(),
        token_id: json!(7),
    };
    crate::config::save_credentials(tmp.path(), &creds).unwrap();

    let (code, _, err) = cli(tmp.path(), &["groups", "list"], "").await;
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains(&format!("is the server running at {server}?")),
        "{err}"
    );

    let (code, _, err) = cli(tmp.path(), &["logout"], "").await;
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("warning:") && err.contains("id 7"), "{err}");
    assert!(!tmp.path().join(CREDENTIALS_FILE).exists());
}

#[tokio::test]
async fn login_with_a_second_factor() {
    let mock = start(Arc::new(api)).await;
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("cert.pem");
    std::fs::write(&ca, &mock.cert_pem).unwrap();
    let dir = tmp.path().join("cfg");
    let server = mock.url();
    let base = [
        "login",
        "--server",
        &server,
        "--username",
        "mona",
        "--password-stdin",
        "--ca",
        ca.to_str().unwrap(),
    ];
    // No code anywhere: a usage error that names --otp; nothing stored.
    let (code, _, err) = cli(&dir, &base, "pw d\n").await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--otp"), "{err}");
    assert!(!dir.join(CREDENTIALS_FILE).exists());
    // A wrong code is the server's refusal.
    let mut args = base.to_vec();
    args.extend(["--otp", "000000"]);
    let (code, _, err) = cli(&dir, &args, "pw d\n").await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("(invalid_input)"), "{err}");
    // --otp, or the line after the password.
    let mut args = base.to_vec();
    args.extend(["--otp", "123456"]);
    let (code, out, err) = cli(&dir, &args, "pw d\n").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Logged in"), "{out}");
    assert!(!out.contains(MFA_TOKEN) && !err.contains(MFA_TOKEN));
    let (code, _, err) = cli(&dir, &base, "pw d\n123456\n").await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&dir, &["mfa", "status"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("recovery codes left:  9"), "{out}");
}
