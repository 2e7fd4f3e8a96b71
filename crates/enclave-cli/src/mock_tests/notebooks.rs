//! Notebook server and environment template commands against the mock API: waiting until a
//! server is ready or failed, following a build, the bodies sent, and local checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clap::Parser;
use serde_json::{json, Value};

use super::{cli, start, Mock, Req, TestCli, SECRET};
use crate::config::{Credentials, CA_FILE};

fn notebook(name: &str, state: &str, reason: Option<&str>) -> Value {
    json!({"project": "fraud", "name": name, "state": state, "reason": reason,
        "environment": "datascience", "preset": "small", "cpus": "1",
        "memory_bytes": 2u64 << 30, "secrets": ["DB=env:DB_URL"], "owner": "alice",
        "url": format!("/p/fraud/nb/{name}/lab"), "audit_code": true,
        "created_at": "2025-01-01T00:00:00Z", "started_at": null, "stopped_at": null})
}

fn environment(name: &str, status: &str, percent: Option<u8>, message: Option<&str>) -> Value {
    let installed = if status == "ready" {
        json!(["ipykernel==7.4.0", "jupyterlab==4.6.6", "numpy==2.4.6"])
    } else {
        json!([])
    };
    json!({"name": name, "python": "3.11", "packages": ["jupyterlab==4.6.6", "ipykernel==7.4.0"],
        "presets": [{"name": "small", "cpus": "1", "memory": "2GiB"},
                    {"name": "large", "cpus": "4", "memory": "8GiB"}],
        "fingerprint": "fp1", "status": status, "percent": percent, "message": message,
        "installed": installed})
}

/// Answers of the mock API; a `GET` with several answers gives them in turn (the last one
/// again once they are used up).
struct Script {
    gets: HashMap<&'static str, Vec<Value>>,
    seen: Mutex<HashMap<String, usize>>,
}

impl Script {
    fn answer(&self, req: &Req) -> (u16, String) {
        if req.header("authorization") != Some(&format!("Bearer {SECRET}")) {
            let no = json!({"code": "unauthenticated", "message": "no"});
            return (401, no.to_string());
        }
        let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let target = req.target.as_str();
        if req.method == "GET" {
            if let Some(answers) = self.gets.get(target) {
                let mut seen = self.seen.lock().unwrap();
                let n = seen.entry(target.to_string()).or_insert(0);
                let answer = answers[(*n).min(answers.len() - 1)].clone();
                *n += 1;
                return (200, answer.to_string());
            }
        }
        let (status, answer) = match (req.method.as_str(), target) {
            ("POST", "/api/v1/projects/fraud/notebooks") => {
                let name = body["name"].as_str().unwrap_or_default();
                (201, notebook(name, "starting", None))
            }
            ("POST", "/api/v1/projects/fraud/notebooks/explore/start") => {
                (200, notebook("explore", "starting", None))
            }
            ("POST", "/api/v1/projects/fraud/notebooks/explore/stop") => (
                200,
                notebook("explore", "stopping", Some("stopped by alice")),
            ),
            ("POST", "/api/v1/projects/fraud/notebooks/halting/stop") => (
                200,
                notebook("halting", "stopping", Some("stopped by alice")),
            ),
            ("POST", "/api/v1/projects/fraud/notebooks/busy/start") => (
                409,
                json!({"code": "conflict", "message": "notebook server fraud/busy is already ready"}),
            ),
            ("DELETE", "/api/v1/projects/fraud/notebooks/explore")
            | ("DELETE", "/api/v1/environments/old") => return (204, String::new()),
            ("PUT", "/api/v1/projects/fraud/code-audit") => (200, body),
            ("PUT", "/api/v1/environments/ds") => (200, environment("ds", "queued", None, None)),
            ("POST", "/api/v1/environments/ds/build")
            | ("POST", "/api/v1/environments/bad/build") => {
                (202, environment("ds", "queued", None, None))
            }
            ("POST", "/api/v1/projects/fraud/notebooks/nb503/start") => (
                503,
                json!({"code": "unavailable", "message": "environment ds (it is not built; an admin builds it with `enclave envs build ds`) is unavailable; nothing was changed, retry later"}),
            ),
            ("GET", "/api/v1/environments/nope") => (
                404,
                json!({"code": "not_found", "message": "environment nope not found"}),
            ),
            _ => (
                404,
                json!({"code": "not_found", "message": "notebook fraud/nope not found"}),
            ),
        };
        (status, answer.to_string())
    }
}

