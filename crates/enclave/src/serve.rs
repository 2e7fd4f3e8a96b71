//! `enclave serve`, `enclave admin bootstrap` and `enclave config check`.

use enclave_app::{App, Settings, SystemClock};
use enclave_config::{Config, LogFormat, Overrides};
use enclave_core::session::{SessionPolicy, TokenPolicy};
use enclave_core::throttle::ThrottleRule;
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
fn prepare_data_dir(dir: &Path) -> std::io::Result<()> {
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
        audit: crate::trail::audit_options(data_dir, audit)?,
    };
    let store = Store::open_with(&db, options)
        .await
        .map_err(|e| format!("cannot open the store in {}: {e}", data_dir.display()))?;
    App::new(store, Arc::new(SystemClock), cfg_settings).map_err(|e| e.to_string())
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
    let audit = enclave_config::AuditConfig::default();
    let app = match open_app(Settings::default(), data_dir, &audit).await {
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
    let audit = enclave_config::AuditConfig::default();
    let app = match open_app(Settings::default(), data_dir, &audit).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let key = match crate::trail::load_or_create_key(data_dir) {
        Ok(k) => enclave_audit::CheckpointSigner::public_key(&k),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let code = match app.store().verify_audit(&key, from).await {
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
    app.store().close().await;
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
    let app = match open_app(settings(&cfg), &cfg.data_dir, &cfg.audit).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    if let Err(e) = app.refresh_policy().await {
        eprintln!(
            "error: the authorization policies do not load: {}",
            e.message
        );
        return EXIT_FAIL;
    }
    let forwarders = match crate::trail::Forwarders::start(app.store(), &cfg.data_dir, &cfg.audit) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: audit forwarding: {e}");
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
        TlsMode::SelfSigned { dir: cfg.tls_dir() }
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
    if let Err(code) = announce_setup(&app, &cfg.data_dir, &base).await {
        return code;
    }
    if let Some(cert) = listener.cert_path() {
        println!(
            "TLS certificate: {} (pass it to `enclave login --ca`)",
            cert.display()
        );
    }
    println!("Enclave listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, scheme, "listening");

    let pruner = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(300));
            loop {
                tick.tick().await;
                if let Err(e) = app.prune().await {
                    tracing::warn!(error = %e, "housekeeping failed");
                }
            }
        })
    };
    {
        let f = forwarders.clone();
        app.set_commit_listener(Box::new(move || f.notify()));
    }
    let housekeeping = crate::trail::spawn_housekeeping(app.clone(), &cfg.audit);
    let router = enclave_http::router(
        app.clone(),
        enclave_http::HttpSettings {
            max_body_bytes: cfg.limits.max_body_bytes,
            hsts: listener.is_tls(),
        },
    );
    let mut opts = enclave_listener::ServeOptions::default();
    opts.max_connections = cfg.limits.max_connections;
    let result = enclave_listener::serve_with(listener, router, shutdown, opts).await;
    pruner.abort();
    housekeeping.abort();
    forwarders.stop().await;
    app.store().close().await;
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
async fn announce_setup(app: &App, data_dir: &Path, base: &str) -> Result<(), i32> {
    let file: PathBuf = data_dir.join(SETUP_URL_FILE);
    match app.issue_setup_token().await {
        Ok(Some(token)) => {
            let url = format!("{base}/setup?token={token}");
            if let Err(e) = write_private(&file, &format!("{url}\n")) {
                eprintln!("error: cannot write {}: {e}", file.display());
                return Err(EXIT_FAIL);
            }
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
        Err(e) => {
            eprintln!("error: cannot prepare the setup link: {e}");
            Err(EXIT_FAIL)
        }
    }
}
