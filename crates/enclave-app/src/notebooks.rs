//! Notebook servers: create, start, stop, delete, list; the gateway's view of a ready server
//! (where it is, its Jupyter token, whether its code is audited); the record of code users
//! execute; idle culling; and recovery after a restart.
//!
//! Invariants:
//! * A notebook server is a workload principal with the notebook-execution role, registered
//!   when the server is created and ended when it is deleted. Each start checks that it may
//!   still execute and resolves exactly the secrets its plan names, for itself.
//! * A server is reachable only through [`App::open_notebook`]: it authorizes `notebook.open`
//!   on the server for the caller (every request, every websocket), and the server listens
//!   only on its private project-network address with a random Jupyter token that never
//!   leaves the server process.
//! * Every transition is a compare-and-set in the store, committed with its audit record.
//!   `notebook.open` is recorded once per credential and server start; every executed cell
//!   and terminal line is recorded (unless the project turned code audit off) before the
//!   gateway hands it to the kernel.
//! * When the server stops (or crashes), sandboxes die with it; at start, servers the store
//!   shows as active are recorded as stopped ([`App::recover_notebooks`]).

use crate::chokepoint::{label, Caller};
use crate::project_secrets::check_project;
use crate::{detail, App, RequestMeta};
use enclave_core::audit::{AuditRecord, Outcome as AuditOutcome};
use enclave_core::authz::Action;
use enclave_core::notebooks::{
    base_path, check_name, CullPolicy, Notebook, NotebookRequest, NotebookState, JUPYTER_PORT,
    MAX_NOTEBOOKS_PER_PROJECT,
};
use enclave_core::secrets::parse_mapping;
use enclave_core::{Error, ErrorCode, Result, Timestamp};
use enclave_policy::{Resource, WorkloadKind};
use enclave_sandbox::{Canceller, Limits, NetworkMode, Runtime, SandboxSpec, UidRange, ENV_DIR};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// Most notebook servers one list returns.
pub const MAX_NOTEBOOK_LIST: u32 = MAX_NOTEBOOKS_PER_PROJECT as u32;

/// Why a server that was active when Enclave stopped is stopped now.
pub const NOTEBOOK_SERVER_STOPPED: &str =
    "Enclave stopped while the notebook server ran; start it again (its files are kept)";

/// Most bytes of executed code (or a terminal line) kept in one audit record; longer code is
/// cut and marked.
pub const MAX_AUDITED_CODE: usize = 64 * 1024;

/// How notebook servers run on this server.
#[derive(Debug, Clone, Copy)]
pub struct NotebookSettings {
    /// When idle servers are stopped.
    pub cull: CullPolicy,
    /// How long JupyterLab may take to answer after its sandbox starts.
    pub start_timeout: Duration,
    /// Most notebook servers active at once on this server.
    pub max_running: usize,
    /// Each server is served on its own subdomain (`notebooks.subdomain_domain`): its name
    /// and its project's name must then fit in one DNS label together.
    pub subdomains: bool,
}

/// A ready server as the gateway sees it.
#[derive(Clone)]
pub struct NotebookTarget {
    /// Identifies this run of the server (changes at every start): the gateway's pool key.
    pub key: String,
    /// Its project.
    pub project: String,
    /// Its name.
    pub name: String,
    /// Its owner's username.
    pub owner: String,
    /// Whether executed code is recorded.
    pub audit_code: bool,
    address: Ipv4Addr,
    sandbox: String,
    token: Arc<Zeroizing<String>>,
    runtime: Arc<dyn Runtime>,
    /// The server as the policy sees it (its workload, project and owner), fixed for the
    /// run: `notebook.open` is decided on it for every request without a store read.
    resource: Resource,
}

