//! Decision latency and throughput against raw Cedar, on a large directory: 10,000 users,
//! 2,000 nested groups, 1,000 projects, 200 custom policies.
//!
//! Measures (i) `PolicyEngine::decide` (entity slice included), (ii) raw
//! `Authorizer::is_authorized` on the same pre-built entities with the full policy set and with
//! the prefiltered sets, (iii) `decide` while another thread rebuilds and replaces the snapshot
//! in a loop. Prints a JSON summary, also written to `$BENCH_OUT` when set.
//!
//! Run: `cargo bench -p enclave-policy` (release profile).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cedar_policy::Authorizer;
use enclave_core::authz::Action;
use enclave_core::Timestamp;
use enclave_policy::*;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: usize = 10_000;
const GROUPS: usize = 2_000;
const PROJECTS: usize = 1_000;
const CUSTOM: usize = 200;
const PLATFORM_CUSTOM: usize = 20;
const NOW: i64 = 1_800_000_000;

/// A small deterministic generator (no dependency, same data every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn directory() -> Directory {
    let mut rng = Lcg(42);
    let mut dir = Directory::default();
    // Groups: a forest four levels deep, some with a second parent.
    for i in 0..GROUPS {
        let mut parents = Vec::new();
        if i >= 20 {
            parents.push(format!("g{}", i / 5));
        }
        if i >= 200 && i % 7 == 0 {
            parents.push(format!("g{}", rng.below(200)));
        }
        dir.groups.push(GroupRecord {
            id: format!("g{i}"),
            parents,
        });
    }
    for i in 0..USERS {
        dir.users.push(UserRecord {
            id: format!("u{i}"),
            username: format!("user{i}"),
            platform_admin: i < 5,
            disabled: i % 500 == 499,
            groups: vec![
                format!("g{}", 200 + rng.below(GROUPS - 200)),
                format!("g{}", 200 + rng.below(GROUPS - 200)),
            ],
        });
    }
    let classes = ["public", "internal", "restricted"];
    for i in 0..PROJECTS {
        let mut tags = BTreeMap::new();
        if i % 4 == 0 {
            tags.insert("pii".to_string(), "yes".to_string());
        }
        tags.insert("cost-center".to_string(), format!("cc{}", i % 17));
        dir.projects.push(ProjectRecord {
            name: format!("p{i}"),
            classification: classes[i % 3].to_string(),
            tags,
            requires_approval: true,
        });
    }
    let mut b = 0;
    let mut bind = |dir: &mut Directory, subject: Subject, role: &str, scope: Scope| {
        b += 1;
        let grant = role == "support";
        dir.bindings.push(BindingRecord {
            id: format!("b{b}"),
            subject,
            role: role.to_string(),
            scope,
            starts_at: grant.then_some(Timestamp(NOW - 600)),
            expires_at: grant.then_some(Timestamp(NOW + 3000)),
            origin: if grant {
                format!("grant:{b}")
            } else {
                "membership".to_string()
            },
        });
    };
    for i in 0..PROJECTS {
        let scope = Scope::Project(format!("p{i}"));
        let owner = format!("u{}", rng.below(USERS));
        bind(
            &mut dir,
            Subject::User(owner),
            "project_owner",
            scope.clone(),
        );
        for _ in 0..2 {
            let g = format!("g{}", rng.below(GROUPS));
            bind(&mut dir, Subject::Group(g), "data_scientist", scope.clone());
        }
        let g = format!("g{}", rng.below(GROUPS));
        bind(&mut dir, Subject::Group(g), "viewer", scope.clone());
        for _ in 0..3 {
            let u = format!("u{}", rng.below(USERS));
            bind(&mut dir, Subject::User(u), "data_scientist", scope.clone());
        }
        if i % 10 == 0 {
            let u = format!("u{}", rng.below(USERS));
            bind(&mut dir, Subject::User(u), "support", scope.clone());
        }
        for (k, kind) in [WorkloadKind::Job, WorkloadKind::Notebook]
            .into_iter()
            .enumerate()
        {
            let id = format!("w{i}-{k}");
            dir.workloads.push(WorkloadRecord {
                id: id.clone(),
                project: format!("p{i}"),
                kind,
                owner: Some(format!("u{}", rng.below(USERS))),
            });
            bind(
                &mut dir,
                Subject::Workload(id),
                kind.default_role(),
                scope.clone(),
            );
        }
    }
    for i in 5..8 {
        bind(
            &mut dir,
            Subject::User(format!("u{i}")),
            "security_auditor",
            Scope::Platform,
        );
    }
    // Custom policies: most on projects, some platform-wide.
    for i in 0..CUSTOM - PLATFORM_CUSTOM {
        let p = format!("p{}", rng.below(PROJECTS));
        let g = format!("g{}", rng.below(GROUPS));
        let text = match i % 4 {
            0 => format!(
                r#"forbid(principal, action in Action::"project_data", resource in Project::"{p}") unless {{ context.source_ip.isInRange(ip("10.0.0.0/8")) }};"#
            ),
            1 => format!(
                r#"permit(principal in Group::"{g}", action == Action::"dataset.read", resource in Project::"{p}");"#
            ),
            2 => format!(
                r#"forbid(principal, action == Action::"secret.read_value", resource in Project::"{p}") unless {{ context.mfa }};"#
            ),
            _ => format!(
                r#"permit(principal, action == Action::"secret.delete", resource is Secret in Project::"{p}") when {{ resource has owner && resource.owner == principal }};"#
            ),
        };
        dir.policies.push(CustomPolicyRecord {
            id: format!("c{i}"),
            scope: Scope::Project(p),
            text,
        });
    }
    for i in 0..PLATFORM_CUSTOM {
        let g = format!("g{}", rng.below(GROUPS));
        let a = Action::ALL[rng.below(Action::ALL.len())].as_str();
        let text = match i % 4 {
            0 => format!(
                r#"forbid(principal, action == Action::"{a}", resource) when {{ context.weekday > 5 && !context.mfa }};"#
            ),
            1 => format!(
                r#"permit(principal in Group::"{g}", action == Action::"template.list", resource);"#
            ),
            2 => format!(
                r#"forbid(principal, action in Action::"writes", resource) when {{ context.auth_method == "token" && context.hour_utc < {} }};"#,
                i % 6
            ),
            _ => r#"forbid(principal, action == Action::"dataset.read", resource is Dataset) when { resource.project.hasTag("pii") && !context.mfa };"#.to_string(),
        };
        dir.policies.push(CustomPolicyRecord {
            id: format!("pc{i}"),
            scope: Scope::Platform,
            text,
        });
    }
    dir
}

