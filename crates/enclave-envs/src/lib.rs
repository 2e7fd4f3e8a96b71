//! Enclave's notebook environments: each [`EnvTemplate`] is built once into a read-only Python
//! virtual environment and shared by every sandbox that uses it.
//!
//! A [`Builder`] owns one directory (`envs_dir`). An environment lives at
//! `envs_dir/<template>-<fingerprint>` ([`EnvTemplate::fingerprint`]: Python version, pins and
//! index), so a change of pins or index means a new directory and the old one stays usable
//! until nothing needs it ([`Builder::remove_unused`]).
//!
//! Invariants:
//! - *Nothing half-built is ever used*: a build happens in `envs_dir/.build-…` and is renamed
//!   into place as its very last step; any failure (installer error, time limit, bad tree)
//!   removes the staging directory. An environment counts as built only with its manifest
//!   (`enclave-env.json`), which is written before the rename.
//! - *Once*: an exclusive `flock` on `envs_dir/.lock-<fingerprint>` serializes builders of the
//!   same environment across threads and processes; whoever comes second finds it built.
//! - *Only the configured index*: the installer runs with a cleared environment (PATH, HOME and
//!   LANG only, plus settings that disable user and global configuration files, keyrings and
//!   `.netrc`, and Python downloads), `--index-url` and `--only-binary :all:`, so no
//!   configuration or credential of the server's user leaks in and no package code runs at
//!   build time (wheels only: no `setup.py`).
//! - *Read-only for sandboxes*: the tree is 0755/0644, owned by root when the server runs as
//!   root; sandbox users (unprivileged host uids) can read and execute, never write.
//! - *Visible inside sandboxes*: the venv is based on a Debian interpreter from `/usr/bin` or
//!   `/usr/local/bin` (which sandboxes see read-only), never pyenv or a home directory; its
//!   `pyvenv.cfg` says `home = /usr/bin`, so it works wherever it is mounted
//!   ([`MOUNT_PATH`] in sandboxes). Console scripts find their interpreter next to themselves,
//!   but notebooks start with `/opt/enclave/env/bin/python -m jupyterlab`, which needs none.
//! - Credentials in the index URL never reach the manifest, progress messages or errors.

mod child;
mod command;
mod progress;
mod seal;

pub use command::{MOUNT_PATH, PYTHON_DIRS};
pub use enclave_core::environments::EnvTemplate;
pub use progress::{Progress, Step, MAX_MESSAGE};

use command::{Cmd, Host};
use enclave_core::environments::normalize_name;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// File in every built environment that records what it holds.
pub const MANIFEST: &str = "enclave-env.json";
/// Default limit on one build.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Output lines of a failed installer kept for the error.
const TAIL_LINES: usize = 50;
/// Version of the manifest format.
const MANIFEST_FORMAT: u32 = 1;

/// Errors of the environment builder. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template breaks a rule ([`EnvTemplate::check_buildable`]).
    #[error("{0}")]
    Template(enclave_core::Error),
    /// The builder's configuration is not usable (index URL, installer name).
    #[error("{0}")]
    Config(String),
    /// The template's Python is not installed where sandboxes can see it.
    #[error("Python {version} is not installed on the server; install python{version} (in /usr/bin or /usr/local/bin) or change the template's Python version")]
    NoPython {
        /// The template's Python version (`3.12`).
        version: String,
    },
    /// The installer program is missing or too old.
    #[error("{0}")]
    NoInstaller(String),
    /// The installer failed.
    #[error("{hint}\nlast lines of the installer's output:\n{}", log_tail.join("\n"))]
    Install {
        /// What went wrong and what to do.
        hint: String,
        /// The installer's last output lines (credentials removed).
        log_tail: Vec<String>,
    },
    /// The build ran out of time and was stopped; nothing was kept.
    #[error("building the environment took longer than {} s and was stopped; nothing was kept. Check that the package index is fast enough, or raise the build time limit", .limit.as_secs())]
    TimedOut {
        /// The limit.
        limit: Duration,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The program that installs packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Installer {
    /// `uv` (fast; the default).
    #[default]
    Uv,
    /// `pip` 22.3 or later (its `--python` option).
    Pip,
}

impl Installer {
    /// `"uv"` or `"pip"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Installer::Uv => "uv",
            Installer::Pip => "pip",
        }
    }
}

