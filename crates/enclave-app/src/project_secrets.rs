//! A project's secrets: named, versioned values sealed with the project's data key; listed by
//! name and metadata only; read one value at a time with their own permission, every read
//! audited; and resolved for a workload at start time under the workload's own role, as the
//! environment variables and files it declared.
//!
//! Invariants:
//! * A value is sealed before it reaches the store, bound to `secret:<secret id>:<version>`,
//!   so a ciphertext copied onto another secret or version does not open.
//! * No value is ever listed, logged, audited or echoed back; only its size.
//! * Every read of a value (by a person or for a workload) is in the audit trail before the
//!   value leaves this module.

use crate::chokepoint::{label, Caller};
use crate::keys::{key_error, project_scope};
use crate::{detail, App, RequestMeta};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::authz::Action;
use enclave_core::secrets::{
    check_name, check_plan, check_value, ResolvedSecret, SecretMapping, SecretMeta,
    SecretVersionMeta, MAX_SECRETS_PER_OWNER,
};
use enclave_core::{names, Error, Result};
use enclave_policy::{Resource, WorkloadKind};
use enclave_store::WorkloadFact;
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

fn check_project(project: &str) -> Result<()> {
    names::slug("project", project).map_err(|_| Error::not_found("project", project))
}

impl App {
    /// A project's secrets: names and metadata, never values.
    pub async fn list_secrets(&self, caller: &Caller, project: &str) -> Result<Vec<SecretMeta>> {
        check_project(project)?;
        self.authorize(
            caller,
            Action::SecretList,
            &Resource::Project(project.to_string()),
            &label("project", &format!("{project}/secrets")),
            true,
        )
        .await?;
        if self.store.project_by_name(project).await?.is_none() {
            return Err(Error::not_found("project", project));
        }
        Ok(self.store.list_secrets(project).await?)
    }

    /// One secret's metadata and the metadata of each of its versions, newest first.
    pub async fn secret_versions(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
    ) -> Result<(SecretMeta, Vec<SecretVersionMeta>)> {
        check_project(project)?;
        self.authorize(
            caller,
            Action::SecretList,
            &Resource::Project(project.to_string()),
            &label("secret", &format!("{project}/{name}")),
            true,
        )
        .await?;
        let meta = self.find_secret(project, name).await?;
        let versions = self.store.secret_versions(&meta.id).await?;
        Ok((meta, versions))
    }

