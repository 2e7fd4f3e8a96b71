//! Environment templates and their builds: admins define templates (Python version, pinned
//! packages, resource presets); each is built once into a read-only environment that every
//! notebook sandbox using it mounts.
//!
//! Invariants:
//! * Only a template whose build finished is ever mounted; a build in progress, failed or
//!   missing makes a notebook start fail with a message saying which (and its progress).
//! * One build runs at a time (builds are CPU- and disk-heavy); others wait their turn.
//! * Every change to a template is authorized (`template.manage`) and audited; a template in
//!   use by a notebook server cannot be deleted.

use crate::chokepoint::{label, Caller};
use crate::{detail, App, RequestMeta};
use enclave_core::audit::Outcome as AuditOutcome;
use enclave_core::authz::Action;
use enclave_core::environments::EnvTemplate;
use enclave_core::{names, Error, ErrorCode, Result};
use enclave_envs::{Builder, Progress};
use enclave_policy::Resource;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where a template's environment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvStatus {
    /// Not built (and no build running).
    NotBuilt,
    /// Waiting for another build to finish.
    Queued,
    /// Being built.
    Building {
        /// Rough progress, 0–100.
        percent: u8,
        /// The builder's latest line.
        message: String,
    },
    /// Built and ready to mount.
    Ready {
        /// The packages it holds, `name==version`.
        packages: Vec<String>,
    },
    /// The last build failed; the message says why and what to do.
    Failed {
        /// Why.
        error: String,
    },
}

impl EnvStatus {
    /// The wire name of the status.
    pub fn as_str(&self) -> &'static str {
        match self {
            EnvStatus::NotBuilt => "not_built",
            EnvStatus::Queued => "queued",
            EnvStatus::Building { .. } => "building",
            EnvStatus::Ready { .. } => "ready",
            EnvStatus::Failed { .. } => "failed",
        }
    }
}

/// A template with its build status.
#[derive(Debug, Clone)]
pub struct EnvironmentView {
    /// The template.
    pub template: EnvTemplate,
    /// Its build fingerprint (changes with the packages, the Python version or the index).
    pub fingerprint: String,
    /// Its build status.
    pub status: EnvStatus,
}

