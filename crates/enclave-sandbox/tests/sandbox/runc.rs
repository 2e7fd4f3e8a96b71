//! Real sandboxes through runc (the tests run as root, as in CI; runc must be installed).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::common::{self, Env};
use enclave_core::secrets::{InjectionTarget, ResolvedSecret};
use enclave_sandbox::runc::{find_runc, RuncRuntime};
use enclave_sandbox::{Limits, NetworkMode, Outcome, Runtime, SandboxSpec, UidRange};

fn env() -> Env {
    common::env("test", None)
}

fn spec(id: &str, cmd: &str) -> SandboxSpec {
    SandboxSpec {
        id: format!("{id}-{}", std::process::id()),
        project: "demo".into(),
        command: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
        env: vec![("GREETING".into(), "hello".into())],
        cwd: "/".into(),
        uid_range: UidRange::for_project_index(1).unwrap(),
        limits: Limits {
            timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        work_volume: None,
        environment: None,
        secrets: Vec::new(),
        network: NetworkMode::Isolated,
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

fn assert_clean(e: &Env, id: &str) {
    common::assert_runc_clean(e, &[id]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id), "mount left: {mounts}");
}

fn exited(code: i32) -> Outcome {
    Outcome::Exited { code }
}

#[test]
fn runs_a_command_and_returns_output_and_exit_code() {
    let e = env();
    let (o, log) = run(
        &e,
        spec("basic", "echo out $GREETING; echo err >&2; exit 7"),
    );
    assert_eq!(o, exited(7), "{log}");
    assert!(log.contains("out hello"), "{log}");
    assert!(log.contains("err"), "{log}");
    assert!(e.state.join("logs").exists());
}

#[test]
fn root_inside_is_an_unprivileged_uid_outside() {
    let e = env();
    let mut s = spec(
        "uid",
        "id -u > /work/who; touch /work/made; cat /proc/self/uid_map",
    );
    s.work_volume = Some(e.work.clone());
    let (o, log) = run(&e, s);
    assert_eq!(o, exited(0), "{log}");
    assert_eq!(std::fs::read_to_string(e.work.join("who")).unwrap(), "0\n");
    let meta = std::fs::metadata(e.work.join("made")).unwrap();
    assert_eq!(meta.uid(), 100_000 + 65_536, "{log}");
    assert_eq!(meta.gid(), 100_000 + 65_536);
    assert!(log.contains("165536"), "{log}");
}

#[test]
fn no_capabilities_and_no_new_privs() {
    let e = env();
    let (o, log) = run(
        &e,
        spec(
            "caps",
            "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status",
        ),
    );
    assert_eq!(o, exited(0), "{log}");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            log.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} not empty: {log}"
        );
    }
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    assert!(log.contains("Seccomp:\t2"), "{log}");
}

#[test]
fn system_is_read_only_and_proc_masked() {
    let e = env();
    let (o, log) = run(
        &e,
        spec(
            "ro",
            "touch /usr/x 2>/dev/null && echo USR-WRITABLE; \
             touch /x 2>/dev/null && echo ROOT-WRITABLE; \
             echo 1 > /proc/sys/kernel/hostname 2>/dev/null && echo PROCSYS-WRITABLE; \
             for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do \
               [ -e $p ] && echo \"masked $p=$(wc -c < $p)\"; done; \
             for d in /proc/acpi /proc/scsi /sys/firmware; do \
               [ -d $d ] && echo \"$d has $(ls -A $d | wc -l)\"; done; \
             test -e /etc/shadow && echo SHADOW; \
             ls /dev | tr '\\n' ' '; echo; \
             touch /tmp/ok && echo tmp-ok; cat /etc/resolv.conf | wc -c",
        ),
    );
    assert_eq!(o, exited(0), "{log}");
    for bad in [
        "USR-WRITABLE",
        "ROOT-WRITABLE",
        "PROCSYS-WRITABLE",
        "SHADOW",
    ] {
        assert!(!log.contains(bad), "{bad}: {log}");
    }
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        if Path::new(p).exists() {
            assert!(
                log.contains(&format!("masked {p}=0")),
                "{p} not masked: {log}"
            );
        }
    }
    for d in ["/proc/acpi", "/proc/scsi", "/sys/firmware"] {
        if Path::new(d).is_dir() {
            assert!(log.contains(&format!("{d} has 0")), "{d} not masked: {log}");
        }
    }
    assert!(log.contains("tmp-ok"), "{log}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm",
    ] {
        assert!(log.contains(dev), "/dev/{dev} missing: {log}");
    }
    for dev in ["sda", "kmsg", "mem ", "vda", "nvme"] {
        assert!(!log.contains(dev), "/dev/{dev} present: {log}");
    }
}

