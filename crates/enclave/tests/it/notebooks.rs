//! Notebooks end to end, with real JupyterLab in real runc sandboxes (the tests run as root
//! with runc installed): an admin builds an environment from a package index on loopback, a
//! data scientist starts a notebook server, runs code over the gateway's kernel websocket and
//! finds it in the audit trail; nobody else gets in; revoking her token closes her open
//! websocket; stopping keeps her files; an idle server is culled; bad input changes nothing.

use crate::BIN;
use enclave_testkit::pypi::PyPi;
use enclave_testkit::{Api, Options, Server, PASSWORD};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DB_VALUE: &str = "pg-Notebook-Heron-Basalt-4471";

/// Where tests keep built environments (shared by every test and run: each is built once).
pub(crate) fn envs_dir() -> PathBuf {
    std::env::var_os("ENCLAVE_TEST_ENVS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/enclave-test/envs"))
}

/// The package index: the one `scripts/test.sh` runs for the whole test run (so environments
/// are built once), or one started here.
pub(crate) fn index() -> (String, Option<PyPi>) {
    match std::env::var("ENCLAVE_TEST_INDEX_URL") {
        Ok(u) if !u.is_empty() => (u, None),
        _ => {
            let p = PyPi::start(&PyPi::wheels_dir());
            (p.index_url(), Some(p))
        }
    }
}

pub(crate) fn options(index: &str, idle: &str) -> Options {
    std::fs::create_dir_all(envs_dir()).unwrap();
    Options {
        env: vec![
            ("ENCLAVE_NOTEBOOKS_INDEX_URL".into(), index.into()),
            (
                "ENCLAVE_NOTEBOOKS_ENVS_DIR".into(),
                envs_dir().to_string_lossy().into_owned(),
            ),
            ("ENCLAVE_NOTEBOOKS_IDLE_TIMEOUT".into(), idle.into()),
        ],
        args: vec![],
    }
}

/// The pins of the test environment (from the wheelhouse's list).
fn lab_template() -> Value {
    json!({
        "python": "3.11",
        "packages": ["jupyterlab==4.6.6", "ipykernel==7.4.0"],
        "presets": [{"name": "small", "cpus": "1", "memory": "1G"}]
    })
}