/// The environment builder and the builds' state.
pub(crate) struct Environments {
    builder: Arc<Builder>,
    index_url: String,
    /// Status by fingerprint, for builds this process ran or is running.
    status: Mutex<HashMap<String, EnvStatus>>,
    /// Held while a build runs.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Environments {
    pub(crate) fn new(builder: Arc<Builder>, index_url: String) -> Environments {
        Environments {
            builder,
            index_url,
            status: Mutex::default(),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    fn status_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, EnvStatus>> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn view(&self, template: EnvTemplate) -> EnvironmentView {
        let fingerprint = template.fingerprint(&self.index_url);
        let status = match self.status_map().get(&fingerprint) {
            Some(
                s @ (EnvStatus::Queued | EnvStatus::Building { .. } | EnvStatus::Failed { .. }),
            ) => s.clone(),
            _ => match self.builder.built(&template) {
                Some(b) => EnvStatus::Ready {
                    packages: b.packages,
                },
                None => EnvStatus::NotBuilt,
            },
        };
        EnvironmentView {
            template,
            fingerprint,
            status,
        }
    }
}

fn environments_missing() -> Error {
    Error::unavailable(
        "notebook environments (this server has no environment builder: it needs sandboxes; see the server log)",
    )
}

fn check_name(name: &str) -> Result<()> {
    names::slug("environment", name).map_err(|_| Error::not_found("environment", name))
}

impl App {
    /// The application with an environment builder for notebook templates.
    pub fn with_environments(mut self, builder: Arc<Builder>, index_url: String) -> App {
        self.environments = Some(Arc::new(Environments::new(builder, index_url)));
        self
    }

    fn envs(&self) -> Result<&Arc<Environments>> {
        self.environments.as_ref().ok_or_else(environments_missing)
    }

    /// Every environment template with its build status.
    pub async fn list_environments(&self, caller: &Caller) -> Result<Vec<EnvironmentView>> {
        self.authorize(
            caller,
            Action::TemplateList,
            &Resource::Template("*".into()),
            "template:*",
            false,
        )
        .await?;
        let envs = self.envs()?;
        Ok(self
            .store
            .environments()
            .await?
            .into_iter()
            .map(|t| envs.view(t))
            .collect())
    }

    /// One template with its build status.
    pub async fn environment(&self, caller: &Caller, name: &str) -> Result<EnvironmentView> {
        check_name(name)?;
        self.authorize(
            caller,
            Action::TemplateList,
            &Resource::Template(name.into()),
            &label("template", name),
            false,
        )
        .await?;
        let envs = self.envs()?;
        let t = self
            .store
            .environment(name)
            .await?
            .ok_or_else(|| Error::not_found("environment", name))?;
        Ok(envs.view(t))
    }

    /// Creates or replaces a template, then starts building it.
    pub async fn put_environment(
        &self,
        caller: &Caller,
        template: EnvTemplate,
    ) -> Result<EnvironmentView> {
        template.check()?;
        self.authorize(
            caller,
            Action::TemplateManage,
            &Resource::Template(template.name.clone()),
            &label("template", &template.name),
            true,
        )
        .await?;
        let envs = self.envs()?.clone();
        let existed = self.store.environment(&template.name).await?.is_some();
        let mut tx = self.store.write().await?;
        tx.put_environment(&template, &caller.principal.username, self.now())
            .await?;
        let rec = caller.record(
            self,
            Action::TemplateManage.as_str(),
            label("template", &template.name),
            None,
            AuditOutcome::Success,
            detail!(
                "op" => if existed { "update" } else { "create" },
                "python" => template.python.clone(),
                "packages" => template.packages.clone(),
                "presets" => template.presets.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            ),
        );
        self.commit(tx, rec).await?;
        self.spawn_build(envs.clone(), template.clone());
        Ok(envs.view(template))
    }

    /// Deletes a template no notebook server uses (its built environment is removed by the
    /// next clean-up of unused environments).
    pub async fn delete_environment(&self, caller: &Caller, name: &str) -> Result<()> {
        check_name(name)?;
        self.authorize(
            caller,
            Action::TemplateManage,
            &Resource::Template(name.into()),
            &label("template", name),
            true,
        )
        .await?;
        if self.store.environment(name).await?.is_none() {
            return Err(Error::not_found("environment", name));
        }
        let users = self.store.environment_users(name).await?;
        if users > 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("environment {name} is used by {users} notebook server(s); delete them or move them to another environment first"),
            ));
        }
        let mut tx = self.store.write().await?;
        tx.delete_environment(name).await?;
        let rec = caller.record(
            self,
            Action::TemplateManage.as_str(),
            label("template", name),
            None,
            AuditOutcome::Success,
            detail!("op" => "delete"),
        );
        self.commit(tx, rec).await
    }

    /// Starts (re)building a template's environment; a ready one is kept as it is.
    pub async fn build_environment(&self, caller: &Caller, name: &str) -> Result<EnvironmentView> {
        check_name(name)?;
        self.authorize(
            caller,
            Action::TemplateManage,
            &Resource::Template(name.into()),
            &label("template", name),
            true,
        )
        .await?;
        let envs = self.envs()?.clone();
        let t = self
            .store
            .environment(name)
            .await?
            .ok_or_else(|| Error::not_found("environment", name))?;
        let rec = caller.record(
            self,
            Action::TemplateManage.as_str(),
            label("template", name),
            None,
            AuditOutcome::Success,
            detail!("op" => "build", "fingerprint" => t.fingerprint(&envs.index_url)),
        );
        self.audit(rec).await?;
        self.spawn_build(envs.clone(), t.clone());
        Ok(envs.view(t))
    }

    /// At first start: adds the default template when there is none (recorded as done by the
    /// system), so a new installation can open notebooks without any setup.
    pub async fn seed_default_environment(&self) -> Result<()> {
        if self.environments.is_none() || !self.store.environments().await?.is_empty() {
            return Ok(());
        }
        let t = EnvTemplate::default_template();
        let mut tx = self.store.write().await?;
        tx.put_environment(&t, "system", self.now()).await?;
        let rec = RequestMeta::local().record(
            self.now(),
            "system",
            "system",
            Action::TemplateManage.as_str(),
            label("template", &t.name),
        );
        self.commit(tx, rec).await
    }

    /// Builds every template that is not built yet, one after the other; returns when done.
    /// Failures are logged and shown in each template's status.
    pub async fn build_all_environments(&self) {
        let Some(envs) = self.environments.clone() else {
            return;
        };
        let templates = match self.store.environments().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the environment templates");
                return;
            }
        };
        for t in templates {
            if envs.builder.built(&t).is_none() {
                run_build(envs.clone(), t).await;
            }
        }
    }

    fn spawn_build(&self, envs: Arc<Environments>, template: EnvTemplate) {
        tokio::spawn(run_build(envs, template));
    }

    /// The host path of a template's built environment, or an error saying why it cannot be
    /// used yet.
    pub(crate) async fn environment_path(&self, name: &str) -> Result<PathBuf> {
        let envs = self.envs()?;
        let t = self
            .store
            .environment(name)
            .await?
            .ok_or_else(|| Error::not_found("environment", name))?;
        let path = envs.builder.path(&t);
        match envs.view(t).status {
            EnvStatus::Ready { .. } => Ok(path),
            EnvStatus::Building { percent, .. } => Err(Error::unavailable(&format!(
                "environment {name} (it is being built, {percent}% done; start the notebook again when it is ready)"
            ))),
            EnvStatus::Queued => Err(Error::unavailable(&format!(
                "environment {name} (its build waits for another one; start the notebook again when it is ready)"
            ))),
            EnvStatus::NotBuilt => Err(Error::unavailable(&format!(
                "environment {name} (it is not built; an admin builds it with `enclave envs build {name}`)"
            ))),
            EnvStatus::Failed { .. } => Err(Error::unavailable(&format!(
                "environment {name} (its build failed; an admin sees why with `enclave envs show {name}`)"
            ))),
        }
    }
}

