//! The harness the sandbox tests share: a root and runc check, a private directory that the
//! sandbox's unprivileged uid can pass through, a tmpfs runtime directory of its own, and the
//! checks that nothing is left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use enclave_sandbox::net::NetConfig;
use enclave_sandbox::runc::{cgroup_dirs, find_runc, RuncRuntime};

/// One test's runtime and directories.
pub struct Env {
    /// The test's directory (0711).
    pub dir: tempfile::TempDir,
    /// The runtime's state directory (logs).
    pub state: PathBuf,
    /// The runtime's tmpfs directory (bundles, runc state, namespace files).
    pub runtime_dir: PathBuf,
    /// A directory to mount as a work volume.
    pub work: PathBuf,
    /// The runtime.
    pub rt: RuncRuntime,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Whatever a failed test left: containers, namespaces, veths, bridges.
        let _ = self.rt.reap_orphans();
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh runtime (with the network plan `config`, or the default one); `kind` names its
/// runtime directory. Fails unless run as root with runc installed.
pub fn env(kind: &str, config: Option<NetConfig>) -> Env {
    find_runc().expect("runc is required for these tests: apt-get install runc");
    assert!(
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false),
        "these tests start real sandboxes and must run as root"
    );
    let dir = tempfile::tempdir().unwrap();
    // Bind sources must be reachable by the sandbox's (unprivileged) host uid.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let state = dir.path().join("state");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let runtime_dir = PathBuf::from(format!(
        "/dev/shm/enclave-sandbox-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let mut rt = RuncRuntime::new(&state, &runtime_dir).unwrap();
    if let Some(c) = config {
        rt = rt.with_network(c).unwrap();
    }
    Env {
        dir,
        state,
        runtime_dir,
        work,
        rt,
    }
}

/// The escape probe program.
pub const PROBE: &str = include_str!("../../probe/escape.py");

/// Puts the escape probe in the work volume, readable by the sandbox (`/work/escape.py`).
pub fn install_probe(e: &Env) {
    let probe = e.work.join("escape.py");
    std::fs::write(&probe, PROBE).unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// No runc container of this runtime, and no cgroup or bundle of `ids`, is left.
pub fn assert_runc_clean(e: &Env, ids: &[&str]) {
    let out = std::process::Command::new(find_runc().unwrap())
        .arg("--root")
        .arg(e.rt.runc_root())
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "runc containers left: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for id in ids {
        for d in cgroup_dirs(id) {
            assert!(!d.exists(), "cgroup left: {}", d.display());
        }
        assert!(!e.rt.bundle_dir(id).exists(), "bundle left: {id}");
    }
}
