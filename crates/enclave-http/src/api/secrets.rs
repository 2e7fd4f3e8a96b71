//! A project's secrets (`/api/v1/projects/{project}/secrets…`), the injection-plan check, and
//! the keys (`/api/v1/projects/{project}/keys…`, `/api/v1/keys/master…`).
//!
//! Values travel only in the body of `PUT …/secrets/{name}` and of `GET …/value`; no other
//! answer carries one, and every answer is `Cache-Control: no-store`.

use super::extract::{Body, Q};
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use enclave_app::{KeyStatus, MasterStatus, PlanEntry};
use enclave_core::secrets::{parse_mapping, SecretMeta, SecretVersionMeta};
use enclave_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zeroize::Zeroizing;

/// Largest body of a secret write: a 64 KiB value in base64 plus the JSON around it.
pub const SECRET_BODY_LIMIT: usize = 96 * 1024;

fn ts(t: Timestamp) -> String {
    t.rfc3339()
}

/// A secret's metadata (never its value).
#[derive(Serialize, ToSchema)]
pub struct SecretOut {
    /// Name, unique in the project (or among the owner's personal secrets).
    pub name: String,
    /// Project, for a project's secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Owner (username), for a personal secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What it is for.
    pub description: String,
    /// Newest version.
    pub current_version: u32,
    /// Who created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: String,
    /// When the newest version was written.
    pub updated_at: String,
}

impl From<SecretMeta> for SecretOut {
    fn from(m: SecretMeta) -> Self {
        SecretOut {
            name: m.name,
            project: (!m.project.is_empty()).then_some(m.project),
            owner: m.owner,
            description: m.description,
            current_version: m.current_version,
            created_by: m.created_by,
            created_at: ts(m.created_at),
            updated_at: ts(m.updated_at),
        }
    }
}

/// One version of a secret (never its value).
#[derive(Serialize, ToSchema)]
pub struct SecretVersionOut {
    /// Version number.
    pub version: u32,
    /// Value size in bytes.
    pub size: u32,
    /// Who wrote it.
    pub created_by: String,
    /// When.
    pub created_at: String,
    /// The project key version that seals it.
    pub key_version: u32,
}

impl From<SecretVersionMeta> for SecretVersionOut {
    fn from(v: SecretVersionMeta) -> Self {
        SecretVersionOut {
            version: v.version,
            size: v.size,
            created_by: v.created_by,
            created_at: ts(v.created_at),
            key_version: v.key_version,
        }
    }
}

/// A secret with its versions.
#[derive(Serialize, ToSchema)]
pub struct SecretDetailOut {
    /// The secret.
    #[serde(flatten)]
    pub secret: SecretOut,
    /// Its versions, newest first.
    pub versions: Vec<SecretVersionOut>,
}

/// Secrets of a project.
#[derive(Serialize, ToSchema)]
pub struct SecretList {
    /// By name.
    pub items: Vec<SecretOut>,
}

/// A new value for a secret (creates it, or adds a version). Exactly one of `value` (text)
/// and `value_base64` (any bytes).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value as UTF-8 text.
    pub value: Option<String>,
    /// The value as standard base64.
    pub value_base64: Option<String>,
    /// What it is for (kept when omitted).
    pub description: Option<String>,
}

impl PutSecret {
    /// The value's bytes: exactly one of `value` and `value_base64`.
    fn value(&self) -> enclave_core::Result<Zeroizing<Vec<u8>>> {
        match (&self.value, &self.value_base64) {
            (Some(v), None) => Ok(Zeroizing::new(v.as_bytes().to_vec())),
            (None, Some(v)) => STANDARD
                .decode(v.as_bytes())
                .map(Zeroizing::new)
                .map_err(|_| {
                    Error::invalid("value_base64", "value_base64 is not valid standard base64")
                }),
            _ => Err(Error::invalid(
                "value",
                "send exactly one of value (text) and value_base64",
            )),
        }
    }
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecret { .. }")
    }
}

