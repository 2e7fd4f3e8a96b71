//! Test kit: starts the real `enclave` binary on a free loopback port with a temporary data
//! directory, and hands tests an HTTPS client that trusts exactly that server's certificate,
//! plus helpers to run the CLI against it. The server is stopped (SIGTERM, then SIGKILL) and the
//! directory removed when the [`Server`] is dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod pypi;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Password used for accounts the kit creates.
pub const PASSWORD: &str = "Quiet-Harbor-Lantern-58";

/// Options for starting a server.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra environment variables (`ENCLAVE_*` configuration).
    pub env: Vec<(String, String)>,
    /// Extra flags after `serve`.
    pub args: Vec<String>,
}

/// A running server.
pub struct Server {
    /// Temporary directory holding `data/` and client config dirs.
    pub root: TempDir,
    /// Data directory of the server.
    pub data_dir: PathBuf,
    /// Bound address.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// Server's stdout lines so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// Server's stderr lines so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    bin: PathBuf,
    child: Option<Child>,
}

fn collect(reader: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
}

impl Server {
    /// Starts `bin serve` with defaults.
    pub fn start(bin: &str) -> Server {
        Server::start_with(bin, Options::default())
    }

    /// Starts `bin serve` with options, waiting until it listens.
    pub fn start_with(bin: &str, opts: Options) -> Server {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("data");
        Server::start_in(bin, root, data_dir, opts)
    }

    /// Starts `bin serve` listening on `listen` (e.g. `127.0.0.1:PORT`, for a test that must
    /// know its address before the start, such as a public URL naming `localhost:PORT`).
    pub fn start_on(bin: &str, listen: &str, opts: Options) -> Server {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("data");
        Server::spawn(bin, root, data_dir, listen, opts)
    }

    /// Starts `bin serve` on `data_dir` (prepared by the caller) under `root`.
    pub fn start_in(bin: &str, root: TempDir, data_dir: PathBuf, opts: Options) -> Server {
        Server::spawn(bin, root, data_dir, "127.0.0.1:0", opts)
    }

    fn spawn(bin: &str, root: TempDir, data_dir: PathBuf, listen: &str, opts: Options) -> Server {
        // Sandboxed jobs mount project volumes from the data directory as unprivileged uids:
        // the path to it must let them through (the data directory itself stays unlistable).
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711));
        }
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(listen)
            .args(&opts.args)
            .env_remove("ENCLAVE_CONFIG")
            .env("ENCLAVE_LOG_LEVEL", "info")
            // Tests never reach a real package index: nothing is built unless a test asks,
            // and then only from its own index on loopback.
            .env("ENCLAVE_NOTEBOOKS_BUILD_ON_START", "false")
            .env("ENCLAVE_NOTEBOOKS_INDEX_URL", "http://127.0.0.1:9/simple/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start enclave serve");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let found = stdout
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix("Enclave listening on ").map(str::to_string));
            if let Some(b) = found {
                break b;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "enclave serve exited with {status}; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "server did not start in time");
            std::thread::sleep(Duration::from_millis(20));
        };
        let addr: SocketAddr = base
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        Server {
            root,
            data_dir,
            addr,
            base,
            stdout,
            stderr,
            bin: PathBuf::from(bin),
            child: Some(child),
        }
    }

    /// Stops the server with SIGTERM and waits for it; returns its exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops and starts the server again on the same data directory (a new port).
    pub fn restart(mut self, opts: Options) -> Server {
        self.stop();
        let root = std::mem::replace(&mut self.root, tempfile::tempdir().unwrap());
        let data_dir = self.data_dir.clone();
        let bin = self.bin.to_string_lossy().to_string();
        Server::start_in(&bin, root, data_dir, opts)
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap()
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the server.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Path of the server's TLS certificate.
    pub fn cert_path(&self) -> PathBuf {
        self.data_dir.join("tls").join("cert.pem")
    }

    /// The binary under test.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// An HTTPS client trusting only this server's certificate, without redirects or cookies.
    pub fn client(&self) -> reqwest::Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let pem = std::fs::read(self.cert_path()).unwrap();
        let cert = reqwest::Certificate::from_pem(&pem).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([cert])
            .redirect(reqwest::redirect::Policy::none())
            // The server closes keep-alive connections idle for 30 s; never reuse one near that.
            .pool_idle_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The setup token from the data directory's `setup-url` file.
    pub fn setup_token(&self) -> String {
        let url = std::fs::read_to_string(self.data_dir.join("setup-url")).unwrap();
        url.trim().rsplit("token=").next().unwrap().to_string()
    }

    /// Creates the first admin through the setup API and returns a full-scope token for it.
    pub async fn admin(&self) -> Api {
        let c = self.client();
        let r = c
            .post(self.url("/api/v1/setup"))
            .json(&json!({"token": self.setup_token(), "username": "admin", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "setup failed: {}", r.text().await.unwrap());
        self.login("admin", PASSWORD).await
    }

    /// Logs in with a password and returns an API handle with a new full-scope token.
    pub async fn login(&self, username: &str, password: &str) -> Api {
        let c = self.client();
        let r = c
            .post(self.url("/api/v1/auth/token"))
            .json(&json!({"username": username, "password": password, "name": "test"}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "login failed: {body}");
        Api {
            client: c,
            base: self.base.clone(),
            token: body["token"].as_str().unwrap().to_string(),
        }
    }

    /// A `Command` running the CLI with its own config directory under the temp root.
    pub fn cli(&self, config_name: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("ENCLAVE_CONFIG_DIR", self.root.path().join(config_name))
            .env_remove("ENCLAVE_CONFIG")
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Server {
    /// Stops the server gracefully (SIGTERM: it stops its sandboxes), then kills it.
    fn drop(&mut self) {
        self.stop();
    }
}

/// An authenticated API handle.
pub struct Api {
    /// HTTPS client.
    pub client: reqwest::Client,
    /// Base URL.
    pub base: String,
    /// Bearer token.
    pub token: String,
}

impl Api {
    /// Sends a request with the bearer token; returns status and JSON body (Null when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .client
            .request(m, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// GET.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }

    /// Creates a user with the kit's password and logs in as that user.
    pub async fn user(&self, server: &Server, username: &str) -> Api {
        let (s, b) = self
            .post(
                "/api/v1/users",
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, 201, "create user: {b}");
        server.login(username, PASSWORD).await
    }
}
