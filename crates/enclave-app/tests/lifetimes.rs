//! Use cases under a manual clock: every expiry is tested by moving time, not by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use enclave_app::{App, Caller, NewUser, RequestMeta, Settings};
use enclave_core::model::TokenScope;
use enclave_core::{Clock, ErrorCode, Timestamp};
use enclave_store::Store;
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

impl ManualClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_secs() as i64, Ordering::SeqCst);
    }
}

struct Fixture {
    app: App,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
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
    Fixture {
        app,
        clock,
        _dir: dir,
    }
}

fn meta() -> RequestMeta {
    RequestMeta {
        source: "192.0.2.10".into(),
        request_id: "req_test".into(),
    }
}

async fn admin(f: &Fixture) -> Caller {
    f.app.bootstrap_admin("admin", PW).await.unwrap();
    f.app
        .login_session("admin", PW, &meta())
        .await
        .unwrap()
        .caller
}

#[tokio::test]
async fn sessions_end_after_idle_and_absolute_timeouts() {
    let f = fixture().await;
    admin(&f).await;
    let s = f.app.login_session("admin", PW, &meta()).await.unwrap();
    let idle = f.app.settings().sessions.idle;
    // Activity keeps it alive until the absolute timeout.
    for _ in 0..30 {
        f.clock.advance(idle / 2);
        assert!(f
            .app
            .authenticate_session(&s.session_secret, &meta())
            .await
            .unwrap()
            .is_some());
    }
    let absolute = f.app.settings().sessions.absolute;
    f.clock.advance(absolute);
    assert!(f
        .app
        .authenticate_session(&s.session_secret, &meta())
        .await
        .unwrap()
        .is_none());
    // Idle timeout on a fresh session.
    let s = f.app.login_session("admin", PW, &meta()).await.unwrap();
    f.clock.advance(idle - Duration::from_secs(1));
    assert!(f
        .app
        .authenticate_session(&s.session_secret, &meta())
        .await
        .unwrap()
        .is_some());
    f.clock.advance(idle);
    assert!(f
        .app
        .authenticate_session(&s.session_secret, &meta())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn tokens_expire_and_record_last_use() {
    let f = fixture().await;
    let a = admin(&f).await;
    let t = f
        .app
        .create_token(&a, "ci", TokenScope::Read, vec![], Some(2))
        .await
        .unwrap();
    assert_eq!(
        t.token.expires_at,
        f.app.now().plus(Duration::from_secs(2 * 86_400))
    );
    let c = f
        .app
        .authenticate_token(&t.secret, &meta())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.token_id.as_deref(), Some(t.token.id.as_str()));
    let listed = f.app.get_token(&a, &t.token.id).await.unwrap();
    assert_eq!(listed.last_used_at, Some(f.app.now()));
    f.clock.advance(Duration::from_secs(2 * 86_400));
    assert!(f
        .app
        .authenticate_token(&t.secret, &meta())
        .await
        .unwrap()
        .is_none());
    // Default and maximum lifetimes.
    let t = f
        .app
        .create_token(&a, "d", TokenScope::Full, vec![], None)
        .await
        .unwrap();
    assert_eq!(
        t.token.expires_at,
        f.app.now().plus(Duration::from_secs(30 * 86_400))
    );
    let e = f
        .app
        .create_token(&a, "x", TokenScope::Full, vec![], Some(91))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn lockout_lasts_its_time_then_lifts() {
    let f = fixture().await;
    admin(&f).await;
    for _ in 0..5 {
        let e = f
            .app
            .check_password("admin", "wrong-wrong-wrong", &meta())
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidCredentials);
    }
    let e = f
        .app
        .check_password("admin", PW, &meta())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TooManyAttempts);
    assert!(f.app.is_locked("admin").await.unwrap());
    f.clock.advance(f.app.settings().account_throttle.lockout);
    assert!(f.app.check_password("admin", PW, &meta()).await.is_ok());
    // Failures spread beyond the window never lock.
    let window = f.app.settings().account_throttle.window;
    for _ in 0..10 {
        let _ = f
            .app
            .check_password("admin", "wrong-wrong-wrong", &meta())
            .await;
        f.clock.advance(window / 4 + Duration::from_secs(1));
        let _ = f.app.check_password("admin", PW, &meta()).await;
    }
    assert!(!f.app.is_locked("admin").await.unwrap());
}

