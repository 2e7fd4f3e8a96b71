//! Secrets and keys through the use cases: sealing, versions, permissions, workload injection
//! under the workload's own role, project-key rotation with re-encryption, retirement, and
//! master-key rotation, on a real store and a real master-key file.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use enclave_app::{App, Caller, Keyring, NewUser, RequestMeta, Settings, SystemClock};
use enclave_core::model::ProjectRole;
use enclave_core::secrets::{parse_mapping, InjectionTarget};
use enclave_core::ErrorCode;
use enclave_keys::{FileMasterKeys, MasterKeys};
use enclave_policy::WorkloadKind;
use enclave_store::Store;
use std::sync::Arc;

const PW: &str = "Granite-Orchard-Violet-27";
const VALUE: &[u8] = b"pg-password-Zebra-Quartz-9131";

struct Fixture {
    app: App,
    master: Arc<FileMasterKeys>,
    dir: tempfile::TempDir,
}

fn meta() -> RequestMeta {
    RequestMeta {
        source: "192.0.2.10".into(),
        request_id: "req_test".into(),
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db")).await.unwrap();
    let master =
        Arc::new(FileMasterKeys::open_or_create_local(&dir.path().join("master.key")).unwrap());
    let settings = Settings {
        hash_concurrency: 2,
        ..Settings::default()
    };
    let app = App::new(store, Arc::new(SystemClock), settings)
        .unwrap()
        .with_keys(Arc::new(Keyring::new(master.clone())));
    Fixture { app, master, dir }
}

async fn login(f: &Fixture, user: &str) -> Caller {
    f.app.login_session(user, PW, &meta()).await.unwrap().caller
}

/// admin; `olivia` owns project `fraud`; `viewer` views it; `other` is not in it.
async fn people(f: &Fixture) -> (Caller, Caller, Caller, Caller) {
    f.app.bootstrap_admin("admin", PW).await.unwrap();
    let admin = login(f, "admin").await;
    for u in ["olivia", "viewer", "other"] {
        f.app
            .create_user(
                &admin,
                NewUser {
                    username: u.into(),
                    password: PW.into(),
                    display_name: String::new(),
                    email: String::new(),
                    platform_admin: false,
                },
            )
            .await
            .unwrap();
    }
    f.app
        .create_project(&admin, "fraud", "", Some("olivia"))
        .await
        .unwrap();
    let owner = login(f, "olivia").await;
    f.app
        .set_project_member(&owner, "fraud", "viewer", ProjectRole::Viewer)
        .await
        .unwrap();
    (
        admin,
        owner,
        login(f, "viewer").await,
        login(f, "other").await,
    )
}

fn raw_files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        p.is_file()
            && std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
    })
}

