//! A snapshot: the directory, parsed and indexed once, with prefiltered policy sets; and the
//! decision itself (entity slice, context, evaluation).

use crate::custom::parse_custom;
use crate::error::PolicyError;
use crate::model::{
    AppliedRole, BindingRecord, Credential, Decision, Directory, Principal, Request, Resource,
    Scope, Subject, WorkloadKind,
};
use crate::sets::{builtin_index, can_apply, set_of, specialize, ActionSets, USER, WORKLOAD};
use crate::statics::{action_index, statics, Statics, Ty, PLATFORM_ONLY_ROLES};
use cedar_policy::{
    Context, Entities, EntityUid, Policy, PolicySet, Response, RestrictedExpression,
};
use cedar_policy_core::ast::{
    Entity as CoreEntity, EntityUID as Uid, PartialValue, Value as CoreValue,
};
use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::evaluator::RestrictedEvaluator;
use cedar_policy_core::extensions::Extensions;
use enclave_core::authz::Action;
use enclave_core::Timestamp;
use smol_str::SmolStr;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
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

struct UserEntry {
    uid: Uid,
    username: String,
    platform_admin: bool,
    disabled: bool,
    /// Every group the user is in, transitively (indices into the snapshot's groups).
    closure: Vec<u32>,
    /// The groups of `closure` some policy names: the only ones a decision can depend on.
    groups: Vec<Uid>,
    /// Bindings that reach the user: (binding index, group index it comes through).
    bindings: Vec<(u32, Option<u32>)>,
}

struct WorkloadEntry {
    uid: Uid,
    project: String,
    project_uid: Uid,
    kind: WorkloadKind,
    owner: Option<Uid>,
    bindings: Vec<u32>,
}

struct BindingEntry {
    record: BindingRecord,
    role_uid: Uid,
    /// Index in [`BUILTIN_ROLES`] of a built-in role.
    builtin: Option<u8>,
}

struct ProjectEntry {
    uid: Uid,
    entity: Arc<CoreEntity>,
}