/// Defines the `lab` environment and waits until it is built (bounded).
pub(crate) async fn build_lab(admin: &Api) {
    let (st, b) = admin
        .call("PUT", "/api/v1/environments/lab", Some(lab_template()))
        .await;
    assert_eq!(st, 200, "{b}");
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let (st, env) = admin.get("/api/v1/environments/lab").await;
        assert_eq!(st, 200, "{env}");
        match env["status"].as_str().unwrap() {
            "ready" => return,
            "failed" => panic!("environment build failed: {env}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "environment not built: {env}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(crate) async fn wait_state(api: &Api, name: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (st, nb) = api
            .get(&format!("/api/v1/projects/fraud/notebooks/{name}"))
            .await;
        assert_eq!(st, 200, "{nb}");
        if nb["state"] == want {
            return nb;
        }
        assert!(
            nb["state"] != "failed" || want == "failed",
            "notebook failed: {nb}"
        );
        assert!(Instant::now() < deadline, "notebook not {want}: {nb}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The Python of the built `lab` environment on the host (it has tornado, for the client).
pub(crate) fn lab_python() -> PathBuf {
    let found = std::fs::read_dir(envs_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lab-"))
                && p.join("bin/python").exists()
        });
    found.expect("the lab environment").join("bin/python")
}

pub(crate) fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/kernel_client.py")
}

/// Runs code in a new kernel of `notebook` through the gateway; returns the client's answer.
fn run_code(s: &Server, token: &str, notebook: &str, code: &str) -> Value {
    let out = Command::new(lab_python())
        .arg(client_script())
        .args([
            s.base.as_str(),
            &s.cert_path().to_string_lossy(),
            "fraud",
            notebook,
            code,
        ])
        .env("ENCLAVE_TOKEN", token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "client said {text:?}; stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Prints the end of the server's log when the test fails (CI keeps nothing else).
pub(crate) struct LogOnPanic<'a>(pub(crate) &'a Server);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let err = self.0.stderr.lock().unwrap();
            let out = self.0.stdout.lock().unwrap();
            for l in out
                .iter()
                .chain(err.iter())
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .iter()
                .rev()
            {
                eprintln!("server: {l}");
            }
        }
    }
}

pub(crate) async fn audit(admin: &Api, action: &str) -> Vec<Value> {
    let (st, page) = admin
        .get(&format!("/api/v1/audit?action={action}&limit=500"))
        .await;
    assert_eq!(st, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_data_scientist_runs_code_in_jupyterlab_through_the_gateway_and_nobody_else_can() {
    let (index, _pypi) = index();
    let s = Server::start_with(BIN, options(&index, "off"));
    let _log = LogOnPanic(&s);
    let (admin, owner) = crate::common::fraud_project(&s, Some(DB_VALUE)).await;
    // A second project and its owner, for cross-project checks.
    let mallory = admin.user(&s, "mallory").await;
    let (st, b) = admin
        .post(
            "/api/v1/projects",
            json!({"name": "other", "owner": "mallory"}),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    build_lab(&admin).await;

    // Bad input is refused with the field named, and creates nothing.
    for (body, want) in [
        (json!({"name": "Bad Name", "environment": "lab"}), 400),
        (json!({"name": "scratch", "environment": "nope"}), 404),
        (
            json!({"name": "scratch", "environment": "lab", "preset": "huge"}),
            400,
        ),
        (
            json!({"name": "scratch", "environment": "lab", "secrets": ["MISSING=env:M"]}),
            404,
        ),
        (
            json!({"name": "scratch", "environment": "lab", "extra": 1}),
            400,
        ),
    ] {
        let (st, b) = owner.post("/api/v1/projects/fraud/notebooks", body).await;
        assert_eq!(st, want, "{b}");
    }
    let (_, list) = owner.get("/api/v1/projects/fraud/notebooks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

    // Olivia starts a notebook server with her project's database password.
    let (st, nb) = owner
        .post(
            "/api/v1/projects/fraud/notebooks",
            json!({"name": "analysis", "environment": "lab", "secrets": ["DB_PASSWORD=env:DB_PW"]}),
        )
        .await;
    assert_eq!(st, 201, "{nb}");
    assert_eq!(nb["state"], "starting");
    let nb = wait_state(&owner, "analysis", "ready").await;
    // A project with a running server cannot be deleted from under it.
    let (st, b) = owner.call("DELETE", "/api/v1/projects/fraud", None).await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(nb["url"], "/p/fraud/nb/analysis/lab");

    // JupyterLab's page comes through the gateway, with the notebook CSP.
    let r = s
        .client()
        .get(s.url("/p/fraud/nb/analysis/lab"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_lab_page(r).await;

    // She runs code over the kernel websocket: it sees its secret and writes to the volume.
    // (The cell prints the value reversed: outputs are not recorded, the source is.)
    let code = "import os\nprint(os.environ['DB_PW'][::-1])\nopen('/work/result.txt','w').write('kept')\n6 * 7";
    let out = run_code(&s, &owner.token, "analysis", code);
    assert_eq!(out["status"], "ok", "{out}");
    let reversed: String = DB_VALUE.chars().rev().collect();
    assert_eq!(out["stdout"], format!("{reversed}\n"), "{out}");
    assert_eq!(out["result"], "42", "{out}");

    // The cell's source is in the audit trail with who, where and which notebook; the
    // secret's value is nowhere in the trail.
    let runs = audit(&admin, "notebook.execute").await;
    let rec = runs
        .iter()
        .find(|r| r["detail"]["code"].as_str().unwrap_or("").contains("6 * 7"))
        .unwrap_or_else(|| panic!("no record of the cell: {runs:?}"));
    assert_eq!(rec["actor"], "olivia");
    assert_eq!(rec["project"], "fraud");
    assert_eq!(rec["resource"], "notebook:fraud/analysis");
    let (_, all) = admin.get("/api/v1/audit?limit=1000").await;
    assert!(!all.to_string().contains(DB_VALUE));
    assert_eq!(audit(&admin, "notebook.open").await.len(), 1);

    // Nobody else gets in: no credential, a viewer of the project, another project's owner,
    // an admin without a grant, and another project's path.
    let anon = s
        .client()
        .get(s.url("/p/fraud/nb/analysis/api/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let victor = s.login("victor", PASSWORD).await;
    for (who, api) in [
        ("victor", &victor),
        ("mallory", &mallory),
        ("admin", &admin),
    ] {
        let r = s
            .client()
            .get(s.url("/p/fraud/nb/analysis/api/status"))
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 403 || r.status() == 404,
            "{who} got {}",
            r.status()
        );
        let out = run_code(&s, &api.token, "analysis", "1");
        assert!(out.get("error").is_some(), "{who} ran code: {out}");
    }
    let r = s
        .client()
        .get(s.url("/p/other/nb/analysis/api/status"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Cross-site requests with her cookie are refused before JupyterLab sees them (the
    // bearer path is not a cookie; a forged Origin on a cookie request is).
    let login = s
        .client()
        .post(s.url("/api/v1/auth/session"))
        .json(&json!({"username": "olivia", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = s
        .client()
        .post(s.url("/p/fraud/nb/analysis/api/kernels"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .json(&json!({"name": "python3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Revoking access closes an open kernel websocket: she holds one open, then her token is
    // revoked.
    let olivia2 = s.login("olivia", PASSWORD).await;
    let mut held = Command::new(lab_python())
        .arg(client_script())
        .args([
            s.base.as_str(),
            &s.cert_path().to_string_lossy(),
            "fraud",
            "analysis",
            "2 + 2",
            "--hold",
            "30",
        ])
        .env("ENCLAVE_TOKEN", &owner.token)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(held.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["result"], "4", "{first}");
    let (_, tokens) = olivia2.get("/api/v1/tokens").await;
    let id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "test" && t["id"].is_string())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .unwrap();
    let mut revoked = false;
    for t in tokens["items"].as_array().unwrap() {
        let tid = t["id"].as_str().unwrap();
        // Revoke the first token (the one the held websocket uses), not olivia2's.
        if tid == id && !revoked {
            let (st, b) = olivia2
                .call("DELETE", &format!("/api/v1/tokens/{tid}"), None)
                .await;
            assert!(st == 200 || st == 204, "{b}");
            revoked = true;
        }
    }
    let (st, _) = owner.get("/api/v1/projects/fraud/notebooks").await;
    let (api, closed_line) = if st == 401 {
        (olivia2, lines.next().unwrap().unwrap())
    } else {
        // olivia2's token was the one revoked: revoke the other one too.
        let (_, tokens) = owner.get("/api/v1/tokens").await;
        for t in tokens["items"].as_array().unwrap() {
            owner
                .call(
                    "DELETE",
                    &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()),
                    None,
                )
                .await;
        }
        (
            s.login("olivia", PASSWORD).await,
            lines.next().unwrap().unwrap(),
        )
    };
    let closed: Value = serde_json::from_str(&closed_line).unwrap();
    assert_eq!(closed["closed"], true, "{closed}");
    assert!(closed["after"].as_f64().unwrap() < 10.0, "{closed}");
    let _ = held.wait();

    // Stopping keeps her files; starting again finds them.
    let (st, b) = api
        .post("/api/v1/projects/fraud/notebooks/analysis/stop", json!({}))
        .await;
    assert_eq!(st, 200, "{b}");
    wait_state(&api, "analysis", "stopped").await;
    let r = s
        .client()
        .get(s.url("/p/fraud/nb/analysis/api/status"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let (st, b) = api
        .post("/api/v1/projects/fraud/notebooks/analysis/start", json!({}))
        .await;
    assert_eq!(st, 200, "{b}");
    wait_state(&api, "analysis", "ready").await;
    let out = run_code(
        &s,
        &api.token,
        "analysis",
        "open('/work/result.txt').read()",
    );
    assert_eq!(out["result"], "'kept'", "{out}");

    // Deleting ends the server and its workload.
    let (st, b) = api
        .call("DELETE", "/api/v1/projects/fraud/notebooks/analysis", None)
        .await;
    assert_eq!(st, 204, "{b}");
    let (st, _) = api.get("/api/v1/projects/fraud/notebooks/analysis").await;
    assert_eq!(st, 404);
    for action in [
        "notebook.create",
        "notebook.ready",
        "notebook.end",
        "notebook.delete",
    ] {
        assert!(!audit(&admin, action).await.is_empty(), "no {action}");
    }
}

#[tokio::test]
async fn an_idle_notebook_server_is_stopped_and_keeps_its_files() {
    let (index, _pypi) = index();
    let s = Server::start_with(BIN, options(&index, "4s"));
    let _log = LogOnPanic(&s);
    let (admin, owner) = crate::common::fraud_project(&s, None).await;
    build_lab(&admin).await;
    let (st, nb) = owner
        .post(
            "/api/v1/projects/fraud/notebooks",
            json!({"name": "idle", "environment": "lab"}),
        )
        .await;
    assert_eq!(st, 201, "{nb}");
    wait_state(&owner, "idle", "ready").await;
    let nb = wait_state(&owner, "idle", "stopped").await;
    assert!(
        nb["reason"].as_str().unwrap().contains("without activity"),
        "{nb}"
    );
    let culls = audit(&admin, "notebook.cull").await;
    assert_eq!(culls.len(), 1, "{culls:?}");
}

/// JupyterLab's page as the gateway serves it: under the notebook CSP, and without Jupyter's
/// token (`jt_…`), not even in the page's configuration.
pub(crate) async fn assert_lab_page(r: reqwest::Response) {
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("JupyterLab"),
        "{}",
        &page[..page.len().min(300)]
    );
    assert!(
        !page.contains("jt_"),
        "the Jupyter token leaked into the page"
    );
}