impl std::fmt::Debug for NotebookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotebookTarget")
            .field("key", &self.key)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl NotebookTarget {
    /// The Jupyter token the gateway presents upstream (never shown to anyone).
    pub fn token(&self) -> &str {
        self.token.as_str()
    }

    /// Opens a connection to JupyterLab from inside the server's network namespace
    /// (blocking: run it on a blocking thread).
    pub fn dial(&self, timeout: Duration) -> std::io::Result<std::net::TcpStream> {
        self.runtime
            .dial(&self.sandbox, self.address, JUPYTER_PORT, timeout)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// What a user ran in a notebook, as the gateway saw it on its way to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// A cell's source sent to a kernel.
    Cell {
        /// The code.
        code: String,
        /// The kernel it went to.
        kernel: String,
    },
    /// A command line typed into a terminal.
    Terminal {
        /// The line.
        line: String,
        /// The terminal's name.
        terminal: String,
    },
}

/// A running server.
struct Live {
    target: Option<NotebookTarget>,
    canceller: Option<Canceller>,
    stop: bool,
    /// When it started, or last carried traffic through the gateway.
    last_activity: Timestamp,
}

/// The notebook servers' state, shared by the use cases and the background tasks.
pub(crate) struct Notebooks {
    settings: NotebookSettings,
    live: Mutex<HashMap<(String, String), Live>>,
    /// (credential, server key) pairs whose `notebook.open` is recorded.
    opened: Mutex<HashSet<(String, String)>>,
    stopping: AtomicBool,
}

impl Notebooks {
    pub(crate) fn new(settings: NotebookSettings) -> Notebooks {
        Notebooks {
            settings,
            live: Mutex::default(),
            opened: Mutex::default(),
            stopping: AtomicBool::new(false),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn notebooks_missing() -> Error {
    Error::unavailable(
        "notebooks (this server has no sandbox runtime with project networks: it must run as root with runc installed; see the server log)",
    )
}

fn not_found(project: &str, name: &str) -> Error {
    Error::not_found("notebook", &format!("{project}/{name}"))
}

fn conflict(msg: String) -> Error {
    Error::new(ErrorCode::Conflict, msg)
}

/// The credential an open is remembered under (its session or token, or the user).
fn credential_key(caller: &Caller) -> String {
    caller
        .session_id
        .clone()
        .or_else(|| caller.token_id.clone())
        .unwrap_or_else(|| caller.principal.user_id.clone())
}

/// Cuts `s` to at most `max` bytes on a character boundary; says whether it cut.
fn cut(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_string(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

impl App {
    /// The application with notebook servers (needs the sandbox host of jobs, with project
    /// networks, and the environment builder).
    pub fn with_notebooks(mut self, settings: NotebookSettings) -> App {
        self.notebooks = Some(Arc::new(Notebooks::new(settings)));
        self
    }

    fn nbs(&self) -> Result<(&Arc<Notebooks>, &Arc<crate::jobs::Runner>)> {
        match (&self.notebooks, &self.runner) {
            (Some(n), Some(r)) if r.host.project_networks => Ok((n, r)),
            _ => Err(notebooks_missing()),
        }
    }

    async fn authorize_notebooks(
        &self,
        caller: &Caller,
        project: &str,
        action: Action,
    ) -> Result<()> {
        check_project(project)?;
        self.authorize(
            caller,
            action,
            &Resource::Project(project.to_string()),
            &label("project", &format!("{project}/notebooks")),
            true,
        )
        .await
    }

    async fn authorize_on_server(
        &self,
        caller: &Caller,
        nb: &Notebook,
        action: Action,
    ) -> Result<()> {
        let resource = self.server_resource(nb).await?;
        self.authorize(
            caller,
            action,
            &resource,
            &label("notebook", &format!("{}/{}", nb.project, nb.name)),
            true,
        )
        .await
    }

    /// A notebook server as the policy sees it: its workload, project and owner.
    async fn server_resource(&self, nb: &Notebook) -> Result<Resource> {
        let owner = self.store.workload_owner(&nb.workload_id).await?;
        Ok(Resource::Workload {
            id: nb.workload_id.clone(),
            project: nb.project.clone(),
            kind: WorkloadKind::Notebook,
            owner,
        })
    }

    /// A project's notebook servers.
    pub async fn list_notebooks(&self, caller: &Caller, project: &str) -> Result<Vec<Notebook>> {
        self.authorize_notebooks(caller, project, Action::NotebookList)
            .await?;
        Ok(self
            .store
            .project_notebooks(project, MAX_NOTEBOOK_LIST)
            .await?)
    }

    /// One notebook server.
    pub async fn notebook(&self, caller: &Caller, project: &str, name: &str) -> Result<Notebook> {
        self.authorize_notebooks(caller, project, Action::NotebookList)
            .await?;
        self.find_notebook(project, name).await
    }

    async fn find_notebook(&self, project: &str, name: &str) -> Result<Notebook> {
        check_name(name)?;
        self.store
            .notebook(project, name)
            .await?
            .ok_or_else(|| not_found(project, name))
    }

    /// Creates a notebook server in `project` and starts it: checks the request, the caller's
    /// right to create notebooks there and every secret of the plan, registers the server's
    /// workload and starts its sandbox in the background (state `starting`, then `ready`).
    pub async fn create_notebook(
        &self,
        caller: &Caller,
        project: &str,
        request: &NotebookRequest,
    ) -> Result<Notebook> {
        check_project(project)?;
        request.check()?;
        let (notebooks, _) = self.nbs()?;
        if notebooks.settings.subdomains
            && enclave_core::notebook_hosts::label(project, &request.name).is_none()
        {
            return Err(Error::invalid(
                "name",
                "this server gives each notebook server its own subdomain, so the notebook's \
                 name and the project's name together must be at most 61 characters: choose \
                 a shorter name",
            ));
        }
        self.plan_secrets_for(caller, project, &request.secrets, Action::NotebookCreate)
            .await?;
        let env_name = match &request.environment {
            Some(e) => e.clone(),
            None => enclave_core::environments::EnvTemplate::default_template().name,
        };
        let template = self
            .store
            .environment(&env_name)
            .await?
            .ok_or_else(|| Error::not_found("environment", &env_name))?;
        let preset = template.preset(request.preset.as_deref())?.clone();
        let p = self
            .store
            .project_by_name(project)
            .await?
            .ok_or_else(|| Error::not_found("project", project))?;
        if self.store.notebook(project, &request.name).await?.is_some() {
            return Err(conflict(format!(
                "project {project} already has a notebook server named {}; pick another name or start that one",
                request.name
            )));
        }
        if self
            .store
            .project_notebooks(project, MAX_NOTEBOOK_LIST)
            .await?
            .len()
            >= MAX_NOTEBOOKS_PER_PROJECT
        {
            return Err(conflict(format!(
                "project {project} has {MAX_NOTEBOOKS_PER_PROJECT} notebook servers, the most it may have; delete some first"
            )));
        }
        let workload_id = self
            .register_workload(caller, project, WorkloadKind::Notebook, &request.name)
            .await?;
        let now = self.now();
        let nb = Notebook {
            project: project.to_string(),
            name: request.name.clone(),
            state: NotebookState::Starting,
            reason: None,
            environment: template.name.clone(),
            preset: preset.name.clone(),
            cpu_millis: preset.cpu_millis,
            memory_bytes: preset.memory_bytes,
            secrets: request.secrets.iter().map(|m| m.to_spec()).collect(),
            workload_id,
            owner: caller.principal.username.clone(),
            created_at: now,
            started_at: Some(now),
            stopped_at: None,
            audit_code: true,
        };
        let mut tx = self.store.write().await?;
        tx.insert_notebook(&nb, &p.id, &caller.principal.user_id)
            .await?;
        let rec = caller.record(
            self,
            Action::NotebookCreate.as_str(),
            label("notebook", &format!("{project}/{}", nb.name)),
            Some(project),
            AuditOutcome::Success,
            detail!(
                "op" => "create",
                "environment" => nb.environment.clone(),
                "preset" => nb.preset.clone(),
                "secrets" => nb.secrets.clone(),
                "workload" => nb.workload_id.clone(),
            ),
        );
        if let Err(e) = self.commit(tx, rec).await {
            let _ = self.end_workload(&nb.workload_id, project).await;
            return Err(e);
        }
        self.spawn_start(nb.clone());
        Ok(nb)
    }

    /// Starts a stopped or failed notebook server again (same name, files, plan).
    pub async fn start_notebook(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
    ) -> Result<Notebook> {
        self.authorize_notebooks(caller, project, Action::NotebookCreate)
            .await?;
        self.nbs()?;
        let nb = self.find_notebook(project, name).await?;
        self.authorize_on_server(caller, &nb, Action::NotebookCreate)
            .await?;
        if nb.state.is_active() {
            return Err(conflict(format!(
                "notebook server {project}/{name} is already {}",
                nb.state.as_str()
            )));
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        if !tx
            .move_notebook(project, name, nb.state, NotebookState::Starting, None, now)
            .await?
        {
            return Err(conflict(format!(
                "notebook server {project}/{name} changed meanwhile; look again"
            )));
        }
        let rec = caller.record(
            self,
            Action::NotebookCreate.as_str(),
            label("notebook", &format!("{project}/{name}")),
            Some(project),
            AuditOutcome::Success,
            detail!("op" => "start"),
        );
        self.commit(tx, rec).await?;
        let nb = self.find_notebook(project, name).await?;
        self.spawn_start(nb.clone());
        Ok(nb)
    }

    /// Stops a notebook server; its files stay on the project volume.
    pub async fn stop_notebook(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
    ) -> Result<Notebook> {
        self.authorize_notebooks(caller, project, Action::NotebookList)
            .await?;
        let nb = self.find_notebook(project, name).await?;
        self.authorize_on_server(caller, &nb, Action::NotebookCreate)
            .await?;
        let by = format!("stopped by {}", caller.principal.username);
        let rec = caller.record(
            self,
            Action::NotebookCreate.as_str(),
            label("notebook", &format!("{project}/{name}")),
            Some(project),
            AuditOutcome::Success,
            detail!("op" => "stop"),
        );
        self.stop_server(&nb, &by, Some(rec)).await?;
        self.find_notebook(project, name).await
    }

    /// Stops a server on the platform's own account (deprovisioning): `reason` is shown on
    /// the server and `rec` is the audit record committed with the stop.
    pub(crate) async fn stop_notebook_as_system(
        &self,
        project: &str,
        name: &str,
        reason: &str,
        rec: AuditRecord,
    ) -> Result<()> {
        let nb = self.find_notebook(project, name).await?;
        self.stop_server(&nb, reason, Some(rec)).await
    }

    /// Deletes a notebook server (stopping it first) and ends its workload; its files stay on
    /// the project volume.
    pub async fn delete_notebook(&self, caller: &Caller, project: &str, name: &str) -> Result<()> {
        self.authorize_notebooks(caller, project, Action::NotebookList)
            .await?;
        let nb = self.find_notebook(project, name).await?;
        self.authorize_on_server(caller, &nb, Action::NotebookDelete)
            .await?;
        if nb.state.is_active() {
            self.stop_server(
                &nb,
                &format!("deleted by {}", caller.principal.username),
                None,
            )
            .await?;
        }
        let mut tx = self.store.write().await?;
        if !tx.delete_notebook(project, name).await? {
            return Err(not_found(project, name));
        }
        let rec = caller.record(
            self,
            Action::NotebookDelete.as_str(),
            label("notebook", &format!("{project}/{name}")),
            Some(project),
            AuditOutcome::Success,
            detail!("workload" => nb.workload_id.clone()),
        );
        self.commit(tx, rec).await?;
        self.end_workload(&nb.workload_id, project).await
    }

    /// Moves an active server to `stopping`, kills its sandbox and records it `stopped`.
    /// `record` (the person's request) is committed with the first move.
    async fn stop_server(
        &self,
        nb: &Notebook,
        reason: &str,
        record: Option<AuditRecord>,
    ) -> Result<()> {
        let now = self.now();
        let key = (nb.project.clone(), nb.name.clone());
        match nb.state {
            NotebookState::Starting | NotebookState::Ready => {
                let mut tx = self.store.write().await?;
                if !tx
                    .move_notebook(
                        &nb.project,
                        &nb.name,
                        nb.state,
                        NotebookState::Stopping,
                        Some(reason),
                        now,
                    )
                    .await?
                {
                    return Err(conflict(format!(
                        "notebook server {}/{} changed meanwhile; look again",
                        nb.project, nb.name
                    )));
                }
                match record {
                    Some(r) => self.commit(tx, r).await?,
                    None => tx.commit().await?,
                }
            }
            NotebookState::Stopping => {}
            NotebookState::Stopped | NotebookState::Failed => {
                return Err(conflict(format!(
                    "notebook server {}/{} is not running ({})",
                    nb.project,
                    nb.name,
                    nb.state.as_str()
                )))
            }
        }
        let mut claimed = false;
        if let Some(n) = &self.notebooks {
            let mut live = n.live();
            if let Some(l) = live.get_mut(&key) {
                claimed = true;
                l.stop = true;
                l.target = None;
                if let Some(c) = &l.canceller {
                    c.cancel();
                }
            }
        }
        if !claimed {
            // Nothing runs it here (it was starting when Enclave restarted): record the end.
            self.finish_notebook(nb, NotebookState::Stopped, reason)
                .await?;
        }
        Ok(())
    }

    /// Records that a server's sandbox ended, from `stopping` (or `starting`/`ready` when it
    /// ended on its own).
    async fn finish_notebook(&self, nb: &Notebook, to: NotebookState, reason: &str) -> Result<()> {
        let now = self.now();
        let Some(current) = self.store.notebook(&nb.project, &nb.name).await? else {
            return Ok(());
        };
        let mut tx = self.store.write().await?;
        if tx
            .move_notebook(&nb.project, &nb.name, current.state, to, Some(reason), now)
            .await?
        {
            let mut rec = server_record(nb, "notebook.end", now);
            rec.outcome = if to == NotebookState::Stopped {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            };
            rec.detail = detail!("state" => to.as_str(), "reason" => reason);
            self.commit(tx, rec).await?;
        }
        if let Some(n) = &self.notebooks {
            n.opened()
                .retain(|(_, k)| !k.starts_with(&format!("{}/{}/", nb.project, nb.name)));
        }
        Ok(())
    }

    fn spawn_start(&self, nb: Notebook) {
        let app = self.clone();
        tokio::spawn(async move {
            let (project, name) = (nb.project.clone(), nb.name.clone());
            if let Err(e) = app.run_notebook(nb).await {
                tracing::warn!(%project, notebook = %name, error = %e.message, "a notebook server could not be recorded");
            }
        });
    }

    /// Starts a server's sandbox, waits for JupyterLab, serves it until it is stopped or ends,
    /// and records each step.
    async fn run_notebook(&self, nb: Notebook) -> Result<()> {
        let (notebooks, runner) = self.nbs()?;
        let (notebooks, runner) = (notebooks.clone(), runner.clone());
        let key = (nb.project.clone(), nb.name.clone());
        let full = {
            let mut live = notebooks.live();
            if live.contains_key(&key) {
                return Ok(());
            }
            let active = live.len();
            if active >= notebooks.settings.max_running.max(1) {
                Some(active)
            } else {
                live.insert(
                    key.clone(),
                    Live {
                        target: None,
                        canceller: None,
                        stop: false,
                        last_activity: self.now(),
                    },
                );
                None
            }
        };
        if let Some(active) = full {
            return self
                .finish_notebook(
                    &nb,
                    NotebookState::Failed,
                    &format!("this server already runs {active} notebook servers, its most; stop one and start again"),
                )
                .await;
        }
        let result = self.serve_notebook(&notebooks, &runner, &nb).await;
        notebooks.live().remove(&key);
        let (state, reason) = match result {
            Ok(reason) => (NotebookState::Stopped, reason),
            Err(e) => (NotebookState::Failed, e.message),
        };
        self.finish_notebook(&nb, state, &reason).await
    }

    /// The life of one run; returns the reason it stopped, or an error when it failed.
    async fn serve_notebook(
        &self,
        notebooks: &Arc<Notebooks>,
        runner: &Arc<crate::jobs::Runner>,
        nb: &Notebook,
    ) -> Result<String> {
        let key = (nb.project.clone(), nb.name.clone());
        let token = Zeroizing::new(crate::secrets::new_id("jt")?);
        let sandbox = crate::secrets::new_id("nb")?.replace('_', "-");
        let spec = self
            .notebook_spec(runner, nb, &sandbox, &token)
            .await
            .map_err(|e| Error::new(e.code, format!("could not start: {}", e.message)))?;
        let rt = runner.host.runtime.clone();
        let mut workload = tokio::task::spawn_blocking(move || rt.start(spec))
            .await
            .map_err(|_| Error::internal())?
            .map_err(|e| Error::unavailable(&format!("the notebook's sandbox ({e})")))?;
        let address = workload.address();
        let canceller = workload.canceller();
        let stop_requested = {
            let mut live = notebooks.live();
            match live.get_mut(&key) {
                Some(l) => {
                    l.canceller = Some(canceller.clone());
                    l.stop
                }
                None => true,
            }
        };
        if stop_requested || notebooks.stopping.load(Ordering::SeqCst) {
            canceller.cancel();
        }
        let Some(address) = address else {
            canceller.cancel();
            let _ = tokio::task::spawn_blocking(move || workload.delete()).await;
            return Err(Error::unavailable("a project network for the notebook"));
        };
        let target = NotebookTarget {
            key: format!("{}/{}/{}", nb.project, nb.name, sandbox),
            project: nb.project.clone(),
            name: nb.name.clone(),
            owner: nb.owner.clone(),
            audit_code: self
                .store
                .project_audits_code(&nb.project)
                .await?
                .unwrap_or(true),
            address,
            sandbox: sandbox.clone(),
            token: Arc::new(token),
            runtime: runner.host.runtime.clone(),
            resource: self.server_resource(nb).await?,
        };
        // Wait for JupyterLab (or for the sandbox to end, or a stop).
        let deadline = notebooks.settings.start_timeout;
        let ready = {
            let t = target.clone();
            let path = format!("{}api/status", base_path(&nb.project, &nb.name));
            let c = canceller.clone();
            tokio::task::spawn_blocking(move || wait_ready(&t, &path, deadline, &c))
                .await
                .map_err(|_| Error::internal())?
        };
        let waited = match ready {
            Ok(()) => {
                let moved = {
                    let mut tx = self.store.write().await?;
                    let moved = tx
                        .move_notebook(
                            &nb.project,
                            &nb.name,
                            NotebookState::Starting,
                            NotebookState::Ready,
                            None,
                            self.now(),
                        )
                        .await?;
                    if moved {
                        let mut rec = server_record(nb, "notebook.ready", self.now());
                        rec.detail =
                            detail!("sandbox" => sandbox.clone(), "address" => address.to_string());
                        self.commit(tx, rec).await?;
                    }
                    moved
                };
                if moved {
                    if let Some(l) = notebooks.live().get_mut(&key) {
                        l.target = Some(target.clone());
                        // Idle time counts from readiness: a slow start is not idleness.
                        l.last_activity = self.now();
                    }
                }
                let c = canceller.clone();
                tokio::task::spawn_blocking(move || {
                    let outcome = workload.wait();
                    let _ = workload.delete();
                    drop(c);
                    outcome
                })
                .await
                .map_err(|_| Error::internal())?
                .map_err(|e| Error::unavailable(&format!("the notebook's sandbox ({e})")))
            }
            Err(why) => {
                canceller.cancel();
                let log = {
                    let data = workload.logs().unwrap_or_default();
                    let text = String::from_utf8_lossy(&data);
                    let tail: Vec<&str> = text.lines().rev().take(5).collect();
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                };
                let _ = tokio::task::spawn_blocking(move || workload.delete()).await;
                let stopped = notebooks.live().get(&key).is_none_or(|l| l.stop);
                if stopped {
                    return Ok(self.stop_reason(nb).await);
                }
                return Err(Error::unavailable(&format!(
                    "JupyterLab did not start ({why}){}",
                    if log.is_empty() {
                        String::new()
                    } else {
                        format!("; its last output: {}", cut(&log, 600).0)
                    }
                )));
            }
        };
        let stopped = notebooks.live().get(&key).is_none_or(|l| l.stop);
        match waited {
            _ if stopped => Ok(self.stop_reason(nb).await),
            Ok(enclave_sandbox::Outcome::Exited { code }) => Err(Error::unavailable(&format!(
                "JupyterLab ended by itself (exit code {code}{}); start it again",
                if code == 137 {
                    ": most often the memory limit, pick a larger preset"
                } else {
                    ""
                }
            ))),
            Ok(enclave_sandbox::Outcome::TimedOut) => Ok("stopped at its time limit".into()),
            Ok(enclave_sandbox::Outcome::Cancelled) => Ok(self.stop_reason(nb).await),
            Err(e) => Err(e),
        }
    }

    /// The reason the store holds for a server being stopped (set by whoever stopped it).
    async fn stop_reason(&self, nb: &Notebook) -> String {
        if self
            .notebooks
            .as_ref()
            .is_some_and(|n| n.stopping.load(Ordering::SeqCst))
        {
            return NOTEBOOK_SERVER_STOPPED.into();
        }
        match self.store.notebook(&nb.project, &nb.name).await {
            Ok(Some(n)) => n.reason.unwrap_or_else(|| "stopped".into()),
            _ => "stopped".into(),
        }
    }

    /// The sandbox of one run: JupyterLab from the environment, bound to the private address,
    /// with the token, the preset's limits, the project volume and the resolved secrets.
    async fn notebook_spec(
        &self,
        runner: &crate::jobs::Runner,
        nb: &Notebook,
        sandbox: &str,
        token: &str,
    ) -> Result<SandboxSpec> {
        let env_path = self.environment_path(&nb.environment).await?;
        let (index, project_id, volume) = self.project_sandbox(runner, &nb.project).await?;
        let uid_range = UidRange::for_project_index(index)
            .map_err(|e| Error::unavailable(&format!("sandboxes for this project ({e})")))?;
        let owner = self.store.workload_owner(&nb.workload_id).await?;
        let meta = RequestMeta::local();
        self.authorize_workload(
            &nb.workload_id,
            &meta,
            Action::NotebookExecute,
            &Resource::Workload {
                id: nb.workload_id.clone(),
                project: nb.project.clone(),
                kind: WorkloadKind::Notebook,
                owner,
            },
            &label("workload", &nb.workload_id),
        )
        .await?;
        let plan = nb
            .secrets
            .iter()
            .map(|m| parse_mapping(m))
            .collect::<Result<Vec<_>>>()?;
        let secrets = self
            .resolve_secrets(&nb.workload_id, &nb.project, &plan, &meta)
            .await?;
        let base = base_path(&nb.project, &nb.name);
        let mut rec = server_record(nb, "notebook.start", self.now());
        rec.detail = detail!(
            "sandbox" => sandbox,
            "environment" => nb.environment.clone(),
            "uid_base" => uid_range.host_base,
            "secrets" => secrets.iter().map(|s| format!("{}@{}", s.secret, s.version)).collect::<Vec<_>>(),
            "project_id" => project_id,
        );
        self.audit(rec).await?;
        Ok(SandboxSpec {
            id: sandbox.to_string(),
            project: nb.project.clone(),
            command: vec![
                format!("{ENV_DIR}/bin/python"),
                "-m".into(),
                "jupyterlab".into(),
                "--no-browser".into(),
                // Root inside the sandbox is an unprivileged uid on the host.
                "--allow-root".into(),
                format!("--port={JUPYTER_PORT}"),
                "--ServerApp.ip=0.0.0.0".into(),
                format!("--ServerApp.base_url={base}"),
                "--ServerApp.root_dir=/work".into(),
                "--ServerApp.allow_remote_access=True".into(),
                "--ServerApp.quit_button=False".into(),
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate".into(),
                "--LabApp.news_url=".into(),
            ],
            env: vec![
                ("JUPYTER_TOKEN".into(), token.to_string()),
                ("ENCLAVE_PROJECT".into(), nb.project.clone()),
                ("ENCLAVE_NOTEBOOK".into(), nb.name.clone()),
                ("SHELL".into(), "/bin/bash".into()),
                ("JUPYTER_RUNTIME_DIR".into(), "/tmp/jupyter-runtime".into()),
                ("JUPYTER_CONFIG_DIR".into(), "/tmp/jupyter-config".into()),
                ("IPYTHONDIR".into(), "/work/.ipython".into()),
                ("MPLCONFIGDIR".into(), "/tmp/matplotlib".into()),
            ],
            cwd: "/work".into(),
            uid_range,
            limits: Limits {
                memory_bytes: nb.memory_bytes,
                cpu_millis: nb.cpu_millis,
                pids: 1024,
                timeout: Duration::from_secs(30 * 24 * 3600),
                tmp_bytes: (nb.memory_bytes / 4).clamp(1 << 20, 1 << 30),
                log_bytes: runner.host.log_bytes,
                ..Limits::default()
            },
            work_volume: Some(volume),
            environment: Some(env_path),
            secrets,
            network: NetworkMode::Project { index },
        })
    }

    /// The gateway's check before every request and websocket to a notebook server: the
    /// caller may open it (`notebook.open`, decided for the server itself) and it is ready.
    /// The first open per credential and run is recorded; an open of someone else's server
    /// is marked so its owner sees it.
    pub async fn open_notebook(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
    ) -> Result<NotebookTarget> {
        check_project(project)?;
        check_name(name)?;
        let (notebooks, _) = self.nbs()?;
        let running = notebooks
            .live()
            .get(&(project.to_string(), name.to_string()))
            .and_then(|l| l.target.clone());
        // A ready server carries its policy resource: the decision is made on every request,
        // without reading the store. Otherwise decide on the stored server, then say why it
        // cannot be opened.
        let target = match running {
            Some(target) => {
                self.authorize(
                    caller,
                    Action::NotebookOpen,
                    &target.resource,
                    &label("notebook", &format!("{project}/{name}")),
                    true,
                )
                .await?;
                target
            }
            None => {
                let nb = self.find_notebook(project, name).await?;
                self.authorize_on_server(caller, &nb, Action::NotebookOpen)
                    .await?;
                return Err(Error::unavailable(&format!(
                    "notebook server {project}/{name} (it is {}; start it and wait until it is ready)",
                    nb.state.as_str()
                )));
            }
        };
        let first = {
            let mut opened = notebooks.opened();
            if opened.len() > 100_000 {
                opened.clear();
            }
            opened.insert((credential_key(caller), target.key.clone()))
        };
        if first {
            let others = caller.principal.username != target.owner;
            let rec = caller.record(
                self,
                Action::NotebookOpen.as_str(),
                label("notebook", &format!("{project}/{name}")),
                Some(project),
                AuditOutcome::Success,
                detail!("owner" => target.owner.clone(), "by_other" => others),
            );
            if let Err(e) = self.audit(rec).await {
                notebooks
                    .opened()
                    .remove(&(credential_key(caller), target.key.clone()));
                return Err(e);
            }
        }
        Ok(target)
    }

    /// How many of a project's notebook servers are running (starting, ready or stopping).
    pub(crate) fn running_notebooks_in(&self, project: &str) -> usize {
        match &self.notebooks {
            Some(n) => n.live().keys().filter(|(p, _)| p == project).count(),
            None => 0,
        }
    }

    /// Who other than its owner opened a notebook server (admins, support and admin grants,
    /// project owners), newest first: what the console's banner shows the owner.
    pub async fn notebook_visits(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
        limit: u32,
    ) -> Result<Vec<enclave_store::AuditEntry>> {
        self.authorize_notebooks(caller, project, Action::NotebookList)
            .await?;
        let nb = self.find_notebook(project, name).await?;
        let filter = enclave_store::AuditFilter {
            action: Some(Action::NotebookOpen.as_str().into()),
            resource: Some(label("notebook", &format!("{project}/{name}"))),
            project: Some(project.to_string()),
            ..Default::default()
        };
        let page = self
            .store
            .search_audit(
                &filter,
                enclave_store::AuditOrder::NewestFirst,
                None,
                crate::MAX_AUDIT_PAGE,
            )
            .await?;
        Ok(page
            .items
            .into_iter()
            .filter(|e| e.record.actor != nb.owner)
            .take(limit as usize)
            .collect())
    }

    /// Whether `caller` may still open the server (for open websockets: checked again while
    /// they last, so a revoked session, membership or grant closes them).
    pub async fn may_still_open(&self, caller: &Caller, project: &str, name: &str) -> bool {
        let Ok(nb) = self.find_notebook(project, name).await else {
            return false;
        };
        let Ok(owner) = self.store.workload_owner(&nb.workload_id).await else {
            return false;
        };
        self.decide(
            caller,
            Action::NotebookOpen,
            &Resource::Workload {
                id: nb.workload_id.clone(),
                project: nb.project.clone(),
                kind: WorkloadKind::Notebook,
                owner,
            },
            None,
        )
        .await
        .allowed
    }

    /// Records code a user executes in a notebook (a cell sent to a kernel, a terminal line),
    /// before the gateway passes it on. An error means it could not be recorded: the gateway
    /// then drops the message.
    pub async fn record_execution(
        &self,
        caller: &Caller,
        target: &NotebookTarget,
        what: &Execution,
    ) -> Result<()> {
        if !target.audit_code {
            return Ok(());
        }
        let (action, d) = match what {
            Execution::Cell { code, kernel } => {
                let (code, cut_) = cut(code, MAX_AUDITED_CODE);
                (
                    "notebook.execute",
                    detail!("code" => code, "truncated" => cut_, "kernel" => kernel.clone(), "owner" => target.owner.clone()),
                )
            }
            Execution::Terminal { line, terminal } => {
                let (line, cut_) = cut(line, MAX_AUDITED_CODE);
                (
                    "notebook.terminal",
                    detail!("line" => line, "truncated" => cut_, "terminal" => terminal.clone(), "owner" => target.owner.clone()),
                )
            }
        };
        let rec = caller.record(
            self,
            action,
            label("notebook", &format!("{}/{}", target.project, target.name)),
            Some(&target.project),
            AuditOutcome::Success,
            d,
        );
        self.audit(rec).await
    }

    /// Turns the recording of executed code in a project's notebooks on or off (project
    /// owners); it applies to servers started afterwards.
    pub async fn set_code_audit(&self, caller: &Caller, project: &str, on: bool) -> Result<()> {
        check_project(project)?;
        self.authorize(
            caller,
            Action::ProjectUpdate,
            &Resource::Project(project.to_string()),
            &label("project", project),
            true,
        )
        .await?;
        let mut tx = self.store.write().await?;
        if tx.set_project_audit_code(project, on).await? == 0 {
            return Err(Error::not_found("project", project));
        }
        let rec = caller.record(
            self,
            Action::ProjectUpdate.as_str(),
            label("project", project),
            Some(project),
            AuditOutcome::Success,
            detail!("audit_code" => on),
        );
        self.commit(tx, rec).await
    }

    /// Notes traffic through the gateway to a server (for idle culling).
    pub fn touch_notebook(&self, target: &NotebookTarget) {
        if let Some(n) = &self.notebooks {
            let now = self.now();
            if let Some(l) = n
                .live()
                .get_mut(&(target.project.clone(), target.name.clone()))
            {
                l.last_activity = now;
            }
        }
    }

    /// Stops ready servers idle past the cull policy (no traffic through the gateway); their
    /// files stay. Returns how many it stopped.
    pub async fn cull_idle_notebooks(&self) -> Result<usize> {
        let Some(notebooks) = &self.notebooks else {
            return Ok(0);
        };
        let policy = notebooks.settings.cull;
        if policy.idle_secs == 0 {
            return Ok(0);
        }
        let now = self.now();
        let idle: Vec<(String, String)> = notebooks
            .live()
            .iter()
            .filter(|(_, l)| l.target.is_some() && policy.is_idle(l.last_activity, now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut n = 0;
        for (project, name) in idle {
            let Ok(nb) = self.find_notebook(&project, &name).await else {
                continue;
            };
            if nb.state != NotebookState::Ready {
                continue;
            }
            let reason = format!(
                "stopped after {} s without activity (its files are kept)",
                policy.idle_secs
            );
            let mut rec = server_record(&nb, "notebook.cull", now);
            rec.detail = detail!("idle_secs" => policy.idle_secs);
            if self.stop_server(&nb, &reason, Some(rec)).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Culls idle servers until the server stops (spawn once); checks every quarter of the
    /// idle timeout (between 1 and 30 seconds).
    pub async fn run_notebook_culler(&self) {
        let Some(notebooks) = &self.notebooks else {
            return;
        };
        let idle = notebooks.settings.cull.idle_secs;
        if idle == 0 {
            return;
        }
        let every = Duration::from_secs((idle / 4).clamp(1, 30));
        loop {
            tokio::time::sleep(every).await;
            if notebooks.stopping.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = self.cull_idle_notebooks().await {
                tracing::warn!(error = %e.message, "culling idle notebook servers failed");
            }
        }
    }

    /// After a restart: servers the store shows as active have no sandbox any more (the
    /// runtime reaped them); they are recorded as stopped.
    pub async fn recover_notebooks(&self) -> Result<usize> {
        let stale = self
            .store
            .notebooks_in_states(
                &[
                    NotebookState::Starting,
                    NotebookState::Ready,
                    NotebookState::Stopping,
                ],
                10_000,
            )
            .await?;
        let n = stale.len();
        for nb in stale {
            self.finish_notebook(&nb, NotebookState::Stopped, NOTEBOOK_SERVER_STOPPED)
                .await?;
        }
        Ok(n)
    }

    /// Stops every notebook server sandbox (at shutdown) and waits up to `grace`.
    pub async fn stop_notebooks(&self, grace: Duration) {
        let Some(notebooks) = &self.notebooks else {
            return;
        };
        notebooks.stopping.store(true, Ordering::SeqCst);
        for l in notebooks.live().values_mut() {
            l.stop = true;
            l.target = None;
            if let Some(c) = &l.canceller {
                c.cancel();
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !notebooks.live().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The record of a step taken by the server itself, attributed to its workload.
fn server_record(nb: &Notebook, action: &str, now: Timestamp) -> AuditRecord {
    AuditRecord {
        project: Some(nb.project.clone()),
        ..RequestMeta::local().record(
            now,
            &format!("workload:{}", nb.workload_id),
            "workload",
            action,
            label("notebook", &format!("{}/{}", nb.project, nb.name)),
        )
    }
}

/// Polls JupyterLab's status endpoint until it answers 200, the sandbox is cancelled, or
/// `timeout` passes.
fn wait_ready(
    t: &NotebookTarget,
    path: &str,
    timeout: Duration,
    c: &Canceller,
) -> std::result::Result<(), String> {
    let start = std::time::Instant::now();
    let mut last = String::from("no answer");
    while start.elapsed() < timeout {
        if c.is_cancelled() {
            return Err("it was stopped".into());
        }
        match probe(t, path) {
            Ok(200) => return Ok(()),
            Ok(code) => last = format!("status {code}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no answer within {} s: {last}", timeout.as_secs()))
}

/// One `GET path` to JupyterLab with the token; returns the status code.
fn probe(t: &NotebookTarget, path: &str) -> std::io::Result<u16> {
    let mut s = t.dial(Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let req = Zeroizing::new(format!(
        "GET {path} HTTP/1.0\r\nHost: {}:{JUPYTER_PORT}\r\nAuthorization: token {}\r\n\r\n",
        t.address,
        t.token()
    ));
    s.write_all(req.as_bytes())?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not HTTP"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut("héllo", 2), ("h".to_string(), true));
        assert_eq!(cut("abc", 3), ("abc".to_string(), false));
    }
}