#[test]
fn network_is_loopback_only() {
    let e = env();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (o, log) = run(
        &e,
        spec(
            "net",
            &format!(
                "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; \
                 (echo hi > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo CONNECTED; \
                 (echo hi > /dev/tcp/10.0.0.1/80) 2>/dev/null && echo ROUTED; echo done"
            ),
        ),
    );
    assert_eq!(o, exited(0), "{log}");
    let ifaces: Vec<&str> = log.lines().take_while(|l| *l != "done").collect();
    assert_eq!(ifaces, vec!["lo"], "{log}");
    assert!(
        !log.contains("CONNECTED") && !log.contains("ROUTED"),
        "{log}"
    );
    assert!(
        listener.accept().is_err(),
        "the host listener got a connection"
    );
}

#[test]
fn secrets_arrive_as_env_and_file_and_leave_no_trace() {
    let e = env();
    let value = "s3cr3t-value-7f1c2a";
    let mut s = spec(
        "secret",
        "echo env=$DB_PASSWORD; stat -c '%a %u' /run/secrets/token; cat /run/secrets/token; echo; \
         echo x > /run/secrets/other 2>/dev/null && echo SECRETS-WRITABLE; echo end",
    );
    s.secrets = vec![
        ResolvedSecret {
            secret: "db".into(),
            version: 1,
            target: InjectionTarget::Env("DB_PASSWORD".into()),
            value: zeroize::Zeroizing::new(value.as_bytes().to_vec()),
        },
        ResolvedSecret {
            secret: "tok".into(),
            version: 2,
            target: InjectionTarget::File("/run/secrets/token".into()),
            value: zeroize::Zeroizing::new(b"file-secret-9d8e".to_vec()),
        },
    ];
    let (o, log) = run(&e, s);
    assert_eq!(o, exited(0), "{log}");
    assert!(log.contains(&format!("env={value}")), "{log}");
    assert!(log.contains("400 0"), "{log}");
    assert!(log.contains("file-secret-9d8e"), "{log}");
    assert!(!log.contains("SECRETS-WRITABLE"), "{log}");
    // Nothing but the log (which holds what the workload printed) remains anywhere.
    for root in [&e.state, &e.runtime_dir] {
        for f in walk(root) {
            if f.extension().is_some_and(|x| x == "log") {
                continue;
            }
            let bytes = std::fs::read(&f).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(value) && !text.contains("file-secret-9d8e"),
                "secret in {}",
                f.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn memory_hog_is_killed() {
    let e = env();
    let mut s = spec(
        "oom",
        "sh -c 'x=$(head -c 200000000 /dev/zero | tr \"\\\\000\" a); echo ${#x}'; echo status=$?",
    );
    s.limits.memory_bytes = 32 << 20;
    s.limits.tmp_bytes = 8 << 20;
    let (o, log) = run(&e, s);
    // The inner shell holds the whole string and is killed (SIGKILL: 137) at the limit.
    assert_eq!(o, exited(0), "{log}");
    assert!(log.contains("status=137"), "{o:?} {log}");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let e = env();
    let mut s = spec(
        "pids",
        // `set -- /proc/[0-9]*` counts processes without forking; `kill -9 -1` from
        // the sandbox's init ends the sleeps.
        "(for i in $(seq 100); do sleep 30 & done) 2>/dev/null; \
         set -- /proc/[0-9]*; echo running=$#; kill -9 -1; echo done",
    );
    s.limits.pids = 32;
    let (o, log) = run(&e, s);
    assert_eq!(o, exited(0), "{log}");
    let running: u32 = log
        .lines()
        .find_map(|l| l.strip_prefix("running="))
        .unwrap_or_else(|| panic!("{log}"))
        .parse()
        .unwrap();
    assert!((20..=32).contains(&running), "{running} processes: {log}");
}

#[test]
fn timeout_kills() {
    let e = env();
    let mut s = spec("timeout", "sleep 60");
    s.limits.timeout = Duration::from_secs(1);
    let t = Instant::now();
    let (o, log) = run(&e, s);
    assert_eq!(o, Outcome::TimedOut, "{log}");
    assert!(t.elapsed() < Duration::from_secs(15));
}

#[test]
fn cancel_kills() {
    let e = env();
    let s = spec("cancel", "sleep 60");
    let id = s.id.clone();
    let mut w = e.rt.start(s).unwrap();
    let c = w.canceller();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        c.cancel();
    });
    assert_eq!(w.wait().unwrap(), Outcome::Cancelled);
    drop(w);
    assert_clean(&e, &id);
}

#[test]
fn dropping_a_running_workload_cleans_up() {
    let e = env();
    let s = spec("drop", "sleep 60");
    let id = s.id.clone();
    let w = e.rt.start(s).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(w);
    assert_clean(&e, &id);
}

#[test]
fn seccomp_refuses_namespaces_and_mounts() {
    let e = env();
    let (o, log) = run(
        &e,
        spec(
            "seccomp",
            "unshare -U true 2>&1 && echo UNSHARED; unshare -n true 2>&1 && echo NETNS; \
             mount -t tmpfs none /tmp 2>&1 && echo MOUNTED; echo end",
        ),
    );
    assert_eq!(o, exited(0), "{log}");
    for bad in ["UNSHARED", "NETNS", "MOUNTED"] {
        assert!(!log.contains(bad), "{bad}: {log}");
    }
    assert!(log.contains("Operation not permitted"), "{log}");
}

#[test]
fn bad_input_starts_nothing() {
    let e = env();
    let mut s = spec("bad", "true");
    s.command.clear();
    let id = s.id.clone();
    let err = e.rt.start(s).err().unwrap().to_string();
    assert!(err.contains("command is empty"), "{err}");
    assert_clean(&e, &id);
    let mut s = spec("bad2", "true");
    s.limits.memory_bytes = 1;
    assert!(e.rt.start(s).is_err());
}

#[test]
fn log_is_capped() {
    let e = env();
    let mut s = spec(
        "logcap",
        "head -c 100000 /dev/zero | tr '\\000' x; echo; echo end",
    );
    s.limits.log_bytes = 1000;
    let (o, log) = run(&e, s);
    assert_eq!(o, exited(0));
    assert!(log.len() < 1200, "{} bytes", log.len());
    assert!(log.contains("log limit reached"), "{log}");
}

#[test]
fn orphans_of_a_crash_are_reaped() {
    let e = env();
    let s = spec("orphan", "sleep 60");
    let id = s.id.clone();
    let w = e.rt.start(s).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // As if the server died: the handle is never dropped.
    std::mem::forget(w);
    assert!(e.rt.bundle_dir(&id).exists());
    let again = RuncRuntime::new(&e.state, &e.runtime_dir).unwrap();
    let reaped = again.reap_orphans().unwrap();
    assert_eq!(reaped, vec![id.clone()]);
    assert_clean(&e, &id);
}

/// Escape probes with perl (in Debian's essential set): each refused system call must fail with
/// EPERM (seccomp, or no capability), raw and packet sockets must be refused.
#[cfg(target_arch = "x86_64")]
#[test]
fn escape_probes_fail() {
    let e = env();
    let probes = [
        ("ptrace", "101, 16, 1, 0, 0"),
        ("mount", "165, 0, 0, 0, 0, 0"),
        ("umount2", "166, 0, 0"),
        ("pivot_root", "155, 0, 0"),
        ("chroot", "161, 0"),
        ("unshare_user", "272, 0x10000000"),
        ("unshare_net", "272, 0x40000000"),
        ("setns", "308, 0, 0"),
        ("clone_newuser", "56, 0x10000011, 0, 0, 0, 0"),
        ("clone_newns", "56, 0x00020011, 0, 0, 0, 0"),
        ("bpf", "321, 0, 0, 0"),
        ("perf_event_open", "298, 0, 0, -1, -1, 0"),
        ("keyctl", "250, 0, 0"),
        ("add_key", "248, 0, 0, 0, 0, 0"),
        ("kexec_load", "246, 0, 0, 0, 0"),
        ("init_module", "175, 0, 0, 0"),
        ("userfaultfd", "323, 0"),
        ("io_uring_setup", "425, 1, 0"),
        ("open_by_handle_at", "304, 0, 0, 0"),
    ];
    // A control: an allowed call succeeds (the probes are not vacuous).
    let mut script = String::from("$| = 1; print 'getpid r=' . syscall(39) . \"\\n\"; ");
    for (name, args) in probes {
        script.push_str(&format!(
            "$! = 0; $r = syscall({args}); print \"{name} r=$r errno=\" . ($!+0) . \"\\n\"; "
        ));
    }
    script.push_str(
        "print socket(S, 2, 3, 1) ? \"raw OPEN\\n\" : \"raw refused\\n\"; \
         print socket(P, 17, 3, 0) ? \"packet OPEN\\n\" : \"packet refused\\n\"; \
         print open(F, '>', '/sys/kernel/uevent_helper') ? \"sys OPEN\\n\" : \"sys refused\\n\"; \
         print open(G, '<', '/etc/shadow') ? \"shadow OPEN\\n\" : \"shadow refused\\n\";",
    );
    let mut s = spec("probes", "");
    s.command = vec!["/usr/bin/perl".into(), "-e".into(), script];
    let (o, log) = run(&e, s);
    assert_eq!(o, exited(0), "{log}");
    for (name, _) in probes {
        assert!(
            log.contains(&format!("{name} r=-1 errno=1\n")),
            "{name} was not refused with EPERM: {log}"
        );
    }
    assert!(log.contains("getpid r=1\n"), "{log}");
    for what in ["raw", "packet", "sys", "shadow"] {
        assert!(log.contains(&format!("{what} refused")), "{what}: {log}");
    }
}

#[test]
fn host_sees_the_process_as_an_unprivileged_uid() {
    let e = env();
    let s = spec("hostuid", "sleep 60");
    let id = s.id.clone();
    let mut w = e.rt.start(s).unwrap();
    let runc = find_runc().unwrap();
    let mut pid = 0;
    for _ in 0..100 {
        let out = std::process::Command::new(&runc)
            .arg("--root")
            .arg(e.rt.runc_root())
            .args(["state", &id])
            .output()
            .unwrap();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            if v["status"] == "running" {
                pid = v["pid"].as_u64().unwrap();
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pid > 0, "the sandbox did not start");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        line("Uid:"),
        "Uid:\t165536\t165536\t165536\t165536",
        "{status}"
    );
    assert_eq!(
        line("Gid:"),
        "Gid:\t165536\t165536\t165536\t165536",
        "{status}"
    );
    assert_eq!(line("CapEff:"), "CapEff:\t0000000000000000");
    w.canceller().cancel();
    assert_eq!(w.wait().unwrap(), Outcome::Cancelled);
    drop(w);
    assert_clean(&e, &id);
}