fn requests(dir: &Directory, n: usize) -> Vec<Request> {
    let mut rng = Lcg(7);
    // Pick, for a user, a project they hold a role in (via a direct binding) most of the time.
    let direct: Vec<(&str, &str)> = dir
        .bindings
        .iter()
        .filter_map(|b| match (&b.subject, &b.scope) {
            (Subject::User(u), Scope::Project(p)) => Some((u.as_str(), p.as_str())),
            _ => None,
        })
        .collect();
    let actions = [
        Action::ProjectRead,
        Action::SecretReadValue,
        Action::DatasetRead,
        Action::DatasetWrite,
        Action::NotebookOpen,
        Action::JobRun,
        Action::SecretList,
        Action::ProjectUpdate,
        Action::UserList,
        Action::SelfRead,
    ];
    (0..n)
        .map(|i| {
            let (user, project) = if i % 4 == 3 {
                (
                    format!("u{}", rng.below(USERS)),
                    format!("p{}", rng.below(PROJECTS)),
                )
            } else {
                let (u, p) = direct[rng.below(direct.len())];
                (u.to_string(), p.to_string())
            };
            let workload = i % 10 == 9;
            let action = if workload {
                Action::DatasetRead
            } else {
                actions[rng.below(actions.len())]
            };
            let resource = match action {
                Action::SecretReadValue => Resource::Secret {
                    name: "db".into(),
                    project: project.clone(),
                    owner: Some(user.clone()),
                },
                Action::DatasetRead | Action::DatasetWrite => Resource::Dataset {
                    name: "claims".into(),
                    project: project.clone(),
                    owner: None,
                },
                Action::NotebookOpen => Resource::Workload {
                    id: "nb-x".into(),
                    project: project.clone(),
                    kind: WorkloadKind::Notebook,
                    owner: Some(user.clone()),
                },
                Action::UserList => Resource::Platform,
                Action::SelfRead => Resource::User(user.clone()),
                _ => Resource::Project(project.clone()),
            };
            let principal = if workload {
                let p = rng.below(PROJECTS);
                Principal::Workload(format!("w{p}-0"))
            } else {
                Principal::User(user)
            };
            let resource = if workload {
                match &principal {
                    Principal::Workload(w) => Resource::Dataset {
                        name: "claims".into(),
                        project: format!("p{}", &w[1..w.find('-').unwrap()]),
                        owner: None,
                    },
                    Principal::User(_) => resource,
                }
            } else {
                resource
            };
            Request {
                principal,
                credential: Credential::full(AuthMethod::Oidc, i % 3 != 0),
                source_ip: if i % 5 == 0 {
                    "192.168.3.4".parse().unwrap()
                } else {
                    "10.20.30.40".parse().unwrap()
                },
                action,
                resource,
                extra: None,
            }
        })
        .collect()
}