fn script() -> Script {
    let nb = |name, state, reason| notebook(name, state, reason);
    let mut gets: HashMap<&'static str, Vec<Value>> = HashMap::new();
    gets.insert(
        "/api/v1/projects/fraud/notebooks",
        vec![json!({"items": [
            nb("explore", "ready", None),
            nb("old-model", "failed", Some("the sandbox\u{1b}[2J ended")),
        ]})],
    );
    gets.insert(
        "/api/v1/projects/fraud/notebooks/explore",
        vec![
            nb("explore", "starting", None),
            nb("explore", "starting", None),
            nb("explore", "ready", None),
        ],
    );
    gets.insert(
        "/api/v1/projects/fraud/notebooks/broken",
        vec![
            nb("broken", "starting", None),
            nb(
                "broken",
                "failed",
                Some("could not start: environment\u{1b}[31m missing"),
            ),
        ],
    );
    gets.insert(
        "/api/v1/projects/fraud/notebooks/halted",
        vec![nb("halted", "stopped", Some("stopped by alice"))],
    );
    gets.insert(
        "/api/v1/projects/fraud/notebooks/halting",
        vec![
            nb("halting", "stopping", Some("stopped by alice")),
            nb("halting", "stopped", Some("stopped by alice")),
        ],
    );
    gets.insert(
        "/api/v1/environments",
        vec![json!({"items": [
            environment("datascience", "ready", None, None),
            environment("ds", "building", Some(40), Some("Installing numpy")),
        ]})],
    );
    gets.insert(
        "/api/v1/environments/ds",
        vec![
            environment("ds", "queued", None, None),
            environment("ds", "building", Some(30), Some("Downloading numpy")),
            environment("ds", "building", Some(35), Some("Downloading pandas")),
            environment("ds", "building", Some(80), Some("Installing")),
            environment("ds", "ready", None, None),
        ],
    );
    gets.insert(
        "/api/v1/environments/bad",
        vec![
            environment("bad", "building", Some(10), Some("Resolving")),
            environment(
                "bad",
                "failed",
                None,
                Some("pip failed:\nERROR: No matching distribution for numpy==0.0.1\u{1b}[2J"),
            ),
        ],
    );
    Script {
        gets,
        seen: Mutex::new(HashMap::new()),
    }
}

/// A mock API and a config dir logged in to it.
async fn session() -> (Mock, tempfile::TempDir) {
    let script = Arc::new(script());
    let mock = start(Arc::new(move |req: &Req| script.answer(req))).await;
    let tmp = tempfile::tempdir().unwrap();
    let creds = Credentials {
        server: mock.url(),
        username: "alice".into(),
        token: SECRET.into(),
        token_id: json!("t1"),
    };
    crate::config::save_credentials(tmp.path(), &creds).unwrap();
    crate::config::write_private(tmp.path(), CA_FILE, mock.cert_pem.as_bytes()).unwrap();
    (mock, tmp)
}

/// The requests made: method and target.
fn calls(mock: &Mock) -> Vec<(String, String)> {
    mock.requests()
        .into_iter()
        .map(|r| (r.method, r.target))
        .collect()
}

/// The JSON body of the first request with this method and target.
fn body_of(mock: &Mock, method: &str, target: &str) -> Value {
    let req = mock
        .requests()
        .into_iter()
        .find(|r| r.method == method && r.target == target)
        .unwrap();
    serde_json::from_str(&req.body).unwrap()
}

