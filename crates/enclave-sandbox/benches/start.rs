//! Sandbox start-to-exit latency of `/bin/true`, against two anchors measured in the same
//! run, in interleaved iterations (so background load hits every side alike):
//!
//! * `fork/exec`: `std::process::Command::new("/bin/true").status()`;
//! * `runc`: `runc run` of a hand-written minimal bundle (rootfs: read-only binds of the host's
//!   `/usr`, `/bin`, `/lib*`; `/proc`; own mount, PID, IPC, UTS and network namespaces; a
//!   cgroup; no user namespace, no seccomp, no capabilities dropped) — plain runc;
//! * `runc+userns`: the same bundle with a user namespace (uid mapping), closer to what
//!   Enclave asks of runc;
//! * `runc, Enclave's config`: `runc run` of a copy of the bundle Enclave writes (taken from
//!   a sandbox started for the purpose), so that the driver's own share shows;
//! * `enclave`: `RuncRuntime::start` with `Limits::default()` (user namespace, seccomp, no
//!   capabilities, masked paths, generated `/etc`, cgroup limits), `wait`, `delete`.
//!
//! Each side runs `START_N` (default 200) times after 10 unmeasured runs; the figures are
//! p50, p99 and mean. Then a burst: `BURST` (default 50) Enclave sandboxes started at once
//! from as many threads; it reports the wall time, sandboxes per second, errors (a start,
//! wait or delete error, or an exit code other than 0) and the slowest start-to-exit. Last,
//! a leak check: no runc container, cgroup, bundle directory or mount of the bench is left.
//!
//! Root and runc are needed. `cargo bench -p enclave-sandbox --bench start` (or
//! `scripts/bench-sandbox.sh`). A JSON summary is printed last and written to `$BENCH_OUT`
//! when set. The process exits 1 when the burst had errors or the leak check failed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use enclave_sandbox::runc::{find_runc, RuncRuntime};
use enclave_sandbox::{Limits, NetworkMode, Outcome, Runtime, SandboxSpec, UidRange};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Host uid of root in the `runc + userns` anchor (an unused range).
const USERNS_HOST_ID: u32 = 3_000_000;

/// A hand-written bundle for plain runc.
struct PlainBundle {
    dir: PathBuf,
}

impl PlainBundle {
    fn new(base: &Path, name: &str, userns: bool) -> PlainBundle {
        let dir = base.join(name);
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let mut mounts = vec![serde_json::json!({
            "destination": "/proc", "type": "proc", "source": "proc",
            "options": ["nosuid", "noexec", "nodev"]
        })];
        // Mount points made beforehand: the root is read-only, and with a user namespace
        // the container's root could not create them.
        std::fs::create_dir_all(rootfs.join("proc")).unwrap();
        std::fs::create_dir_all(rootfs.join("dev")).unwrap();
        if userns {
            // runc sets up /dev as the container's root, as Enclave's bundles are owned.
            std::os::unix::fs::chown(&rootfs, Some(USERNS_HOST_ID), Some(USERNS_HOST_ID)).unwrap();
            std::os::unix::fs::chown(
                rootfs.join("dev"),
                Some(USERNS_HOST_ID),
                Some(USERNS_HOST_ID),
            )
            .unwrap();
        }
        for d in ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"] {
            if Path::new(d).exists() {
                std::fs::create_dir_all(rootfs.join(&d[1..])).unwrap();
                mounts.push(serde_json::json!({
                    "destination": d, "type": "bind", "source": d,
                    "options": ["rbind", "ro", "nosuid", "nodev"]
                }));
            }
        }
        let mut namespaces = vec![
            serde_json::json!({"type": "pid"}),
            serde_json::json!({"type": "ipc"}),
            serde_json::json!({"type": "uts"}),
            serde_json::json!({"type": "mount"}),
            serde_json::json!({"type": "network"}),
        ];
        let mut linux = serde_json::json!({
            "cgroupsPath": format!("/enclave-bench-{}/{name}", std::process::id()),
            "rootfsPropagation": "private",
        });
        if userns {
            namespaces.push(serde_json::json!({"type": "user"}));
            let map =
                serde_json::json!([{"containerID": 0, "hostID": USERNS_HOST_ID, "size": 65536}]);
            linux["uidMappings"] = map.clone();
            linux["gidMappings"] = map;
        }
        linux["namespaces"] = serde_json::Value::Array(namespaces);
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/true"],
                "env": ["PATH=/usr/bin:/bin"],
                "cwd": "/",
                "noNewPrivileges": true
            },
            "root": {"path": rootfs, "readonly": true},
            "hostname": "bench",
            "mounts": mounts,
            "linux": linux,
        });
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        PlainBundle { dir }
    }
}

