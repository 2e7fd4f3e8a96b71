//! The table of settings: one row per key, driving file/env parsing, the
//! environment variable names and the generated example file, so that they
//! cannot drift apart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml_edit::{Item, Value};

use crate::duration::{format_duration, parse_duration, quote, MAX_DURATION};
use crate::{Config, LogFormat};

/// Prefix of every environment variable Enclave reads.
pub(crate) const ENV_PREFIX: &str = "ENCLAVE_";

/// A raw value to be parsed: from the TOML file, or text (environment, flags).
pub(crate) enum Input<'a> {
    /// A TOML item, typed by the file's syntax.
    Toml(&'a Item),
    /// Text from an environment variable or flag, parsed as the setting's type.
    Text(&'a str),
}

/// One configuration key.
pub(crate) struct Setting {
    /// Dotted key, `section.name` or just `name` at the top level.
    pub(crate) key: &'static str,
    /// Documentation, rendered as comments in the example file.
    pub(crate) doc: &'static str,
    /// Parses and validates the input, then stores it in the config.
    pub(crate) set: fn(&mut Config, &Input<'_>) -> Result<(), String>,
    /// Renders the current value as a TOML literal.
    pub(crate) show: fn(&Config) -> String,
}

impl Setting {
    /// The `ENCLAVE_*` variable that sets this key.
    pub(crate) fn env_var(&self) -> String {
        format!(
            "{ENV_PREFIX}{}",
            self.key.replace('.', "_").to_ascii_uppercase()
        )
    }
}

/// Tables of the file, with their documentation, in file order.
pub(crate) const SECTIONS: &[(&str, &str)] = &[
    ("tls", "TLS. With no certificate configured, Enclave serves HTTPS with a\nself-signed certificate it creates in <data_dir>/tls."),
    ("log", "Logging, to standard error."),
    ("sessions", "Browser console sessions."),
    ("tokens", "API tokens."),
    ("login", "Brute-force protection for password logins."),
    ("setup", "First-run setup (creating the first administrator)."),
    ("limits", "Request and connection limits."),
    ("passwords", "Password hashing (argon2)."),
    ("access", "Time-bound support and admin access to projects."),
    ("keys", "Encryption keys. Secrets are sealed with per-project keys, which the master\nkey wraps."),
    ("audit", "The tamper-evident audit trail: signed checkpoints, retention, forwarding\nto a syslog collector (RFC 5424) or a JSON Lines file."),
    ("jobs", "Batch jobs: how many run at once and what they may ask for."),
    ("sandbox", "Workload sandboxes: each project's private network is cut from this pool."),
    ("notebooks", "Notebook servers (JupyterLab in sandboxes) and the environments they run."),
];

const DURATION_EXPECTED: &str = "expected a duration like \"30m\" or \"12h\"";

/// Every setting; top-level keys first, then each section's keys together, in [`SECTIONS`] order.
pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        doc: "Directory for Enclave's database, TLS material and other state; created\non first start. A relative path is relative to the working directory.",
        set: |c, v| {
            c.data_dir = path(v)?;
            Ok(())
        },
        show: |c| toml_string(&c.data_dir.to_string_lossy()),
    },
    Setting {
        key: "listen",
        doc: "IP address and port the server listens on (not a host name).\nUse \"0.0.0.0:8443\" or \"[::]:8443\" to accept connections from other machines.",
        set: |c, v| {
            c.listen = socket_addr(v)?;
            Ok(())
        },
        show: |c| toml_string(&c.listen.to_string()),
    },
    Setting {
        key: "public_url",
        doc: "Base URL users reach Enclave at (e.g. through a reverse proxy), used in the\nprinted setup link. Empty means https://<listen>. Must start with https:// or\nhttp:// and have no query or fragment; a trailing slash is dropped.",
        set: |c, v| {
            c.public_url = public_url(string(v, "a URL")?)?;
            Ok(())
        },
        show: |c| toml_string(c.public_url.as_deref().unwrap_or("")),
    },
    Setting {
        key: "tls.cert_file",
        doc: "PEM certificate chain. Set both cert_file and key_file, or neither\n(empty means the self-signed certificate).",
        set: |c, v| {
            c.tls.cert_file = optional_path(v)?;
            Ok(())
        },
        show: |c| show_optional_path(c.tls.cert_file.as_ref()),
    },
    Setting {
        key: "tls.key_file",
        doc: "PEM private key belonging to cert_file.",
        set: |c, v| {
            c.tls.key_file = optional_path(v)?;
            Ok(())
        },
        show: |c| show_optional_path(c.tls.key_file.as_ref()),
    },
    Setting {
        key: "tls.insecure_plain_http",
        doc: "Serve plain HTTP instead of HTTPS, e.g. behind a TLS-terminating proxy on\nthe same host. Only allowed when listen is a loopback address (127.0.0.0/8\nor ::1), and not together with cert_file/key_file.",
        set: |c, v| {
            c.tls.insecure_plain_http = boolean(v)?;
            Ok(())
        },
        show: |c| c.tls.insecure_plain_http.to_string(),
    },
    Setting {
        key: "log.format",
        doc: "Log line format: \"text\" or \"json\".",
        set: |c, v| {
            c.log.format = log_format(v)?;
            Ok(())
        },
        show: |c| toml_string(c.log.format.as_str()),
    },
    Setting {
        key: "log.level",
        doc: "Log filter in tracing's EnvFilter syntax, e.g. \"info\" or\n\"info,enclave_http=debug\"; non-empty, at most 256 characters.",
        set: |c, v| {
            c.log.level = log_level(string(v, "a filter directive like \"info\"")?)?;
            Ok(())
        },
        show: |c| toml_string(&c.log.level),
    },
    Setting {
        key: "sessions.idle_timeout",
        doc: "A console session ends after this long without requests.",
        set: |c, v| {
            c.sessions.idle_timeout = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.sessions.idle_timeout),
    },
    Setting {
        key: "sessions.absolute_timeout",
        doc: "A console session ends this long after login, however active it is.\nMust be at least idle_timeout.",
        set: |c, v| {
            c.sessions.absolute_timeout = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.sessions.absolute_timeout),
    },
    Setting {
        key: "tokens.max_lifetime",
        doc: "Longest lifetime an API token can be created with.",
        set: |c, v| {
            c.tokens.max_lifetime = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.tokens.max_lifetime),
    },
    Setting {
        key: "tokens.default_lifetime",
        doc: "Lifetime of API tokens created without an explicit one.\nMust not exceed max_lifetime.",
        set: |c, v| {
            c.tokens.default_lifetime = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.tokens.default_lifetime),
    },
    Setting {
        key: "login.max_failures_per_account",
        doc: "Failed password logins for one account within failure_window before the\naccount is locked for `lockout` (1 to 1000000).",
        set: |c, v| {
            c.login.max_failures_per_account = count(v, 1, 1_000_000)?;
            Ok(())
        },
        show: |c| c.login.max_failures_per_account.to_string(),
    },
    Setting {
        key: "login.max_failures_per_address",
        doc: "Failed password logins from one client address within failure_window\nbefore that address is refused for `lockout` (1 to 1000000).",
        set: |c, v| {
            c.login.max_failures_per_address = count(v, 1, 1_000_000)?;
            Ok(())
        },
        show: |c| c.login.max_failures_per_address.to_string(),
    },
    Setting {
        key: "login.failure_window",
        doc: "Time window over which failed logins are counted.",
        set: |c, v| {
            c.login.failure_window = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.login.failure_window),
    },
    Setting {
        key: "login.lockout",
        doc: "How long a locked account or address is refused; administrators can\nunlock an account earlier.",
        set: |c, v| {
            c.login.lockout = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.login.lockout),
    },
    Setting {
        key: "login.require_mfa",
        doc: "Require a second factor (TOTP) of local accounts: an account without one\ncan sign in, but every request except enrolling in MFA, reading its own\naccount and logging out is refused until it enrols and signs in again.",
        set: |c, v| {
            c.login.require_mfa = boolean(v)?;
            Ok(())
        },
        show: |c| c.login.require_mfa.to_string(),
    },
    Setting {
        key: "setup.token_ttl",
        doc: "How long the one-time setup link printed on first start stays valid.",
        set: |c, v| {
            c.setup.token_ttl = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.setup.token_ttl),
    },
    Setting {
        key: "limits.max_body_bytes",
        doc: "Largest accepted request body in bytes (1024 to 16777216);\nlarger requests get 413.",
        set: |c, v| {
            c.limits.max_body_bytes = count(v, 1024, 16 * 1024 * 1024)?;
            Ok(())
        },
        show: |c| c.limits.max_body_bytes.to_string(),
    },
    Setting {
        key: "limits.max_connections",
        doc: "Most simultaneous client connections (1 to 1000000).",
        set: |c, v| {
            c.limits.max_connections = count(v, 1, 1_000_000)?;
            Ok(())
        },
        show: |c| c.limits.max_connections.to_string(),
    },
    Setting {
        key: "passwords.hash_concurrency",
        doc: "Most argon2 password hashes computed in parallel; 0 means the number of\nCPUs (0 to 1024).",
        set: |c, v| {
            c.passwords.hash_concurrency = count(v, 0, 1024)?;
            Ok(())
        },
        show: |c| c.passwords.hash_concurrency.to_string(),
    },
    Setting {
        key: "passwords.hash_queue",
        doc: "Hash jobs that may wait for a free slot; logins beyond that are answered\n503 (busy) instead of queueing (1 to 1000000).",
        set: |c, v| {
            c.passwords.hash_queue = count(v, 1, 1_000_000)?;
            Ok(())
        },
        show: |c| c.passwords.hash_queue.to_string(),
    },
    Setting {
        key: "access.max_grant_duration",
        doc: "Longest time-bound support or admin access grant to a project\n(1m to 30d). Grants stop working at their expiry, even in open sessions.",
        set: |c, v| {
            let d = duration(v)?;
            if d < Duration::from_secs(60) || d > Duration::from_secs(30 * 86_400) {
                return Err("between 1m and 30d".into());
            }
            c.access.max_grant_duration = d;
            Ok(())
        },
        show: |c| show_duration(c.access.max_grant_duration),
    },
    Setting {
        key: "access.deprovision_within",
        doc: "Longest time between deactivating an account (by an admin, SCIM or the\nLDAP sync) and the end of its running jobs and notebook servers (10s to 1h).\nSessions and API tokens end at once.",
        set: |c, v| {
            let d = duration(v)?;
            if d < Duration::from_secs(10) || d > Duration::from_secs(3600) {
                return Err("between 10s and 1h".into());
            }
            c.access.deprovision_within = d;
            Ok(())
        },
        show: |c| show_duration(c.access.deprovision_within),
    },
    Setting {
        key: "keys.master",
        doc: "Where the master key comes from: \"file\" (<data_dir>/master.key, created 0600\non first start; keep a copy apart from backups) or \"passphrase\" (<data_dir>/master.sealed,\ncreated by `enclave admin init-sealed`; the server starts sealed until `enclave unseal`).",
        set: |c, v| {
            c.keys.master = match string(v, "\"file\" or \"passphrase\"")? {
                "file" => crate::MasterKeySource::File,
                "passphrase" => crate::MasterKeySource::Passphrase,
                other => {
                    return Err(format!(
                        "expected \"file\" or \"passphrase\", got {}",
                        quote(other)
                    ))
                }
            };
            Ok(())
        },
        show: |c| format!("\"{}\"", c.keys.master.as_str()),
    },
    Setting {
        key: "audit.checkpoint_every",
        doc: "Sign a checkpoint of the audit chain after this many records (1 to 1000000).",
        set: |c, v| {
            c.audit.checkpoint_every = count(v, 1, 1_000_000)?;
            Ok(())
        },
        show: |c| c.audit.checkpoint_every.to_string(),
    },
    Setting {
        key: "audit.checkpoint_interval",
        doc: "... or after this much time when there are new records.",
        set: |c, v| {
            c.audit.checkpoint_interval = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.audit.checkpoint_interval),
    },
    Setting {
        key: "audit.retention_days",
        doc: "Prune records older than this many days, up to a signed checkpoint that\nstays the trust anchor (0 keeps everything; 0 to 36500).",
        set: |c, v| {
            c.audit.retention_days = count(v, 0, 36_500)?;
            Ok(())
        },
        show: |c| c.audit.retention_days.to_string(),
    },
    Setting {
        key: "audit.forward_syslog",
        doc: "Forward every record to this syslog collector, host:port, over TCP\n(RFC 5424, octet counting); empty means off.",
        set: |c, v| {
            let s = string(v, "an address like \"siem.example.org:6514\"")?;
            c.audit.forward_syslog = if s.is_empty() {
                None
            } else if s.len() > 255 || !s.contains(':') {
                return Err("expected host:port".into());
            } else {
                Some(s.to_owned())
            };
            Ok(())
        },
        show: |c| quote(c.audit.forward_syslog.as_deref().unwrap_or("")),
    },
    Setting {
        key: "audit.forward_syslog_tls",
        doc: "Use TLS to the syslog collector (needs forward_syslog_ca_file).",
        set: |c, v| {
            c.audit.forward_syslog_tls = boolean(v)?;
            Ok(())
        },
        show: |c| c.audit.forward_syslog_tls.to_string(),
    },
    Setting {
        key: "audit.forward_syslog_ca_file",
        doc: "PEM CA bundle trusted for the syslog collector's certificate.",
        set: |c, v| {
            c.audit.forward_syslog_ca_file = optional_path(v)?;
            Ok(())
        },
        show: |c| show_optional_path(c.audit.forward_syslog_ca_file.as_ref()),
    },
    Setting {
        key: "audit.forward_syslog_server_name",
        doc: "Name expected in the collector's certificate (empty: the address's host).",
        set: |c, v| {
            let s = string(v, "a host name")?;
            c.audit.forward_syslog_server_name = (!s.is_empty()).then(|| s.to_owned());
            Ok(())
        },
        show: |c| quote(c.audit.forward_syslog_server_name.as_deref().unwrap_or("")),
    },
    Setting {
        key: "audit.forward_file",
        doc: "Append every record to this JSON Lines file (mode 0600); empty means off.",
        set: |c, v| {
            c.audit.forward_file = optional_path(v)?;
            Ok(())
        },
        show: |c| show_optional_path(c.audit.forward_file.as_ref()),
    },
    Setting {
        key: "jobs.max_running",
        doc: "Jobs running at once on this server (1 to 256); later ones wait queued.",
        set: |c, v| {
            c.jobs.max_running = count(v, 1, 256)?;
            Ok(())
        },
        show: |c| c.jobs.max_running.to_string(),
    },
    Setting {
        key: "jobs.default_cpus",
        doc: "CPUs a job gets when it asks for none (e.g. 1 or 0.5).",
        set: |c, v| {
            c.jobs.caps.default.cpu_millis = cpus(v)?;
            Ok(())
        },
        show: |c| quote(&enclave_core::jobs::cpus(c.jobs.caps.default.cpu_millis)),
    },
    Setting {
        key: "jobs.max_cpus",
        doc: "The most CPUs a job may ask for.",
        set: |c, v| {
            c.jobs.caps.max.cpu_millis = cpus(v)?;
            Ok(())
        },
        show: |c| quote(&enclave_core::jobs::cpus(c.jobs.caps.max.cpu_millis)),
    },
    Setting {
        key: "jobs.default_memory",
        doc: "Memory a job gets when it asks for none (e.g. \"1G\", \"512M\").",
        set: |c, v| {
            c.jobs.caps.default.memory_bytes = size(v, 16 << 20)?;
            Ok(())
        },
        show: |c| quote(&enclave_core::jobs::format_size(c.jobs.caps.default.memory_bytes)),
    },
    Setting {
        key: "jobs.max_memory",
        doc: "The most memory a job may ask for.",
        set: |c, v| {
            c.jobs.caps.max.memory_bytes = size(v, 16 << 20)?;
            Ok(())
        },
        show: |c| quote(&enclave_core::jobs::format_size(c.jobs.caps.max.memory_bytes)),
    },
    Setting {
        key: "jobs.default_timeout",
        doc: "Time limit of a job that names none; it is killed after it.",
        set: |c, v| {
            c.jobs.caps.default.timeout_secs = duration(v)?.as_secs();
            Ok(())
        },
        show: |c| show_duration(Duration::from_secs(c.jobs.caps.default.timeout_secs)),
    },
    Setting {
        key: "jobs.max_timeout",
        doc: "The longest time limit a job may ask for.",
        set: |c, v| {
            c.jobs.caps.max.timeout_secs = duration(v)?.as_secs();
            Ok(())
        },
        show: |c| show_duration(Duration::from_secs(c.jobs.caps.max.timeout_secs)),
    },
    Setting {
        key: "jobs.log_bytes",
        doc: "Most output (stdout and stderr) kept per job; the rest is dropped (up to \"1G\").",
        set: |c, v| {
            let n = size(v, 0)?;
            if n > 1 << 30 {
                return Err("must be at most 1G".into());
            }
            c.jobs.log_bytes = n;
            Ok(())
        },
        show: |c| quote(&enclave_core::jobs::format_size(c.jobs.log_bytes)),
    },
    Setting {
        key: "sandbox.network",
        doc: "IPv4 pool of the project networks, as a CIDR block (e.g. \"10.213.0.0/16\");\nit must not overlap a network the host uses.",
        set: |c, v| {
            c.sandbox.network = cidr(string(v, "a CIDR block like \"10.213.0.0/16\"")?)?;
            Ok(())
        },
        show: |c| quote(&format!("{}/{}", c.sandbox.network.0, c.sandbox.network.1)),
    },
    Setting {
        key: "sandbox.subnet_prefix",
        doc: "Prefix length of each project's network (16 to 28), cut from the pool.",
        set: |c, v| {
            c.sandbox.subnet_prefix = count(v, 16, 28)?;
            Ok(())
        },
        show: |c| c.sandbox.subnet_prefix.to_string(),
    },
    Setting {
        key: "notebooks.index_url",
        doc: "Package index (PEP 503 simple API) environments are built from; point it at\nyour internal mirror. Credentials do not belong here.",
        set: |c, v| {
            c.notebooks.index_url = index_url(string(v, "an http(s) URL")?)?;
            Ok(())
        },
        show: |c| quote(&c.notebooks.index_url),
    },
    Setting {
        key: "notebooks.installer",
        doc: "The installer that builds environments: \"uv\" or \"pip\".",
        set: |c, v| {
            let s = string(v, "\"uv\" or \"pip\"")?;
            if s != "uv" && s != "pip" {
                return Err(format!("expected \"uv\" or \"pip\", got {}", quote(s)));
            }
            c.notebooks.installer = s.to_owned();
            Ok(())
        },
        show: |c| quote(&c.notebooks.installer),
    },
    Setting {
        key: "notebooks.envs_dir",
        doc: "Directory of the built environments (default: <data_dir>/envs). Several\nservers may share one; each environment is built once.",
        set: |c, v| {
            c.notebooks.envs_dir = optional_path(v)?;
            Ok(())
        },
        show: |c| show_optional_path(c.notebooks.envs_dir.as_ref()),
    },
    Setting {
        key: "notebooks.build_on_start",
        doc: "Build every environment template that is not built yet when the server starts.",
        set: |c, v| {
            c.notebooks.build_on_start = boolean(v)?;
            Ok(())
        },
        show: |c| c.notebooks.build_on_start.to_string(),
    },
    Setting {
        key: "notebooks.idle_timeout",
        doc: "Stop a notebook server after this long without activity (its files stay);\n\"off\" never does.",
        set: |c, v| {
            c.notebooks.idle_timeout = match v {
                Input::Text("off") => Duration::ZERO,
                Input::Toml(Item::Value(Value::String(s))) if s.value() == "off" => Duration::ZERO,
                _ => duration(v)?,
            };
            Ok(())
        },
        show: |c| {
            if c.notebooks.idle_timeout.is_zero() {
                quote("off")
            } else {
                show_duration(c.notebooks.idle_timeout)
            }
        },
    },
    Setting {
        key: "notebooks.start_timeout",
        doc: "How long JupyterLab may take to answer after its sandbox starts.",
        set: |c, v| {
            c.notebooks.start_timeout = duration(v)?;
            Ok(())
        },
        show: |c| show_duration(c.notebooks.start_timeout),
    },
    Setting {
        key: "notebooks.max_running",
        doc: "Notebook servers running at once on this server (1 to 4096).",
        set: |c, v| {
            c.notebooks.max_running = count(v, 1, 4096)?;
            Ok(())
        },
        show: |c| c.notebooks.max_running.to_string(),
    },
    Setting {
        key: "notebooks.subdomain_domain",
        doc: "Serve each notebook server on its own origin, {name}--{project}.<this domain>\n(e.g. \"nb.enclave.example\"), isolating notebooks from Enclave and from each\nother. DNS must resolve *.<domain> to Enclave and the certificate must cover\n*.<domain> (the self-signed one does). Empty: notebooks are served on\nEnclave's own origin.",
        set: |c, v| {
            let s = string(v, "a DNS name")?;
            c.notebooks.subdomain_domain = if s.is_empty() {
                None
            } else {
                enclave_core::notebook_hosts::check_domain(s)?;
                Some(s.to_owned())
            };
            Ok(())
        },
        show: |c| toml_string(c.notebooks.subdomain_domain.as_deref().unwrap_or("")),
    },
];

