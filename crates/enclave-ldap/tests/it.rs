//! Integration tests against a real OpenLDAP slapd (see `slapd/mod.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod slapd;

use std::time::Duration;

use enclave_ldap::{Directory, DirectoryUser, Error, LdapConfig};
use slapd::{Slapd, SERVICE_DN, SERVICE_PW};

const PEOPLE: &str = "ou=people,dc=corp,dc=test";
const GROUPS: &str = "ou=groups,dc=corp,dc=test";

fn cfg(s: &Slapd) -> LdapConfig {
    let mut c = LdapConfig::new(s.ldaps_url(), SERVICE_DN, SERVICE_PW, PEOPLE, GROUPS);
    c.ca_pem = Some(s.ca_pem.clone());
    c.disabled_filter = Some("(employeeType=disabled)".to_owned());
    c.timeout = Duration::from_secs(5);
    c.pool_size = 2;
    c
}

fn dir(c: LdapConfig) -> Directory {
    Directory::new(c).unwrap()
}

fn assert_alice(u: &DirectoryUser) {
    assert_eq!(u.dn, "uid=alice,ou=people,dc=corp,dc=test");
    assert_eq!(u.username, "alice");
    assert_eq!(u.email.as_deref(), Some("alice@corp.test"));
    assert_eq!(u.name.as_deref(), Some("Alice Archer"));
    assert_eq!(u.groups, ["all-staff", "analytics", "data-scientists"]);
    assert_eq!(
        u.group_dns,
        [
            "cn=all-staff,ou=groups,dc=corp,dc=test",
            "cn=analytics,ou=groups,dc=corp,dc=test",
            "cn=data-scientists,ou=groups,dc=corp,dc=test",
        ]
    );
    assert!(!u.disabled);
}

/// A port nobody listens on.
fn dead_url() -> String {
    format!("ldaps://127.0.0.1:{}", slapd::free_port().unwrap())
}

#[tokio::test]
async fn alice_logs_in_over_ldaps_with_three_levels_of_nested_groups() {
    let s = Slapd::start().unwrap();
    // memberOf attribute (maintained by the overlay) for the direct groups.
    let d = dir(cfg(&s));
    assert_alice(&d.authenticate("alice", "alice-pw-1").await.unwrap());
    // The same through the (member=<dn>) search under group_base.
    let mut c = cfg(&s);
    c.member_of_attr = None;
    assert_alice(&dir(c).authenticate("alice", "alice-pw-1").await.unwrap());
    // Case of the username as the directory matches it; the directory's spelling comes back.
    assert_eq!(
        d.authenticate("ALICE", "alice-pw-1")
            .await
            .unwrap()
            .username,
        "alice"
    );
    let bob = d.authenticate("bob", "bob-pw-1").await.unwrap();
    assert_eq!(bob.groups, ["contractors"]);
}