/// An immutable, fully parsed view of the directory and policies. Build it off the request path
/// (after every change to users, groups, projects, bindings, workloads or policies) and hand it
/// to [`crate::PolicyEngine::replace`].
pub struct Snapshot {
    st: Arc<Statics>,
    users: HashMap<String, UserEntry>,
    workloads: HashMap<String, WorkloadEntry>,
    group_names: Vec<String>,
    group_index: HashMap<String, u32>,
    /// Group id -> the groups it is in, transitively (not itself), that policies name.
    group_ancestors: HashMap<String, Vec<Uid>>,
    projects: HashMap<String, ProjectEntry>,
    bindings: Vec<BindingEntry>,
    /// Built-ins and platform custom policies that can apply, per action, principal kind and
    /// built-in roles held.
    base: Vec<[Arc<ActionSets>; 2]>,
    /// Each project's own custom policies, per action and principal kind (only non-empty).
    project_sets: HashMap<String, HashMap<(usize, usize), PolicySet>>,
    /// Every policy, unfiltered.
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

/// Parses the directory's custom policies: (every policy, platform ones, per project).
#[allow(clippy::type_complexity)]
fn parse_policies(
    st: &Statics,
    dir: &Directory,
) -> Result<(Vec<Policy>, Vec<Policy>, HashMap<String, Vec<Policy>>), PolicyError> {
    let mut platform = Vec::new();
    let mut per_project: HashMap<String, Vec<Policy>> = HashMap::new();
    let mut all: Vec<Policy> = st.builtins.clone();
    let mut ids = HashSet::new();
    for c in &dir.policies {
        let custom = |error| PolicyError::Custom {
            id: c.id.clone(),
            error: Box::new(error),
        };
        if !ids.insert(c.id.as_str()) {
            return Err(custom(PolicyError::NotAllowed {
                message: "duplicate custom policy id".to_string(),
                position: None,
            }));
        }
        let p = parse_custom(st, &c.id, &c.text, &c.scope).map_err(custom)?;
        all.push(p.clone());
        match &c.scope {
            Scope::Platform => platform.push(p),
            Scope::Project(name) => per_project.entry(name.clone()).or_default().push(p),
        }
    }
    Ok((all, platform, per_project))
}

/// For each group, itself and every group it is in, transitively (a cycle ends the walk).
fn group_closures(parents: &[Vec<u32>]) -> Vec<Vec<u32>> {
    (0..parents.len())
        .map(|g| {
            let g = g as u32;
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
        .collect()
}

impl Snapshot {
    /// A snapshot with the built-in policies and nobody in it.
    pub fn empty() -> Result<Snapshot, PolicyError> {
        Snapshot::build(Directory::default())
    }

    /// Parses and indexes everything once: transitive group membership (cycles are harmless),
    /// the bindings reaching each user, project entities, and the policy sets (built-ins and
    /// platform custom policies prefiltered per action, principal kind and built-in roles
    /// held; each project's own policies apart). Fails if a custom policy does not pass
    /// [`crate::validate_custom`] for its scope. Dangling references (a binding to an unknown
    /// group, a project binding of a platform-only role) are skipped and listed in
    /// [`Snapshot::warnings`].
    pub fn build(dir: Directory) -> Result<Snapshot, PolicyError> {
        let st = statics()?;
        let mut warnings = Vec::new();
        let (all, platform_custom, per_project) = parse_policies(&st, &dir)?;

        // Groups, their transitive ancestors, and which of them policies name.
        let group_index: HashMap<String, u32> = dir
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.clone(), i as u32))
            .collect();
        let mut parents: Vec<Vec<u32>> = Vec::with_capacity(dir.groups.len());
        for g in &dir.groups {
            let mut ps = Vec::with_capacity(g.parents.len());
            for p in &g.parents {
                match group_index.get(p) {
                    Some(&i) => ps.push(i),
                    None => warnings.push(format!("group {} is in unknown group {p}", g.id)),
                }
            }
            parents.push(ps);
        }
        let closure = group_closures(&parents);
        let group_uids: Vec<Uid> = dir
            .groups
            .iter()
            .map(|g| st.cuid(Ty::Group, &g.id))
            .collect();
        let named: HashSet<Uid> = all
            .iter()
            .flat_map(|p| p.entity_literals())
            .filter(|u| u.type_name() == st.ty(Ty::Group))
            .map(Uid::from)
            .collect();
        let relevant = |x: &u32| named.contains(&group_uids[*x as usize]);
        let group_ancestors = dir
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let anc = closure[i]
                    .iter()
                    .filter(|&&x| x as usize != i && relevant(&x))
                    .map(|&x| group_uids[x as usize].clone())
                    .collect();
                (g.id.clone(), anc)
            })
            .collect();

