//! Notebook subdomain credentials under a manual clock: handoff tickets expire, work once and
//! only for their notebook; notebook cookies resolve only on their notebook's origin and die
//! with their session. (Minting a ticket needs a ready notebook server: the end-to-end test
//! `notebook_subdomain` covers that with real JupyterLab.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use enclave_app::secrets::{hash_secret, new_secret};
use enclave_app::{App, Caller, RequestMeta, Settings, HANDOFF_ACTION, HANDOFF_TTL};
use enclave_core::{Clock, ErrorCode, Timestamp};
use enclave_store::{NotebookCookieRow, NotebookHandoffRow, Store};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PW: &str = "Granite-Orchard-Violet-27";

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

fn meta() -> RequestMeta {
    RequestMeta {
        source: "192.0.2.10".into(),
        request_id: "req_test".into(),
    }
}

struct Fixture {
    app: App,
    clock: Arc<ManualClock>,
    session_id: String,
    caller: Caller,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn advance(&self, d: Duration) {
        self.clock.0.fetch_add(d.as_secs() as i64, Ordering::SeqCst);
    }

    /// Stores a ticket for `fraud/nb1` as minting would, valid for [`HANDOFF_TTL`].
    async fn ticket(&self, notebook: &str) -> String {
        let t = new_secret().unwrap();
        let now = self.app.now();
        let mut tx = self.app.store().write().await.unwrap();
        tx.insert_notebook_handoff(
            &hash_secret(&t),
            &NotebookHandoffRow {
                session_id: self.session_id.clone(),
                project: "fraud".into(),
                notebook: notebook.into(),
                expires_at: now.plus(HANDOFF_TTL),
            },
            now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        t
    }

    /// Stores a notebook cookie for the session, as a redemption would.
    async fn cookie(&self, notebook: &str) -> String {
        let c = new_secret().unwrap();
        let mut tx = self.app.store().write().await.unwrap();
        tx.insert_notebook_cookie(
            &hash_secret(&c),
            &NotebookCookieRow {
                session_id: self.session_id.clone(),
                project: "fraud".into(),
                notebook: notebook.into(),
            },
            self.app.now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        c
    }

    async fn refusals(&self) -> Vec<String> {
        let filter = enclave_store::AuditFilter {
            action: Some(HANDOFF_ACTION.into()),
            ..Default::default()
        };
        let page = self
            .app
            .store()
            .search_audit(&filter, enclave_store::AuditOrder::OldestFirst, None, 100)
            .await
            .unwrap();
        page.items
            .into_iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e.record.actor,
                    e.record.resource,
                    e.record.detail["reason"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db")).await.unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_800_000_000)));
    let settings = Settings {
        hash_concurrency: 2,
        ..Settings::default()
    };
    let app = App::new(store, clock.clone(), settings).unwrap();
    app.bootstrap_admin("admin", PW).await.unwrap();
    let login = app.login_session("admin", PW, &meta()).await.unwrap();
    Fixture {
        app,
        clock,
        session_id: login.caller.session_id.clone().unwrap(),
        caller: login.caller,
        _dir: dir,
    }
}

#[tokio::test]
async fn tickets_expire_work_once_and_only_for_their_notebook() {
    let f = fixture().await;
    let redeem = |t: String, nb: &'static str| {
        let app = f.app.clone();
        async move {
            app.redeem_notebook_handoff(&t, "fraud", nb, None, &meta())
                .await
                .unwrap_err()
        }
    };

    // Expired: refused, and gone.
    let t = f.ticket("nb1").await;
    f.advance(HANDOFF_TTL);
    assert_eq!(
        redeem(t.clone(), "nb1").await.code,
        ErrorCode::Unauthenticated
    );
    assert_eq!(redeem(t, "nb1").await.code, ErrorCode::Unauthenticated);

    // For another notebook: refused, and used up.
    let t = f.ticket("nb2").await;
    assert_eq!(
        redeem(t.clone(), "nb1").await.code,
        ErrorCode::Unauthenticated
    );
    assert_eq!(redeem(t, "nb2").await.code, ErrorCode::Unauthenticated);

    // Junk.
    assert_eq!(
        redeem("not-a-ticket".into(), "nb1").await.code,
        ErrorCode::Unauthenticated
    );

    // A good ticket gets past the ticket checks to the authorization of the notebook itself
    // (no notebook runtime here: unavailable) and is used up all the same.
    let t = f.ticket("nb1").await;
    let e = redeem(t.clone(), "nb1").await;
    assert_eq!(e.code, ErrorCode::Unavailable, "{}", e.message);
    assert_eq!(redeem(t, "nb1").await.code, ErrorCode::Unauthenticated);

    // A ticket whose session ended is refused.
    let t = f.ticket("nb1").await;
    f.app.logout(&f.caller).await.unwrap();
    assert_eq!(redeem(t, "nb1").await.code, ErrorCode::Unauthenticated);

    let refusals = f.refusals().await;
    assert_eq!(
        refusals,
        vec![
            "admin notebook:fraud/nb1 expired ticket",
            "anonymous notebook:fraud/nb1 unknown or already used ticket",
            "admin notebook:fraud/nb1 ticket for another notebook",
            "anonymous notebook:fraud/nb2 unknown or already used ticket",
            "anonymous notebook:fraud/nb1 malformed ticket",
            "anonymous notebook:fraud/nb1 unknown or already used ticket",
            // The ended session's ticket went with it.
            "anonymous notebook:fraud/nb1 unknown or already used ticket",
        ],
        "{refusals:#?}"
    );
}

#[tokio::test]
async fn notebook_cookies_open_only_their_notebook_and_die_with_the_session() {
    let f = fixture().await;
    let c = f.cookie("nb1").await;
    let auth = |nb: &'static str, secret: String| {
        let app = f.app.clone();
        async move {
            app.authenticate_notebook_cookie(&secret, "fraud", nb, &meta())
                .await
                .unwrap()
        }
    };
    let caller = auth("nb1", c.clone())
        .await
        .expect("resolves on its notebook");
    assert_eq!(caller.principal.username, "admin");
    assert_eq!(caller.session_id.as_deref(), Some(f.session_id.as_str()));
    assert!(caller.token_id.is_none());
    // Not on another notebook's origin, and not as junk or an unknown secret.
    assert!(auth("nb2", c.clone()).await.is_none());
    assert!(auth("nb1", "junk".into()).await.is_none());
    assert!(auth("nb1", new_secret().unwrap()).await.is_none());

    // Using the notebook keeps the session alive past its idle timeout...
    let idle = f.app.settings().sessions.idle;
    for _ in 0..3 {
        f.advance(idle / 2);
        assert!(auth("nb1", c.clone()).await.is_some());
    }
    // Idle for the whole timeout: it ends with its session.
    f.advance(idle);
    assert!(auth("nb1", c.clone()).await.is_none());

    // A new session's cookie dies at logout (the row goes with the session).
    let login = f.app.login_session("admin", PW, &meta()).await.unwrap();
    let f2 = Fixture {
        app: f.app.clone(),
        clock: f.clock.clone(),
        session_id: login.caller.session_id.clone().unwrap(),
        caller: login.caller.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    let c2 = f2.cookie("nb1").await;
    assert!(auth("nb1", c2.clone()).await.is_some());
    f.app.logout(&login.caller).await.unwrap();
    assert!(auth("nb1", c2).await.is_none());

    // A session keeps a bounded number of notebook cookies: the oldest go first.
    let login = f.app.login_session("admin", PW, &meta()).await.unwrap();
    let f3 = Fixture {
        session_id: login.caller.session_id.clone().unwrap(),
        caller: login.caller.clone(),
        ..f2
    };
    let first = f3.cookie("nb1").await;
    for _ in 0..enclave_store::MAX_NOTEBOOK_COOKIES_PER_SESSION {
        f3.cookie("nb1").await;
    }
    assert!(auth("nb1", first).await.is_none());
}