#[tokio::test]
async fn starttls_works_and_bind_per_login_mode_works() {
    let s = Slapd::start().unwrap();
    let mut c = cfg(&s);
    c.url = s.ldap_url();
    c.starttls = true;
    assert_alice(
        &dir(c.clone())
            .authenticate("alice", "alice-pw-1")
            .await
            .unwrap(),
    );
    let unpooled = Directory::new_unpooled(c).unwrap();
    assert_alice(&unpooled.authenticate("alice", "alice-pw-1").await.unwrap());
    assert_eq!(unpooled.idle_connections(), (0, 0));
    assert!(matches!(
        unpooled.authenticate("alice", "wrong").await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_error() {
    let s = Slapd::start().unwrap();
    let d = dir(cfg(&s));
    let wrong = d.authenticate("alice", "alice-pw-2").await.unwrap_err();
    let unknown = d.authenticate("mallory", "alice-pw-1").await.unwrap_err();
    assert!(matches!(wrong, Error::InvalidCredentials), "{wrong:?}");
    assert!(matches!(unknown, Error::InvalidCredentials), "{unknown:?}");
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert!(wrong.is_credentials_failure());
    // Another user's password does not work either.
    assert!(matches!(
        d.authenticate("alice", "bob-pw-1").await,
        Err(Error::InvalidCredentials)
    ));
    // The pool is still healthy afterwards.
    assert_alice(&d.authenticate("alice", "alice-pw-1").await.unwrap());
}

#[tokio::test]
async fn empty_password_and_bad_usernames_are_refused_before_any_network_traffic() {
    // Nobody listens on this port: any connection attempt would give Unavailable.
    let mut c = LdapConfig::new(dead_url(), SERVICE_DN, SERVICE_PW, PEOPLE, GROUPS);
    c.ca_pem = Some(Slapd::start().unwrap().ca_pem.clone());
    let d = dir(c);
    assert!(matches!(
        d.authenticate("alice", "").await,
        Err(Error::EmptyPassword)
    ));
    assert!(matches!(
        d.authenticate("", "x").await,
        Err(Error::InvalidUsername(_))
    ));
    assert!(matches!(
        d.authenticate("a\0b", "x").await,
        Err(Error::InvalidUsername(_))
    ));
    assert!(matches!(
        d.authenticate(&"a".repeat(257), "x").await,
        Err(Error::InvalidUsername(_))
    ));
    assert!(matches!(
        d.authenticate("alice", &"p".repeat(1025)).await,
        Err(Error::PasswordTooLong(_))
    ));
    assert!(matches!(d.lookup("").await, Err(Error::InvalidUsername(_))));
    // Control: a well-formed login does try the network and fails as Unavailable.
    let e = d.authenticate("alice", "alice-pw-1").await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
}

#[tokio::test]
async fn ldap_filter_injection_never_authenticates() {
    let s = Slapd::start().unwrap();
    let d = dir(cfg(&s));
    for name in [
        "*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "al*",
        "*)(uid=alice",
        "alice)(|(uid=*)",
        "\\2a",
        "alice\\",
    ] {
        for pw in ["alice-pw-1", "bob-pw-1", "x"] {
            let r = d.authenticate(name, pw).await;
            assert!(
                matches!(r, Err(Error::InvalidCredentials)),
                "{name:?}/{pw}: {r:?}"
            );
        }
        assert!(d.lookup(name).await.unwrap().is_none(), "{name:?}");
    }
    // A user whose uid and DN are full of metacharacters logs in (literal match) and her
    // group is found both through memberOf and through a (member=<escaped dn>) search.
    let eve = d.authenticate("eve*(ops)\\x", "eve-pw-1").await.unwrap();
    // slapd normalises the escaped comma to \\2C.
    assert_eq!(eve.dn, "cn=Smith\\2C Eve (ops)*,ou=people,dc=corp,dc=test");
    assert_eq!(eve.username, "eve*(ops)\\x");
    assert_eq!(eve.groups, ["ops"]);
    let mut c = cfg(&s);
    c.member_of_attr = None;
    assert_eq!(
        dir(c)
            .authenticate("eve*(ops)\\x", "eve-pw-1")
            .await
            .unwrap()
            .groups,
        ["ops"]
    );
    assert!(matches!(
        d.authenticate("eve*", "eve-pw-1").await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn disabled_account_gets_its_own_error_and_lookup_reports_it() {
    let s = Slapd::start().unwrap();
    let d = dir(cfg(&s));
    let e = d.authenticate("dave", "dave-pw-1").await.unwrap_err();
    match &e {
        Error::AccountDisabled { dn } => assert_eq!(dn, "uid=dave,ou=people,dc=corp,dc=test"),
        other => panic!("expected AccountDisabled, got {other:?}"),
    }
    assert!(e.is_credentials_failure());
    let dave = d.lookup("dave").await.unwrap().unwrap();
    assert!(dave.disabled);
    assert_eq!(dave.groups, ["all-staff"]);
    // Control: without disabled_filter the directory itself lets dave bind.
    let mut c = cfg(&s);
    c.disabled_filter = None;
    assert!(
        !dir(c)
            .authenticate("dave", "dave-pw-1")
            .await
            .unwrap()
            .disabled
    );
}

#[tokio::test]
async fn lookup_finds_users_and_returns_none_once_removed() {
    let s = Slapd::start().unwrap();
    let d = dir(cfg(&s));
    assert_alice(&d.lookup("alice").await.unwrap().unwrap());
    let carol = d.lookup("carol").await.unwrap().unwrap();
    assert!(carol.groups.is_empty());
    s.admin("ldapdelete", &["uid=carol,ou=people,dc=corp,dc=test"])
        .unwrap();
    assert_eq!(d.lookup("carol").await.unwrap(), None);
    assert!(matches!(
        d.authenticate("carol", "carol-pw-1").await,
        Err(Error::InvalidCredentials)
    ));
}

#[tokio::test]
async fn ambiguous_username_and_group_cycles_and_limits() {
    let s = Slapd::start().unwrap();
    let d = dir(cfg(&s));
    let e = d.authenticate("twin", "twin-pw-1").await.unwrap_err();
    assert!(matches!(e, Error::Ambiguous { .. }), "{e:?}");
    // frank -> cycle-a <-> cycle-b terminates.
    let frank = d.authenticate("frank", "frank-pw-1").await.unwrap();
    assert_eq!(frank.groups, ["cycle-a", "cycle-b"]);
    let mut c = cfg(&s);
    c.member_of_attr = None;
    assert_eq!(
        dir(c).lookup("frank").await.unwrap().unwrap().groups,
        ["cycle-a", "cycle-b"]
    );
    // Depth limit: alice's groups nest two levels above the direct one.
    let mut c = cfg(&s);
    c.max_group_depth = 1;
    let e = dir(c)
        .authenticate("alice", "alice-pw-1")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::GroupLimit { .. }), "{e:?}");
    let mut c = cfg(&s);
    c.max_group_depth = 2;
    assert_alice(&dir(c).authenticate("alice", "alice-pw-1").await.unwrap());
    let mut c = cfg(&s);
    c.max_groups = 2;
    let e = dir(c)
        .authenticate("alice", "alice-pw-1")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::GroupLimit { .. }), "{e:?}");
}

#[tokio::test]
async fn directory_down_is_unavailable_with_a_clear_message() {
    let mut s = Slapd::start().unwrap();
    let c = cfg(&s);
    let url = c.url.clone();
    let d = dir(c);
    assert_alice(&d.authenticate("alice", "alice-pw-1").await.unwrap());
    s.stop();
    for _ in 0..2 {
        let e = d.authenticate("alice", "alice-pw-1").await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&url) && msg.contains("unavailable"), "{msg}");
        assert!(
            !msg.contains("alice-pw-1") && !msg.contains(SERVICE_PW),
            "{msg}"
        );
    }
    assert!(matches!(
        d.test_connection().await,
        Err(Error::Unavailable { .. })
    ));
    assert!(matches!(
        d.lookup("alice").await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test]
async fn pool_survives_a_slapd_restart() {
    let mut s = Slapd::start().unwrap();
    let d = dir(cfg(&s));
    assert_alice(&d.authenticate("alice", "alice-pw-1").await.unwrap());
    assert_eq!(d.idle_connections(), (1, 1));
    s.restart().unwrap();
    assert_alice(&d.authenticate("alice", "alice-pw-1").await.unwrap());
    assert_eq!(d.idle_connections(), (1, 1));
    // Concurrent logins share the (size 2) pools.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                d.authenticate("alice", "alice-pw-1")
                    .await
                    .map(|u| u.groups.len())
            } else {
                d.authenticate("bob", "bob-pw-1")
                    .await
                    .map(|u| u.groups.len())
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), if i % 2 == 0 { 3 } else { 1 });
    }
    let (svc, binds) = d.idle_connections();
    assert!(
        svc <= 2 && binds <= 2 && svc >= 1 && binds >= 1,
        "{svc} {binds}"
    );
}

