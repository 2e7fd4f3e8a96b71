//! Project networks with real runc sandboxes (root required, as in CI; runc must be installed).
//!
//! Network safety: every connection attempt is made from inside a network namespace these
//! tests create, to addresses in namespaces they create, or to addresses a sandbox has no
//! route to (the host's own addresses, 169.254.169.254): those fail inside the sandbox's
//! namespace and nothing leaves it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use super::common::{self, Env};
use enclave_sandbox::net::NetConfig;
use enclave_sandbox::runc::RuncRuntime;
use enclave_sandbox::{Limits, NetworkMode, Outcome, Runtime, SandboxSpec, UidRange, Workload};

fn env() -> Env {
    env_with(None)
}

fn env_with(config: Option<NetConfig>) -> Env {
    let e = common::env("nettest", config);
    common::install_probe(&e);
    e
}

/// A sandbox of project `index` (which also picks its uid range) running `cmd` with sh.
fn spec(e: &Env, id: &str, index: u32, cmd: &str) -> SandboxSpec {
    SandboxSpec {
        id: format!("{id}-{}", std::process::id()),
        project: format!("p{index}"),
        command: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
        env: vec![],
        cwd: "/".into(),
        uid_range: UidRange::for_project_index(index).unwrap(),
        limits: Limits {
            timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        work_volume: Some(e.work.clone()),
        environment: None,
        secrets: Vec::new(),
        network: NetworkMode::Project { index },
    }
}

/// A TCP server in the sandbox on port 8000: answers `pong:<data> from <peer>` to each of
/// `n` connections, logging each peer, then exits.
fn server(n: usize) -> String {
    format!(
        "exec python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((\"0.0.0.0\", 8000))
s.listen(8)
print(\"listening\", flush=True)
for _ in range({n}):
    c, a = s.accept()
    print(\"peer\", a[0], flush=True)
    d = c.recv(100)
    c.sendall(b\"pong:\" + d + b\" from \" + a[0].encode())
    c.close()
'"
    )
}

fn wait_for_log(w: &dyn Workload, what: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let log = String::from_utf8_lossy(&w.logs().unwrap()).into_owned();
        if log.contains(what) {
            return log;
        }
        assert!(Instant::now() < until, "no {what:?} in: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish(mut w: Box<dyn Workload>) -> (Outcome, String) {
    let o = w.wait().unwrap();
    let log = String::from_utf8_lossy(&w.logs().unwrap()).into_owned();
    w.delete().unwrap();
    (o, log)
}

fn exited(code: i32) -> Outcome {
    Outcome::Exited { code }
}

/// Nothing of `e`'s runtime is left: containers, cgroups, bundles, namespace files, mounts,
/// interfaces with its tag.
fn assert_clean(e: &Env, ids: &[&str]) {
    common::assert_runc_clean(e, ids);
    let netns: Vec<_> = std::fs::read_dir(e.runtime_dir.join("netns"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(netns.is_empty(), "namespace files left: {netns:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = e.runtime_dir.to_string_lossy().into_owned();
    assert!(!mounts.contains(&dir), "mount left: {mounts}");
    let ifaces = e.rt.networks().interfaces().unwrap();
    assert!(ifaces.is_empty(), "interfaces left: {ifaces:?}");
}

/// The host's own addresses, as escape-probe targets: IPv4 ones on `port`, IPv6 ones on
/// `port6` (none when `port6` is `None`). Link-local IPv6 addresses go to `link_local`: the
/// probe counts the EINVAL a scoped connect gets on an interface without IPv6 as its own
/// error, so they are tried separately.
fn host_targets(port: u16, port6: Option<u16>, link_local: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for a in nix::ifaddrs::getifaddrs().unwrap() {
        let Some(addr) = a.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            out.push(format!("{}:{port}", v4.ip()));
        } else if let (Some(v6), Some(port)) = (addr.as_sockaddr_in6(), port6) {
            let ip = v6.ip();
            if ip.segments()[0] & 0xffc0 == 0xfe80 {
                link_local.push(ip.to_string());
            } else {
                out.push(format!("[{ip}]:{port}"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn workloads_of_a_project_reach_each_other_and_the_network_goes_with_the_last() {
    let e = env();
    let bridge = e.rt.networks().bridge_name(3);
    let srv = e.rt.start(spec(&e, "srv", 3, &server(2))).unwrap();
    let addr = srv.address().expect("a project workload has an address");
    assert_eq!(addr, Ipv4Addr::new(10, 213, 3, 2), "first free address");
    wait_for_log(srv.as_ref(), "listening");
    assert!(e.rt.networks().interfaces().unwrap().contains(&bridge));

    // The gateway's way in: from inside the workload's namespace.
    let mut s = srv.connect(8000, Duration::from_secs(5)).unwrap();
    s.write_all(b"gw").unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, format!("pong:gw from {addr}"));

    let cli = e
        .rt
        .start(spec(
            &e,
            "cli",
            3,
            &format!(
                "python3 -c '
import socket
s = socket.create_connection((\"{addr}\", 8000), timeout=5)
s.sendall(b\"hi\")
print(\"got\", s.recv(100).decode())
'; echo ifaces $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" | sort | tr \"\\n\" \" \"); \
 echo inet6 $(wc -l < /proc/net/if_inet6); \
 echo disable_ipv6 $(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/eth0/disable_ipv6); \
 tail -n +2 /proc/net/route | while read i d g rest; do echo route $i $d $g; done; \
 python3 -c '
import fcntl, socket, struct
s = socket.socket()
try:
    fcntl.ioctl(s, 0x8914, struct.pack(\"16sH14s\", b\"eth0\", 0, bytes(14)))
    print(\"SETFLAGS-ALLOWED\")
except PermissionError:
    print(\"setflags refused\")
'"
            ),
        ))
        .unwrap();
    let cli_addr = cli.address().unwrap();
    assert_eq!(cli_addr, Ipv4Addr::new(10, 213, 3, 3));
    let (o, log) = finish(cli);
    assert_eq!(o, exited(0), "{log}");
    assert!(
        log.contains(&format!("got pong:hi from {cli_addr}")),
        "{log}"
    );
    assert!(log.contains("ifaces eth0 lo\n"), "{log}");
    assert!(log.contains("inet6 0\n"), "IPv6 address inside: {log}");
    assert!(log.contains("setflags refused"), "{log}");
    if Path::new("/proc/sys/net/ipv6").exists() {
        assert!(log.contains("disable_ipv6 1 1\n"), "{log}");
    }
    // IPv6 off inside; the only route is the subnet's (no default route).
    let routes: Vec<&str> = log.lines().filter(|l| l.starts_with("route ")).collect();
    assert_eq!(routes, ["route eth0 0003D50A 00000000"], "{log}");
    let (o, log) = finish(srv);
    assert_eq!(o, exited(0), "{log}");
    assert!(log.contains(&format!("peer {cli_addr}")), "{log}");
    assert_clean(&e, &[]);
}

#[test]
fn host_and_bridge_have_no_ipv6_and_the_host_has_no_address_on_the_bridge() {
    let e = env();
    let host_all = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").ok();
    let w =
        e.rt.start(spec(&e, "v6", 5, "echo up; exec sleep 30"))
            .unwrap();
    wait_for_log(w.as_ref(), "up");
    let bridge = e.rt.networks().bridge_name(5);
    let veth = e.rt.networks().veth_name(w.address().unwrap());
    // The namespace's sysctls were set from the thread in it, not the host's.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").ok(),
        host_all
    );
    if Path::new("/proc/sys/net/ipv6").exists() {
        for i in [&bridge, &veth] {
            let v = std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{i}/disable_ipv6"))
                .unwrap();
            assert_eq!(v, "1\n", "{i}");
        }
        let inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap();
        for i in [&bridge, &veth] {
            assert!(!inet6.contains(i.as_str()), "{i} has IPv6: {inet6}");
        }
    }
    for a in nix::ifaddrs::getifaddrs().unwrap() {
        if a.interface_name == bridge || a.interface_name == veth {
            assert!(
                a.address
                    .as_ref()
                    .is_none_or(|s| s.as_sockaddr_in().is_none() && s.as_sockaddr_in6().is_none()),
                "{} has an address: {:?}",
                a.interface_name,
                a.address
            );
        }
    }
    drop(w);
    assert_clean(&e, &[]);
}

#[test]
fn other_projects_the_host_and_metadata_are_unreachable() {
    let e = env();
    // A host service on every IPv4 address (and IPv6 where the host has it).
    let l4 = TcpListener::bind("0.0.0.0:0").unwrap();
    l4.set_nonblocking(true).unwrap();
    let port = l4.local_addr().unwrap().port();
    let l6 = TcpListener::bind("[::]:0").ok();
    if let Some(l) = &l6 {
        l.set_nonblocking(true).unwrap();
    }
    let port6 = l6.as_ref().map(|l| l.local_addr().unwrap().port());
    let srv = e.rt.start(spec(&e, "xsrv", 7, &server(1))).unwrap();
    let a = srv.address().unwrap();
    wait_for_log(srv.as_ref(), "listening");

    let mut link_local = Vec::new();
    let mut targets = host_targets(port, port6, &mut link_local);
    assert!(targets.len() >= 2, "no host address found: {targets:?}");
    targets.push(format!("{a}:8000")); // project 7's server, from project 8
    targets.push("10.213.8.1:8000".into()); // the reserved first address of its own subnet
    targets.push("169.254.169.254:80".into()); // the metadata service address
    let mut s = spec(&e, "xcli", 8, "");
    s.command = ["python3", "/work/escape.py", "net"]
        .into_iter()
        .map(String::from)
        .chain(targets.iter().cloned())
        .collect();
    let (o, log) = finish(e.rt.start(s).unwrap());
    assert_eq!(o, exited(0), "a target was reachable: {log}");
    for t in &targets {
        let shown = t.replace(['[', ']'], "");
        assert!(
            log.contains(&format!("tcp_connect {shown}")),
            "{t} not probed: {log}"
        );
    }
    // Project 7's own workload cannot reach the host either, nor its link-local addresses.
    let mut targets: Vec<String> = host_targets(port, port6, &mut Vec::new());
    targets.push("169.254.169.254:80".into());
    let port6 = port6.unwrap_or(port);
    let s = spec(
        &e,
        "xsame",
        7,
        &format!(
            "python3 /work/escape.py net {}; rc=$?; python3 -c '
import socket, sys
for ip in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6)
    s.settimeout(2)
    try:
        s.connect((ip + \"%eth0\", {port6}))
        print(\"LL-CONNECTED\", ip)
    except OSError as e:
        print(\"link-local blocked\", ip, e.errno)
' {}; exit $rc",
            targets.join(" "),
            link_local.join(" ")
        ),
    );
    let (o, log) = finish(e.rt.start(s).unwrap());
    assert_eq!(o, exited(0), "a target was reachable: {log}");
    assert!(!log.contains("LL-CONNECTED"), "{log}");
    for ip in &link_local {
        assert!(log.contains(&format!("link-local blocked {ip}")), "{log}");
    }

    assert!(
        l4.accept().is_err(),
        "the host's IPv4 listener got a connection"
    );
    if let Some(l) = &l6 {
        assert!(
            l.accept().is_err(),
            "the host's IPv6 listener got a connection"
        );
    }
    // The server saw nobody; end it through the gateway path.
    let mut c = srv.connect(8000, Duration::from_secs(5)).unwrap();
    c.write_all(b"bye").unwrap();
    let (o, log) = finish(srv);
    assert_eq!(o, exited(0), "{log}");
    assert_eq!(log.matches("peer ").count(), 1, "{log}");
    assert!(log.contains(&format!("peer {a}")), "{log}");
    assert_clean(&e, &[]);
}

#[test]
fn orphans_of_a_crash_are_reaped_with_their_networks() {
    let e = env();
    let s = spec(&e, "orphan", 4, "echo up; exec sleep 60");
    let id = s.id.clone();
    let w = e.rt.start(s).unwrap();
    let s2 = spec(&e, "orphan2", 4, "echo up; exec sleep 60");
    let id2 = s2.id.clone();
    let w2 = e.rt.start(s2).unwrap();
    assert_eq!(
        e.rt.networks().interfaces().unwrap().len(),
        3,
        "a bridge and two veths"
    );
    // As if the server died: the handles are never dropped.
    std::mem::forget(w);
    std::mem::forget(w2);
    let again = RuncRuntime::new(&e.state, &e.runtime_dir).unwrap();
    assert_eq!(again.networks().tag(), e.rt.networks().tag());
    let mut reaped = again.reap_orphans().unwrap();
    reaped.sort();
    let mut want = vec![id.clone(), id2.clone()];
    want.sort();
    assert_eq!(reaped, want);
    assert_clean(&e, &[&id, &id2]);
}

#[test]
fn bad_starts_leave_no_network() {
    // A /30 subnet holds one workload (offset 1 is reserved).
    let e = env_with(Some(NetConfig::new("10.214.0.0/24", 30).unwrap()));
    let first = e.rt.start(spec(&e, "only", 2, "sleep 30")).unwrap();
    assert_eq!(first.address(), Some(Ipv4Addr::new(10, 214, 0, 10)));
    let err =
        e.rt.start(spec(&e, "full", 2, "true"))
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("no free address"), "{err}");
    let err =
        e.rt.start(spec(&e, "far", 64, "true"))
            .err()
            .unwrap()
            .to_string();
    assert!(
        err.contains("has no network") && err.contains("0 to 63"),
        "{err}"
    );
    // Fails after the network was made: the work volume is missing.
    let mut s = spec(&e, "novol", 3, "true");
    s.work_volume = Some(e.work.join("missing"));
    assert!(e.rt.start(s).is_err());
    let ifaces = e.rt.networks().interfaces().unwrap();
    assert_eq!(
        ifaces.len(),
        2,
        "only the first workload's bridge and veth: {ifaces:?}"
    );
    // Its network still works: the gateway path reaches its namespace (nothing listens).
    let err = first
        .connect(9, Duration::from_secs(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused"), "{err}");
    drop(first);
    assert_clean(&e, &[]);

    // An isolated workload has no address and no way in.
    let mut s = spec(&e, "iso", 2, "sleep 30");
    s.network = NetworkMode::Isolated;
    let w = e.rt.start(s).unwrap();
    assert_eq!(w.address(), None);
    assert!(w.connect(80, Duration::from_secs(1)).is_err());
    drop(w);
    assert_clean(&e, &[]);
}
