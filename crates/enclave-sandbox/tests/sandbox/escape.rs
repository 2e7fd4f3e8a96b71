//! Escape attempts from inside real sandboxes, with the probe program `probe/escape.py`
//! (copied into the sandbox's work volume, run as `python3 /work/escape.py MODE`).
//!
//! Every probe check prints one JSON line `{check, blocked, detail}`; the tests require the
//! probe to exit 0, every line to say `blocked`, and the checks named here to be present, so a
//! probe that silently skips a check fails. Network safety: the sandboxes try only the host's
//! own addresses (listeners this test opens), the sandbox's own loopback and the metadata
//! address 169.254.169.254, which an isolated sandbox has no route to.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::{self, Env};
use enclave_sandbox::{Limits, NetworkMode, Outcome, Runtime, SandboxSpec, Status, UidRange};

fn env() -> Env {
    let e = common::env("escape", None);
    common::install_probe(&e);
    e
}

/// A sandbox running the probe. Each test uses its own project index, so that the
/// per-uid process limit of one test's sandbox never counts another's processes.
fn probe_spec(id: &str, project_index: u32, args: &[&str]) -> SandboxSpec {
    let mut command = vec!["python3".to_string(), "/work/escape.py".to_string()];
    command.extend(args.iter().map(|s| s.to_string()));
    SandboxSpec {
        id: format!("esc-{id}-{}", std::process::id()),
        project: "probe".into(),
        command,
        env: Vec::new(),
        cwd: "/work".into(),
        uid_range: UidRange::for_project_index(project_index).unwrap(),
        limits: Limits {
            timeout: Duration::from_secs(120),
            ..Limits::default()
        },
        work_volume: None,
        environment: None,
        secrets: Vec::new(),
        network: NetworkMode::Isolated,
    }
}

fn assert_clean(e: &Env, id: &str) {
    common::assert_runc_clean(e, &[id]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id), "mount left: {mounts}");
    // No process of the sandbox's host uid range survives.
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(status) = std::fs::read_to_string(p.path().join("status")) {
            if let Ok(cg) = std::fs::read_to_string(p.path().join("cgroup")) {
                assert!(
                    !cg.contains(&format!("enclave/{id}")),
                    "process {name} still in the sandbox's cgroup: {status}"
                );
            }
        }
    }
}

/// Runs to the end; returns (outcome, log) and checks that nothing is left behind.
fn run(e: &Env, s: SandboxSpec) -> (Outcome, String) {
    let id = s.id.clone();
    let mut w = e.rt.start(s).unwrap();
    let outcome = w.wait().unwrap();
    let log = String::from_utf8_lossy(&w.logs().unwrap()).into_owned();
    w.delete().unwrap();
    drop(w);
    assert_clean(e, &id);
    (outcome, log)
}

/// One JSON line of the probe.
#[derive(Debug)]
struct Check {
    name: String,
    blocked: bool,
    detail: String,
}

/// The check lines and the summary line of a probe's log; panics on any other line.
fn parse(log: &str) -> (Vec<Check>, serde_json::Value) {
    let mut checks = Vec::new();
    let mut summary = None;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a probe line ({err}): {line:?}\n{log}"));
        if v.get("summary").is_some() {
            summary = Some(v);
        } else if v.get("progress_mib").is_none() {
            checks.push(Check {
                name: v["check"].as_str().unwrap().to_string(),
                blocked: v["blocked"].as_bool().unwrap(),
                detail: v["detail"].as_str().unwrap().to_string(),
            });
        }
    }
    (
        checks,
        summary.unwrap_or_else(|| panic!("no summary: {log}")),
    )
}

/// Every check blocked, the summary agrees, and each expected check ran.
fn assert_all_blocked(log: &str, expected: &[&str]) -> Vec<Check> {
    let (checks, summary) = parse(log);
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.blocked).collect();
    assert!(failed.is_empty(), "not blocked: {failed:#?}\n{log}");
    assert_eq!(
        summary["checks"].as_u64(),
        Some(checks.len() as u64),
        "{log}"
    );
    assert_eq!(summary["not_blocked"], serde_json::json!([]), "{log}");
    let names: BTreeSet<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    for want in expected {
        assert!(names.contains(want), "check {want} did not run: {log}");
    }
    checks
}

