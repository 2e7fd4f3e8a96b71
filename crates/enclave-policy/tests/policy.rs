//! The policy engine's behaviour, end to end through its public API: the role matrix, groups
//! and time, credential limits, conditions in custom policies, validation, isolation
//! properties and reloads. (One test binary for the crate.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use enclave_core::authz::Action;
use enclave_core::Timestamp;
use enclave_policy::*;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// 2027-01-15T08:00:00Z, a Friday.
const T0: i64 = 1_800_000_000;

fn now() -> Timestamp {
    Timestamp(T0)
}

fn user(id: &str, groups: &[&str]) -> UserRecord {
    UserRecord {
        id: id.to_string(),
        username: id.trim_start_matches("u-").to_string(),
        platform_admin: false,
        disabled: false,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn group(id: &str, parents: &[&str]) -> GroupRecord {
    GroupRecord {
        id: id.to_string(),
        parents: parents.iter().map(|g| g.to_string()).collect(),
    }
}

fn project(name: &str, classification: &str) -> ProjectRecord {
    ProjectRecord {
        name: name.to_string(),
        classification: classification.to_string(),
        tags: BTreeMap::new(),
        requires_approval: true,
    }
}

fn bind(id: &str, subject: Subject, role: &str, scope: Scope) -> BindingRecord {
    BindingRecord {
        id: id.to_string(),
        subject,
        role: role.to_string(),
        scope,
        starts_at: None,
        expires_at: None,
        origin: "binding".to_string(),
    }
}

fn own() -> Scope {
    Scope::Project("own".to_string())
}

fn uid(id: &str) -> Subject {
    Subject::User(id.to_string())
}

fn workload(id: &str, kind: WorkloadKind) -> WorkloadRecord {
    WorkloadRecord {
        id: id.to_string(),
        project: "own".to_string(),
        kind,
        owner: Some("u-other".to_string()),
    }
}

fn custom(id: &str, scope: Scope, text: &str) -> CustomPolicyRecord {
    CustomPolicyRecord {
        id: id.to_string(),
        scope,
        text: text.to_string(),
    }
}

/// Two projects, `own` and `other`; a user `u-other`; groups `g-team` and `g-other`.
fn base_dir() -> Directory {
    Directory {
        users: vec![user("u-other", &["g-other"])],
        groups: vec![group("g-team", &[]), group("g-other", &[])],
        projects: vec![project("own", "internal"), project("other", "internal")],
        ..Default::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn req(principal: Principal, action: Action, resource: Resource) -> Request {
    let method = match principal {
        Principal::User(_) => AuthMethod::Session,
        Principal::Workload(_) => AuthMethod::Workload,
    };
    Request {
        principal,
        credential: Credential::full(method, true),
        source_ip: ip("10.1.2.3"),
        action,
        resource,
        extra: None,
    }
}

fn u(id: &str) -> Principal {
    Principal::User(id.to_string())
}

fn snapshot(dir: Directory) -> Snapshot {
    Snapshot::build(dir).unwrap()
}

fn secret(project: &str, owner: Option<&str>) -> Resource {
    Resource::Secret {
        name: "db-password".to_string(),
        project: project.to_string(),
        owner: owner.map(str::to_string),
    }
}

fn dataset(project: &str, owner: Option<&str>) -> Resource {
    Resource::Dataset {
        name: "claims".to_string(),
        project: project.to_string(),
        owner: owner.map(str::to_string),
    }
}

fn proj(name: &str) -> Resource {
    Resource::Project(name.to_string())
}

// ---- (a) the role matrix ---------------------------------------------------------------------

const COLUMNS: [(&str, &str); 12] = [
    ("EV", ""),
    ("PA", "platform_admin"),
    ("SA", "security_auditor"),
    ("PO", "project_owner"),
    ("DS", "data_scientist"),
    ("VW", "viewer"),
    ("SU", "support"),
    ("PJ", "project_admin"),
    ("NE", "notebook_execution"),
    ("JE", "job_execution"),
    ("EH", "endpoint_hosting"),
    ("EI", "endpoint_invocation"),
];

fn matrix_dir() -> Directory {
    let mut dir = base_dir();
    for (col, role) in COLUMNS {
        match col {
            "NE" | "JE" | "EH" | "EI" => {
                let kind = match col {
                    "NE" => WorkloadKind::Notebook,
                    "EH" => WorkloadKind::Endpoint,
                    _ => WorkloadKind::Job,
                };
                let id = format!("w-{col}");
                dir.workloads.push(workload(&id, kind));
                dir.bindings.push(bind(
                    &format!("b-{col}"),
                    Subject::Workload(id),
                    role,
                    own(),
                ));
            }
            _ => {
                let id = format!("u-{col}");
                dir.users.push(user(&id, &["g-team"]));
                let scope = match col {
                    "EV" => continue,
                    "PA" | "SA" => Scope::Platform,
                    _ => own(),
                };
                dir.bindings
                    .push(bind(&format!("b-{col}"), uid(&id), role, scope));
            }
        }
    }
    dir
}

/// The resource of `action`'s kind for a matrix cell: 0 = the principal's own in project
/// `own`, 1 = someone else's in `own`, 2 = someone else's in `other`.
fn matrix_resource(action: Action, variant: usize, me: &Principal) -> Resource {
    use Action as A;
    let p = if variant == 2 { "other" } else { "own" };
    let mine = variant == 0;
    let me_user = match me {
        Principal::User(id) => Some(id.as_str()),
        Principal::Workload(_) => None,
    };
    let owner = if mine { me_user } else { Some("u-other") };
    let name = action.as_str();
    let family = name.split('.').next().unwrap();
    match (family, action) {
        (_, A::UserList | A::UserCreate | A::GroupList | A::GroupCreate) => Resource::Platform,
        (_, A::ProjectList | A::ProjectCreate | A::TemplateList) => Resource::Platform,
        (_, A::KeyRotateMaster | A::BackupCreate) => Resource::Platform,
        (_, A::IdpRead | A::IdpManage) => Resource::Platform,
        ("user" | "self", _) => Resource::User(match (mine, me_user) {
            (true, Some(id)) => id.to_string(),
            _ => "u-other".to_string(),
        }),
        ("group", _) => Resource::Group(if mine { "g-team" } else { "g-other" }.to_string()),
        ("token", _) => Resource::Token {
            owner: owner.unwrap_or("u-other").to_string(),
        },
        (_, A::PolicyRead | A::PolicyUpdate | A::PolicyDelete) => Resource::Policy {
            id: format!("pol-{p}"),
            project: Some(p.to_string()),
        },
        ("audit", _) => Resource::AuditTrail {
            project: Some(p.to_string()),
        },
        ("template", _) => Resource::Template("basic".to_string()),
        ("secret", A::SecretList) => proj(p),
        ("secret", _) => secret(p, owner),
        ("dataset", _) => dataset(p, owner),
        (
            _,
            A::NotebookList
            | A::NotebookCreate
            | A::JobList
            | A::JobRun
            | A::EndpointList
            | A::EndpointCreate,
        ) => proj(p),
        ("notebook" | "job" | "endpoint", _) => {
            let kind = match family {
                "notebook" => WorkloadKind::Notebook,
                "job" => WorkloadKind::Job,
                _ => WorkloadKind::Endpoint,
            };
            match (mine, me) {
                (true, Principal::Workload(id)) => Resource::Workload {
                    id: id.clone(),
                    project: "own".to_string(),
                    kind,
                    owner: Some("u-other".to_string()),
                },
                _ => Resource::Workload {
                    id: format!("w-{family}-{variant}"),
                    project: p.to_string(),
                    kind,
                    owner: owner.map(str::to_string),
                },
            }
        }
        _ => proj(p),
    }
}

fn matrix_table(snap: &Snapshot) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<23}{}",
        "action",
        COLUMNS
            .iter()
            .map(|(c, _)| format!("{c:<3}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
    )];
    for action in Action::ALL {
        let mut cells = Vec::new();
        for (col, _) in COLUMNS {
            let me = match col {
                "NE" | "JE" | "EH" | "EI" => Principal::Workload(format!("w-{col}")),
                _ => u(&format!("u-{col}")),
            };
            let mut cell = String::new();
            for variant in 0..3 {
                let r = req(me.clone(), action, matrix_resource(action, variant, &me));
                let d = snap.decide(&r, now());
                let mark = if d.allowed {
                    'Y'
                } else if d.errors.iter().any(|e| e.contains("principal")) {
                    '.'
                } else if d.errors.is_empty() {
                    '-'
                } else {
                    eprintln!("{col} {} {variant}: {:?}", action.as_str(), d.errors);
                    'E'
                };
                cell.push(mark);
            }
            cells.push(cell);
        }
        lines.push(format!("{:<23}{}", action.as_str(), cells.join("  ")));
    }
    lines
}

#[test]
fn role_matrix() {
    let expected_text = include_str!("role-matrix.txt");
    let expected: Vec<&str> = expected_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let actual = matrix_table(&snapshot(matrix_dir()));
    if expected != actual {
        let mut diff = String::from("role matrix differs (- expected, + actual):\n");
        let n = expected.len().max(actual.len());
        for i in 0..n {
            let e = expected.get(i).copied().unwrap_or("");
            let a = actual.get(i).map(String::as_str).unwrap_or("");
            if e == a {
                diff.push_str(&format!("  {e}\n"));
            } else {
                diff.push_str(&format!("- {e}\n+ {a}\n"));
            }
        }
        panic!("{diff}");
    }
}

#[test]
fn personal_secrets_are_their_owners_and_their_own_workloads_alone() {
    let mut dir = matrix_dir();
    // w-JE was launched by u-other; w-NE too (see `workload`).
    dir.users.push(user("u-admin", &[]));
    dir.bindings.push(bind(
        "b-admin",
        uid("u-admin"),
        "platform_admin",
        Scope::Platform,
    ));
    let snap = snapshot(dir);
    let mine = Resource::User("u-other".into());
    for a in [
        Action::SecretList,
        Action::SecretWrite,
        Action::SecretDelete,
        Action::SecretReadValue,
    ] {
        assert!(
            snap.decide(&req(u("u-other"), a, mine.clone()), now())
                .allowed,
            "{a:?}"
        );
        for other in ["u-DS", "u-PO", "u-admin", "u-SA"] {
            assert!(
                !snap.decide(&req(u(other), a, mine.clone()), now()).allowed,
                "{other} {a:?}"
            );
        }
    }
    // The launcher's workloads may read (only read) the launcher's personal secrets.
    let w = Principal::Workload("w-JE".into());
    assert!(
        snap.decide(
            &req(w.clone(), Action::SecretReadValue, mine.clone()),
            now()
        )
        .allowed
    );
    let d = snap.decide(
        &req(
            w.clone(),
            Action::SecretReadValue,
            Resource::User("u-DS".into()),
        ),
        now(),
    );
    assert!(!d.allowed);
    assert!(
        !snap
            .decide(&req(w, Action::SecretList, mine.clone()), now())
            .allowed
    );
    // A read-only token reads its owner's secrets but changes none.
    let mut ro = req(u("u-other"), Action::SecretWrite, mine.clone());
    ro.credential.read_only = true;
    assert!(!snap.decide(&ro, now()).allowed);
    ro.action = Action::SecretReadValue;
    assert!(snap.decide(&ro, now()).allowed);
    // A project-limited token does not reach personal secrets.
    let mut limited = req(u("u-other"), Action::SecretReadValue, mine);
    limited.credential.token_projects = vec!["own".into()];
    assert!(!snap.decide(&limited, now()).allowed);
}

#[test]
fn admin_flag_is_platform_admin() {
    let mut dir = base_dir();
    let mut admin = user("u-root", &[]);
    admin.platform_admin = true;
    dir.users.push(admin);
    let snap = snapshot(dir);
    let d = snap.decide(
        &req(u("u-root"), Action::UserCreate, Resource::Platform),
        now(),
    );
    assert!(d.allowed);
    assert_eq!(
        d.explain(),
        "permitted by builtin.platform_admin (role platform_admin platform-wide, admin flag)"
    );
    // ... and it still does not reach project data.
    let d = snap.decide(
        &req(u("u-root"), Action::SecretReadValue, secret("own", None)),
        now(),
    );
    assert!(!d.allowed);
    assert_eq!(d.explain(), "no policy permits");
}

// ---- (b) groups and time ---------------------------------------------------------------------

#[test]
fn nested_groups_count_transitively() {
    let mut dir = base_dir();
    dir.groups.push(group("g1", &["g2"]));
    dir.groups.push(group("g2", &["data-team"]));
    dir.groups.push(group("data-team", &[]));
    dir.users.push(user("u-ada", &["g1"]));
    dir.bindings.push(bind(
        "b1",
        Subject::Group("data-team".into()),
        "data_scientist",
        own(),
    ));
    let snap = snapshot(dir);
    let d = snap.decide(
        &req(u("u-ada"), Action::SecretReadValue, secret("own", None)),
        now(),
    );
    assert!(d.allowed, "{d:?}");
    assert_eq!(
        d.explain(),
        "permitted by builtin.data_scientist (role data_scientist via group data-team on project own)"
    );
    assert_eq!(d.roles.len(), 1);
    assert_eq!(d.roles[0].via_group.as_deref(), Some("data-team"));
    // The role stays on its project.
    let d = snap.decide(
        &req(u("u-ada"), Action::SecretReadValue, secret("other", None)),
        now(),
    );
    assert!(!d.allowed);
    assert!(d.roles.is_empty());
    // A custom policy on an outer group reaches members of inner groups.
    let mut dir = snap_dir_with_custom(
        "permit(principal in Group::\"data-team\", action == Action::\"template.list\", resource);",
    );
    dir.users.push(user("u-bob", &["g1"]));
    let snap = snapshot(dir);
    let d = snap.decide(
        &req(u("u-bob"), Action::TemplateList, Resource::Platform),
        now(),
    );
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.determining, vec!["custom.c1"]);
}

fn snap_dir_with_custom(text: &str) -> Directory {
    let mut dir = base_dir();
    dir.groups.push(group("g1", &["g2"]));
    dir.groups.push(group("g2", &["data-team"]));
    dir.groups.push(group("data-team", &[]));
    dir.policies.push(custom("c1", Scope::Platform, text));
    dir
}

#[test]
fn group_cycles_are_harmless() {
    let mut dir = base_dir();
    dir.groups.push(group("ga", &["gb"]));
    dir.groups.push(group("gb", &["gc"]));
    dir.groups.push(group("gc", &["ga"]));
    dir.groups.push(group("self-loop", &["self-loop"]));
    dir.users.push(user("u-cy", &["ga", "self-loop"]));
    dir.bindings
        .push(bind("b1", Subject::Group("gc".into()), "viewer", own()));
    let snap = snapshot(dir);
    let d = snap.decide(&req(u("u-cy"), Action::ProjectRead, proj("own")), now());
    assert!(d.allowed, "{d:?}");
    // Group resources inside a cycle work too.
    let d = snap.decide(
        &req(u("u-cy"), Action::GroupRead, Resource::Group("gb".into())),
        now(),
    );
    assert!(!d.allowed);
    assert!(d.errors.is_empty(), "{d:?}");
}

#[test]
fn a_binding_applies_from_its_start_until_exactly_its_expiry() {
    let start = T0;
    let end = T0 + 3600;
    let mut dir = base_dir();
    dir.users.push(user("u-sam", &[]));
    let mut b = bind("g42", uid("u-sam"), "support", own());
    b.starts_at = Some(Timestamp(start));
    b.expires_at = Some(Timestamp(end));
    b.origin = "grant:42".into();
    dir.bindings.push(b);
    let snap = snapshot(dir);
    let r = req(
        u("u-sam"),
        Action::NotebookOpen,
        Resource::Workload {
            id: "w-nb".into(),
            project: "own".into(),
            kind: WorkloadKind::Notebook,
            owner: Some("u-other".into()),
        },
    );
    let at = |t: i64| snap.decide(&r, Timestamp(t));
    assert!(!at(start - 1).allowed, "not yet started");
    assert!(at(start).allowed, "starts exactly at starts_at");
    assert!(at(end - 1).allowed);
    assert!(!at(end).allowed, "stops exactly at expires_at");
    assert!(!at(end + 1).allowed);
    assert!(at(end).roles.is_empty());
    assert_eq!(
        at(start).explain(),
        "permitted by builtin.support (role support on project own, grant:42 until 2027-01-15T09:00:00Z)"
    );
    // What support may not do, even while the grant lasts.
    for a in [
        Action::SecretReadValue,
        Action::DatasetRead,
        Action::ProjectUpdate,
    ] {
        let resource = match a {
            Action::SecretReadValue => secret("own", None),
            Action::DatasetRead => dataset("own", None),
            _ => proj("own"),
        };
        assert!(
            !snap
                .decide(&req(u("u-sam"), a, resource), Timestamp(start))
                .allowed
        );
    }
}

#[test]
fn an_admin_grant_gives_owner_rights_only_while_it_lasts() {
    let mut dir = base_dir();
    let mut admin = user("u-root", &[]);
    admin.platform_admin = true;
    dir.users.push(admin);
    let mut b = bind("g7", uid("u-root"), "project_admin", own());
    b.starts_at = Some(Timestamp(T0 + 60));
    b.expires_at = Some(Timestamp(T0 + 120));
    b.origin = "grant:7".into();
    dir.bindings.push(b);
    let snap = snapshot(dir);
    let r = req(u("u-root"), Action::SecretReadValue, secret("own", None));
    assert!(!snap.decide(&r, Timestamp(T0 + 59)).allowed);
    assert!(snap.decide(&r, Timestamp(T0 + 60)).allowed);
    assert!(!snap.decide(&r, Timestamp(T0 + 120)).allowed);
    let other = req(u("u-root"), Action::SecretReadValue, secret("other", None));
    assert!(!snap.decide(&other, Timestamp(T0 + 60)).allowed);
}

// ---- (c) credential limits and disabled accounts ---------------------------------------------

/// A directory where a platform-wide custom policy permits everything to everyone.
fn permit_all_dir() -> Directory {
    let mut dir = base_dir();
    let mut admin = user("u-root", &[]);
    admin.platform_admin = true;
    dir.users.push(admin);
    dir.users.push(user("u-po", &[]));
    dir.bindings
        .push(bind("b1", uid("u-po"), "project_owner", own()));
    dir.policies.push(custom(
        "all",
        Scope::Platform,
        "permit(principal, action, resource);",
    ));
    dir
}

#[test]
fn read_only_tokens_only_read_whatever_permits_say() {
    let snap = snapshot(permit_all_dir());
    let mut r = req(u("u-root"), Action::UserList, Resource::Platform);
    r.credential = Credential {
        method: AuthMethod::Token,
        mfa: false,
        read_only: true,
        token_projects: vec![],
    };
    assert!(snap.decide(&r, now()).allowed);
    r.action = Action::UserCreate;
    let d = snap.decide(&r, now());
    assert!(!d.allowed);
    assert_eq!(d.explain(), "forbidden by builtin.forbid.read_only_token");
    // Every write is refused, every read allowed (the custom policy permits all).
    for a in Action::ALL {
        let mut r = r.clone();
        r.action = a;
        r.resource = matrix_resource(a, 1, &r.principal);
        let d = snap.decide(&r, now());
        if d.errors.is_empty() {
            assert_eq!(d.allowed, a.is_read(), "{} {d:?}", a.as_str());
        }
    }
}

#[test]
fn project_limited_tokens_stay_in_their_projects() {
    let snap = snapshot(permit_all_dir());
    let limited = Credential {
        method: AuthMethod::Token,
        mfa: false,
        read_only: false,
        token_projects: vec!["own".into()],
    };
    let ask = |who: &str, a: Action, r: Resource| {
        let mut q = req(u(who), a, r);
        q.credential = limited.clone();
        snap.decide(&q, now())
    };
    assert!(ask("u-po", Action::ProjectUpdate, proj("own")).allowed);
    assert!(ask("u-po", Action::SecretWrite, secret("own", None)).allowed);
    let d = ask("u-po", Action::ProjectRead, proj("other"));
    assert!(!d.allowed);
    assert_eq!(
        d.explain(),
        "forbidden by builtin.forbid.token_outside_projects"
    );
    assert!(!ask("u-root", Action::UserList, Resource::Platform).allowed);
    assert!(ask("u-root", Action::ProjectList, Resource::Platform).allowed);
    assert!(ask("u-po", Action::SelfRead, Resource::User("u-po".into())).allowed);
    assert!(!ask("u-po", Action::SelfRead, Resource::User("u-other".into())).allowed);
    assert!(
        !ask(
            "u-po",
            Action::SelfChangePassword,
            Resource::User("u-po".into())
        )
        .allowed
    );
    assert!(
        !ask(
            "u-po",
            Action::TokenRead,
            Resource::Token {
                owner: "u-po".into()
            }
        )
        .allowed
    );
    assert!(
        !ask(
            "u-root",
            Action::AuditSearch,
            Resource::AuditTrail { project: None }
        )
        .allowed
    );
}

#[test]
fn disabled_accounts_may_do_nothing() {
    let mut dir = permit_all_dir();
    for u in &mut dir.users {
        u.disabled = true;
    }
    let snap = snapshot(dir);
    for who in ["u-root", "u-po"] {
        for a in Action::ALL {
            let me = u(who);
            let r = req(me.clone(), a, matrix_resource(a, 0, &me));
            let d = snap.decide(&r, now());
            assert!(!d.allowed, "{who} {}", a.as_str());
            if d.errors.is_empty() {
                assert_eq!(d.determining, vec!["builtin.forbid.disabled_account"]);
            }
        }
    }
}

#[test]
fn workloads_never_act_outside_their_project() {
    let mut dir = permit_all_dir();
    dir.workloads.push(workload("w-job", WorkloadKind::Job));
    // Even bound in the other project, and with a permit-all policy.
    dir.bindings.push(bind(
        "b2",
        Subject::Workload("w-job".into()),
        "job_execution",
        Scope::Project("other".into()),
    ));
    let snap = snapshot(dir);
    let w = Principal::Workload("w-job".into());
    let d = snap.decide(
        &req(w.clone(), Action::SecretReadValue, secret("other", None)),
        now(),
    );
    assert!(!d.allowed);
    assert_eq!(
        d.determining,
        vec!["builtin.forbid.workload_outside_project"]
    );
    // In its own project the permit-all policy applies (it is a platform-wide custom policy).
    let d = snap.decide(&req(w, Action::SecretReadValue, secret("own", None)), now());
    assert!(d.allowed);
    assert_eq!(d.determining, vec!["custom.all"]);
}

#[test]
fn nobody_approves_their_own_grant() {
    let mut dir = base_dir();
    dir.users.push(user("u-po", &[]));
    dir.bindings
        .push(bind("b1", uid("u-po"), "project_owner", own()));
    let snap = snapshot(dir);
    let mut r = req(u("u-po"), Action::GrantApprove, proj("own"));
    let entity = |id: &str| serde_json::json!({"__entity": {"type": "User", "id": id}});
    r.extra = Some(serde_json::json!({ "requester": entity("u-other") }));
    assert!(snap.decide(&r, now()).allowed);
    r.extra = Some(serde_json::json!({ "requester": entity("u-po") }));
    let d = snap.decide(&r, now());
    assert!(!d.allowed);
    assert_eq!(d.determining, vec!["builtin.forbid.self_approval"]);
}

#[test]
fn errors_deny() {
    let mut dir = base_dir();
    dir.users.push(user("u-po", &[]));
    dir.bindings
        .push(bind("b1", uid("u-po"), "project_owner", own()));
    let snap = snapshot(dir);
    let ok = req(u("u-po"), Action::ProjectRead, proj("own"));
    assert!(snap.decide(&ok, now()).allowed);
    let cases = [
        req(u("u-nobody"), Action::ProjectRead, proj("own")),
        req(u("u-po"), Action::ProjectRead, proj("nowhere")),
        req(u("u-po"), Action::ProjectRead, Resource::Platform),
        req(
            Principal::Workload("w-none".into()),
            Action::DatasetRead,
            dataset("own", None),
        ),
    ];
    for r in cases {
        let d = snap.decide(&r, now());
        assert!(!d.allowed && !d.errors.is_empty(), "{r:?} {d:?}");
        assert!(d.explain().starts_with("denied on error"));
    }
    // Extra context may not set what the engine sets, nor anything the schema lacks.
    for extra in [
        serde_json::json!({"mfa": true}),
        serde_json::json!({"project": "own"}),
        serde_json::json!({"unknown": 1}),
        serde_json::json!({"target_role": 5}),
        serde_json::json!([1]),
    ] {
        let mut r = ok.clone();
        r.extra = Some(extra.clone());
        let d = snap.decide(&r, now());
        assert!(!d.allowed && !d.errors.is_empty(), "{extra} {d:?}");
    }
    let mut r = ok;
    r.extra = Some(serde_json::json!({"target_role": "viewer"}));
    assert!(snap.decide(&r, now()).allowed);
}

// ---- (d) conditions in custom policies -------------------------------------------------------

/// A data scientist `u-ds` and a viewer `u-vw` on `own`, plus one custom policy.
fn with_policy(scope: Scope, text: &str) -> Snapshot {
    let mut dir = base_dir();
    dir.users.push(user("u-ds", &["g-team"]));
    dir.users.push(user("u-vw", &[]));
    dir.bindings
        .push(bind("b1", uid("u-ds"), "data_scientist", own()));
    dir.bindings.push(bind("b2", uid("u-vw"), "viewer", own()));
    dir.projects[0].tags.insert("pii".into(), "yes".into());
    dir.projects.push(project("open-data", "public"));
    dir.bindings.push(bind(
        "b3",
        uid("u-ds"),
        "data_scientist",
        Scope::Project("open-data".into()),
    ));
    dir.policies.push(custom("c", scope, text));
    Snapshot::build(dir).unwrap()
}

#[test]
fn condition_source_ip_range() {
    let snap = with_policy(
        own(),
        r#"forbid(principal, action in Action::"project_data", resource in Project::"own")
           unless { context.source_ip.isInRange(ip("10.0.0.0/8")) };"#,
    );
    let mut r = req(u("u-ds"), Action::SecretReadValue, secret("own", None));
    assert!(snap.decide(&r, now()).allowed);
    r.source_ip = ip("192.168.1.20");
    let d = snap.decide(&r, now());
    assert!(!d.allowed);
    assert_eq!(d.determining, vec!["custom.c"]);
    r.source_ip = ip("::1");
    assert!(!snap.decide(&r, now()).allowed);
}

#[test]
fn condition_time_of_day() {
    let snap = with_policy(
        Scope::Platform,
        r#"forbid(principal, action == Action::"dataset.write", resource)
           unless { context.hour_utc >= 7 && context.now.toTime() < duration("18h") && context.weekday <= 5 };"#,
    );
    let r = req(u("u-ds"), Action::DatasetWrite, dataset("own", None));
    assert!(snap.decide(&r, Timestamp(T0)).allowed, "Friday 08:00");
    assert!(
        !snap.decide(&r, Timestamp(T0 - 2 * 3600)).allowed,
        "Friday 06:00"
    );
    assert!(
        snap.decide(&r, Timestamp(T0 + 10 * 3600 - 1)).allowed,
        "Friday 17:59:59"
    );
    assert!(
        !snap.decide(&r, Timestamp(T0 + 10 * 3600)).allowed,
        "Friday 18:00"
    );
    assert!(
        !snap.decide(&r, Timestamp(T0 + 86_400)).allowed,
        "Saturday 08:00"
    );
}

#[test]
fn condition_mfa() {
    let snap = with_policy(
        own(),
        r#"forbid(principal, action == Action::"secret.read_value", resource in Project::"own")
           unless { context.mfa };"#,
    );
    let mut r = req(u("u-ds"), Action::SecretReadValue, secret("own", None));
    assert!(snap.decide(&r, now()).allowed);
    r.credential.mfa = false;
    assert!(!snap.decide(&r, now()).allowed);
    // Other projects are untouched by the project's policy.
    r.resource = secret("open-data", None);
    assert!(snap.decide(&r, now()).allowed);
}

#[test]
fn condition_auth_method() {
    let snap = with_policy(
        Scope::Platform,
        r#"forbid(principal, action in Action::"writes", resource)
           when { context.auth_method == "token" };"#,
    );
    let mut r = req(u("u-ds"), Action::SecretWrite, secret("own", None));
    assert!(snap.decide(&r, now()).allowed);
    r.credential.method = AuthMethod::Token;
    assert!(!snap.decide(&r, now()).allowed);
    r.action = Action::SecretReadValue;
    assert!(snap.decide(&r, now()).allowed);
}

#[test]
fn condition_classification_and_tags() {
    // Viewers may read public datasets of any project they see...
    let snap = with_policy(
        Scope::Platform,
        r#"permit(principal, action == Action::"dataset.read", resource is Dataset)
           when { resource.project.classification == "public" };"#,
    );
    let r = req(u("u-vw"), Action::DatasetRead, dataset("open-data", None));
    assert!(snap.decide(&r, now()).allowed);
    let r = req(u("u-other"), Action::DatasetRead, dataset("own", None));
    assert!(!snap.decide(&r, now()).allowed);
    // ... and projects tagged pii need MFA for every dataset read.
    let snap = with_policy(
        Scope::Platform,
        r#"forbid(principal, action == Action::"dataset.read", resource is Dataset)
           when { resource.project.hasTag("pii") && resource.project.getTag("pii") == "yes" && !context.mfa };"#,
    );
    let mut r = req(u("u-ds"), Action::DatasetRead, dataset("own", None));
    r.credential.mfa = false;
    assert!(!snap.decide(&r, now()).allowed);
    r.resource = dataset("open-data", None);
    assert!(snap.decide(&r, now()).allowed);
}

#[test]
fn condition_ownership() {
    let snap = with_policy(
        own(),
        r#"permit(principal, action == Action::"secret.delete", resource is Secret in Project::"own")
           when { resource has owner && resource.owner == principal };"#,
    );
    let mine = req(u("u-vw"), Action::SecretDelete, secret("own", Some("u-vw")));
    let d = snap.decide(&mine, now());
    assert!(d.allowed);
    assert_eq!(d.determining, vec!["custom.c"]);
    let theirs = req(u("u-vw"), Action::SecretDelete, secret("own", Some("u-ds")));
    assert!(!snap.decide(&theirs, now()).allowed);
    let unowned = req(u("u-vw"), Action::SecretDelete, secret("own", None));
    assert!(!snap.decide(&unowned, now()).allowed);
}

// ---- (e) validation ----------------------------------------------------------------------------

#[test]
fn syntax_errors_have_positions() {
    let e = validate_custom(
        "permit(principal, action, resource)\nwhen { context.mfa == };",
        &Scope::Platform,
    )
    .unwrap_err();
    assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
    let p = e.position().unwrap();
    assert_eq!(p.line, 2, "{e}");
    assert!(p.column > 1, "{e}");
    assert!(e.to_string().starts_with("syntax error at 2:"), "{e}");
}

#[test]
fn validation_errors_have_positions_and_the_validators_message() {
    let text = "permit(principal, action, resource)\n  when { context.nope };";
    let e = validate_custom(text, &Scope::Platform).unwrap_err();
    assert!(matches!(e, PolicyError::Invalid { .. }), "{e}");
    assert_eq!(e.position().map(|p| p.line), Some(2), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");

    let e = validate_custom(
        "permit(principal, action == Action::\"no.such\", resource);",
        &Scope::Platform,
    )
    .unwrap_err();
    assert!(matches!(e, PolicyError::Invalid { .. }), "{e}");
    assert!(e.position().is_some(), "{e}");

    // Strict mode: attributes that may be absent need `has`.
    let e = validate_custom(
        "permit(principal, action == Action::\"secret.delete\", resource is Secret)\n when { resource.owner == principal };",
        &Scope::Platform,
    )
    .unwrap_err();
    assert!(matches!(e, PolicyError::Invalid { .. }), "{e}");
    assert_eq!(e.position().map(|p| p.line), Some(2), "{e}");
}

#[test]
fn shapes_and_reserved_ids_are_refused() {
    for text in [
        "",
        "permit(principal, action, resource); forbid(principal, action, resource);",
        "permit(principal == ?principal, action, resource);",
        "@id(\"builtin.platform_admin\") permit(principal, action, resource);",
    ] {
        let e = validate_custom(text, &Scope::Platform).unwrap_err();
        assert!(matches!(e, PolicyError::NotAllowed { .. }), "{text}: {e}");
    }
    validate_custom(
        "@id(\"my rule\") permit(principal, action == Action::\"template.list\", resource);",
        &Scope::Platform,
    )
    .unwrap();
}

#[test]
fn project_policies_cannot_escape_their_project() {
    let scope = own();
    let ok = [
        r#"permit(principal, action, resource in Project::"own");"#,
        r#"permit(principal, action == Action::"secret.read_value", resource is Secret in Project::"own");"#,
        r#"permit(principal, action == Action::"secret.read_value", resource == Secret::"own/db");"#,
        r#"forbid(principal in Role::"viewer", action, resource in Project::"own") unless { context.mfa };"#,
    ];
    for text in ok {
        validate_custom(text, &scope).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    let refused = [
        r#"permit(principal, action, resource);"#,
        r#"permit(principal, action == Action::"secret.read_value", resource is Secret);"#,
        r#"permit(principal, action, resource in Project::"other");"#,
        r#"permit(principal, action == Action::"secret.read_value", resource == Secret::"other/db");"#,
        r#"permit(principal, action, resource in Project::"own") when { principal in Project::"other" };"#,
        r#"permit(principal, action == Action::"user.list", resource == Platform::"enclave");"#,
        r#"permit(principal, action == Action::"job.execute", resource == Workload::"w1");"#,
    ];
    for text in refused {
        let e = validate_custom(text, &scope).unwrap_err();
        assert!(matches!(e, PolicyError::NotAllowed { .. }), "{text}: {e}");
        assert!(e.position().is_some(), "{text}: {e}");
        assert!(e.to_string().contains("own"), "{e}");
    }
}

#[test]
fn a_bad_stored_policy_fails_the_build_with_its_id() {
    let mut dir = base_dir();
    dir.policies
        .push(custom("p9", own(), "permit(principal, action, resource);"));
    let e = Snapshot::build(dir).unwrap_err();
    assert!(
        matches!(&e, PolicyError::Custom { id, .. } if id == "p9"),
        "{e}"
    );
}

// ---- (f) properties ----------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;

    const ROLES: [&str; 5] = [
        "viewer",
        "data_scientist",
        "project_owner",
        "support",
        "custom_x",
    ];
    const PROJECTS: [&str; 3] = ["p1", "p2", "p3"];

    /// Random policy text; `scope` is where it will be stored.
    fn policy_text() -> impl Strategy<Value = (Scope, String)> {
        let effect = prop_oneof!["permit", "forbid"];
        let principal = prop_oneof![
            Just("principal".to_string()),
            prop::sample::select(&ROLES[..]).prop_map(|r| format!("principal in Role::\"{r}\"")),
            Just("principal == User::\"u1\"".to_string()),
            Just("principal in Group::\"g1\"".to_string()),
            Just("principal is Workload".to_string()),
        ];
        let action = prop_oneof![
            Just("action".to_string()),
            prop::sample::select(&Action::ALL[..])
                .prop_map(|a| format!("action == Action::\"{}\"", a.as_str())),
            prop::sample::select(&["reads", "writes", "project_data", "governance"][..])
                .prop_map(|g| format!("action in Action::\"{g}\"")),
        ];
        let condition = prop_oneof![
            Just(String::new()),
            Just(" when { context.mfa }".to_string()),
            Just(" unless { context.read_only }".to_string()),
            Just(" when { context.hour_utc < 12 }".to_string()),
            Just(" when { context has project && context.project == \"p2\" }".to_string()),
        ];
        let placement = prop_oneof![
            Just(None),
            prop::sample::select(&PROJECTS[..]).prop_map(Some),
        ];
        // For a project's policy, mostly its own scope, sometimes an escape attempt that
        // validation must refuse (if it did not, the isolation property would fail).
        let resource = prop_oneof![
            3 => Just("resource in Project::\"{own}\"".to_string()),
            1 => Just("resource".to_string()),
            1 => prop::sample::select(&PROJECTS[..]).prop_map(|p| format!("resource in Project::\"{p}\"")),
            1 => Just("resource is Secret".to_string()),
            1 => prop::sample::select(&PROJECTS[..]).prop_map(|p| format!("resource == Secret::\"{p}/s\"")),
        ];
        let escape = prop_oneof![
            4 => Just(String::new()),
            1 => prop::sample::select(&PROJECTS[..]).prop_map(|p| format!(" when {{ principal in Project::\"{p}\" }}")),
        ];
        (
            effect, principal, action, placement, resource, condition, escape,
        )
            .prop_map(|(e, p, a, placement, r, c, x)| {
                let own = placement.unwrap_or("p1");
                let r = r.replace("{own}", own);
                let text = format!("{e}({p}, {a}, {r}){c}{x};");
                match placement {
                    Some(proj) => (Scope::Project(proj.to_string()), text),
                    None => (Scope::Platform, text),
                }
            })
    }

    fn dir_with(policies: &[(Scope, String)]) -> Directory {
        let mut dir = Directory {
            users: vec![user("u1", &["g1"]), user("u2", &[])],
            groups: vec![group("g1", &[])],
            projects: PROJECTS.iter().map(|p| project(p, "internal")).collect(),
            workloads: vec![WorkloadRecord {
                id: "w1".into(),
                project: "p1".into(),
                kind: WorkloadKind::Job,
                owner: None,
            }],
            ..Default::default()
        };
        for (i, p) in PROJECTS.iter().enumerate() {
            dir.bindings.push(bind(
                &format!("b{i}"),
                Subject::Group("g1".into()),
                ROLES[i],
                Scope::Project(p.to_string()),
            ));
        }
        dir.bindings.push(bind(
            "bw",
            Subject::Workload("w1".into()),
            "job_execution",
            Scope::Project("p1".into()),
        ));
        for (i, (scope, text)) in policies.iter().enumerate() {
            // Keep only what validation accepts, as the application would.
            if validate_custom(text, scope).is_ok() {
                dir.policies
                    .push(custom(&format!("r{i}"), scope.clone(), text));
            }
        }
        dir
    }

    /// Requests over every project, the platform and both principals.
    fn requests() -> Vec<Request> {
        let mut out = Vec::new();
        for p in PROJECTS {
            for a in [
                Action::ProjectRead,
                Action::ProjectUpdate,
                Action::SecretReadValue,
                Action::DatasetWrite,
                Action::GrantApprove,
            ] {
                let resource = match a {
                    Action::SecretReadValue => secret(p, Some("u1")),
                    Action::DatasetWrite => dataset(p, None),
                    _ => proj(p),
                };
                out.push(req(u("u1"), a, resource.clone()));
                if matches!(a, Action::SecretReadValue | Action::DatasetWrite) {
                    out.push(req(Principal::Workload("w1".into()), a, resource));
                }
            }
        }
        out.push(req(u("u1"), Action::UserList, Resource::Platform));
        out.push(req(u("u1"), Action::TemplateList, Resource::Platform));
        out.push(req(u("u1"), Action::SelfRead, Resource::User("u1".into())));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

        /// No custom policy set lets a disabled user, a read-only token's write, or a
        /// project-limited token outside its projects through.
        #[test]
        fn custom_policies_never_override_a_forbid(
            policies in prop::collection::vec(policy_text(), 1..8),
            hour in 0i64..24,
        ) {
            let at = Timestamp(T0 - 8 * 3600 + hour * 3600);
            let dir = dir_with(&policies);
            let snap = Snapshot::build(dir.clone()).unwrap();
            let mut disabled = dir;
            disabled.users[0].disabled = true;
            let disabled = Snapshot::build(disabled).unwrap();
            for r in requests() {
                if matches!(r.principal, Principal::User(_)) {
                    prop_assert!(!disabled.decide(&r, at).allowed, "disabled {r:?}");
                }
                let mut ro = r.clone();
                ro.credential.read_only = true;
                if !r.action.is_read() {
                    prop_assert!(!snap.decide(&ro, at).allowed, "read-only {r:?}");
                }
                let mut limited = r.clone();
                limited.credential.token_projects = vec!["p3".into()];
                let outside = r.resource.project() != Some("p3")
                    && r.action != Action::SelfRead;
                if outside {
                    prop_assert!(!snap.decide(&limited, at).allowed, "limited {r:?}");
                }
            }
        }

        /// Removing project p1's policies changes no decision about anything outside p1.
        #[test]
        fn project_policies_only_affect_their_project(
            policies in prop::collection::vec(policy_text(), 1..8),
            hour in 0i64..24,
        ) {
            let at = Timestamp(T0 - 8 * 3600 + hour * 3600);
            let with = Snapshot::build(dir_with(&policies)).unwrap();
            let without_p1: Vec<(Scope, String)> = policies
                .iter()
                .filter(|(s, _)| *s != Scope::Project("p1".into()))
                .cloned()
                .collect();
            let without = Snapshot::build(dir_with(&without_p1)).unwrap();
            for r in requests() {
                if r.resource.project() == Some("p1") {
                    continue;
                }
                let a = with.decide(&r, at);
                let b = without.decide(&r, at);
                prop_assert_eq!(a.allowed, b.allowed, "{:?}", r);
                prop_assert!(a.determining.iter().all(|id| !id.starts_with("custom.")
                    || without.policy_ids().contains(id)
                    || policies_outside_p1(&policies, id)), "{:?} {:?}", r, a);
            }
        }
    }

    /// Whether custom policy `id` (as named by `dir_with`) is not one of p1's.
    fn policies_outside_p1(policies: &[(Scope, String)], id: &str) -> bool {
        let Some(i) = id
            .strip_prefix("custom.r")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return true;
        };
        policies
            .get(i)
            .is_none_or(|(s, _)| *s != Scope::Project("p1".into()))
    }
}

// ---- (g) reload ----------------------------------------------------------------------------------

#[test]
fn replacing_the_snapshot_takes_effect_for_the_next_decision() {
    let mut dir = base_dir();
    dir.users.push(user("u-ds", &[]));
    let engine = PolicyEngine::new(snapshot(dir.clone()));
    let r = req(u("u-ds"), Action::DatasetRead, dataset("own", None));
    assert!(!engine.decide(&r, now()).allowed);
    let pinned = engine.snapshot();

    dir.bindings
        .push(bind("b1", uid("u-ds"), "data_scientist", own()));
    engine.replace(snapshot(dir.clone()));
    assert!(engine.decide(&r, now()).allowed);
    // A snapshot taken before keeps answering as it did.
    assert!(!pinned.decide(&r, now()).allowed);

    dir.users[1].disabled = true;
    engine.replace(std::sync::Arc::new(snapshot(dir)));
    assert!(!engine.decide(&r, now()).allowed);
}

#[test]
fn reload_under_concurrent_decisions() {
    let mut dir = base_dir();
    dir.users.push(user("u-ds", &[]));
    let without = std::sync::Arc::new(snapshot(dir.clone()));
    dir.bindings
        .push(bind("b1", uid("u-ds"), "data_scientist", own()));
    let with = std::sync::Arc::new(snapshot(dir));
    let engine = PolicyEngine::new(snapshot(base_dir()));
    engine.replace(with.clone());
    let r = req(u("u-ds"), Action::DatasetRead, dataset("own", None));
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..200 {
                engine.replace(if i % 2 == 0 {
                    without.clone()
                } else {
                    with.clone()
                });
            }
            engine.replace(with.clone());
        });
        for _ in 0..200 {
            let d = engine.decide(&r, now());
            assert!(d.errors.is_empty(), "{d:?}");
        }
    });
    assert!(engine.decide(&r, now()).allowed);
}