/// A copy of the bundle Enclave writes (its `config.json`: user namespace, seccomp, masked
/// paths, generated `/etc`, cgroup limits), run by `runc run` directly: the difference to
/// `enclave` is the driver's own work (bundle writing, waiting, cleanup).
fn enclave_config_bundle(rt: &RuncRuntime, base: &Path) -> PathBuf {
    let mut spec = true_spec(&format!("bench-{}-copy", std::process::id()), 40);
    spec.command = vec!["/bin/sleep".into(), "30".into()];
    let id = spec.id.clone();
    let mut w = rt.start(spec).unwrap();
    let src = rt.bundle_dir(&id);
    let dir = base.join("enclave-config");
    let (rootfs, etc) = (dir.join("rootfs"), dir.join("etc"));
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    let uid = UidRange::for_project_index(40).unwrap().host_base;
    std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    std::os::unix::fs::chown(&rootfs, Some(uid), Some(uid)).unwrap();
    for f in std::fs::read_dir(src.join("etc")).unwrap().flatten() {
        std::fs::copy(f.path(), etc.join(f.file_name())).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    w.delete().unwrap();
    let src_etc = src.join("etc").display().to_string();
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    config["root"]["path"] = serde_json::json!(rootfs);
    for m in config["mounts"].as_array_mut().unwrap() {
        if m["source"] == serde_json::json!(src_etc) {
            m["source"] = serde_json::json!(etc);
        }
    }
    config["linux"]["cgroupsPath"] = serde_json::json!(format!(
        "/enclave-bench-{}/enclave-config",
        std::process::id()
    ));
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    dir
}

struct Sides {
    runc: PathBuf,
    plain_root: PathBuf,
    plain: PlainBundle,
    plain_userns: PlainBundle,
    enclave_config: PathBuf,
    rt: RuncRuntime,
    n: u64,
}

impl Sides {
    fn fork_exec(&mut self) -> Duration {
        let t = Instant::now();
        let st = Command::new("/bin/true").status().unwrap();
        let d = t.elapsed();
        assert!(st.success());
        d
    }

    fn runc_run(&mut self, which: u8) -> Duration {
        self.n += 1;
        let id = format!("bench-plain-{}-{}", std::process::id(), self.n);
        let bundle = match which {
            0 => &self.plain.dir,
            1 => &self.plain_userns.dir,
            _ => &self.enclave_config,
        };
        let t = Instant::now();
        let out = Command::new(&self.runc)
            .arg("--root")
            .arg(&self.plain_root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let d = t.elapsed();
        assert!(
            out.status.success(),
            "runc run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        d
    }

    fn enclave(&mut self) -> Duration {
        self.n += 1;
        let spec = true_spec(&format!("bench-{}-{}", std::process::id(), self.n), 40);
        let t = Instant::now();
        let mut w = self.rt.start(spec).unwrap();
        let o = w.wait().unwrap();
        let d = t.elapsed();
        assert_eq!(o, Outcome::Exited { code: 0 });
        w.delete().unwrap();
        d
    }
}

fn true_spec(id: &str, project_index: u32) -> SandboxSpec {
    SandboxSpec {
        id: id.to_string(),
        project: "bench".into(),
        command: vec!["/bin/true".into()],
        env: Vec::new(),
        cwd: "/".into(),
        uid_range: UidRange::for_project_index(project_index).unwrap(),
        limits: Limits::default(),
        work_volume: None,
        environment: None,
        secrets: Vec::new(),
        network: NetworkMode::Isolated,
    }
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
    max: f64,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        ms(v[i])
    };
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        mean: v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64,
        max: ms(*v.last().unwrap()),
    }
}

struct Burst {
    n: usize,
    wall_ms: f64,
    errors: Vec<String>,
    slowest_ms: f64,
}

fn burst(rt: &RuncRuntime, n: usize) -> Burst {
    let barrier = Arc::new(Barrier::new(n + 1));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let rt = rt.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || -> Result<Duration, String> {
                // Ten projects, as a busy server would see.
                let spec = true_spec(
                    &format!("bench-burst-{}-{i}", std::process::id()),
                    41 + (i as u32 % 10),
                );
                barrier.wait();
                let t = Instant::now();
                let mut w = rt.start(spec).map_err(|e| format!("start: {e}"))?;
                let o = w.wait().map_err(|e| format!("wait: {e}"))?;
                let d = t.elapsed();
                w.delete().map_err(|e| format!("delete: {e}"))?;
                if o != (Outcome::Exited { code: 0 }) {
                    let log = w.logs().unwrap_or_default();
                    return Err(format!(
                        "outcome {o:?}: {}",
                        String::from_utf8_lossy(&log).trim()
                    ));
                }
                Ok(d)
            })
        })
        .collect();
    // The clock starts before the release: with more threads than cores, this thread may
    // run again only after the sandboxes did.
    let t = Instant::now();
    barrier.wait();
    let mut errors = Vec::new();
    let mut slowest = Duration::ZERO;
    for h in handles {
        match h.join() {
            Ok(Ok(d)) => slowest = slowest.max(d),
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("thread panicked".into()),
        }
    }
    Burst {
        n,
        wall_ms: t.elapsed().as_secs_f64() * 1e3,
        errors,
        slowest_ms: slowest.as_secs_f64() * 1e3,
    }
}

