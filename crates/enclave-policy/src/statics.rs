//! What never changes while the process runs: the schema, the action entities, the built-in
//! policies. Parsed once, on first use, and shared by every snapshot.

use crate::error::PolicyError;
use crate::sets::{can_apply, specialize, ActionSets, USER, WORKLOAD};
use cedar_policy::{
    Authorizer, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Schema,
    ValidationMode, Validator,
};
use enclave_core::authz::Action;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

/// The Cedar schema, as versioned in the repository.
pub const SCHEMA_TEXT: &str = include_str!("../schema/enclave.cedarschema");

/// The built-in policy files, by file name.
pub const BUILTIN_POLICY_FILES: [(&str, &str); 5] = [
    ("everyone.cedar", include_str!("../policies/everyone.cedar")),
    ("forbid.cedar", include_str!("../policies/forbid.cedar")),
    (
        "platform_roles.cedar",
        include_str!("../policies/platform_roles.cedar"),
    ),
    (
        "project_roles.cedar",
        include_str!("../policies/project_roles.cedar"),
    ),
    (
        "workload_roles.cedar",
        include_str!("../policies/workload_roles.cedar"),
    ),
];

/// Roles that only mean something platform-wide; project bindings of them are ignored.
pub const PLATFORM_ONLY_ROLES: [&str; 2] = ["platform_admin", "security_auditor"];

/// Entity types the engine builds, in a fixed order (see [`Ty`]).
const TYPE_NAMES: [&str; 12] = [
    "User",
    "Workload",
    "Group",
    "Role",
    "Project",
    "Platform",
    "Secret",
    "Dataset",
    "Policy",
    "AuditTrail",
    "Template",
    "Token",
];

/// Index into [`Statics::types`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    User = 0,
    Workload = 1,
    Group = 2,
    Role = 3,
    Project = 4,
    Platform = 5,
    Secret = 6,
    Dataset = 7,
    Policy = 8,
    AuditTrail = 9,
    Template = 10,
    Token = 11,
}

/// Per action: which principal and resource types the schema allows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Applies {
    /// Indexed by principal kind (0 User, 1 Workload).
    pub principal: [bool; 2],
    /// Bit `1 << Ty` per resource type.
    pub resources: u32,
}

/// The process-wide, immutable part of the engine.
pub(crate) struct Statics {
    pub schema: Schema,
    pub validator: Validator,
    pub authorizer: Authorizer,
    pub types: Vec<EntityTypeName>,
    /// Indexed by `action as usize`.
    pub action_uids: Vec<EntityUid>,
    /// The action entity with its groups as parents, indexed like `action_uids`.
    pub core_action_entities: Vec<Arc<cedar_policy_core::ast::Entity>>,
    /// The action groups each action is in, indexed like `action_uids`.
    pub action_groups: Vec<HashSet<EntityUid>>,
    pub applies: Vec<Applies>,
    pub builtins: Vec<Policy>,
    pub platform_uid: EntityUid,
    /// Per action and principal kind: the built-ins that can apply, specialized to the action.
    pub builtin_candidates: Vec<[Vec<Policy>; 2]>,
    /// The same, split by built-in roles held (shared by snapshots without platform-wide
    /// custom policies for that action and kind).
    pub builtin_sets: Vec<[Arc<ActionSets>; 2]>,
}

impl Statics {
    pub fn uid(&self, ty: Ty, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.types[ty as usize].clone(), EntityId::new(id))
    }

    /// The same uid as Cedar's core type (what entity slices are built from).
    pub fn cuid(&self, ty: Ty, id: &str) -> cedar_policy_core::ast::EntityUID {
        self.uid(ty, id).into()
    }

    pub fn ty(&self, ty: Ty) -> &EntityTypeName {
        &self.types[ty as usize]
    }
}

/// The index of an action in [`Action::ALL`] (its declaration order).
pub(crate) fn action_index(action: Action) -> usize {
    action as usize
}

static STATICS: OnceLock<Result<Arc<Statics>, PolicyError>> = OnceLock::new();

/// The shared statics, parsed on first use. Fails only if the embedded schema or built-in
/// policies are broken (a test guards against that).
pub(crate) fn statics() -> Result<Arc<Statics>, PolicyError> {
    STATICS.get_or_init(|| build().map(Arc::new)).clone()
}

fn internal(what: &str, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Internal(format!("{what}: {e}"))
}

