//! Enclave's server configuration.
//!
//! Values come from four layers, later ones winning: the built-in defaults
//! ([`Config::default`]), a TOML file, `ENCLAVE_*` environment variables, and
//! command-line flags ([`Overrides`]). Loading is pure: [`Config::load`] takes the
//! file's text and the environment as data, so it can be tested without touching
//! the process; [`load_from_process`] is the thin wrapper that reads the real ones.
//!
//! Every value is validated the same way whichever layer it comes from, unknown
//! keys and unknown `ENCLAVE_*` variables are errors, and all problems are
//! reported together as [`ConfigError`]s naming the file and line, variable or
//! flag, the key, and the reason. [`Config::example_toml`] renders a documented
//! example file from the same table of settings the loader uses.

mod duration;
mod error;
mod loader;
mod settings;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use duration::{format_duration, parse_duration, MAX_DURATION};
pub use error::{format_errors, ConfigError, Source};

use loader::Builder;

/// Environment variable naming the configuration file (when `--config` is not given).
pub const CONFIG_ENV_VAR: &str = "ENCLAVE_CONFIG";

/// The complete, validated server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory for the database, TLS material and other state (`data_dir`, default `./enclave-data`).
    pub data_dir: PathBuf,
    /// Address and port to listen on (`listen`, default `127.0.0.1:8443`).
    pub listen: SocketAddr,
    /// Base URL for links shown to users, without trailing slash (`public_url`);
    /// `None` means [`Config::public_base_url`] derives it from `listen`.
    pub public_url: Option<String>,
    /// `[tls]`: certificate, or plain HTTP on loopback.
    pub tls: TlsConfig,
    /// `[log]`: log format and filter.
    pub log: LogConfig,
    /// `[sessions]`: console session lifetimes.
    pub sessions: SessionConfig,
    /// `[tokens]`: API token lifetimes.
    pub tokens: TokenConfig,
    /// `[login]`: brute-force protection.
    pub login: LoginConfig,
    /// `[setup]`: first-run setup link.
    pub setup: SetupConfig,
    /// `[limits]`: request and connection limits.
    pub limits: LimitsConfig,
    /// `[passwords]`: password hashing capacity.
    pub passwords: PasswordConfig,
    /// `[access]`: time-bound access grants.
    pub access: AccessConfig,
    /// `[audit]`: checkpoints, retention, forwarding.
    pub audit: AuditConfig,
    /// `[keys]`: where the master key comes from.
    pub keys: KeysConfig,
    /// `[jobs]`: batch job limits.
    pub jobs: JobsConfig,
    /// `[sandbox]`: workload sandboxes and project networks.
    pub sandbox: SandboxConfig,
    /// `[notebooks]`.
    pub notebooks: NotebooksConfig,
}

/// `[tls]` settings.
///
/// Invariants after loading: `cert_file` and `key_file` are both set or both
/// `None`; `insecure_plain_http` implies a loopback `listen` and no certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// PEM certificate chain (`tls.cert_file`); `None` means self-signed in [`Config::tls_dir`].
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file` (`tls.key_file`).
    pub key_file: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (`tls.insecure_plain_http`); loopback only.
    pub insecure_plain_http: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `"text"` or `"json"`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    /// Parses `"text"` or `"json"`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "expected \"text\" or \"json\", got {}",
                duration::quote(s)
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[log]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Line format (`log.format`, default text).
    pub format: LogFormat,
    /// `tracing` EnvFilter directive (`log.level`, default `info`); non-empty, <= 256 characters.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[sessions]` settings; `absolute_timeout >= idle_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Session ends after this long without requests (`sessions.idle_timeout`, default 30m).
    pub idle_timeout: Duration,
    /// Session ends this long after login regardless (`sessions.absolute_timeout`, default 12h).
    pub absolute_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: minutes(30),
            absolute_timeout: hours(12),
        }
    }
}

/// `[tokens]` settings; `default_lifetime <= max_lifetime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// Longest allowed API token lifetime (`tokens.max_lifetime`, default 90d).
    pub max_lifetime: Duration,
    /// Lifetime when none is requested (`tokens.default_lifetime`, default 30d).
    pub default_lifetime: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            max_lifetime: days(90),
            default_lifetime: days(30),
        }
    }
}

