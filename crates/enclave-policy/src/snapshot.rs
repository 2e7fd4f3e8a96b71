//! A snapshot: the directory, parsed and indexed once, with prefiltered policy sets; and the
//! decision itself (entity slice, context, evaluation).

use crate::custom::parse_custom;
use crate::error::PolicyError;
use crate::model::{
    AppliedRole, BindingRecord, Decision, Directory, Principal, Request, Resource, Scope, Subject,
    WorkloadKind,
};
use crate::statics::{action_index, statics, Statics, Ty, PLATFORM_ONLY_ROLES};
use cedar_policy::{
    ActionConstraint, Context, Entities, Entity, EntityUid, Policy, PolicySet, PrincipalConstraint,
    Response, RestrictedExpression,
};
use enclave_core::authz::Action;
use enclave_core::Timestamp;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Context keys the engine sets itself; extra context may not use them.
const ENGINE_KEYS: [&str; 10] = [
    "source_ip",
    "now",
    "hour_utc",
    "weekday",
    "mfa",
    "auth_method",
    "read_only",
    "token_limited",
    "token_projects",
    "project",
];

const USER: usize = 0;
const WORKLOAD: usize = 1;

struct UserEntry {
    uid: EntityUid,
    username: String,
    platform_admin: bool,
    disabled: bool,
    /// Every group the user is in, transitively.
    groups: Vec<EntityUid>,
    /// Bindings that reach the user: (binding index, group index it comes through).
    bindings: Vec<(u32, Option<u32>)>,
}

struct WorkloadEntry {
    uid: EntityUid,
    project: String,
    project_uid: EntityUid,
    kind: WorkloadKind,
    owner: Option<EntityUid>,
    bindings: Vec<u32>,
}

struct BindingEntry {
    record: BindingRecord,
    role_uid: EntityUid,
}

struct ProjectEntry {
    uid: EntityUid,
    entity: Entity,
}

/// An immutable, fully parsed view of the directory and policies. Build it off the request path
/// (after every change to users, groups, projects, bindings, workloads or policies) and hand it
/// to [`crate::PolicyEngine::replace`].
pub struct Snapshot {
    st: Arc<Statics>,
    users: HashMap<String, UserEntry>,
    workloads: HashMap<String, WorkloadEntry>,
    group_names: Vec<String>,
    /// Group id -> every group it is in, transitively (not itself).
    group_ancestors: HashMap<String, Vec<EntityUid>>,
    projects: HashMap<String, ProjectEntry>,
    bindings: Vec<BindingEntry>,
    /// Built-ins and platform custom policies that can apply, per action and principal kind.
    base: Vec<[PolicySet; 2]>,
    /// Each project's own custom policies.
    project_sets: HashMap<String, PolicySet>,
    /// Every policy, unfiltered (for reports and comparisons).
    all: Vec<Policy>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("users", &self.users.len())
            .field("groups", &self.group_names.len())
            .field("projects", &self.projects.len())
            .field("bindings", &self.bindings.len())
            .field("workloads", &self.workloads.len())
            .field("policies", &self.all.len())
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Whether a policy's scope can match requests for this action and principal kind.
fn can_apply(st: &Statics, p: &Policy, ai: usize, kind: usize) -> bool {
    let action_ok = match p.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => uid == st.action_uids[ai],
        ActionConstraint::In(list) => list
            .iter()
            .any(|u| *u == st.action_uids[ai] || st.action_groups[ai].contains(u)),
    };
    if !action_ok {
        return false;
    }
    let kind_ty = if kind == USER { Ty::User } else { Ty::Workload };
    let is_kind = |t: &cedar_policy::EntityTypeName| t == st.ty(kind_ty);
    match p.principal_constraint() {
        PrincipalConstraint::Any => true,
        PrincipalConstraint::Is(t) | PrincipalConstraint::IsIn(t, _) => is_kind(&t),
        PrincipalConstraint::Eq(uid) => is_kind(uid.type_name()),
        PrincipalConstraint::In(uid) => {
            // Users are only in groups, roles and projects; workloads in projects and roles.
            let t = uid.type_name();
            if t == st.ty(Ty::Group) || t == st.ty(Ty::User) {
                kind == USER
            } else if t == st.ty(Ty::Workload) {
                kind == WORKLOAD
            } else {
                true
            }
        }
    }
}

