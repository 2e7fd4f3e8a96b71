//! Every authorization decision of Enclave, made by [Cedar](https://www.cedarpolicy.com).
//!
//! The crate is pure: no IO, no clock (time is an argument), no global state but the parsed
//! schema and built-in policies. The application calls [`PolicyEngine::decide`] from its single
//! chokepoint and rebuilds a [`Snapshot`] whenever users, groups, projects, bindings, workloads
//! or policies change.
//!
//! # Model
//!
//! - **Schema.** `schema/enclave.cedarschema` declares the entity types (User, Group, Role,
//!   Workload, Project, Platform, Secret, Dataset, Policy, AuditTrail, Template, Token), one
//!   Cedar action per [`enclave_core::authz::Action`] with the principal and resource types it
//!   applies to (project-scoped actions also apply to `Project`, to ask "may X in project P"),
//!   action groups (`reads`, `writes`, `identity`, `projects`, `governance`, `project_data`)
//!   and the request context (`source_ip`, `now`, `hour_utc`, `weekday`, `mfa`,
//!   `auth_method`, `read_only`, `token_limited`, `token_projects`, `project`, and a few
//!   optional facts the application may add). Custom policies are validated strictly against
//!   it; every request is checked against it.
//! - **Roles are parents.** Built-in roles are Cedar policies on `principal in Role::"<role>"`
//!   (`policies/*.cedar`, ids `builtin.<role>[.<part>]`). For each request the engine builds a
//!   small entity slice in which the principal's parents are its groups (transitively, computed
//!   once per snapshot; cycles are harmless) plus `Role::"<role>"` for exactly the roles it
//!   holds *in the request's scope* at `now`: platform-wide bindings always, project bindings
//!   only when the resource is in that project, and only bindings with
//!   `starts_at <= now < expires_at`. A user holding any role in the resource's project is
//!   also `in` that `Project` (membership). A user's admin flag is the role `platform_admin`.
//! - **Scope filtering.** A project's resources are `in` their `Project` entity; the slice holds
//!   only the principal, the resource, its project and the action, so a role held in one
//!   project cannot reach another project's resources.
//! - **Prefiltered policy sets.** Cedar evaluates every policy it is handed (and rebuilds each
//!   policy's condition to do so). A snapshot therefore keeps, per action and principal kind
//!   (user or workload), only the built-in and platform-wide custom policies whose scope can
//!   match; those are split further by the built-in roles held, since a policy on
//!   `principal in Role::"r"` can only match a principal holding `r` in scope; and a long
//!   `action in [...]` list is specialized to `action == <that action>` (equivalent within a set
//!   that serves one action, and far cheaper). Each project's own custom policies form sets of
//!   their own, evaluated only for that project's resources. The answers are combined with
//!   Cedar's semantics (a satisfied forbid anywhere denies). A typical request evaluates 4
//!   policies.
//! - **Slices** are built from Cedar's core types (`cedar-policy-core`, the exact version
//!   `cedar-policy` pins): parents are given already transitively closed (debug builds let
//!   Cedar check that), the context is a record value, and `ip(...)`/`datetime(...)` values are
//!   memoized per thread (same input, same value). Only groups some policy names travel with
//!   the principal; a group can matter in no other way (besides being the resource itself).
//! - **Custom policies** ([`validate_custom`]): exactly one static policy, strictly valid; a
//!   project's policy must say `resource in Project::"<p>"` (or `==` one of its entities) and
//!   may mention no other project. Their ids are `custom.<id>`.
//!
//! # Invariants
//!
//! - Default deny; forbid beats permit; any evaluation or request error denies.
//! - Credential limits and disabled accounts are built-in forbids, so no permit (built-in or
//!   custom) overrides them: a read-only token only reads, a project-limited token does nothing
//!   outside its projects but `project.list` and `self.read` on itself.
//! - Workloads act with their own roles and never outside their own project.
//! - A project's custom policies never affect another project's resources.
//! - Nothing is parsed per request; replacing the snapshot never blocks decisions.
//!
//! # Use
//!
//! ```
//! use enclave_policy::*;
//! use enclave_core::{authz::Action, Timestamp};
//!
//! let dir = Directory {
//!     users: vec![UserRecord { id: "u1".into(), username: "ada".into(), platform_admin: false,
//!                              disabled: false, groups: vec!["data-team".into()] }],
//!     groups: vec![GroupRecord { id: "data-team".into(), parents: vec![] }],
//!     projects: vec![ProjectRecord { name: "fraud".into(), ..Default::default() }],
//!     bindings: vec![BindingRecord { id: "b1".into(), subject: Subject::Group("data-team".into()),
//!                    role: "project_owner".into(), scope: Scope::Project("fraud".into()),
//!                    starts_at: None, expires_at: None, origin: "membership".into() }],
//!     ..Default::default()
//! };
//! let engine = PolicyEngine::new(Snapshot::build(dir)?);
//! let req = Request {
//!     principal: Principal::User("u1".into()),
//!     credential: Credential::full(AuthMethod::Session, true),
//!     source_ip: "10.1.2.3".parse().unwrap(),
//!     action: Action::ProjectUpdate,
//!     resource: Resource::Project("fraud".into()),
//!     extra: None,
//! };
//! let d = engine.decide(&req, Timestamp(1_800_000_000));
//! assert!(d.allowed);
//! assert_eq!(d.explain(), "permitted by builtin.project_owner \
//!     (role project_owner via group data-team on project fraud)");
//! # Ok::<(), PolicyError>(())
//! ```

mod custom;
mod engine;
mod error;
mod model;
mod sets;
mod snapshot;
mod statics;

pub use custom::validate_custom;
pub use engine::PolicyEngine;
pub use error::{PolicyError, Position};
pub use model::{
    AppliedRole, AuthMethod, BindingRecord, Credential, CustomPolicyRecord, Decision, Directory,
    GroupRecord, Principal, ProjectRecord, Request, Resource, Scope, Subject, UserRecord,
    WorkloadKind, WorkloadRecord,
};
pub use snapshot::Snapshot;
pub use statics::{BUILTIN_POLICY_FILES, SCHEMA_TEXT};

/// The built-in roles, platform-wide ones first.
pub const BUILTIN_ROLES: [&str; 11] = [
    "platform_admin",
    "security_auditor",
    "project_owner",
    "data_scientist",
    "viewer",
    "support",
    "project_admin",
    "notebook_execution",
    "job_execution",
    "endpoint_hosting",
    "endpoint_invocation",
];