fn parse(args: &[&str]) -> Result<TestCli, clap::Error> {
    TestCli::try_parse_from(std::iter::once("enclave").chain(args.iter().copied()))
}

#[tokio::test]
async fn create_waits_until_ready_and_prints_the_url() {
    let (mock, tmp) = session().await;
    let args = [
        "notebooks",
        "create",
        "explore",
        "--project",
        "fraud",
        "--env",
        "datascience",
        "--preset",
        "small",
        "--secret",
        "DB=env:DB_URL",
    ];
    let (code, out, err) = cli(tmp.path(), &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{}/p/fraud/nb/explore/lab\n", mock.url()));
    assert!(
        err.starts_with(
            "Starting notebook server fraud/explore (environment datascience, preset small: \
             1 CPU, 2GiB); Ctrl-C stops waiting, not the server.\n"
        ),
        "{err}"
    );
    // Without a terminal: one line per state, then where to go.
    assert_eq!(
        err.matches("notebook server fraud/explore: starting\n")
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.ends_with("Notebook server fraud/explore is ready; open it in your browser (sign in to the Enclave console there if asked):\n"),
        "{err}"
    );
    assert_eq!(
        body_of(&mock, "POST", "/api/v1/projects/fraud/notebooks"),
        json!({"name": "explore", "environment": "datascience", "preset": "small",
            "secrets": ["DB=env:DB_URL"]})
    );
    let polls = calls(&mock)
        .iter()
        .filter(|(m, t)| m == "GET" && t == "/api/v1/projects/fraud/notebooks/explore")
        .count();
    assert_eq!(polls, 3, "{:?}", calls(&mock));
}

#[tokio::test]
async fn create_that_fails_shows_the_reason_and_exits_1() {
    let (mock, tmp) = session().await;
    let args = ["notebooks", "create", "broken", "--project", "fraud"];
    let (code, out, err) = cli(tmp.path(), &args, "").await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains(
            "error: notebook server fraud/broken failed: could not start: environment?[31m \
             missing (notebook_failed)\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: `enclave notebooks show --project fraud broken` shows it"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err}");
    assert_eq!(
        body_of(&mock, "POST", "/api/v1/projects/fraud/notebooks"),
        json!({"name": "broken", "secrets": []})
    );

    // JSON: the last state is printed before the error.
    let json_args = [
        "--output",
        "json",
        "notebooks",
        "create",
        "broken",
        "--project",
        "fraud",
    ];
    let (code, out, _) = cli(tmp.path(), &json_args, "").await;
    assert_eq!(code, 1);
    let last: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(last["state"], "failed");
}

#[tokio::test]
async fn create_without_waiting_and_show() {
    let (mock, tmp) = session().await;
    let args = [
        "notebooks",
        "create",
        "fresh",
        "--project",
        "fraud",
        "--no-wait",
    ];
    let (code, out, err) = cli(tmp.path(), &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("project:"), "{out}");
    assert!(out.contains("state:       starting\n"), "{out}");
    assert!(
        out.contains(&format!(
            "url:         {}/p/fraud/nb/fresh/lab\n",
            mock.url()
        )),
        "{out}"
    );
    assert!(out.contains("memory:      2GiB\n"), "{out}");
    assert!(
        !calls(&mock).iter().any(|(m, _)| m == "GET"),
        "{:?}",
        calls(&mock)
    );

    let show = ["notebooks", "show", "halted", "--project", "fraud"];
    let (code, out, _) = cli(tmp.path(), &show, "").await;
    assert_eq!(code, 0);
    assert!(
        out.contains("state:       stopped\nreason:      stopped by alice\n"),
        "{out}"
    );
    let (code, out, _) = cli(
        tmp.path(),
        &[
            "--output",
            "json",
            "notebooks",
            "show",
            "halted",
            "--project",
            "fraud",
        ],
        "",
    )
    .await;
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["memory_bytes"], json!(2u64 << 30));
    assert_eq!(shown["url"], "/p/fraud/nb/halted/lab");

    // A notebook that is not there points at the listing.
    let (code, _, err) = cli(
        tmp.path(),
        &["notebooks", "show", "nope", "--project", "fraud"],
        "",
    )
    .await;
    assert_eq!(code, 3);
    assert!(
        err.contains("(not_found)") && err.contains("enclave notebooks list --project fraud"),
        "{err}"
    );
}