/// An index URL: http or https, no credentials, no spaces.
fn index_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("expected an http(s) URL, got {}", quote(s)))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(format!(
            "expected an http(s) URL with a host and no credentials, got {}",
            quote(s)
        ));
    }
    if s.len() > 2048 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be at most 2048 characters without spaces".to_owned());
    }
    Ok(s.to_owned())
}

/// The setting with this dotted key.
pub(crate) fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// How a value reads in an error message: `"soon"`, `5`, `true`, `a table`, ...
pub(crate) fn describe(v: &Input<'_>) -> String {
    match v {
        Input::Text(s) => quote(s),
        Input::Toml(item) => describe_item(item),
    }
}

/// How a TOML item reads in an error message.
pub(crate) fn describe_item(item: &Item) -> String {
    match item {
        Item::None => "nothing".to_owned(),
        Item::Value(Value::String(s)) => quote(s.value()),
        Item::Value(Value::Integer(i)) => i.value().to_string(),
        Item::Value(Value::Float(f)) => format!("{:?}", f.value()),
        Item::Value(Value::Boolean(b)) => b.value().to_string(),
        Item::Value(Value::Datetime(d)) => format!("a date-time ({})", d.value()),
        Item::Value(Value::Array(_)) => "an array".to_owned(),
        Item::Value(Value::InlineTable(_)) | Item::Table(_) => "a table".to_owned(),
        Item::ArrayOfTables(_) => "an array of tables".to_owned(),
    }
}