#[tokio::test]
async fn secrets_are_sealed_versioned_and_read_only_with_permission() {
    let f = fixture().await;
    let (admin, owner, viewer, other) = people(&f).await;
    let m = f
        .app
        .set_secret(&owner, "fraud", "DB_PASSWORD", VALUE, Some("warehouse"))
        .await
        .unwrap();
    assert_eq!(m.current_version, 1);
    let m2 = f
        .app
        .set_secret(
            &owner,
            "fraud",
            "DB_PASSWORD",
            b"second-value-Lantern",
            None,
        )
        .await
        .unwrap();
    assert_eq!((m2.current_version, m2.id.as_str()), (2, m.id.as_str()));
    assert_eq!(m2.description, "warehouse");

    let (v, value) = f
        .app
        .read_secret(&owner, "fraud", "DB_PASSWORD", None)
        .await
        .unwrap();
    assert_eq!((v, value.as_slice()), (2, &b"second-value-Lantern"[..]));
    let (_, old) = f
        .app
        .read_secret(&owner, "fraud", "DB_PASSWORD", Some(1))
        .await
        .unwrap();
    assert_eq!(old.as_slice(), VALUE);

    // Viewers list names; nobody else reads values (admins included: that takes a grant).
    assert_eq!(f.app.list_secrets(&viewer, "fraud").await.unwrap().len(), 1);
    for c in [&viewer, &admin] {
        let e = f
            .app
            .read_secret(c, "fraud", "DB_PASSWORD", None)
            .await
            .unwrap_err();
        assert!(
            matches!(e.code, ErrorCode::Forbidden | ErrorCode::NotFound),
            "{e:?}"
        );
    }
    let e = f.app.list_secrets(&other, "fraud").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = f
        .app
        .set_secret(&viewer, "fraud", "X", b"v", None)
        .await
        .unwrap_err();
    assert!(matches!(e.code, ErrorCode::Forbidden | ErrorCode::NotFound));

    // Bad input changes nothing.
    for (name, value) in [("1bad", &b"v"[..]), ("ok", &b""[..])] {
        let e = f
            .app
            .set_secret(&owner, "fraud", name, value, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput);
    }
    let big = vec![b'x'; enclave_core::secrets::MAX_SECRET_VALUE + 1];
    assert!(f
        .app
        .set_secret(&owner, "fraud", "big", &big, None)
        .await
        .is_err());
    assert_eq!(f.app.list_secrets(&owner, "fraud").await.unwrap().len(), 1);

    // Versions: metadata only.
    let (_, versions) = f
        .app
        .secret_versions(&owner, "fraud", "DB_PASSWORD")
        .await
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );

    // The raw files hold no value (the WAL included).
    f.app.store().close().await;
    assert!(!raw_files_contain(f.dir.path(), VALUE));
    assert!(!raw_files_contain(f.dir.path(), b"second-value-Lantern"));
    // Password hashes are sealed too: nothing to crack offline.
    assert!(!raw_files_contain(f.dir.path(), b"$argon2id$"));
}

#[tokio::test]
async fn password_hashes_stored_in_the_clear_are_sealed_and_logins_go_on() {
    let f = fixture().await;
    // An installation from before keys: hashes in the clear.
    let plain = App::new(
        f.app.store().clone(),
        Arc::new(SystemClock),
        Settings::default(),
    )
    .unwrap();
    plain.bootstrap_admin("admin", PW).await.unwrap();
    assert_eq!(
        f.app.store().plain_password_hashes(10).await.unwrap().len(),
        1
    );
    assert_eq!(f.app.seal_plain_password_hashes().await.unwrap(), 1);
    assert!(f
        .app
        .store()
        .plain_password_hashes(10)
        .await
        .unwrap()
        .is_empty());
    login(&f, "admin").await;
    // A wrong password still fails.
    assert!(f
        .app
        .login_session("admin", "Wrong-Password-Entirely-1", &meta())
        .await
        .is_err());
}

#[tokio::test]
async fn workloads_receive_exactly_their_plan_under_their_own_role() {
    let f = fixture().await;
    let (_admin, owner, viewer, _other) = people(&f).await;
    f.app
        .set_secret(&owner, "fraud", "DB_PASSWORD", VALUE, None)
        .await
        .unwrap();
    f.app
        .set_secret(&owner, "fraud", "tls.ca", b"-----BEGIN CERT-----", None)
        .await
        .unwrap();
    let plan = vec![
        parse_mapping("DB_PASSWORD=env:PGPASSWORD").unwrap(),
        parse_mapping("tls.ca=file:ca.pem").unwrap(),
    ];
    let preview = f.app.plan_secrets(&owner, "fraud", &plan).await.unwrap();
    assert_eq!(preview.len(), 2);
    // A viewer may not run jobs, so may not plan one.
    assert!(f.app.plan_secrets(&viewer, "fraud", &plan).await.is_err());
    // A plan naming a missing secret is refused.
    let missing = vec![parse_mapping("NOPE=env:X").unwrap()];
    assert_eq!(
        f.app
            .plan_secrets(&owner, "fraud", &missing)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );

    let wl = f
        .app
        .register_workload(&owner, "fraud", WorkloadKind::Job, "nightly")
        .await
        .unwrap();
    let got = f
        .app
        .resolve_secrets(&wl, "fraud", &plan, &meta())
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].target, InjectionTarget::Env("PGPASSWORD".into()));
    assert_eq!(got[0].value.as_slice(), VALUE);
    assert_eq!(
        got[1].target,
        InjectionTarget::File("/run/secrets/ca.pem".into())
    );

    // Once ended, the workload is nobody.
    f.app.end_workload(&wl, "fraud").await.unwrap();
    let e = f
        .app
        .resolve_secrets(&wl, "fraud", &plan, &meta())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    // An unknown workload is nobody either.
    assert!(f
        .app
        .resolve_secrets("wl_unknown", "fraud", &plan, &meta())
        .await
        .is_err());
}

