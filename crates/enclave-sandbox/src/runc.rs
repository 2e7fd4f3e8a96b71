//! The `runc` driver: writes a sandbox's bundle and runs it.
//!
//! Layout (all created by [`RuncRuntime::new`]):
//!
//! - `RUNTIME_DIR` — must be on a tmpfs (checked: `/dev/shm/...` by default), root-owned,
//!   mode 0711. Holds everything that may contain a secret: `RUNTIME_DIR/runc` (runc's own
//!   state, `--root`) and one bundle per sandbox, `RUNTIME_DIR/<id>/` (mode 0700, owned by the
//!   project's host root uid so that runc, once inside the user namespace, can reach the bind
//!   sources): `config.json` (0600, root; holds environment secrets), `rootfs/` (empty,
//!   mounted read-only as `/`), `etc/` (the generated `/etc`), `secrets/` (0500, secret files
//!   0400 owned by the sandbox's root, bind-mounted read-only at `/run/secrets`). Nothing of a
//!   secret is ever written to a disk-backed file system.
//! - `STATE_DIR/logs/<id>.log` — the workload's stdout and stderr (and runc's errors), 0600,
//!   capped at [`Limits::log_bytes`](crate::Limits::log_bytes). Kept after the run.
//!
//! Waiting: a thread per workload blocks until runc exits (`waitid`, without reaping), so
//! [`Workload::wait`] returns as soon as the workload ends; the cancel flag is looked at every
//! [`POLL`], the deadline when it comes.
//!
//! Cleanup, after the workload ends, on [`Workload::delete`] and on drop (also during a
//! panic's unwinding): kill the container if it runs, `runc delete --force` when runc left
//! state for the id (`runc run` removes its container itself when it ends), remove the
//! cgroup directories `enclave/<id>` left under each controller, remove the bundle. The
//! driver makes no host mounts: every mount is inside the sandbox's own mount namespace and
//! goes with it — except for project networks: `RUNTIME_DIR/netns/<id>` is the bind mount
//! of the workload's network namespace (see [`crate::net`]), removed with the workload.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use zeroize::Zeroize;

use crate::net::{connect_in_netns, Attachment, NetConfig, Networks};
use crate::spec::{etc_files, BundlePaths, IMAGE_DIRS};
use crate::{Canceller, Error, Outcome, Result, Runtime, SandboxSpec, Status, Workload, POLL};

/// Names in the runtime directory that are the runtime's own, never a sandbox's.
const RESERVED_NAMES: &[&str] = &["runc", "netns"];

/// Default directory for bundles and runc's state: on `/dev/shm`, a tmpfs on every Linux.
pub const DEFAULT_RUNTIME_DIR: &str = "/dev/shm/enclave-sandbox";

/// Runs sandboxes with `runc`.
#[derive(Debug, Clone)]
pub struct RuncRuntime {
    runc: PathBuf,
    runtime_dir: PathBuf,
    logs_dir: PathBuf,
    nets: Arc<Networks>,
}

/// Finds the `runc` binary in `PATH` and the sbin directories.
pub fn find_runc() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Runtime(
                "runc is not installed; install it (Debian: `apt-get install runc`) and try again"
                    .into(),
            )
        })
}

