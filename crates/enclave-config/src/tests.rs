#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::net::IpAddr;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_file(text: &str) -> Result<Config, Vec<ConfigError>> {
    Config::load(
        Some((Path::new("enclave.toml"), text)),
        Vec::new(),
        &Overrides::default(),
    )
}

fn load_env(pairs: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
    Config::load(None, env(pairs), &Overrides::default())
}

fn line(e: &ConfigError) -> Option<usize> {
    match e.source {
        Source::File { line, .. } => line,
        _ => None,
    }
}

fn one_error(r: Result<Config, Vec<ConfigError>>) -> ConfigError {
    let errors = r.unwrap_err();
    assert_eq!(errors.len(), 1, "{}", format_errors(&errors));
    errors.into_iter().next().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn defaults() {
    let cfg = Config::load(None, Vec::new(), &Overrides::default()).unwrap();
    assert_eq!(cfg, Config::default());
    assert_eq!(cfg.data_dir, PathBuf::from("./enclave-data"));
    assert_eq!(cfg.listen, addr("127.0.0.1:8443"));
    assert_eq!(cfg.public_url, None);
    assert_eq!(cfg.tls, TlsConfig::default());
    assert!(!cfg.tls.insecure_plain_http);
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.log.level, "info");
    assert_eq!(cfg.sessions.idle_timeout, Duration::from_secs(30 * 60));
    assert_eq!(
        cfg.sessions.absolute_timeout,
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(cfg.tokens.max_lifetime, Duration::from_secs(90 * 86400));
    assert_eq!(cfg.tokens.default_lifetime, Duration::from_secs(30 * 86400));
    assert_eq!(cfg.login.max_failures_per_account, 5);
    assert_eq!(cfg.login.max_failures_per_address, 20);
    assert_eq!(cfg.login.failure_window, Duration::from_secs(15 * 60));
    assert_eq!(cfg.login.lockout, Duration::from_secs(15 * 60));
    assert!(!cfg.login.require_mfa);
    assert_eq!(cfg.setup.token_ttl, Duration::from_secs(3600));
    assert_eq!(cfg.limits.max_body_bytes, 65536);
    assert_eq!(cfg.limits.max_connections, 10000);
    assert_eq!(cfg.passwords.hash_concurrency, 0);
    assert_eq!(cfg.passwords.hash_queue, 64);
    assert!(cfg.passwords.effective_hash_concurrency() >= 1);
    assert_eq!(cfg.public_base_url(), "https://127.0.0.1:8443");
    assert_eq!(cfg.tls_dir(), PathBuf::from("./enclave-data/tls"));
}

#[test]
fn precedence_default_file_env_flag() {
    let file = r#"
data_dir = "/from/file"
listen = "127.0.0.2:1000"
[log]
level = "debug"
format = "json"
[sessions]
idle_timeout = "10m"
"#;
    let vars = env(&[
        ("ENCLAVE_DATA_DIR", "/from/env"),
        ("ENCLAVE_LISTEN", "127.0.0.3:2000"),
        ("ENCLAVE_SESSIONS_IDLE_TIMEOUT", "20m"),
    ]);
    let flags = Overrides {
        listen: Some(addr("127.0.0.4:3000")),
        ..Overrides::default()
    };
    let cfg = Config::load(Some((Path::new("enclave.toml"), file)), vars, &flags).unwrap();
    assert_eq!(
        cfg.listen,
        addr("127.0.0.4:3000"),
        "flag beats env and file"
    );
    assert_eq!(cfg.data_dir, PathBuf::from("/from/env"), "env beats file");
    assert_eq!(cfg.sessions.idle_timeout, Duration::from_secs(20 * 60));
    assert_eq!(cfg.log.level, "debug", "file beats default");
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(
        cfg.sessions.absolute_timeout,
        Duration::from_secs(12 * 3600),
        "default kept"
    );

    // Every flag overrides.
    let flags = Overrides {
        config_file: None,
        data_dir: Some(PathBuf::from("/from/flag")),
        listen: None,
        public_url: Some("https://enclave.example.org/".to_owned()),
        insecure_plain_http: true,
        log_format: Some(LogFormat::Text),
        log_level: Some("warn".to_owned()),
    };
    let cfg = Config::load(
        Some((Path::new("enclave.toml"), file)),
        env(&[("ENCLAVE_LOG_LEVEL", "trace")]),
        &flags,
    )
    .unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/from/flag"));
    assert_eq!(cfg.listen, addr("127.0.0.2:1000"));
    assert_eq!(
        cfg.public_url.as_deref(),
        Some("https://enclave.example.org")
    );
    assert!(cfg.tls.insecure_plain_http);
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.log.level, "warn");
}