// ---- can() and explain ---------------------------------------------------------------------------

#[test]
fn can_lists_what_a_principal_may_do_in_a_project() {
    let mut dir = base_dir();
    dir.users.push(user("u-vw", &[]));
    dir.bindings.push(bind("b1", uid("u-vw"), "viewer", own()));
    let snap = snapshot(dir);
    let engine = PolicyEngine::new(snap);
    let got = engine.can(
        &u("u-vw"),
        &Credential::full(AuthMethod::Session, true),
        ip("10.0.0.1"),
        "own",
        now(),
    );
    let want = vec![
        Action::ProjectRead,
        Action::PolicyList,
        Action::PolicyRead,
        Action::RoleList,
        Action::GrantList,
        Action::SecretList,
        Action::NotebookList,
        Action::JobList,
        Action::EndpointList,
        Action::DatasetRead,
    ];
    assert_eq!(got, want);
    assert!(engine
        .can(
            &u("u-vw"),
            &Credential::full(AuthMethod::Session, true),
            ip("10.0.0.1"),
            "other",
            now()
        )
        .is_empty());
}

#[test]
fn explain_names_forbids_and_absences() {
    let snap = with_policy(
        own(),
        r#"@id("no-night-reads") forbid(principal, action, resource in Project::"own") when { context.hour_utc < 6 };"#,
    );
    let r = req(u("u-ds"), Action::DatasetRead, dataset("own", None));
    let d = snap.decide(&r, Timestamp(T0 - 3 * 3600));
    assert_eq!(d.explain(), "forbidden by custom.c");
    let d = snap.decide(
        &req(u("u-other"), Action::DatasetRead, dataset("own", None)),
        now(),
    );
    assert_eq!(d.explain(), "no policy permits");
}

