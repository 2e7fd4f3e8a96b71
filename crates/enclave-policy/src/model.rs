//! The engine's inputs and outputs: the directory a snapshot is built from, the request of one
//! decision, and the decision.

use enclave_core::authz::Action;
use enclave_core::Timestamp;
use std::collections::BTreeMap;
use std::net::IpAddr;

// ---- directory -------------------------------------------------------------------------------

/// Where a role binding or custom policy applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Everywhere.
    Platform,
    /// One project (by name), and everything in it.
    Project(String),
}

/// A user account as the policy engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// User id (the Cedar id: `User::"<id>"`).
    pub id: String,
    /// Username, an attribute policies may read.
    pub username: String,
    /// The admin flag: holds `platform_admin` platform-wide.
    pub platform_admin: bool,
    /// A disabled account may do nothing (`builtin.forbid.disabled_account`).
    pub disabled: bool,
    /// Groups the user is directly in (nested groups count transitively).
    pub groups: Vec<String>,
}

/// A group and the groups it is directly in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Group id (`Group::"<id>"`; also what explanations show).
    pub id: String,
    /// Groups this group is a member of.
    pub parents: Vec<String>,
}

/// A project's facts that policies may use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectRecord {
    /// Project name (`Project::"<name>"`).
    pub name: String,
    /// Data classification, e.g. `"public"`, `"internal"`, `"restricted"`.
    pub classification: String,
    /// Project tags, as Cedar entity tags.
    pub tags: BTreeMap<String, String>,
    /// Whether access grants need an owner's approval.
    pub requires_approval: bool,
}

/// Who a binding gives a role to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A user, by id.
    User(String),
    /// Every member of a group (transitively), by group id.
    Group(String),
    /// A workload, by id.
    Workload(String),
}

/// A role held by a subject in a scope, possibly for a limited time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    /// Binding id (shown in explanations).
    pub id: String,
    /// Who holds the role.
    pub subject: Subject,
    /// Role name: a built-in one (see the crate docs) or one custom policies refer to.
    pub role: String,
    /// Where it applies.
    pub scope: Scope,
    /// It applies from this instant on (inclusive), if set.
    pub starts_at: Option<Timestamp>,
    /// It applies until this instant (exclusive), if set.
    pub expires_at: Option<Timestamp>,
    /// Where it comes from, e.g. `"membership"`, `"binding"`, `"grant:<id>"`.
    pub origin: String,
}

impl BindingRecord {
    /// Whether the binding applies at `now`: `starts_at <= now < expires_at`.
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.starts_at.is_none_or(|s| s <= now) && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What kind of workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// A notebook server.
    Notebook,
    /// A batch job.
    Job,
    /// A model endpoint.
    Endpoint,
}

impl WorkloadKind {
    /// The `kind` attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Notebook => "notebook",
            WorkloadKind::Job => "job",
            WorkloadKind::Endpoint => "endpoint",
        }
    }

    /// The built-in role a workload of this kind is normally bound to in its project (the
    /// engine does not bind it implicitly: the application adds the binding).
    pub fn default_role(self) -> &'static str {
        match self {
            WorkloadKind::Notebook => "notebook_execution",
            WorkloadKind::Job => "job_execution",
            WorkloadKind::Endpoint => "endpoint_hosting",
        }
    }
}

/// A workload as a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRecord {
    /// Workload id (`Workload::"<id>"`).
    pub id: String,
    /// The project it runs in; it never acts outside it.
    pub project: String,
    /// Its kind.
    pub kind: WorkloadKind,
    /// The user who launched it (an attribute; it never lends the workload its rights).
    pub owner: Option<String>,
}

/// A custom Cedar policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPolicyRecord {
    /// Id; the Cedar policy id is `custom.<id>`.
    pub id: String,
    /// Platform-wide, or limited to one project's resources.
    pub scope: Scope,
    /// Cedar text: exactly one static policy (see [`crate::validate_custom`]).
    pub text: String,
}