/// The checks `escape.py local` must run (besides the ones per argument).
const LOCAL_CHECKS: &[&str] = &[
    "capabilities_empty",
    "exec_gains_no_capabilities",
    "setuid_no_effect",
    "setuid_mounts_nosuid",
    "raw_socket",
    "packet_socket",
    "mount_tmpfs",
    "mount_bind",
    "fsopen",
    "open_tree",
    "umount_proc",
    "umount_work",
    "pivot_root",
    "chroot",
    "unshare_user",
    "unshare_mount",
    "unshare_net",
    "unshare_pid",
    "unshare_ipc",
    "unshare_uts",
    "unshare_cgroup",
    "clone_newuser",
    "clone_newns",
    "clone3_newuser",
    "setns_user",
    "setns_mnt",
    "setns_net",
    "setns_pid",
    "setns_ipc",
    "setns_uts",
    "setns_cgroup",
    "outside_pid_invisible",
    "ptrace_attach_outside",
    "kill_outside",
    "process_vm_readv_outside",
    "abstract_socket_outside",
    "few_processes_visible",
    "read_etc_shadow",
    "read_forbidden",
    "write_proc_sys_kernel_hostname",
    "write_proc_sys_vm_drop_caches",
    "write_proc_sys_kernel_core_pattern",
    "write_proc_sysrq-trigger",
    "write_sys_kernel_uevent_helper",
    "write_proc_self_uid_map",
    "cgroup_files_read_only",
    "sys_files_read_only",
    "proc_sys_read_only",
    "create_in_usr",
    "create_in_usr_bin",
    "create_in_etc",
    "create_in_root",
    "write_usr_binary",
    "keyctl",
    "add_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "mknod_tmp",
    "mknod_dev_shm",
    "mknod_work",
    "sethostname",
    "clock_settime",
    "settimeofday",
    "reboot",
    "syslog_read",
    "capset",
    "raise_rlimit_nproc",
    "lower_oom_score_adj",
    "swapon",
    "acct",
    "host_devices_absent",
];

