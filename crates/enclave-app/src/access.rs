//! The policy engine as the application holds it: built from the store, rebuilt after every
//! change to what authorization depends on, and asked through [`App::authorize`] only.
//!
//! Invariants:
//! * The engine's snapshot is rebuilt whenever the store's authorization change counter moves
//!   (checked after every commit and every second), so a change is in force for the next
//!   request after its commit returns. The rebuild runs off the async executor; decisions in
//!   flight finish on the snapshot they started with.
//! * Until a first snapshot is built, and whenever one cannot be, decisions deny.
//! * Time-bound access (bindings with an expiry, grants) is decided at the request's time, so it
//!   stops at its expiry for every open session, without any rebuild.

use crate::chokepoint::Caller;
use crate::App;
use enclave_core::authz::Credential as CoreCredential;
use enclave_core::model::ProjectRole;
use enclave_core::{Error, Result};
use enclave_policy::{
    AuthMethod, BindingRecord, Credential, CustomPolicyRecord, Directory, GroupRecord,
    PolicyEngine, Principal, ProjectRecord, Request, Resource, Scope, Snapshot, Subject,
    UserRecord, WorkloadKind, WorkloadRecord,
};
use enclave_store::AuthzFacts;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicI64, Ordering};

/// The engine plus the store generation its snapshot was built from.
pub(crate) struct PolicyState {
    pub(crate) engine: PolicyEngine,
    /// Store generation of the current snapshot; -1 before the first build.
    generation: AtomicI64,
    rebuild: tokio::sync::Mutex<()>,
}

impl PolicyState {
    pub(crate) fn new() -> Result<PolicyState> {
        let empty = Snapshot::empty().map_err(|e| {
            tracing::error!(error = %e, "built-in policies do not load");
            Error::internal()
        })?;
        Ok(PolicyState {
            engine: PolicyEngine::new(empty),
            generation: AtomicI64::new(-1),
            rebuild: tokio::sync::Mutex::new(()),
        })
    }
}

/// The policy engine's role name for a project membership role.
pub fn membership_role(role: ProjectRole) -> &'static str {
    match role {
        ProjectRole::Owner => "project_owner",
        ProjectRole::Member => "data_scientist",
        ProjectRole::Viewer => "viewer",
    }
}

/// Turns the store's facts into the engine's directory.
pub(crate) fn directory(facts: AuthzFacts) -> Directory {
    let mut user_groups: HashMap<String, Vec<String>> = HashMap::new();
    for (group, user) in facts.group_members {
        user_groups.entry(user).or_default().push(group);
    }
    let mut group_parents: HashMap<String, Vec<String>> = HashMap::new();
    for (parent, child) in facts.group_groups {
        group_parents.entry(child).or_default().push(parent);
    }
    let users = facts
        .users
        .into_iter()
        .map(|u| UserRecord {
            groups: user_groups.remove(&u.id).unwrap_or_default(),
            id: u.id,
            username: u.username,
            platform_admin: u.platform_admin,
            disabled: u.disabled,
        })
        .collect();
    let groups = facts
        .groups
        .into_iter()
        .map(|(id, _name)| GroupRecord {
            parents: group_parents.remove(&id).unwrap_or_default(),
            id,
        })
        .collect();
    let projects = facts
        .projects
        .into_iter()
        .map(|p| ProjectRecord {
            name: p.name,
            classification: p.classification,
            tags: p.tags,
            requires_approval: p.requires_approval,
        })
        .collect();
    let mut bindings: Vec<BindingRecord> = facts
        .memberships
        .into_iter()
        .map(|(project, user, role)| BindingRecord {
            id: format!("member:{project}:{user}"),
            subject: Subject::User(user),
            role: membership_role(role).to_string(),
            scope: Scope::Project(project),
            starts_at: None,
            expires_at: None,
            origin: "membership".into(),
        })
        .collect();
    bindings.extend(facts.bindings.into_iter().map(|b| BindingRecord {
        subject: match b.subject_kind {
            enclave_core::access::SubjectKind::User => Subject::User(b.subject_id),
            enclave_core::access::SubjectKind::Group => Subject::Group(b.subject_id),
            enclave_core::access::SubjectKind::Workload => Subject::Workload(b.subject_id),
        },
        role: b.role,
        scope: b.project.map_or(Scope::Platform, Scope::Project),
        starts_at: None,
        expires_at: b.expires_at,
        origin: "binding".into(),
        id: b.id,
    }));
    bindings.extend(facts.grants.into_iter().map(|g| BindingRecord {
        id: g.id.clone(),
        subject: Subject::User(g.grantee_id),
        role: g.role.as_str().to_string(),
        scope: Scope::Project(g.project),
        // A grant without a window never applies.
        starts_at: Some(g.starts_at.unwrap_or(enclave_core::Timestamp(i64::MAX))),
        expires_at: Some(g.expires_at.unwrap_or(enclave_core::Timestamp(i64::MIN))),
        origin: format!("grant:{}", g.id),
    }));
    let policies = facts
        .policies
        .into_iter()
        .map(|p| CustomPolicyRecord {
            id: p.id,
            scope: p.project.map_or(Scope::Platform, Scope::Project),
            text: p.body,
        })
        .collect();
    Directory {
        users,
        groups,
        projects,
        bindings,
        workloads: facts
            .workloads
            .into_iter()
            .filter_map(|w| {
                let kind = match w.kind.as_str() {
                    "notebook" => WorkloadKind::Notebook,
                    "job" => WorkloadKind::Job,
                    "endpoint" => WorkloadKind::Endpoint,
                    _ => return None,
                };
                Some(WorkloadRecord {
                    id: w.id,
                    project: w.project,
                    kind,
                    owner: w.owner,
                })
            })
            .collect(),
        policies,
    }
}