/// Builds one template (waiting for any other build first), keeping its status current.
async fn run_build(envs: Arc<Environments>, template: EnvTemplate) {
    let fp = template.fingerprint(&envs.index_url);
    {
        let mut st = envs.status_map();
        if matches!(
            st.get(&fp),
            Some(EnvStatus::Queued | EnvStatus::Building { .. })
        ) {
            return;
        }
        st.insert(fp.clone(), EnvStatus::Queued);
    }
    let _turn = envs.one_at_a_time.lock().await;
    let e = envs.clone();
    let name = template.name.clone();
    tracing::info!(environment = %name, "building the environment");
    let result = tokio::task::spawn_blocking(move || {
        let fp = template.fingerprint(&e.index_url);
        let mut last_percent = u8::MAX;
        let mut progress = |p: &Progress| {
            e.status_map().insert(
                fp.clone(),
                EnvStatus::Building {
                    percent: p.percent,
                    message: p.message.chars().take(200).collect(),
                },
            );
            if p.percent / 10 != last_percent / 10 {
                last_percent = p.percent;
                tracing::info!(environment = %template.name, percent = p.percent, "{}", p.message);
            }
        };
        e.builder.build(&template, &mut progress)
    })
    .await;
    let status = match result {
        Ok(Ok(built)) => {
            tracing::info!(environment = %name, packages = built.packages.len(), "environment ready");
            EnvStatus::Ready {
                packages: built.packages,
            }
        }
        Ok(Err(err)) => {
            tracing::warn!(environment = %name, error = %err, "environment build failed");
            EnvStatus::Failed {
                error: err.to_string(),
            }
        }
        Err(_) => EnvStatus::Failed {
            error: "the build stopped unexpectedly; see the server log and build again".into(),
        },
    };
    envs.status_map().insert(fp, status);
}
