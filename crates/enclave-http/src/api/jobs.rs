//! A project's batch jobs (`/api/v1/projects/{project}/jobs…`): submit, list, show, read the
//! log from an offset (clients follow it by asking again from `next_offset`), cancel.

use super::extract::{Body, Q};
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use enclave_app::JobLog;
use enclave_core::jobs::{cpus, parse_cpus, parse_size, Job, JobRequest, MAX_LOG_CHUNK};
use enclave_core::secrets::parse_mapping;
use enclave_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Largest body of a job submission.
pub const JOB_BODY_LIMIT: usize = 64 * 1024;

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.rfc3339())
}

/// A job.
#[derive(Serialize, ToSchema)]
pub struct JobOut {
    /// Id (`job-…`).
    pub id: String,
    /// Project.
    pub project: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `timed_out`.
    pub state: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The injection plan (`NAME=env:VAR`, `NAME=file:PATH`).
    pub secrets: Vec<String>,
    /// CPUs (e.g. `"0.5"`).
    pub cpus: String,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Time limit in seconds.
    pub timeout_secs: u64,
    /// Exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Why it failed, was cancelled or timed out.
    pub reason: Option<String>,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Who submitted it.
    pub created_by: String,
    /// Submitted.
    pub created_at: String,
    /// Started.
    pub started_at: Option<String>,
    /// Ended.
    pub ended_at: Option<String>,
}

impl From<Job> for JobOut {
    fn from(j: Job) -> Self {
        JobOut {
            id: j.id,
            project: j.project,
            state: j.state.as_str().into(),
            command: j.command,
            secrets: j.secrets,
            cpus: cpus(j.limits.cpu_millis),
            memory_bytes: j.limits.memory_bytes,
            timeout_secs: j.limits.timeout_secs,
            exit_code: j.exit_code,
            reason: j.reason,
            cancel_requested: j.cancel_requested,
            created_by: j.created_by,
            created_at: j.created_at.rfc3339(),
            started_at: ts(j.started_at),
            ended_at: ts(j.ended_at),
        }
    }
}

/// A project's jobs, newest first.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// Jobs (at most 200).
    pub items: Vec<JobOut>,
}

/// A job to run.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobIn {
    /// The program and its arguments (looked up in `PATH`; the working directory is the
    /// project volume, `/work`).
    pub command: Vec<String>,
    /// Secrets it receives: `NAME=env:VAR`, `NAME=file:/run/secrets/…`, `@NAME=…` for your
    /// personal secret.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// CPUs, e.g. `"2"` or `"0.5"` (default from the server's configuration).
    pub cpus: Option<String>,
    /// Memory, e.g. `"512M"`, `"2G"`.
    pub memory: Option<String>,
    /// Time limit, e.g. `"90s"`, `"30m"`, `"2h"`.
    pub timeout: Option<String>,
}

impl JobIn {
    /// The request, with every field parsed; errors name the field.
    pub fn request(&self) -> enclave_core::Result<JobRequest> {
        let secrets = self
            .secrets
            .iter()
            .map(|m| parse_mapping(m))
            .collect::<enclave_core::Result<Vec<_>>>()?;
        fn field(name: &'static str) -> impl Fn(String) -> Error {
            move |m| Error::invalid(name, m)
        }
        Ok(JobRequest {
            command: self.command.clone(),
            secrets,
            cpu_millis: self
                .cpus
                .as_deref()
                .map(parse_cpus)
                .transpose()
                .map_err(field("cpus"))?,
            memory_bytes: self
                .memory
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(field("memory"))?,
            timeout_secs: self
                .timeout
                .as_deref()
                .map(|t| enclave_config::parse_duration(t).map(|d| d.as_secs()))
                .transpose()
                .map_err(field("timeout"))?,
        })
    }
}

/// Where to read a log from.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Byte offset (default 0).
    pub offset: Option<u64>,
    /// Most bytes to return (default and maximum 262144).
    pub max: Option<usize>,
}

/// A piece of a job's output (stdout and stderr interleaved).
#[derive(Serialize, ToSchema)]
pub struct JobLogOut {
    /// Where `data` starts.
    pub offset: u64,
    /// Where to ask next.
    pub next_offset: u64,
    /// The whole log's size when read (to start near its end).
    pub size: u64,
    /// The text (invalid UTF-8 replaced).
    pub data: String,
    /// The job's state.
    pub state: String,
    /// The job has ended and all of its output was returned.
    pub complete: bool,
}

impl From<JobLog> for JobLogOut {
    fn from(mut l: JobLog) -> Self {
        // Do not split a character across two pieces: keep an incomplete tail for next time.
        if let Err(e) = std::str::from_utf8(&l.data) {
            if e.error_len().is_none() && !l.complete {
                let keep = e.valid_up_to();
                l.next_offset -= (l.data.len() - keep) as u64;
                l.data.truncate(keep);
            }
        }
        JobLogOut {
            offset: l.offset,
            next_offset: l.next_offset,
            size: l.size,
            data: String::from_utf8_lossy(&l.data).into_owned(),
            state: l.state.as_str().into(),
            complete: l.complete,
        }
    }
}

/// Submits a job: it is queued, then runs in a sandbox on the project's network.
#[utoipa::path(post, path = "/api/v1/projects/{project}/jobs", tag = "jobs",
    params(("project" = String, Path)), request_body = JobIn,
    responses((status = 201, body = JobOut), (status = 400, body = super::dto::ErrorBody),
        (status = 404, body = super::dto::ErrorBody), (status = 503, body = super::dto::ErrorBody)))]
pub async fn submit(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
    Body(b): Body<JobIn>,
) -> ApiResult<(StatusCode, Json<JobOut>)> {
    let req = b.request()?;
    let job = s.app.submit_job(&c, &project, &req).await?;
    Ok((StatusCode::CREATED, Json(job.into())))
}

/// A project's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/jobs", tag = "jobs",
    params(("project" = String, Path)),
    responses((status = 200, body = JobList), (status = 404, body = super::dto::ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
) -> ApiResult<Json<JobList>> {
    let items = s.app.list_jobs(&c, &project).await?;
    Ok(Json(JobList {
        items: items.into_iter().map(JobOut::from).collect(),
    }))
}

/// One job.
#[utoipa::path(get, path = "/api/v1/projects/{project}/jobs/{id}", tag = "jobs",
    params(("project" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = JobOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<JobOut>> {
    Ok(Json(s.app.job(&c, &project, &id).await?.into()))
}

/// A piece of the job's log from `offset`; follow it by asking again from `next_offset`
/// until `complete`.
#[utoipa::path(get, path = "/api/v1/projects/{project}/jobs/{id}/log", tag = "jobs",
    params(("project" = String, Path), ("id" = String, Path), LogQuery),
    responses((status = 200, body = JobLogOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn log(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, id)): Path<(String, String)>,
    Q(q): Q<LogQuery>,
) -> ApiResult<Json<JobLogOut>> {
    let l = s
        .app
        .job_log(
            &c,
            &project,
            &id,
            q.offset.unwrap_or(0),
            q.max.unwrap_or(MAX_LOG_CHUNK),
        )
        .await?;
    Ok(Json(l.into()))
}

/// Cancels a queued or running job.
#[utoipa::path(post, path = "/api/v1/projects/{project}/jobs/{id}/cancel", tag = "jobs",
    params(("project" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = JobOut), (status = 404, body = super::dto::ErrorBody),
        (status = 409, body = super::dto::ErrorBody)))]
pub async fn cancel(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<JobOut>> {
    Ok(Json(s.app.cancel_job(&c, &project, &id).await?.into()))
}
