//! Governance use cases: custom Cedar policies, role bindings, and explaining decisions.
//!
//! Custom policies are validated strictly against the schema before they are stored; a project
//! owner's policy is confined to its project's resources. Every change is audited with the
//! policy text, and takes effect for the next request (the snapshot is rebuilt on commit).

use crate::chokepoint::{label, Caller};
use crate::secrets::{self, plausible_id};
use crate::{detail, App};
use enclave_core::access::{CustomPolicy, RoleBinding, SubjectKind, MAX_POLICY_BYTES};
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::{names, Error, ErrorCode, Result, Timestamp};
use enclave_policy::{
    AuthMethod, Credential, Decision, Principal, Request, Resource, Scope, WorkloadKind,
    BUILTIN_ROLES,
};
use serde_json::{Map, Value};

/// Roles only a time-bound, approved grant gives; they cannot be bound directly.
const GRANT_ONLY_ROLES: [&str; 2] = ["support", "project_admin"];
/// Roles that only mean something platform-wide.
const PLATFORM_ROLES: [&str; 2] = ["platform_admin", "security_auditor"];

/// A new custom policy.
#[derive(Debug, Clone)]
pub struct NewPolicy {
    /// Short name, unique in its scope.
    pub name: String,
    /// Project, or `None` for a platform-wide policy.
    pub project: Option<String>,
    /// Free text.
    pub description: String,
    /// Cedar text.
    pub body: String,
}

/// A simulated request for explain: who, what, on what, in which circumstances.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// `alice`, `user:alice` or `workload:<id>`.
    pub principal: String,
    /// Action name, e.g. `project.read`.
    pub action: String,
    /// Resource, e.g. `platform`, `project:fraud`, `user:bob`, `secret:fraud/db-password`.
    pub resource: String,
    /// Circumstances: `source_ip`, `mfa`, `auth_method`, `read_only`, `token_projects`, plus the
    /// schema's optional context fields.
    pub context: Option<Map<String, Value>>,
}

/// The answer of explain.
#[derive(Debug, Clone)]
pub struct CheckAnswer {
    /// The decision with the policies that made it.
    pub decision: Decision,
    /// One sentence, e.g. `permitted by builtin.project_owner (role project_owner on project
    /// fraud)` or `no policy permits`.
    pub explanation: String,
}

fn scope_resource(project: Option<&str>) -> Resource {
    match project {
        Some(p) => Resource::Project(p.to_string()),
        None => Resource::Platform,
    }
}

fn scope_label(project: Option<&str>, what: &str) -> String {
    match project {
        Some(p) => label("project", &format!("{p}/{what}")),
        None => label("platform", what),
    }
}

impl App {
    /// Authorizes `action` on a scope (a project or the platform); a project the caller may not
    /// read reads as not found.
    async fn authorize_scope(
        &self,
        caller: &Caller,
        action: Action,
        project: Option<&str>,
        what: &str,
    ) -> Result<()> {
        if let Some(p) = project {
            names::slug("project", p).map_err(|_| Error::not_found("project", p))?;
            let visible = self
                .decide(caller, Action::ProjectRead, &scope_resource(project), None)
                .await
                .allowed;
            self.authorize(
                caller,
                action,
                &scope_resource(project),
                &scope_label(project, what),
                !visible,
            )
            .await?;
            if self.store.project_by_name(p).await?.is_none() {
                return Err(Error::not_found("project", p));
            }
            Ok(())
        } else {
            self.authorize(
                caller,
                action,
                &Resource::Platform,
                &scope_label(None, what),
                false,
            )
            .await
        }
    }

    /// The store id of `project` (`None` for the platform scope).
    pub(crate) async fn project_id(&self, project: Option<&str>) -> Result<Option<String>> {
        match project {
            Some(p) => Ok(Some(
                self.store
                    .project_by_name(p)
                    .await?
                    .ok_or_else(|| Error::not_found("project", p))?
                    .id,
            )),
            None => Ok(None),
        }
    }

    /// Lists the custom policies of a project, or the platform-wide ones.
    pub async fn list_policies(
        &self,
        caller: &Caller,
        project: Option<&str>,
    ) -> Result<Vec<CustomPolicy>> {
        self.authorize_scope(caller, Action::PolicyList, project, "policies")
            .await?;
        Ok(self.store.list_policies(project).await?)
    }

