//! LDAP login throughput: the pooled `Directory` against bind-per-login (a fresh
//! connection + TLS handshake + service bind per login), side by side against one private
//! slapd on 127.0.0.1 (the test harness). Run with `bash bench/ldap/run.sh`.
//!
//! Arguments: `[logins per run (2000)] [concurrent tasks (8)] [pool size (4)] [rounds (3)]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/slapd/mod.rs"]
mod slapd;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use enclave_ldap::{Directory, LdapConfig};

struct Run {
    per_s: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(d: &Directory, logins: usize, tasks: usize) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let d = d.clone();
        let next = next.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= logins {
                    return lat;
                }
                let (user, pw, groups) = if i.is_multiple_of(2) {
                    ("alice", "alice-pw-1", 3)
                } else {
                    ("bob", "bob-pw-1", 1)
                };
                let t = Instant::now();
                let u = d.authenticate(user, pw).await.expect("login");
                lat.push(t.elapsed());
                assert_eq!(u.groups.len(), groups);
            }
        }));
    }
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.unwrap());
    }
    let elapsed = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    Run {
        per_s: logins as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let logins = args.first().copied().unwrap_or(2000);
    let tasks = args.get(1).copied().unwrap_or(8);
    let pool = args.get(2).copied().unwrap_or(4);
    let rounds = args.get(3).copied().unwrap_or(3).max(1);
    let s = slapd::Slapd::start().unwrap_or_else(|e| panic!("slapd: {e}"));
    let mut cfg = LdapConfig::new(
        s.ldaps_url(),
        slapd::SERVICE_DN,
        slapd::SERVICE_PW,
        "ou=people,dc=corp,dc=test",
        "ou=groups,dc=corp,dc=test",
    );
    cfg.ca_pem = Some(s.ca_pem.clone());
    cfg.disabled_filter = Some("(employeeType=disabled)".to_owned());
    cfg.pool_size = pool;
    let pooled = Directory::new(cfg.clone()).unwrap();
    let unpooled = Directory::new_unpooled(cfg).unwrap();
    println!(
        "slapd 127.0.0.1 over LDAPS, {logins} logins (alice: 3 nested groups / bob: 1 group) per run, \
         {tasks} concurrent tasks, pool size {pool}, {} CPUs",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    // Warm-up (pools filled, slapd caches warm).
    run(&pooled, 200, tasks).await;
    run(&unpooled, 200, tasks).await;
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let p = run(&pooled, logins, tasks).await;
        let u = run(&unpooled, logins, tasks).await;
        let ratio = p.per_s / u.per_s;
        ratios.push(ratio);
        println!(
            "round {round}: pooled {:8.0} logins/s (p50 {:6.2} ms, p99 {:6.2} ms) | bind-per-login {:8.0} logins/s (p50 {:6.2} ms, p99 {:6.2} ms) | ratio {ratio:.2}x",
            p.per_s,
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3,
            u.per_s,
            u.p50.as_secs_f64() * 1e3,
            u.p99.as_secs_f64() * 1e3,
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let n = ratios.len();
    let median = if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    };
    println!("median ratio pooled / bind-per-login over {n} rounds: {median:.2}x");
}