/// What the bench left behind (empty when clean).
fn leaks(runc: &Path, roots: &[&Path], runtime_dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for root in roots {
        let list = Command::new(runc)
            .arg("--root")
            .arg(root)
            .args(["list", "-q"])
            .output()
            .unwrap();
        let ids = String::from_utf8_lossy(&list.stdout).trim().to_string();
        if !ids.is_empty() {
            out.push(format!("runc containers in {}: {ids}", root.display()));
        }
    }
    if let Ok(rd) = std::fs::read_dir(runtime_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "netns" {
                // The runtime's directory of network namespace files: must be empty.
                for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                    out.push(format!("network namespace left: {}", f.path().display()));
                }
            } else if name != "runc" && !keep.contains(&name.as_str()) {
                out.push(format!("bundle left: {}", e.path().display()));
            }
        }
    }
    let tag = format!("bench-{}", std::process::id());
    let plain_tag = format!("enclave-bench-{}", std::process::id());
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for ctrl in rd.flatten() {
            let p = ctrl.path();
            if let Ok(rd) = std::fs::read_dir(p.join("enclave")) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&tag) {
                        out.push(format!("cgroup left: {}", e.path().display()));
                    }
                }
            }
            // Plain runc's containers use fixed cgroup names under this parent.
            if let Ok(rd) = std::fs::read_dir(p.join(&plain_tag)) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        out.push(format!("cgroup left: {}", e.path().display()));
                    }
                }
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        if line.contains(&tag) || line.contains(&runtime_dir.display().to_string()) {
            out.push(format!("mount left: {line}"));
        }
    }
    out
}

/// Removes the anchors' cgroups (`enclave-bench-PID/*` and the parent, under each v1
/// controller or the v2 root); they are empty once their containers are gone.
fn remove_plain_cgroups() {
    let tag = format!("enclave-bench-{}", std::process::id());
    let root = Path::new("/sys/fs/cgroup");
    let mut parents = vec![root.join(&tag)];
    if let Ok(rd) = std::fs::read_dir(root) {
        parents.extend(rd.flatten().map(|c| c.path().join(&tag)));
    }
    for parent in parents {
        if let Ok(rd) = std::fs::read_dir(&parent) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&parent);
    }
}