fn string<'a>(v: &Input<'a>, expected: &str) -> Result<&'a str, String> {
    match v {
        Input::Text(s) => Ok(s),
        Input::Toml(Item::Value(Value::String(s))) => Ok(s.value()),
        Input::Toml(_) => Err(format!("expected {expected}, got {}", describe(v))),
    }
}

fn integer(v: &Input<'_>) -> Result<i64, String> {
    let err = || format!("expected a whole number, got {}", describe(v));
    match v {
        Input::Text(s) => s.parse().map_err(|_| err()),
        Input::Toml(Item::Value(Value::Integer(i))) => Ok(*i.value()),
        Input::Toml(_) => Err(err()),
    }
}

fn boolean(v: &Input<'_>) -> Result<bool, String> {
    match v {
        Input::Text("true") => Ok(true),
        Input::Text("false") => Ok(false),
        Input::Toml(Item::Value(Value::Boolean(b))) => Ok(*b.value()),
        _ => Err(format!("expected true or false, got {}", describe(v))),
    }
}

fn count<T: TryFrom<i64>>(v: &Input<'_>, min: i64, max: i64) -> Result<T, String> {
    let n = integer(v)?;
    if n < min {
        return Err(format!("must be at least {min}, got {n}"));
    }
    if n > max {
        return Err(format!("must be at most {max}, got {n}"));
    }
    T::try_from(n).map_err(|_| format!("{n} is out of range on this platform"))
}