fn build() -> Result<Statics, PolicyError> {
    let (schema, _warnings) =
        Schema::from_cedarschema_str(SCHEMA_TEXT).map_err(|e| internal("schema", e))?;
    let types = TYPE_NAMES
        .iter()
        .map(|t| EntityTypeName::from_str(t).map_err(|e| internal("type name", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let action_type = EntityTypeName::from_str("Action").map_err(|e| internal("Action", e))?;
    let schema_actions = schema
        .action_entities()
        .map_err(|e| internal("action entities", e))?;

    let mut action_uids = Vec::with_capacity(Action::ALL.len());
    let mut action_entities = Vec::with_capacity(Action::ALL.len());
    let mut action_groups = Vec::with_capacity(Action::ALL.len());
    let mut applies = Vec::with_capacity(Action::ALL.len());
    for (i, action) in Action::ALL.iter().enumerate() {
        if action_index(*action) != i {
            return Err(PolicyError::Internal(format!(
                "Action::ALL is not in declaration order at {}",
                action.as_str()
            )));
        }
        let uid =
            EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(action.as_str()));
        let groups: HashSet<EntityUid> = schema_actions
            .ancestors(&uid)
            .map(|it| it.cloned().collect())
            .ok_or_else(|| {
                PolicyError::Internal(format!(
                    "action {} missing from the schema",
                    action.as_str()
                ))
            })?;
        let mut a = Applies::default();
        if let Some(ps) = schema.principals_for_action(&uid) {
            for p in ps {
                if p == &types[Ty::User as usize] {
                    a.principal[0] = true;
                } else if p == &types[Ty::Workload as usize] {
                    a.principal[1] = true;
                }
            }
        }
        if let Some(rs) = schema.resources_for_action(&uid) {
            for r in rs {
                if let Some(k) = types.iter().position(|t| t == r) {
                    a.resources |= 1 << k;
                }
            }
        }
        let entity = Entity::new_no_attrs(uid.clone(), groups.clone());
        action_entities.push(Arc::new(entity.as_ref().clone()));
        action_groups.push(groups);
        action_uids.push(uid);
        applies.push(a);
    }

    let builtins = parse_builtins()?;
    let validator = Validator::new(schema.clone());
    let mut set = PolicySet::new();
    for p in &builtins {
        set.add(p.clone())
            .map_err(|e| internal("built-in policy", e))?;
    }
    let result = validator.validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        let msgs: Vec<String> = result
            .validation_errors()
            .map(|e| format!("{}: {e}", e.policy_id()))
            .collect();
        return Err(PolicyError::Internal(format!(
            "built-in policies do not validate: {}",
            msgs.join("; ")
        )));
    }
    let platform_uid = EntityUid::from_type_name_and_id(
        types[Ty::Platform as usize].clone(),
        EntityId::new("enclave"),
    );
    let mut st = Statics {
        schema,
        validator,
        authorizer: Authorizer::new(),
        types,
        action_uids,
        core_action_entities: action_entities,
        action_groups,
        applies,
        builtins,
        platform_uid,
        builtin_candidates: Vec::new(),
        builtin_sets: Vec::new(),
    };
    let mut candidates = Vec::with_capacity(Action::ALL.len());
    let mut sets = Vec::with_capacity(Action::ALL.len());
    for ai in 0..Action::ALL.len() {
        let per_kind = |kind: usize| {
            st.builtins
                .iter()
                .filter(|p| can_apply(&st, p, ai, kind))
                .map(|p| specialize(&st, p, ai))
                .collect::<Result<Vec<Policy>, _>>()
        };
        let (user, workload) = (per_kind(USER)?, per_kind(WORKLOAD)?);
        let set = |ps: &[Policy]| {
            let refs: Vec<&Policy> = ps.iter().collect();
            ActionSets::build(&st, &refs).map(Arc::new)
        };
        sets.push([set(&user)?, set(&workload)?]);
        candidates.push([user, workload]);
    }
    st.builtin_candidates = candidates;
    st.builtin_sets = sets;
    Ok(st)
}

/// Parses the built-in policy files; each policy takes its `@id` annotation as its id.
fn parse_builtins() -> Result<Vec<Policy>, PolicyError> {
    let mut out: Vec<Policy> = Vec::new();
    let mut seen = HashSet::new();
    for (file, text) in BUILTIN_POLICY_FILES {
        let set = PolicySet::from_str(text).map_err(|e| internal(file, e))?;
        let mut policies: Vec<&Policy> = set.policies().collect();
        policies.sort_by_key(|p| p.id().to_string());
        for p in policies {
            let id = p.annotation("id").ok_or_else(|| {
                PolicyError::Internal(format!("{file}: a built-in policy has no @id"))
            })?;
            if !id.starts_with("builtin.") || !seen.insert(id.to_string()) {
                return Err(PolicyError::Internal(format!(
                    "{file}: bad or duplicate built-in id {id}"
                )));
            }
            out.push(p.new_id(PolicyId::new(id)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn schema_and_builtins_parse_and_validate() {
        let st = statics().unwrap();
        assert_eq!(st.action_uids.len(), Action::ALL.len());
        assert!(st.builtins.len() > 15);
    }

    #[test]
    fn the_reads_group_is_exactly_the_read_actions() {
        let st = statics().unwrap();
        let reads: EntityUid = r#"Action::"reads""#.parse().unwrap();
        for a in Action::ALL {
            assert_eq!(
                st.action_groups[action_index(a)].contains(&reads),
                a.is_read(),
                "{}",
                a.as_str()
            );
        }
    }
}