#[test]
fn dangling_references_are_warnings() {
    let mut dir = base_dir();
    dir.users.push(user("u-x", &["nope"]));
    dir.groups.push(group("gx", &["missing"]));
    dir.bindings
        .push(bind("b1", Subject::Group("ghost".into()), "viewer", own()));
    dir.bindings
        .push(bind("b2", uid("u-x"), "platform_admin", own()));
    let snap = snapshot(dir);
    assert_eq!(snap.warnings().len(), 4, "{:?}", snap.warnings());
    let d = snap.decide(&req(u("u-x"), Action::ProjectUpdate, proj("own")), now());
    assert!(!d.allowed);
}

#[test]
fn principal_in_a_group_resource_counts_nested_membership() {
    let mut dir = base_dir();
    dir.groups.push(group("inner", &["outer"]));
    dir.groups.push(group("outer", &[]));
    dir.users.push(user("u-in", &["inner"]));
    dir.policies.push(custom(
        "members",
        Scope::Platform,
        r#"permit(principal, action == Action::"group.read", resource is Group) when { principal in resource };"#,
    ));
    let snap = snapshot(dir);
    let read = |who: &str, g: &str| {
        snap.decide(
            &req(u(who), Action::GroupRead, Resource::Group(g.into())),
            now(),
        )
        .allowed
    };
    assert!(read("u-in", "outer"));
    assert!(read("u-in", "inner"));
    assert!(!read("u-in", "g-other"));
    assert!(!read("u-other", "outer"));
}

