//! `enclave serve`, `enclave admin bootstrap` and `enclave config check`.

use enclave_app::{App, Keyring, Settings, SystemClock};
use enclave_config::{Config, LogFormat, MasterKeySource, Overrides};
use enclave_core::session::{SessionPolicy, TokenPolicy};
use enclave_core::throttle::ThrottleRule;
use enclave_keys::{FileMasterKeys, MasterKeys};
use enclave_listener::{ListenConfig, TlsMode};
use enclave_store::Store;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Exit code for configuration and usage errors.
const EXIT_USAGE: i32 = 2;
/// Exit code for runtime failures.
const EXIT_FAIL: i32 = 1;

/// Name of the database file inside the data directory.
const DB_FILE: &str = "enclave.db";
/// Name of the file holding the one-time setup URL.
pub const SETUP_URL_FILE: &str = "setup-url";

fn settings(cfg: &Config) -> Settings {
    Settings {
        sessions: SessionPolicy {
            idle: cfg.sessions.idle_timeout,
            absolute: cfg.sessions.absolute_timeout,
        },
        tokens: TokenPolicy {
            default_lifetime: cfg.tokens.default_lifetime,
            max_lifetime: cfg.tokens.max_lifetime,
        },
        account_throttle: ThrottleRule {
            max_failures: cfg.login.max_failures_per_account,
            window: cfg.login.failure_window,
            lockout: cfg.login.lockout,
        },
        address_throttle: ThrottleRule {
            max_failures: cfg.login.max_failures_per_address,
            window: cfg.login.failure_window,
            lockout: cfg.login.lockout,
        },
        setup_ttl: cfg.setup.token_ttl,
        hash_concurrency: cfg.passwords.effective_hash_concurrency(),
        hash_queue: cfg.passwords.hash_queue,
        max_grant: cfg.access.max_grant_duration,
        require_mfa: cfg.login.require_mfa,
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// Creates the data directory with mode 0700 (or tightens an existing one).
pub(crate) fn prepare_data_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes `contents` to `path` with mode 0600 (replacing the file).
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

async fn open_app(
    cfg_settings: Settings,
    data_dir: &Path,
    audit: &enclave_config::AuditConfig,
    master: Arc<FileMasterKeys>,
) -> Result<App, String> {
    prepare_data_dir(data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    let db = data_dir.join(DB_FILE);
    if !db.exists() {
        // SQLite gives the WAL and shared-memory files the main file's mode: make it private.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&db)
            .map_err(|e| format!("cannot create {}: {e}", db.display()))?;
    }
    let options = enclave_store::StoreOptions {
        audit: crate::trail::audit_options(data_dir, audit, master.as_ref())?,
    };
    let store = Store::open_with(&db, options)
        .await
        .map_err(|e| format!("cannot open the store in {}: {e}", data_dir.display()))?;
    let keyring = Arc::new(Keyring::new(master));
    keyring.register_master_sealed(Arc::new(crate::trail::SealedAuditKey(
        data_dir.join(crate::trail::AUDIT_KEY_FILE),
    )));
    Ok(App::new(store, Arc::new(SystemClock), cfg_settings)
        .map_err(|e| e.to_string())?
        .with_keys(keyring)
        .with_backup_files(vec![data_dir.join(crate::trail::AUDIT_KEY_FILE)]))
}

fn load(flags: &Overrides) -> Result<Config, i32> {
    match enclave_config::load_from_process(flags) {
        Ok((cfg, _)) => Ok(cfg),
        Err(errors) => {
            eprintln!("error: invalid configuration:");
            eprintln!("{}", enclave_config::format_errors(&errors));
            Err(EXIT_USAGE)
        }
    }
}

/// `enclave config check`.
pub fn check_config(flags: &Overrides) -> i32 {
    match enclave_config::load_from_process(flags) {
        Ok((_, file)) => {
            match file {
                Some(f) => println!("configuration OK ({})", f.display()),
                None => println!("configuration OK (embedded defaults, environment and flags)"),
            }
            0
        }
        Err(errors) => {
            eprintln!("{}", enclave_config::format_errors(&errors));
            EXIT_USAGE
        }
    }
}

/// `enclave admin bootstrap`.
pub async fn bootstrap(data_dir: &Path, username: &str, password_file: &Path) -> i32 {
    let password = match std::fs::read_to_string(password_file) {
        Ok(p) => zeroize::Zeroizing::new(p),
        Err(e) => {
            eprintln!(
                "error: cannot read the password file {}: {e}",
                password_file.display()
            );
            return EXIT_FAIL;
        }
    };
    let password = password.lines().next().unwrap_or("").to_string();
    let password = zeroize::Zeroizing::new(password);
    if data_dir.join(FileMasterKeys::SEALED_FILE).exists() {
        eprintln!("error: this installation's master key is sealed with a passphrase: start the server, unseal it and use its one-time setup link instead");
        return EXIT_USAGE;
    }
    let audit = enclave_config::AuditConfig::default();
    let app = match async {
        prepare_data_dir(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let master = crate::master::open(data_dir, MasterKeySource::File)?;
        open_app(Settings::default(), data_dir, &audit, master).await
    }
    .await
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let code = match app.bootstrap_admin(username, &password).await {
        Ok(u) => {
            println!("created platform admin '{}'", u.username);
            let _ = std::fs::remove_file(data_dir.join(SETUP_URL_FILE));
            0
        }
        Err(e) => {
            eprintln!("error: {}", e.message);
            if e.code == enclave_core::ErrorCode::InvalidInput {
                EXIT_USAGE
            } else {
                EXIT_FAIL
            }
        }
    };
    app.store().close().await;
    code
}

/// Exit code of `admin verify-audit` when the trail was altered.
const EXIT_TAMPERED: i32 = 6;

/// `enclave admin verify-audit`: checks the trail in the data directory with the
/// installation's public key.
pub async fn verify_audit(data_dir: &Path, from: Option<u64>) -> i32 {
    if !data_dir.join(DB_FILE).exists() {
        eprintln!(
            "error: no Enclave data in {} (pass --data-dir)",
            data_dir.display()
        );
        return EXIT_USAGE;
    }
    // Only the public key is needed: verification works without the master key.
    let key = match crate::trail::public_key(data_dir) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let store = match Store::open(&data_dir.join(DB_FILE)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: cannot open the store in {}: {e}",
                data_dir.display()
            );
            return EXIT_FAIL;
        }
    };
    let code = match store.verify_audit(&key, from).await {
        Ok(Ok(s)) => {
            println!(
                "audit trail intact: {} records ({}..{}), {} signed checkpoints, key {}",
                s.records,
                s.first_seq.map_or("-".into(), |v| v.to_string()),
                s.last_seq.map_or("-".into(), |v| v.to_string()),
                s.checkpoints,
                key.key_id()
            );
            0
        }
        Ok(Err(f)) => {
            println!("audit trail ALTERED: {f}");
            EXIT_TAMPERED
        }
        Err(e) => {
            eprintln!("error: cannot read the audit trail: {e}");
            EXIT_FAIL
        }
    };
    store.close().await;
    code
}

/// Registers SIGTERM and SIGINT handlers now (before the server announces itself, so a signal
/// can never hit the default action) and returns a future that resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested");
    })
}

