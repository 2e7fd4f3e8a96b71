//! Notebook subdomains end to end, with real JupyterLab in real runc sandboxes: with
//! `notebooks.subdomain_domain = nb.localhost`, each notebook is served on its own origin
//! (`{name}--{project}.nb.localhost`, pinned to loopback in the clients). Enclave's origin hands
//! a signed-in browser over with a one-time ticket; the notebook's origin sets its own cookie,
//! serves nothing but that notebook, and refuses the session cookie, other notebooks' tickets
//! and cookies, other origins' changes, and everyone the policy refuses; code run there is
//! audited; logging out closes its websockets and ends its cookie.

use crate::notebooks::{
    audit, build_lab, client_script, index, lab_python, options, wait_state, LogOnPanic,
};
use crate::BIN;
use enclave_testkit::{Server, PASSWORD};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DOMAIN: &str = "nb.localhost";

fn host(notebook: &str, project: &str, s: &Server) -> String {
    format!("{notebook}--{project}.{DOMAIN}:{}", s.addr.port())
}

/// A client that reaches the notebook hosts on the server's loopback address (and nothing
/// else), trusting only its certificate, following no redirects.
fn sub_client(s: &Server) -> reqwest::Client {
    let pem = std::fs::read(s.cert_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    for h in [
        "n1--fraud.nb.localhost",
        "n2--fraud.nb.localhost",
        "n1--other.nb.localhost",
    ] {
        b = b.resolve(h, s.addr);
    }
    b.build().unwrap()
}

fn on(notebook: &str, project: &str, s: &Server, path: &str) -> String {
    format!("https://{}{path}", host(notebook, project, s))
}

/// Logs in to the console API: the session cookie (`name=value`) and its CSRF token.
async fn session(s: &Server, user: &str) -> (String, String) {
    let r = s
        .client()
        .post(s.url("/api/v1/auth/session"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = first_cookie(&r);
    let body: Value = r.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}

fn first_cookie(r: &reqwest::Response) -> String {
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

/// Opens `notebook` on Enclave's origin as a browser would: the handoff URL it redirects to.
async fn open(s: &Server, cookie: &str, notebook: &str) -> String {
    let r = s
        .client()
        .get(s.url(&format!("/p/fraud/nb/{notebook}/lab")))
        .header("cookie", cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to = location(&r);
    let want = format!(
        "https://{}/_enclave/handoff?ticket=",
        host(notebook, "fraud", s)
    );
    assert!(to.starts_with(&want), "{to}");
    assert!(
        to.ends_with(&format!("&next=%2Fp%2Ffraud%2Fnb%2F{notebook}%2Flab")),
        "{to}"
    );
    to
}

/// Runs the kernel client against a notebook's own origin with the given credential.
fn kernel(s: &Server, credential: (&str, &str), notebook: &str, code: &str) -> Command {
    let mut c = Command::new(lab_python());
    c.arg(client_script())
        .args([
            s.base.as_str(),
            &s.cert_path().to_string_lossy(),
            "fraud",
            notebook,
            code,
        ])
        .env_remove("ENCLAVE_TOKEN")
        .env_remove("ENCLAVE_COOKIE")
        .env(credential.0, credential.1)
        .env("ENCLAVE_HOST", host(notebook, "fraud", s));
    c
}

fn run(mut c: Command) -> Value {
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().unwrap_or("")).unwrap_or_else(|_| {
        panic!(
            "client said {text:?}; stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn each_notebook_gets_its_own_origin_reached_only_through_a_one_time_handoff() {
    let (index, _pypi) = index();
    let mut opts = options(&index, "off");
    opts.env
        .push(("ENCLAVE_NOTEBOOKS_SUBDOMAIN_DOMAIN".into(), DOMAIN.into()));
    let s = Server::start_with(BIN, opts);
    let _log = LogOnPanic(&s);
    let port = s.addr.port();
    let (admin, owner) = crate::common::fraud_project(&s, None).await;
    let mallory = admin.user(&s, "mallory").await;
    let long = format!("p{}", "x".repeat(39));
    for project in ["other", long.as_str()] {
        let (st, b) = admin
            .post(
                "/api/v1/projects",
                json!({"name": project, "owner": "mallory"}),
            )
            .await;
        assert_eq!(st, 201, "{b}");
    }
    build_lab(&admin).await;

    // A name that cannot fit one DNS label with its project's is refused, naming the field.
    let (st, b) = mallory
        .post(
            &format!("/api/v1/projects/{long}/notebooks"),
            json!({"name": "a-rather-long-notebook-name", "environment": "lab"}),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["details"]["field"], "name", "{b}");

    for nb in ["n1", "n2"] {
        let (st, b) = owner
            .post(
                "/api/v1/projects/fraud/notebooks",
                json!({"name": nb, "environment": "lab"}),
            )
            .await;
        assert_eq!(st, 201, "{b}");
    }
    wait_state(&owner, "n1", "ready").await;
    let nb = wait_state(&owner, "n2", "ready").await;
    // The API gives the entry on Enclave's origin and the notebook's own origin.
    assert_eq!(nb["url"], "/p/fraud/nb/n2/lab");
    assert_eq!(
        nb["origin"],
        format!("https://n2--fraud.nb.localhost:{port}")
    );

    let sub = sub_client(&s);
    let (cookie, csrf) = session(&s, "olivia").await;
    // A second session's ticket, minted now and tried once it has expired (below).
    let (other_session, _) = session(&s, "olivia").await;
    let early = open(&s, &other_session, "n1").await;
    let early_at = Instant::now();

    // The handoff: Enclave's origin sends the browser to the notebook's origin with a ticket,
    // which sets the notebook's own host-only cookie and goes on to JupyterLab.
    let handoff = open(&s, &cookie, "n1").await;
    let r = sub.get(&handoff).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/p/fraud/nb/n1/lab");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-enclave_nb="), "{set}");
    assert!(
        set.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Domain"), "{set}");
    let nb_cookie = first_cookie(&r);
    // The ticket works once.
    let again = sub.get(&handoff).send().await.unwrap();
    assert_eq!(again.status(), 401);

    // JupyterLab answers through the notebook cookie, on its own origin, under the notebook
    // CSP, and its files cannot be embedded by other origins.
    let r = sub
        .get(on("n1", "fraud", &s, "/p/fraud/nb/n1/lab"))
        .header("cookie", &nb_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cross-origin-resource-policy"], "same-origin");
    crate::notebooks::assert_lab_page(r).await;

    // The session cookie is no credential on a notebook's origin (browsers never send it
    // there; a forged header is refused), nor the notebook cookie on Enclave's origin.
    let status = on("n1", "fraud", &s, "/p/fraud/nb/n1/api/status");
    let r = sub
        .get(&status)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = sub
        .get(&status)
        .header("cookie", &cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("href=\"{}/p/fraud/nb/n1/lab\"", s.base)),
        "{page}"
    );
    let r = s
        .client()
        .get(s.url("/p/fraud/nb/n1/api/status"))
        .header("cookie", &nb_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = sub
        .get(&status)
        .header("cookie", &nb_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A notebook's origin serves that notebook only: not the API, the console, the health
    // checks, or another notebook's path; hosts naming no notebook serve nothing.
    for path in [
        "/api/v1/projects",
        "/api/v1/whoami",
        "/projects",
        "/login",
        "/",
        "/healthz",
        "/static/app.css",
        "/p/fraud/nb/n2/lab",
        "/p/other/nb/n1/lab",
        "/_enclave/other",
    ] {
        for c in [&nb_cookie, &cookie] {
            let r = sub
                .get(on("n1", "fraud", &s, path))
                .header("cookie", c)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{path}");
        }
    }
    // (The certificate covers one label under the domain: these go to the loopback address
    // with the Host header set.)
    for h in [
        format!("nb.localhost:{port}"),
        format!("N1--FRAUD.nb.localhost:{port}"),
        format!("x.n1--fraud.nb.localhost:{port}"),
        format!("n1--fraud.nb.localhost.:{port}"),
    ] {
        let r = s
            .client()
            .get(s.url("/api/v1/projects"))
            .header("host", &h)
            .bearer_auth(&owner.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{h} is no main origin");
    }

    // A notebook's cookie does not open another notebook; a ticket for one does not open
    // another (and is used up by trying).
    let r = sub
        .get(on("n2", "fraud", &s, "/p/fraud/nb/n2/api/status"))
        .header("cookie", &nb_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let for_n2 = open(&s, &cookie, "n2").await;
    let r = sub
        .get(
            for_n2
                .replace("n2--fraud", "n1--fraud")
                .replace("%2Fn2%2F", "%2Fn1%2F"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(sub.get(&for_n2).send().await.unwrap().status(), 401);
    // `next` must stay inside the notebook.
    let bad_next = open(&s, &cookie, "n1").await;
    let (head, _) = bad_next.split_once("&next=").unwrap();
    for next in ["%2Fapi%2Fv1%2Fusers", "https%3A%2F%2Fevil.example%2F"] {
        let r = sub.get(format!("{head}&next={next}")).send().await.unwrap();
        assert_eq!(r.status(), 400);
    }

    // Changes with the notebook cookie must come from the notebook's own origin.
    let kernels = on("n1", "fraud", &s, "/p/fraud/nb/n1/api/kernels");
    let own = format!("https://{}", host("n1", "fraud", &s));
    for (origin, site) in [
        (Some(format!("https://{}", host("n2", "fraud", &s))), None),
        (Some(s.base.clone()), None),
        (None, None),
        (Some(own.clone()), Some("same-site")),
    ] {
        let mut req = sub
            .post(&kernels)
            .header("cookie", &nb_cookie)
            .json(&json!({"name": "python3"}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        assert_eq!(req.send().await.unwrap().status(), 403);
    }

    // Other people are refused on both origins: no ticket for them, no way in by token.
    let victor = s.login("victor", PASSWORD).await;
    for user in ["mallory", "victor"] {
        let (c, _) = session(&s, user).await;
        let r = s
            .client()
            .get(s.url("/p/fraud/nb/n1/lab"))
            .header("cookie", &c)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 403 || r.status() == 404,
            "{user}: {}",
            r.status()
        );
    }
    for (who, api) in [
        ("mallory", &mallory),
        ("victor", &victor),
        ("admin", &admin),
    ] {
        let r = sub
            .get(&status)
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 403 || r.status() == 404,
            "{who}: {}",
            r.status()
        );
    }
    let r = sub
        .get(on("n1", "other", &s, "/p/other/nb/n1/api/status"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Bearer tokens work on the notebook's origin; on Enclave's they are redirected there.
    let r = sub
        .get(&status)
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client()
        .get(s.url("/p/fraud/nb/n1/api/status"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(location(&r), status);

    // Code runs over the kernel websocket on the notebook's origin, with the notebook cookie
    // (as JupyterLab in the browser) and with a token, and is audited.
    let out = run(kernel(
        &s,
        ("ENCLAVE_COOKIE", &nb_cookie),
        "n1",
        "print('on its own origin')\n6 * 7",
    ));
    assert_eq!(out["status"], "ok", "{out}");
    assert_eq!(out["result"], "42", "{out}");
    assert_eq!(out["stdout"], "on its own origin\n", "{out}");
    let out = run(kernel(&s, ("ENCLAVE_TOKEN", &owner.token), "n1", "2 ** 10"));
    assert_eq!(out["result"], "1024", "{out}");
    let runs = audit(&admin, "notebook.execute").await;
    let rec = runs
        .iter()
        .find(|r| {
            r["detail"]["code"]
                .as_str()
                .unwrap_or("")
                .contains("on its own origin")
        })
        .unwrap_or_else(|| panic!("no record of the cell: {runs:?}"));
    assert_eq!(rec["actor"], "olivia");
    assert_eq!(rec["resource"], "notebook:fraud/n1");
    assert_eq!(rec["auth"], "session");

    // Logging out closes the notebook's open websockets and ends its cookie.
    let mut cmd = kernel(&s, ("ENCLAVE_COOKIE", &nb_cookie), "n1", "2 + 2");
    let mut held = cmd
        .args(["--hold", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(held.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["result"], "4", "{first}");
    let r = s
        .client()
        .post(s.url("/api/v1/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let closed: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(closed["closed"], true, "{closed}");
    assert!(closed["after"].as_f64().unwrap() < 10.0, "{closed}");
    let _ = held.wait();
    let r = sub
        .get(&status)
        .header("cookie", &nb_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A ticket expires: the one minted at the start, tried after its minute.
    let wait = Duration::from_secs(62).saturating_sub(early_at.elapsed());
    tokio::time::sleep(wait).await;
    assert_eq!(sub.get(&early).send().await.unwrap().status(), 401);

    // Redemptions and refusals are in the audit trail.
    let handoffs = audit(&admin, "notebook.handoff").await;
    let ok: Vec<_> = handoffs
        .iter()
        .filter(|r| r["outcome"] == "success")
        .collect();
    assert_eq!(ok.len(), 1, "{handoffs:?}");
    assert_eq!(ok[0]["actor"], "olivia");
    assert_eq!(ok[0]["resource"], "notebook:fraud/n1");
    let reasons: Vec<&str> = handoffs
        .iter()
        .filter_map(|r| r["detail"]["reason"].as_str())
        .collect();
    for want in [
        "unknown or already used ticket",
        "ticket for another notebook",
        "expired ticket",
    ] {
        assert!(reasons.contains(&want), "no refusal {want:?}: {reasons:?}");
    }
}