#[tokio::test]
async fn list_is_a_table() {
    let (_mock, tmp) = session().await;
    let (code, out, err) = cli(tmp.path(), &["notebooks", "list", "--project", "fraud"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "NAME       STATE   OWNER  ENVIRONMENT  PRESET  CPUS  MEMORY  CODE AUDIT  STARTED  REASON\n\
         explore    ready   alice  datascience  small   1     2GiB    yes         -        -\n\
         old-model  failed  alice  datascience  small   1     2GiB    yes         -        the sandbox?[2J ended\n"
    );
    let json_args = [
        "--output",
        "json",
        "notebooks",
        "list",
        "--project",
        "fraud",
    ];
    let (code, out, _) = cli(tmp.path(), &json_args, "").await;
    assert_eq!(code, 0);
    let items: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["reason"], "the sandbox\u{1b}[2J ended");
}

#[tokio::test]
async fn open_start_stop_delete() {
    let (mock, tmp) = session().await;
    let np = |cmd: &'static str, name: &'static str| -> Vec<&'static str> {
        vec!["notebooks", cmd, name, "--project", "fraud"]
    };

    // `open` prints the URL of a ready server; a stopped one is an error.
    let (code, out, err) = cli(tmp.path(), &np("open", "explore"), "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{}/p/fraud/nb/explore/lab\n", mock.url()));
    assert!(err.contains("still starting"), "{err}");
    let (code, out, err) = cli(tmp.path(), &np("open", "halted"), "").await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("is stopped (stopped by alice) (not_running)")
            && err.contains("enclave notebooks start --project fraud halted"),
        "{err}"
    );

    // `stop` waits until it has stopped; --no-wait does not.
    let (code, out, err) = cli(tmp.path(), &np("stop", "halting"), "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Stopped notebook server fraud/halting; its files stay on the project volume.\n"
    );
    assert_eq!(err, "notebook server fraud/halting: stopping\n");
    let (code, out, err) = cli(tmp.path(), &np("stop", "halted"), "").await;
    assert_eq!(code, 3, "{err}"); // the mock has no stop for it
    assert_eq!(out, "");
    let mut args = np("stop", "explore");
    args.push("--no-wait");
    let (code, out, err) = cli(tmp.path(), &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Notebook server fraud/explore is stopping; its files stay on the project volume.\n"
    );

    // `start` waits for ready (the mock's explore answers starting twice, then ready).
    let (code, out, err) = cli(tmp.path(), &np("start", "explore"), "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("/p/fraud/nb/explore/lab\n"), "{out}");

    // A refusal keeps its exit code and the server's message.
    let (code, _, err) = cli(tmp.path(), &np("start", "nb503"), "").await;
    assert_eq!(code, 4);
    assert!(
        err.contains("enclave envs build ds") && err.contains("nothing was changed"),
        "{err}"
    );

    let (code, out, err) = cli(tmp.path(), &np("delete", "explore"), "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Deleted notebook server fraud/explore; its files stay on the project volume.\n"
    );
    assert!(calls(&mock).contains(&(
        "DELETE".to_string(),
        "/api/v1/projects/fraud/notebooks/explore".to_string()
    )));
}