/// `[login]` settings: lockout after repeated password failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// Failures per account within `failure_window` before lockout (default 5).
    pub max_failures_per_account: u32,
    /// Failures per client address within `failure_window` before lockout (default 20).
    pub max_failures_per_address: u32,
    /// Window over which failures are counted (default 15m).
    pub failure_window: Duration,
    /// How long a locked account or address is refused (default 15m).
    pub lockout: Duration,
    /// Local accounts must enrol in MFA before doing anything else (default false).
    pub require_mfa: bool,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            failure_window: minutes(15),
            lockout: minutes(15),
            require_mfa: false,
        }
    }
}

/// `[setup]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupConfig {
    /// Validity of the one-time first-admin setup link (`setup.token_ttl`, default 1h).
    pub token_ttl: Duration,
}

impl Default for SetupConfig {
    fn default() -> Self {
        SetupConfig {
            token_ttl: hours(1),
        }
    }
}

/// `[access]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// Longest support or admin access grant (`access.max_grant_duration`, default 4h).
    pub max_grant_duration: Duration,
    /// Longest time between deactivating an account (by an admin, SCIM or the directory sync)
    /// and the end of its workloads (`access.deprovision_within`, default 5m).
    pub deprovision_within: Duration,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            max_grant_duration: hours(4),
            deprovision_within: Duration::from_secs(300),
        }
    }
}

/// Where the master key (key-encryption key) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MasterKeySource {
    /// A key file in the data directory (`master.key`, 0600), created on first start.
    #[default]
    File,
    /// A file sealed with a passphrase (`master.sealed`): the server starts sealed and serves
    /// nothing but its status until an operator runs `enclave unseal`.
    Passphrase,
}

impl MasterKeySource {
    /// `"file"` or `"passphrase"`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            MasterKeySource::File => "file",
            MasterKeySource::Passphrase => "passphrase",
        }
    }
}

/// `[keys]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeysConfig {
    /// The master key's source (`keys.master`, default `file`).
    pub master: MasterKeySource,
}

/// `[jobs]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// Jobs running at once on this server; others wait queued (`jobs.max_running`, default 4).
    pub max_running: usize,
    /// What a job gets when it asks for nothing, and the most it may ask for
    /// (`jobs.default_cpus`, `jobs.default_memory`, `jobs.default_timeout`, `jobs.max_cpus`,
    /// `jobs.max_memory`, `jobs.max_timeout`).
    pub caps: enclave_core::jobs::JobCaps,
    /// Most bytes of output kept per job (`jobs.log_bytes`, default 8 MiB).
    pub log_bytes: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            max_running: 4,
            caps: enclave_core::jobs::JobCaps::default(),
            log_bytes: 8 << 20,
        }
    }
}

/// `[sandbox]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Address pool of the project networks (`sandbox.network`, default `10.213.0.0/16`).
    pub network: (Ipv4Addr, u8),
    /// Prefix length of each project's network, cut from the pool in project order
    /// (`sandbox.subnet_prefix`, default 24).
    pub subnet_prefix: u8,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            network: (Ipv4Addr::new(10, 213, 0, 0), 16),
            subnet_prefix: 24,
        }
    }
}

/// `[notebooks]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebooksConfig {
    /// Package index environments are built from (`notebooks.index_url`, default PyPI's
    /// simple index); point it at an internal mirror.
    pub index_url: String,
    /// `uv` or `pip` (`notebooks.installer`, default `uv`).
    pub installer: String,
    /// Where built environments live (`notebooks.envs_dir`, default `<data_dir>/envs`).
    pub envs_dir: Option<PathBuf>,
    /// Build every template's environment when the server starts (`notebooks.build_on_start`,
    /// default true), so notebooks are ready to open.
    pub build_on_start: bool,
    /// Stop ready servers idle this long (`notebooks.idle_timeout`, default 1h; `"off"`
    /// never culls). Zero means off.
    pub idle_timeout: Duration,
    /// How long JupyterLab may take to answer once its sandbox runs (`notebooks.start_timeout`,
    /// default 2m).
    pub start_timeout: Duration,
    /// Notebook servers running at once on this server (`notebooks.max_running`, default 32).
    pub max_running: usize,
    /// Serve each notebook server on its own origin `{name}--{project}.{domain}`
    /// (`notebooks.subdomain_domain`, e.g. `nb.enclave.example`; default `None`: every
    /// notebook on Enclave's own origin).
    pub subdomain_domain: Option<String>,
}

