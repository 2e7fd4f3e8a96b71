//! Secrets: named, versioned values held by a project (sealed with the project's data key) or
//! by one person (personal secrets, sealed with the platform key); listed by name and metadata
//! only; read one value at a time with their own permission, every read audited; and resolved
//! for a workload at start time under the workload's own role, as the environment variables
//! and files it declared.
//!
//! Invariants:
//! * A value is sealed before it reaches the store, bound to `secret:<secret id>:<version>`,
//!   so a ciphertext copied onto another secret or version does not open.
//! * No value is ever listed, logged, audited or echoed back; only its size.
//! * Every read of a value (by a person or for a workload) is in the audit trail before the
//!   value leaves this module.
//! * Personal secrets are their owner's alone (admins included: nobody else); a workload may
//!   receive its launcher's personal secrets, and only those its plan names.

use crate::chokepoint::{label, Caller};
use crate::keys::{key_error, project_scope, PLATFORM_SCOPE};
use crate::{detail, App, RequestMeta};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::authz::Action;
use enclave_core::secrets::{
    check_name, check_plan, check_value, ResolvedSecret, SecretMapping, SecretMeta,
    SecretVersionMeta, MAX_SECRETS_PER_OWNER, PERSONAL_PREFIX,
};
use enclave_core::{names, Error, Result};
use enclave_policy::{Resource, WorkloadKind};
use enclave_store::{Holder, WorkloadFact};
use zeroize::Zeroizing;

/// The associated data a secret version's ciphertext is bound to.
pub(crate) fn value_context(secret_id: &str, version: u32) -> Vec<u8> {
    format!("secret:{secret_id}:{version}").into_bytes()
}

/// One entry of a checked injection plan: which version of which secret goes where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// The mapping as declared.
    pub mapping: SecretMapping,
    /// The version a workload started now would receive.
    pub version: u32,
}

fn secret_resource(project: &str, name: &str) -> Resource {
    Resource::Secret {
        name: name.to_string(),
        project: project.to_string(),
        owner: None,
    }
}

/// A project name from a request: a slug, or "not found" (never echoing junk).
pub(crate) fn check_project(project: &str) -> Result<()> {
    names::slug("project", project).map_err(|_| Error::not_found("project", project))
}

/// Where secrets live, as the use cases address them.
#[derive(Debug, Clone, Copy)]
enum Place<'a> {
    /// A project, by name.
    Project(&'a str),
    /// The caller's own personal secrets.
    Mine,
}

/// A place resolved against the store: ids, key scope, and how records name it.
struct Resolved {
    holder_id: String,
    personal: bool,
    /// The project's name (for records and policy), `None` for personal secrets.
    project: Option<String>,
    /// Label prefix: `fraud` or `~olivia`.
    prefix: String,
    scope: String,
}

impl Resolved {
    fn holder(&self) -> Holder<'_> {
        if self.personal {
            Holder::Person(&self.holder_id)
        } else {
            Holder::Project(&self.holder_id)
        }
    }

    fn label(&self, name: &str) -> String {
        label("secret", &format!("{}/{name}", self.prefix))
    }
}

impl Place<'_> {
    /// The resource and label of the place itself (for lists), without touching the store.
    fn list_target(&self, caller: &Caller) -> Result<(Resource, String)> {
        match self {
            Place::Project(p) => {
                check_project(p)?;
                Ok((
                    Resource::Project(p.to_string()),
                    label("project", &format!("{p}/secrets")),
                ))
            }
            Place::Mine => Ok((
                Resource::User(caller.principal.user_id.clone()),
                label("secrets", &format!("~{}", caller.principal.username)),
            )),
        }
    }

    /// The resource and label of one secret here, without touching the store.
    fn target(&self, caller: &Caller, name: &str) -> Result<(Resource, String)> {
        match self {
            Place::Project(p) => {
                check_project(p)?;
                Ok((
                    secret_resource(p, name),
                    label("secret", &format!("{p}/{name}")),
                ))
            }
            Place::Mine => Ok((
                Resource::User(caller.principal.user_id.clone()),
                label("secret", &format!("~{}/{name}", caller.principal.username)),
            )),
        }
    }
}