/// The source address of a request as an IP (unknown or local sources read as `::`, which no
/// network range in a policy contains except `::/0`).
pub(crate) fn source_ip(source: &str) -> IpAddr {
    match source {
        "local" => IpAddr::V6(Ipv6Addr::LOCALHOST),
        s => s.parse().unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    }
}

/// The engine's view of a caller's credential.
pub(crate) fn credential(caller: &Caller) -> Credential {
    match &caller.principal.credential {
        CoreCredential::Session { mfa, .. } => Credential::full(AuthMethod::Password, *mfa),
        CoreCredential::Token { scope, projects } => Credential {
            method: AuthMethod::Token,
            mfa: false,
            read_only: *scope == enclave_core::model::TokenScope::Read,
            token_projects: projects.clone(),
        },
    }
}

/// The policy request for `caller` doing `action` on `resource`.
pub(crate) fn request(
    caller: &Caller,
    action: enclave_core::authz::Action,
    resource: Resource,
    extra: Option<serde_json::Value>,
) -> Request {
    Request {
        principal: Principal::User(caller.principal.user_id.clone()),
        credential: credential(caller),
        source_ip: source_ip(&caller.meta.source),
        action,
        resource,
        extra,
    }
}

impl App {
    /// Rebuilds the policy snapshot if the store's authorization facts changed since the last
    /// build. Cheap when nothing changed (one small read).
    pub async fn refresh_policy(&self) -> Result<()> {
        let current = self.store.authz_generation().await?;
        if current == self.policy.generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.policy.rebuild.lock().await;
        if current == self.policy.generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let facts = self.store.authz_facts().await?;
        let generation = facts.generation;
        let dir = directory(facts);
        let built = tokio::task::spawn_blocking(move || Snapshot::build(dir))
            .await
            .map_err(|_| Error::internal())?;
        match built {
            Ok(snapshot) => {
                for w in snapshot.warnings() {
                    tracing::warn!(warning = %w, "policy snapshot");
                }
                self.policy.engine.replace(snapshot);
                self.policy.generation.store(generation, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // Keep deciding with the last good snapshot (or deny everything if there is
                // none): a broken stored policy must never widen access.
                tracing::error!(error = %e, "policy snapshot could not be rebuilt");
                Err(Error::internal())
            }
        }
    }

    /// The policy engine's current decisions (for explain and the benchmarks).
    pub fn policy_engine(&self) -> &PolicyEngine {
        &self.policy.engine
    }

    /// Ensures a first snapshot exists before the first decision.
    pub(crate) async fn ensure_policy(&self) {
        if self.policy.generation.load(Ordering::Acquire) < 0 {
            if let Err(e) = self.refresh_policy().await {
                tracing::error!(error = %e, "no policy snapshot; every request is denied");
            }
        }
    }
}