#[tokio::test]
async fn one_source_address_is_throttled_across_usernames() {
    let f = fixture().await;
    admin(&f).await;
    let max = f.app.settings().address_throttle.max_failures;
    for i in 0..max {
        // A different (unknown) name each time: only the address counter reaches its limit.
        let _ = f
            .app
            .check_password(&format!("guess{i}"), "wrong-wrong-wrong", &meta())
            .await;
    }
    let e = f
        .app
        .check_password("admin", PW, &meta())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TooManyAttempts);
    let other = RequestMeta {
        source: "198.51.100.7".into(),
        request_id: "req_2".into(),
    };
    assert!(
        f.app.check_password("admin", PW, &other).await.is_ok(),
        "other addresses unaffected"
    );
}

#[tokio::test]
async fn setup_token_expires_and_works_once() {
    let f = fixture().await;
    let token = f.app.issue_setup_token().await.unwrap().unwrap();
    assert!(f.app.setup_token_valid(&token).await.unwrap());
    f.clock.advance(f.app.settings().setup_ttl);
    assert!(!f.app.setup_token_valid(&token).await.unwrap());
    let e = f
        .app
        .complete_setup(&token, "admin", PW, &meta())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SetupUnavailable);
    let token = f.app.issue_setup_token().await.unwrap().unwrap();
    f.app
        .complete_setup(&token, "admin", PW, &meta())
        .await
        .unwrap();
    assert!(
        f.app.issue_setup_token().await.unwrap().is_none(),
        "no link once an admin exists"
    );
    let e = f
        .app
        .complete_setup(&token, "other", PW, &meta())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SetupUnavailable);
}