impl App {
    async fn resolve_place(&self, caller: &Caller, place: Place<'_>) -> Result<Resolved> {
        match place {
            Place::Project(project) => {
                let p = self
                    .store
                    .project_by_name(project)
                    .await?
                    .ok_or_else(|| Error::not_found("project", project))?;
                Ok(Resolved {
                    scope: project_scope(&p.id),
                    holder_id: p.id,
                    personal: false,
                    project: Some(project.to_string()),
                    prefix: project.to_string(),
                })
            }
            Place::Mine => Ok(Resolved {
                holder_id: caller.principal.user_id.clone(),
                personal: true,
                project: None,
                prefix: format!("~{}", caller.principal.username),
                scope: PLATFORM_SCOPE.to_string(),
            }),
        }
    }

    async fn find_in(&self, place: &Resolved, name: &str) -> Result<SecretMeta> {
        let found = match check_name(name) {
            Err(_) => None,
            Ok(()) => self.store.secret(place.holder(), name).await?,
        };
        found.ok_or_else(|| Error::not_found("secret", &format!("{}/{name}", place.prefix)))
    }

    async fn list_in(&self, caller: &Caller, place: Place<'_>) -> Result<Vec<SecretMeta>> {
        let (resource, what) = place.list_target(caller)?;
        self.authorize(caller, Action::SecretList, &resource, &what, true)
            .await?;
        let r = self.resolve_place(caller, place).await?;
        Ok(self.store.list_secrets(r.holder()).await?)
    }

    async fn versions_in(
        &self,
        caller: &Caller,
        place: Place<'_>,
        name: &str,
    ) -> Result<(SecretMeta, Vec<SecretVersionMeta>)> {
        let (resource, what) = match place {
            // Metadata of a project's secret needs only the right to list them.
            Place::Project(p) => {
                check_project(p)?;
                (
                    Resource::Project(p.to_string()),
                    label("secret", &format!("{p}/{name}")),
                )
            }
            Place::Mine => place.target(caller, name)?,
        };
        self.authorize(caller, Action::SecretList, &resource, &what, true)
            .await?;
        let r = self.resolve_place(caller, place).await?;
        let meta = self.find_in(&r, name).await?;
        let versions = self.store.secret_versions(&meta.id).await?;
        Ok((meta, versions))
    }

    async fn set_in(
        &self,
        caller: &Caller,
        place: Place<'_>,
        name: &str,
        value: &[u8],
        description: Option<&str>,
    ) -> Result<SecretMeta> {
        let (resource, what) = place.target(caller, name)?;
        self.authorize(caller, Action::SecretWrite, &resource, &what, true)
            .await?;
        check_name(name)?;
        check_value(value)?;
        if let Some(d) = description {
            names::text("description", d, false)?;
        }
        let keys = self.keyring()?.clone();
        let r = self.resolve_place(caller, place).await?;
        let now = self.now();
        let size = u32::try_from(value.len()).map_err(|_| Error::internal())?;
        let mut tx = self.store.write().await?;
        let key = keys.active_key(&mut tx, &r.scope, now).await?;
        let by = caller.principal.username.clone();
        let meta = match tx.secret_head(r.holder(), name).await? {
            Some((id, current)) => {
                let version = current.saturating_add(1);
                tx.set_secret_version(&id, version, description, now)
                    .await?;
                let before = self.find_in(&r, name).await?;
                SecretMeta {
                    current_version: version,
                    updated_at: now,
                    description: description.map_or(before.description.clone(), str::to_string),
                    ..before
                }
            }
            None => {
                if tx.count_secrets(r.holder()).await? >= MAX_SECRETS_PER_OWNER {
                    return Err(Error::invalid(
                        "name",
                        format!(
                            "{} already holds {MAX_SECRETS_PER_OWNER} secrets; delete some first",
                            r.prefix
                        ),
                    ));
                }
                let meta = SecretMeta {
                    id: crate::secrets::new_id("sec")?,
                    project: r.project.clone().unwrap_or_default(),
                    owner: r.personal.then(|| by.clone()),
                    name: name.to_string(),
                    description: description.unwrap_or_default().to_string(),
                    current_version: 1,
                    created_by: by.clone(),
                    created_at: now,
                    updated_at: now,
                };
                tx.insert_secret(&meta, r.holder()).await?;
                meta
            }
        };
        let ciphertext = key
            .seal(&value_context(&meta.id, meta.current_version), value)
            .map_err(key_error)?;
        tx.insert_secret_version(
            &meta.id,
            meta.current_version,
            &ciphertext,
            &r.scope,
            key.version(),
            size,
            &by,
            now,
        )
        .await?;
        let rec = caller.record(
            self,
            Action::SecretWrite.as_str(),
            r.label(name),
            r.project.as_deref(),
            Outcome::Success,
            detail!("version" => meta.current_version, "size" => size),
        );
        self.commit(tx, rec).await?;
        Ok(meta)
    }