#[test]
fn roles_add_up_and_platform_policies_may_name_built_in_roles() {
    let mut dir = base_dir();
    dir.users.push(user("u-two", &[]));
    dir.users.push(user("u-vw", &[]));
    dir.bindings.push(bind("b1", uid("u-two"), "viewer", own()));
    dir.bindings
        .push(bind("b2", uid("u-two"), "support", own()));
    dir.bindings.push(bind("b3", uid("u-vw"), "viewer", own()));
    dir.policies.push(custom(
        "viewers-run-jobs",
        Scope::Platform,
        r#"permit(principal in Role::"viewer", action in [Action::"job.run", Action::"job.cancel"], resource);"#,
    ));
    let snap = snapshot(dir);
    // viewer + support: the union of both.
    let d = snap.decide(
        &req(
            u("u-two"),
            Action::NotebookOpen,
            Resource::Workload {
                id: "w".into(),
                project: "own".into(),
                kind: WorkloadKind::Notebook,
                owner: None,
            },
        ),
        now(),
    );
    assert!(d.allowed);
    assert_eq!(d.determining, vec!["builtin.support"]);
    assert!(
        snap.decide(
            &req(u("u-two"), Action::DatasetRead, dataset("own", None)),
            now()
        )
        .allowed
    );
    // The custom policy reaches viewers, only where they are viewers.
    let d = snap.decide(&req(u("u-vw"), Action::JobRun, proj("own")), now());
    assert!(d.allowed);
    assert_eq!(d.determining, vec!["custom.viewers-run-jobs"]);
    assert!(
        !snap
            .decide(&req(u("u-vw"), Action::JobRun, proj("other")), now())
            .allowed
    );
    assert!(
        !snap
            .decide(&req(u("u-other"), Action::JobRun, proj("own")), now())
            .allowed
    );
}