/// A secret's value. `value` when it is UTF-8 text, otherwise `value_base64`.
#[derive(Serialize, ToSchema)]
pub struct SecretValueOut {
    /// Name.
    pub name: String,
    /// The version read.
    pub version: u32,
    /// The value as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value as base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl SecretValueOut {
    fn new(name: String, version: u32, value: &[u8]) -> Self {
        let text = std::str::from_utf8(value).ok().map(str::to_string);
        SecretValueOut {
            name,
            version,
            value_base64: text.is_none().then(|| STANDARD.encode(value)),
            value: text,
        }
    }
}

/// Which version to read.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// Version number (default: the current one).
    pub version: Option<u32>,
}

/// An injection plan to check: `NAME=env:VARIABLE` or `NAME=file:PATH` lines.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanIn {
    /// The mappings.
    pub map: Vec<String>,
}

/// One checked plan entry.
#[derive(Serialize, ToSchema)]
pub struct PlanEntryOut {
    /// The secret.
    pub secret: String,
    /// The version a workload started now receives.
    pub version: u32,
    /// `env:VARIABLE` or `file:/run/secrets/…`.
    pub target: String,
    /// For files: their mode (octal), always `0400`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl From<PlanEntry> for PlanEntryOut {
    fn from(e: PlanEntry) -> Self {
        let file = matches!(
            e.mapping.target,
            enclave_core::secrets::InjectionTarget::File(_)
        );
        PlanEntryOut {
            secret: e.mapping.secret,
            version: e.version,
            target: e.mapping.target.to_spec(),
            mode: file.then(|| format!("{:04o}", enclave_core::secrets::SECRET_FILE_MODE)),
        }
    }
}

/// A checked plan.
#[derive(Serialize, ToSchema)]
pub struct PlanOut {
    /// Entries in the order given.
    pub items: Vec<PlanEntryOut>,
}

/// One version of a project's data key.
#[derive(Serialize, ToSchema)]
pub struct KeyVersionOut {
    /// Version.
    pub version: u32,
    /// `active`, `decrypt_only` or `retired`.
    pub state: String,
    /// The master key wrapping it (empty once retired).
    pub master_key_id: String,
    /// Created.
    pub created_at: String,
    /// Retired.
    pub retired_at: Option<String>,
    /// Secret versions sealed with it.
    pub sealed: u64,
}

/// A project's data key.
#[derive(Serialize, ToSchema)]
pub struct KeyStatusOut {
    /// Project.
    pub project: String,
    /// Versions, oldest first.
    pub versions: Vec<KeyVersionOut>,
    /// Secret versions still waiting for re-encryption under the active version.
    pub pending: u64,
}

impl From<KeyStatus> for KeyStatusOut {
    fn from(k: KeyStatus) -> Self {
        KeyStatusOut {
            project: k.project,
            versions: k
                .versions
                .into_iter()
                .map(|v| KeyVersionOut {
                    version: v.version,
                    state: v.state.to_string(),
                    master_key_id: v.master_key_id,
                    created_at: ts(v.created_at),
                    retired_at: v.retired_at.map(ts),
                    sealed: v.sealed,
                })
                .collect(),
            pending: k.pending,
        }
    }
}

/// The master keys.
#[derive(Serialize, ToSchema)]
pub struct MasterStatusOut {
    /// `file` or `passphrase`.
    pub provider: String,
    /// Current master key id.
    pub current: String,
    /// Master keys held.
    pub held: Vec<String>,
    /// Data keys in the store.
    pub data_keys: u64,
    /// Data keys still wrapped by an older master key.
    pub pending: u64,
}

impl From<MasterStatus> for MasterStatusOut {
    fn from(m: MasterStatus) -> Self {
        MasterStatusOut {
            provider: m.provider.to_string(),
            current: m.current,
            held: m.held,
            data_keys: m.data_keys,
            pending: m.pending,
        }
    }
}

