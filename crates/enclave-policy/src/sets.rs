//! Prefiltered policy sets: which policies can apply to an action and principal kind, their
//! specialization to that action, and the split by built-in roles held.

use crate::error::PolicyError;
use crate::statics::{Statics, Ty};
use crate::BUILTIN_ROLES;
use cedar_policy::{ActionConstraint, Policy, PolicySet, PrincipalConstraint};

pub(crate) const USER: usize = 0;
pub(crate) const WORKLOAD: usize = 1;

/// Most built-in roles one action's prefiltered sets tell apart (2^n sets per action and kind).
pub(crate) const MAX_MASK_ROLES: usize = 8;

/// The prefiltered sets of one action and principal kind, one per combination of the built-in
/// roles whose policies can apply. A role policy (`principal [is T] in Role::"r"`) can only be
/// satisfied when the principal holds `r` in the request's scope, since roles reach a request
/// only as the principal's parents; leaving it out otherwise changes no decision.
pub(crate) struct ActionSets {
    /// Indices in [`BUILTIN_ROLES`] of the roles the sets tell apart.
    roles: Vec<u8>,
    /// Indexed by the bit mask, over `roles`, of the roles held.
    sets: Vec<PolicySet>,
}

impl ActionSets {
    pub(crate) fn build(st: &Statics, candidates: &[&Policy]) -> Result<ActionSets, PolicyError> {
        let mut roles: Vec<u8> = Vec::new();
        for p in candidates {
            if let Some(r) = builtin_role_of(st, p) {
                if !roles.contains(&r) && roles.len() < MAX_MASK_ROLES {
                    roles.push(r);
                }
            }
        }
        let mut sets = Vec::with_capacity(1 << roles.len());
        for mask in 0..(1usize << roles.len()) {
            let chosen = candidates.iter().filter(|p| {
                builtin_role_of(st, p)
                    .and_then(|r| roles.iter().position(|x| *x == r))
                    .is_none_or(|i| mask & (1 << i) != 0)
            });
            sets.push(set_of(chosen.map(|p| (*p).clone()))?);
        }
        Ok(ActionSets { roles, sets })
    }

    pub(crate) fn pick(&self, held: u16) -> Option<&PolicySet> {
        let mut mask = 0usize;
        for (i, r) in self.roles.iter().enumerate() {
            if held & (1 << r) != 0 {
                mask |= 1 << i;
            }
        }
        self.sets.get(mask)
    }
}

/// The built-in role a policy is for (`principal [is T] in Role::"<built-in>"`), if any.
pub(crate) fn builtin_role_of(st: &Statics, p: &Policy) -> Option<u8> {
    let uid = match p.principal_constraint() {
        PrincipalConstraint::In(uid) | PrincipalConstraint::IsIn(_, uid) => uid,
        _ => return None,
    };
    if uid.type_name() != st.ty(Ty::Role) {
        return None;
    }
    builtin_index(uid.id().unescaped())
}

pub(crate) fn builtin_index(role: &str) -> Option<u8> {
    BUILTIN_ROLES
        .iter()
        .position(|r| *r == role)
        .and_then(|i| u8::try_from(i).ok())
}

/// Whether a policy's scope can match requests for this action and principal kind.
pub(crate) fn can_apply(st: &Statics, p: &Policy, ai: usize, kind: usize) -> bool {
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

/// The policy as it acts on requests for action `ai`: an `action in [list]` scope that
/// includes `ai` becomes `action == Action::"<ai>"`, which is equivalent for those requests and
/// much cheaper for Cedar to evaluate (it rebuilds and searches the list on every request).
/// Only used in sets that serve action `ai` alone; the policy keeps its id and annotations.
pub(crate) fn specialize(st: &Statics, p: &Policy, ai: usize) -> Result<Policy, PolicyError> {
    // `action in Action::"group"` or `in [one]` is a single ancestor check: keep it.
    if !matches!(p.action_constraint(), ActionConstraint::In(list) if list.len() > 1) {
        return Ok(p.clone());
    }
    let internal = |e: String| PolicyError::Internal(format!("specializing {}: {e}", p.id()));
    let mut json = p.to_json().map_err(|e| internal(e.to_string()))?;
    let action = st
        .action_uids
        .get(ai)
        .ok_or_else(|| internal("no such action".to_string()))?;
    let obj = json
        .as_object_mut()
        .ok_or_else(|| internal("not an object".to_string()))?;
    obj.insert(
        "action".to_string(),
        serde_json::json!({"op": "==", "entity": {"type": "Action", "id": action.id().unescaped()}}),
    );
    Policy::from_json(Some(p.id().clone()), json).map_err(|e| internal(e.to_string()))
}

pub(crate) fn set_of(policies: impl IntoIterator<Item = Policy>) -> Result<PolicySet, PolicyError> {
    PolicySet::from_policies(policies).map_err(|e| PolicyError::Internal(e.to_string()))
}