fn set_of(policies: impl IntoIterator<Item = Policy>) -> Result<PolicySet, PolicyError> {
    PolicySet::from_policies(policies).map_err(|e| PolicyError::Internal(e.to_string()))
}

impl Snapshot {
    /// A snapshot with the built-in policies and nobody in it.
    pub fn empty() -> Result<Snapshot, PolicyError> {
        Snapshot::build(Directory::default())
    }

    /// Parses and indexes everything once: transitive group membership (cycles are harmless),
    /// the bindings reaching each user, project entities, and the policy sets (built-ins and
    /// platform custom policies prefiltered per action and principal kind; each project's own
    /// policies apart). Fails if a custom policy does not pass [`crate::validate_custom`] for
    /// its scope. Dangling references (a binding to an unknown group, a project binding of a
    /// platform-only role) are skipped and listed in [`Snapshot::warnings`].
    pub fn build(dir: Directory) -> Result<Snapshot, PolicyError> {
        let st = statics()?;
        let mut warnings = Vec::new();

        // Groups and their transitive ancestors.
        let group_index: HashMap<&str, u32> = dir
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.as_str(), i as u32))
            .collect();
        let parents: Vec<Vec<u32>> = dir
            .groups
            .iter()
            .map(|g| {
                g.parents
                    .iter()
                    .filter_map(|p| {
                        let i = group_index.get(p.as_str()).copied();
                        if i.is_none() {
                            warnings.push(format!("group {} is in unknown group {p}", g.id));
                        }
                        i
                    })
                    .collect()
            })
            .collect();
        // closure[g]: g and every group it is in, transitively (a cycle just ends the walk).
        let closure: Vec<Vec<u32>> = (0..dir.groups.len() as u32)
            .map(|g| {
                let mut seen = vec![g];
                let mut stack = vec![g];
                while let Some(x) = stack.pop() {
                    for &p in &parents[x as usize] {
                        if !seen.contains(&p) {
                            seen.push(p);
                            stack.push(p);
                        }
                    }
                }
                seen
            })
            .collect();
        let group_uids: Vec<EntityUid> = dir
            .groups
            .iter()
            .map(|g| st.uid(Ty::Group, &g.id))
            .collect();
        let group_ancestors = dir
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let anc = closure[i]
                    .iter()
                    .filter(|&&x| x as usize != i)
                    .map(|&x| group_uids[x as usize].clone())
                    .collect();
                (g.id.clone(), anc)
            })
            .collect();

        // Projects.
        let mut projects = HashMap::with_capacity(dir.projects.len());
        for p in &dir.projects {
            let uid = st.uid(Ty::Project, &p.name);
            let attrs = [
                (
                    "name".to_string(),
                    RestrictedExpression::new_string(p.name.clone()),
                ),
                (
                    "classification".to_string(),
                    RestrictedExpression::new_string(p.classification.clone()),
                ),
                (
                    "requires_approval".to_string(),
                    RestrictedExpression::new_bool(p.requires_approval),
                ),
            ];
            let tags = p
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())));
            let entity = Entity::new_with_tags(uid.clone(), attrs, [], tags)
                .map_err(|e| PolicyError::Internal(format!("project {}: {e}", p.name)))?;
            projects.insert(p.name.clone(), ProjectEntry { uid, entity });
        }

        // Bindings, indexed by subject.
        let mut bindings = Vec::with_capacity(dir.bindings.len());
        let mut by_user: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut by_group: Vec<Vec<u32>> = vec![Vec::new(); dir.groups.len()];
        let mut by_workload: HashMap<&str, Vec<u32>> = HashMap::new();
        for b in &dir.bindings {
            if let Scope::Project(p) = &b.scope {
                if PLATFORM_ONLY_ROLES.contains(&b.role.as_str()) {
                    warnings.push(format!(
                        "binding {}: role {} is platform-wide only; ignored on project {p}",
                        b.id, b.role
                    ));
                    continue;
                }
                if !projects.contains_key(p) {
                    warnings.push(format!("binding {}: unknown project {p}; ignored", b.id));
                    continue;
                }
            }
            let i = bindings.len() as u32;
            match &b.subject {
                Subject::User(u) => by_user.entry(u.as_str()).or_default().push(i),
                Subject::Group(g) => match group_index.get(g.as_str()) {
                    Some(&gi) => by_group[gi as usize].push(i),
                    None => {
                        warnings.push(format!("binding {}: unknown group {g}; ignored", b.id));
                        continue;
                    }
                },
                Subject::Workload(w) => by_workload.entry(w.as_str()).or_default().push(i),
            }
            bindings.push(BindingEntry {
                role_uid: st.uid(Ty::Role, &b.role),
                record: b.clone(),
            });
        }

        // Users.
        let mut users = HashMap::with_capacity(dir.users.len());
        for u in &dir.users {
            let mut member: Vec<u32> = Vec::new();
            for g in &u.groups {
                match group_index.get(g.as_str()) {
                    Some(&gi) => {
                        for &x in &closure[gi as usize] {
                            if !member.contains(&x) {
                                member.push(x);
                            }
                        }
                    }
                    None => warnings.push(format!("user {} is in unknown group {g}", u.id)),
                }
            }
            let mut ub: Vec<(u32, Option<u32>)> = by_user
                .get(u.id.as_str())
                .map(|v| v.iter().map(|&b| (b, None)).collect())
                .unwrap_or_default();
            for &g in &member {
                ub.extend(by_group[g as usize].iter().map(|&b| (b, Some(g))));
            }
            users.insert(
                u.id.clone(),
                UserEntry {
                    uid: st.uid(Ty::User, &u.id),
                    username: u.username.clone(),
                    platform_admin: u.platform_admin,
                    disabled: u.disabled,
                    groups: member
                        .iter()
                        .map(|&g| group_uids[g as usize].clone())
                        .collect(),
                    bindings: ub,
                },
            );
        }

        // Workloads.
        let mut workloads = HashMap::with_capacity(dir.workloads.len());
        for w in &dir.workloads {
            workloads.insert(
                w.id.clone(),
                WorkloadEntry {
                    uid: st.uid(Ty::Workload, &w.id),
                    project: w.project.clone(),
                    project_uid: st.uid(Ty::Project, &w.project),
                    kind: w.kind,
                    owner: w.owner.as_ref().map(|o| st.uid(Ty::User, o)),
                    bindings: by_workload.get(w.id.as_str()).cloned().unwrap_or_default(),
                },
            );
        }

        // Policies.
        let mut platform_custom = Vec::new();
        let mut per_project: HashMap<String, Vec<Policy>> = HashMap::new();
        let mut all: Vec<Policy> = st.builtins.clone();
        let mut ids = HashSet::new();
        for c in &dir.policies {
            if !ids.insert(c.id.as_str()) {
                return Err(PolicyError::Custom {
                    id: c.id.clone(),
                    error: Box::new(PolicyError::NotAllowed {
                        message: "duplicate custom policy id".to_string(),
                        position: None,
                    }),
                });
            }
            let p =
                parse_custom(&st, &c.id, &c.text, &c.scope).map_err(|e| PolicyError::Custom {
                    id: c.id.clone(),
                    error: Box::new(e),
                })?;
            all.push(p.clone());
            match &c.scope {
                Scope::Platform => platform_custom.push(p),
                Scope::Project(name) => per_project.entry(name.clone()).or_default().push(p),
            }
        }
        let mut base = Vec::with_capacity(Action::ALL.len());
        for ai in 0..Action::ALL.len() {
            let mut pair: [PolicySet; 2] = [PolicySet::new(), PolicySet::new()];
            for (kind, slot) in pair.iter_mut().enumerate() {
                let chosen = st
                    .builtins
                    .iter()
                    .chain(platform_custom.iter())
                    .filter(|p| can_apply(&st, p, ai, kind))
                    .cloned();
                *slot = set_of(chosen)?;
            }
            base.push(pair);
        }
        let mut project_sets = HashMap::with_capacity(per_project.len());
        for (name, ps) in per_project {
            project_sets.insert(name, set_of(ps)?);
        }

        Ok(Snapshot {
            st,
            users,
            workloads,
            group_names: dir.groups.iter().map(|g| g.id.clone()).collect(),
            group_ancestors,
            projects,
            bindings,
            base,
            project_sets,
            all,
            warnings,
        })
    }

    /// What was skipped while building (dangling references, misplaced bindings).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Ids of every policy in the snapshot (built-in and custom).
    pub fn policy_ids(&self) -> Vec<String> {
        self.all.iter().map(|p| p.id().to_string()).collect()
    }

    /// Decides one request at `now`. Default deny; forbid beats permit; any error denies.
    pub fn decide(&self, req: &Request, now: Timestamp) -> Decision {
        match self.prepare(req, now) {
            Ok(prepared) => self.evaluate(&prepared),
            Err(e) => Decision::error(e),
        }
    }

    /// The actions `principal` may take on project `project` at `now`, asked with the project
    /// itself as the resource ("may X in P at all"; ownership rules then answer for some of
    /// the principal's own workloads).
    pub fn can(
        &self,
        principal: &Principal,
        credential: &crate::model::Credential,
        source_ip: IpAddr,
        project: &str,
        now: Timestamp,
    ) -> Vec<Action> {
        let kind = match principal {
            Principal::User(_) => USER,
            Principal::Workload(_) => WORKLOAD,
        };
        let mut req = Request {
            principal: principal.clone(),
            credential: credential.clone(),
            source_ip,
            action: Action::ProjectRead,
            resource: Resource::Project(project.to_string()),
            extra: None,
        };
        let mut out = Vec::new();
        for action in Action::ALL {
            let a = &self.st.applies[action_index(action)];
            if !a.principal[kind] || a.resources & (1 << Ty::Project as u32) == 0 {
                continue;
            }
            req.action = action;
            if self.decide(&req, now).allowed {
                out.push(action);
            }
        }
        out
    }

    fn ty_of(resource: &Resource) -> Ty {
        match resource {
            Resource::Platform => Ty::Platform,
            Resource::User(_) => Ty::User,
            Resource::Group(_) => Ty::Group,
            Resource::Project(_) => Ty::Project,
            Resource::Token { .. } => Ty::Token,
            Resource::Policy { .. } => Ty::Policy,
            Resource::Secret { .. } => Ty::Secret,
            Resource::Workload { .. } => Ty::Workload,
            Resource::Dataset { .. } => Ty::Dataset,
            Resource::AuditTrail { .. } => Ty::AuditTrail,
            Resource::Template(_) => Ty::Template,
        }
    }

    fn roles_in_scope(
        &self,
        refs: impl Iterator<Item = (u32, Option<u32>)>,
        scope: Option<&str>,
        now: Timestamp,
        parents: &mut HashSet<EntityUid>,
        roles: &mut Vec<AppliedRole>,
    ) -> bool {
        let mut member = false;
        for (bi, via) in refs {
            let Some(b) = self.bindings.get(bi as usize) else {
                continue;
            };
            let r = &b.record;
            let in_scope = match &r.scope {
                Scope::Platform => true,
                Scope::Project(p) => scope == Some(p.as_str()),
            };
            if !in_scope || !r.in_force(now) {
                continue;
            }
            member |= matches!(r.scope, Scope::Project(_));
            parents.insert(b.role_uid.clone());
            roles.push(AppliedRole {
                role: r.role.clone(),
                origin: r.origin.clone(),
                binding: Some(r.id.clone()),
                via_group: via.and_then(|g| self.group_names.get(g as usize).cloned()),
                scope: r.scope.clone(),
                expires_at: r.expires_at,
            });
        }
        member
    }

    fn user_entity(&self, u: &UserEntry, parents: HashSet<EntityUid>) -> Result<Entity, String> {
        let attrs = [
            (
                "username".to_string(),
                RestrictedExpression::new_string(u.username.clone()),
            ),
            (
                "platform_admin".to_string(),
                RestrictedExpression::new_bool(u.platform_admin),
            ),
            (
                "disabled".to_string(),
                RestrictedExpression::new_bool(u.disabled),
            ),
        ];
        Entity::new_with_tags(u.uid.clone(), attrs, parents, []).map_err(|e| e.to_string())
    }

    fn owned_entity(
        &self,
        uid: EntityUid,
        name: Option<&str>,
        project: Option<&ProjectEntry>,
        owner: Option<&str>,
        extra: Option<(&str, RestrictedExpression)>,
    ) -> Result<Entity, String> {
        let mut attrs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(4);
        if let Some(n) = name {
            attrs.push((
                "name".to_string(),
                RestrictedExpression::new_string(n.to_string()),
            ));
        }
        if let Some(p) = project {
            attrs.push((
                "project".to_string(),
                RestrictedExpression::new_entity_uid(p.uid.clone()),
            ));
        }
        if let Some(o) = owner {
            attrs.push((
                "owner".to_string(),
                RestrictedExpression::new_entity_uid(self.st.uid(Ty::User, o)),
            ));
        }
        if let Some((k, v)) = extra {
            attrs.push((k.to_string(), v));
        }
        let parents = project.map(|p| p.uid.clone());
        Entity::new_with_tags(uid, attrs, parents, []).map_err(|e| e.to_string())
    }

    /// Builds the Cedar request and entity slice for `req`.
    fn prepare(&self, req: &Request, now: Timestamp) -> Result<Prepared<'_>, String> {
        let st = &*self.st;
        let ai = action_index(req.action);
        let applies = &st.applies[ai];
        let scope = req.resource.project();
        let project = match scope {
            Some(p) => Some(
                self.projects
                    .get(p)
                    .ok_or_else(|| format!("unknown project {p}"))?,
            ),
            None => None,
        };
        let res_ty = Self::ty_of(&req.resource);
        if applies.resources & (1 << res_ty as u32) == 0 {
            return Err(format!(
                "{} does not apply to a {} resource",
                req.action.as_str(),
                st.ty(res_ty)
            ));
        }

        let mut roles = Vec::new();
        let mut entities: Vec<Entity> = Vec::with_capacity(4);
        let (kind, principal_uid) = match &req.principal {
            Principal::User(id) => {
                let u = self
                    .users
                    .get(id)
                    .ok_or_else(|| format!("unknown user {id}"))?;
                let mut parents: HashSet<EntityUid> = u.groups.iter().cloned().collect();
                if u.platform_admin {
                    parents.insert(st.uid(Ty::Role, "platform_admin"));
                    roles.push(AppliedRole {
                        role: "platform_admin".to_string(),
                        origin: "admin flag".to_string(),
                        binding: None,
                        via_group: None,
                        scope: Scope::Platform,
                        expires_at: None,
                    });
                }
                let member = self.roles_in_scope(
                    u.bindings.iter().copied(),
                    scope,
                    now,
                    &mut parents,
                    &mut roles,
                );
                if member {
                    if let Some(p) = project {
                        parents.insert(p.uid.clone());
                    }
                }
                entities.push(self.user_entity(u, parents)?);
                (USER, u.uid.clone())
            }
            Principal::Workload(id) => {
                let w = self
                    .workloads
                    .get(id)
                    .ok_or_else(|| format!("unknown workload {id}"))?;
                let mut parents = HashSet::with_capacity(4);
                parents.insert(w.project_uid.clone());
                self.roles_in_scope(
                    w.bindings.iter().map(|&b| (b, None)),
                    scope,
                    now,
                    &mut parents,
                    &mut roles,
                );
                let mut attrs = vec![
                    (
                        "kind".to_string(),
                        RestrictedExpression::new_string(w.kind.as_str().to_string()),
                    ),
                    (
                        "project".to_string(),
                        RestrictedExpression::new_entity_uid(w.project_uid.clone()),
                    ),
                ];
                if let Some(o) = &w.owner {
                    attrs.push((
                        "owner".to_string(),
                        RestrictedExpression::new_entity_uid(o.clone()),
                    ));
                }
                entities.push(
                    Entity::new_with_tags(w.uid.clone(), attrs, parents, [])
                        .map_err(|e| e.to_string())?,
                );
                if let Resource::Workload {
                    id: rid,
                    project: rp,
                    ..
                } = &req.resource
                {
                    if rid == id && *rp != w.project {
                        return Err(format!(
                            "workload {id} is in project {}, not {rp}",
                            w.project
                        ));
                    }
                }
                (WORKLOAD, w.uid.clone())
            }
        };
        if !applies.principal[kind] {
            return Err(format!(
                "{} does not apply to a {} principal",
                req.action.as_str(),
                if kind == USER { "User" } else { "Workload" }
            ));
        }

        // The resource, and the project it is in.
        let resource_uid = match &req.resource {
            Resource::Platform => st.platform_uid.clone(),
            Resource::User(id) => {
                let uid = st.uid(Ty::User, id);
                if uid != principal_uid {
                    if let Some(u) = self.users.get(id) {
                        let parents = u.groups.iter().cloned().collect();
                        entities.push(self.user_entity(u, parents)?);
                    }
                }
                uid
            }
            Resource::Group(id) => {
                let uid = st.uid(Ty::Group, id);
                let parents: HashSet<EntityUid> = self
                    .group_ancestors
                    .get(id)
                    .map(|a| a.iter().cloned().collect())
                    .unwrap_or_default();
                entities.push(Entity::new_no_attrs(uid.clone(), parents));
                uid
            }
            Resource::Project(_) => match project {
                Some(p) => p.uid.clone(),
                None => return Err("project resource without a project".to_string()),
            },
            Resource::Token { owner } => {
                let uid = st.uid(Ty::Token, owner);
                entities.push(self.owned_entity(uid.clone(), None, None, Some(owner), None)?);
                uid
            }
            Resource::Policy { id, .. } => {
                let uid = st.uid(Ty::Policy, id);
                entities.push(self.owned_entity(uid.clone(), None, project, None, None)?);
                uid
            }
            Resource::Secret {
                name,
                project: p,
                owner,
            } => {
                let uid = st.uid(Ty::Secret, &format!("{p}/{name}"));
                entities.push(self.owned_entity(
                    uid.clone(),
                    Some(name),
                    project,
                    owner.as_deref(),
                    None,
                )?);
                uid
            }
            Resource::Dataset {
                name,
                project: p,
                owner,
            } => {
                let uid = st.uid(Ty::Dataset, &format!("{p}/{name}"));
                entities.push(self.owned_entity(
                    uid.clone(),
                    Some(name),
                    project,
                    owner.as_deref(),
                    None,
                )?);
                uid
            }
            Resource::Workload {
                id,
                project: p,
                kind,
                owner,
            } => {
                let uid = st.uid(Ty::Workload, id);
                if uid != principal_uid {
                    if let Some(w) = self.workloads.get(id) {
                        if w.project != *p {
                            return Err(format!(
                                "workload {id} is in project {}, not {p}",
                                w.project
                            ));
                        }
                    }
                    let kind = RestrictedExpression::new_string(kind.as_str().to_string());
                    entities.push(self.owned_entity(
                        uid.clone(),
                        None,
                        project,
                        owner.as_deref(),
                        Some(("kind", kind)),
                    )?);
                }
                uid
            }
            Resource::AuditTrail { project: p } => {
                let uid = match p {
                    Some(p) => st.uid(Ty::AuditTrail, &format!("project/{p}")),
                    None => st.uid(Ty::AuditTrail, "platform"),
                };
                entities.push(self.owned_entity(uid.clone(), None, project, None, None)?);
                uid
            }
            Resource::Template(name) => {
                let uid = st.uid(Ty::Template, name);
                entities.push(self.owned_entity(uid.clone(), Some(name), None, None, None)?);
                uid
            }
        };
        if let Some(p) = project {
            entities.push(p.entity.clone());
        }
        entities.push(st.action_entities[ai].clone());

        let context = self.context(req, scope, now)?;
        let request = cedar_policy::Request::new(
            principal_uid,
            st.action_uids[ai].clone(),
            resource_uid,
            context,
            Some(&st.schema),
        )
        .map_err(|e| format!("request does not match the schema: {e}"))?;
        let entities = Entities::from_entities(entities, None).map_err(|e| e.to_string())?;
        Ok(Prepared {
            request,
            entities,
            base: &self.base[ai][kind],
            project: scope.and_then(|p| self.project_sets.get(p)),
            roles,
        })
    }

    fn context(
        &self,
        req: &Request,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Result<Context, String> {
        let c = &req.credential;
        let secs = now.unix();
        let hour = secs.rem_euclid(86_400) / 3600;
        let weekday = (secs.div_euclid(86_400) + 3).rem_euclid(7) + 1;
        let mut pairs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(12);
        pairs.push((
            "source_ip".to_string(),
            RestrictedExpression::new_ip(req.source_ip.to_string()),
        ));
        pairs.push((
            "now".to_string(),
            RestrictedExpression::new_datetime(now.rfc3339()),
        ));
        pairs.push(("hour_utc".to_string(), RestrictedExpression::new_long(hour)));
        pairs.push((
            "weekday".to_string(),
            RestrictedExpression::new_long(weekday),
        ));
        pairs.push(("mfa".to_string(), RestrictedExpression::new_bool(c.mfa)));
        pairs.push((
            "auth_method".to_string(),
            RestrictedExpression::new_string(c.method.as_str().to_string()),
        ));
        pairs.push((
            "read_only".to_string(),
            RestrictedExpression::new_bool(c.read_only),
        ));
        pairs.push((
            "token_limited".to_string(),
            RestrictedExpression::new_bool(!c.token_projects.is_empty()),
        ));
        pairs.push((
            "token_projects".to_string(),
            RestrictedExpression::new_set(
                c.token_projects
                    .iter()
                    .map(|p| RestrictedExpression::new_string(p.clone())),
            ),
        ));
        if let Some(p) = scope {
            pairs.push((
                "project".to_string(),
                RestrictedExpression::new_string(p.to_string()),
            ));
        }
        if let Some(extra) = &req.extra {
            if !extra.is_object() {
                return Err("extra context must be a JSON object".to_string());
            }
            let ctx = Context::from_json_value(extra.clone(), None)
                .map_err(|e| format!("extra context: {e}"))?;
            for (k, v) in ctx {
                if ENGINE_KEYS.contains(&k.as_str()) {
                    return Err(format!("extra context may not set `{k}`"));
                }
                pairs.push((k, v));
            }
        }
        Context::from_pairs(pairs).map_err(|e| format!("context: {e}"))
    }

    fn evaluate(&self, p: &Prepared<'_>) -> Decision {
        let st = &*self.st;
        let first = st.authorizer.is_authorized(&p.request, p.base, &p.entities);
        let second = p
            .project
            .map(|set| st.authorizer.is_authorized(&p.request, set, &p.entities));
        combine([Some(first), second].into_iter().flatten(), p.roles.clone())
    }

    // ---- support for benchmarks and tests ----------------------------------------------------

    /// The Cedar request, entity slice and prefiltered policy sets `decide` would evaluate
    /// (for benchmarks comparing with raw Cedar).
    #[doc(hidden)]
    pub fn raw_parts(
        &self,
        req: &Request,
        now: Timestamp,
    ) -> Result<
        (
            cedar_policy::Request,
            Entities,
            PolicySet,
            Option<PolicySet>,
        ),
        String,
    > {
        let p = self.prepare(req, now)?;
        Ok((p.request, p.entities, p.base.clone(), p.project.cloned()))
    }

    /// Every policy (built-in and custom) in one set, unfiltered.
    #[doc(hidden)]
    pub fn full_policy_set(&self) -> Result<PolicySet, PolicyError> {
        set_of(self.all.iter().cloned())
    }
}

/// Unions several Cedar answers as if one set had been evaluated: a satisfied forbid anywhere
/// denies, else a satisfied permit anywhere allows; any error denies.
fn combine(responses: impl Iterator<Item = Response>, roles: Vec<AppliedRole>) -> Decision {
    let mut permits = Vec::new();
    let mut forbids = Vec::new();
    let mut errors = Vec::new();
    for r in responses {
        let reasons = r.diagnostics().reason().map(|id| id.to_string());
        match r.decision() {
            cedar_policy::Decision::Allow => permits.extend(reasons),
            cedar_policy::Decision::Deny => forbids.extend(reasons),
        }
        errors.extend(r.diagnostics().errors().map(|e| e.to_string()));
    }
    let allowed = forbids.is_empty() && !permits.is_empty() && errors.is_empty();
    let mut determining = if !forbids.is_empty() {
        forbids
    } else if errors.is_empty() {
        permits
    } else {
        Vec::new()
    };
    determining.sort();
    Decision {
        allowed,
        determining,
        roles,
        errors,
    }
}

struct Prepared<'a> {
    request: cedar_policy::Request,
    entities: Entities,
    base: &'a PolicySet,
    project: Option<&'a PolicySet>,
    roles: Vec<AppliedRole>,
}