    async fn find_secret(&self, project: &str, name: &str) -> Result<SecretMeta> {
        let found = if check_name(name).is_ok() {
            self.store.secret(project, name).await?
        } else {
            None
        };
        found.ok_or_else(|| Error::not_found("secret", &format!("{project}/{name}")))
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
        check_project(project)?;
        self.authorize(
            caller,
            Action::SecretWrite,
            &secret_resource(project, name),
            &label("secret", &format!("{project}/{name}")),
            true,
        )
        .await?;
        check_name(name)?;
        check_value(value)?;
        if let Some(d) = description {
            names::text("description", d, false)?;
        }
        let keys = self.keyring()?.clone();
        let p = self
            .store
            .project_by_name(project)
            .await?
            .ok_or_else(|| Error::not_found("project", project))?;
        let scope = project_scope(&p.id);
        let now = self.now();
        let size = u32::try_from(value.len()).map_err(|_| Error::internal())?;
        let mut tx = self.store.write().await?;
        let key = keys.active_key(&mut tx, &scope, now).await?;
        let by = caller.principal.username.clone();
        let meta = match tx.secret_head(&p.id, name).await? {
            Some((id, current)) => {
                let version = current.saturating_add(1);
                tx.set_secret_version(&id, version, description, now)
                    .await?;
                SecretMeta {
                    current_version: version,
                    updated_at: now,
                    ..self.find_secret(project, name).await?
                }
            }
            None => {
                if tx.count_secrets(&p.id).await? >= MAX_SECRETS_PER_OWNER {
                    return Err(Error::invalid(
                        "name",
                        format!(
                            "project {project} already holds {MAX_SECRETS_PER_OWNER} secrets; delete some first"
                        ),
                    ));
                }
                let meta = SecretMeta {
                    id: crate::secrets::new_id("sec")?,
                    project: project.to_string(),
                    name: name.to_string(),
                    description: description.unwrap_or_default().to_string(),
                    current_version: 1,
                    created_by: by.clone(),
                    created_at: now,
                    updated_at: now,
                };
                tx.insert_secret(&meta, &p.id).await?;
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
            &scope,
            key.version(),
            size,
            &by,
            now,
        )
        .await?;
        let rec = caller.record(
            self,
            Action::SecretWrite.as_str(),
            label("secret", &format!("{project}/{name}")),
            Some(project),
            Outcome::Success,
            detail!("version" => meta.current_version, "size" => size),
        );
        self.commit(tx, rec).await?;
        Ok(meta)
    }

    /// Deletes a secret and every version of it.
    pub async fn delete_secret(&self, caller: &Caller, project: &str, name: &str) -> Result<()> {
        check_project(project)?;
        self.authorize(
            caller,
            Action::SecretDelete,
            &secret_resource(project, name),
            &label("secret", &format!("{project}/{name}")),
            true,
        )
        .await?;
        let meta = self.find_secret(project, name).await?;
        let mut tx = self.store.write().await?;
        if tx.delete_secret(&meta.id).await? == 0 {
            return Err(Error::not_found("secret", &format!("{project}/{name}")));
        }
        let rec = caller.record(
            self,
            Action::SecretDelete.as_str(),
            label("secret", &format!("{project}/{name}")),
            Some(project),
            Outcome::Success,
            detail!("versions" => meta.current_version),
        );
        self.commit(tx, rec).await
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
        check_project(project)?;
        self.authorize(
            caller,
            Action::SecretReadValue,
            &secret_resource(project, name),
            &label("secret", &format!("{project}/{name}")),
            true,
        )
        .await?;
        let meta = self.find_secret(project, name).await?;
        let version = version.unwrap_or(meta.current_version);
        let value = self.open_version(&meta, version).await?;
        let rec = caller.record(
            self,
            Action::SecretReadValue.as_str(),
            label("secret", &format!("{project}/{name}")),
            Some(project),
            Outcome::Success,
            detail!("version" => version),
        );
        self.audit(rec).await?;
        Ok((version, value))
    }

    async fn open_version(&self, meta: &SecretMeta, version: u32) -> Result<Zeroizing<Vec<u8>>> {
        let keys = self.keyring()?.clone();
        let ciphertext = self
            .store
            .secret_ciphertext(&meta.id, version)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    "secret version",
                    &format!("{}/{} version {version}", meta.project, meta.name),
                )
            })?;
        let r = enclave_keys::key_ref_of(&ciphertext).map_err(key_error)?;
        let key = keys.key_for(&self.store, &r).await?;
        key.open(&value_context(&meta.id, version), &ciphertext)
            .map_err(key_error)
    }

    /// Checks an injection plan for a job in `project`: the caller may run jobs there, every
    /// mapping is well formed, no target is used twice, and every secret exists. Returns which
    /// version each would receive now; no value is read. Whether the workload may read each
    /// secret is decided again, under the workload's own role, when it starts
    /// ([`App::resolve_secrets`]).
    pub async fn plan_secrets(
        &self,
        caller: &Caller,
        project: &str,
        plan: &[SecretMapping],
    ) -> Result<Vec<PlanEntry>> {
        check_project(project)?;
        self.authorize(
            caller,
            Action::JobRun,
            &Resource::Project(project.to_string()),
            &label("project", &format!("{project}/secrets")),
            true,
        )
        .await?;
        check_plan(plan)?;
        if self.store.project_by_name(project).await?.is_none() {
            return Err(Error::not_found("project", project));
        }
        let mut out = Vec::with_capacity(plan.len());
        for m in plan {
            let meta = self.find_secret(project, &m.secret).await?;
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
    /// workload itself (its own role, in its own project — never its launcher's rights), then
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
        let mut names: Vec<&str> = plan.iter().map(|m| m.secret.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in &names {
            self.authorize_workload(
                workload_id,
                meta,
                Action::SecretReadValue,
                &secret_resource(project, name),
                &label("secret", &format!("{project}/{name}")),
            )
            .await?;
        }
        let keys = self.keyring()?.clone();
        let mut opened = std::collections::HashMap::with_capacity(names.len());
        for (s, ciphertext) in self.store.current_secrets(project, &names).await? {
            let r = enclave_keys::key_ref_of(&ciphertext).map_err(key_error)?;
            let key = keys.key_for(&self.store, &r).await?;
            let value = key
                .open(&value_context(&s.id, s.current_version), &ciphertext)
                .map_err(key_error)?;
            opened.insert(s.name.clone(), (s.current_version, value));
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