/// Lists a project's secrets: names and metadata, never values.
#[utoipa::path(get, path = "/api/v1/projects/{project}/secrets", tag = "secrets",
    params(("project" = String, Path)),
    responses((status = 200, body = SecretList), (status = 404, body = super::dto::ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
) -> ApiResult<Json<SecretList>> {
    let items = s.app.list_secrets(&c, &project).await?;
    Ok(Json(SecretList {
        items: items.into_iter().map(SecretOut::from).collect(),
    }))
}

/// A secret's metadata and versions (never values).
#[utoipa::path(get, path = "/api/v1/projects/{project}/secrets/{name}", tag = "secrets",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = SecretDetailOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<SecretDetailOut>> {
    let (meta, versions) = s.app.secret_versions(&c, &project, &name).await?;
    Ok(Json(SecretDetailOut {
        secret: meta.into(),
        versions: versions.into_iter().map(SecretVersionOut::from).collect(),
    }))
}

/// Creates a secret or adds a new version. The answer never echoes the value.
#[utoipa::path(put, path = "/api/v1/projects/{project}/secrets/{name}", tag = "secrets",
    params(("project" = String, Path), ("name" = String, Path)), request_body = PutSecret,
    responses((status = 200, body = SecretOut), (status = 400, body = super::dto::ErrorBody),
        (status = 404, body = super::dto::ErrorBody), (status = 413, body = super::dto::ErrorBody)))]
pub async fn put(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, name)): Path<(String, String)>,
    Body(b): Body<PutSecret>,
) -> ApiResult<Json<SecretOut>> {
    let value = b.value()?;
    let meta = s
        .app
        .set_secret(&c, &project, &name, &value, b.description.as_deref())
        .await?;
    Ok(Json(meta.into()))
}

/// Deletes a secret and all its versions.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/secrets/{name}", tag = "secrets",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::dto::ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_secret(&c, &project, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads a secret's value (its own permission; every read is audited).
#[utoipa::path(get, path = "/api/v1/projects/{project}/secrets/{name}/value", tag = "secrets",
    params(("project" = String, Path), ("name" = String, Path), VersionQuery),
    responses((status = 200, body = SecretValueOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn value(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, name)): Path<(String, String)>,
    Q(q): Q<VersionQuery>,
) -> ApiResult<Json<SecretValueOut>> {
    let (version, value) = s.app.read_secret(&c, &project, &name, q.version).await?;
    Ok(Json(SecretValueOut::new(name, version, &value)))
}

/// Lists your personal secrets (names and metadata, never values).
#[utoipa::path(get, path = "/api/v1/me/secrets", tag = "secrets",
    responses((status = 200, body = SecretList), (status = 401, body = super::dto::ErrorBody)))]
pub async fn list_mine(
    State(s): State<AppState>,
    Authed(c): Authed,
) -> ApiResult<Json<SecretList>> {
    let items = s.app.list_personal_secrets(&c).await?;
    Ok(Json(SecretList {
        items: items.into_iter().map(SecretOut::from).collect(),
    }))
}