/// A host process outside every sandbox, killed when dropped.
struct Outside(std::process::Child);

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn local_escape_attempts_are_blocked() {
    let e = env();
    let base = e.dir.path();
    // Stand-ins for Enclave's data directory (root, 0700) and another project's volume
    // (owned by project 2's root uid, 0700), each with a file inside. Their host paths must
    // not be visible in the sandbox; copies placed inside the sandbox's own volume are
    // visible but must not be readable.
    let data_dir = base.join("enclave-data");
    let other = base.join("other-project-volume");
    let other_uid = UidRange::for_project_index(2).unwrap().host_base;
    for (dir, uid) in [
        (&data_dir, 0),
        (&other, other_uid),
        (&e.work.join("enclave-data"), 0),
        (&e.work.join("other-project"), other_uid),
    ] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("secret.db"), b"must-not-leak-4f2a").unwrap();
        std::fs::set_permissions(dir.join("secret.db"), PermissionsExt::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(dir.join("secret.db"), Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(dir, PermissionsExt::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(dir, Some(uid), Some(uid)).unwrap();
    }
    let outside = Outside(
        std::process::Command::new("sleep")
            .arg("120")
            .spawn()
            .unwrap(),
    );
    let outside_pid = outside.0.id().to_string();
    // A host service on an abstract unix socket (those belong to the network namespace).
    let abstract_name = format!("enclave-escape-test-{}", std::process::id());
    let abstract_listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap();
        let l = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    let forbidden = [
        data_dir.display().to_string(),
        data_dir.join("secret.db").display().to_string(),
        other.display().to_string(),
        "/work/enclave-data".to_string(),
        "/work/enclave-data/secret.db".to_string(),
        "/work/other-project".to_string(),
        "/work/other-project/secret.db".to_string(),
    ];
    let mut args = vec![
        "local",
        "--outside-pid",
        &outside_pid,
        "--abstract-socket",
        &abstract_name,
    ];
    for f in &forbidden {
        args.extend(["--forbid-read", f.as_str()]);
    }
    let mut s = probe_spec("local", 11, &args);
    s.work_volume = Some(e.work.clone());
    let (o, log) = run(&e, s);
    // Shown with --nocapture: the probe's findings, one line per check.
    eprintln!("{log}");
    let checks = assert_all_blocked(&log, LOCAL_CHECKS);
    assert_eq!(o, Outcome::Exited { code: 0 }, "{log}");
    // Each forbidden path was tried: hidden on the host paths, refused inside /work.
    let reads: Vec<&Check> = checks
        .iter()
        .filter(|c| c.name == "read_forbidden")
        .collect();
    assert_eq!(reads.len(), forbidden.len(), "{log}");
    for (c, path) in reads.iter().zip(&forbidden) {
        assert!(c.detail.contains(path.as_str()), "{c:?}");
        let want = if path.starts_with("/work/") {
            "EACCES"
        } else {
            "does not exist here"
        };
        assert!(c.detail.contains(want), "{path}: {c:?}");
    }
    assert!(!log.contains("must-not-leak"), "{log}");
    // The setuid check really ran setuid binaries (Debian has su and passwd).
    let setuid = checks
        .iter()
        .find(|c| c.name == "setuid_no_effect")
        .unwrap();
    assert!(setuid.detail.starts_with("ran "), "{setuid:?}");
    assert!(
        abstract_listener.accept().is_err(),
        "the host's abstract socket got a connection"
    );
    // The outside process lived through it all.
    let mut outside = outside;
    assert!(
        outside.0.try_wait().unwrap().is_none(),
        "the host process died"
    );
}

/// A loopback TCP echo server in this process; returns its address and a stop flag.
fn echo_server() -> (std::net::SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(mut c) = c {
                let mut buf = [0u8; 64];
                if let Ok(n) = c.read(&mut buf) {
                    let _ = c.write_all(&buf[..n]);
                }
            }
        }
    });
    (addr, stop)
}

fn echo_round_trip(addr: std::net::SocketAddr) -> Duration {
    let t = Instant::now();
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    t.elapsed()
}