impl Default for NotebooksConfig {
    fn default() -> Self {
        NotebooksConfig {
            index_url: "https://pypi.org/simple/".into(),
            installer: "uv".into(),
            envs_dir: None,
            build_on_start: true,
            idle_timeout: Duration::from_secs(3600),
            start_timeout: Duration::from_secs(120),
            max_running: 32,
            subdomain_domain: None,
        }
    }
}

impl NotebooksConfig {
    /// Where built environments live for a server with data directory `data_dir`.
    pub fn envs_dir(&self, data_dir: &Path) -> PathBuf {
        self.envs_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("envs"))
    }
}

/// `[audit]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Sign a checkpoint after this many records (`audit.checkpoint_every`, default 1024).
    pub checkpoint_every: u64,
    /// ... or after this much time with new records (`audit.checkpoint_interval`, default 1m).
    pub checkpoint_interval: Duration,
    /// Records older than this are pruned up to a checkpoint (`audit.retention_days`;
    /// default 0 = keep forever).
    pub retention_days: u32,
    /// Forward to this syslog collector over TCP, `host:port` (`audit.forward_syslog`).
    pub forward_syslog: Option<String>,
    /// Use TLS to the collector (`audit.forward_syslog_tls`, default true).
    pub forward_syslog_tls: bool,
    /// CA bundle trusted for the collector (`audit.forward_syslog_ca_file`).
    pub forward_syslog_ca_file: Option<PathBuf>,
    /// Name in the collector's certificate (`audit.forward_syslog_server_name`; default the
    /// host of the address).
    pub forward_syslog_server_name: Option<String>,
    /// Append every record to this JSON Lines file (`audit.forward_file`).
    pub forward_file: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1024,
            checkpoint_interval: Duration::from_secs(60),
            retention_days: 0,
            forward_syslog: None,
            forward_syslog_tls: true,
            forward_syslog_ca_file: None,
            forward_syslog_server_name: None,
            forward_file: None,
        }
    }
}

/// `[limits]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest request body in bytes, 1 KiB ..= 16 MiB (`limits.max_body_bytes`, default 65536).
    pub max_body_bytes: usize,
    /// Most simultaneous connections (`limits.max_connections`, default 10000).
    pub max_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 64 * 1024,
            max_connections: 10_000,
        }
    }
}

/// `[passwords]` settings: argon2 hashing capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordConfig {
    /// Parallel hashes; 0 means the number of CPUs (`passwords.hash_concurrency`, default 0).
    /// Use [`PasswordConfig::effective_hash_concurrency`].
    pub hash_concurrency: usize,
    /// Jobs allowed to wait; beyond that logins get 503 (`passwords.hash_queue`, default 64).
    pub hash_queue: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            hash_concurrency: 0,
            hash_queue: 64,
        }
    }
}

impl PasswordConfig {
    /// `hash_concurrency`, with 0 resolved to the number of CPUs (at least 1).
    pub fn effective_hash_concurrency(&self) -> usize {
        if self.hash_concurrency > 0 {
            self.hash_concurrency
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

impl Default for Config {
    /// The built-in defaults.
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./enclave-data"),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8443)),
            public_url: None,
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            sessions: SessionConfig::default(),
            tokens: TokenConfig::default(),
            login: LoginConfig::default(),
            setup: SetupConfig::default(),
            limits: LimitsConfig::default(),
            passwords: PasswordConfig::default(),
            access: AccessConfig::default(),
            audit: AuditConfig::default(),
            keys: KeysConfig::default(),
            jobs: JobsConfig::default(),
            sandbox: SandboxConfig::default(),
            notebooks: NotebooksConfig::default(),
        }
    }
}

/// What command-line flags give; `None`/`false` means "not given".
///
/// Errors from flags are reported as [`Source::Flag`] with the flag names
/// listed on each field, so the CLI should use those names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--config`: the TOML file to read (used by [`load_from_process`] only).
    pub config_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--public-url` (validated like the `public_url` key; empty clears it).
    pub public_url: Option<String>,
    /// `--insecure-plain-http`: when true, sets `tls.insecure_plain_http`.
    pub insecure_plain_http: bool,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--log-level` (validated like the `log.level` key).
    pub log_level: Option<String>,
}

const EXAMPLE_HEADER: &str = "\
# Enclave server configuration.
#
# Every setting is optional: the values below are the built-in defaults, so
# keep only what you change. Unknown keys are errors.
#
# Precedence, later wins: built-in defaults < this file (named by --config or
# ENCLAVE_CONFIG) < ENCLAVE_* environment variables < command-line flags.
# Each setting's environment variable is named above it.
#
# Durations are a whole number followed by s, m, h or d (\"90s\", \"30m\", \"12h\",
# \"90d\"); a bare integer means seconds. Every duration must be more than zero
# and at most 10 years (3650d).
";