    /// Loads a custom policy and authorizes `action` on it; unknown and invisible policies read
    /// alike as not found.
    async fn find_policy(&self, caller: &Caller, action: Action, id: &str) -> Result<CustomPolicy> {
        let policy = if plausible_id(id) {
            self.store.policy(id).await?
        } else {
            None
        };
        let resource = Resource::Policy {
            id: id.to_string(),
            project: policy.as_ref().and_then(|p| p.project.clone()),
        };
        // Those who may read the policy learn that they may not change it; others that it
        // does not exist.
        let hide = policy.is_none()
            || action == Action::PolicyRead
            || !self
                .decide(caller, Action::PolicyRead, &resource, None)
                .await
                .allowed;
        self.authorize(caller, action, &resource, &label("policy", id), hide)
            .await?;
        policy.ok_or_else(|| Error::not_found("policy", id))
    }

    /// Reads one custom policy.
    pub async fn get_policy(&self, caller: &Caller, id: &str) -> Result<CustomPolicy> {
        self.find_policy(caller, Action::PolicyRead, id).await
    }

    /// Adds a custom policy after validating it strictly against the schema.
    pub async fn create_policy(&self, caller: &Caller, input: NewPolicy) -> Result<CustomPolicy> {
        let project = input.project.as_deref();
        self.authorize_scope(caller, Action::PolicyCreate, project, &input.name)
            .await?;
        names::slug("name", &input.name)?;
        names::text("description", &input.description, false)?;
        validate_body(&input.body, project)?;
        let project_id = self.project_id(project).await?;
        let now = self.now();
        let policy = CustomPolicy {
            id: secrets::new_id("pol")?,
            name: input.name,
            project: input.project.clone(),
            description: input.description,
            body: input.body,
            created_by: caller.principal.username.clone(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.write().await?;
        tx.insert_policy(&policy, project_id.as_deref())
            .await
            .map_err(|e| match e {
                enclave_store::StoreError::Conflict => Error::new(
                    ErrorCode::Conflict,
                    format!("a policy named '{}' already exists here", policy.name),
                )
                .with("field", "name"),
                e => e.into(),
            })?;
        let rec = caller.record(
            self,
            Action::PolicyCreate.as_str(),
            label("policy", &policy.id),
            project,
            Outcome::Success,
            detail!("name" => policy.name.clone(), "body" => policy.body.clone()),
        );
        self.commit(tx, rec).await?;
        Ok(policy)
    }

    /// Replaces a custom policy's text (and description, if given).
    pub async fn update_policy(
        &self,
        caller: &Caller,
        id: &str,
        description: Option<&str>,
        body: Option<&str>,
    ) -> Result<CustomPolicy> {
        let mut policy = self.find_policy(caller, Action::PolicyUpdate, id).await?;
        if let Some(d) = description {
            names::text("description", d, false)?;
            policy.description = d.to_string();
        }
        if let Some(b) = body {
            validate_body(b, policy.project.as_deref())?;
            policy.body = b.to_string();
        }
        policy.updated_at = self.now();
        let mut tx = self.store.write().await?;
        if tx.update_policy(&policy).await? == 0 {
            return Err(Error::not_found("policy", id));
        }
        let rec = caller.record(
            self,
            Action::PolicyUpdate.as_str(),
            label("policy", id),
            policy.project.as_deref(),
            Outcome::Success,
            detail!("name" => policy.name.clone(), "body" => policy.body.clone()),
        );
        self.commit(tx, rec).await?;
        Ok(policy)
    }

    /// Deletes a custom policy.
    pub async fn delete_policy(&self, caller: &Caller, id: &str) -> Result<()> {
        let policy = self.find_policy(caller, Action::PolicyDelete, id).await?;
        let mut tx = self.store.write().await?;
        if tx.delete_policy(id).await? == 0 {
            return Err(Error::not_found("policy", id));
        }
        let rec = caller.record(
            self,
            Action::PolicyDelete.as_str(),
            label("policy", id),
            policy.project.as_deref(),
            Outcome::Success,
            detail!("name" => policy.name, "body" => policy.body),
        );
        self.commit(tx, rec).await
    }

    /// Explains what the policy decides for a simulated request (`policy check`).
    pub async fn check_policy(&self, caller: &Caller, check: CheckRequest) -> Result<CheckAnswer> {
        let resource = self.parse_resource(&check.resource).await?;
        self.authorize_scope(
            caller,
            Action::PolicyCheck,
            resource.project(),
            "policy-check",
        )
        .await?;
        let principal = self.parse_principal(&check.principal).await?;
        let action = Action::parse(&check.action).ok_or_else(|| {
            Error::invalid(
                "action",
                format!(
                    "unknown action '{}'; see `enclave policy actions` for the list",
                    check.action.chars().take(64).collect::<String>()
                ),
            )
        })?;
        let (credential, source_ip, extra) = simulated_context(check.context)?;
        let req = Request {
            principal,
            credential,
            source_ip,
            action,
            resource,
            extra,
        };
        let decision = self.policy_engine().decide(&req, self.now());
        let explanation = decision.explain();
        Ok(CheckAnswer {
            decision,
            explanation,
        })
    }

    /// The actions `principal` may take in `project` now, with a full session credential
    /// (`policy can`).
    pub async fn can(
        &self,
        caller: &Caller,
        principal: &str,
        project: &str,
    ) -> Result<Vec<Action>> {
        self.authorize_scope(caller, Action::PolicyCheck, Some(project), "policy-check")
            .await?;
        let principal = self.parse_principal(principal).await?;
        Ok(self.policy_engine().can(
            &principal,
            &Credential::full(AuthMethod::Password, false),
            crate::access::source_ip("local"),
            project,
            self.now(),
        ))
    }

    /// Lists role bindings of a project, or the platform-wide ones.
    pub async fn list_bindings(
        &self,
        caller: &Caller,
        project: Option<&str>,
    ) -> Result<Vec<RoleBinding>> {
        self.authorize_scope(caller, Action::RoleList, project, "roles")
            .await?;
        Ok(self.store.list_bindings(project).await?)
    }

    /// Binds a built-in role to a user, group or workload, platform-wide or on one project,
    /// optionally until `expires_at`.
    pub async fn bind_role(
        &self,
        caller: &Caller,
        subject: &str,
        role: &str,
        project: Option<&str>,
        expires_at: Option<Timestamp>,
    ) -> Result<RoleBinding> {
        let target = Some(serde_json::json!({ "target_role": role }));
        let resource = scope_resource(project);
        if let Some(p) = project {
            names::slug("project", p).map_err(|_| Error::not_found("project", p))?;
        }
        let visible = project.is_none()
            || self
                .decide(caller, Action::ProjectRead, &resource, None)
                .await
                .allowed;
        self.authorize_with(
            caller,
            Action::RoleBind,
            &resource,
            target,
            &scope_label(project, "roles"),
            !visible,
        )
        .await?;
        if !BUILTIN_ROLES.contains(&role) {
            return Err(Error::invalid(
                "role",
                format!("unknown role; one of: {}", bindable_roles().join(", ")),
            ));
        }
        if GRANT_ONLY_ROLES.contains(&role) {
            return Err(Error::invalid(
                "role",
                "support and project_admin access comes only from a time-bound grant: use `enclave grants request`",
            ));
        }
        if project.is_some() && PLATFORM_ROLES.contains(&role) {
            return Err(Error::invalid(
                "role",
                "this role is platform-wide: bind it without a project",
            ));
        }
        let now = self.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let (subject_kind, subject_id, subject_name) = self.parse_subject(subject).await?;
        let project_id = self.project_id(project).await?;
        let binding = RoleBinding {
            id: secrets::new_id("rb")?,
            subject_kind,
            subject_id,
            subject_name,
            role: role.to_string(),
            project: project.map(str::to_string),
            expires_at,
            created_by: caller.principal.username.clone(),
            created_at: now,
        };
        let mut tx = self.store.write().await?;
        tx.insert_binding(&binding, project_id.as_deref()).await?;
        let mut d = detail!(
            "role" => role,
            "subject" => format!("{}:{}", subject_kind.as_str(), binding.subject_name),
        );
        if let Some(e) = expires_at {
            d.insert("expires_at".into(), e.rfc3339().into());
        }
        let rec = caller.record(
            self,
            Action::RoleBind.as_str(),
            label("role-binding", &binding.id),
            project,
            Outcome::Success,
            d,
        );
        self.commit(tx, rec).await?;
        Ok(binding)
    }

    /// Removes a role binding.
    pub async fn unbind_role(&self, caller: &Caller, id: &str) -> Result<()> {
        let binding = if plausible_id(id) {
            self.store.binding(id).await?
        } else {
            None
        };
        let project = binding.as_ref().and_then(|b| b.project.clone());
        let resource = scope_resource(project.as_deref());
        let target = binding
            .as_ref()
            .map(|b| serde_json::json!({ "target_role": b.role }));
        self.authorize_with(
            caller,
            Action::RoleUnbind,
            &resource,
            target,
            &label("role-binding", id),
            true,
        )
        .await?;
        let binding = binding.ok_or_else(|| Error::not_found("role-binding", id))?;
        let mut tx = self.store.write().await?;
        if tx.delete_binding(id).await? == 0 {
            return Err(Error::not_found("role-binding", id));
        }
        let rec = caller.record(
            self,
            Action::RoleUnbind.as_str(),
            label("role-binding", id),
            binding.project.as_deref(),
            Outcome::Success,
            detail!(
                "role" => binding.role,
                "subject" => format!("{}:{}", binding.subject_kind.as_str(), binding.subject_name),
            ),
        );
        self.commit(tx, rec).await
    }

    /// `alice`, `user:alice` or `workload:<id>` as a policy principal.
    async fn parse_principal(&self, s: &str) -> Result<Principal> {
        let (kind, name) = s.split_once(':').unwrap_or(("user", s));
        match kind {
            "user" => {
                let u = self
                    .find_user(name)
                    .await
                    .map_err(|_| Error::invalid("principal", format!("no user named '{name}'")))?;
                Ok(Principal::User(u.id))
            }
            "workload" if plausible_id(name) => Ok(Principal::Workload(name.to_string())),
            _ => Err(Error::invalid(
                "principal",
                "write a username, user:NAME or workload:ID",
            )),
        }
    }

    /// `user:alice`, `group:data-team` or `workload:<id>` as a binding subject.
    async fn parse_subject(&self, s: &str) -> Result<(SubjectKind, String, String)> {
        let bad = || Error::invalid("subject", "write user:NAME, group:NAME or workload:ID");
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        match SubjectKind::parse(kind).ok_or_else(bad)? {
            SubjectKind::User => {
                let u = self
                    .find_user(name)
                    .await
                    .map_err(|_| Error::invalid("subject", format!("no user named '{name}'")))?;
                Ok((SubjectKind::User, u.id, u.username))
            }
            SubjectKind::Group => {
                let g = if names::slug("subject", name).is_ok() {
                    self.store.group_by_name(name).await?
                } else {
                    None
                };
                let g =
                    g.ok_or_else(|| Error::invalid("subject", format!("no group named '{name}'")))?;
                Ok((SubjectKind::Group, g.id, g.name))
            }
            SubjectKind::Workload => {
                if !plausible_id(name) {
                    return Err(bad());
                }
                Ok((SubjectKind::Workload, name.to_string(), name.to_string()))
            }
        }
    }

    /// `platform`, `project:P`, `user:NAME`, `group:NAME`, `token:NAME`, `policy:ID`,
    /// `secret:P/NAME`, `dataset:P/NAME`, `notebook:P/ID`, `job:P/ID`, `endpoint:P/ID`,
    /// `audit`, `audit:P` or `template:NAME` as a policy resource.
    async fn parse_resource(&self, s: &str) -> Result<Resource> {
        let bad = || {
            Error::invalid(
                "resource",
                "write platform, project:P, user:NAME, group:NAME, token:USER, policy:ID, secret:P/NAME, dataset:P/NAME, notebook:P/ID, job:P/ID, endpoint:P/ID, audit, audit:P or template:NAME",
            )
        };
        if s == "platform" {
            return Ok(Resource::Platform);
        }
        if s == "audit" {
            return Ok(Resource::AuditTrail { project: None });
        }
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let in_project = |rest: &str| -> Result<(String, String)> {
            let (p, n) = rest.split_once('/').ok_or_else(bad)?;
            names::slug("resource", p)?;
            if n.is_empty() || n.len() > 128 {
                return Err(bad());
            }
            Ok((p.to_string(), n.to_string()))
        };
        let workload = |kind: WorkloadKind, rest: &str| -> Result<Resource> {
            let (project, id) = in_project(rest)?;
            Ok(Resource::Workload {
                id,
                project,
                kind,
                owner: None,
            })
        };
        match kind {
            "project" => {
                names::slug("resource", rest)?;
                Ok(Resource::Project(rest.to_string()))
            }
            "audit" => {
                names::slug("resource", rest)?;
                Ok(Resource::AuditTrail {
                    project: Some(rest.to_string()),
                })
            }
            "user" | "token" => {
                let u = self
                    .find_user(rest)
                    .await
                    .map_err(|_| Error::invalid("resource", format!("no user named '{rest}'")))?;
                Ok(if kind == "user" {
                    Resource::User(u.id)
                } else {
                    Resource::Token { owner: u.id }
                })
            }
            "group" => {
                let g = self.store.group_by_name(rest).await?.ok_or_else(|| {
                    Error::invalid("resource", format!("no group named '{rest}'"))
                })?;
                Ok(Resource::Group(g.id))
            }
            "policy" => {
                let p = if plausible_id(rest) {
                    self.store.policy(rest).await?
                } else {
                    None
                };
                let p = p.ok_or_else(|| Error::invalid("resource", "no such policy"))?;
                Ok(Resource::Policy {
                    id: p.id,
                    project: p.project,
                })
            }
            "secret" => {
                let (project, name) = in_project(rest)?;
                Ok(Resource::Secret {
                    name,
                    project,
                    owner: None,
                })
            }
            "dataset" => {
                let (project, name) = in_project(rest)?;
                Ok(Resource::Dataset {
                    name,
                    project,
                    owner: None,
                })
            }
            "notebook" => workload(WorkloadKind::Notebook, rest),
            "job" => workload(WorkloadKind::Job, rest),
            "endpoint" => workload(WorkloadKind::Endpoint, rest),
            "template" => {
                names::slug("resource", rest)?;
                Ok(Resource::Template(rest.to_string()))
            }
            _ => Err(bad()),
        }
    }
}

/// The roles an admin or project owner can bind directly.
pub fn bindable_roles() -> Vec<&'static str> {
    BUILTIN_ROLES
        .iter()
        .copied()
        .filter(|r| !GRANT_ONLY_ROLES.contains(r))
        .collect()
}

fn validate_body(body: &str, project: Option<&str>) -> Result<()> {
    if body.trim().is_empty() {
        return Err(Error::invalid("body", "write one Cedar policy"));
    }
    if body.len() > MAX_POLICY_BYTES {
        return Err(Error::invalid(
            "body",
            format!("at most {MAX_POLICY_BYTES} bytes"),
        ));
    }
    let scope = match project {
        Some(p) => Scope::Project(p.to_string()),
        None => Scope::Platform,
    };
    enclave_policy::validate_custom(body, &scope).map_err(|e| {
        let mut err = Error::invalid("body", e.to_string());
        if let Some(pos) = e.position() {
            err = err.with("line", pos.line).with("column", pos.column);
        }
        err
    })
}

/// The credential, source address and extra context of a simulated request.
fn simulated_context(
    context: Option<Map<String, Value>>,
) -> Result<(Credential, std::net::IpAddr, Option<Value>)> {
    let mut credential = Credential::full(AuthMethod::Password, false);
    let mut ip = crate::access::source_ip("local");
    let Some(mut ctx) = context else {
        return Ok((credential, ip, None));
    };
    let bad = |field: &str, msg: &str| Error::invalid(&format!("context.{field}"), msg.to_string());
    if let Some(v) = ctx.remove("source_ip") {
        ip = v
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("source_ip", "an IPv4 or IPv6 address"))?;
    }
    if let Some(v) = ctx.remove("mfa") {
        credential.mfa = v.as_bool().ok_or_else(|| bad("mfa", "true or false"))?;
    }
    if let Some(v) = ctx.remove("read_only") {
        credential.read_only = v
            .as_bool()
            .ok_or_else(|| bad("read_only", "true or false"))?;
    }
    if let Some(v) = ctx.remove("token_projects") {
        credential.token_projects = v
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| bad("token_projects", "a list of project names"))?;
    }
    if let Some(v) = ctx.remove("auth_method") {
        credential.method = match v.as_str() {
            Some("password") => AuthMethod::Password,
            Some("token") => AuthMethod::Token,
            Some("session") => AuthMethod::Session,
            Some("oidc") => AuthMethod::Oidc,
            Some("totp") => AuthMethod::Totp,
            Some("passkey") => AuthMethod::Passkey,
            Some("workload") => AuthMethod::Workload,
            _ => {
                return Err(bad(
                    "auth_method",
                    "one of password, token, session, oidc, totp, passkey, workload",
                ))
            }
        };
    }
    let extra = (!ctx.is_empty()).then_some(Value::Object(ctx));
    Ok((credential, ip, extra))
}
