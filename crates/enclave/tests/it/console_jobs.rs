//! Jobs in the web console: the jobs page lists the project's jobs and offers the run form to
//! those who may run jobs; bad input comes back above the form and starts nothing; a viewer
//! sees no form and is refused a forged post; a job run from the form shows its state and log
//! on its page (real runc sandboxes: the tests run as root with runc installed), and the page
//! refreshes itself until the job ends.

use crate::BIN;
use enclave_testkit::{Server, PASSWORD};
use std::time::{Duration, Instant};

/// A signed-in console visitor (cookie and CSRF token).
struct Browser<'a> {
    s: &'a Server,
    c: reqwest::Client,
    cookie: String,
    csrf: String,
}

struct Answer {
    status: u16,
    location: Option<String>,
    refresh: Option<String>,
    page: String,
}

impl<'a> Browser<'a> {
    async fn login(s: &'a Server, username: &str) -> Browser<'a> {
        let c = s.client();
        let r = c
            .post(s.url("/login"))
            .form(&[("username", username), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "console login of {username}");
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut b = Browser {
            s,
            c,
            cookie,
            csrf: String::new(),
        };
        let a = b.get("/account").await;
        assert_eq!(a.status, 200, "{}", a.page);
        let marker = "name=\"csrf\" value=\"";
        let start = a.page.find(marker).unwrap() + marker.len();
        b.csrf = a.page[start..].split('"').next().unwrap().to_string();
        b
    }

    async fn answer(r: reqwest::Response) -> Answer {
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|l| l.to_str().unwrap().to_string())
        };
        let (location, refresh) = (header("location"), header("refresh"));
        Answer {
            status: r.status().as_u16(),
            location,
            refresh,
            page: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        let r = self
            .c
            .get(self.s.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        Self::answer(r).await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.csrf));
        let r = self
            .c
            .post(self.s.url(path))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        Self::answer(r).await
    }
}

/// `olivia`'s API; she owns `fraud` (with DB_PASSWORD), `victor` views it.
async fn setup(s: &Server) -> enclave_testkit::Api {
    crate::common::fraud_project(s, Some("pg-Console-Jobs-Puffin-4471"))
        .await
        .1
}

/// The log shown on a job page (as HTML, still escaped).
fn log_of(page: &str) -> &str {
    let marker = "id=\"job-log\">";
    match page.find(marker) {
        Some(i) => page[i + marker.len()..].split("</pre>").next().unwrap(),
        None => "",
    }
}

