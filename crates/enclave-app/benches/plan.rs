//! Resolving a workload's injection plan of 20 secrets, end to end through the use case:
//! 20 policy decisions for the workload, one store read, 20 AES-256-GCM opens, and the durable
//! audit record of the injection. Side by side, in the same run: the anchor, one durable
//! audit append alone (`App::audit`: the floor any audited read pays), so the ratio shows what
//! resolution adds on top of durability.
//!
//! Run: `cargo bench -p enclave-app --bench plan` (release profile). Prints a JSON summary,
//! also written to `$BENCH_OUT` when set. `ITERATIONS` (default 2000) sets the sample count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use enclave_app::{App, Keyring, NewUser, RequestMeta, Settings, SystemClock};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::secrets::parse_mapping;
use enclave_keys::FileMasterKeys;
use enclave_policy::WorkloadKind;
use enclave_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PW: &str = "Granite-Orchard-Violet-27";
const SECRETS: usize = 20;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn summary(mut v: Vec<Duration>) -> serde_json::Value {
    v.sort_unstable();
    serde_json::json!({
        "p50_us": pct(&v, 0.50),
        "p99_us": pct(&v, 0.99),
        "max_us": pct(&v, 1.0),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let iterations: usize = std::env::var("ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.db")).await.unwrap();
    let master =
        Arc::new(FileMasterKeys::open_or_create_local(&dir.path().join("master.key")).unwrap());
    let app = App::new(
        store,
        Arc::new(SystemClock),
        Settings {
            hash_concurrency: 1,
            ..Settings::default()
        },
    )
    .unwrap()
    .with_keys(Arc::new(Keyring::new(master)));
    let meta = RequestMeta {
        source: "127.0.0.1".into(),
        request_id: "req_bench".into(),
    };
    app.bootstrap_admin("admin", PW).await.unwrap();
    let admin = app.login_session("admin", PW, &meta).await.unwrap().caller;
    app.create_user(
        &admin,
        NewUser {
            username: "olivia".into(),
            password: PW.into(),
            ..NewUser::default()
        },
    )
    .await
    .unwrap();
    app.create_project(&admin, "fraud", "", Some("olivia"))
        .await
        .unwrap();
    let owner = app.login_session("olivia", PW, &meta).await.unwrap().caller;
    let mut plan = Vec::new();
    for i in 0..SECRETS {
        let value = format!("value-{i}-{}", "x".repeat(64));
        app.set_secret(&owner, "fraud", &format!("S{i}"), value.as_bytes(), None)
            .await
            .unwrap();
        plan.push(parse_mapping(&format!("S{i}=env:VAR_{i}")).unwrap());
    }
    let wl = app
        .register_workload(&owner, "fraud", WorkloadKind::Job, "bench")
        .await
        .unwrap();

    // Warm-up.
    for _ in 0..50 {
        let got = app
            .resolve_secrets(&wl, "fraud", &plan, &meta)
            .await
            .unwrap();
        assert_eq!(got.len(), SECRETS);
    }
    // The policy part alone: the same decisions straight from the engine.
    let engine = app.policy_engine();
    let requests: Vec<_> = (0..SECRETS)
        .map(|i| enclave_policy::Request {
            principal: enclave_policy::Principal::Workload(wl.clone()),
            credential: enclave_policy::Credential::full(
                enclave_policy::AuthMethod::Workload,
                false,
            ),
            source_ip: "127.0.0.1".parse().unwrap(),
            action: enclave_core::authz::Action::SecretReadValue,
            resource: enclave_policy::Resource::Secret {
                name: format!("S{i}"),
                project: "fraud".into(),
                owner: None,
            },
            extra: None,
        })
        .collect();
    let mut decisions = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        for r in &requests {
            assert!(engine.decide(r, app.now()).allowed);
        }
        decisions.push(t.elapsed());
    }
    let mut resolve = Vec::with_capacity(iterations);
    let mut anchor = Vec::with_capacity(iterations);
    // Alternate, so both see the same machine state.
    for _ in 0..iterations {
        let t = Instant::now();
        let got = app
            .resolve_secrets(&wl, "fraud", &plan, &meta)
            .await
            .unwrap();
        resolve.push(t.elapsed());
        std::hint::black_box(got);
        let rec = AuditRecord {
            at: app.now(),
            actor: "bench".into(),
            auth: "system".into(),
            source: "local".into(),
            action: "bench.append".into(),
            resource: "bench:anchor".into(),
            project: None,
            outcome: Outcome::Success,
            request_id: "req_bench".into(),
            detail: serde_json::Map::new(),
        };
        let t = Instant::now();
        app.audit(rec).await.unwrap();
        anchor.push(t.elapsed());
    }
    let r = summary(resolve);
    let a = summary(anchor);
    let out = serde_json::json!({
        "secrets_per_plan": SECRETS,
        "iterations": iterations,
        "resolve_plan": r,
        "anchor_durable_audit_append": a,
        "policy_decisions_alone": summary(decisions),
        "ratio_p50": r["p50_us"].as_f64().unwrap() / a["p50_us"].as_f64().unwrap(),
        "ratio_p99": r["p99_us"].as_f64().unwrap() / a["p99_us"].as_f64().unwrap(),
        "overhead_p50_us": r["p50_us"].as_f64().unwrap() - a["p50_us"].as_f64().unwrap(),
    });
    let text = serde_json::to_string_pretty(&out).unwrap();
    println!("{text}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(path, text).unwrap();
    }
    app.store().close().await;
}