#[tokio::test]
async fn project_and_master_keys_rotate_and_old_data_stays_readable() {
    let f = fixture().await;
    let (admin, owner, viewer, _other) = people(&f).await;
    for i in 0..150 {
        f.app
            .set_secret(
                &owner,
                "fraud",
                &format!("S{i}"),
                format!("value-{i}").as_bytes(),
                None,
            )
            .await
            .unwrap();
    }
    let st = f.app.key_status(&owner, "fraud").await.unwrap();
    assert_eq!(st.versions.len(), 1);
    assert_eq!(st.versions[0].sealed, 150);
    assert!(f.app.rotate_project_key(&viewer, "fraud").await.is_err());

    let st = f.app.rotate_project_key(&owner, "fraud").await.unwrap();
    assert_eq!(st.versions.len(), 2);
    // New writes use version 2 at once.
    f.app
        .set_secret(&owner, "fraud", "NEW", b"new-value", None)
        .await
        .unwrap();
    // Old data stays readable during and after re-encryption.
    let (_, v) = f
        .app
        .read_secret(&owner, "fraud", "S7", None)
        .await
        .unwrap();
    assert_eq!(v.as_slice(), b"value-7");
    // Retiring is refused while anything is still sealed with the old version (the check and
    // the retirement are one transaction, so an attempt may succeed only once the pass ended).
    let mut tries = 0;
    let mut retired_early = false;
    loop {
        let st = f.app.key_status(&owner, "fraud").await.unwrap();
        if st.pending == 0 {
            break;
        }
        match f.app.retire_project_key(&owner, "fraud", 1).await {
            Err(e) => assert_eq!(e.code, ErrorCode::Conflict),
            Ok(st) => {
                assert_eq!(st.versions[0].sealed, 0);
                retired_early = true;
                break;
            }
        }
        tries += 1;
        assert!(tries < 500, "re-encryption does not finish");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let st = f.app.key_status(&owner, "fraud").await.unwrap();
    assert_eq!(st.versions[0].sealed, 0);
    assert_eq!(st.versions[1].sealed, 151);
    // The active version cannot be retired; the old one can, once.
    assert_eq!(
        f.app
            .retire_project_key(&owner, "fraud", 2)
            .await
            .unwrap_err()
            .code,
        ErrorCode::Conflict
    );
    if !retired_early {
        let st = f.app.retire_project_key(&owner, "fraud", 1).await.unwrap();
        assert_eq!(st.versions[0].state, "retired");
    }
    // Only once.
    assert_eq!(
        f.app
            .retire_project_key(&owner, "fraud", 1)
            .await
            .unwrap_err()
            .code,
        ErrorCode::Conflict
    );
    let (_, v) = f
        .app
        .read_secret(&owner, "fraud", "S149", None)
        .await
        .unwrap();
    assert_eq!(v.as_slice(), b"value-149");

    // Master rotation: only admins; every data key is rewrapped; the old master key goes.
    assert!(f.app.rotate_master_key(&owner).await.is_err());
    let before = f.master.current_id().unwrap();
    let ms = f.app.rotate_master_key(&admin).await.unwrap();
    assert_ne!(ms.current, before);
    assert_eq!(ms.pending, 0);
    assert_eq!(ms.held, vec![ms.current.clone()]);

    // A fresh process with the rotated key file reads everything.
    let store = f.app.store().clone();
    let master2 =
        Arc::new(FileMasterKeys::open_or_create_local(&f.dir.path().join("master.key")).unwrap());
    let app2 = App::new(store, Arc::new(SystemClock), Settings::default())
        .unwrap()
        .with_keys(Arc::new(Keyring::new(master2)));
    let owner2 = app2
        .login_session("olivia", PW, &meta())
        .await
        .unwrap()
        .caller;
    let (_, v) = app2
        .read_secret(&owner2, "fraud", "S3", None)
        .await
        .unwrap();
    assert_eq!(v.as_slice(), b"value-3");
    let (_, v) = app2
        .read_secret(&owner2, "fraud", "NEW", None)
        .await
        .unwrap();
    assert_eq!(v.as_slice(), b"new-value");
}

#[tokio::test]
async fn a_wrong_master_key_decrypts_nothing() {
    let f = fixture().await;
    let (_admin, owner, _viewer, _other) = people(&f).await;
    f.app
        .set_secret(&owner, "fraud", "DB_PASSWORD", VALUE, None)
        .await
        .unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let wrong = Arc::new(
        FileMasterKeys::open_or_create_local(&other_dir.path().join("master.key")).unwrap(),
    );
    let app2 = App::new(
        f.app.store().clone(),
        Arc::new(SystemClock),
        Settings::default(),
    )
    .unwrap()
    .with_keys(Arc::new(Keyring::new(wrong)));
    // Not even a login: the password hash is sealed too. A clear error, nothing opened.
    let e = app2.login_session("olivia", PW, &meta()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("master key"), "{}", e.message);
    assert!(!e.message.contains("Zebra"));
}

#[tokio::test]
async fn personal_secrets_are_their_owners_and_reach_only_their_own_workloads() {
    let f = fixture().await;
    let (admin, owner, viewer, _other) = people(&f).await;
    f.app
        .set_personal_secret(
            &owner,
            "GITHUB_TOKEN",
            b"ghp_Personal-Heron-77",
            Some("mine"),
        )
        .await
        .unwrap();
    let list = f.app.list_personal_secrets(&owner).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].owner.as_deref(), Some("olivia"));
    assert!(list[0].project.is_empty());
    let (_, v) = f
        .app
        .read_personal_secret(&owner, "GITHUB_TOKEN", None)
        .await
        .unwrap();
    assert_eq!(v.as_slice(), b"ghp_Personal-Heron-77");
    // Nobody else sees or reads it, admins included: their own space is empty.
    for c in [&admin, &viewer] {
        assert!(f.app.list_personal_secrets(c).await.unwrap().is_empty());
        let e = f
            .app
            .read_personal_secret(c, "GITHUB_TOKEN", None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
    }
    // The same name in a project is another secret.
    f.app
        .set_secret(&owner, "fraud", "GITHUB_TOKEN", b"project-token", None)
        .await
        .unwrap();
    // A job launched by the owner receives `@GITHUB_TOKEN` (hers) and the project's.
    let plan = vec![
        parse_mapping("@GITHUB_TOKEN=env:GH_TOKEN").unwrap(),
        parse_mapping("GITHUB_TOKEN=env:PROJECT_TOKEN").unwrap(),
    ];
    assert_eq!(
        f.app
            .plan_secrets(&owner, "fraud", &plan)
            .await
            .unwrap()
            .len(),
        2
    );
    let wl = f
        .app
        .register_workload(&owner, "fraud", WorkloadKind::Job, "mine")
        .await
        .unwrap();
    let got = f
        .app
        .resolve_secrets(&wl, "fraud", &plan, &meta())
        .await
        .unwrap();
    assert_eq!(got[0].value.as_slice(), b"ghp_Personal-Heron-77");
    assert_eq!(got[1].value.as_slice(), b"project-token");
    // A job launched by someone else gets their own `@GITHUB_TOKEN`, which they do not have.
    f.app
        .set_project_member(&owner, "fraud", "other", ProjectRole::Member)
        .await
        .unwrap();
    let other = login(&f, "other").await;
    let wl2 = f
        .app
        .register_workload(&other, "fraud", WorkloadKind::Job, "theirs")
        .await
        .unwrap();
    let e = f
        .app
        .resolve_secrets(&wl2, "fraud", &plan[..1], &meta())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    // Deleting is the owner's alone too.
    assert!(f
        .app
        .delete_personal_secret(&viewer, "GITHUB_TOKEN")
        .await
        .is_err());
    f.app
        .delete_personal_secret(&owner, "GITHUB_TOKEN")
        .await
        .unwrap();
    assert!(f
        .app
        .list_personal_secrets(&owner)
        .await
        .unwrap()
        .is_empty());
}
