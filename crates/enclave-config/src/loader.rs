//! Applies the layers (file, environment, flags) on top of the defaults,
//! collecting every error, then checks the rules that span several keys.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use toml_edit::{ImDocument, Key, TableLike};

use crate::duration::format_duration;
use crate::settings::{self, describe_item, Input, Setting, ENV_PREFIX, SECTIONS, SETTINGS};
use crate::{Config, ConfigError, Overrides, Source};

/// `ENCLAVE_*` variables read elsewhere in Enclave, which the loader ignores.
pub(crate) const ALLOWED_ENV: &[&str] = &["ENCLAVE_CONFIG", "ENCLAVE_CONFIG_DIR", "ENCLAVE_LOG"];

/// Prefix of variables reserved for tests, which the loader ignores.
pub(crate) const TEST_ENV_PREFIX: &str = "ENCLAVE_TEST_";

/// Accumulates the configuration, where each key was last set, and errors.
pub(crate) struct Builder {
    cfg: Config,
    origins: HashMap<&'static str, Source>,
    failed: HashSet<&'static str>,
    errors: Vec<ConfigError>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            cfg: Config::default(),
            origins: HashMap::new(),
            failed: HashSet::new(),
            errors: Vec::new(),
        }
    }

    /// Records an error that came from outside the layers (e.g. an unreadable file).
    pub(crate) fn error(&mut self, source: Source, key: &str, reason: String) {
        self.errors.push(ConfigError {
            source,
            key: key.to_owned(),
            reason,
        });
    }

    fn apply(&mut self, setting: &'static Setting, input: &Input<'_>, source: Source) {
        match (setting.set)(&mut self.cfg, input) {
            Ok(()) => {
                self.origins.insert(setting.key, source);
            }
            Err(reason) => {
                self.failed.insert(setting.key);
                self.error(source, setting.key, reason);
            }
        }
    }

    /// Applies the TOML file `text` read from `path`.
    pub(crate) fn file(&mut self, path: &Path, text: &str) {
        match ImDocument::parse(text) {
            Ok(doc) => self.table(path, text, doc.as_table(), "", None),
            Err(e) => {
                let source = Source::file_at(path, text, e.span().map(|r| r.start));
                let reason = format!(
                    "invalid TOML: {}",
                    e.message().trim_end().replace('\n', "; ")
                );
                self.error(source, "", reason);
            }
        }
    }

    /// Applies one table of the file; `prefix` is the section name ("" for the root),
    /// `fallback` a position to report when an item carries no span of its own.
    fn table(
        &mut self,
        path: &Path,
        text: &str,
        table: &dyn TableLike,
        prefix: &str,
        fallback: Option<usize>,
    ) {
        for (name, item) in table.iter() {
            let key_pos = table
                .key(name)
                .and_then(Key::span)
                .map(|r| r.start)
                .or(fallback);
            let value_pos = item.span().map(|r| r.start).or(key_pos);
            let full = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(setting) = settings::find(&full) {
                let source = Source::file_at(path, text, value_pos);
                self.apply(setting, &Input::Toml(item), source);
            } else if prefix.is_empty() && SECTIONS.iter().any(|(s, _)| *s == name) {
                match item.as_table_like() {
                    Some(sub) => self.table(path, text, sub, name, key_pos),
                    None => {
                        let reason =
                            format!("expected a table ([{name}]), got {}", describe_item(item));
                        self.error(Source::file_at(path, text, value_pos), &full, reason);
                    }
                }
            } else {
                let reason = format!("unknown key{}", suggest_key(&full));
                self.error(Source::file_at(path, text, key_pos), &full, reason);
            }
        }
    }

    /// Applies `ENCLAVE_*` variables; other variables are ignored.
    pub(crate) fn env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (var, value) in vars {
            if !var.starts_with(ENV_PREFIX) || is_reserved_env(&var) {
                continue;
            }
            match SETTINGS.iter().find(|s| s.env_var() == var) {
                Some(setting) => self.apply(setting, &Input::Text(&value), Source::Env { var }),
                None => {
                    let reason =
                        format!("unknown Enclave environment variable{}", suggest_env(&var));
                    self.error(Source::Env { var }, "", reason);
                }
            }
        }
    }

    /// Applies command-line flags.
    pub(crate) fn flags(&mut self, flags: &Overrides) {
        let flag = |name: &str| Source::Flag {
            name: name.to_owned(),
        };
        if let Some(dir) = &flags.data_dir {
            if dir.as_os_str().is_empty() {
                self.failed.insert("data_dir");
                self.error(
                    flag("--data-dir"),
                    "data_dir",
                    "must not be empty".to_owned(),
                );
            } else {
                self.cfg.data_dir.clone_from(dir);
                self.origins.insert("data_dir", flag("--data-dir"));
            }
        }
        if let Some(listen) = flags.listen {
            self.cfg.listen = listen;
            self.origins.insert("listen", flag("--listen"));
        }
        if let Some(url) = &flags.public_url {
            self.apply_text("public_url", url, flag("--public-url"));
        }
        if flags.insecure_plain_http {
            self.cfg.tls.insecure_plain_http = true;
            self.origins
                .insert("tls.insecure_plain_http", flag("--insecure-plain-http"));
        }
        if let Some(format) = flags.log_format {
            self.cfg.log.format = format;
            self.origins.insert("log.format", flag("--log-format"));
        }
        if let Some(level) = &flags.log_level {
            self.apply_text("log.level", level, flag("--log-level"));
        }
    }

    fn apply_text(&mut self, key: &str, text: &str, source: Source) {
        if let Some(setting) = settings::find(key) {
            self.apply(setting, &Input::Text(text), source);
        }
    }

    fn origin(&self, key: &str) -> Option<Source> {
        self.origins.get(key).cloned()
    }

    /// The key to blame for a rule involving `a` and `b`: `a` if it was set
    /// explicitly, else `b` if it was, else `a` at its default.
    fn blame(&self, a: &'static str, b: &'static str) -> (&'static str, Source) {
        match (self.origin(a), self.origin(b)) {
            (Some(source), _) => (a, source),
            (None, Some(source)) => (b, source),
            (None, None) => (a, Source::Default),
        }
    }

    /// Checks the rules that span several keys and returns the result.
    ///
    /// A rule is skipped when one of its keys already had an error, so that a
    /// bad value does not also produce a confusing follow-up error.
    pub(crate) fn finish(mut self) -> Result<Config, Vec<ConfigError>> {
        let ok = |b: &Self, keys: &[&str]| keys.iter().all(|k| !b.failed.contains(k));
        let cfg = &self.cfg;
        let mut found: Vec<(&'static str, Source, String)> = Vec::new();

        let tls = &cfg.tls;
        if ok(&self, &["tls.cert_file", "tls.key_file"]) {
            match (&tls.cert_file, &tls.key_file) {
                (Some(_), None) => found.push((
                    "tls.cert_file",
                    self.origin("tls.cert_file").unwrap_or(Source::Default),
                    "tls.key_file must be set too (set both or neither)".to_owned(),
                )),
                (None, Some(_)) => found.push((
                    "tls.key_file",
                    self.origin("tls.key_file").unwrap_or(Source::Default),
                    "tls.cert_file must be set too (set both or neither)".to_owned(),
                )),
                _ => {}
            }
        }
        if tls.insecure_plain_http && ok(&self, &["tls.insecure_plain_http", "listen"]) {
            let source = self
                .origin("tls.insecure_plain_http")
                .unwrap_or(Source::Default);
            if !is_loopback(cfg.listen.ip()) {
                found.push((
                    "tls.insecure_plain_http",
                    source.clone(),
                    format!(
                        "plain HTTP is only allowed on a loopback address (127.0.0.1, ::1), but listen is {}",
                        cfg.listen
                    ),
                ));
            }
            if tls.cert_file.is_some() || tls.key_file.is_some() {
                found.push((
                    "tls.insecure_plain_http",
                    source,
                    "cannot be combined with tls.cert_file/tls.key_file".to_owned(),
                ));
            }
        }

        let s = &cfg.sessions;
        let keys = ["sessions.absolute_timeout", "sessions.idle_timeout"];
        if s.absolute_timeout < s.idle_timeout && ok(&self, &keys) {
            let (key, source) = self.blame(keys[0], keys[1]);
            found.push((
                key,
                source,
                format!(
                    "sessions.absolute_timeout ({}) must be at least sessions.idle_timeout ({})",
                    format_duration(s.absolute_timeout),
                    format_duration(s.idle_timeout)
                ),
            ));
        }

        let t = &cfg.tokens;
        let keys = ["tokens.default_lifetime", "tokens.max_lifetime"];
        if t.default_lifetime > t.max_lifetime && ok(&self, &keys) {
            let (key, source) = self.blame(keys[0], keys[1]);
            found.push((
                key,
                source,
                format!(
                    "tokens.default_lifetime ({}) must not exceed tokens.max_lifetime ({})",
                    format_duration(t.default_lifetime),
                    format_duration(t.max_lifetime)
                ),
            ));
        }

        let j = &cfg.jobs.caps;
        for (d, m, what) in [
            (
                "jobs.default_cpus",
                "jobs.max_cpus",
                j.default.cpu_millis > j.max.cpu_millis,
            ),
            (
                "jobs.default_memory",
                "jobs.max_memory",
                j.default.memory_bytes > j.max.memory_bytes,
            ),
            (
                "jobs.default_timeout",
                "jobs.max_timeout",
                j.default.timeout_secs > j.max.timeout_secs,
            ),
        ] {
            if what && ok(&self, &[d, m]) {
                let (key, source) = self.blame(d, m);
                found.push((key, source, format!("{d} must not exceed {m}")));
            }
        }
        let sb = &cfg.sandbox;
        let keys = ["sandbox.network", "sandbox.subnet_prefix"];
        if sb.subnet_prefix <= sb.network.1 && ok(&self, &keys) {
            let (key, source) = self.blame(keys[1], keys[0]);
            found.push((
                key,
                source,
                format!(
                    "sandbox.subnet_prefix ({}) must be longer than the pool's prefix (/{})",
                    sb.subnet_prefix, sb.network.1
                ),
            ));
        }

        for (key, source, reason) in found {
            self.error(source, key, reason);
        }
        if self.errors.is_empty() {
            Ok(self.cfg)
        } else {
            Err(self.errors)
        }
    }
}