fn duration(v: &Input<'_>) -> Result<Duration, String> {
    let d = match v {
        Input::Text(s) => parse_duration(s)?,
        Input::Toml(Item::Value(Value::String(s))) => parse_duration(s.value())?,
        Input::Toml(Item::Value(Value::Integer(i))) => {
            let secs = u64::try_from(*i.value())
                .map_err(|_| format!("must be greater than 0, got {}", i.value()))?;
            Duration::from_secs(secs)
        }
        Input::Toml(_) => return Err(format!("{DURATION_EXPECTED}, got {}", describe(v))),
    };
    if d.is_zero() {
        return Err(format!("must be greater than 0, got {}", describe(v)));
    }
    if d > MAX_DURATION {
        return Err(format!(
            "must be at most 10 years ({}), got {}",
            format_duration(MAX_DURATION),
            describe(v)
        ));
    }
    Ok(d)
}

fn cpus(v: &Input<'_>) -> Result<u64, String> {
    let text = match v {
        Input::Toml(Item::Value(Value::Integer(i))) => i.value().to_string(),
        Input::Toml(Item::Value(Value::Float(f))) => f.value().to_string(),
        _ => string(v, "a number of CPUs like 2 or 0.5")?.to_owned(),
    };
    let m = enclave_core::jobs::parse_cpus(&text)?;
    if !(enclave_core::jobs::MIN_CPU_MILLIS..=256_000).contains(&m) {
        return Err(format!("must be between 0.01 and 256, got {}", describe(v)));
    }
    Ok(m)
}