/// The file system type of the mount that holds `path` (from `/proc/self/mounts`).
fn fs_type(path: &Path) -> Result<String> {
    let mounts =
        fs::read_to_string("/proc/self/mounts").map_err(Error::io("reading /proc/self/mounts"))?;
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut f = line.split(' ');
        let (Some(_), Some(point), Some(typ)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let point = point.replace("\\040", " ");
        if path.starts_with(&point) && best.as_ref().is_none_or(|(len, _)| point.len() >= *len) {
            best = Some((point.len(), typ.to_string()));
        }
    }
    best.map(|(_, t)| t)
        .ok_or_else(|| Error::Runtime(format!("no mount holds {}", path.display())))
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(Error::io(format!("creating {}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(Error::io(format!("setting the mode of {}", path.display())))
}

fn chown(path: &Path, uid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).map_err(Error::io(format!(
        "changing the owner of {}",
        path.display()
    )))
}

fn write_file(path: &Path, mode: u32, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(Error::io(format!("creating {}", path.display())))?;
    f.write_all(bytes)
        .map_err(Error::io(format!("writing {}", path.display())))
}

impl RuncRuntime {
    /// A runtime keeping logs under `state_dir/logs` and bundles and runc's state under
    /// `runtime_dir`, which must be on a tmpfs (secrets live there). Project networks use the
    /// default plan ([`NetConfig::default`]: `10.213.0.0/16` in /24 subnets); see
    /// [`RuncRuntime::with_network`]. One runtime per `runtime_dir` at a time.
    pub fn new(state_dir: &Path, runtime_dir: &Path) -> Result<RuncRuntime> {
        let runc = find_runc()?;
        mkdir(runtime_dir, 0o711)?;
        let runtime_dir = runtime_dir
            .canonicalize()
            .map_err(Error::io(format!("resolving {}", runtime_dir.display())))?;
        let typ = fs_type(&runtime_dir)?;
        if typ != "tmpfs" && typ != "ramfs" {
            return Err(Error::Runtime(format!(
                "the sandbox runtime directory {} is on {typ}, not a tmpfs, and secrets must never reach a disk; choose a directory under /dev/shm",
                runtime_dir.display()
            )));
        }
        mkdir(&runtime_dir.join("runc"), 0o700)?;
        let logs_dir = state_dir.join("logs");
        mkdir(&logs_dir, 0o700)?;
        let nets = Arc::new(Networks::new(&runtime_dir, NetConfig::default())?);
        Ok(RuncRuntime {
            runc,
            runtime_dir,
            logs_dir,
            nets,
        })
    }

    /// The same runtime with another address plan for project networks. Call it before
    /// starting workloads: the plan of workloads already started is not changed.
    pub fn with_network(mut self, config: NetConfig) -> Result<RuncRuntime> {
        self.nets = Arc::new(Networks::new(&self.runtime_dir, config)?);
        Ok(self)
    }

    /// The project networks of this runtime (interface tag, names, leftovers).
    pub fn networks(&self) -> &Networks {
        &self.nets
    }

    /// Opens a TCP connection to `port` of the running sandbox `id` on its project network,
    /// from inside the sandbox's network namespace (see [`Workload::connect`]).
    pub fn connect(
        &self,
        id: &str,
        address: std::net::Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<std::net::TcpStream> {
        let netns = self.nets.netns_path(id);
        if RESERVED_NAMES.contains(&id) || id.contains('/') || !netns.exists() {
            return Err(Error::Runtime(format!(
                "sandbox {id} is not running on a project network"
            )));
        }
        connect_in_netns(&netns, std::net::SocketAddrV4::new(address, port), timeout)
    }

    /// runc's state directory (`runc --root`).
    pub fn runc_root(&self) -> PathBuf {
        self.runtime_dir.join("runc")
    }

    /// The bundle directory of sandbox `id`.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.runtime_dir.join(id)
    }

    /// The log file of sandbox `id`.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.logs_dir.join(format!("{id}.log"))
    }

    /// Overwrites the secret-bearing files of a bundle with zeros, then removes the bundle.
    fn remove_bundle(&self, id: &str) -> std::result::Result<(), String> {
        let bundle = self.bundle_dir(id);
        if !bundle.exists() {
            return Ok(());
        }
        let mut files = vec![bundle.join("config.json")];
        if let Ok(rd) = fs::read_dir(bundle.join("secrets")) {
            files.extend(rd.flatten().map(|e| e.path()));
        }
        for f in files {
            if let Ok(meta) = fs::metadata(&f) {
                if let Ok(mut file) = OpenOptions::new().write(true).open(&f) {
                    let zeros = vec![0u8; usize::try_from(meta.len()).unwrap_or(0)];
                    let _ = file.write_all(&zeros);
                }
            }
        }
        fs::remove_dir_all(&bundle).map_err(|e| format!("removing {}: {e}", bundle.display()))
    }

    /// Removes every sandbox this runtime's directories still hold — after a crash or a
    /// kill -9 of the server, before starting new ones: kills and deletes runc's containers,
    /// removes their cgroups and bundles, then this runtime's network namespace files, veths
    /// and bridges. Returns the sandbox ids removed.
    pub fn reap_orphans(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let out = self
            .runc_cmd()
            .args(["list", "-q"])
            .stderr(Stdio::null())
            .output()
            .map_err(Error::io("listing runc containers"))?;
        ids.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
        let rd = fs::read_dir(&self.runtime_dir)
            .map_err(Error::io(format!("reading {}", self.runtime_dir.display())))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !RESERVED_NAMES.contains(&name.as_str()) && !ids.contains(&name) {
                ids.push(name);
            }
        }
        let mut errors = Vec::new();
        for id in &ids {
            let _ = self
                .runc_cmd()
                .args(["kill", "--all", id, "KILL"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // A killed container takes a moment to stop; `delete --force` waits for it.
            let _ = self
                .runc_cmd()
                .args(["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            for dir in cgroup_dirs(id) {
                if let Err(e) = remove_cgroup_dir(&dir) {
                    errors.push(e);
                }
            }
            if let Err(e) = self.remove_bundle(id) {
                errors.push(e);
            }
        }
        // After the containers: a namespace is gone once no process holds it.
        if let Err(e) = self.nets.reap() {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            Ok(ids)
        } else {
            Err(Error::Runtime(format!(
                "leftover sandboxes were not fully removed ({}); remove what is named by hand",
                errors.join("; ")
            )))
        }
    }

    fn runc_cmd(&self) -> Command {
        let mut c = Command::new(&self.runc);
        c.arg("--root").arg(self.runc_root());
        c.stdin(Stdio::null());
        c
    }

    /// Writes the bundle of `spec`; on error the caller removes the bundle directory.
    fn write_bundle(
        &self,
        spec: &SandboxSpec,
        bundle: &Path,
        netns: Option<PathBuf>,
    ) -> Result<()> {
        let uid = spec.uid_range.host_base;
        chown(bundle, uid)?;
        let rootfs = bundle.join("rootfs");
        mkdir(&rootfs, 0o755)?;
        chown(&rootfs, uid)?;
        let etc = bundle.join("etc");
        mkdir(&etc, 0o755)?;
        for (name, text) in etc_files(&spec.project) {
            write_file(&etc.join(name), 0o644, text.as_bytes())?;
        }
        let files = spec.secret_files()?;
        let secrets = if files.is_empty() {
            None
        } else {
            let dir = bundle.join("secrets");
            mkdir(&dir, 0o700)?;
            for f in &files {
                let path = dir.join(&f.name);
                write_file(&path, 0o400, &f.value)?;
                chown(&path, uid)?;
            }
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o500))
                .map_err(Error::io("setting the mode of the secrets directory"))?;
            chown(&dir, uid)?;
            Some(dir)
        };
        if let Some(vol) = &spec.work_volume {
            if !vol.is_dir() {
                return Err(Error::Invalid(format!(
                    "the work volume {} is not a directory; create it first",
                    vol.display()
                )));
            }
            // The volume belongs to the project: its root is the sandbox's root.
            chown(vol, uid)?;
        }
        let paths = BundlePaths {
            rootfs,
            etc,
            secrets,
            image_dirs: IMAGE_DIRS
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .collect(),
            netns,
        };
        let oci = spec.to_oci(&paths)?;
        let mut json = serde_json::to_vec_pretty(&oci)
            .map_err(|e| Error::Spec(format!("encoding config.json: {e}")))?;
        let written = write_file(&bundle.join("config.json"), 0o600, &json);
        json.zeroize();
        written
    }
}

impl Runtime for RuncRuntime {
    fn log_path(&self, id: &str) -> PathBuf {
        RuncRuntime::log_path(self, id)
    }

    fn dial(
        &self,
        id: &str,
        address: std::net::Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<std::net::TcpStream> {
        self.connect(id, address, port, timeout)
    }

    fn start(&self, spec: SandboxSpec) -> Result<Box<dyn Workload>> {
        spec.check()?;
        let id = spec.id.clone();
        if RESERVED_NAMES.contains(&id.as_str()) {
            return Err(Error::Invalid(format!(
                "sandbox id {id} is a name of the runtime's own; pick another id"
            )));
        }
        let log_cap = spec.limits.log_bytes;
        let bundle = self.bundle_dir(&id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&bundle)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Invalid(format!(
                        "a sandbox with id {id} exists already; pick another id"
                    ))
                } else {
                    Error::io(format!("creating {}", bundle.display()))(e)
                }
            })?;
        let mut w = RuncWorkload {
            rt: self.clone(),
            id: id.clone(),
            child: None,
            exited: None,
            copiers: Vec::new(),
            deadline: Instant::now() + spec.limits.timeout,
            cancel: Arc::new(AtomicBool::new(false)),
            kill_reason: None,
            last_kill: None,
            outcome: None,
            cleaned: false,
            net: None,
        };
        // From here on, dropping `w` removes whatever was made.
        w.net = self.nets.attach(&id, spec.network)?;
        let netns = w.net.as_ref().map(|a| a.netns_path().to_path_buf());
        self.write_bundle(&spec, &bundle, netns)?;
        drop(spec);
        let log = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.log_path(&id))
            .map_err(Error::io("creating the log file"))?;
        let mut child = self
            .runc_cmd()
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io(format!("starting {}", self.runc.display())))?;
        let sink = Arc::new(Mutex::new(LogSink {
            file: log,
            left: log_cap,
            truncated: false,
        }));
        if let Some(out) = child.stdout.take() {
            w.copiers.push(copy_capped(out, sink.clone()));
        }
        if let Some(err) = child.stderr.take() {
            w.copiers.push(copy_capped(err, sink));
        }
        w.exited = Some(watch_exit(&child));
        w.child = Some(child);
        Ok(Box::new(w))
    }
}