struct Stats {
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

fn stats(mut ns: Vec<u64>) -> Stats {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    Stats {
        p50_us: at(0.50),
        p99_us: at(0.99),
        mean_us: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
    }
}

fn timed(n: usize, mut f: impl FnMut(usize)) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed().as_nanos() as u64
        })
        .collect()
}

fn json_stats(s: &Stats) -> serde_json::Value {
    serde_json::json!({ "p50_us": round(s.p50_us), "p99_us": round(s.p99_us), "mean_us": round(s.mean_us) })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Times `decide` over the requests (at least `n`, and until the other thread has replaced
/// the snapshot 5 times) while another thread runs `replace` in a loop.
fn under_reload(
    engine: &PolicyEngine,
    reqs: &[Request],
    now: Timestamp,
    n: usize,
    mut replace: impl FnMut(&PolicyEngine) + Send,
) -> (Vec<u64>, usize) {
    let stop = AtomicBool::new(false);
    let count = AtomicUsize::new(0);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                replace(engine);
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mut out = Vec::with_capacity(n);
        let start = Instant::now();
        while count.load(Ordering::Relaxed) < 5 || out.len() < n {
            let i = out.len() % reqs.len();
            let t = Instant::now();
            black_box(engine.decide(&reqs[i], now));
            out.push(t.elapsed().as_nanos() as u64);
            if start.elapsed() > Duration::from_secs(120) {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        out
    });
    (out, count.load(Ordering::Relaxed))
}

fn main() {
    let t = Instant::now();
    let dir = directory();
    let snap = Snapshot::build(dir.clone()).expect("snapshot");
    let build_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(snap.warnings().is_empty(), "{:?}", snap.warnings());
    let now = Timestamp(NOW);
    let reqs = requests(&dir, 20_000);
    let n = reqs.len();

    // Pre-built Cedar inputs for the raw comparison (same slices the engine builds).
    let parts: Vec<_> = reqs
        .iter()
        .map(|r| snap.raw_parts(r, now).expect("request"))
        .collect();
    let full = snap.full_policy_set().expect("full set");
    let authorizer = Authorizer::new();
    let prefiltered_sizes: Vec<usize> = parts
        .iter()
        .map(|(_, _, base, project)| {
            base.policies().count() + project.as_ref().map_or(0, |p| p.policies().count())
        })
        .collect();

    let engine = PolicyEngine::new(snap);
    let allowed = reqs
        .iter()
        .filter(|r| engine.decide(r, now).allowed)
        .count();
    // Agreement check: the engine's answer equals raw Cedar's on the full set.
    let disagree = reqs
        .iter()
        .zip(&parts)
        .filter(|(r, (q, e, _, _))| {
            let raw = authorizer.is_authorized(q, &full, e);
            let raw_allowed = raw.decision() == cedar_policy::Decision::Allow
                && raw.diagnostics().errors().next().is_none();
            engine.decide(r, now).allowed != raw_allowed
        })
        .count();

    // Warm up.
    for r in reqs.iter().take(2000) {
        black_box(engine.decide(r, now));
    }

    // (i) decide, timed per call, then throughput on one thread.
    let decide_ns = timed(n, |i| {
        black_box(engine.decide(&reqs[i], now));
    });
    let t = Instant::now();
    let rounds = 3;
    for _ in 0..rounds {
        for r in &reqs {
            black_box(engine.decide(r, now));
        }
    }
    let per_sec = (rounds * n) as f64 / t.elapsed().as_secs_f64();

    // (ii) raw Cedar: full set, and the prefiltered sets, on the same pre-built entities.
    let raw_full_ns = timed(n, |i| {
        let (q, e, _, _) = &parts[i];
        black_box(authorizer.is_authorized(q, &full, e));
    });
    let raw_pre_ns = timed(n, |i| {
        let (q, e, base, project) = &parts[i];
        black_box(authorizer.is_authorized(q, base, e));
        if let Some(p) = project {
            black_box(authorizer.is_authorized(q, p, e));
        }
    });

    // (iii) decide while another thread replaces the snapshot in a loop: (a) rebuilding it
    // from the directory each time, as the application does after a change (this competes for
    // the CPU: two cores here); (b) swapping two prebuilt snapshots as fast as it can (the
    // cost of the swap itself, and of dropping a snapshot a decision still holds).
    let engine = Arc::new(engine);
    let (reload_ns, rebuilds) = under_reload(&engine, &reqs, now, n, |e| {
        e.replace(Snapshot::build(dir.clone()).expect("snapshot"));
    });
    let spare = Arc::new(Snapshot::build(dir.clone()).expect("snapshot"));
    let current = engine.snapshot();
    let mut flip = false;
    let (swap_ns, swaps) = under_reload(&engine, &reqs, now, n, move |e| {
        flip = !flip;
        e.replace(if flip { spare.clone() } else { current.clone() });
    });
    let reload_decisions = reload_ns.len();

    let decide = stats(decide_ns);
    let raw_full = stats(raw_full_ns);
    let raw_pre = stats(raw_pre_ns);
    let reload = stats(reload_ns);
    let swap = stats(swap_ns);
    let mut sizes = prefiltered_sizes.clone();
    sizes.sort_unstable();
    let summary = serde_json::json!({
        "bench": "enclave-policy decide",
        "directory": {
            "users": USERS, "groups": GROUPS, "projects": PROJECTS,
            "bindings": dir.bindings.len(), "workloads": dir.workloads.len(),
            "custom_policies": CUSTOM, "platform_custom_policies": PLATFORM_CUSTOM,
            "total_policies": full.policies().count(),
        },
        "snapshot_build_ms": round(build_ms),
        "requests": n,
        "allowed": allowed,
        "disagreements_with_raw_full_set": disagree,
        "prefiltered_policies_per_request": {
            "p50": sizes[sizes.len() / 2], "max": sizes[sizes.len() - 1],
        },
        "decide": json_stats(&decide),
        "decisions_per_sec_one_thread": per_sec.round(),
        "raw_is_authorized_full_set": json_stats(&raw_full),
        "raw_is_authorized_prefiltered": json_stats(&raw_pre),
        "ratio_p99_decide_vs_raw_full": round(decide.p99_us / raw_full.p99_us),
        "ratio_p99_decide_vs_raw_prefiltered": round(decide.p99_us / raw_pre.p99_us),
        "decide_during_rebuild_and_replace": json_stats(&reload),
        "rebuild_and_replace": { "snapshots_replaced": rebuilds, "decisions": reload_decisions },
        "decide_during_swap_loop": json_stats(&swap),
        "swap_loop": { "snapshots_replaced": swaps, "decisions": n },
        "targets": {
            "p99_le_50us": decide.p99_us <= 50.0,
            "ge_50k_per_sec": per_sec >= 50_000.0,
            "le_2x_raw_full": decide.p99_us <= 2.0 * raw_full.p99_us,
            "reload_p99_le_1ms": reload.p99_us <= 1000.0,
            "swap_loop_p99_le_1ms": swap.p99_us <= 1000.0,
        },
    });
    let text = serde_json::to_string_pretty(&summary).expect("json");
    println!("{text}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(&path, format!("{text}\n")).expect("write BENCH_OUT");
    }
}