#[test]
fn unknown_key_in_file_reports_line() {
    let text =
        "listen = \"127.0.0.1:1\"\n\n[sessions]\nidle_timeout = \"5m\"\nidel_timeout = \"5m\"\n";
    let e = one_error(load_file(text));
    assert_eq!(e.key, "sessions.idel_timeout");
    assert_eq!(
        e.source,
        Source::File {
            path: PathBuf::from("enclave.toml"),
            line: Some(5),
            column: Some(1)
        }
    );
    assert_eq!(
        e.to_string(),
        "enclave.toml:5: key \"sessions.idel_timeout\": unknown key; did you mean \"sessions.idle_timeout\"?"
    );
}

#[test]
fn unknown_sections_and_misplaced_keys() {
    let e = one_error(load_file("[sesions]\nidle_timeout = \"5m\"\n"));
    assert_eq!(e.key, "sesions");
    assert_eq!(line(&e), Some(1));
    assert!(e.reason.contains("did you mean \"sessions\""), "{e}");

    // A top-level key written after a section header lands in that section.
    let e = one_error(load_file(
        "[tls]\ncert_file = \"\"\nlisten = \"127.0.0.1:1\"\n",
    ));
    assert_eq!(e.key, "tls.listen");
    assert_eq!(line(&e), Some(3));
    assert!(e.reason.contains("top-level keys must come before"), "{e}");

    // Nested tables inside a section are unknown keys too.
    let e = one_error(load_file("[sessions.extra]\nx = 1\n"));
    assert_eq!(e.key, "sessions.extra");
    assert_eq!(line(&e), Some(1));

    let e = one_error(load_file("wat = 1\n"));
    assert_eq!(e.reason, "unknown key");
}