struct LogSink {
    file: File,
    left: u64,
    truncated: bool,
}

/// Copies a pipe into the log until the cap, then drains it (so the workload never blocks).
fn copy_capped(mut from: impl Read + Send + 'static, sink: Arc<Mutex<LogSink>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let Ok(mut s) = sink.lock() else { break };
            let keep = usize::try_from(s.left).unwrap_or(usize::MAX).min(n);
            if keep > 0 {
                let _ = s.file.write_all(&buf[..keep]);
                s.left -= keep as u64;
            }
            if keep < n && !s.truncated {
                s.truncated = true;
                let _ = s
                    .file
                    .write_all(b"\n[enclave: log limit reached, the rest is dropped]\n");
            }
        }
    })
}

/// A channel that receives (or is closed) once `child` has exited. A thread blocks in
/// `waitid(WEXITED | WNOWAIT)`: it notices the exit at once but leaves the zombie to be reaped
/// through `child` (so its pid cannot be reused while `child` may still signal it).
fn watch_exit(child: &Child) -> Receiver<()> {
    let (tx, rx) = mpsc::sync_channel(1);
    let pid = i32::try_from(child.id()).map(Pid::from_raw);
    std::thread::spawn(move || {
        if let Ok(pid) = pid {
            // Returns on the exit, or with ECHILD once the child has been reaped elsewhere.
            while let Err(nix::errno::Errno::EINTR) =
                waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            {}
        }
        let _ = tx.send(());
    });
    rx
}