/// The platform's running parts once the master key is open.
struct Running {
    app: App,
    forwarders: crate::trail::Forwarders,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Opens the store with the master key and starts the background work.
    async fn start(
        cfg: &Config,
        master: Arc<FileMasterKeys>,
        base: &str,
    ) -> Result<Running, String> {
        let app = open_app(settings(cfg), &cfg.data_dir, &cfg.audit, master)
            .await?
            .with_identity(enclave_app::IdentitySettings {
                public_url: base.to_string(),
                deprovision_within: cfg.access.deprovision_within,
            });
        let sealed = app
            .seal_plain_password_hashes()
            .await
            .map_err(|e| format!("cannot seal stored password hashes: {}", e.message))?;
        if sealed > 0 {
            tracing::info!(sealed, "password hashes sealed under the platform key");
        }
        app.refresh_policy()
            .await
            .map_err(|e| format!("the authorization policies do not load: {}", e.message))?;
        let forwarders = crate::trail::Forwarders::start(app.store(), &cfg.data_dir, &cfg.audit)
            .map_err(|e| format!("audit forwarding: {e}"))?;
        announce_setup(&app, &cfg.data_dir, base).await?;
        {
            let f = forwarders.clone();
            app.set_commit_listener(Box::new(move || f.notify()));
        }
        let pruner = {
            let app = app.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(300));
                loop {
                    tick.tick().await;
                    if let Err(e) = app.prune().await {
                        tracing::warn!(error = %e, "housekeeping failed");
                    }
                    if let Err(e) = app.resume_reencryption().await {
                        tracing::warn!(error = %e, "re-encryption failed");
                    }
                }
            })
        };
        let housekeeping = crate::trail::spawn_housekeeping(app.clone(), &cfg.audit);
        let app = crate::sandbox::enable(app, cfg).await;
        let jobs = {
            let app = app.clone();
            tokio::spawn(async move { app.run_jobs().await })
        };
        let builds = {
            let app = app.clone();
            let on_start = cfg.notebooks.build_on_start;
            tokio::spawn(async move {
                if on_start {
                    app.build_all_environments().await;
                }
                app.run_notebook_culler().await;
            })
        };
        let identity = {
            let app = app.clone();
            tokio::spawn(async move { app.run_identity_tasks().await })
        };
        Ok(Running {
            app,
            forwarders,
            tasks: vec![pruner, housekeeping, jobs, builds, identity],
        })
    }

    fn router(&self, http: &enclave_http::HttpSettings) -> enclave_http::Router {
        enclave_http::router(self.app.clone(), http.clone())
    }

    async fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
        // Running jobs are killed and recorded as failed while the store is still open.
        self.app.stop_jobs(Duration::from_secs(15)).await;
        self.app.stop_notebooks(Duration::from_secs(15)).await;
        // Windows of token use still open are recorded before the store closes.
        if let Err(e) = self.app.flush_token_use(true).await {
            tracing::warn!(error = %e.message, "token use of the last minute was not recorded");
        }
        self.forwarders.stop().await;
        self.app.store().close().await;
    }
}