/// Everything a snapshot is built from: a consistent read of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// User accounts.
    pub users: Vec<UserRecord>,
    /// Groups.
    pub groups: Vec<GroupRecord>,
    /// Projects.
    pub projects: Vec<ProjectRecord>,
    /// Role bindings, grants included.
    pub bindings: Vec<BindingRecord>,
    /// Workloads that act as principals.
    pub workloads: Vec<WorkloadRecord>,
    /// Custom policies.
    pub policies: Vec<CustomPolicyRecord>,
}

// ---- request ---------------------------------------------------------------------------------

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A user, by id.
    User(String),
    /// A workload, by id.
    Workload(String),
}

/// How the principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Username and password.
    Password,
    /// Personal API token.
    Token,
    /// An existing browser or API session.
    Session,
    /// The organization's identity provider.
    Oidc,
    /// Password and TOTP code.
    Totp,
    /// A passkey (WebAuthn).
    Passkey,
    /// A workload's own credential.
    Workload,
}

impl AuthMethod {
    /// The `auth_method` context value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Token => "token",
            AuthMethod::Session => "session",
            AuthMethod::Oidc => "oidc",
            AuthMethod::Totp => "totp",
            AuthMethod::Passkey => "passkey",
            AuthMethod::Workload => "workload",
        }
    }
}

/// Facts about the credential of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// How the principal authenticated.
    pub method: AuthMethod,
    /// Whether a second factor was used.
    pub mfa: bool,
    /// A read-only token: only read actions (`builtin.forbid.read_only_token`).
    pub read_only: bool,
    /// A project-limited token's projects; empty means no limit
    /// (`builtin.forbid.token_outside_projects`).
    pub token_projects: Vec<String>,
}

impl Credential {
    /// A credential with the principal's full rights.
    pub fn full(method: AuthMethod, mfa: bool) -> Credential {
        Credential {
            method,
            mfa,
            read_only: false,
            token_projects: Vec::new(),
        }
    }
}

/// What the action applies to, with the facts the decision needs. Ask with the most specific
/// resource you have (the workload, not its project), since ownership rules look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// The platform: lists and creation of top-level objects, platform-wide policies and roles.
    Platform,
    /// A user account, by id.
    User(String),
    /// A group, by id.
    Group(String),
    /// A project, by name ("may X in project P").
    Project(String),
    /// A user's personal tokens.
    Token {
        /// The owner's user id.
        owner: String,
    },
    /// A custom policy.
    Policy {
        /// Its id.
        id: String,
        /// Its project, or `None` for a platform-wide one.
        project: Option<String>,
    },
    /// A secret.
    Secret {
        /// Its name.
        name: String,
        /// Its project.
        project: String,
        /// Who created it, if that matters.
        owner: Option<String>,
    },
    /// A notebook server, job or endpoint.
    Workload {
        /// Its id.
        id: String,
        /// Its project.
        project: String,
        /// Its kind.
        kind: WorkloadKind,
        /// Who launched it.
        owner: Option<String>,
    },
    /// A dataset.
    Dataset {
        /// Its name.
        name: String,
        /// Its project.
        project: String,
        /// Who created it, if that matters.
        owner: Option<String>,
    },
    /// The audit trail: the platform's whole (`None`) or a project's part.
    AuditTrail {
        /// The project, if limited to one.
        project: Option<String>,
    },
    /// An environment template, by name.
    Template(String),
}

impl Resource {
    /// The project the resource is in, which is the request's scope.
    pub fn project(&self) -> Option<&str> {
        match self {
            Resource::Project(p)
            | Resource::Secret { project: p, .. }
            | Resource::Workload { project: p, .. }
            | Resource::Dataset { project: p, .. } => Some(p),
            Resource::Policy { project, .. } | Resource::AuditTrail { project } => {
                project.as_deref()
            }
            Resource::Platform
            | Resource::User(_)
            | Resource::Group(_)
            | Resource::Token { .. }
            | Resource::Template(_) => None,
        }
    }
}