/// A sandbox run by runc.
pub struct RuncWorkload {
    rt: RuncRuntime,
    id: String,
    child: Option<Child>,
    /// Signalled (or closed) when `child` exits; see [`watch_exit`].
    exited: Option<Receiver<()>>,
    copiers: Vec<JoinHandle<()>>,
    deadline: Instant,
    cancel: Arc<AtomicBool>,
    kill_reason: Option<Outcome>,
    last_kill: Option<Instant>,
    outcome: Option<Outcome>,
    cleaned: bool,
    net: Option<Attachment>,
}

impl RuncWorkload {
    /// Sends SIGKILL to the container (again at most every 200 ms while it lives).
    fn kill_now(&mut self) {
        if self
            .last_kill
            .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_kill = Some(Instant::now());
        let _ = self
            .rt
            .runc_cmd()
            .args(["kill", "--all", &self.id, "KILL"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// One look at the process: kills it past its deadline or when cancelled; the outcome
    /// once it has ended.
    fn poll(&mut self) -> Result<Option<Outcome>> {
        if let Some(o) = self.outcome {
            return Ok(Some(o));
        }
        let Some(child) = self.child.as_mut() else {
            return Err(Error::Runtime(format!("sandbox {} was deleted", self.id)));
        };
        let exited = child.try_wait().map_err(Error::io("waiting for runc"))?;
        if let Some(status) = exited {
            for c in self.copiers.drain(..) {
                let _ = c.join();
            }
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            let outcome = self.kill_reason.unwrap_or(Outcome::Exited { code });
            self.outcome = Some(outcome);
            self.cleanup()?;
            return Ok(Some(outcome));
        }
        if self.kill_reason.is_none() {
            if self.cancel.load(Ordering::SeqCst) {
                self.kill_reason = Some(Outcome::Cancelled);
            } else if Instant::now() >= self.deadline {
                self.kill_reason = Some(Outcome::TimedOut);
            }
        }
        if self.kill_reason.is_some() {
            self.kill_now();
        }
        Ok(None)
    }

    /// Blocks for up to `step`, returning early when the runc child exits.
    fn sleep_until_exit(&mut self, step: Duration) {
        match self.exited.as_ref().map(|rx| rx.recv_timeout(step)) {
            Some(Ok(()) | Err(RecvTimeoutError::Timeout)) => {}
            // The watcher is gone (it has reported already): plain sleeping from here on.
            Some(Err(RecvTimeoutError::Disconnected)) => {
                self.exited = None;
                std::thread::sleep(step);
            }
            None => std::thread::sleep(step),
        }
    }

    /// Removes the container, its cgroups and its bundle (idempotent).
    fn cleanup(&mut self) -> Result<()> {
        if self.cleaned {
            return Ok(());
        }
        let mut errors = Vec::new();
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                // Still running: kill the container, then runc itself if it lingers.
                self.last_kill = None;
                self.kill_now();
                let until = Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                    self.sleep_until_exit(POLL);
                    self.kill_now();
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            for c in self.copiers.drain(..) {
                let _ = c.join();
            }
        }
        self.exited = None;
        // `runc run` removes its container when it ends normally; state left for the id
        // means it did not get to (killed, timed out, cancelled, or a crash of runc).
        if self.rt.runc_root().join(&self.id).exists() {
            let deleted = self
                .rt
                .runc_cmd()
                .args(["delete", "--force", &self.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Err(e) = deleted {
                errors.push(format!("runc delete: {e}"));
            }
        }
        for dir in cgroup_dirs(&self.id) {
            if let Err(e) = remove_cgroup_dir(&dir) {
                errors.push(e);
            }
        }
        if let Err(e) = self.rt.remove_bundle(&self.id) {
            errors.push(e);
        }
        if let Some(att) = self.net.as_mut() {
            if let Err(e) = self.rt.nets.detach(att) {
                errors.push(e.to_string());
            }
        }
        self.cleaned = true;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Runtime(format!(
                "sandbox {} was not fully removed ({}); remove what is named by hand",
                self.id,
                errors.join("; ")
            )))
        }
    }
}

/// Removes a cgroup directory if it exists. A killed sandbox's processes may take a moment
/// to leave it (after a crash, their parent — the dead server's `runc run` — reaps them late),
/// so a busy directory is tried again for up to two seconds.
fn remove_cgroup_dir(dir: &Path) -> std::result::Result<(), String> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(16) && Instant::now() < until => {
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(format!("removing {}: {e}", dir.display())),
        }
    }
}