#[test]
fn unknown_env_var_is_error_but_allow_list_is_not() {
    let e = one_error(load_env(&[("ENCLAVE_LISTN", "127.0.0.1:1")]));
    assert_eq!(
        e.source,
        Source::Env {
            var: "ENCLAVE_LISTN".to_owned()
        }
    );
    assert_eq!(e.key, "");
    assert_eq!(
        e.to_string(),
        "environment variable ENCLAVE_LISTN: unknown Enclave environment variable; did you mean ENCLAVE_LISTEN?"
    );

    let cfg = load_env(&[
        ("ENCLAVE_CONFIG", "/nonexistent.toml"),
        ("ENCLAVE_CONFIG_DIR", "/x"),
        ("ENCLAVE_LOG", "whatever"),
        ("ENCLAVE_TEST_ANYTHING", "1"),
        ("PATH", "/bin"),
        ("enclave_listen", "nonsense"),
    ])
    .unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn every_setting_has_an_env_var() {
    let cfg = load_env(&[
        ("ENCLAVE_DATA_DIR", "/d"),
        ("ENCLAVE_LISTEN", "[::1]:9000"),
        ("ENCLAVE_PUBLIC_URL", "https://e.example"),
        ("ENCLAVE_TLS_CERT_FILE", "/c.pem"),
        ("ENCLAVE_TLS_KEY_FILE", "/k.pem"),
        ("ENCLAVE_TLS_INSECURE_PLAIN_HTTP", "false"),
        ("ENCLAVE_LOG_FORMAT", "json"),
        ("ENCLAVE_LOG_LEVEL", "info,enclave_http=debug"),
        ("ENCLAVE_SESSIONS_IDLE_TIMEOUT", "90s"),
        ("ENCLAVE_SESSIONS_ABSOLUTE_TIMEOUT", "3600"),
        ("ENCLAVE_TOKENS_MAX_LIFETIME", "365d"),
        ("ENCLAVE_TOKENS_DEFAULT_LIFETIME", "7d"),
        ("ENCLAVE_LOGIN_MAX_FAILURES_PER_ACCOUNT", "3"),
        ("ENCLAVE_LOGIN_MAX_FAILURES_PER_ADDRESS", "30"),
        ("ENCLAVE_LOGIN_FAILURE_WINDOW", "1h"),
        ("ENCLAVE_LOGIN_LOCKOUT", "2h"),
        ("ENCLAVE_SETUP_TOKEN_TTL", "10m"),
        ("ENCLAVE_LIMITS_MAX_BODY_BYTES", "1024"),
        ("ENCLAVE_LIMITS_MAX_CONNECTIONS", "5"),
        ("ENCLAVE_PASSWORDS_HASH_CONCURRENCY", "2"),
        ("ENCLAVE_PASSWORDS_HASH_QUEUE", "8"),
    ])
    .unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/d"));
    assert_eq!(cfg.listen, addr("[::1]:9000"));
    assert_eq!(cfg.public_url.as_deref(), Some("https://e.example"));
    assert_eq!(cfg.tls.cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(cfg.tls.key_file, Some(PathBuf::from("/k.pem")));
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.log.level, "info,enclave_http=debug");
    assert_eq!(cfg.sessions.idle_timeout, Duration::from_secs(90));
    assert_eq!(cfg.sessions.absolute_timeout, Duration::from_secs(3600));
    assert_eq!(cfg.tokens.max_lifetime, Duration::from_secs(365 * 86400));
    assert_eq!(cfg.tokens.default_lifetime, Duration::from_secs(7 * 86400));
    assert_eq!(cfg.login.max_failures_per_account, 3);
    assert_eq!(cfg.login.max_failures_per_address, 30);
    assert_eq!(cfg.login.failure_window, Duration::from_secs(3600));
    assert_eq!(cfg.login.lockout, Duration::from_secs(7200));
    assert_eq!(cfg.setup.token_ttl, Duration::from_secs(600));
    assert_eq!(cfg.limits.max_body_bytes, 1024);
    assert_eq!(cfg.limits.max_connections, 5);
    assert_eq!(cfg.passwords.hash_concurrency, 2);
    assert_eq!(cfg.passwords.effective_hash_concurrency(), 2);
    assert_eq!(cfg.passwords.hash_queue, 8);
}

#[test]
fn wrong_types_are_errors() {
    let e = one_error(load_file("listen = 8443\n"));
    assert_eq!(e.key, "listen");
    assert!(e.reason.starts_with("expected an address"), "{e}");
    assert!(e.reason.ends_with("got 8443"), "{e}");

    let e = one_error(load_file("[limits]\nmax_connections = \"10\"\n"));
    assert_eq!(e.reason, "expected a whole number, got \"10\"");
    assert_eq!(line(&e), Some(2));

    let e = one_error(load_file("[limits]\nmax_connections = 1.5\n"));
    assert_eq!(e.reason, "expected a whole number, got 1.5");

    let e = one_error(load_file("[tls]\ninsecure_plain_http = \"yes\"\n"));
    assert_eq!(e.reason, "expected true or false, got \"yes\"");

    let e = one_error(load_file("tls = 5\n"));
    assert_eq!(e.key, "tls");
    assert_eq!(e.reason, "expected a table ([tls]), got 5");

    let e = one_error(load_file("[[tls]]\ncert_file = \"\"\n"));
    assert_eq!(e.reason, "expected a table ([tls]), got an array of tables");

    let e = one_error(load_file("data_dir = [\"a\"]\n"));
    assert_eq!(e.reason, "expected a path, got an array");

    let e = one_error(load_file("[log]\nlevel = { a = 1 }\n"));
    assert!(e.reason.ends_with("got a table"), "{e}");

    let e = one_error(load_file("[log]\nformat = \"yaml\"\n"));
    assert_eq!(e.reason, "expected \"text\" or \"json\", got \"yaml\"");

    // A TOML date-time is a value like any other, not a crash.
    let e = one_error(load_file("[setup]\ntoken_ttl = 1979-05-27T07:32:00Z\n"));
    assert_eq!(e.key, "setup.token_ttl");
    assert!(
        e.reason.contains("got a date-time (1979-05-27T07:32:00Z)"),
        "{e}"
    );

    // Environment values are parsed as the setting's type.
    let e = one_error(load_env(&[("ENCLAVE_TLS_INSECURE_PLAIN_HTTP", "1")]));
    assert_eq!(e.key, "tls.insecure_plain_http");
    assert_eq!(e.reason, "expected true or false, got \"1\"");
    let e = one_error(load_env(&[("ENCLAVE_LIMITS_MAX_CONNECTIONS", "lots")]));
    assert_eq!(e.reason, "expected a whole number, got \"lots\"");
    let e = one_error(load_env(&[("ENCLAVE_LISTEN", "localhost:8443")]));
    assert!(e.reason.contains("got \"localhost:8443\""), "{e}");
}

#[test]
fn invalid_durations() {
    let e = one_error(load_file("\n[sessions]\nidle_timeout = \"soon\"\n"));
    assert_eq!(
        e.to_string(),
        "enclave.toml:3: key \"sessions.idle_timeout\": expected a duration like \"30m\" or \"12h\", got \"soon\""
    );
    let e = one_error(load_env(&[("ENCLAVE_SESSIONS_IDLE_TIMEOUT", "soon")]));
    assert_eq!(
        e.to_string(),
        "environment variable ENCLAVE_SESSIONS_IDLE_TIMEOUT: key \"sessions.idle_timeout\": expected a duration like \"30m\" or \"12h\", got \"soon\""
    );

    let e = one_error(load_file("[login]\nlockout = \"0s\"\n"));
    assert_eq!(e.reason, "must be greater than 0, got \"0s\"");
    let e = one_error(load_file("[login]\nlockout = 0\n"));
    assert_eq!(e.reason, "must be greater than 0, got 0");
    let e = one_error(load_file("[login]\nlockout = -5\n"));
    assert_eq!(e.reason, "must be greater than 0, got -5");
    let e = one_error(load_file("[tokens]\nmax_lifetime = \"3651d\"\n"));
    assert_eq!(e.reason, "must be at most 10 years (3650d), got \"3651d\"");
    let e = one_error(load_file("[login]\nlockout = true\n"));
    assert_eq!(
        e.reason,
        "expected a duration like \"30m\" or \"12h\", got true"
    );

    // A bare integer is seconds, in the file too.
    let cfg = load_file("[setup]\ntoken_ttl = 90\n").unwrap();
    assert_eq!(cfg.setup.token_ttl, Duration::from_secs(90));
    // The maximum itself is accepted.
    let cfg = load_file("[tokens]\nmax_lifetime = \"3650d\"\n").unwrap();
    assert_eq!(cfg.tokens.max_lifetime, MAX_DURATION);
}

#[test]
fn parse_and_format_duration() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43200)));
    assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86400)));
    assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    for bad in [
        "", "s", "soon", "1h30m", "1 h", " 1h", "1H", "-1s", "+1s", "1.5h", "1w", "h1",
    ] {
        let err = parse_duration(bad).unwrap_err();
        assert!(
            err.starts_with("expected a duration like"),
            "{bad:?}: {err}"
        );
    }
    assert!(parse_duration("99999999999999999999")
        .unwrap_err()
        .contains("too large"));
    assert!(parse_duration("999999999999999999d")
        .unwrap_err()
        .contains("too large"));

    for (secs, text) in [
        (0, "0s"),
        (90, "90s"),
        (1800, "30m"),
        (5400, "90m"),
        (43200, "12h"),
        (86400, "1d"),
    ] {
        assert_eq!(format_duration(Duration::from_secs(secs)), text);
        assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)));
    }
}