impl std::fmt::Display for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Installer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Installer> {
        match s {
            "uv" => Ok(Installer::Uv),
            "pip" => Ok(Installer::Pip),
            _ => Err(Error::Config(format!(
                "the environments installer must be 'uv' or 'pip', not '{}'",
                progress::one_line(s)
            ))),
        }
    }
}

/// A built environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltEnv {
    /// Its directory on the host (`envs_dir/<template>-<fingerprint>`); sandboxes mount it
    /// read-only at [`MOUNT_PATH`].
    pub path: PathBuf,
    /// The host interpreter it is based on (`/usr/bin/python3.11`).
    pub python: PathBuf,
    /// What is installed, `name==version` each (the installer's `freeze`, names normalized as
    /// PEP 503 does), sorted.
    pub packages: Vec<String>,
    /// When the build finished (seconds since the Unix epoch).
    pub built_at_unix: i64,
    /// The template's fingerprint for the builder's index.
    pub fingerprint: String,
}

/// What `enclave-env.json` holds. It is readable by sandboxes: no credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    template: EnvTemplate,
    fingerprint: String,
    /// The index URL without user information.
    index_url: String,
    installer: Installer,
    python: PathBuf,
    packages: Vec<String>,
    built_at_unix: i64,
}

/// Builds environments into one directory.
#[derive(Debug, Clone)]
pub struct Builder {
    envs_dir: PathBuf,
    /// The URL handed to the installer (may hold credentials).
    index_full: String,
    /// The URL without user information: fingerprints, manifests, messages.
    index_shown: String,
    /// Strings removed from installer output (the URL's user information).
    secrets: Vec<String>,
    installer: Installer,
    timeout: Duration,
    python_dirs: Vec<PathBuf>,
}

impl Builder {
    /// A builder for `envs_dir` (created on first build), installing from `index_url` (an
    /// `http`/`https` URL of a PEP 503 "simple" index such as `https://pypi.org/simple/` or an
    /// internal mirror; user information in it is used but never shown or stored) with
    /// `installer`. Builds are limited to [`DEFAULT_TIMEOUT`].
    pub fn new(envs_dir: PathBuf, index_url: String, installer: Installer) -> Result<Builder> {
        if !envs_dir.is_absolute() {
            return Err(Error::Config(format!(
                "the environments directory must be an absolute path, not '{}'",
                envs_dir.display()
            )));
        }
        let (index_shown, secrets) = check_index_url(&index_url)?;
        Ok(Builder {
            envs_dir,
            index_full: index_url,
            index_shown,
            secrets,
            installer,
            timeout: DEFAULT_TIMEOUT,
            python_dirs: PYTHON_DIRS.iter().map(PathBuf::from).collect(),
        })
    }

    /// The same builder with another limit on one build (including the wait for another
    /// process building the same environment).
    pub fn with_timeout(mut self, timeout: Duration) -> Builder {
        self.timeout = timeout;
        self
    }

    /// The directory environments are built in.
    pub fn envs_dir(&self) -> &Path {
        &self.envs_dir
    }

    /// The index URL as shown (without user information).
    pub fn index_url(&self) -> &str {
        &self.index_shown
    }

    /// The installer.
    pub fn installer(&self) -> Installer {
        self.installer
    }

    /// The template's fingerprint for this builder's index (credentials in the URL do not
    /// count: rotating them does not rebuild anything).
    pub fn fingerprint(&self, t: &EnvTemplate) -> String {
        t.fingerprint(&self.index_shown)
    }

    /// Where the template's environment lives: `envs_dir/<name>-<fingerprint>`. (Characters a
    /// template name may not hold are dropped, so the path stays inside `envs_dir` even for a
    /// template that was never checked.)
    pub fn path(&self, t: &EnvTemplate) -> PathBuf {
        let name: String = t
            .name
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .take(enclave_core::names::MAX_SLUG)
            .collect();
        self.envs_dir
            .join(format!("{}-{}", name, self.fingerprint(t)))
    }