const EFFECTIVE_HEADER: &str = "\
# Enclave server configuration: effective values after defaults, file,
# environment and flags. Durations: s, m, h or d; a bare integer means seconds.
";

impl Config {
    /// Loads the configuration from defaults, then the file (`(path, text)`, the
    /// path used in error messages only), then `ENCLAVE_*` pairs from `env`, then `flags`.
    ///
    /// Variables not starting with `ENCLAVE_` are ignored, as are `ENCLAVE_CONFIG`,
    /// `ENCLAVE_CONFIG_DIR`, `ENCLAVE_LOG` and `ENCLAVE_TEST_*`; any other unknown
    /// `ENCLAVE_*` variable is an error. `flags.config_file` is not read here.
    /// Returns every error found, not just the first.
    pub fn load(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, Vec<ConfigError>> {
        let mut builder = Builder::new();
        if let Some((path, text)) = file {
            builder.file(path, text);
        }
        builder.env(env);
        builder.flags(flags);
        builder.finish()
    }

    /// A documented example configuration file holding the built-in defaults.
    ///
    /// Loading it yields exactly [`Config::default`].
    pub fn example_toml() -> String {
        settings::render(&Config::default(), EXAMPLE_HEADER)
    }

    /// This configuration as a documented TOML file, e.g. to show the effective settings.
    ///
    /// Loading it yields this configuration again (paths that are not valid
    /// UTF-8 are rendered lossily).
    pub fn to_toml(&self) -> String {
        settings::render(self, EFFECTIVE_HEADER)
    }

    /// Base URL for links shown to users, without trailing slash: `public_url`
    /// if set, else `https://<listen>` (`http://` with `insecure_plain_http`).
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None if self.tls.insecure_plain_http => format!("http://{}", self.listen),
            None => format!("https://{}", self.listen),
        }
    }

    /// Directory for the self-signed certificate: `<data_dir>/tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }
}

/// Loads the configuration of this process: the file named by
/// `flags.config_file` or else `$ENCLAVE_CONFIG` (no file is read when neither
/// is set; `./enclave.toml` is not picked up implicitly), the process
/// environment, and `flags`.
///
/// Returns the configuration and the path of the file read, if any. A named
/// file that cannot be read is an error naming it; non-UTF-8 values of
/// `ENCLAVE_*` variables are errors.
pub fn load_from_process(flags: &Overrides) -> Result<(Config, Option<PathBuf>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name
            .to_str()
            .filter(|n| n.starts_with(settings::ENV_PREFIX))
        else {
            continue;
        };
        match value.into_string() {
            Ok(value) => env.push((name.to_owned(), value)),
            Err(_) => errors.push(ConfigError {
                source: Source::Env {
                    var: name.to_owned(),
                },
                key: String::new(),
                reason: "value is not valid UTF-8".to_owned(),
            }),
        }
    }
    load_with(flags, env, errors, |path| std::fs::read_to_string(path))
}

/// [`load_from_process`] with the environment and file reading supplied.
fn load_with(
    flags: &Overrides,
    env: Vec<(String, String)>,
    errors: Vec<ConfigError>,
    read: impl FnOnce(&Path) -> io::Result<String>,
) -> Result<(Config, Option<PathBuf>), Vec<ConfigError>> {
    let named = match &flags.config_file {
        Some(path) => Some((path.clone(), "--config")),
        None => env
            .iter()
            .rev()
            .find(|(k, v)| k == CONFIG_ENV_VAR && !v.is_empty())
            .map(|(_, v)| (PathBuf::from(v), CONFIG_ENV_VAR)),
    };
    let mut builder = Builder::new();
    for e in errors {
        builder.error(e.source, &e.key, e.reason);
    }
    let mut used = None;
    if let Some((path, via)) = named {
        match read(&path) {
            Ok(text) => {
                builder.file(&path, &text);
                used = Some(path);
            }
            Err(e) => {
                let source = Source::File {
                    path,
                    line: None,
                    column: None,
                };
                let reason = format!("cannot read the configuration file named by {via}: {e}");
                builder.error(source, "", reason);
            }
        }
    }
    builder.env(env);
    builder.flags(flags);
    builder.finish().map(|cfg| (cfg, used))
}

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

#[cfg(test)]
mod tests;