/// Removes what the bench made even when it panics half-way: the anchors' containers (plain
/// runc's root), their parent cgroups and the runtime directory. Enclave's own sandboxes are
/// removed by their handles when dropped.
struct Cleanup {
    runc: PathBuf,
    plain_root: PathBuf,
    runtime_dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let list = Command::new(&self.runc)
            .arg("--root")
            .arg(&self.plain_root)
            .args(["list", "-q"])
            .output();
        if let Ok(list) = list {
            for id in String::from_utf8_lossy(&list.stdout).lines() {
                let _ = Command::new(&self.runc)
                    .arg("--root")
                    .arg(&self.plain_root)
                    .args(["delete", "--force", id])
                    .status();
            }
        }
        remove_plain_cgroups();
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

fn main() {
    let n = env_usize("START_N", 200).max(1);
    let burst_n = env_usize("BURST", 50);
    let warm = 10;
    let runc = find_runc().expect("runc is required: apt-get install runc");
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), PermissionsExt::from_mode(0o711)).unwrap();
    let runtime_dir = PathBuf::from(format!("/dev/shm/enclave-bench-{}", std::process::id()));
    let plain_root = runtime_dir.join("plain-runc");
    let _cleanup = Cleanup {
        runc: runc.clone(),
        plain_root: plain_root.clone(),
        runtime_dir: runtime_dir.clone(),
    };
    let rt = RuncRuntime::new(&base.path().join("state"), &runtime_dir).expect("run as root");
    let plain_dir = runtime_dir.join("plain-bundles");
    let mut s = Sides {
        plain: PlainBundle::new(&plain_dir, "plain", false),
        plain_userns: PlainBundle::new(&plain_dir, "userns", true),
        enclave_config: enclave_config_bundle(&rt, &plain_dir),
        runc: runc.clone(),
        plain_root: plain_root.clone(),
        rt,
        n: 0,
    };
    let version = Command::new(&runc)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    eprintln!("{version}; {n} starts per side after {warm} warm-up runs, interleaved");
    for _ in 0..warm {
        s.fork_exec();
        s.runc_run(0);
        s.runc_run(1);
        s.runc_run(2);
        s.enclave();
    }
    let mut times: [Vec<Duration>; 5] = Default::default();
    for i in 0..n {
        // Rotate the order so that no side always follows the same one.
        for k in 0..5 {
            let side = (i + k) % 5;
            times[side].push(match side {
                0 => s.fork_exec(),
                1 => s.runc_run(0),
                2 => s.runc_run(1),
                3 => s.runc_run(2),
                _ => s.enclave(),
            });
        }
    }
    let [fe, rp, ru, rc, en] = times;
    let rows = [
        ("fork/exec", stats(fe)),
        ("runc (plain bundle)", stats(rp)),
        ("runc + userns", stats(ru)),
        ("runc, Enclave's config", stats(rc)),
        ("enclave", stats(en)),
    ];
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9}",
        "side", "p50 ms", "p99 ms", "mean ms", "max ms"
    );
    for (name, st) in &rows {
        println!(
            "{name:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            st.p50, st.p99, st.mean, st.max
        );
    }
    let (fork, plain, userns, config, encl) =
        (rows[0].1, rows[1].1, rows[2].1, rows[3].1, rows[4].1);
    let ratio = |a: f64, b: f64| a / b;
    println!(
        "enclave / plain runc: p50 {:.2}x, p99 {:.2}x; enclave / runc+userns: p50 {:.2}x, p99 {:.2}x; enclave / fork-exec: p50 {:.1}x, p99 {:.1}x",
        ratio(encl.p50, plain.p50),
        ratio(encl.p99, plain.p99),
        ratio(encl.p50, userns.p50),
        ratio(encl.p99, userns.p99),
        ratio(encl.p50, fork.p50),
        ratio(encl.p99, fork.p99),
    );
    println!(
        "of Enclave's p50: runc with its config {:.1} ms, the driver (bundle, wait, cleanup) {:.1} ms",
        config.p50,
        encl.p50 - config.p50
    );
    let b = burst(&s.rt, burst_n);
    let rate = b.n as f64 / (b.wall_ms / 1e3);
    println!(
        "burst: {} sandboxes at once in {:.0} ms = {:.1} sandboxes/s, slowest {:.0} ms, {} errors",
        b.n,
        b.wall_ms,
        rate,
        b.slowest_ms,
        b.errors.len()
    );
    for e in b.errors.iter().take(5) {
        println!("  error: {e}");
    }
    let rt_root = s.rt.runc_root();
    let left = leaks(
        &runc,
        &[&rt_root, &plain_root],
        &runtime_dir,
        &["plain-runc", "plain-bundles"],
    );
    println!(
        "leak check: {}",
        if left.is_empty() {
            "nothing left (runc containers, cgroups, bundles, mounts)".to_string()
        } else {
            left.join("; ")
        }
    );
    let summary = serde_json::json!({
        "bench": "sandbox-start",
        "runc": version,
        "n": n,
        "ms": {
            "fork_exec": {"p50": fork.p50, "p99": fork.p99, "mean": fork.mean, "max": fork.max},
            "runc_plain": {"p50": plain.p50, "p99": plain.p99, "mean": plain.mean, "max": plain.max},
            "runc_userns": {"p50": userns.p50, "p99": userns.p99, "mean": userns.mean, "max": userns.max},
            "runc_enclave_config": {"p50": config.p50, "p99": config.p99, "mean": config.mean, "max": config.max},
            "enclave": {"p50": encl.p50, "p99": encl.p99, "mean": encl.mean, "max": encl.max},
        },
        "ratio": {
            "enclave_over_runc_p50": encl.p50 / plain.p50,
            "enclave_over_runc_p99": encl.p99 / plain.p99,
            "enclave_over_runc_userns_p50": encl.p50 / userns.p50,
            "enclave_over_fork_exec_p50": encl.p50 / fork.p50,
            "enclave_over_fork_exec_p99": encl.p99 / fork.p99,
        },
        "burst": {"n": b.n, "wall_ms": b.wall_ms, "per_s": rate, "slowest_ms": b.slowest_ms,
                  "errors": b.errors.len()},
        "leaks": left,
        "targets": {"p50_ms": 50, "p99_ms": 150, "burst_errors": 0},
    });
    println!("{summary}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
    }
    let ok = b.errors.is_empty() && left.is_empty();
    drop(s);
    drop(_cleanup);
    if !ok {
        std::process::exit(1);
    }
}