    async fn delete_in(&self, caller: &Caller, place: Place<'_>, name: &str) -> Result<()> {
        let (resource, what) = place.target(caller, name)?;
        self.authorize(caller, Action::SecretDelete, &resource, &what, true)
            .await?;
        let r = self.resolve_place(caller, place).await?;
        let meta = self.find_in(&r, name).await?;
        let mut tx = self.store.write().await?;
        if tx.delete_secret(&meta.id).await? == 0 {
            return Err(Error::not_found("secret", &format!("{}/{name}", r.prefix)));
        }
        let rec = caller.record(
            self,
            Action::SecretDelete.as_str(),
            r.label(name),
            r.project.as_deref(),
            Outcome::Success,
            detail!("versions" => meta.current_version),
        );
        self.commit(tx, rec).await
    }

    async fn read_in(
        &self,
        caller: &Caller,
        place: Place<'_>,
        name: &str,
        version: Option<u32>,
    ) -> Result<(u32, Zeroizing<Vec<u8>>)> {
        let (resource, what) = place.target(caller, name)?;
        self.authorize(caller, Action::SecretReadValue, &resource, &what, true)
            .await?;
        let r = self.resolve_place(caller, place).await?;
        let meta = self.find_in(&r, name).await?;
        let version = version.unwrap_or(meta.current_version);
        let value = self.open_version(&meta, &r.prefix, version).await?;
        let rec = caller.record(
            self,
            Action::SecretReadValue.as_str(),
            r.label(name),
            r.project.as_deref(),
            Outcome::Success,
            detail!("version" => version),
        );
        self.audit(rec).await?;
        Ok((version, value))
    }

    /// A project's secrets: names and metadata, never values.
    pub async fn list_secrets(&self, caller: &Caller, project: &str) -> Result<Vec<SecretMeta>> {
        self.list_in(caller, Place::Project(project)).await
    }

    /// One secret's metadata and the metadata of each of its versions, newest first.
    pub async fn secret_versions(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
    ) -> Result<(SecretMeta, Vec<SecretVersionMeta>)> {
        self.versions_in(caller, Place::Project(project), name)
            .await
    }

    /// Creates a secret or adds a new version of it. The value is sealed with the project's
    /// active data key; the answer carries metadata only.
    pub async fn set_secret(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
        value: &[u8],
        description: Option<&str>,
    ) -> Result<SecretMeta> {
        self.set_in(caller, Place::Project(project), name, value, description)
            .await
    }

    /// Deletes a secret and every version of it.
    pub async fn delete_secret(&self, caller: &Caller, project: &str, name: &str) -> Result<()> {
        self.delete_in(caller, Place::Project(project), name).await
    }

