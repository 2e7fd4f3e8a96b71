//! Enclave's real notebook front for `scripts/bench-gateway.sh`: the request path a browser
//! takes to JupyterLab (`/p/{project}/nb/{name}/…` through Enclave's whole router: session
//! cookie lookup, `notebook.open` decided by the policy chokepoint, then the gateway), with a
//! loopback upstream standing in for JupyterLab. Loopback only.
//!
//! ```text
//! front_bench --listen 127.0.0.1:P --upstream 127.0.0.1:U --data DIR --envs DIR \
//!             --index http://127.0.0.1:I/simple/ --pins "jupyterlab==… ipykernel==…" \
//!             --cookie-file FILE
//! ```
//!
//! Set-up, all through the application's own use cases on a fresh store in `--data`:
//! the first admin, a user `bench` who owns project `demo`, the environment template `lab`
//! (`--pins`) built by Enclave's environment builder in `--envs` from the loopback index
//! `--index` (an earlier build of the same pins and index is reused, as `enclave serve`
//! reuses it), then `bench` logs in and creates the notebook server `demo/n1`.
//!
//! The one stand-in is the sandbox backend: [`BenchRuntime`] implements
//! `enclave_sandbox::Runtime` (the seam Enclave's notebooks use) with a workload that runs
//! nothing and whose `dial` connects to `--upstream` instead of entering a network
//! namespace. Enclave waits for `…/api/status` to answer 200 there (the upstream must serve
//! that path), marks the server ready, and from then on every request to
//! `/p/demo/nb/n1/…` is authenticated, authorized and forwarded as in production.
//!
//! When it is ready it writes the session cookie's value (the secret of `bench`'s session) to
//! `--cookie-file` (mode 0600), prints `READY`, and serves plain HTTP on `--listen` with
//! `enclave_listener` (as `enclave serve` does on loopback) until killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enclave_app::{App, Caller, EnvStatus, NewUser, NotebookSettings, RequestMeta, SandboxHost};
use enclave_core::environments::{EnvTemplate, Preset};
use enclave_core::notebooks::{CullPolicy, NotebookRequest, NotebookState};
use enclave_sandbox::{Canceller, Outcome, Runtime, SandboxSpec, Status, Workload};

const ADMIN_PW: &str = "Bench-Granite-Orchard-41";
const USER_PW: &str = "Violet-Harbour-Lantern-73";
const SETUP_LIMIT: Duration = Duration::from_secs(900);

struct Args(Vec<String>);

impl Args {
    fn opt(&self, name: &str) -> &str {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{name} is required"))
    }

    fn addr(&self, name: &str) -> SocketAddr {
        let v = self.opt(name);
        let addr: SocketAddr = v
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not an address: {v}"));
        // The benchmark must never send traffic anywhere but loopback.
        assert!(
            addr.ip().is_loopback(),
            "{name}: only loopback addresses are allowed (got {addr})"
        );
        addr
    }
}

/// A sandbox backend whose workloads run nothing and whose project network is the
/// benchmark's loopback upstream.
struct BenchRuntime {
    upstream: SocketAddr,
    logs: PathBuf,
}

struct BenchWorkload {
    id: String,
    cancel: Canceller,
    upstream: SocketAddr,
}

impl Runtime for BenchRuntime {
    fn start(&self, spec: SandboxSpec) -> enclave_sandbox::Result<Box<dyn Workload>> {
        Ok(Box::new(BenchWorkload {
            id: spec.id,
            cancel: Canceller::default(),
            upstream: self.upstream,
        }))
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.logs.join(format!("{id}.log"))
    }

    fn dial(
        &self,
        _id: &str,
        _address: Ipv4Addr,
        _port: u16,
        timeout: Duration,
    ) -> enclave_sandbox::Result<TcpStream> {
        dial(self.upstream, timeout)
    }
}

fn dial(upstream: SocketAddr, timeout: Duration) -> enclave_sandbox::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&upstream, timeout).map_err(|source| {
        enclave_sandbox::Error::Io {
            what: format!("connect to the bench upstream {upstream}"),
            source,
        }
    })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

impl Workload for BenchWorkload {
    fn id(&self) -> &str {
        &self.id
    }

    fn status(&mut self) -> enclave_sandbox::Result<Status> {
        Ok(if self.cancel.is_cancelled() {
            Status::Finished(Outcome::Cancelled)
        } else {
            Status::Running
        })
    }

    fn wait(&mut self) -> enclave_sandbox::Result<Outcome> {
        while !self.cancel.is_cancelled() {
            std::thread::sleep(enclave_sandbox::POLL);
        }
        Ok(Outcome::Cancelled)
    }

    fn canceller(&self) -> Canceller {
        self.cancel.clone()
    }

    fn address(&self) -> Option<Ipv4Addr> {
        // Documentation range: never routed; `dial` goes to the loopback upstream.
        Some(Ipv4Addr::new(192, 0, 2, 10))
    }

    fn connect(&self, _port: u16, timeout: Duration) -> enclave_sandbox::Result<TcpStream> {
        dial(self.upstream, timeout)
    }

    fn logs(&self) -> enclave_sandbox::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn delete(&mut self) -> enclave_sandbox::Result<()> {
        self.cancel.cancel();
        Ok(())
    }
}

fn meta() -> RequestMeta {
    RequestMeta {
        source: "127.0.0.1".into(),
        request_id: "req_bench_setup".into(),
    }
}

