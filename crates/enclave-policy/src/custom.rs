//! Custom policies: parsing, strict validation and the rules about their scope.

use crate::error::{PolicyError, Position};
use crate::model::Scope;
use crate::statics::{statics, Statics, Ty};
use cedar_policy::{EntityUid, Policy, PolicyId, PolicySet, ResourceConstraint, ValidationMode};
use enclave_core::access::MAX_POLICY_BYTES;
use miette::Diagnostic;
use std::str::FromStr;

/// Checks a custom policy before it is stored: exactly one static Cedar policy, strictly valid
/// against Enclave's schema; for a project's policy, its resource scope is that project
/// (`resource in Project::"<p>"`, `resource is T in Project::"<p>"`, or `resource ==` one of
/// the project's entities whose id names it) and it mentions no other project; no `@id`
/// annotation that looks like a built-in one. Errors carry the parser's or validator's message
/// and the line:column they point at.
pub fn validate_custom(text: &str, scope: &Scope) -> Result<(), PolicyError> {
    let st = statics()?;
    parse_custom(&st, "draft", text, scope).map(|_| ())
}

/// Parses and checks a custom policy, giving it the id `custom.<id>`.
pub(crate) fn parse_custom(
    st: &Statics,
    id: &str,
    text: &str,
    scope: &Scope,
) -> Result<Policy, PolicyError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::NotAllowed {
            message: format!("a custom policy has at most {MAX_POLICY_BYTES} bytes"),
            position: None,
        });
    }
    let set = PolicySet::from_str(text).map_err(|e| syntax(text, &e))?;
    if set.num_of_templates() > 0 {
        return Err(PolicyError::NotAllowed {
            message: "templates (`?principal`, `?resource`) are not supported; write a static \
                      policy"
                .to_string(),
            position: text.find('?').map(|o| Position::at(text, o)),
        });
    }
    let n = set.num_of_policies();
    if n != 1 {
        return Err(PolicyError::NotAllowed {
            message: format!(
                "a custom policy holds exactly one `permit` or `forbid`; this text has {n}"
            ),
            position: None,
        });
    }
    let policy = Policy::parse(Some(PolicyId::new(format!("custom.{id}"))), text)
        .map_err(|e| syntax(text, &e))?;
    if let Some(a) = policy.annotation("id") {
        if a.trim().to_ascii_lowercase().starts_with("builtin") {
            return Err(PolicyError::NotAllowed {
                message: format!(
                    "@id(\"{a}\") looks like a built-in policy's id; custom policies are \
                     named custom.<id>"
                ),
                position: text.find("@id").map(|o| Position::at(text, o)),
            });
        }
    }

    let mut one = PolicySet::new();
    one.add(policy.clone())
        .map_err(|e| PolicyError::Internal(e.to_string()))?;
    let result = st.validator.validate(&one, ValidationMode::Strict);
    if let Some(e) = result.validation_errors().next() {
        return Err(PolicyError::Invalid {
            message: message_of(e),
            position: first_label(text, e),
        });
    }

    if let Scope::Project(project) = scope {
        check_project_scope(st, &policy, project, text)?;
    }
    Ok(policy)
}

fn message_of(e: &dyn Diagnostic) -> String {
    match e.help() {
        Some(h) => format!("{e} ({h})"),
        None => e.to_string(),
    }
}

fn first_label(text: &str, e: &dyn Diagnostic) -> Option<Position> {
    let mut labels = e.labels()?;
    labels.next().map(|l| Position::at(text, l.offset()))
}

fn syntax(text: &str, e: &cedar_policy::ParseErrors) -> PolicyError {
    let first = e.iter().next();
    let message = match first {
        Some(p) => message_of(p),
        None => e.to_string(),
    };
    let position = first.and_then(|p| first_label(text, p));
    PolicyError::Syntax { message, position }
}

/// The project an entity id names, for the types whose ids carry it.
pub(crate) fn entity_project<'a>(st: &Statics, uid: &'a EntityUid) -> Option<&'a str> {
    let ty = uid.type_name();
    let id = uid.id().unescaped();
    if ty == st.ty(Ty::Project) {
        Some(id)
    } else if ty == st.ty(Ty::Secret) || ty == st.ty(Ty::Dataset) {
        id.split_once('/').map(|(p, _)| p)
    } else if ty == st.ty(Ty::AuditTrail) {
        id.strip_prefix("project/")
    } else {
        None
    }
}

fn check_project_scope(
    st: &Statics,
    policy: &Policy,
    project: &str,
    text: &str,
) -> Result<(), PolicyError> {
    let project_uid = st.uid(Ty::Project, project);
    let scoped = match policy.resource_constraint() {
        ResourceConstraint::In(uid) | ResourceConstraint::IsIn(_, uid) => uid == project_uid,
        ResourceConstraint::Eq(uid) => entity_project(st, &uid) == Some(project),
        ResourceConstraint::Any | ResourceConstraint::Is(_) => false,
    };
    if !scoped {
        return Err(PolicyError::NotAllowed {
            message: format!(
                "a policy of project {project} applies only to that project's resources: its \
                 scope must say `resource in Project::\"{project}\"` (or `resource is T in \
                 Project::\"{project}\"`, or `resource ==` a secret, dataset or audit trail of \
                 {project})"
            ),
            position: text.find("resource").map(|o| Position::at(text, o)),
        });
    }
    for uid in policy.entity_literals() {
        if let Some(other) = entity_project(st, &uid) {
            if other != project {
                let needle = format!("\"{}\"", uid.id().unescaped());
                return Err(PolicyError::NotAllowed {
                    message: format!(
                        "a policy of project {project} may not mention another project's \
                         entity {uid}"
                    ),
                    position: text.find(&needle).map(|o| Position::at(text, o)),
                });
            }
        }
    }
    Ok(())
}