#[test]
fn three_bad_keys_three_errors() {
    let text = "listen = \"nowhere\"\n[sessions]\nidle_timeout = \"soon\"\n[limits]\nmax_body_bytes = 10\n";
    let errors = load_file(text).unwrap_err();
    assert_eq!(errors.len(), 3, "{}", format_errors(&errors));
    let got: Vec<(&str, Option<usize>)> =
        errors.iter().map(|e| (e.key.as_str(), line(e))).collect();
    assert_eq!(
        got,
        [
            ("listen", Some(1)),
            ("sessions.idle_timeout", Some(3)),
            ("limits.max_body_bytes", Some(5)),
        ]
    );
    assert_eq!(errors[2].reason, "must be at least 1024, got 10");
    assert_eq!(format_errors(&errors).lines().count(), 3);
}

#[test]
fn errors_from_all_layers_are_collected() {
    let flags = Overrides {
        log_level: Some(String::new()),
        data_dir: Some(PathBuf::new()),
        ..Overrides::default()
    };
    let errors = Config::load(
        Some((Path::new("enclave.toml"), "bogus = 1\n")),
        env(&[("ENCLAVE_LIMITS_MAX_BODY_BYTES", "999999999")]),
        &flags,
    )
    .unwrap_err();
    let sources: Vec<String> = errors.iter().map(|e| e.source.to_string()).collect();
    assert_eq!(
        sources,
        [
            "enclave.toml:1",
            "environment variable ENCLAVE_LIMITS_MAX_BODY_BYTES",
            "flag --data-dir",
            "flag --log-level",
        ]
    );
    assert_eq!(errors[1].reason, "must be at most 16777216, got 999999999");
    assert_eq!(errors[3].key, "log.level");
}

#[test]
fn toml_syntax_error_has_line() {
    let e = one_error(load_file("listen = \"127.0.0.1:1\"\n[tls]\ncert_file = \n"));
    assert_eq!(e.key, "");
    assert_eq!(line(&e), Some(3));
    assert!(e.reason.starts_with("invalid TOML: "), "{e}");
    assert!(
        e.to_string().starts_with("enclave.toml:3: invalid TOML: "),
        "{e}"
    );

    let e = one_error(load_file(
        "listen = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n",
    ));
    assert_eq!(line(&e), Some(2));
    assert!(e.reason.contains("duplicate key"), "{e}");
}

#[test]
fn inline_tables_and_dotted_keys() {
    let text = "sessions = { idle_timeout = \"1m\" }\ntokens.max_lifetime = \"100d\"\n";
    let cfg = load_file(text).unwrap();
    assert_eq!(cfg.sessions.idle_timeout, Duration::from_secs(60));
    assert_eq!(cfg.tokens.max_lifetime, Duration::from_secs(100 * 86400));

    let e = one_error(load_file("\ntokens.max_lifetim = \"100d\"\n"));
    assert_eq!(e.key, "tokens.max_lifetim");
    assert_eq!(line(&e), Some(2));
}

