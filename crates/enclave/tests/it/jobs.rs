//! Jobs end to end, with real runc sandboxes (the tests run as root with runc installed): a
//! data scientist runs a Python job from the CLI, follows its log, receives exactly its
//! declared secrets, keeps outputs on the project volume and reaches nothing outside its
//! project; failures, time limits, cancels and bad input; and a server killed with `kill -9`
//! under a running job leaves nothing behind and records the job as failed.

use crate::common::{login_cli, ok, run};
use crate::BIN;
use enclave_testkit::{Options, Server, PASSWORD};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DB_VALUE: &str = "pg-Jobs-Walrus-Quartz-9182";

/// An admin and `olivia`, who owns `fraud` (with DB_PASSWORD); `victor` views it.
async fn setup(s: &Server) -> (enclave_testkit::Api, enclave_testkit::Api) {
    crate::common::fraud_project(s, Some(DB_VALUE)).await
}

/// Polls a job until it ends (bounded).
async fn wait_end(api: &enclave_testkit::Api, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (st, job) = api.get(&format!("/api/v1/projects/fraud/jobs/{id}")).await;
        assert_eq!(st, 200, "{job}");
        if !["queued", "running"].contains(&job["state"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not end: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_running(api: &enclave_testkit::Api, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = api.get(&format!("/api/v1/projects/fraud/jobs/{id}")).await;
        if job["state"] == "running" {
            return;
        }
        assert!(Instant::now() < deadline, "job {id} did not start: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit(api: &enclave_testkit::Api, body: Value) -> (u16, Value) {
    api.post("/api/v1/projects/fraud/jobs", body).await
}

/// The host's own IPv4 addresses (loopback included): targets a job must not reach.
fn host_addresses() -> Vec<String> {
    let mut out = vec!["127.0.0.1".to_string()];
    let text = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for w in lines.windows(2) {
        if w[1].contains("/32 host LOCAL") {
            let a = w[0].trim().trim_start_matches("|-- ").to_string();
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_python_job_gets_its_secret_keeps_its_output_and_reaches_nothing_outside() {
    let s = Server::start(BIN);
    let (admin, owner) = setup(&s).await;
    login_cli(&s, "olivia", "olivia");
    let port = url_port(&s.base);

    // The job, as a data scientist would write it: reads its secret from the environment and
    // a file, writes an output to the project volume, and tries the server and the host.
    let targets = host_addresses();
    let script = format!(
        r#"
import os, socket
pw = os.environ.get("DB_PW", "")
print("secret-env-ok", pw == {DB_VALUE:?})
print("secret-file-ok", open("/run/secrets/db").read() == {DB_VALUE:?})
print("other-env", sorted(k for k in os.environ if k.startswith("DB")))
print("uid", os.getuid(), "cwd", os.getcwd())
open("/work/result.txt", "w").write("42\n")
for host in {targets:?}:
    try:
        socket.create_connection((host, {port}), timeout=2).close()
        print("REACHED", host)
    except OSError as e:
        print("blocked", host, e.errno)
print("done")
"#
    );
    let o = run(
        s.cli("olivia"),
        &[
            "jobs",
            "run",
            "--project",
            "fraud",
            "--secret",
            "DB_PASSWORD=env:DB_PW",
            "--secret",
            "DB_PASSWORD=file:/run/secrets/db",
            "--memory",
            "256M",
            "--timeout",
            "2m",
            "--",
            "python3",
            "-c",
            &script,
        ],
        None,
    );
    let out = ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("secret-env-ok True"), "{out}\n{err}");
    assert!(out.contains("secret-file-ok True"), "{out}");
    assert!(out.contains("other-env ['DB_PW']"), "{out}");
    assert!(out.contains("uid 0 cwd /work"), "{out}");
    assert!(out.contains("done"), "{out}");
    assert!(!out.contains("REACHED"), "a job reached the host: {out}");
    for t in &targets {
        assert!(out.contains(&format!("blocked {t}")), "{t}: {out}");
    }
    assert!(err.contains("succeeded"), "{err}");

    // The output stays on the project volume for the next job.
    let o = run(
        s.cli("olivia"),
        &[
            "jobs",
            "run",
            "--project",
            "fraud",
            "--",
            "cat",
            "/work/result.txt",
        ],
        None,
    );
    assert_eq!(ok(&o).trim(), "42");

    // The history lists both, with their states; `show` and `logs` work.
    let (st, list) = owner.get("/api/v1/projects/fraud/jobs").await;
    assert_eq!(st, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(items
        .iter()
        .all(|j| j["state"] == "succeeded" && j["exit_code"] == 0));
    let first = items[1]["id"].as_str().unwrap().to_string();
    assert_eq!(
        items[1]["secrets"],
        json!(["DB_PASSWORD=env:DB_PW", "DB_PASSWORD=file:/run/secrets/db"])
    );
    let logs = ok(&run(
        s.cli("olivia"),
        &["jobs", "logs", &first, "--project", "fraud"],
        None,
    ));
    assert!(logs.contains("secret-env-ok True"), "{logs}");
    let shown = ok(&run(
        s.cli("olivia"),
        &["jobs", "show", &first, "--project", "fraud"],
        None,
    ));
    assert!(shown.contains("succeeded"), "{shown}");

    // A viewer sees the history but cannot run jobs.
    let viewer = s.login("victor", PASSWORD).await;
    let (st, _) = viewer.get("/api/v1/projects/fraud/jobs").await;
    assert_eq!(st, 200);
    let (st, b) = submit(&viewer, json!({"command": ["true"]})).await;
    assert!(st == 403 || st == 404, "{st} {b}");

    // Someone outside the project sees none of it: not the list, a job, its log, or cancel.
    admin.user(&s, "mallory").await;
    let outsider = s.login("mallory", PASSWORD).await;
    for path in [
        "/api/v1/projects/fraud/jobs".to_string(),
        format!("/api/v1/projects/fraud/jobs/{first}"),
        format!("/api/v1/projects/fraud/jobs/{first}/log"),
    ] {
        let (st, b) = outsider.get(&path).await;
        assert_eq!(st, 404, "{path}: {b}");
    }
    let (st, _) = outsider
        .post(
            &format!("/api/v1/projects/fraud/jobs/{first}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = submit(&outsider, json!({"command": ["true"]})).await;
    assert_eq!(st, 404);

    // Every transition is audited; no record carries the secret's value.
    let (st, page) = admin.get("/api/v1/audit?project=fraud&limit=500").await;
    assert_eq!(st, 200, "{page}");
    let text = page.to_string();
    assert!(!text.contains(DB_VALUE));
    for action in ["job.submit", "job.start", "job.end", "workload.register"] {
        assert!(
            text.contains(&format!("\"{action}\"")),
            "{action} missing from the trail"
        );
    }
}

fn url_port(base: &str) -> u16 {
    base.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

#[tokio::test]
async fn failures_time_limits_cancels_and_bad_input() {
    let s = Server::start(BIN);
    let (_, owner) = setup(&s).await;

    // A failing command: failed with its exit code; the CLI fails too.
    login_cli(&s, "olivia", "olivia");
    let o = run(
        s.cli("olivia"),
        &[
            "jobs",
            "run",
            "--project",
            "fraud",
            "--",
            "sh",
            "-c",
            "echo oops; exit 3",
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("oops"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exit code 3"));

    // The time limit kills it.
    let (st, job) = submit(&owner, json!({"command": ["sleep", "60"], "timeout": "2s"})).await;
    assert_eq!(st, 201, "{job}");
    let job = wait_end(&owner, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "timed_out", "{job}");

    // A memory hog ends at its limit, the API answering meanwhile.
    let (st, job) = submit(
        &owner,
        json!({"command": ["python3", "-c", "a=[]\nwhile True: a.append(bytearray(8<<20))"], "memory": "64M"}),
    )
    .await;
    assert_eq!(st, 201, "{job}");
    let job = wait_end(&owner, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["exit_code"], 137, "{job}");

    // Cancel a running job.
    let (_, job) = submit(&owner, json!({"command": ["sleep", "60"]})).await;
    let id = job["id"].as_str().unwrap().to_string();
    wait_running(&owner, &id).await;
    let (st, b) = owner
        .post(
            &format!("/api/v1/projects/fraud/jobs/{id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let job = wait_end(&owner, &id).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    let (st, _) = owner
        .post(
            &format!("/api/v1/projects/fraud/jobs/{id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(st, 409, "an ended job cannot be cancelled again");

    // Bad input: a clear error and nothing queued.
    let (_, before) = owner.get("/api/v1/projects/fraud/jobs").await;
    let count = before["items"].as_array().unwrap().len();
    for (body, status, field) in [
        (json!({"command": []}), 400, "command"),
        (json!({"command": [""]}), 400, "command"),
        (
            json!({"command": ["true"], "memory": "lots"}),
            400,
            "memory",
        ),
        (json!({"command": ["true"], "memory": "64G"}), 400, "memory"),
        (json!({"command": ["true"], "cpus": "99"}), 400, "cpus"),
        (json!({"command": ["true"], "timeout": "0"}), 400, "timeout"),
        (
            json!({"command": ["true"], "timeout": "30d"}),
            400,
            "timeout",
        ),
        (
            json!({"command": ["true"], "secrets": ["DB_PASSWORD"]}),
            400,
            "",
        ),
        (
            json!({"command": ["true"], "secrets": ["NOPE=env:X"]}),
            404,
            "",
        ),
        (
            json!({"command": ["true"], "secrets": ["DB_PASSWORD=env:PATH"]}),
            400,
            "",
        ),
        (json!({"command": ["true"], "surprise": 1}), 400, ""),
    ] {
        let (st, b) = submit(&owner, body.clone()).await;
        assert_eq!(st, status, "{body}: {b}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
        if !field.is_empty() {
            assert_eq!(b["details"]["field"], field, "{body}: {b}");
        }
    }
    let (st, _) = owner
        .post("/api/v1/projects/nope/jobs", json!({"command": ["true"]}))
        .await;
    assert_eq!(st, 404);
    let (_, after) = owner.get("/api/v1/projects/fraud/jobs").await;
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        count,
        "nothing queued"
    );
    let (st, _) = owner.get("/api/v1/projects/fraud/jobs/job-nope").await;
    assert_eq!(st, 404);
}

/// Interfaces, runc containers and netns files of this server's sandboxes.
fn leftovers(s: &Server) -> Vec<String> {
    let data = std::fs::canonicalize(&s.data_dir).unwrap();
    let tag = enclave_sandbox::net::runtime_tag(&data);
    let rt = std::path::PathBuf::from(format!("/dev/shm/enclave-{tag}"));
    let rt_tag = enclave_sandbox::net::runtime_tag(&rt);
    let mut found = Vec::new();
    for dir in [rt.join("runc"), rt.join("netns")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                found.push(e.unwrap().path().display().to_string());
            }
        }
    }
    for e in std::fs::read_dir("/sys/class/net").unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if name.contains(&rt_tag) {
            found.push(name);
        }
    }
    found
}

#[tokio::test]
async fn a_killed_server_leaves_nothing_behind_and_fails_the_running_job() {
    let s = Server::start(BIN);
    let (_, owner) = setup(&s).await;
    // A duration no other test uses, so the process check below sees only this job.
    let (st, job) = submit(&owner, json!({"command": ["sleep", "4321"]})).await;
    assert_eq!(st, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    wait_running(&owner, &id).await;
    assert!(!leftovers(&s).is_empty(), "the running job has a sandbox");

    s.signal("KILL");
    let s = s.restart(Options::default());
    let owner = s.login("olivia", PASSWORD).await;
    let (st, job) = owner
        .get(&format!("/api/v1/projects/fraud/jobs/{id}"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["reason"].as_str().unwrap().contains("server stopped"),
        "{job}"
    );
    assert!(leftovers(&s).is_empty(), "left behind: {:?}", leftovers(&s));
    // No process of the job survives.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "sleep 4321"])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "sleep 4321 still runs");

    // Jobs still run after the restart, and a graceful stop also records a running job.
    let (_, job) = submit(&owner, json!({"command": ["sleep", "300"]})).await;
    let id = job["id"].as_str().unwrap().to_string();
    wait_running(&owner, &id).await;
    let mut s = s;
    s.stop();
    assert!(leftovers(&s).is_empty(), "left behind: {:?}", leftovers(&s));
    let s = s.restart(Options::default());
    let owner = s.login("olivia", PASSWORD).await;
    let (_, job) = owner
        .get(&format!("/api/v1/projects/fraud/jobs/{id}"))
        .await;
    assert_eq!(job["state"], "failed", "{job}");
}