#[tokio::test]
async fn code_audit_on_and_off() {
    let (mock, tmp) = session().await;
    let target = "/api/v1/projects/fraud/code-audit";
    for (setting, on) in [("off", false), ("on", true)] {
        let args = ["notebooks", "code-audit", "--project", "fraud", setting];
        let (code, out, err) = cli(tmp.path(), &args, "").await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with(&format!("Code audit is {setting} for project fraud")),
            "{out}"
        );
        let req = mock.requests().pop().unwrap();
        assert_eq!((req.method.as_str(), req.target.as_str()), ("PUT", target));
        let sent: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(sent, json!({"audit_code": on}));
    }
    let json_args = [
        "--output",
        "json",
        "notebooks",
        "code-audit",
        "--project",
        "fraud",
        "off",
    ];
    let (code, out, _) = cli(tmp.path(), &json_args, "").await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"audit_code": false})
    );
    assert!(parse(&["notebooks", "code-audit", "--project", "fraud", "maybe"]).is_err());
    assert!(parse(&["notebooks", "code-audit", "on"]).is_err());
}

#[tokio::test]
async fn envs_list_and_show() {
    let (_mock, tmp) = session().await;
    let (code, out, err) = cli(tmp.path(), &["envs", "list"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "NAME         PYTHON  STATUS        PRESETS      PINS  MESSAGE\n\
         datascience  3.11    ready         small,large  2     -\n\
         ds           3.11    building 40%  small,large  2     Installing numpy\n"
    );

    let (code, out, err) = cli(tmp.path(), &["envs", "show", "bad"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("name:        bad\npython:      3.11\nstatus:      building 10%\nmessage:     Resolving\n"), "{out}");
    assert!(
        out.contains("pinned packages (2):\n  jupyterlab==4.6.6\n  ipykernel==7.4.0\n"),
        "{out}"
    );

    let (code, _, err) = cli(tmp.path(), &["envs", "show", "nope"], "").await;
    assert_eq!(code, 3);
    assert!(err.contains("enclave envs list"), "{err}");

    let (code, out, err) = cli(tmp.path(), &["envs", "delete", "old"], "").await;
    assert_eq!(
        (code, out.as_str()),
        (0, "Deleted environment template old.\n"),
        "{err}"
    );
}

#[tokio::test]
async fn envs_build_follows_progress_until_ready() {
    let (mock, tmp) = session().await;
    let (code, out, err) = cli(tmp.path(), &["envs", "build", "ds"], "").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Environment ds is ready (3 packages installed).\n");
    // One line per status and per 10 percent (35% is in the same tens as 30%).
    assert_eq!(
        err,
        "Building environment ds (Ctrl-C stops following, not the build).\n\
         build of ds queued: it waits for another build\n\
         building ds: 30% Downloading numpy\n\
         building ds: 80% Installing\n"
    );
    let c = calls(&mock);
    assert_eq!(
        c[0],
        ("POST".into(), "/api/v1/environments/ds/build".into())
    );
    assert_eq!(c.len(), 6, "{c:?}");

    let (code, out, err) = cli(tmp.path(), &["envs", "build", "bad"], "").await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains(
            "error: the build of environment bad failed (build_failed)\n  pip failed:\n  \
             ERROR: No matching distribution for numpy==0.0.1?[2J\nhint: fix the template"
        ),
        "{err}"
    );

    let (code, out, err) = cli(tmp.path(), &["envs", "build", "ds", "--no-wait"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Build of environment ds requested"),
        "{out}"
    );
}

#[tokio::test]
async fn envs_put_sends_the_template() {
    let (mock, tmp) = session().await;
    let target = "/api/v1/environments/ds";
    let args = [
        "envs",
        "put",
        "ds",
        "--python",
        "3.12",
        "--package",
        "jupyterlab==4.6.6",
        "--package",
        "ipykernel==7.4.0",
        "--preset",
        "small:1:2G",
        "--preset",
        "half:0.5:512M",
    ];
    let (code, out, err) = cli(tmp.path(), &args, "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("name:        ds\n"), "{out}");
    assert!(err.contains("enclave envs build ds"), "{err}");
    assert_eq!(
        body_of(&mock, "PUT", target),
        json!({"python": "3.12", "packages": ["jupyterlab==4.6.6", "ipykernel==7.4.0"],
            "presets": [{"name": "small", "cpus": "1", "memory": "2G"},
                        {"name": "half", "cpus": "0.5", "memory": "512M"}]})
    );

    // From a file (here the output of `envs show --output json`), then following the build.
    let file = tmp.path().join("template.json");
    let shown = environment("ds", "ready", None, None);
    std::fs::write(&file, serde_json::to_vec(&shown).unwrap()).unwrap();
    let file = file.to_str().unwrap();
    let (code, out, err) = cli(
        tmp.path(),
        &["envs", "put", "ds", "--file", file, "--wait"],
        "",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Environment ds is ready (3 packages installed).\n");
    let req = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .nth(1)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&req.body).unwrap(),
        json!({"python": "3.11", "packages": ["jupyterlab==4.6.6", "ipykernel==7.4.0"],
            "presets": [{"name": "small", "cpus": "1", "memory": "2GiB"},
                        {"name": "large", "cpus": "4", "memory": "8GiB"}]})
    );

    // From stdin; a malformed one is refused before anything is sent.
    let before = mock.requests().len();
    let stdin = r#"{"python": "3.11", "packages": ["jupyterlab"], "presets": []}"#;
    let (code, _, err) = cli(tmp.path(), &["envs", "put", "ds", "--file", "-"], stdin).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: <stdin>: `packages[0]`: expected an exact pin NAME==VERSION"),
        "{err}"
    );
    let (code, _, err) = cli(tmp.path(), &["envs", "put", "ds", "--file", "-"], "{oops").await;
    assert_eq!(code, 2);
    assert!(err.contains("<stdin> is not valid JSON"), "{err}");
    assert_eq!(mock.requests().len(), before);
}

#[test]
fn bad_template_flags_are_clear_usage_errors() {
    let refused = |args: &[&str], needle: &str| {
        let e = parse(args).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains(needle), "{args:?}: {text}");
    };
    let put = |more: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec![
            "envs",
            "put",
            "ds",
            "--python",
            "3.11",
            "--package",
            "jupyterlab==4.6.6",
        ];
        v.extend_from_slice(more);
        v
    };
    refused(
        &put(&["--preset", "small"]),
        "expected NAME:CPUS:MEMORY, e.g. small:1:2G",
    );
    refused(&put(&["--preset", "small:1"]), "expected NAME:CPUS:MEMORY");
    refused(
        &put(&["--preset", "small:1:2G:x"]),
        "expected NAME:CPUS:MEMORY",
    );
    refused(&put(&["--preset", ":1:2G"]), "the preset name is empty");
    refused(
        &put(&["--preset", "small:two:2G"]),
        "`two` is not a number of CPUs",
    );
    refused(&put(&["--preset", "small:0:2G"]), "is not a number of CPUs");
    refused(
        &put(&["--preset", "small:1:lots"]),
        "`lots` is not a memory size",
    );
    refused(
        &[
            "envs",
            "put",
            "ds",
            "--python",
            "3.11",
            "--package",
            "numpy>=2",
            "--preset",
            "s:1:1G",
        ],
        "expected an exact pin NAME==VERSION",
    );
    refused(
        &[
            "envs",
            "put",
            "ds",
            "--python",
            "python3",
            "--package",
            "a==1",
            "--preset",
            "s:1:1G",
        ],
        "expected a Python version like 3.11",
    );
    // The flags need each other, and exclude --file.
    refused(&put(&[]), "--preset");
    refused(&["envs", "put", "ds"], "--file");
    refused(
        &put(&["--preset", "s:1:1G", "--file", "t.json"]),
        "cannot be used with",
    );
    assert!(parse(&put(&["--preset", "s:1.5:1GiB", "--preset", "m:2:4G"])).is_ok());
    assert!(parse(&["envs", "put", "ds", "--file", "t.json", "--wait"]).is_ok());
    assert!(parse(&["environments", "list"]).is_ok());
    refused(&["notebooks", "create", "x"], "--project");
}