/// `pids.current` of the sandbox's cgroup (v1 `pids` controller or v2), if it exists yet.
fn pids_current(id: &str) -> Option<u64> {
    [
        format!("/sys/fs/cgroup/pids/enclave/{id}/pids.current"),
        format!("/sys/fs/cgroup/enclave/{id}/pids.current"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| s.trim().parse().ok())
}

#[test]
fn fork_bomb_is_contained_and_the_host_stays_responsive() {
    let e = env();
    let mut s = probe_spec("forkbomb", 12, &["forkbomb"]);
    s.work_volume = Some(e.work.clone());
    s.limits.pids = 64;
    s.limits.timeout = Duration::from_secs(8);
    let id = s.id.clone();
    let (echo, stop) = echo_server();
    let mut w = e.rt.start(s).unwrap();
    let (mut max_pids, mut max_rtt, mut max_spawn, mut rounds) =
        (0u64, Duration::ZERO, Duration::ZERO, 0u32);
    let started = Instant::now();
    while matches!(w.status().unwrap(), Status::Running) {
        if let Some(n) = pids_current(&id) {
            max_pids = max_pids.max(n);
        }
        // The host can still start processes and answer on loopback during the bomb.
        let t = Instant::now();
        let st = std::process::Command::new("/bin/true").status().unwrap();
        assert!(st.success());
        max_spawn = max_spawn.max(t.elapsed());
        max_rtt = max_rtt.max(echo_round_trip(echo));
        rounds += 1;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bomb was not stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let outcome = w.wait().unwrap();
    let log = String::from_utf8_lossy(&w.logs().unwrap()).into_owned();
    w.delete().unwrap();
    drop(w);
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(echo);
    assert_clean(&e, &id);
    assert_eq!(outcome, Outcome::TimedOut, "{log}");
    // Killed at its time limit: no summary line, only the report of the first refusal.
    let (checks, _) = parse(&format!("{log}{{\"summary\": \"killed\"}}\n"));
    let refused = checks
        .iter()
        .find(|c| c.name == "forkbomb_refused")
        .unwrap_or_else(|| panic!("the bomb never hit the limit: {log}"));
    assert!(refused.blocked, "{refused:?}");
    eprintln!(
        "fork bomb: {}; pids.current at most {max_pids}; {rounds} rounds, spawn at most {max_spawn:?}, loopback echo at most {max_rtt:?}",
        refused.detail
    );
    assert!(rounds >= 10, "only {rounds} rounds during the bomb");
    assert!(
        max_pids > 0 && max_pids <= 64,
        "pids.current reached {max_pids}"
    );
    assert!(
        max_spawn < Duration::from_secs(1),
        "spawning took {max_spawn:?}"
    );
    assert!(
        max_rtt < Duration::from_secs(1),
        "loopback echo took {max_rtt:?}"
    );
}

#[test]
fn memory_hog_is_killed_at_its_limit() {
    let e = env();
    let mut s = probe_spec("memhog", 13, &["memhog", "--max-mib", "1024"]);
    s.work_volume = Some(e.work.clone());
    s.limits.memory_bytes = 64 << 20;
    s.limits.tmp_bytes = 8 << 20;
    let (o, log) = run(&e, s);
    // The kernel's OOM killer (SIGKILL: 128 + 9) ends python, the sandbox's init.
    assert_eq!(o, Outcome::Exited { code: 137 }, "{log}");
    let reached = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["progress_mib"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(reached >= 8, "it never allocated: {log}");
    assert!(
        reached <= 64,
        "it held {reached} MiB under a 64 MiB limit: {log}"
    );
    assert!(!log.contains("summary"), "the hog was not killed: {log}");
}

/// The host's own non-loopback addresses (IPv4 from `/proc/net/fib_trie`, global IPv6 from
/// `/proc/net/if_inet6`).
fn host_addresses() -> Vec<IpAddr> {
    let mut out = BTreeSet::new();
    let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let lines: Vec<&str> = trie.lines().collect();
    for pair in lines.windows(2) {
        if pair[1].trim() == "/32 host LOCAL" {
            if let Some(a) = pair[0].trim().strip_prefix("|-- ") {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    if !ip.is_loopback() {
                        out.insert(ip);
                    }
                }
            }
        }
    }
    let v6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    for line in v6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Fields: address, ifindex, prefix length, scope (0 = global), flags, name.
        if f.len() == 6 && f[3] == "00" && f[0].len() == 32 {
            let groups: Vec<String> = (0..8).map(|i| f[0][i * 4..i * 4 + 4].to_string()).collect();
            if let Ok(ip) = groups.join(":").parse::<IpAddr>() {
                if !ip.is_loopback() {
                    out.insert(ip);
                }
            }
        }
    }
    out.into_iter().collect()
}

#[test]
fn isolated_network_reaches_nothing() {
    let e = env();
    // Listeners on every host address, TCP and UDP on the same port: dual-stack `[::]`
    // (Linux's default, IPv4 included) where IPv6 is on, so that a reachable IPv6 target
    // would connect rather than be refused; `0.0.0.0` where it is off.
    let (tcp, udp) = (0..20)
        .find_map(|_| {
            for any in ["::", "0.0.0.0"] {
                let Ok(t) = TcpListener::bind((any, 0)) else {
                    continue;
                };
                let port = t.local_addr().ok()?.port();
                let u = UdpSocket::bind((any, port)).ok()?;
                return Some((t, u));
            }
            None
        })
        .expect("a free TCP+UDP port");
    let dual_stack = tcp.local_addr().unwrap().is_ipv6();
    tcp.set_nonblocking(true).unwrap();
    udp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let mut targets: Vec<String> = host_addresses()
        .into_iter()
        .filter(|ip| ip.is_ipv4() || dual_stack)
        .map(|ip| match ip {
            IpAddr::V4(a) => format!("{a}:{port}"),
            IpAddr::V6(a) => format!("[{a}]:{port}"),
        })
        .collect();
    // The host's loopback is not the sandbox's: the listener is on it, and must stay silent.
    targets.push(format!("127.0.0.1:{port}"));
    // The metadata address: an isolated sandbox has no route to it.
    targets.push("169.254.169.254:80".to_string());
    let mut args = vec!["net"];
    args.extend(targets.iter().map(String::as_str));
    let mut s = probe_spec("net", 14, &args);
    s.work_volume = Some(e.work.clone());
    let (o, log) = run(&e, s);
    eprintln!("{log}");
    let mut expected = vec!["resolv_conf_empty".to_string(), "dns_lookup".to_string()];
    for t in &targets {
        let t = t.replace(['[', ']'], "");
        expected.push(format!("tcp_connect {t}"));
        expected.push(format!("udp_exchange {t}"));
    }
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_all_blocked(&log, &expected);
    assert_eq!(o, Outcome::Exited { code: 0 }, "{log}");
    assert!(
        tcp.accept().is_err(),
        "the host TCP listener got a connection"
    );
    let mut buf = [0u8; 64];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "the host UDP socket got a datagram"
    );
}