#[tokio::test]
async fn a_failing_audit_write_refuses_the_change() {
    let f = fixture().await;
    let a = admin(&f).await;
    // Make every audit insert fail: the change it accompanies must not happen.
    f.app.store().break_audit_for_tests().await.unwrap();
    let e = f
        .app
        .create_user(
            &a,
            NewUser {
                username: "eve".into(),
                password: PW.into(),
                ..NewUser::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(
        f.app.store().user_by_name("eve").await.unwrap().is_none(),
        "nothing changed"
    );
}

async fn user(f: &Fixture, admin: &Caller, name: &str) -> Caller {
    f.app
        .create_user(
            admin,
            NewUser {
                username: name.into(),
                password: PW.into(),
                display_name: String::new(),
                email: String::new(),
                platform_admin: false,
            },
        )
        .await
        .unwrap();
    f.app.login_session(name, PW, &meta()).await.unwrap().caller
}

#[tokio::test]
async fn grants_and_bindings_stop_exactly_at_expiry_for_open_sessions() {
    use enclave_core::access::GrantRole;
    let f = fixture().await;
    let admin = admin(&f).await;
    let owner = user(&f, &admin, "olivia").await;
    let ada = user(&f, &admin, "ada").await;
    f.app
        .create_project(&admin, "alpha", "", Some("olivia"))
        .await
        .unwrap();

    // An approved support grant: the admin's open session reads the project until the end.
    let g = f
        .app
        .request_grant(&admin, "alpha", GrantRole::Support, "ticket 9", 3600)
        .await
        .unwrap();
    assert!(f.app.get_project(&admin, "alpha").await.is_ok());
    let e = f.app.decide_grant(&admin, &g.id, true).await.unwrap_err();
    assert_eq!(
        e.code,
        ErrorCode::Forbidden,
        "nobody approves their own grant"
    );
    let g = f.app.decide_grant(&owner, &g.id, true).await.unwrap();
    let expires = g.expires_at.unwrap();
    let project_reads = |c: Caller| {
        let app = f.app.clone();
        async move {
            app.check_policy(
                &c,
                enclave_app::CheckRequest {
                    principal: "admin".into(),
                    action: "notebook.open".into(),
                    resource: "notebook:alpha/nb".into(),
                    context: None,
                },
            )
            .await
            .unwrap()
            .decision
            .allowed
        }
    };
    assert!(project_reads(owner.clone()).await);
    f.clock.advance(Duration::from_secs(3599));
    assert!(f.clock.now() < expires);
    assert!(project_reads(owner.clone()).await);
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(f.clock.now(), expires);
    assert!(
        !project_reads(owner.clone()).await,
        "over at expiry, no rebuild needed"
    );

    // Grants longer than the maximum are refused and nothing is stored.
    let max = f.app.settings().max_grant.as_secs() as i64;
    let e = f
        .app
        .request_grant(&admin, "alpha", GrantRole::Support, "ticket 10", max + 60)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert_eq!(f.app.list_grants(&owner, "alpha").await.unwrap().len(), 1);

    // A platform role bound for one hour works for ada's open session, then stops.
    let until = Timestamp(f.clock.now().0 + 3600);
    f.app
        .bind_role(&admin, "user:ada", "security_auditor", None, Some(until))
        .await
        .unwrap();
    assert!(f.app.list_policies(&ada, None).await.is_ok());
    f.clock.advance(Duration::from_secs(3600));
    let e = f.app.list_policies(&ada, None).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
}

async fn token_uses(f: &Fixture) -> Vec<enclave_core::audit::AuditRecord> {
    let filter = enclave_store::AuditFilter {
        action: Some("token.use".into()),
        ..enclave_store::AuditFilter::default()
    };
    let page = f
        .app
        .store()
        .search_audit(&filter, enclave_store::AuditOrder::OldestFirst, None, 100)
        .await
        .unwrap();
    page.items.into_iter().map(|e| e.record).collect()
}

#[tokio::test]
async fn token_use_is_audited_once_per_address_and_minute_with_its_count() {
    let f = fixture().await;
    let a = admin(&f).await;
    let t = f
        .app
        .create_token(&a, "ci", TokenScope::Read, vec![], None)
        .await
        .unwrap();
    let from = |source: &str, id: &str| RequestMeta {
        source: source.into(),
        request_id: id.into(),
    };
    let start = f.app.now();
    for i in 0..5 {
        let m = from("192.0.2.10", &format!("req_a{i}"));
        assert!(f
            .app
            .authenticate_token(&t.secret, &m)
            .await
            .unwrap()
            .is_some());
        f.clock.advance(Duration::from_secs(10));
    }
    let m = from("198.51.100.7", "req_b0");
    assert!(f
        .app
        .authenticate_token(&t.secret, &m)
        .await
        .unwrap()
        .is_some());
    // Nothing yet: the minute is still open.
    assert!(token_uses(&f).await.is_empty());
    // The first request after the minute records the one that ended, before it is answered.
    f.clock.advance(Duration::from_secs(10));
    let m = from("192.0.2.10", "req_a5");
    assert!(f
        .app
        .authenticate_token(&t.secret, &m)
        .await
        .unwrap()
        .is_some());
    let uses = token_uses(&f).await;
    assert_eq!(uses.len(), 1, "{uses:?}");
    let u = &uses[0];
    assert_eq!(u.actor, "admin");
    assert_eq!(u.auth, format!("token:{}", t.token.id));
    assert_eq!(u.resource, format!("token:{}", t.token.id));
    assert_eq!(u.source, "192.0.2.10");
    assert_eq!(u.request_id, "req_a0");
    assert_eq!(u.detail["requests"], 5);
    assert_eq!(u.detail["first_at"], start.rfc3339());
    assert_eq!(u.at, f.app.now(), "written at the injected clock's time");
    // Housekeeping records the other address's ended minute; shutdown records the rest.
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(f.app.flush_token_use(false).await.unwrap(), 2);
    assert_eq!(f.app.flush_token_use(true).await.unwrap(), 0);
    let uses = token_uses(&f).await;
    assert_eq!(uses.len(), 3);
    let counts: Vec<_> = uses
        .iter()
        .map(|u| (u.source.as_str(), u.detail["requests"].as_u64().unwrap()))
        .collect();
    assert!(counts.contains(&("198.51.100.7", 1)), "{counts:?}");
    assert!(counts.contains(&("192.0.2.10", 1)), "{counts:?}");
    // A trail that cannot record refuses the request that is due to write, and keeps the count.
    let m = from("192.0.2.10", "req_c0");
    assert!(f
        .app
        .authenticate_token(&t.secret, &m)
        .await
        .unwrap()
        .is_some());
    f.clock.advance(Duration::from_secs(61));
    f.app.store().break_audit_for_tests().await.unwrap();
    let e = f.app.authenticate_token(&t.secret, &m).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
}
