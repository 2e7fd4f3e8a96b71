//! Batch jobs: submit, list, read logs, cancel — and the runner that starts queued jobs in
//! sandboxes on their project's network, waits for them and records how they ended.
//!
//! Invariants:
//! * A job is registered as a workload principal (the job-execution role in its project) when
//!   it is submitted; at start it must still be allowed to execute, and it receives exactly
//!   the secrets its plan names, each decided for the workload itself.
//! * Every transition (`job.submit`, `job.start`, `job.end`, `job.cancel`) commits with its
//!   audit record; a transition is applied only from the state it expects, so a cancel and an
//!   end racing each other cannot both win.
//! * At most `max_running` sandboxes run at once; the rest wait queued, oldest first.
//! * When the server stops, running jobs are killed and recorded as failed; after a crash,
//!   [`App::recover_jobs`] does the same for what the store still shows as running.

use crate::chokepoint::{label, Caller};
use crate::project_secrets::check_project;
use crate::{detail, App, RequestMeta};
use enclave_core::audit::{AuditRecord, Outcome as AuditOutcome};
use enclave_core::authz::Action;
use enclave_core::jobs::{Job, JobCaps, JobRequest, JobState, MAX_LOG_CHUNK};
use enclave_core::secrets::{parse_mapping, ResolvedSecret};
use enclave_core::{Error, Result};
use enclave_policy::{Resource, WorkloadKind};
use enclave_sandbox::{
    Canceller, Limits, NetworkMode, Outcome, Runtime, SandboxSpec, UidRange, Workload,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// Most jobs one list returns.
pub const MAX_JOB_LIST: u32 = 200;

/// Why a job that was running when the server stopped failed.
pub const SERVER_STOPPED: &str = "the server stopped while the job was running; run it again";

/// Where and how jobs run on this server.
pub struct SandboxHost {
    /// The sandbox backend.
    pub runtime: Arc<dyn Runtime>,
    /// Parent of the project volumes (`<dir>/<project id>`, mounted at `/work`).
    pub volumes_dir: PathBuf,
    /// Jobs running at once.
    pub max_running: usize,
    /// Most bytes of output kept per job.
    pub log_bytes: u64,
    /// What jobs may ask for.
    pub caps: JobCaps,
    /// Put jobs on their project's network (otherwise each gets only loopback).
    pub project_networks: bool,
}

/// The job runner's state, shared by the use cases and the runner task.
pub(crate) struct Runner {
    pub(crate) host: SandboxHost,
    wake: Notify,
    slots: Arc<Semaphore>,
    live: Mutex<HashMap<String, Live>>,
    stopping: AtomicBool,
    idle: Notify,
}

/// A job the runner has claimed.
#[derive(Default)]
struct Live {
    canceller: Option<Canceller>,
    cancel: bool,
}

impl Runner {
    pub(crate) fn new(host: SandboxHost) -> Runner {
        let slots = Arc::new(Semaphore::new(host.max_running.max(1)));
        Runner {
            host,
            wake: Notify::new(),
            slots,
            live: Mutex::default(),
            stopping: AtomicBool::new(false),
            idle: Notify::new(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kills job `id` if it runs here; returns whether it was claimed.
    fn cancel(&self, id: &str) -> bool {
        let mut live = self.live();
        match live.get_mut(id) {
            Some(l) => {
                l.cancel = true;
                if let Some(c) = &l.canceller {
                    c.cancel();
                }
                true
            }
            None => false,
        }
    }
}

/// A piece of a job's output.
#[derive(Debug, Clone)]
pub struct JobLog {
    /// The bytes from `offset`.
    pub data: Vec<u8>,
    /// Where they started.
    pub offset: u64,
    /// Where to continue.
    pub next_offset: u64,
    /// The whole log's size when read.
    pub size: u64,
    /// The job's state when read.
    pub state: JobState,
    /// The job has ended and everything it wrote was returned.
    pub complete: bool,
}

fn runner_missing() -> Error {
    Error::unavailable(
        "running jobs (this server has no sandbox runtime: it must run as root with runc installed; see the server log)",
    )
}

fn job_not_found(project: &str, id: &str) -> Error {
    Error::not_found("job", &format!("{project}/{id}"))
}

/// The record of a transition made by the runner, attributed to the job's workload.
fn runner_record(job: &Job, action: &str, now: enclave_core::Timestamp) -> AuditRecord {
    AuditRecord {
        project: Some(job.project.clone()),
        ..RequestMeta::local().record(
            now,
            &format!("workload:{}", job.workload_id),
            "workload",
            action,
            label("job", &job.id),
        )
    }
}

/// What a sandbox outcome means for the job.
fn ending(outcome: Outcome) -> (JobState, Option<i32>, Option<String>) {
    match outcome {
        Outcome::Exited { code: 0 } => (JobState::Succeeded, Some(0), None),
        Outcome::Exited { code: 137 } => (
            JobState::Failed,
            Some(137),
            Some("killed (signal 9): most often the memory limit; ask for more memory".into()),
        ),
        Outcome::Exited { code } if code > 128 => (
            JobState::Failed,
            Some(code),
            Some(format!("killed by signal {}", code - 128)),
        ),
        Outcome::Exited { code } => (
            JobState::Failed,
            Some(code),
            Some(format!("exited with code {code}")),
        ),
        Outcome::TimedOut => (
            JobState::TimedOut,
            None,
            Some("killed at its time limit".into()),
        ),
        Outcome::Cancelled => (JobState::Cancelled, None, Some("cancelled".into())),
    }
}

impl App {
    /// The application with a sandbox host: jobs can run.
    pub fn with_sandbox(mut self, host: SandboxHost) -> App {
        self.runner = Some(Arc::new(Runner::new(host)));
        self
    }

    fn runner(&self) -> Result<&Arc<Runner>> {
        self.runner.as_ref().ok_or_else(runner_missing)
    }

    /// The limits jobs may ask for on this server (defaults when there is no runner).
    pub fn job_caps(&self) -> JobCaps {
        self.runner
            .as_ref()
            .map(|r| r.host.caps)
            .unwrap_or_default()
    }

    /// Submits a job to `project`: checks the request, the caller's right to run jobs there
    /// and every secret of the plan, registers the job's workload and queues it.
    pub async fn submit_job(
        &self,
        caller: &Caller,
        project: &str,
        request: &JobRequest,
    ) -> Result<Job> {
        check_project(project)?;
        let runner = self.runner()?;
        let limits = request.check(&runner.host.caps)?;
        // Authorizes job.run and checks that every secret exists for this caller.
        self.plan_secrets(caller, project, &request.secrets).await?;
        let p = self
            .store
            .project_by_name(project)
            .await?
            .ok_or_else(|| Error::not_found("project", project))?;
        let id = crate::secrets::new_id("job")?.replace('_', "-");
        let workload_id = self
            .register_workload(caller, project, WorkloadKind::Job, &id)
            .await?;
        let job = Job {
            id: id.clone(),
            project: project.to_string(),
            state: JobState::Queued,
            command: request.command.clone(),
            secrets: request.secrets.iter().map(|m| m.to_spec()).collect(),
            limits,
            exit_code: None,
            reason: None,
            workload_id,
            created_by: caller.principal.username.clone(),
            created_at: self.now(),
            started_at: None,
            ended_at: None,
            cancel_requested: false,
        };
        let mut tx = self.store.write().await?;
        tx.insert_job(&job, &p.id, &caller.principal.user_id)
            .await?;
        let rec = caller.record(
            self,
            "job.submit",
            label("job", &id),
            Some(project),
            AuditOutcome::Success,
            detail!(
                "command" => job.command.first().cloned().unwrap_or_default(),
                "args" => job.command.len().saturating_sub(1),
                "secrets" => job.secrets.clone(),
                "cpu_millis" => limits.cpu_millis,
                "memory_bytes" => limits.memory_bytes,
                "timeout_secs" => limits.timeout_secs,
                "workload" => job.workload_id.clone(),
            ),
        );
        if let Err(e) = self.commit(tx, rec).await {
            let _ = self.end_workload(&job.workload_id, project).await;
            return Err(e);
        }
        runner.wake.notify_one();
        Ok(job)
    }

    /// A project's jobs, newest first.
    pub async fn list_jobs(&self, caller: &Caller, project: &str) -> Result<Vec<Job>> {
        self.authorize_job_read(caller, project).await?;
        Ok(self.store.project_jobs(project, MAX_JOB_LIST).await?)
    }

    /// One job.
    pub async fn job(&self, caller: &Caller, project: &str, id: &str) -> Result<Job> {
        self.authorize_job_read(caller, project).await?;
        self.find_job(project, id).await
    }

    async fn authorize_job_read(&self, caller: &Caller, project: &str) -> Result<()> {
        check_project(project)?;
        self.authorize(
            caller,
            Action::JobList,
            &Resource::Project(project.to_string()),
            &label("project", &format!("{project}/jobs")),
            true,
        )
        .await
    }

    async fn find_job(&self, project: &str, id: &str) -> Result<Job> {
        if !crate::secrets::plausible_id(id) {
            return Err(job_not_found(project, id));
        }
        self.store
            .job(project, id)
            .await?
            .ok_or_else(|| job_not_found(project, id))
    }

    /// Up to `max` bytes (at most [`MAX_LOG_CHUNK`]) of a job's output from `offset`.
    pub async fn job_log(
        &self,
        caller: &Caller,
        project: &str,
        id: &str,
        offset: u64,
        max: usize,
    ) -> Result<JobLog> {
        let job = self.job(caller, project, id).await?;
        let path = match &self.runner {
            Some(r) => Some(r.host.runtime.log_path(&job.id)),
            None => None,
        };
        let max = max.clamp(1, MAX_LOG_CHUNK);
        let (data, size) = tokio::task::spawn_blocking(move || read_from(path, offset, max))
            .await
            .map_err(|_| Error::internal())??;
        let next_offset = offset + data.len() as u64;
        Ok(JobLog {
            complete: job.state.is_final() && next_offset >= size,
            data,
            offset,
            next_offset,
            size,
            state: job.state,
        })
    }

    /// Cancels a job: a queued job ends at once; a running one is killed and ends cancelled.
    pub async fn cancel_job(&self, caller: &Caller, project: &str, id: &str) -> Result<Job> {
        check_project(project)?;
        self.authorize(
            caller,
            Action::JobCancel,
            &Resource::Project(project.to_string()),
            &label("project", &format!("{project}/jobs")),
            true,
        )
        .await?;
        let rec = |state: &str| {
            caller.record(
                self,
                "job.cancel",
                label("job", id),
                Some(project),
                AuditOutcome::Success,
                detail!("state" => state),
            )
        };
        self.cancel_found_job(project, id, &caller.principal.username, &rec)
            .await?;
        self.find_job(project, id).await
    }

    /// Cancels a job after the caller was authorized; `by` names who (or what) cancelled it
    /// and `rec` makes the audit record for the state it was in.
    pub(crate) async fn cancel_found_job(
        &self,
        project: &str,
        id: &str,
        by: &str,
        rec: &(dyn Fn(&str) -> AuditRecord + Send + Sync),
    ) -> Result<()> {
        let job = self.find_job(project, id).await?;
        match job.state {
            JobState::Queued => {
                let mut tx = self.store.write().await?;
                let reason = format!("cancelled by {by} before it started");
                let moved = tx
                    .move_job(
                        &job.id,
                        JobState::Queued,
                        JobState::Cancelled,
                        None,
                        Some(&reason),
                        self.now(),
                    )
                    .await?;
                if !moved {
                    drop(tx);
                    // It started meanwhile: cancel it as a running job.
                    return Box::pin(self.cancel_found_job(project, id, by, rec)).await;
                }
                self.commit(tx, rec("queued")).await?;
                self.end_workload(&job.workload_id, project).await?;
            }
            JobState::Running => {
                let mut tx = self.store.write().await?;
                tx.request_job_cancel(&job.id).await?;
                self.commit(tx, rec("running")).await?;
                if let Some(r) = &self.runner {
                    r.cancel(&job.id);
                }
            }
            s => {
                return Err(Error::new(
                    enclave_core::ErrorCode::Conflict,
                    format!("job {} has already ended ({})", job.id, s.as_str()),
                ))
            }
        }
        Ok(())
    }

    /// After a crash or `kill -9`: jobs the store shows as running have no sandbox any more
    /// (the runtime reaped them); they are recorded as failed and their workloads end.
    pub async fn recover_jobs(&self) -> Result<usize> {
        let mut n = 0;
        loop {
            let stale = self.store.jobs_in_state(JobState::Running, 100).await?;
            if stale.is_empty() {
                return Ok(n);
            }
            for job in stale {
                self.finish(
                    &job,
                    JobState::Failed,
                    None,
                    Some(SERVER_STOPPED.to_string()),
                )
                .await?;
                n += 1;
            }
        }
    }

    /// Records how a running job ended and ends its workload.
    async fn finish(
        &self,
        job: &Job,
        state: JobState,
        exit_code: Option<i32>,
        reason: Option<String>,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let from = if job.state == JobState::Queued {
            JobState::Queued
        } else {
            JobState::Running
        };
        if tx
            .move_job(&job.id, from, state, exit_code, reason.as_deref(), now)
            .await?
        {
            let mut rec = runner_record(job, "job.end", now);
            rec.outcome = if state == JobState::Succeeded {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            };
            rec.detail = detail!(
                "state" => state.as_str(),
                "exit_code" => exit_code,
                "reason" => reason.unwrap_or_default(),
            );
            self.commit(tx, rec).await?;
        } else {
            drop(tx);
        }
        self.end_workload(&job.workload_id, &job.project).await
    }

    /// Runs queued jobs until [`App::stop_jobs`]. Spawn it once, after [`App::recover_jobs`].
    pub async fn run_jobs(&self) {
        let Some(runner) = self.runner.clone() else {
            return;
        };
        loop {
            if runner.stopping.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = self.start_queued(&runner).await {
                tracing::warn!(error = %e.message, "starting queued jobs failed; retrying");
            }
            tokio::select! {
                _ = runner.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    async fn start_queued(&self, runner: &Arc<Runner>) -> Result<()> {
        let free = runner.slots.available_permits();
        if free == 0 {
            return Ok(());
        }
        let queued = self
            .store
            .jobs_in_state(JobState::Queued, u32::try_from(free * 2 + 8).unwrap_or(64))
            .await?;
        for job in queued {
            if runner.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(permit) = runner.slots.clone().try_acquire_owned() else {
                break;
            };
            {
                let mut live = runner.live();
                if live.contains_key(&job.id) {
                    continue;
                }
                live.insert(job.id.clone(), Live::default());
            }
            let app = self.clone();
            let runner = runner.clone();
            tokio::spawn(async move {
                let id = job.id.clone();
                if let Err(e) = app.run_job(&runner, job).await {
                    tracing::warn!(job = %id, error = %e.message, "a job could not be recorded");
                }
                runner.live().remove(&id);
                drop(permit);
                runner.wake.notify_one();
                runner.idle.notify_waiters();
            });
        }
        Ok(())
    }

    /// Starts one claimed job, waits for it and records its end.
    async fn run_job(&self, runner: &Arc<Runner>, job: Job) -> Result<()> {
        let meta = RequestMeta::local();
        let prepared = self.prepare(runner, &job, &meta).await;
        let (spec, project_id) = match prepared {
            Ok(p) => p,
            Err(e) => {
                return self
                    .finish(
                        &job,
                        JobState::Failed,
                        None,
                        Some(format!("could not start: {}", e.message)),
                    )
                    .await
            }
        };
        let now = self.now();
        let mut tx = self.store.write().await?;
        if !tx
            .move_job(
                &job.id,
                JobState::Queued,
                JobState::Running,
                None,
                None,
                now,
            )
            .await?
        {
            // Cancelled while it was being prepared.
            return Ok(());
        }
        let mut rec = runner_record(&job, "job.start", now);
        rec.detail = detail!(
            "uid_base" => spec.uid_range.host_base,
            "secrets" => spec.secrets.iter().map(|s| format!("{}@{}", s.secret, s.version)).collect::<Vec<_>>(),
            "project_id" => project_id,
        );
        self.commit(tx, rec).await?;
        let mut job = job;
        job.state = JobState::Running;

        let rt = runner.host.runtime.clone();
        let started = tokio::task::spawn_blocking(move || rt.start(spec))
            .await
            .map_err(|_| Error::internal())?;
        let mut workload: Box<dyn Workload> = match started {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "sandbox start failed");
                return self
                    .finish(
                        &job,
                        JobState::Failed,
                        None,
                        Some(format!("the sandbox could not start: {e}")),
                    )
                    .await;
            }
        };
        {
            let mut live = runner.live();
            let l = live.entry(job.id.clone()).or_default();
            let c = workload.canceller();
            if l.cancel || runner.stopping.load(Ordering::SeqCst) {
                c.cancel();
            }
            l.canceller = Some(c);
        }
        let waited = tokio::task::spawn_blocking(move || {
            let outcome = workload.wait();
            let deleted = workload.delete();
            (outcome, deleted)
        })
        .await
        .map_err(|_| Error::internal())?;
        let (state, code, reason) = match waited {
            (Ok(Outcome::Cancelled), _) if runner.stopping.load(Ordering::SeqCst) => {
                (JobState::Failed, None, Some(SERVER_STOPPED.to_string()))
            }
            (Ok(o), Ok(())) => ending(o),
            (Ok(o), Err(e)) => {
                tracing::warn!(job = %job.id, error = %e, "sandbox cleanup failed");
                ending(o)
            }
            (Err(e), _) => (
                JobState::Failed,
                None,
                Some(format!("lost track of the sandbox: {e}")),
            ),
        };
        self.finish(&job, state, code, reason).await
    }

    /// Everything a job needs before its sandbox starts: its project's sandbox number and
    /// volume, the right to execute, and its secrets.
    async fn prepare(
        &self,
        runner: &Runner,
        job: &Job,
        meta: &RequestMeta,
    ) -> Result<(SandboxSpec, String)> {
        let (index, project_id, volume) = self.project_sandbox(runner, &job.project).await?;
        let uid_range = UidRange::for_project_index(index)
            .map_err(|e| Error::unavailable(&format!("sandboxes for this project ({e})")))?;
        // The job runs as its own workload, with the job-execution role.
        let owner = self.store.workload_owner(&job.workload_id).await?;
        self.authorize_workload(
            &job.workload_id,
            meta,
            Action::JobExecute,
            &Resource::Workload {
                id: job.workload_id.clone(),
                project: job.project.clone(),
                kind: WorkloadKind::Job,
                owner,
            },
            &label("workload", &job.workload_id),
        )
        .await?;
        let plan = job
            .secrets
            .iter()
            .map(|m| parse_mapping(m))
            .collect::<Result<Vec<_>>>()?;
        let secrets: Vec<ResolvedSecret> = self
            .resolve_secrets(&job.workload_id, &job.project, &plan, meta)
            .await?;
        let l = job.limits;
        let spec = SandboxSpec {
            id: job.id.clone(),
            project: job.project.clone(),
            command: job.command.clone(),
            env: vec![
                ("ENCLAVE_PROJECT".into(), job.project.clone()),
                ("ENCLAVE_JOB".into(), job.id.clone()),
            ],
            cwd: "/work".into(),
            uid_range,
            limits: Limits {
                memory_bytes: l.memory_bytes,
                cpu_millis: l.cpu_millis,
                timeout: Duration::from_secs(l.timeout_secs),
                tmp_bytes: (l.memory_bytes / 4).clamp(1 << 20, 1 << 30),
                log_bytes: runner.host.log_bytes,
                ..Limits::default()
            },
            work_volume: Some(volume),
            environment: None,
            secrets,
            network: if runner.host.project_networks {
                NetworkMode::Project { index }
            } else {
                NetworkMode::Isolated
            },
        };
        Ok((spec, project_id))
    }

    /// A project's sandbox number (given one on first use), its id, and its volume (created,
    /// owned by the project's sandbox root, on first use).
    pub(crate) async fn project_sandbox(
        &self,
        runner: &Runner,
        project: &str,
    ) -> Result<(u32, String, PathBuf)> {
        let p = self
            .store
            .project_by_name(project)
            .await?
            .ok_or_else(|| Error::not_found("project", project))?;
        let index = match self.store.sandbox_index(&p.id).await? {
            Some(i) => i,
            None => {
                let mut tx = self.store.write().await?;
                let i = tx.ensure_sandbox_index(&p.id).await?;
                tx.commit().await?;
                i
            }
        };
        let uid_range = UidRange::for_project_index(index)
            .map_err(|e| Error::unavailable(&format!("sandboxes for this project ({e})")))?;
        let volume = runner.host.volumes_dir.join(&p.id);
        let v = volume.clone();
        tokio::task::spawn_blocking(move || ensure_volume(&v, uid_range.host_base))
            .await
            .map_err(|_| Error::internal())?
            .map_err(|e| {
                tracing::warn!(error = %e, "project volume");
                Error::unavailable("the project volume")
            })?;
        Ok((index, p.id, volume))
    }

    /// Stops the runner: no new job starts, running ones are killed and recorded as failed
    /// ([`SERVER_STOPPED`]); returns when they are recorded or after `grace`.
    pub async fn stop_jobs(&self, grace: Duration) {
        let Some(runner) = &self.runner else { return };
        runner.stopping.store(true, Ordering::SeqCst);
        runner.wake.notify_waiters();
        let ids: Vec<String> = runner.live().keys().cloned().collect();
        for id in ids {
            runner.cancel(&id);
        }
        let _ = tokio::time::timeout(grace, async {
            loop {
                let idle = runner.idle.notified();
                if runner.live().is_empty() {
                    return;
                }
                idle.await;
            }
        })
        .await;
    }
}

/// Reads up to `max` bytes from `offset`; returns them and the file's size (0 when absent).
fn read_from(path: Option<PathBuf>, offset: u64, max: usize) -> Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(path) = path else {
        return Ok((Vec::new(), 0));
    };
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(_) => return Err(Error::unavailable("the job's log")),
    };
    let size = f
        .metadata()
        .map_err(|_| Error::unavailable("the job's log"))?
        .len();
    if offset >= size {
        return Ok((Vec::new(), size));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|_| Error::unavailable("the job's log"))?;
    let mut buf = Vec::with_capacity(max.min(usize::try_from(size - offset).unwrap_or(max)));
    f.take(max as u64)
        .read_to_end(&mut buf)
        .map_err(|_| Error::unavailable("the job's log"))?;
    Ok((buf, size))
}

/// Creates a project's volume, owned by its sandbox root and private to it; its parents must
/// let that uid through (`o+x`).
fn ensure_volume(path: &std::path::Path, owner: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(parent)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::chown(path, Some(owner), Some(owner))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn outcomes_map_to_states() {
        assert_eq!(ending(Outcome::Exited { code: 0 }).0, JobState::Succeeded);
        let (s, c, r) = ending(Outcome::Exited { code: 3 });
        assert_eq!((s, c), (JobState::Failed, Some(3)));
        assert_eq!(r.as_deref(), Some("exited with code 3"));
        assert!(ending(Outcome::Exited { code: 137 })
            .2
            .unwrap()
            .contains("memory"));
        assert_eq!(ending(Outcome::TimedOut).0, JobState::TimedOut);
        assert_eq!(ending(Outcome::Cancelled).0, JobState::Cancelled);
    }

    #[test]
    fn reads_log_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        std::fs::write(&p, b"hello world").unwrap();
        let (d, size) = read_from(Some(p.clone()), 6, 100).unwrap();
        assert_eq!((d.as_slice(), size), (&b"world"[..], 11));
        let (d, _) = read_from(Some(p.clone()), 0, 5).unwrap();
        assert_eq!(d, b"hello");
        assert_eq!(read_from(Some(p), 50, 5).unwrap().0, b"");
        assert_eq!(
            read_from(Some(dir.path().join("none")), 0, 5).unwrap(),
            (vec![], 0)
        );
    }
}