#[test]
fn probe_is_not_vacuous_outside_a_sandbox() {
    // The probe itself must report "not blocked" where nothing blocks: run a few of its
    // harmless checks on the host (as root) and expect failures. `net` against a listener
    // on loopback must connect.
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("escape.py");
    std::fs::write(&probe, common::PROBE).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let abstract_name = format!("enclave-escape-host-{}", std::process::id());
    let _abstract = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap();
        std::os::unix::net::UnixListener::bind_addr(&addr).unwrap()
    };
    let out = std::process::Command::new("python3")
        .arg(&probe)
        .arg("net")
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{log}");
    let (checks, _) = parse(&log);
    let tcp = checks
        .iter()
        .find(|c| c.name == format!("tcp_connect 127.0.0.1:{port}"))
        .unwrap();
    assert!(!tcp.blocked, "{tcp:?}");
    let script = format!(
        "import sys; sys.path.insert(0, {dir:?}); import escape as e\n\
         e.run_check('capabilities_empty', e.check_caps)\n\
         e.run_check('raw_socket', e.check_socket, 2, 3, 1, 'raw')\n\
         e.run_check('bpf', e.check_bpf)\n\
         e.run_check('reboot', e.check_reboot)\n\
         e.run_check('read_etc_shadow', e.check_read_denied, '/etc/shadow')\n\
         e.run_check('abstract', e.check_abstract_socket, {name:?})\n\
         e.run_check('broken', e.check_open_write, None)\n\
         e.run_check('unshare_user', e.check_unshare, e.CLONE_NEWUSER)\n",
        dir = dir.path().display().to_string(),
        name = abstract_name,
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    let (checks, _) = parse(&format!("{log}{{\"summary\": \"host\"}}\n"));
    assert_eq!(checks.len(), 8, "{log}");
    for c in &checks {
        assert!(!c.blocked, "blocked on the host: {c:?}");
    }
    // Not blocked for the right reason: each attempt worked (a probe error is only "broken").
    for c in checks.iter().filter(|c| c.name != "broken") {
        assert!(!c.detail.contains("probe error"), "{c:?}");
    }
    let abs = checks.iter().find(|c| c.name == "abstract").unwrap();
    assert!(abs.detail.starts_with("connected"), "{abs:?}");
    let broken = checks.iter().find(|c| c.name == "broken").unwrap();
    assert!(broken.detail.starts_with("probe error"), "{broken:?}");
}