    /// Reads one version of a secret's value (the current one by default). Needs its own
    /// permission; the read is audited before the value is returned.
    pub async fn read_secret(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<(u32, Zeroizing<Vec<u8>>)> {
        self.read_in(caller, Place::Project(project), name, version)
            .await
    }

    /// The caller's personal secrets: names and metadata, never values.
    pub async fn list_personal_secrets(&self, caller: &Caller) -> Result<Vec<SecretMeta>> {
        self.list_in(caller, Place::Mine).await
    }

    /// One of the caller's personal secrets with its versions (metadata only).
    pub async fn personal_secret_versions(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(SecretMeta, Vec<SecretVersionMeta>)> {
        self.versions_in(caller, Place::Mine, name).await
    }

    /// Creates one of the caller's personal secrets or adds a version (sealed with the
    /// platform key, bound to the secret).
    pub async fn set_personal_secret(
        &self,
        caller: &Caller,
        name: &str,
        value: &[u8],
        description: Option<&str>,
    ) -> Result<SecretMeta> {
        self.set_in(caller, Place::Mine, name, value, description)
            .await
    }

    /// Deletes one of the caller's personal secrets.
    pub async fn delete_personal_secret(&self, caller: &Caller, name: &str) -> Result<()> {
        self.delete_in(caller, Place::Mine, name).await
    }

    /// Reads one of the caller's personal secrets (audited).
    pub async fn read_personal_secret(
        &self,
        caller: &Caller,
        name: &str,
        version: Option<u32>,
    ) -> Result<(u32, Zeroizing<Vec<u8>>)> {
        self.read_in(caller, Place::Mine, name, version).await
    }

    async fn open_version(
        &self,
        meta: &SecretMeta,
        prefix: &str,
        version: u32,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let keys = self.keyring()?.clone();
        let ciphertext = self
            .store
            .secret_ciphertext(&meta.id, version)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    "secret version",
                    &format!("{prefix}/{} version {version}", meta.name),
                )
            })?;
        let r = enclave_keys::key_ref_of(&ciphertext).map_err(key_error)?;
        let key = keys.key_for(&self.store, &r).await?;
        key.open(&value_context(&meta.id, version), &ciphertext)
            .map_err(key_error)
    }

    /// Checks an injection plan for a job in `project`: the caller may run jobs there, every
    /// mapping is well formed, no target is used twice, and every secret exists (`@NAME`: the
    /// caller's own personal secret, as the launcher). Returns which
    /// version each would receive now; no value is read. Whether the workload may read each
    /// secret is decided again, under the workload's own role, when it starts
    /// ([`App::resolve_secrets`]).
    pub async fn plan_secrets(
        &self,
        caller: &Caller,
        project: &str,
        plan: &[SecretMapping],
    ) -> Result<Vec<PlanEntry>> {
        self.plan_secrets_for(caller, project, plan, Action::JobRun)
            .await
    }

    /// [`App::plan_secrets`] for a workload started by `action` (`job.run`,
    /// `notebook.create`).
    pub async fn plan_secrets_for(
        &self,
        caller: &Caller,
        project: &str,
        plan: &[SecretMapping],
        action: Action,
    ) -> Result<Vec<PlanEntry>> {
        check_project(project)?;
        self.authorize(
            caller,
            action,
            &Resource::Project(project.to_string()),
            &label("project", &format!("{project}/secrets")),
            true,
        )
        .await?;
        check_plan(plan)?;
        let in_project = self.resolve_place(caller, Place::Project(project)).await?;
        let mine = self.resolve_place(caller, Place::Mine).await?;
        let mut out = Vec::with_capacity(plan.len());
        for m in plan {
            let meta = match m.secret.strip_prefix(PERSONAL_PREFIX) {
                Some(name) => self.find_in(&mine, name).await?,
                None => self.find_in(&in_project, &m.secret).await?,
            };
            out.push(PlanEntry {
                mapping: m.clone(),
                version: meta.current_version,
            });
        }
        Ok(out)
    }

    /// Registers a workload of `project` as a principal holding its kind's execution role
    /// there, launched by `caller`. The runtime calls this before it starts the sandbox.
    pub async fn register_workload(
        &self,
        caller: &Caller,
        project: &str,
        kind: WorkloadKind,
        name: &str,
    ) -> Result<String> {
        check_project(project)?;
        let action = match kind {
            WorkloadKind::Job => Action::JobRun,
            WorkloadKind::Notebook => Action::NotebookCreate,
            WorkloadKind::Endpoint => Action::EndpointCreate,
        };
        self.authorize(
            caller,
            action,
            &Resource::Project(project.to_string()),
            &label("project", &format!("{project}/workloads")),
            true,
        )
        .await?;
        names::text("name", name, true)?;
        let p = self
            .store
            .project_by_name(project)
            .await?
            .ok_or_else(|| Error::not_found("project", project))?;
        let id = crate::secrets::new_id("wl")?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.insert_workload(
            &WorkloadFact {
                id: id.clone(),
                project: project.to_string(),
                kind: kind.as_str().to_string(),
                owner: Some(caller.principal.user_id.clone()),
            },
            &p.id,
            name,
            now,
        )
        .await?;
        tx.insert_binding(
            &enclave_core::access::RoleBinding {
                id: crate::secrets::new_id("rb")?,
                subject_kind: enclave_core::access::SubjectKind::Workload,
                subject_id: id.clone(),
                subject_name: id.clone(),
                role: kind.default_role().to_string(),
                project: Some(project.to_string()),
                expires_at: None,
                created_by: caller.principal.username.clone(),
                created_at: now,
            },
            Some(&p.id),
        )
        .await?;
        let rec = caller.record(
            self,
            "workload.register",
            label("workload", &id),
            Some(project),
            Outcome::Success,
            detail!("kind" => kind.as_str(), "name" => name, "role" => kind.default_role()),
        );
        self.commit(tx, rec).await?;
        Ok(id)
    }

    /// Marks a workload ended: it stops being a principal and loses its roles.
    pub async fn end_workload(&self, workload_id: &str, project: &str) -> Result<()> {
        let mut tx = self.store.write().await?;
        tx.end_workload(workload_id, self.now()).await?;
        let rec = AuditRecord {
            project: Some(project.to_string()),
            ..RequestMeta::local().record(
                self.now(),
                &format!("workload:{workload_id}"),
                "workload",
                "workload.end",
                label("workload", workload_id),
            )
        };
        self.commit(tx, rec).await
    }

    /// Resolves a workload's injection plan at start time: each secret is decided for the
    /// workload itself (its own role, in its own project — never its launcher's rights; `@NAME`
    /// is its launcher's personal secret, which the launcher's workloads may receive), then
    /// opened. One audit record lists what was injected (names, versions, targets; never
    /// values). Any denial or missing secret refuses the whole plan.
    pub async fn resolve_secrets(
        &self,
        workload_id: &str,
        project: &str,
        plan: &[SecretMapping],
        meta: &RequestMeta,
    ) -> Result<Vec<ResolvedSecret>> {
        check_project(project)?;
        check_plan(plan)?;
        let launcher = if plan.iter().any(|m| m.secret.starts_with(PERSONAL_PREFIX)) {
            self.store.workload_owner(workload_id).await?
        } else {
            None
        };
        let mut names: Vec<&str> = plan.iter().map(|m| m.secret.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in &names {
            let (resource, what) = match (name.strip_prefix(PERSONAL_PREFIX), &launcher) {
                (None, _) => (
                    secret_resource(project, name),
                    label("secret", &format!("{project}/{name}")),
                ),
                (Some(own), Some(owner)) => (
                    Resource::User(owner.clone()),
                    label("secret", &format!("~{owner}/{own}")),
                ),
                // No launcher on record: decided against nobody, so denied and audited.
                (Some(own), None) => (
                    Resource::User(String::new()),
                    label("secret", &format!("~/{own}")),
                ),
            };
            self.authorize_workload(workload_id, meta, Action::SecretReadValue, &resource, &what)
                .await?;
        }
        let (project_names, personal_names): (Vec<&str>, Vec<&str>) =
            names.iter().partition(|n| !n.starts_with(PERSONAL_PREFIX));
        let personal_names: Vec<&str> = personal_names
            .iter()
            .filter_map(|n| n.strip_prefix(PERSONAL_PREFIX))
            .collect();
        let project_id = self
            .store
            .project_by_name(project)
            .await?
            .ok_or_else(|| Error::not_found("project", project))?
            .id;
        let mut found = self
            .store
            .current_secrets(Holder::Project(&project_id), &project_names)
            .await?;
        if let Some(owner) = &launcher {
            for (m, c) in self
                .store
                .current_secrets(Holder::Person(owner), &personal_names)
                .await?
            {
                found.push((
                    SecretMeta {
                        name: format!("{PERSONAL_PREFIX}{}", m.name),
                        ..m
                    },
                    c,
                ));
            }
        }
        let keys = self.keyring()?.clone();
        let mut opened = std::collections::HashMap::with_capacity(names.len());
        for (s, ciphertext) in found {
            let r = enclave_keys::key_ref_of(&ciphertext).map_err(key_error)?;
            let key = keys.key_for(&self.store, &r).await?;
            let value = key
                .open(&value_context(&s.id, s.current_version), &ciphertext)
                .map_err(key_error)?;
            opened.insert(s.name, (s.current_version, value));
        }
        let mut out = Vec::with_capacity(plan.len());
        let mut injected = Vec::with_capacity(plan.len());
        for m in plan {
            let (version, value) = opened
                .get(&m.secret)
                .ok_or_else(|| Error::not_found("secret", &format!("{project}/{}", m.secret)))?;
            injected.push(serde_json::json!({
                "secret": m.secret,
                "version": version,
                "target": m.target.to_spec(),
            }));
            out.push(ResolvedSecret {
                secret: m.secret.clone(),
                version: *version,
                target: m.target.clone(),
                value: value.clone(),
            });
        }
        let now = self.now();
        let actor = format!("workload:{workload_id}");
        let rec = AuditRecord {
            project: Some(project.to_string()),
            detail: detail!("injected" => serde_json::Value::Array(injected)),
            ..meta.record(
                now,
                &actor,
                "workload",
                "secret.inject",
                label("workload", workload_id),
            )
        };
        self.audit(rec).await?;
        Ok(out)
    }
}
