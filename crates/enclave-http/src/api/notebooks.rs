//! Notebook servers (`/api/v1/projects/{project}/notebooks…`: create and start, list, show,
//! stop, start again, delete; the project's code-audit setting) and the environment templates
//! they run (`/api/v1/environments…`: list, show, create or replace, build, delete).

use super::extract::Body;
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use enclave_app::{EnvStatus, EnvironmentView};
use enclave_core::environments::{EnvTemplate, Preset};
use enclave_core::jobs::{cpus, format_size, parse_cpus, parse_size};
use enclave_core::notebooks::{base_path, Notebook, NotebookRequest};
use enclave_core::secrets::parse_mapping;
use enclave_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest body of a notebook or template request.
pub const NOTEBOOK_BODY_LIMIT: usize = 64 * 1024;

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.rfc3339())
}

/// A notebook server.
#[derive(Serialize, ToSchema)]
pub struct NotebookOut {
    /// Project.
    pub project: String,
    /// Name (unique in the project).
    pub name: String,
    /// `starting`, `ready`, `stopping`, `stopped` or `failed`.
    pub state: String,
    /// Why it failed or stopped.
    pub reason: Option<String>,
    /// Environment template.
    pub environment: String,
    /// Resource preset.
    pub preset: String,
    /// CPUs (e.g. `"2"`).
    pub cpus: String,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// The injection plan.
    pub secrets: Vec<String>,
    /// Who owns it.
    pub owner: String,
    /// Where to open it (through Enclave's gateway), once ready: a path on Enclave's own
    /// address. With notebook subdomains on, opening it there hands the browser over to the
    /// notebook's own origin.
    pub url: String,
    /// The notebook's own origin (`https://{name}--{project}.{domain}`) when the server gives
    /// each notebook its own subdomain; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Whether code executed in it is recorded in the audit trail.
    pub audit_code: bool,
    /// Created.
    pub created_at: String,
    /// Last started.
    pub started_at: Option<String>,
    /// Last stopped.
    pub stopped_at: Option<String>,
}

impl From<Notebook> for NotebookOut {
    fn from(n: Notebook) -> Self {
        NotebookOut {
            url: base_path(&n.project, &n.name) + "lab",
            origin: None,
            project: n.project,
            name: n.name,
            state: n.state.as_str().into(),
            reason: n.reason,
            environment: n.environment,
            preset: n.preset,
            cpus: cpus(n.cpu_millis),
            memory_bytes: n.memory_bytes,
            secrets: n.secrets,
            owner: n.owner,
            audit_code: n.audit_code,
            created_at: n.created_at.rfc3339(),
            started_at: ts(n.started_at),
            stopped_at: ts(n.stopped_at),
        }
    }
}

/// The notebook as the API shows it, with its own origin in subdomain mode.
fn out(s: &AppState, n: Notebook) -> NotebookOut {
    let origin = s
        .settings
        .notebook_origins
        .as_ref()
        .and_then(|o| o.origin(&n.project, &n.name));
    NotebookOut { origin, ..n.into() }
}

/// A project's notebook servers.
#[derive(Serialize, ToSchema)]
pub struct NotebookList {
    /// Servers by name.
    pub items: Vec<NotebookOut>,
}

/// A notebook server to create and start.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotebookIn {
    /// Name: lowercase letters, digits and `-`.
    pub name: String,
    /// Environment template (default: the default template).
    pub environment: Option<String>,
    /// Resource preset of the template (default: its first).
    pub preset: Option<String>,
    /// Secrets it receives: `NAME=env:VAR`, `NAME=file:/run/secrets/…`, `@NAME=…` for your
    /// personal secret.
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl NotebookIn {
    /// The request, every field parsed; errors name the field.
    pub fn request(&self) -> enclave_core::Result<NotebookRequest> {
        let secrets = self
            .secrets
            .iter()
            .map(|m| parse_mapping(m))
            .collect::<enclave_core::Result<Vec<_>>>()?;
        let r = NotebookRequest {
            name: self.name.clone(),
            environment: self.environment.clone(),
            preset: self.preset.clone(),
            secrets,
        };
        r.check()?;
        Ok(r)
    }
}

/// Whether code executed in the project's notebooks is recorded.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeAudit {
    /// On (the default) or off.
    pub audit_code: bool,
}