fn size(v: &Input<'_>, min: u64) -> Result<u64, String> {
    let n = match v {
        Input::Toml(Item::Value(Value::Integer(i))) => u64::try_from(*i.value())
            .map_err(|_| format!("must not be negative, got {}", i.value()))?,
        _ => enclave_core::jobs::parse_size(string(v, "a size like \"512M\" or \"2G\"")?)?,
    };
    if n < min {
        return Err(format!(
            "must be at least {}, got {}",
            enclave_core::jobs::format_size(min),
            describe(v)
        ));
    }
    if n > 1 << 40 {
        return Err(format!("must be at most 1T, got {}", describe(v)));
    }
    Ok(n)
}

/// Parses `a.b.c.d/n` (a private IPv4 block, the address aligned to its prefix).
fn cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let bad = || {
        format!(
            "expected a CIDR block like \"10.213.0.0/16\", got {}",
            quote(s)
        )
    };
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if !(8..=24).contains(&len) {
        return Err(format!(
            "the prefix length must be between 8 and 24, got {len}"
        ));
    }
    let mask = u32::MAX << (32 - len);
    if u32::from(addr) & !mask != 0 {
        return Err(format!(
            "{} has host bits set; use {}/{len}",
            quote(s),
            std::net::Ipv4Addr::from(u32::from(addr) & mask)
        ));
    }
    if !addr.is_private() {
        return Err(format!(
            "{} is not a private block (10/8, 172.16/12 or 192.168/16)",
            quote(s)
        ));
    }
    Ok((addr, len))
}