#[tokio::test]
async fn plain_ldap_is_refused_unless_allowed() {
    let s = Slapd::start().unwrap();
    let mut c = cfg(&s);
    c.url = s.ldap_url();
    assert!(matches!(
        Directory::new(c.clone()),
        Err(Error::PlainRefused)
    ));
    c.allow_plain = true;
    assert_alice(&dir(c).authenticate("alice", "alice-pw-1").await.unwrap());
}

#[tokio::test]
async fn untrusted_certificates_fail_without_fallback() {
    let s = Slapd::start().unwrap();
    // LDAPS and StartTLS with a CA that did not sign slapd's certificate.
    let mut c = cfg(&s);
    c.ca_pem = Some(s.other_ca_pem.clone());
    let e = dir(c.clone())
        .authenticate("alice", "alice-pw-1")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("ca_pem"), "{e}");
    c.url = s.ldap_url();
    c.starttls = true;
    let e = dir(c)
        .authenticate("alice", "alice-pw-1")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    // Platform roots do not include the test CA either.
    let mut c = cfg(&s);
    c.ca_pem = None;
    match Directory::new(c) {
        Ok(d) => {
            let e = d.test_connection().await.unwrap_err();
            assert!(matches!(e, Error::Tls { .. }), "{e:?}");
        }
        // A machine without any platform CA bundle.
        Err(e) => assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}"),
    }
}