/// Creates a notebook server and starts it (state `starting`, then `ready`).
#[utoipa::path(post, path = "/api/v1/projects/{project}/notebooks", tag = "notebooks",
    params(("project" = String, Path)), request_body = NotebookIn,
    responses((status = 201, body = NotebookOut), (status = 400, body = super::dto::ErrorBody),
        (status = 404, body = super::dto::ErrorBody), (status = 409, body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
    Body(b): Body<NotebookIn>,
) -> ApiResult<(StatusCode, Json<NotebookOut>)> {
    let req = b.request()?;
    let nb = s.app.create_notebook(&c, &project, &req).await?;
    Ok((StatusCode::CREATED, Json(out(&s, nb))))
}

/// A project's notebook servers.
#[utoipa::path(get, path = "/api/v1/projects/{project}/notebooks", tag = "notebooks",
    params(("project" = String, Path)),
    responses((status = 200, body = NotebookList), (status = 404, body = super::dto::ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
) -> ApiResult<Json<NotebookList>> {
    let items = s.app.list_notebooks(&c, &project).await?;
    Ok(Json(NotebookList {
        items: items.into_iter().map(|n| out(&s, n)).collect(),
    }))
}

/// One notebook server.
#[utoipa::path(get, path = "/api/v1/projects/{project}/notebooks/{name}", tag = "notebooks",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = NotebookOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<NotebookOut>> {
    Ok(Json(out(&s, s.app.notebook(&c, &project, &name).await?)))
}

/// Deletes a notebook server (stopping it first); its files stay on the project volume.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/notebooks/{name}", tag = "notebooks",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::dto::ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_notebook(&c, &project, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops a notebook server; its files stay.
#[utoipa::path(post, path = "/api/v1/projects/{project}/notebooks/{name}/stop", tag = "notebooks",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = NotebookOut), (status = 404, body = super::dto::ErrorBody),
        (status = 409, body = super::dto::ErrorBody)))]
pub async fn stop(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<NotebookOut>> {
    Ok(Json(out(
        &s,
        s.app.stop_notebook(&c, &project, &name).await?,
    )))
}

/// Starts a stopped or failed notebook server again.
#[utoipa::path(post, path = "/api/v1/projects/{project}/notebooks/{name}/start", tag = "notebooks",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = NotebookOut), (status = 404, body = super::dto::ErrorBody),
        (status = 409, body = super::dto::ErrorBody), (status = 503, body = super::dto::ErrorBody)))]
pub async fn start(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<NotebookOut>> {
    Ok(Json(out(
        &s,
        s.app.start_notebook(&c, &project, &name).await?,
    )))
}

/// Turns the recording of code executed in the project's notebooks on or off (project
/// owners; applies to servers started afterwards).
#[utoipa::path(put, path = "/api/v1/projects/{project}/code-audit", tag = "notebooks",
    params(("project" = String, Path)), request_body = CodeAudit,
    responses((status = 200, body = CodeAudit), (status = 404, body = super::dto::ErrorBody)))]
pub async fn code_audit(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
    Body(b): Body<CodeAudit>,
) -> ApiResult<Json<CodeAudit>> {
    s.app.set_code_audit(&c, &project, b.audit_code).await?;
    Ok(Json(b))
}

/// A resource preset.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetDto {
    /// Name.
    pub name: String,
    /// CPUs, e.g. `"2"` or `"0.5"`.
    pub cpus: String,
    /// Memory, e.g. `"4G"`.
    pub memory: String,
}

/// An environment template with its build status.
#[derive(Serialize, ToSchema)]
pub struct EnvironmentOut {
    /// Name.
    pub name: String,
    /// Python version (`3.11`).
    pub python: String,
    /// Pinned packages (`name==version`).
    pub packages: Vec<String>,
    /// Resource presets; the first is the default.
    pub presets: Vec<PresetDto>,
    /// Build fingerprint.
    pub fingerprint: String,
    /// `not_built`, `queued`, `building`, `ready` or `failed`.
    pub status: String,
    /// Build progress (0–100) while building.
    pub percent: Option<u8>,
    /// The builder's latest line, or why the build failed.
    pub message: Option<String>,
    /// Every package of the built environment, dependencies included.
    pub installed: Vec<String>,
}