use enclave_http::sealed::{UnsealError, Unsealer};

/// Unseals a sealed server: one attempt at a time, a pause after each wrong passphrase, then
/// the platform starts and takes over every request.
struct HostUnsealer {
    cfg: Config,
    base: String,
    http: enclave_http::HttpSettings,
    master: Arc<FileMasterKeys>,
    live: Arc<std::sync::OnceLock<enclave_http::Router>>,
    running: Arc<tokio::sync::Mutex<Option<Running>>>,
    failures: std::sync::atomic::AtomicU64,
}

impl HostUnsealer {
    async fn attempt(
        self: Arc<Self>,
        passphrase: zeroize::Zeroizing<String>,
        source: String,
    ) -> Result<(), UnsealError> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Ok(());
        }
        let master = self.master.clone();
        let opened = tokio::task::spawn_blocking(move || master.unseal(passphrase.as_bytes()))
            .await
            .map_err(|_| UnsealError::Failed("the unseal attempt failed; retry".into()))?;
        use std::sync::atomic::Ordering;
        match opened {
            Ok(()) => {}
            Err(enclave_keys::KeyError::WrongPassphrase) => {
                let n = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
                tracing::warn!(%source, failures = n, "unseal refused: wrong passphrase");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Err(UnsealError::WrongPassphrase);
            }
            Err(e) => return Err(UnsealError::Failed(e.to_string())),
        }
        let r = Running::start(&self.cfg, self.master.clone(), &self.base)
            .await
            .map_err(UnsealError::Failed)?;
        let failed = self.failures.load(Ordering::SeqCst);
        if let Err(e) = r.app.record_unseal(&source, failed).await {
            tracing::error!(error = %e.message, "the unseal could not be audited");
        }
        let _ = self.live.set(r.router(&self.http));
        *running = Some(r);
        tracing::info!(%source, "unsealed");
        println!("Enclave unsealed; serving.");
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

/// The trait object handed to the sealed router.
struct UnsealHandle(Arc<HostUnsealer>);

impl Unsealer for UnsealHandle {
    fn unseal(
        &self,
        passphrase: zeroize::Zeroizing<String>,
        source: String,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), UnsealError>> + Send + 'static>,
    > {
        Box::pin(self.0.clone().attempt(passphrase, source))
    }
}