#[tokio::test]
async fn test_connection_and_service_account_errors() {
    let s = Slapd::start().unwrap();
    dir(cfg(&s)).test_connection().await.unwrap();
    let mut c = cfg(&s);
    c.bind_password = "not-the-service-password".into();
    let e = dir(c.clone()).test_connection().await.unwrap_err();
    assert!(matches!(e, Error::ServiceBind { .. }), "{e:?}");
    assert!(!e.to_string().contains("not-the-service-password"), "{e}");
    assert!(!format!("{e:?}").contains("not-the-service-password"));
    assert!(!format!("{c:?}").contains("not-the-service-password"));
    let e = dir(c)
        .authenticate("alice", "alice-pw-1")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ServiceBind { .. }), "{e:?}");
    let mut c = cfg(&s);
    c.group_base = "ou=nowhere,dc=corp,dc=test".to_owned();
    let e = dir(c).test_connection().await.unwrap_err();
    assert!(matches!(e, Error::Directory { code: 32, .. }), "{e:?}");
}

#[tokio::test]
async fn configuration_is_validated() {
    let base = LdapConfig::new(
        "ldaps://127.0.0.1:1",
        SERVICE_DN,
        SERVICE_PW,
        PEOPLE,
        GROUPS,
    );
    let bad = |f: &dyn Fn(&mut LdapConfig)| {
        let mut c = base.clone();
        c.ca_pem = Some(
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUJxL7yLrQzZ5KyFMu2K8u6wTgq8MwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n"
                .to_owned(),
        );
        f(&mut c);
        Directory::new(c)
    };
    assert!(matches!(
        bad(&|c| c.url = "http://x".into()),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(&|c| c.starttls = true),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(&|c| c.user_filter = "(uid=alice)".into()),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(&|c| c.user_filter = "uid={username}".into()),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(&|c| c.disabled_filter = Some("(x=".into())),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(&|c| c.bind_password = "".into()),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(&|c| c.email_attr = "mail)(x".into()),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(&|c| c.pool_size = 65),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(&|c| c.ca_pem = Some("not pem".into())),
        Err(Error::InvalidConfig(_))
    ));
    let ad = LdapConfig::active_directory("ldaps://127.0.0.1:1", "CN=svc,DC=x", "pw", "DC=x");
    assert!(ad.user_filter.contains("sAMAccountName={username}"));
}

#[tokio::test]
async fn a_directory_that_never_answers_times_out_as_unavailable() {
    // The kernel completes the TCP handshake on the listener's backlog; nobody ever answers
    // the TLS ClientHello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldaps://{}", silent.local_addr().unwrap());
    let mut c = LdapConfig::new(url, SERVICE_DN, SERVICE_PW, PEOPLE, GROUPS);
    c.ca_pem = Some(Slapd::start().unwrap().ca_pem.clone());
    c.timeout = Duration::from_millis(300);
    let d = dir(c);
    let t = std::time::Instant::now();
    let e = d.authenticate("alice", "alice-pw-1").await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