async fn login(app: &App, user: &str, pw: &str) -> (Caller, String) {
    let out = app
        .login_session(user, pw, &meta())
        .await
        .unwrap_or_else(|e| panic!("login {user}: {}", e.message));
    (out.caller, out.session_secret)
}

/// Sets everything up through the application's use cases; returns `bench`'s session secret.
async fn set_up(app: &App, pins: &[String]) -> String {
    app.refresh_policy().await.expect("policies load");
    app.bootstrap_admin("admin", ADMIN_PW)
        .await
        .unwrap_or_else(|e| panic!("bootstrap: {}", e.message));
    let (admin, _) = login(app, "admin", ADMIN_PW).await;
    app.create_user(
        &admin,
        NewUser {
            username: "bench".into(),
            password: USER_PW.into(),
            display_name: "Bench".into(),
            email: "bench@example.com".into(),
            platform_admin: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create user: {}", e.message));
    app.create_project(&admin, "demo", "gateway benchmark", Some("bench"))
        .await
        .unwrap_or_else(|e| panic!("create project: {}", e.message));
    let template = EnvTemplate {
        name: "lab".into(),
        python: "3.11".into(),
        packages: pins.to_vec(),
        presets: vec![Preset {
            name: "small".into(),
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
        }],
    };
    app.put_environment(&admin, template)
        .await
        .unwrap_or_else(|e| panic!("environment template: {}", e.message));
    let deadline = Instant::now() + SETUP_LIMIT;
    let started = Instant::now();
    loop {
        let view = app
            .environment(&admin, "lab")
            .await
            .unwrap_or_else(|e| panic!("environment: {}", e.message));
        match view.status {
            EnvStatus::Ready { .. } => break,
            EnvStatus::Failed { .. } => panic!("the environment build failed: {view:?}"),
            EnvStatus::NotBuilt => {
                app.build_environment(&admin, "lab")
                    .await
                    .unwrap_or_else(|e| panic!("build: {}", e.message));
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the environment build is too slow"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "front_bench: environment ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (user, secret) = login(app, "bench", USER_PW).await;
    app.create_notebook(
        &user,
        "demo",
        &NotebookRequest {
            name: "n1".into(),
            environment: Some("lab".into()),
            preset: None,
            secrets: Vec::new(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create notebook: {}", e.message));
    loop {
        let nb = app
            .notebook(&user, "demo", "n1")
            .await
            .unwrap_or_else(|e| panic!("notebook: {}", e.message));
        match nb.state {
            NotebookState::Ready => break,
            NotebookState::Starting => {}
            other => panic!("the notebook did not start: {other:?} {:?}", nb.reason),
        }
        assert!(
            Instant::now() < deadline,
            "the notebook is too slow to start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    secret
}

fn main() {
    let args = Args(std::env::args().skip(1).collect());
    let listen = args.addr("--listen");
    let upstream = args.addr("--upstream");
    let index = args.opt("--index").to_string();
    let index_host = index
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    assert!(
        index_host
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback()),
        "--index must be http://127.0.0.1:PORT/simple/ (got {index})"
    );
    let data = PathBuf::from(args.opt("--data"));
    let envs = PathBuf::from(args.opt("--envs"));
    let pins: Vec<String> = args
        .opt("--pins")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let cookie_file = PathBuf::from(args.opt("--cookie-file"));

    // As `enclave serve` builds it (crates/enclave/src/main.rs).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&envs).unwrap();
        let store = enclave_store::Store::open(&data.join("enclave.db"))
            .await
            .unwrap();
        let builder =
            enclave_envs::Builder::new(envs, index.clone(), enclave_envs::Installer::Uv).unwrap();
        // The local master key file, as `enclave serve` keeps it by default.
        let master = enclave_keys::FileMasterKeys::open_or_create_local(
            &data.join(enclave_keys::FileMasterKeys::LOCAL_FILE),
        )
        .unwrap();
        let keys = Arc::new(enclave_app::Keyring::new(Arc::new(master)));
        let host = SandboxHost {
            runtime: Arc::new(BenchRuntime {
                upstream,
                logs: data.join("logs"),
            }),
            volumes_dir: data.join("volumes"),
            max_running: 4,
            log_bytes: 1 << 20,
            caps: enclave_core::jobs::JobCaps::default(),
            project_networks: true,
        };
        let app = App::new(
            store,
            Arc::new(enclave_app::SystemClock),
            enclave_app::Settings::default(),
        )
        .unwrap()
        .with_keys(keys)
        .with_sandbox(host)
        .with_environments(Arc::new(builder), index)
        .with_notebooks(NotebookSettings {
            cull: CullPolicy { idle_secs: 0 },
            start_timeout: Duration::from_secs(60),
            max_running: 4,
            subdomains: false,
        });
        let secret = set_up(&app, &pins).await;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&cookie_file)
            .unwrap();
        f.write_all(secret.as_bytes()).unwrap();
        drop(f);

        let router = enclave_http::router(
            app,
            enclave_http::HttpSettings {
                hsts: false,
                ..enclave_http::HttpSettings::default()
            },
        );
        let listener = enclave_listener::bind(enclave_listener::ListenConfig {
            addr: listen,
            tls: enclave_listener::TlsMode::PlainHttp,
        })
        .await
        .unwrap();
        println!("READY {}", listener.local_addr());
        enclave_listener::serve_with(
            listener,
            router,
            std::future::pending(),
            enclave_listener::ServeOptions::default(),
        )
        .await
        .unwrap();
    });
}