#[test]
fn plain_http_only_on_loopback() {
    let e = one_error(load_file(
        "listen = \"0.0.0.0:8443\"\n[tls]\ninsecure_plain_http = true\n",
    ));
    assert_eq!(e.key, "tls.insecure_plain_http");
    assert_eq!(line(&e), Some(3));
    assert!(e.reason.contains("loopback"), "{e}");
    assert!(e.reason.contains("0.0.0.0:8443"), "{e}");

    // Flag for plain HTTP, address from the environment.
    let flags = Overrides {
        insecure_plain_http: true,
        ..Overrides::default()
    };
    let errors = Config::load(None, env(&[("ENCLAVE_LISTEN", "[::]:80")]), &flags).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].source,
        Source::Flag {
            name: "--insecure-plain-http".to_owned()
        }
    );

    for listen in ["127.0.0.1:8080", "[::1]:8080", "127.9.9.9:1"] {
        let flags = Overrides {
            insecure_plain_http: true,
            listen: Some(addr(listen)),
            ..Overrides::default()
        };
        let cfg = Config::load(None, Vec::new(), &flags).unwrap();
        assert!(cfg.tls.insecure_plain_http);
        assert_eq!(cfg.public_base_url(), format!("http://{listen}"));
    }

    // Not together with a certificate.
    let text = "[tls]\ninsecure_plain_http = true\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";
    let e = one_error(load_file(text));
    assert_eq!(e.key, "tls.insecure_plain_http");
    assert!(e.reason.contains("cannot be combined"), "{e}");

    // A non-loopback listen without plain HTTP is fine.
    let cfg = load_file("listen = \"0.0.0.0:8443\"\n").unwrap();
    assert!(cfg.listen.ip().is_unspecified());
    assert_eq!(cfg.listen.ip(), IpAddr::from([0, 0, 0, 0]));
}