        // Projects.
        let mut projects = HashMap::with_capacity(dir.projects.len());
        for p in &dir.projects {
            let uid = st.cuid(Ty::Project, &p.name);
            let attrs = [
                (SmolStr::new_static("name"), str_value(&p.name)),
                (
                    SmolStr::new_static("classification"),
                    str_value(&p.classification),
                ),
                (
                    SmolStr::new_static("requires_approval"),
                    bool_value(p.requires_approval),
                ),
            ];
            let tags = p.tags.iter().map(|(k, v)| (SmolStr::new(k), str_value(v)));
            let entity = Arc::new(CoreEntity::new_with_attr_partial_value(
                uid.clone(),
                attrs,
                HashSet::new(),
                HashSet::new(),
                tags,
            ));
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
                Subject::Group(g) => match group_index.get(g) {
                    Some(&gi) => by_group[gi as usize].push(i),
                    None => {
                        warnings.push(format!("binding {}: unknown group {g}; ignored", b.id));
                        continue;
                    }
                },
                Subject::Workload(w) => by_workload.entry(w.as_str()).or_default().push(i),
            }
            bindings.push(BindingEntry {
                role_uid: st.cuid(Ty::Role, &b.role),
                builtin: builtin_index(&b.role),
                record: b.clone(),
            });
        }

        // Users.
        let mut users = HashMap::with_capacity(dir.users.len());
        for u in &dir.users {
            let mut member: Vec<u32> = Vec::new();
            for g in &u.groups {
                match group_index.get(g) {
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
            let groups = member
                .iter()
                .filter(|x| relevant(x))
                .map(|&g| group_uids[g as usize].clone())
                .collect();
            users.insert(
                u.id.clone(),
                UserEntry {
                    uid: st.cuid(Ty::User, &u.id),
                    username: u.username.clone(),
                    platform_admin: u.platform_admin,
                    disabled: u.disabled,
                    closure: member,
                    groups,
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
                    uid: st.cuid(Ty::Workload, &w.id),
                    project: w.project.clone(),
                    project_uid: st.cuid(Ty::Project, &w.project),
                    kind: w.kind,
                    owner: w.owner.as_ref().map(|o| st.cuid(Ty::User, o)),
                    bindings: by_workload.get(w.id.as_str()).cloned().unwrap_or_default(),
                },
            );
        }

        // Prefiltered policy sets, specialized to their action.
        let mut base = Vec::with_capacity(Action::ALL.len());
        let mut project_sets: HashMap<String, HashMap<(usize, usize), PolicySet>> =
            HashMap::with_capacity(per_project.len());
        for ai in 0..Action::ALL.len() {
            let mut pair = Vec::with_capacity(2);
            for kind in [USER, WORKLOAD] {
                let platform = platform_custom
                    .iter()
                    .filter(|p| can_apply(&st, p, ai, kind))
                    .map(|p| specialize(&st, p, ai))
                    .collect::<Result<Vec<Policy>, _>>()?;
                if platform.is_empty() {
                    pair.push(Arc::clone(&st.builtin_sets[ai][kind]));
                } else {
                    let candidates: Vec<&Policy> = st.builtin_candidates[ai][kind]
                        .iter()
                        .chain(platform.iter())
                        .collect();
                    pair.push(Arc::new(ActionSets::build(&st, &candidates)?));
                }
                for (name, ps) in &per_project {
                    let chosen = ps
                        .iter()
                        .filter(|p| can_apply(&st, p, ai, kind))
                        .map(|p| specialize(&st, p, ai))
                        .collect::<Result<Vec<Policy>, _>>()?;
                    if !chosen.is_empty() {
                        project_sets
                            .entry(name.clone())
                            .or_default()
                            .insert((ai, kind), set_of(chosen)?);
                    }
                }
            }
            let [user, workload]: [Arc<ActionSets>; 2] = pair
                .try_into()
                .map_err(|_| PolicyError::Internal("policy sets".to_string()))?;
            base.push([user, workload]);
        }

        Ok(Snapshot {
            st,
            users,
            workloads,
            group_names: dir.groups.iter().map(|g| g.id.clone()).collect(),
            group_index,
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
            Ok(prepared) => self.evaluate(prepared),
            Err(e) => Decision::error(e),
        }
    }

    /// The actions `principal` may take on project `project` at `now`, asked with the project
    /// itself as the resource ("may X in P at all"; ownership rules then answer for the
    /// principal's own workloads).
    pub fn can(
        &self,
        principal: &Principal,
        credential: &Credential,
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

    /// Adds the roles in force in `scope` at `now` to `held`: their `Role` entities to
    /// `parents`, the bindings to `roles`, built-in ones to the bit set. Returns whether one of
    /// them is a project binding (membership).
    fn roles_in_scope(
        &self,
        refs: impl Iterator<Item = (u32, Option<u32>)>,
        scope: Option<&str>,
        now: Timestamp,
        held: &mut Held,
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
            if let Some(i) = b.builtin {
                held.builtin |= 1 << i;
            }
            held.parents.insert(b.role_uid.clone());
            held.roles.push(AppliedRole {
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

    fn user_entity(&self, u: &UserEntry, parents: HashSet<Uid>) -> CoreEntity {
        let attrs = [
            (SmolStr::new_static("username"), str_value(&u.username)),
            (
                SmolStr::new_static("platform_admin"),
                bool_value(u.platform_admin),
            ),
            (SmolStr::new_static("disabled"), bool_value(u.disabled)),
        ];
        CoreEntity::new_with_attr_partial_value(u.uid.clone(), attrs, HashSet::new(), parents, [])
    }

    /// A project-owned (or free-standing) resource's entity: `name`, `project`, `owner` and
    /// one more attribute, as given; in its project.
    fn owned_entity(
        &self,
        uid: Uid,
        name: Option<&str>,
        project: Option<&ProjectEntry>,
        owner: Option<&str>,
        extra: Option<(&'static str, PartialValue)>,
    ) -> CoreEntity {
        let mut attrs: Vec<(SmolStr, PartialValue)> = Vec::with_capacity(4);
        if let Some(n) = name {
            attrs.push((SmolStr::new_static("name"), str_value(n)));
        }
        if let Some(p) = project {
            attrs.push((SmolStr::new_static("project"), uid_value(p.uid.clone())));
        }
        if let Some(o) = owner {
            attrs.push((
                SmolStr::new_static("owner"),
                uid_value(self.st.cuid(Ty::User, o)),
            ));
        }
        if let Some((k, v)) = extra {
            attrs.push((SmolStr::new_static(k), v));
        }
        let parents = project.map(|p| p.uid.clone()).into_iter().collect();
        CoreEntity::new_with_attr_partial_value(uid, attrs, HashSet::new(), parents, [])
    }

    /// The principal's entity, with its parents for this request, and its kind. Its parents
    /// are transitively closed: the groups it is in (those policies name), the roles it holds
    /// in scope, its project; none of them has parents of its own in the slice.
    fn principal_entity(
        &self,
        req: &Request,
        project: Option<&ProjectEntry>,
        now: Timestamp,
        held: &mut Held,
    ) -> Result<(usize, CoreEntity), String> {
        let st = &*self.st;
        let scope = req.resource.project();
        match &req.principal {
            Principal::User(id) => {
                let u = self
                    .users
                    .get(id)
                    .ok_or_else(|| format!("unknown user {id}"))?;
                held.parents.extend(u.groups.iter().cloned());
                // `principal in resource` for a group resource.
                if let Resource::Group(g) = &req.resource {
                    if let Some(gi) = self.group_index.get(g) {
                        if u.closure.contains(gi) {
                            held.parents.insert(st.cuid(Ty::Group, g));
                        }
                    }
                }
                if u.platform_admin {
                    held.parents.insert(st.cuid(Ty::Role, "platform_admin"));
                    held.builtin |= builtin_index("platform_admin").map_or(0, |i| 1 << i);
                    held.roles.push(AppliedRole {
                        role: "platform_admin".to_string(),
                        origin: "admin flag".to_string(),
                        binding: None,
                        via_group: None,
                        scope: Scope::Platform,
                        expires_at: None,
                    });
                }
                let member = self.roles_in_scope(u.bindings.iter().copied(), scope, now, held);
                if member {
                    if let Some(p) = project {
                        held.parents.insert(p.uid.clone());
                    }
                }
                let parents = std::mem::take(&mut held.parents);
                Ok((USER, self.user_entity(u, parents)))
            }
            Principal::Workload(id) => {
                let w = self
                    .workloads
                    .get(id)
                    .ok_or_else(|| format!("unknown workload {id}"))?;
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
                held.parents.insert(w.project_uid.clone());
                self.roles_in_scope(w.bindings.iter().map(|&b| (b, None)), scope, now, held);
                let mut attrs = vec![
                    (SmolStr::new_static("kind"), str_value(w.kind.as_str())),
                    (
                        SmolStr::new_static("project"),
                        uid_value(w.project_uid.clone()),
                    ),
                ];
                if let Some(o) = &w.owner {
                    attrs.push((SmolStr::new_static("owner"), uid_value(o.clone())));
                }
                let parents = std::mem::take(&mut held.parents);
                let entity = CoreEntity::new_with_attr_partial_value(
                    w.uid.clone(),
                    attrs,
                    HashSet::new(),
                    parents,
                    [],
                );
                Ok((WORKLOAD, entity))
            }
        }
    }

    /// The resource's uid, and its entity unless it is the principal or the project (which
    /// the slice holds anyway) or an unknown user.
    fn resource_entity(
        &self,
        req: &Request,
        project: Option<&ProjectEntry>,
        principal_uid: &Uid,
    ) -> Result<(Uid, Option<CoreEntity>), String> {
        let st = &*self.st;
        Ok(match &req.resource {
            Resource::Platform => (st.platform_uid.as_ref().clone(), None),
            Resource::User(id) => {
                let uid = st.cuid(Ty::User, id);
                let entity = match self.users.get(id) {
                    Some(u) if uid != *principal_uid => {
                        Some(self.user_entity(u, u.groups.iter().cloned().collect()))
                    }
                    _ => None,
                };
                (uid, entity)
            }
            Resource::Group(id) => {
                let uid = st.cuid(Ty::Group, id);
                let parents: HashSet<Uid> = self
                    .group_ancestors
                    .get(id)
                    .map(|a| a.iter().cloned().collect())
                    .unwrap_or_default();
                let e = CoreEntity::new_with_attr_partial_value(
                    uid.clone(),
                    [],
                    HashSet::new(),
                    parents,
                    [],
                );
                (uid, Some(e))
            }
            Resource::Project(_) => match project {
                Some(p) => (p.uid.clone(), None),
                None => return Err("project resource without a project".to_string()),
            },
            Resource::Token { owner } => {
                let uid = st.cuid(Ty::Token, owner);
                let e = self.owned_entity(uid.clone(), None, None, Some(owner), None);
                (uid, Some(e))
            }
            Resource::Policy { id, .. } => {
                let uid = st.cuid(Ty::Policy, id);
                let e = self.owned_entity(uid.clone(), None, project, None, None);
                (uid, Some(e))
            }
            Resource::Secret {
                name,
                project: p,
                owner,
            } => {
                let uid = st.cuid(Ty::Secret, &format!("{p}/{name}"));
                let e = self.owned_entity(uid.clone(), Some(name), project, owner.as_deref(), None);
                (uid, Some(e))
            }
            Resource::Dataset {
                name,
                project: p,
                owner,
            } => {
                let uid = st.cuid(Ty::Dataset, &format!("{p}/{name}"));
                let e = self.owned_entity(uid.clone(), Some(name), project, owner.as_deref(), None);
                (uid, Some(e))
            }
            Resource::Workload {
                id,
                project: p,
                kind,
                owner,
            } => {
                let uid = st.cuid(Ty::Workload, id);
                if uid == *principal_uid {
                    (uid, None)
                } else {
                    if let Some(w) = self.workloads.get(id) {
                        if w.project != *p {
                            return Err(format!(
                                "workload {id} is in project {}, not {p}",
                                w.project
                            ));
                        }
                    }
                    let e = self.owned_entity(
                        uid.clone(),
                        None,
                        project,
                        owner.as_deref(),
                        Some(("kind", str_value(kind.as_str()))),
                    );
                    (uid, Some(e))
                }
            }
            Resource::AuditTrail { project: p } => {
                let uid = match p {
                    Some(p) => st.cuid(Ty::AuditTrail, &format!("project/{p}")),
                    None => st.cuid(Ty::AuditTrail, "platform"),
                };
                let e = self.owned_entity(uid.clone(), None, project, None, None);
                (uid, Some(e))
            }
            Resource::Template(name) => {
                let uid = st.cuid(Ty::Template, name);
                let e = self.owned_entity(uid.clone(), Some(name), None, None, None);
                (uid, Some(e))
            }
        })
    }

    /// Builds the Cedar request and entity slice for `req`, and picks the policy sets.
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

        let mut held = Held::default();
        let (kind, principal) = self.principal_entity(req, project, now, &mut held)?;
        if !applies.principal[kind] {
            return Err(format!(
                "{} does not apply to a {} principal",
                req.action.as_str(),
                if kind == USER { "User" } else { "Workload" }
            ));
        }
        let principal_uid = principal.uid().clone();
        let (resource_uid, resource) = self.resource_entity(req, project, &principal_uid)?;

        // Every entity's parents are already transitively closed (see `principal_entity`;
        // resources' parents are their project or named ancestor groups, which have no
        // parents in the slice), so Cedar need not compute the closure again.
        let mut slice: Vec<Arc<CoreEntity>> = Vec::with_capacity(4);
        slice.push(Arc::new(principal));
        slice.extend(resource.map(Arc::new));
        if let Some(p) = project {
            slice.push(Arc::clone(&p.entity));
        }
        slice.push(Arc::clone(&st.core_action_entities[ai]));
        let entities: Entities = CoreEntities::new()
            .add_entities(
                slice,
                None::<&NoEntitiesSchema>,
                // Debug builds (the tests) check the claim instead of trusting it.
                if cfg!(debug_assertions) {
                    TCComputation::EnforceAlreadyComputed
                } else {
                    TCComputation::AssumeAlreadyComputed
                },
                Extensions::all_available(),
            )
            .map_err(|e| e.to_string())?
            .into();

        let action_uid = &st.action_uids[ai];
        let context = self.context(req, scope, now)?;
        if req.extra.is_some() {
            // The engine's own attributes are well typed by construction; check the caller's.
            context
                .validate(&st.schema, action_uid)
                .map_err(|e| format!("context does not match the schema: {e}"))?;
        }
        // Principal and resource types were checked above against the schema's `appliesTo`.
        let request = cedar_policy::Request::new(
            EntityUid::from(principal_uid),
            action_uid.clone(),
            EntityUid::from(resource_uid),
            context,
            None,
        )
        .map_err(|e| format!("request: {e}"))?;
        let base = self.base[ai][kind]
            .pick(held.builtin)
            .ok_or_else(|| "no policy set for this request".to_string())?;
        Ok(Prepared {
            request,
            entities,
            base,
            project: scope
                .and_then(|p| self.project_sets.get(p))
                .and_then(|sets| sets.get(&(ai, kind))),
            roles: held.roles,
        })
    }

    /// The request context, built directly as a Cedar record value.
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
        let mut m: BTreeMap<SmolStr, CoreValue> = BTreeMap::new();
        m.insert(SmolStr::new_static("source_ip"), ip_value(req.source_ip)?);
        m.insert(SmolStr::new_static("now"), datetime_value(now)?);
        m.insert(SmolStr::new_static("hour_utc"), CoreValue::from(hour));
        m.insert(SmolStr::new_static("weekday"), CoreValue::from(weekday));
        m.insert(SmolStr::new_static("mfa"), CoreValue::from(c.mfa));
        m.insert(
            SmolStr::new_static("auth_method"),
            CoreValue::from(c.method.as_str()),
        );
        m.insert(
            SmolStr::new_static("read_only"),
            CoreValue::from(c.read_only),
        );
        m.insert(
            SmolStr::new_static("token_limited"),
            CoreValue::from(!c.token_projects.is_empty()),
        );
        m.insert(
            SmolStr::new_static("token_projects"),
            CoreValue::set(
                c.token_projects.iter().map(|p| CoreValue::from(p.as_str())),
                None,
            ),
        );
        if let Some(p) = scope {
            m.insert(SmolStr::new_static("project"), CoreValue::from(p));
        }
        if let Some(extra) = &req.extra {
            if !extra.is_object() {
                return Err("extra context must be a JSON object".to_string());
            }
            let ctx = Context::from_json_value(extra.clone(), None)
                .map_err(|e| format!("extra context: {e}"))?;
            let cedar_policy_core::ast::Context::Value(values) = ctx.as_ref() else {
                return Err("extra context must be concrete".to_string());
            };
            for (k, v) in values.iter() {
                if ENGINE_KEYS.contains(&k.as_str()) {
                    return Err(format!("extra context may not set `{k}`"));
                }
                m.insert(k.clone(), v.clone());
            }
        }
        Ok(cedar_policy_core::ast::Context::Value(Arc::new(m)).into())
    }

    fn evaluate(&self, p: Prepared<'_>) -> Decision {
        let st = &*self.st;
        let first = st.authorizer.is_authorized(&p.request, p.base, &p.entities);
        let second = p
            .project
            .map(|set| st.authorizer.is_authorized(&p.request, set, &p.entities));
        combine([Some(first), second].into_iter().flatten(), p.roles)
    }

    // ---- support for benchmarks ----------------------------------------------------------

    /// The Cedar request, entity slice and prefiltered policy sets `decide` would evaluate
    /// (for benchmarks comparing with raw Cedar).
    #[doc(hidden)]
    #[allow(clippy::type_complexity)]
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

/// What the principal holds in the request's scope.
#[derive(Default)]
struct Held {
    parents: HashSet<Uid>,
    roles: Vec<AppliedRole>,
    /// Bit `i`: holds `BUILTIN_ROLES[i]`.
    builtin: u16,
}

fn str_value(s: &str) -> PartialValue {
    PartialValue::Value(CoreValue::from(s))
}

fn bool_value(b: bool) -> PartialValue {
    PartialValue::Value(CoreValue::from(b))
}

fn uid_value(u: Uid) -> PartialValue {
    PartialValue::Value(CoreValue::from(u))
}

/// Per thread, the extension values (`ip(…)`, `datetime(…)`) last built. Building one through
/// Cedar's public API parses the constructor's name and the argument (a regular expression for
/// datetimes) every time; the value for the same address or second is the same, so it is kept.
/// Pure memoization: same input, same value.
#[derive(Default)]
struct ExtensionMemo {
    ips: HashMap<IpAddr, CoreValue>,
    now: Option<(i64, CoreValue)>,
}

const MAX_MEMO_IPS: usize = 4096;

thread_local! {
    static MEMO: RefCell<ExtensionMemo> = RefCell::new(ExtensionMemo::default());
}

/// Evaluates an extension constructor call.
fn extension_value(e: RestrictedExpression) -> Result<CoreValue, String> {
    RestrictedEvaluator::new(Extensions::all_available())
        .interpret(e.as_ref().as_borrowed())
        .map_err(|e| e.to_string())
}

fn ip_value(ip: IpAddr) -> Result<CoreValue, String> {
    let build = || extension_value(RestrictedExpression::new_ip(ip.to_string()));
    MEMO.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return build();
        };
        if let Some(v) = m.ips.get(&ip) {
            return Ok(v.clone());
        }
        if m.ips.len() >= MAX_MEMO_IPS {
            m.ips.clear();
        }
        let v = build()?;
        m.ips.insert(ip, v.clone());
        Ok(v)
    })
}

fn datetime_value(now: Timestamp) -> Result<CoreValue, String> {
    let build = || extension_value(RestrictedExpression::new_datetime(now.rfc3339()));
    MEMO.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return build();
        };
        if let Some((t, v)) = &m.now {
            if *t == now.unix() {
                return Ok(v.clone());
            }
        }
        let v = build()?;
        m.now = Some((now.unix(), v.clone()));
        Ok(v)
    })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::model::{
        AuthMethod, Credential, GroupRecord, ProjectRecord, UserRecord, WorkloadRecord,
    };
    use cedar_policy::Entity;

    /// Every slice the engine builds conforms to the schema (attribute types, parent types),
    /// for every action and every kind of resource it applies to.
    #[test]
    fn slices_conform_to_the_schema() {
        let mut p1 = ProjectRecord {
            name: "p1".into(),
            classification: "restricted".into(),
            ..Default::default()
        };
        p1.tags.insert("pii".into(), "yes".into());
        let dir = Directory {
            users: vec![
                UserRecord {
                    id: "u1".into(),
                    username: "ada".into(),
                    platform_admin: true,
                    disabled: false,
                    groups: vec!["g1".into()],
                },
                UserRecord {
                    id: "u2".into(),
                    username: "bob".into(),
                    platform_admin: false,
                    disabled: true,
                    groups: vec![],
                },
            ],
            groups: vec![
                GroupRecord {
                    id: "g1".into(),
                    parents: vec!["g2".into()],
                },
                GroupRecord {
                    id: "g2".into(),
                    parents: vec!["g1".into()],
                },
            ],
            projects: vec![p1],
            bindings: vec![
                BindingRecord {
                    id: "b1".into(),
                    subject: Subject::Group("g2".into()),
                    role: "project_owner".into(),
                    scope: Scope::Project("p1".into()),
                    starts_at: None,
                    expires_at: None,
                    origin: "membership".into(),
                },
                BindingRecord {
                    id: "b2".into(),
                    subject: Subject::Workload("w1".into()),
                    role: "job_execution".into(),
                    scope: Scope::Project("p1".into()),
                    starts_at: None,
                    expires_at: None,
                    origin: "binding".into(),
                },
            ],
            workloads: vec![WorkloadRecord {
                id: "w1".into(),
                project: "p1".into(),
                kind: WorkloadKind::Job,
                owner: Some("u1".into()),
            }],
            policies: vec![],
        };
        let snap = Snapshot::build(dir).unwrap();
        let st = statics().unwrap();
        let resources = [
            Resource::Platform,
            Resource::User("u1".into()),
            Resource::User("u2".into()),
            Resource::User("unknown".into()),
            Resource::Group("g1".into()),
            Resource::Project("p1".into()),
            Resource::Token { owner: "u2".into() },
            Resource::Policy {
                id: "x".into(),
                project: Some("p1".into()),
            },
            Resource::Policy {
                id: "y".into(),
                project: None,
            },
            Resource::Secret {
                name: "s".into(),
                project: "p1".into(),
                owner: Some("u2".into()),
            },
            Resource::Dataset {
                name: "d".into(),
                project: "p1".into(),
                owner: None,
            },
            Resource::Workload {
                id: "w1".into(),
                project: "p1".into(),
                kind: WorkloadKind::Job,
                owner: Some("u1".into()),
            },
            Resource::Workload {
                id: "w2".into(),
                project: "p1".into(),
                kind: WorkloadKind::Endpoint,
                owner: None,
            },
            Resource::AuditTrail {
                project: Some("p1".into()),
            },
            Resource::AuditTrail { project: None },
            Resource::Template("basic".into()),
        ];
        let mut checked = 0;
        for principal in [
            Principal::User("u1".into()),
            Principal::Workload("w1".into()),
        ] {
            let kind = usize::from(matches!(principal, Principal::Workload(_)));
            for action in Action::ALL {
                let applies = &st.applies[action_index(action)];
                for resource in &resources {
                    let ty = Snapshot::ty_of(resource);
                    let r = Request {
                        principal: principal.clone(),
                        credential: Credential::full(AuthMethod::Passkey, true),
                        source_ip: "2001:db8::1".parse().unwrap(),
                        action,
                        resource: resource.clone(),
                        extra: None,
                    };
                    let prepared = snap.prepare(&r, Timestamp(1_800_000_000));
                    if !applies.principal[kind] || applies.resources & (1 << ty as u32) == 0 {
                        assert!(prepared.is_err(), "{r:?}");
                        continue;
                    }
                    let p = prepared.unwrap_or_else(|e| panic!("{r:?}: {e}"));
                    let action_ty = st.action_uids[0].type_name().clone();
                    let slice: Vec<Entity> = p
                        .entities
                        .iter()
                        .filter(|e| e.uid().type_name() != &action_ty)
                        .cloned()
                        .collect();
                    Entities::from_entities(slice, Some(&st.schema))
                        .unwrap_or_else(|e| panic!("{r:?}: {e}"));
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}