/// How many jobs the API lists in `fraud`.
async fn job_count(api: &enclave_testkit::Api) -> usize {
    let (st, b) = api.get("/api/v1/projects/fraud/jobs").await;
    assert_eq!(st, 200, "{b}");
    b["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn console_runs_a_job_and_shows_its_log() {
    let s = Server::start(BIN);
    let owner = setup(&s).await;
    let olivia = Browser::login(&s, "olivia").await;

    // Linked from the project page; an empty list and the form with the server's defaults.
    let a = olivia.get("/projects/fraud").await;
    assert_eq!(a.status, 200);
    assert!(
        a.page.contains("href=\"/projects/fraud/jobs\""),
        "{}",
        a.page
    );
    let a = olivia.get("/projects/fraud/jobs").await;
    assert_eq!(a.status, 200, "{}", a.page);
    assert!(a.page.contains("run no jobs yet"), "{}", a.page);
    assert!(a.page.contains("action=\"/projects/fraud/jobs\""));
    assert!(a.page.contains("/bin/sh -c"));
    for field in ["command", "secrets", "cpus", "memory", "timeout"] {
        assert!(a.page.contains(&format!("name=\"{field}\"")), "{field}");
    }
    assert!(a.page.contains("placeholder=\"1GiB\""), "{}", a.page);
    assert!(a.page.contains("placeholder=\"1h\""), "{}", a.page);

    // Bad input: said above the form, what was typed kept, nothing started.
    let a = olivia
        .post(
            "/projects/fraud/jobs",
            &[("command", "  "), ("memory", ""), ("secrets", "")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.page);
    assert!(a.page.contains("the command is empty"), "{}", a.page);
    let a = olivia
        .post(
            "/projects/fraud/jobs",
            &[("command", "echo never-run"), ("memory", "lots")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.page);
    assert!(a.page.contains("expected a size like"), "{}", a.page);
    assert!(a.page.contains("value=\"lots\""), "the draft is kept");
    assert!(
        a.page.contains("value=\"echo never-run\""),
        "the draft is kept"
    );
    let a = olivia
        .post(
            "/projects/fraud/jobs",
            &[("command", "true"), ("secrets", "DB_PASSWORD=nowhere")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.page);
    assert!(a.page.contains("line 1:"), "{}", a.page);
    let a = olivia
        .post(
            "/projects/fraud/jobs",
            &[("command", "true"), ("secrets", "NOPE=env:NOPE")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.page);
    assert!(a.page.contains("NOPE"), "{}", a.page);
    let a = olivia
        .post(
            "/projects/fraud/jobs",
            &[("command", "true"), ("cpus", "999")],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.page);
    assert!(a.page.contains("between 0.01 and"), "{}", a.page);
    assert_eq!(job_count(&owner).await, 0, "bad input starts nothing");

    // A viewer sees the jobs but no form, and a forged post is refused.
    let victor = Browser::login(&s, "victor").await;
    let a = victor.get("/projects/fraud/jobs").await;
    assert_eq!(a.status, 200, "{}", a.page);
    assert!(
        !a.page.contains("action=\"/projects/fraud/jobs\""),
        "{}",
        a.page
    );
    let a = victor
        .post("/projects/fraud/jobs", &[("command", "echo forged")])
        .await;
    // Refused without saying more than the viewer may know (the application hides it).
    assert!(
        a.status == 403 || a.status == 404,
        "{}: {}",
        a.status,
        a.page
    );
    assert_eq!(job_count(&owner).await, 0, "a refused post starts nothing");

    // A job from the form: its page shows it queued or running, refreshing, then its end.
    let a = olivia
        .post(
            "/projects/fraud/jobs",
            &[
                ("command", "echo hello-from-console; echo \"<b>&\""),
                ("secrets", "DB_PASSWORD=env:PGPASSWORD\r\n"),
                ("cpus", "0.5"),
                ("memory", "256M"),
                ("timeout", "2m"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.page);
    let to = a.location.unwrap();
    assert!(to.starts_with("/projects/fraud/jobs/job-"), "{to}");
    let id = to.rsplit('/').next().unwrap().to_string();
    let first = olivia.get(&to).await;
    assert_eq!(first.status, 200, "{}", first.page);
    assert!(first.page.contains("DB_PASSWORD=env:PGPASSWORD"));
    assert!(first.page.contains("0.5 CPU") && first.page.contains("256MiB"));
    assert!(first.page.contains("2m time limit"), "{}", first.page);
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let a = olivia.get(&to).await;
        assert_eq!(a.status, 200, "{}", a.page);
        let live = a.page.contains(">queued<") || a.page.contains(">running<");
        if !live {
            break a;
        }
        assert!(a.page.contains("http-equiv=\"refresh\""), "{}", a.page);
        assert!(a.refresh.is_some());
        assert!(a.page.contains("Cancel job"), "{}", a.page);
        assert!(
            Instant::now() < deadline,
            "job {id} did not end: {}",
            a.page
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(done.page.contains(">succeeded<"), "{}", done.page);
    let log = log_of(&done.page);
    assert!(log.contains("hello-from-console\n"), "{}", done.page);
    assert!(
        log.contains("&#60;b&#62;&#38;"),
        "the log is escaped: {log}"
    );
    assert!(!done.page.contains("<b>&"), "the log is escaped");
    assert!(!done.page.contains("http-equiv=\"refresh\""));
    assert!(done.refresh.is_none());
    assert!(!done.page.contains("Cancel job"));

    // Listed, with a link to its page; the viewer reads it too but cannot cancel.
    let a = olivia.get("/projects/fraud/jobs").await;
    assert!(a.page.contains(&format!("href=\"{to}\"")), "{}", a.page);
    assert!(a.page.contains("hello-from-console"));
    assert!(a.page.contains("olivia"));
    let a = victor.get(&to).await;
    assert_eq!(a.status, 200, "{}", a.page);
    assert!(log_of(&a.page).contains("hello-from-console"));
    assert!(!a.page.contains("Cancel job"));
    let a = victor.post(&format!("{to}/cancel"), &[]).await;
    assert!(
        a.status == 403 || a.status == 404,
        "{}: {}",
        a.status,
        a.page
    );

    // Cancelling a job that has ended says so on its page.
    let a = olivia.post(&format!("{to}/cancel"), &[]).await;
    assert_eq!(a.status, 400, "{}", a.page);
    assert!(a.page.contains("already ended"), "{}", a.page);

    // A long sleeper is cancelled from its page.
    let a = olivia
        .post("/projects/fraud/jobs", &[("command", "sleep 300")])
        .await;
    assert_eq!(a.status, 303, "{}", a.page);
    let sleeper = a.location.unwrap();
    let a = olivia.get(&sleeper).await;
    assert!(a.page.contains("Cancel job"), "{}", a.page);
    let a = olivia.post(&format!("{sleeper}/cancel"), &[]).await;
    assert_eq!(a.status, 303, "{}", a.page);
    assert_eq!(a.location.as_deref(), Some(sleeper.as_str()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = olivia.get(&sleeper).await;
        if a.page.contains(">cancelled<") {
            break;
        }
        assert!(Instant::now() < deadline, "not cancelled: {}", a.page);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Unknown jobs and projects are missing pages.
    let a = olivia.get("/projects/fraud/jobs/job-nope").await;
    assert_eq!(a.status, 404, "{}", a.page);
    let a = olivia.get("/projects/nope/jobs").await;
    assert_eq!(a.status, 404, "{}", a.page);
}