#[test]
fn cert_and_key_both_or_neither() {
    let e = one_error(load_file("[tls]\ncert_file = \"/etc/enclave/cert.pem\"\n"));
    assert_eq!(e.key, "tls.cert_file");
    assert_eq!(line(&e), Some(2));
    assert!(e.reason.contains("tls.key_file must be set too"), "{e}");

    let e = one_error(load_env(&[("ENCLAVE_TLS_KEY_FILE", "/k.pem")]));
    assert_eq!(e.key, "tls.key_file");
    assert_eq!(
        e.source,
        Source::Env {
            var: "ENCLAVE_TLS_KEY_FILE".to_owned()
        }
    );

    // An empty value from a later layer clears the one from an earlier layer.
    let cfg = Config::load(
        Some((Path::new("enclave.toml"), "[tls]\ncert_file = \"/c\"\n")),
        env(&[("ENCLAVE_TLS_CERT_FILE", "")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.tls.cert_file, None);

    let cfg = load_file("[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n").unwrap();
    assert_eq!(cfg.tls.cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(cfg.tls.key_file, Some(PathBuf::from("/k.pem")));
}

#[test]
fn absolute_timeout_not_below_idle() {
    let e = one_error(load_file(
        "[sessions]\nidle_timeout = \"2h\"\nabsolute_timeout = \"1h\"\n",
    ));
    assert_eq!(e.key, "sessions.absolute_timeout");
    assert_eq!(line(&e), Some(3));
    assert_eq!(
        e.reason,
        "sessions.absolute_timeout (1h) must be at least sessions.idle_timeout (2h)"
    );

    // Only idle_timeout was set: it is the one blamed.
    let e = one_error(load_env(&[("ENCLAVE_SESSIONS_IDLE_TIMEOUT", "13h")]));
    assert_eq!(e.key, "sessions.idle_timeout");
    assert!(matches!(e.source, Source::Env { .. }));

    // Equal is fine.
    load_file("[sessions]\nidle_timeout = \"1h\"\nabsolute_timeout = \"60m\"\n").unwrap();

    // An invalid value does not also produce a follow-up cross-key error.
    let e = one_error(load_file(
        "[sessions]\nidle_timeout = \"soon\"\nabsolute_timeout = \"1m\"\n",
    ));
    assert_eq!(e.key, "sessions.idle_timeout");
}

#[test]
fn default_token_lifetime_not_above_max() {
    let e = one_error(load_file("[tokens]\nmax_lifetime = \"7d\"\n"));
    assert_eq!(e.key, "tokens.max_lifetime");
    assert_eq!(
        e.reason,
        "tokens.default_lifetime (30d) must not exceed tokens.max_lifetime (7d)"
    );
    let e = one_error(load_file("[tokens]\ndefault_lifetime = \"91d\"\n"));
    assert_eq!(e.key, "tokens.default_lifetime");
    load_file("[tokens]\nmax_lifetime = \"7d\"\ndefault_lifetime = \"7d\"\n").unwrap();
}

#[test]
fn count_ranges() {
    let e = one_error(load_file("[login]\nmax_failures_per_account = 0\n"));
    assert_eq!(e.reason, "must be at least 1, got 0");
    let e = one_error(load_file("[passwords]\nhash_queue = 0\n"));
    assert_eq!(e.reason, "must be at least 1, got 0");
    let e = one_error(load_file("[passwords]\nhash_concurrency = -1\n"));
    assert_eq!(e.reason, "must be at least 0, got -1");
    let e = one_error(load_file("[limits]\nmax_body_bytes = 16777217\n"));
    assert_eq!(e.reason, "must be at most 16777216, got 16777217");
    let cfg = load_file("[limits]\nmax_body_bytes = 16777216\n[passwords]\nhash_concurrency = 0\n")
        .unwrap();
    assert_eq!(cfg.limits.max_body_bytes, 16 * 1024 * 1024);
}

#[test]
fn log_level_validation() {
    let e = one_error(load_file("[log]\nlevel = \"\"\n"));
    assert!(e.reason.contains("must not be empty"), "{e}");
    let e = one_error(load_file("[log]\nlevel = \"   \"\n"));
    assert!(e.reason.contains("must not be empty"), "{e}");
    let long = "a".repeat(257);
    let e = one_error(load_env(&[("ENCLAVE_LOG_LEVEL", &long)]));
    assert_eq!(e.reason, "must be at most 256 characters, got 257");
    let e = one_error(load_env(&[("ENCLAVE_LOG_LEVEL", "info\nx")]));
    assert!(e.reason.contains("control characters"), "{e}");
    let ok = "a".repeat(256);
    assert_eq!(
        load_env(&[("ENCLAVE_LOG_LEVEL", &ok)]).unwrap().log.level,
        ok
    );
}

#[test]
fn public_url_validation() {
    let cfg = load_file("public_url = \"https://enclave.example.org/prefix/\"\n").unwrap();
    assert_eq!(
        cfg.public_url.as_deref(),
        Some("https://enclave.example.org/prefix")
    );
    assert_eq!(cfg.public_base_url(), "https://enclave.example.org/prefix");
    assert_eq!(load_file("public_url = \"\"\n").unwrap().public_url, None);
    assert_eq!(
        load_env(&[("ENCLAVE_PUBLIC_URL", "HTTP://localhost:8080")])
            .unwrap()
            .public_url
            .as_deref(),
        Some("HTTP://localhost:8080")
    );
    for bad in [
        "enclave.example.org",
        "ftp://x",
        "https://",
        "https:///path",
        "https://x y",
        "https://x/?a=b",
        "https://x/#frag",
        "https://user:pw@x/",
    ] {
        let errors = load_env(&[("ENCLAVE_PUBLIC_URL", bad)]).unwrap_err();
        assert_eq!(errors.len(), 1, "{bad}");
        assert_eq!(errors[0].key, "public_url");
    }
    let e = one_error(load_file("public_url = 5\n"));
    assert_eq!(e.reason, "expected a URL, got 5");
}

#[test]
fn example_toml_parses_back_to_defaults() {
    let example = Config::example_toml();
    let cfg = load_file(&example).unwrap();
    assert_eq!(cfg, Config::default());
    // Every setting is in the example, with its environment variable, and no
    // line is left commented out by accident.
    for setting in settings::SETTINGS {
        let name = setting.key.rsplit('.').next().unwrap();
        assert!(
            example
                .lines()
                .any(|l| l.starts_with(&format!("{name} = "))),
            "{}",
            setting.key
        );
        assert!(example.contains(&format!("# Environment: {}\n", setting.env_var())));
    }
    for (section, _) in settings::SECTIONS {
        assert!(example.contains(&format!("\n[{section}]\n")), "{section}");
    }
}

#[test]
#[allow(clippy::field_reassign_with_default)]
fn to_toml_round_trips() {
    let mut cfg = Config::default();
    cfg.data_dir = PathBuf::from("/var/lib/enclave \"quoted\" \\ dir");
    cfg.listen = addr("[::1]:9443");
    cfg.public_url = Some("https://enclave.example.org".to_owned());
    cfg.tls.cert_file = Some(PathBuf::from("/etc/enclave/cert.pem"));
    cfg.tls.key_file = Some(PathBuf::from("/etc/enclave/key.pem"));
    cfg.log.format = LogFormat::Json;
    cfg.log.level = "info,enclave_http=debug".to_owned();
    cfg.sessions.idle_timeout = Duration::from_secs(95);
    cfg.tokens.default_lifetime = Duration::from_secs(3600);
    cfg.login.max_failures_per_account = 9;
    cfg.limits.max_body_bytes = 1024;
    cfg.passwords.hash_concurrency = 3;
    let text = cfg.to_toml();
    assert_eq!(load_file(&text).unwrap(), cfg, "{text}");
}

#[test]
fn settings_table_is_consistent() {
    // Top-level keys first, then each section contiguous, in SECTIONS order.
    let mut order: Vec<&str> = Vec::new();
    for s in settings::SETTINGS {
        let section = s.key.split_once('.').map_or("", |(sec, _)| sec);
        if order.last() != Some(&section) {
            assert!(!order.contains(&section), "{} is out of place", s.key);
            order.push(section);
        }
    }
    let expected: Vec<&str> = std::iter::once("")
        .chain(settings::SECTIONS.iter().map(|(s, _)| *s))
        .collect();
    assert_eq!(order, expected);
    // Environment variable names are unique and not reserved.
    let mut names: Vec<String> = settings::SETTINGS.iter().map(|s| s.env_var()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), settings::SETTINGS.len());
    for name in &names {
        assert!(!loader::ALLOWED_ENV.contains(&name.as_str()), "{name}");
        assert!(!name.starts_with(loader::TEST_ENV_PREFIX), "{name}");
    }
}

#[test]
fn source_display() {
    let file = Source::File {
        path: PathBuf::from("/etc/enclave.toml"),
        line: Some(12),
        column: Some(3),
    };
    assert_eq!(file.to_string(), "/etc/enclave.toml:12");
    let file = Source::File {
        path: PathBuf::from("enclave.toml"),
        line: None,
        column: None,
    };
    assert_eq!(file.to_string(), "enclave.toml");
    assert_eq!(
        Source::Env {
            var: "ENCLAVE_LISTEN".to_owned()
        }
        .to_string(),
        "environment variable ENCLAVE_LISTEN"
    );
    assert_eq!(
        Source::Flag {
            name: "--listen".to_owned()
        }
        .to_string(),
        "flag --listen"
    );
    assert_eq!(Source::Default.to_string(), "built-in default");
}

#[test]
fn log_format_parsing() {
    assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
    assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
    assert!("JSON".parse::<LogFormat>().is_err());
    assert_eq!(LogFormat::Json.to_string(), "json");
}

fn no_read(path: &Path) -> io::Result<String> {
    panic!("unexpected read of {}", path.display())
}

#[test]
fn process_loading_reads_only_named_files() {
    // Nothing named: nothing read, not even ./enclave.toml.
    let (cfg, used) = load_with(&Overrides::default(), Vec::new(), Vec::new(), no_read).unwrap();
    assert_eq!(cfg, Config::default());
    assert_eq!(used, None);

    // An empty ENCLAVE_CONFIG names nothing.
    let vars = env(&[("ENCLAVE_CONFIG", "")]);
    let (_, used) = load_with(&Overrides::default(), vars, Vec::new(), no_read).unwrap();
    assert_eq!(used, None);

    // ENCLAVE_CONFIG names the file.
    let vars = env(&[("ENCLAVE_CONFIG", "/etc/enclave.toml")]);
    let (cfg, used) = load_with(&Overrides::default(), vars, Vec::new(), |p| {
        assert_eq!(p, Path::new("/etc/enclave.toml"));
        Ok("listen = \"127.0.0.1:1\"\n".to_owned())
    })
    .unwrap();
    assert_eq!(cfg.listen, addr("127.0.0.1:1"));
    assert_eq!(used, Some(PathBuf::from("/etc/enclave.toml")));

    // --config wins over ENCLAVE_CONFIG.
    let flags = Overrides {
        config_file: Some(PathBuf::from("/flag.toml")),
        ..Overrides::default()
    };
    let vars = env(&[("ENCLAVE_CONFIG", "/env.toml")]);
    let (_, used) = load_with(&flags, vars, Vec::new(), |p| {
        assert_eq!(p, Path::new("/flag.toml"));
        Ok(String::new())
    })
    .unwrap();
    assert_eq!(used, Some(PathBuf::from("/flag.toml")));
}

#[test]
fn missing_named_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let flags = Overrides {
        config_file: Some(missing.clone()),
        ..Overrides::default()
    };
    let errors = load_with(&flags, env(&[("ENCLAVE_LISTN", "x")]), Vec::new(), |p| {
        std::fs::read_to_string(p)
    })
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{}", format_errors(&errors));
    assert_eq!(
        errors[0].source,
        Source::File {
            path: missing.clone(),
            line: None,
            column: None
        }
    );
    let text = errors[0].to_string();
    assert!(text.starts_with(&missing.display().to_string()), "{text}");
    assert!(
        text.contains("cannot read the configuration file named by --config"),
        "{text}"
    );

    let vars = env(&[("ENCLAVE_CONFIG", missing.to_str().unwrap())]);
    let errors = load_with(&Overrides::default(), vars, Vec::new(), |p| {
        std::fs::read_to_string(p)
    })
    .unwrap_err();
    assert!(
        errors[0].reason.contains("named by ENCLAVE_CONFIG"),
        "{}",
        errors[0]
    );

    // A real file, with errors reported against its path.
    let path = dir.path().join("enclave.toml");
    std::fs::write(&path, "[log]\nformat = \"xml\"\n").unwrap();
    let flags = Overrides {
        config_file: Some(path.clone()),
        ..Overrides::default()
    };
    let errors = load_with(&flags, Vec::new(), Vec::new(), |p| {
        std::fs::read_to_string(p)
    })
    .unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:2: key \"log.format\": expected \"text\" or \"json\", got \"xml\"",
            path.display()
        )
    );
}