fn path(v: &Input<'_>) -> Result<PathBuf, String> {
    let s = string(v, "a path")?;
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.contains('\0') {
        return Err("must not contain NUL characters".to_owned());
    }
    Ok(PathBuf::from(s))
}

fn optional_path(v: &Input<'_>) -> Result<Option<PathBuf>, String> {
    if string(v, "a path")?.is_empty() {
        Ok(None)
    } else {
        path(v).map(Some)
    }
}

fn socket_addr(v: &Input<'_>) -> Result<SocketAddr, String> {
    let s = string(v, "an address like \"127.0.0.1:8443\"")?;
    s.parse().map_err(|_| {
        format!(
            "expected an IP address and port like \"127.0.0.1:8443\" or \"[::1]:8443\", got {}",
            quote(s)
        )
    })
}

fn log_format(v: &Input<'_>) -> Result<LogFormat, String> {
    string(v, "\"text\" or \"json\"")?.parse()
}

/// Validates a log filter directive: non-empty, at most 256 characters, no control characters.
pub(crate) fn log_level(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty (try \"info\")".to_owned());
    }
    let len = s.chars().count();
    if len > 256 {
        return Err(format!("must be at most 256 characters, got {len}"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(s.to_owned())
}

/// Validates a public base URL; empty means none. Drops trailing slashes.
pub(crate) fn public_url(s: &str) -> Result<Option<String>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 2048 {
        return Err("must be at most 2048 bytes long".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "must not contain spaces or control characters, got {}",
            quote(s)
        ));
    }
    let lower = s.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return Err(format!(
            "expected a URL starting with https:// or http://, got {}",
            quote(s)
        ));
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("URL has no host, got {}", quote(s)));
    }
    if host.contains('@') {
        return Err("must not contain a user name or password".to_owned());
    }
    if s.contains('?') || s.contains('#') {
        return Err(format!(
            "must not contain a query (?) or fragment (#), got {}",
            quote(s)
        ));
    }
    Ok(Some(s.trim_end_matches('/').to_owned()))
}

fn show_duration(d: Duration) -> String {
    toml_string(&format_duration(d))
}

fn show_optional_path(p: Option<&PathBuf>) -> String {
    toml_string(&p.map(|p| p.to_string_lossy()).unwrap_or_default())
}

/// A TOML basic string literal for `s`, escaped.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders `cfg` as a commented TOML file, each key preceded by its
/// documentation and environment variable.
pub(crate) fn render(cfg: &Config, header: &str) -> String {
    let mut out = String::from(header);
    let mut current = "";
    for setting in SETTINGS {
        let (section, name) = setting.key.split_once('.').unwrap_or(("", setting.key));
        if section != current {
            current = section;
            out.push('\n');
            if let Some((_, doc)) = SECTIONS.iter().find(|(s, _)| *s == section) {
                push_comment(&mut out, doc);
            }
            out.push_str(&format!("[{section}]\n"));
        }
        out.push('\n');
        push_comment(&mut out, setting.doc);
        out.push_str(&format!("# Environment: {}\n", setting.env_var()));
        out.push_str(&format!("{name} = {}\n", (setting.show)(cfg)));
    }
    out
}

fn push_comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}