/// One of your personal secrets with its versions (never values).
#[utoipa::path(get, path = "/api/v1/me/secrets/{name}", tag = "secrets",
    params(("name" = String, Path)),
    responses((status = 200, body = SecretDetailOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn get_mine(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<SecretDetailOut>> {
    let (meta, versions) = s.app.personal_secret_versions(&c, &name).await?;
    Ok(Json(SecretDetailOut {
        secret: meta.into(),
        versions: versions.into_iter().map(SecretVersionOut::from).collect(),
    }))
}

/// Creates one of your personal secrets or adds a version; only you (and workloads you
/// launch, when their plan names `@NAME`) can read it.
#[utoipa::path(put, path = "/api/v1/me/secrets/{name}", tag = "secrets",
    params(("name" = String, Path)), request_body = PutSecret,
    responses((status = 200, body = SecretOut), (status = 400, body = super::dto::ErrorBody), (status = 413, body = super::dto::ErrorBody)))]
pub async fn put_mine(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Body(b): Body<PutSecret>,
) -> ApiResult<Json<SecretOut>> {
    let value = b.value()?;
    let meta = s
        .app
        .set_personal_secret(&c, &name, &value, b.description.as_deref())
        .await?;
    Ok(Json(meta.into()))
}

/// Deletes one of your personal secrets.
#[utoipa::path(delete, path = "/api/v1/me/secrets/{name}", tag = "secrets",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::dto::ErrorBody)))]
pub async fn delete_mine(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_personal_secret(&c, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads one of your personal secrets (audited).
#[utoipa::path(get, path = "/api/v1/me/secrets/{name}/value", tag = "secrets",
    params(("name" = String, Path), VersionQuery),
    responses((status = 200, body = SecretValueOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn value_mine(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Q(q): Q<VersionQuery>,
) -> ApiResult<Json<SecretValueOut>> {
    let (version, value) = s.app.read_personal_secret(&c, &name, q.version).await?;
    Ok(Json(SecretValueOut::new(name, version, &value)))
}

/// Checks an injection plan for a job in the project: what each secret becomes, at which
/// version. No value is read.
#[utoipa::path(post, path = "/api/v1/projects/{project}/secret-plan", tag = "secrets",
    params(("project" = String, Path)), request_body = PlanIn,
    responses((status = 200, body = PlanOut), (status = 400, body = super::dto::ErrorBody), (status = 404, body = super::dto::ErrorBody)))]
pub async fn plan(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
    Body(b): Body<PlanIn>,
) -> ApiResult<Json<PlanOut>> {
    if b.map.len() > enclave_core::secrets::MAX_PLAN_ENTRIES {
        return Err(Error::invalid(
            "map",
            format!(
                "a workload may receive at most {} secrets",
                enclave_core::secrets::MAX_PLAN_ENTRIES
            ),
        )
        .into());
    }
    let mappings = b
        .map
        .iter()
        .map(|m| parse_mapping(m))
        .collect::<enclave_core::Result<Vec<_>>>()?;
    let entries = s.app.plan_secrets(&c, &project, &mappings).await?;
    Ok(Json(PlanOut {
        items: entries.into_iter().map(PlanEntryOut::from).collect(),
    }))
}

/// A project's data-key versions and re-encryption progress.
#[utoipa::path(get, path = "/api/v1/projects/{project}/keys", tag = "secrets",
    params(("project" = String, Path)),
    responses((status = 200, body = KeyStatusOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn key_status(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
) -> ApiResult<Json<KeyStatusOut>> {
    Ok(Json(s.app.key_status(&c, &project).await?.into()))
}

/// Adds a version of the project's data key; existing data is re-encrypted in the background.
#[utoipa::path(post, path = "/api/v1/projects/{project}/keys/rotate", tag = "secrets",
    params(("project" = String, Path)),
    responses((status = 200, body = KeyStatusOut), (status = 404, body = super::dto::ErrorBody)))]
pub async fn rotate(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(project): Path<String>,
) -> ApiResult<Json<KeyStatusOut>> {
    Ok(Json(s.app.rotate_project_key(&c, &project).await?.into()))
}

/// Retires an old version of the project's data key once nothing uses it.
#[utoipa::path(post, path = "/api/v1/projects/{project}/keys/{version}/retire", tag = "secrets",
    params(("project" = String, Path), ("version" = u32, Path)),
    responses((status = 200, body = KeyStatusOut), (status = 404, body = super::dto::ErrorBody), (status = 409, body = super::dto::ErrorBody)))]
pub async fn retire(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path((project, version)): Path<(String, u32)>,
) -> ApiResult<Json<KeyStatusOut>> {
    Ok(Json(
        s.app
            .retire_project_key(&c, &project, version)
            .await?
            .into(),
    ))
}

/// The master keys' provider and state.
#[utoipa::path(get, path = "/api/v1/keys/master", tag = "secrets",
    responses((status = 200, body = MasterStatusOut), (status = 403, body = super::dto::ErrorBody)))]
pub async fn master(
    State(s): State<AppState>,
    Authed(c): Authed,
) -> ApiResult<Json<MasterStatusOut>> {
    Ok(Json(s.app.master_status(&c).await?.into()))
}

/// Rotates the master key: every data key is rewrapped while the server keeps serving.
#[utoipa::path(post, path = "/api/v1/keys/master/rotate", tag = "secrets",
    responses((status = 200, body = MasterStatusOut), (status = 403, body = super::dto::ErrorBody)))]
pub async fn rotate_master(
    State(s): State<AppState>,
    Authed(c): Authed,
) -> ApiResult<Json<MasterStatusOut>> {
    Ok(Json(s.app.rotate_master_key(&c).await?.into()))
}