#[test]
fn load_from_process_smoke() {
    // Reads the real environment; only meaningful when no ENCLAVE_* variables
    // are set, which is the case in CI.
    let flags = Overrides {
        listen: Some(addr("127.0.0.1:0")),
        config_file: Some(PathBuf::from("/nonexistent/enclave-config-test.toml")),
        ..Overrides::default()
    };
    let errors = load_from_process(&flags).unwrap_err();
    assert!(errors
        .iter()
        .any(|e| e.reason.contains("cannot read the configuration file")));
}

#[test]
fn jobs_and_sandbox_settings() {
    let c = load_file(
        "[jobs]\nmax_running = 2\ndefault_cpus = 0.5\nmax_cpus = 8\ndefault_memory = \"512M\"\nmax_memory = \"16G\"\ndefault_timeout = \"30m\"\nmax_timeout = \"2d\"\nlog_bytes = \"1M\"\n[sandbox]\nnetwork = \"172.20.0.0/14\"\nsubnet_prefix = 26\n",
    )
    .unwrap();
    assert_eq!(c.jobs.max_running, 2);
    assert_eq!(c.jobs.caps.default.cpu_millis, 500);
    assert_eq!(c.jobs.caps.max.cpu_millis, 8000);
    assert_eq!(c.jobs.caps.default.memory_bytes, 512 << 20);
    assert_eq!(c.jobs.caps.max.memory_bytes, 16 << 30);
    assert_eq!(c.jobs.caps.default.timeout_secs, 1800);
    assert_eq!(c.jobs.caps.max.timeout_secs, 2 * 86_400);
    assert_eq!(c.jobs.log_bytes, 1 << 20);
    assert_eq!(c.sandbox.network, ("172.20.0.0".parse().unwrap(), 14));
    assert_eq!(c.sandbox.subnet_prefix, 26);

    let e = one_error(load_env(&[("ENCLAVE_SANDBOX_NETWORK", "10.213.0.1/16")]));
    assert!(e.reason.contains("host bits"), "{e}");
    let e = one_error(load_env(&[("ENCLAVE_SANDBOX_NETWORK", "8.8.0.0/16")]));
    assert!(e.reason.contains("not a private block"), "{e}");
    let e = one_error(load_env(&[("ENCLAVE_SANDBOX_SUBNET_PREFIX", "16")]));
    assert!(e.reason.contains("longer than the pool"), "{e}");
    let e = one_error(load_env(&[("ENCLAVE_JOBS_DEFAULT_MEMORY", "64G")]));
    assert_eq!(
        e.reason,
        "jobs.default_memory must not exceed jobs.max_memory"
    );
    let e = one_error(load_env(&[("ENCLAVE_JOBS_MAX_CPUS", "lots")]));
    assert!(e.reason.contains("number of CPUs"), "{e}");
    let e = one_error(load_env(&[("ENCLAVE_JOBS_MAX_MEMORY", "1M")]));
    assert!(e.reason.contains("at least 16MiB"), "{e}");
}