impl From<EnvironmentView> for EnvironmentOut {
    fn from(v: EnvironmentView) -> Self {
        let (percent, message, installed) = match &v.status {
            EnvStatus::Building { percent, message } => {
                (Some(*percent), Some(message.clone()), vec![])
            }
            EnvStatus::Failed { error } => (None, Some(error.clone()), vec![]),
            EnvStatus::Ready { packages } => (None, None, packages.clone()),
            EnvStatus::NotBuilt | EnvStatus::Queued => (None, None, vec![]),
        };
        EnvironmentOut {
            status: v.status.as_str().into(),
            name: v.template.name,
            python: v.template.python,
            packages: v.template.packages,
            presets: v
                .template
                .presets
                .into_iter()
                .map(|p| PresetDto {
                    name: p.name,
                    cpus: cpus(p.cpu_millis),
                    memory: format_size(p.memory_bytes),
                })
                .collect(),
            fingerprint: v.fingerprint,
            percent,
            message,
            installed,
        }
    }
}

/// Every environment template.
#[derive(Serialize, ToSchema)]
pub struct EnvironmentList {
    /// Templates by name.
    pub items: Vec<EnvironmentOut>,
}

/// An environment template to create or replace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentIn {
    /// Python version (`3.11`); the server needs `/usr/bin/python3.11`.
    pub python: String,
    /// Exact pins (`name==version`), `jupyterlab` and `ipykernel` among them.
    pub packages: Vec<String>,
    /// Resource presets; the first is the default.
    pub presets: Vec<PresetDto>,
}

impl EnvironmentIn {
    /// The template named `name`, every field parsed; errors name the field.
    pub fn template(&self, name: &str) -> enclave_core::Result<EnvTemplate> {
        let presets = self
            .presets
            .iter()
            .map(|p| {
                Ok(Preset {
                    name: p.name.clone(),
                    cpu_millis: parse_cpus(&p.cpus)
                        .map_err(|m| Error::invalid("presets.cpus", m))?,
                    memory_bytes: parse_size(&p.memory)
                        .map_err(|m| Error::invalid("presets.memory", m))?,
                })
            })
            .collect::<enclave_core::Result<Vec<_>>>()?;
        let t = EnvTemplate {
            name: name.to_string(),
            python: self.python.clone(),
            packages: self.packages.clone(),
            presets,
        };
        t.check()?;
        Ok(t)
    }
}

/// Every environment template with its build status.
#[utoipa::path(get, path = "/api/v1/environments", tag = "notebooks",
    responses((status = 200, body = EnvironmentList)))]
pub async fn list_environments(
    State(s): State<AppState>,
    Authed(c): Authed,
) -> ApiResult<Json<EnvironmentList>> {
    let items = s.app.list_environments(&c).await?;
    Ok(Json(EnvironmentList {
        items: items.into_iter().map(EnvironmentOut::from).collect(),
    }))
}

/// One environment template with its build status.
#[utoipa::path(get, path = "/api/v1/environments/{name}", tag = "notebooks",
    params(("name" = String, Path)),
    responses((status = 200, body = EnvironmentOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn get_environment(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<EnvironmentOut>> {
    Ok(Json(s.app.environment(&c, &name).await?.into()))
}

/// Creates or replaces an environment template (platform admins) and starts its build.
#[utoipa::path(put, path = "/api/v1/environments/{name}", tag = "notebooks",
    params(("name" = String, Path)), request_body = EnvironmentIn,
    responses((status = 200, body = EnvironmentOut), (status = 400, body = super::dto::ErrorBody),
        (status = 403, body = super::dto::ErrorBody)))]
pub async fn put_environment(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Body(b): Body<EnvironmentIn>,
) -> ApiResult<Json<EnvironmentOut>> {
    let t = b.template(&name)?;
    Ok(Json(s.app.put_environment(&c, t).await?.into()))
}

/// Deletes an environment template no notebook server uses (platform admins).
#[utoipa::path(delete, path = "/api/v1/environments/{name}", tag = "notebooks",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::dto::ErrorBody),
        (status = 409, body = super::dto::ErrorBody)))]
pub async fn delete_environment(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_environment(&c, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts building an environment template (platform admins); follow it with `GET`.
#[utoipa::path(post, path = "/api/v1/environments/{name}/build", tag = "notebooks",
    params(("name" = String, Path)),
    responses((status = 202, body = EnvironmentOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn build_environment(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<EnvironmentOut>)> {
    let v = s.app.build_environment(&c, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(v.into())))
}