    /// The template's environment if it is completely built.
    pub fn built(&self, t: &EnvTemplate) -> Option<BuiltEnv> {
        t.check_buildable().ok()?;
        let path = self.path(t);
        let m: Manifest = serde_json::from_slice(&fs::read(path.join(MANIFEST)).ok()?).ok()?;
        if m.format != MANIFEST_FORMAT || m.fingerprint != self.fingerprint(t) {
            return None;
        }
        fs::symlink_metadata(path.join("bin/python")).ok()?;
        Some(BuiltEnv {
            path,
            python: m.python,
            packages: m.packages,
            built_at_unix: m.built_at_unix,
            fingerprint: m.fingerprint,
        })
    }

    /// Builds the template's environment, reporting progress, and returns it; returns at once
    /// when it is already built, and waits when another thread or process is building it.
    /// Blocking: run it on a thread of its own.
    pub fn build(&self, t: &EnvTemplate, progress: &mut dyn FnMut(&Progress)) -> Result<BuiltEnv> {
        t.check_buildable().map_err(Error::Template)?;
        if let Some(b) = self.built(t) {
            progress(&done(&b, "already built"));
            return Ok(b);
        }
        let deadline = Instant::now() + self.timeout;
        self.make_envs_dir()?;
        let fp = self.fingerprint(t);
        let lock = match self.lock(&fp)? {
            Some(l) => l,
            None => {
                progress(&Progress {
                    step: Step::Resolving,
                    percent: 0,
                    message: "waiting for another build of this environment to finish".into(),
                });
                self.lock_until(&fp, deadline)?
            }
        };
        if let Some(b) = self.built(t) {
            progress(&done(&b, "built by another builder"));
            return Ok(b);
        }
        let result = self.build_locked(t, &fp, deadline, progress);
        drop(lock);
        result
    }