/// Whether an `ENCLAVE_*` variable belongs to another part of Enclave.
fn is_reserved_env(var: &str) -> bool {
    ALLOWED_ENV.contains(&var) || var.starts_with(TEST_ENV_PREFIX)
}

/// Loopback, including IPv4-mapped IPv6 loopback (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `"; did you mean \"x\"?"` for an unknown file key, or "".
fn suggest_key(key: &str) -> String {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    // The right name in the wrong place, e.g. `listen` written after a [section].
    if let Some(s) = SETTINGS
        .iter()
        .find(|s| s.key.rsplit('.').next() == Some(leaf))
    {
        let hint = if s.key.contains('.') {
            ""
        } else {
            " (top-level keys must come before the first [section])"
        };
        return format!("; did you mean {:?}{hint}?", s.key);
    }
    let candidates = SETTINGS
        .iter()
        .map(|s| s.key)
        .chain(SECTIONS.iter().map(|(s, _)| *s));
    closest(key, candidates).map_or_else(String::new, |c| format!("; did you mean {c:?}?"))
}

/// `"; did you mean ENCLAVE_X?"` for an unknown variable, or "".
fn suggest_env(var: &str) -> String {
    let names: Vec<String> = SETTINGS.iter().map(Setting::env_var).collect();
    let candidates = names
        .iter()
        .map(String::as_str)
        .chain(ALLOWED_ENV.iter().copied());
    closest(var, candidates).map_or_else(String::new, |c| format!("; did you mean {c}?"))
}

/// The candidate closest to `word`, if it is within a few edits.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 4).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            let delete = prev[j + 1] + 1;
            let insert = cur[j] + 1;
            cur.push(substitute.min(delete).min(insert));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("listn", "listen"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn loopback_detection() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(
                is_loopback(ip.parse().unwrap_or(IpAddr::from([0; 4]))),
                "{ip}"
            );
        }
        for ip in ["0.0.0.0", "10.0.0.1", "::", "::ffff:10.0.0.1"] {
            assert!(
                !is_loopback(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
    }
}