#[test]
fn notebook_subdomain_domain() {
    assert_eq!(Config::default().notebooks.subdomain_domain, None);
    let c = load_env(&[("ENCLAVE_NOTEBOOKS_SUBDOMAIN_DOMAIN", "nb.localhost")]).unwrap();
    assert_eq!(
        c.notebooks.subdomain_domain.as_deref(),
        Some("nb.localhost")
    );
    let c = load_file("[notebooks]\nsubdomain_domain = \"nb.enclave.example\"\n").unwrap();
    assert_eq!(
        c.notebooks.subdomain_domain.as_deref(),
        Some("nb.enclave.example")
    );
    // The rendered file loads back to the same value.
    assert_eq!(load_file(&c.to_toml()).unwrap(), c);
    let c = load_env(&[("ENCLAVE_NOTEBOOKS_SUBDOMAIN_DOMAIN", "")]).unwrap();
    assert_eq!(c.notebooks.subdomain_domain, None);
    for bad in [
        "https://nb.example",
        "nb.example:8443",
        "*.nb.example",
        "NB.example",
        "localhost",
    ] {
        let e = one_error(load_env(&[("ENCLAVE_NOTEBOOKS_SUBDOMAIN_DOMAIN", bad)]));
        assert_eq!(e.key, "notebooks.subdomain_domain", "{bad}: {e}");
    }
}