    /// Removes every environment in `envs_dir` whose path is not in `keep`, and leftovers of
    /// builds that died; environments being built are left alone. Returns how many
    /// environments were removed. The caller keeps every environment a template or a running
    /// sandbox still uses.
    pub fn remove_unused(&self, keep: &[PathBuf]) -> Result<usize> {
        let entries = match fs::read_dir(&self.envs_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(Error::Io {
                    what: format!("cannot list {}", self.envs_dir.display()),
                    source: e,
                })
            }
        };
        let keep: Vec<&std::ffi::OsStr> = keep.iter().filter_map(|p| p.file_name()).collect();
        let mut removed = 0;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let Some(entry) = classify(&name) else {
                continue;
            };
            match entry {
                Entry::Env { fp } if !keep.contains(&std::ffi::OsStr::new(&name)) => {
                    let Some(lock) = self.lock(fp)? else {
                        continue;
                    };
                    let trash = self
                        .envs_dir
                        .join(format!(".trash-{name}-{}", std::process::id()));
                    fs::rename(self.envs_dir.join(&name), &trash)
                        .map_err(Error::io(format!("cannot move {name} away")))?;
                    seal::remove_tree(&trash)?;
                    self.unlink_lock(fp, lock);
                    tracing::info!(environment = %name, "removed an unused environment");
                    removed += 1;
                }
                Entry::Env { .. } => {}
                Entry::Leftover { fp } => {
                    if let Some(lock) = self.lock(fp)? {
                        seal::remove_tree(&self.envs_dir.join(&name))?;
                        drop(lock);
                        tracing::info!(directory = %name, "removed the leftover of a build");
                    }
                }
            }
        }
        Ok(removed)
    }

    fn build_locked(
        &self,
        t: &EnvTemplate,
        fp: &str,
        deadline: Instant,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<BuiltEnv> {
        let host = Host::current(self.envs_dir.join(".cache"));
        let dirs: Vec<&Path> = self.python_dirs.iter().map(PathBuf::as_path).collect();
        let python = command::find_python(&t.python, &dirs)?;
        let tool = command::find_tool(self.installer, host.path.as_ref())?;
        if self.installer == Installer::Pip {
            self.check_pip(&tool, &host, deadline)?;
        }
        let final_path = self.path(t);
        let staging = self.envs_dir.join(format!(
            ".build-{}-{}",
            final_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        seal::remove_tree(&staging)?;
        let guard = Staging(staging.clone());
        tracing::info!(template = %t.name, fingerprint = %fp, installer = %self.installer, index = %self.index_shown, "building an environment");
        progress(&Progress {
            step: Step::Resolving,
            percent: 0,
            message: progress::one_line(&format!(
                "creating the environment with {} (Python {}), installing {} pins with {} from {}",
                python.display(),
                t.python,
                t.packages.len(),
                self.installer,
                self.index_shown
            )),
        });

        let venv = command::venv(self.installer, &tool, &python, &staging, &host);
        self.run(&venv, deadline, t, &mut |line| {
            progress(&Progress {
                step: Step::Resolving,
                percent: 2,
                message: progress::one_line(line),
            });
        })?;

        let install = command::install(
            self.installer,
            &tool,
            &staging,
            &self.index_full,
            &t.packages,
            &host,
        );
        let mut estimate = progress::Estimator::new(self.installer);
        self.run(&install, deadline, t, &mut |line| {
            if let Some(p) = estimate.line(line) {
                progress(&p);
            }
        })?;

        let sealing = |percent: u8, message: &str| Progress {
            step: Step::Sealing,
            percent,
            message: message.to_string(),
        };
        if self.installer == Installer::Pip {
            progress(&sealing(87, "compiling bytecode"));
            let compile = command::compile(&staging, &t.python, &host);
            if let Err(e) = self.run(&compile, deadline, t, &mut |_| {}) {
                if matches!(e, Error::TimedOut { .. }) {
                    return Err(e);
                }
                // A file that does not compile is no reason to fail: Python compiles what it can
                // and reads the rest from source.
                tracing::warn!(error = %e, "compileall reported errors");
            }
        }

        progress(&sealing(90, "recording the installed packages"));
        let freeze = command::freeze(self.installer, &tool, &staging, &host);
        let mut frozen: Vec<String> = Vec::new();
        self.run_streams(&freeze, deadline, t, &mut |stream, line| {
            if stream == child::Stream::Out {
                if let Some((name, version)) = line.trim().split_once("==") {
                    frozen.push(format!("{}=={version}", normalize_name(name)));
                }
            }
        })?;
        frozen.sort();

        progress(&sealing(93, "making the environment read-only"));
        seal::relocate_scripts(&staging, &staging)?;
        let built_at_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            template: t.clone(),
            fingerprint: fp.to_string(),
            index_url: self.index_shown.clone(),
            installer: self.installer,
            python: python.clone(),
            packages: frozen.clone(),
            built_at_unix,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Io {
            what: "cannot encode the manifest".into(),
            source: std::io::Error::other(e),
        })?;
        fs::write(staging.join(MANIFEST), json)
            .map_err(Error::io(format!("cannot write {MANIFEST}")))?;
        seal::seal(&staging, nix::unistd::geteuid().is_root())?;

        // A directory without a valid manifest at the final path (a crash of an older version,
        // a hand-made copy) is moved away first: rename does not replace directories.
        if fs::symlink_metadata(&final_path).is_ok() {
            let trash = self.envs_dir.join(format!(
                ".trash-{}-{}",
                final_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::process::id()
            ));
            fs::rename(&final_path, &trash).map_err(Error::io(format!(
                "cannot move {} away",
                final_path.display()
            )))?;
            seal::remove_tree(&trash)?;
        }
        fs::rename(&staging, &final_path).map_err(Error::io(format!(
            "cannot move the environment into {}",
            final_path.display()
        )))?;
        guard.disarm();
        let built = BuiltEnv {
            path: final_path,
            python,
            packages: frozen,
            built_at_unix,
            fingerprint: fp.to_string(),
        };
        tracing::info!(path = %built.path.display(), packages = built.packages.len(), "environment built");
        progress(&done(&built, "ready"));
        Ok(built)
    }

    /// Runs one step; output lines (credentials removed) go to `on_line` and into the error.
    fn run(
        &self,
        cmd: &Cmd,
        deadline: Instant,
        t: &EnvTemplate,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<()> {
        self.run_streams(cmd, deadline, t, &mut |_, line| on_line(line))
    }

    fn run_streams(
        &self,
        cmd: &Cmd,
        deadline: Instant,
        t: &EnvTemplate,
        on_line: &mut dyn FnMut(child::Stream, &str),
    ) -> Result<()> {
        tracing::debug!(command = %self.redact(&cmd.shown()), "running");
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let ended = child::run(cmd, &self.envs_dir, deadline, &mut |stream, line| {
            let line = self.redact(line);
            tracing::debug!(target: "enclave_envs::installer", "{line}");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(progress::one_line(&line));
            on_line(stream, &line);
        })?;
        match ended {
            child::Ended::TimedOut => Err(Error::TimedOut {
                limit: self.timeout,
            }),
            child::Ended::Exited(status) if status.success() => Ok(()),
            child::Ended::Exited(status) => {
                let tail: Vec<String> = tail.into_iter().collect();
                Err(Error::Install {
                    hint: self.hint(cmd, status, &tail, t),
                    log_tail: tail,
                })
            }
        }
    }

    fn check_pip(&self, tool: &Path, host: &Host, deadline: Instant) -> Result<()> {
        let mut first: Option<String> = None;
        let cmd = command::pip_version(tool, host);
        let ended = child::run(&cmd, &self.envs_dir, deadline, &mut |stream, line| {
            if stream == child::Stream::Out && first.is_none() {
                first = Some(line.to_string());
            }
        })?;
        let ok = matches!(ended, child::Ended::Exited(s) if s.success())
            && first
                .as_deref()
                .and_then(command::pip_supports_python_option)
                .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(Error::NoInstaller(format!(
                "{} is not pip 22.3 or later (it says: {}); upgrade it (pip install -U pip) or set the environments installer to uv",
                tool.display(),
                progress::one_line(first.as_deref().unwrap_or("nothing"))
            )))
        }
    }

    fn hint(
        &self,
        cmd: &Cmd,
        status: std::process::ExitStatus,
        tail: &[String],
        t: &EnvTemplate,
    ) -> String {
        let text = tail.join("\n").to_ascii_lowercase();
        let any = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
        let what = match status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let program = cmd
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if any(&[
            "connection refused",
            "failed to establish a new connection",
            "tcp connect error",
            "name or service not known",
            "temporary failure in name resolution",
            "dns error",
            "failed to fetch",
            "connection reset",
            "network is unreachable",
            "no route to host",
            "timed out",
        ]) {
            format!(
                "the package index {} could not be reached ({program}: {what}): check the index URL in the environments settings and that the mirror is up and reachable from the server",
                self.index_shown
            )
        } else if any(&["certificate", "ssl", "tls handshake"]) {
            format!(
                "the TLS certificate of the package index {} was not accepted ({program}: {what}): add the mirror's CA to the server's system trust store, or check the index URL",
                self.index_shown
            )
        } else if any(&[
            "no solution found",
            "not found in the package registry",
            "there is no version of",
            "no matching distribution",
            "could not find a version",
            "unsatisfiable",
            "conflicting dependencies",
            "resolutionimpossible",
        ]) {
            format!(
                "the pins of template '{}' cannot be installed from {} ({program}: {what}): check that every pinned package and version exists there as a wheel for Python {} on this platform, and that the pins do not conflict",
                t.name, self.index_shown, t.python
            )
        } else {
            format!(
                "{program} failed ({what}) while building template '{}': check the index URL {} and the template's pins",
                t.name, self.index_shown
            )
        }
    }

    fn redact(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "****");
        }
        out
    }

    /// Creates `envs_dir` (0755: sandboxes' mounts pass through it) and its download cache
    /// (0700: the server's alone).
    fn make_envs_dir(&self) -> Result<()> {
        if !self.envs_dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&self.envs_dir)
                .map_err(Error::io(format!(
                    "cannot create the environments directory {}",
                    self.envs_dir.display()
                )))?;
        }
        let cache = self.envs_dir.join(".cache");
        if !cache.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&cache)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(Error::io(format!("cannot create {}", cache.display())))?;
        }
        Ok(())
    }

    fn lock_path(&self, fp: &str) -> PathBuf {
        self.envs_dir.join(format!(".lock-{fp}"))
    }

    /// Takes the lock of fingerprint `fp`; `None` when another builder holds it.
    fn lock(&self, fp: &str) -> Result<Option<Flock<File>>> {
        let path = self.lock_path(fp);
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(Error::io(format!("cannot open {}", path.display())))?;
            let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, e)) => {
                    return Err(Error::Io {
                        what: format!("cannot lock {}", path.display()),
                        source: std::io::Error::from(e),
                    })
                }
            };
            // `remove_unused` unlinks lock files it holds: make sure the locked file is still
            // the one at `path`, or start again.
            let here = fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
            let held = locked.metadata().ok().map(|m| (m.dev(), m.ino()));
            if here.is_some() && here == held {
                return Ok(Some(locked));
            }
        }
    }

    fn lock_until(&self, fp: &str, deadline: Instant) -> Result<Flock<File>> {
        loop {
            if let Some(l) = self.lock(fp)? {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(Error::TimedOut {
                    limit: self.timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn unlink_lock(&self, fp: &str, lock: Flock<File>) {
        let _ = fs::remove_file(self.lock_path(fp));
        drop(lock);
    }
}

/// Removes a staging directory unless the build succeeded.
struct Staging(PathBuf);

impl Staging {
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = seal::remove_tree(&self.0) {
            tracing::warn!(error = %e, "could not remove a failed build");
        }
    }
}

fn done(b: &BuiltEnv, how: &str) -> Progress {
    Progress {
        step: Step::Done,
        percent: 100,
        message: format!("environment {how}: {} packages", b.packages.len()),
    }
}

/// What an entry of `envs_dir` is.
#[derive(Debug, PartialEq, Eq)]
enum Entry<'a> {
    /// `<name>-<fingerprint>`: an environment.
    Env { fp: &'a str },
    /// `.build-<name>-<fingerprint>-<pid>` or `.trash-…`: what a build or removal left behind
    /// (or is working on, while it holds the lock).
    Leftover { fp: &'a str },
}

fn classify(name: &str) -> Option<Entry<'_>> {
    fn env_name(s: &str) -> Option<&str> {
        let (slug, fp) = s.rsplit_once('-')?;
        let hex = fp.len() == 16
            && fp
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        (hex && enclave_core::names::slug("name", slug).is_ok()).then_some(fp)
    }
    if let Some(rest) = name
        .strip_prefix(".build-")
        .or_else(|| name.strip_prefix(".trash-"))
    {
        let (env, pid) = rest.rsplit_once('-')?;
        if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        return env_name(env).map(|fp| Entry::Leftover { fp });
    }
    env_name(name).map(|fp| Entry::Env { fp })
}

/// Checks the index URL; returns it without user information, and the strings to hide.
fn check_index_url(raw: &str) -> Result<(String, Vec<String>)> {
    let bad = |why: &str| {
        Error::Config(format!(
            "the package index URL {why}; use an http or https URL of a simple index, like https://pypi.org/simple/"
        ))
    };
    if raw.is_empty() || raw.len() > 2048 {
        return Err(bad("must be 1 to 2048 characters"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let mut url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    let after_scheme = raw.split_once("://").map_or("", |(_, rest)| rest);
    if after_scheme.starts_with('/') || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    let mut secrets = Vec::new();
    for s in [
        url.username().to_string(),
        url.password().unwrap_or("").to_string(),
    ] {
        if !s.is_empty() {
            // Both forms: as written in the URL and decoded.
            secrets.push(s.clone());
            if let Ok(decoded) = percent_decode(&s) {
                if decoded != s {
                    secrets.push(decoded);
                }
            }
        }
    }
    // Longest first, so a secret containing another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url.to_string(), secrets))
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn installers_parse() {
        assert_eq!("uv".parse::<Installer>().unwrap(), Installer::Uv);
        assert_eq!("pip".parse::<Installer>().unwrap(), Installer::Pip);
        assert_eq!(Installer::default(), Installer::Uv);
        for bad in ["", "UV", "conda", "pip3"] {
            assert!(bad.parse::<Installer>().is_err(), "{bad}");
        }
        assert_eq!(Installer::Pip.to_string(), "pip");
    }

    #[test]
    fn index_urls() {
        let (shown, secrets) = check_index_url("https://pypi.org/simple/").unwrap();
        assert_eq!(shown, "https://pypi.org/simple/");
        assert!(secrets.is_empty());
        let (shown, secrets) =
            check_index_url("https://bot:s%40cret@mirror.example:8443/pypi/simple/").unwrap();
        assert_eq!(shown, "https://mirror.example:8443/pypi/simple/");
        assert_eq!(secrets, ["s%40cret", "s@cret", "bot"]);
        for bad in [
            "",
            "pypi.org/simple",
            "ftp://pypi.org/simple/",
            "file:///srv/wheels",
            "https:///simple",
            "https://pypi.org/simple/?x=1",
            "https://pypi.org/simple/#f",
            "https://pypi.org/simple/ --extra-index-url http://evil/",
            "https://pypi.org/sim\nple/",
            "-e",
            "--index-url=http://x/",
        ] {
            assert!(check_index_url(bad).is_err(), "{bad:?}");
        }
        let long = format!("https://x.example/{}", "a".repeat(2048));
        assert!(check_index_url(&long).is_err());
        assert!(Builder::new(
            "relative".into(),
            "https://pypi.org/simple/".into(),
            Installer::Uv
        )
        .is_err());
    }

    #[test]
    fn credentials_are_redacted_and_not_in_fingerprints() {
        let a = Builder::new(
            "/srv/envs".into(),
            "https://bot:hunter2@mirror.example/simple/".into(),
            Installer::Uv,
        )
        .unwrap();
        let b = Builder::new(
            "/srv/envs".into(),
            "https://mirror.example/simple/".into(),
            Installer::Uv,
        )
        .unwrap();
        assert_eq!(a.index_url(), "https://mirror.example/simple/");
        let t = EnvTemplate::default_template();
        assert_eq!(a.fingerprint(&t), b.fingerprint(&t));
        assert_eq!(a.path(&t), b.path(&t));
        assert_eq!(
            a.redact("GET https://bot:hunter2@mirror.example/simple/six/"),
            "GET https://****:****@mirror.example/simple/six/"
        );
    }

    #[test]
    fn paths_stay_inside_envs_dir() {
        let b = Builder::new(
            "/srv/envs".into(),
            "https://pypi.org/simple/".into(),
            Installer::Uv,
        )
        .unwrap();
        let mut t = EnvTemplate::default_template();
        let fp = b.fingerprint(&t);
        assert_eq!(
            b.path(&t),
            PathBuf::from(format!("/srv/envs/datascience-{fp}"))
        );
        t.name = "../../etc/x".into();
        let p = b.path(&t);
        assert_eq!(p.parent().unwrap(), Path::new("/srv/envs"));
        assert!(b.built(&t).is_none());
    }

    #[test]
    fn entries_are_classified() {
        let fp = "0123456789abcdef";
        assert_eq!(
            classify(&format!("datascience-{fp}")),
            Some(Entry::Env { fp })
        );
        assert_eq!(
            classify(&format!(".build-datascience-{fp}-4242")),
            Some(Entry::Leftover { fp })
        );
        assert_eq!(
            classify(&format!(".trash-x1-{fp}-1")),
            Some(Entry::Leftover { fp })
        );
        for other in [
            ".cache".to_string(),
            format!(".lock-{fp}"),
            format!("datascience-{}", &fp[..15]),
            format!("Data-{fp}"),
            format!("datascience-{}", fp.to_uppercase()),
            format!(".build-datascience-{fp}-"),
            format!(".build-datascience-{fp}-12a"),
            "README".to_string(),
        ] {
            assert_eq!(classify(&other), None, "{other}");
        }
    }

    #[test]
    fn hints_say_what_to_do() {
        let b = Builder::new(
            "/srv/envs".into(),
            "http://127.0.0.1:9/simple/".into(),
            Installer::Uv,
        )
        .unwrap();
        let t = EnvTemplate::default_template();
        let cmd = command::freeze(
            Installer::Uv,
            Path::new("/usr/bin/uv"),
            Path::new("/s"),
            &Host::current("/c".into()),
        );
        use std::os::unix::process::ExitStatusExt;
        let st = std::process::ExitStatus::from_raw(1 << 8);
        let h = |lines: &[&str]| {
            b.hint(
                &cmd,
                st,
                &lines.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &t,
            )
        };
        let down = h(&["  cause: Connection refused (os error 111)"]);
        assert!(
            down.contains("could not be reached") && down.contains("exit status 1"),
            "{down}"
        );
        let pins = h(&["error: No solution found when resolving dependencies"]);
        assert!(pins.contains("pins of template 'datascience'"), "{pins}");
        let pip = h(&["ERROR: No matching distribution found for nope==1"]);
        assert!(pip.contains("wheel for Python 3.11"), "{pip}");
        let other = h(&["something else"]);
        assert!(other.starts_with("uv failed (exit status 1)"), "{other}");
    }
}