/// The cgroup directories a sandbox may leave: `enclave/<id>` under each v1 controller, or
/// under the v2 root.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = vec![root.join("enclave").join(id)];
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path().join("enclave").join(id);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

impl Workload for RuncWorkload {
    fn id(&self) -> &str {
        &self.id
    }

    fn status(&mut self) -> Result<Status> {
        Ok(match self.poll()? {
            Some(o) => Status::Finished(o),
            None => Status::Running,
        })
    }

    fn wait(&mut self) -> Result<Outcome> {
        loop {
            if let Some(o) = self.poll()? {
                return Ok(o);
            }
            // Wakes at once when runc exits; otherwise looks at the cancel flag every POLL
            // and at the deadline when it comes.
            let step = if self.kill_reason.is_none() {
                POLL.min(self.deadline.saturating_duration_since(Instant::now()))
            } else {
                POLL
            };
            self.sleep_until_exit(step);
        }
    }

    fn canceller(&self) -> Canceller {
        Canceller(self.cancel.clone())
    }

    fn address(&self) -> Option<std::net::Ipv4Addr> {
        self.net.as_ref().map(Attachment::address)
    }

    fn connect(&self, port: u16, timeout: Duration) -> Result<std::net::TcpStream> {
        match &self.net {
            Some(att) if !self.cleaned => connect_in_netns(
                att.netns_path(),
                std::net::SocketAddrV4::new(att.address(), port),
                timeout,
            ),
            _ => Err(Error::Runtime(format!(
                "sandbox {} is not running on a project network",
                self.id
            ))),
        }
    }

    fn logs(&self) -> Result<Vec<u8>> {
        let path = self.rt.log_path(&self.id);
        fs::read(&path).map_err(Error::io(format!("reading {}", path.display())))
    }

    fn delete(&mut self) -> Result<()> {
        self.cleanup()
    }
}

impl Drop for RuncWorkload {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}