/// One authorization question.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Who asks.
    pub principal: Principal,
    /// With which credential.
    pub credential: Credential,
    /// From where.
    pub source_ip: IpAddr,
    /// To do what.
    pub action: Action,
    /// To what.
    pub resource: Resource,
    /// Extra context attributes (a JSON object) for the optional fields of the schema's
    /// `RequestContext` (`target_role`, `target_user`, `requester`, `grant_role`,
    /// `duration_secs`); entity values as `{"__entity": {"type": "User", "id": "…"}}`.
    /// Anything else, or a field the engine sets itself, makes the request fail (deny).
    pub extra: Option<serde_json::Value>,
}

// ---- decision --------------------------------------------------------------------------------

/// A role the principal held in the request's scope (one per binding that gave it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRole {
    /// Role name.
    pub role: String,
    /// The binding's origin label (`"membership"`, `"grant:<id>"`, `"admin flag"`, …).
    pub origin: String,
    /// The binding's id, if it came from one.
    pub binding: Option<String>,
    /// The group the principal holds it through, if not directly.
    pub via_group: Option<String>,
    /// Where the binding applies.
    pub scope: Scope,
    /// When it stops applying, if ever.
    pub expires_at: Option<Timestamp>,
}

impl AppliedRole {
    /// `role project_owner via group data-team on project fraud`.
    pub fn describe(&self) -> String {
        let mut s = format!("role {}", self.role);
        if let Some(g) = &self.via_group {
            s.push_str(" via group ");
            s.push_str(g);
        }
        match &self.scope {
            Scope::Platform => s.push_str(" platform-wide"),
            Scope::Project(p) => {
                s.push_str(" on project ");
                s.push_str(p);
            }
        }
        if !matches!(self.origin.as_str(), "membership" | "binding" | "") {
            s.push_str(", ");
            s.push_str(&self.origin);
        }
        if let Some(e) = self.expires_at {
            s.push_str(" until ");
            s.push_str(&e.rfc3339());
        }
        s
    }
}

/// The outcome of [`crate::PolicyEngine::decide`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Whether the action is allowed. Default deny; any evaluation error denies.
    pub allowed: bool,
    /// The policies that decided: the permits that allowed it, or the forbids that denied it
    /// (empty when nothing permitted).
    pub determining: Vec<String>,
    /// The roles the principal held in the request's scope.
    pub roles: Vec<AppliedRole>,
    /// Evaluation or request errors (each one denies).
    pub errors: Vec<String>,
}

impl Decision {
    pub(crate) fn error(message: String) -> Decision {
        Decision {
            allowed: false,
            determining: Vec::new(),
            roles: Vec::new(),
            errors: vec![message],
        }
    }

    /// A sentence for people and the audit trail, e.g. `permitted by builtin.project_owner
    /// (role project_owner via group data-team on project fraud)`, `forbidden by
    /// builtin.forbid.read_only_token`, or `no policy permits`.
    pub fn explain(&self) -> String {
        if !self.errors.is_empty() {
            return format!("denied on error: {}", self.errors.join("; "));
        }
        if self.determining.is_empty() {
            return if self.allowed {
                "permitted".to_string()
            } else {
                "no policy permits".to_string()
            };
        }
        let parts: Vec<String> = self
            .determining
            .iter()
            .map(|id| self.describe_policy(id))
            .collect();
        let verb = if self.allowed {
            "permitted by"
        } else {
            "forbidden by"
        };
        format!("{verb} {}", parts.join("; "))
    }

    fn describe_policy(&self, id: &str) -> String {
        let role = id
            .strip_prefix("builtin.")
            .map(|rest| rest.split('.').next().unwrap_or(rest));
        let held: Vec<String> = match role {
            Some(role) => self
                .roles
                .iter()
                .filter(|r| r.role == role)
                .map(AppliedRole::describe)
                .collect(),
            None => Vec::new(),
        };
        if held.is_empty() {
            id.to_string()
        } else {
            format!("{id} ({})", held.join(", "))
        }
    }
}