/// `enclave serve`.
pub async fn serve(flags: Overrides) -> i32 {
    let cfg = match load(&flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(cfg.log.format, &cfg.log.level);
    let shutdown = match shutdown_signal() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return EXIT_FAIL;
        }
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if let Err(e) = prepare_data_dir(&cfg.data_dir) {
        eprintln!(
            "error: cannot create the data directory {}: {e}",
            cfg.data_dir.display()
        );
        return EXIT_FAIL;
    }
    let master = match crate::master::open(&cfg.data_dir, cfg.keys.master) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let tls = if cfg.tls.insecure_plain_http {
        TlsMode::PlainHttp
    } else if let (Some(cert), Some(key)) = (&cfg.tls.cert_file, &cfg.tls.key_file) {
        TlsMode::Files {
            cert: cert.clone(),
            key: key.clone(),
        }
    } else {
        TlsMode::SelfSigned {
            dir: cfg.tls_dir(),
            // Notebook subdomains: one wildcard covers every `{name}--{project}` label.
            names: cfg
                .notebooks
                .subdomain_domain
                .iter()
                .map(|d| format!("*.{d}"))
                .collect(),
        }
    };
    let listener = match enclave_listener::bind(ListenConfig {
        addr: cfg.listen,
        tls,
    })
    .await
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let addr = listener.local_addr();
    let scheme = if listener.is_tls() { "https" } else { "http" };
    let base = match &cfg.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("{scheme}://{addr}"),
    };
    let http = enclave_http::HttpSettings {
        max_body_bytes: cfg.limits.max_body_bytes,
        hsts: listener.is_tls(),
        // Notebook origins use the scheme and port users reach Enclave at (`public_url`, or
        // the listening address).
        notebook_origins: cfg
            .notebooks
            .subdomain_domain
            .as_deref()
            .and_then(|d| enclave_http::notebook_origin::NotebookOrigins::new(d, &base)),
    };
    if let Some(d) = &cfg.notebooks.subdomain_domain {
        // Enclave's own host must not fall under the notebook domain: hosts there are served
        // nothing but notebooks.
        let own = base
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
            .unwrap_or_default();
        if enclave_core::notebook_hosts::classify(own, d)
            != enclave_core::notebook_hosts::HostKind::Main
        {
            eprintln!(
                "error: notebooks.subdomain_domain {d} contains Enclave's own address {base}; \
                 use a domain below it, such as nb.<your Enclave host>"
            );
            return EXIT_FAIL;
        }
    }
    let live = Arc::new(std::sync::OnceLock::new());
    let running = Arc::new(tokio::sync::Mutex::new(None));
    let sealed = master.is_sealed();
    if !sealed {
        match Running::start(&cfg, master.clone(), &base).await {
            Ok(r) => {
                let _ = live.set(r.router(&http));
                *running.lock().await = Some(r);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_FAIL;
            }
        }
    }
    let unsealer = Arc::new(HostUnsealer {
        cfg: cfg.clone(),
        base: base.clone(),
        http: http.clone(),
        master,
        live: live.clone(),
        running: running.clone(),
        failures: std::sync::atomic::AtomicU64::new(0),
    });
    let router = enclave_http::sealed::gate(
        enclave_http::sealed::sealed_router(Arc::new(UnsealHandle(unsealer)), http),
        live,
    );
    if let Some(cert) = listener.cert_path() {
        println!(
            "TLS certificate: {} (pass it to `enclave login --ca`)",
            cert.display()
        );
    }
    if sealed {
        println!(
            "Enclave is SEALED: unseal it with `enclave unseal --url {base} --passphrase-stdin`"
        );
    }
    println!("Enclave listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, scheme, sealed, "listening");

    let mut opts = enclave_listener::ServeOptions::default();
    opts.max_connections = cfg.limits.max_connections;
    let result = enclave_listener::serve_with(listener, router, shutdown, opts).await;
    if let Some(r) = running.lock().await.take() {
        r.stop().await;
    }
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(e) => {
            eprintln!("error: server failed: {e}");
            EXIT_FAIL
        }
    }
}

/// On a platform without accounts, prints the one-time setup URL and stores it 0600 in the
/// data directory; otherwise removes a stale setup file.
async fn announce_setup(app: &App, data_dir: &Path, base: &str) -> Result<(), String> {
    let file: PathBuf = data_dir.join(SETUP_URL_FILE);
    match app.issue_setup_token().await {
        Ok(Some(token)) => {
            let url = format!("{base}/setup?token={token}");
            write_private(&file, &format!("{url}\n"))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            let mins = app.settings().setup_ttl.as_secs() / 60;
            println!("No admin exists yet. Open this one-time setup URL within {mins} minutes to create the first platform admin:");
            println!("  {url}");
            println!(
                "(also saved in {}; restart the server for a new link)",
                file.display()
            );
            Ok(())
        }
        Ok(None) => {
            let _ = std::fs::remove_file(&file);
            Ok(())
        }
        Err(e) => Err(format!("cannot prepare the setup link: {e}")),
    }
}
