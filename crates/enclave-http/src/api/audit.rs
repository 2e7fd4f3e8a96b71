//! `/api/v1/audit`: search, export, verification, the public key, and "who accessed my work".

use super::dto::*;
use super::extract::{Body, Q};
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use enclave_core::audit::Outcome;
use enclave_core::{Error, Timestamp};
use enclave_store::{AuditEntry, AuditFilter, AuditOrder};

fn parse_time(field: &str, s: &str) -> enclave_core::Result<Timestamp> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| Timestamp(t.unix_timestamp()))
        .map_err(|_| Error::invalid(field, "an RFC 3339 time like 2026-11-23T08:00:00Z"))
}

fn entry_out(e: AuditEntry) -> AuditRecordOut {
    let r = e.record;
    AuditRecordOut {
        seq: e.seq,
        hash: enclave_audit::to_hex(&e.hash),
        at: r.at.rfc3339(),
        actor: r.actor,
        auth: r.auth,
        source: r.source,
        action: r.action,
        resource: r.resource,
        project: r.project,
        outcome: r.outcome.as_str().into(),
        request_id: r.request_id,
        detail: serde_json::Value::Object(r.detail),
    }
}

/// Searches the audit trail: everything for security auditors and admins, a project's records
/// for its owners, one's own actions for everyone else (`scope` says which).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPageOut), (status = 400, body = ErrorBody)))]
pub async fn search(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<AuditQuery>,
) -> ApiResult<Json<AuditPageOut>> {
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some("success") => Some(Outcome::Success),
        Some("denied") => Some(Outcome::Denied),
        Some("failure") => Some(Outcome::Failure),
        Some(_) => {
            return Err(Error::invalid("outcome", "one of success, denied, failure").into());
        }
    };
    let order = match q.order.as_deref() {
        None | Some("newest") => AuditOrder::NewestFirst,
        Some("oldest") => AuditOrder::OldestFirst,
        Some(_) => return Err(Error::invalid("order", "newest or oldest").into()),
    };
    let clip = |v: Option<String>, field: &str| -> enclave_core::Result<Option<String>> {
        match v {
            Some(s) if s.len() > 256 => Err(Error::invalid(field, "at most 256 characters")),
            v => Ok(v.filter(|s| !s.is_empty())),
        }
    };
    let filter = AuditFilter {
        actor: clip(q.actor, "actor")?,
        action: clip(q.action, "action")?,
        resource: clip(q.resource, "resource")?,
        project: clip(q.project, "project")?,
        outcome,
        since: q
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
        seq_min: None,
        seq_max: None,
    };
    let (page, scope) = s
        .app
        .search_audit(&c, filter, order, q.after, q.limit.unwrap_or(50))
        .await?;
    Ok(Json(AuditPageOut {
        items: page.items.into_iter().map(entry_out).collect(),
        next: page.next,
        scope: scope.as_str().into(),
    }))
}

/// Exports the retained trail as JSON Lines (header, records, signed checkpoints) that anyone
/// with the public key can verify offline (`enclave audit verify --export FILE --public-key K`).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(FromQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 403, body = ErrorBody)))]
pub async fn export(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<FromQuery>,
) -> ApiResult<impl IntoResponse> {
    let body = s.app.export_audit(&c, q.from).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"enclave-audit.jsonl\"",
            ),
        ],
        body,
    ))
}

/// Verifies the stored trail's hash chain and checkpoint signatures; names the first bad
/// record and what is wrong with it.
#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "audit", request_body = VerifyIn,
    responses((status = 200, body = VerifyOut), (status = 403, body = ErrorBody)))]
pub async fn verify(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<VerifyIn>,
) -> ApiResult<Json<VerifyOut>> {
    let verdict = s.app.verify_audit(&c, b.from).await?;
    Ok(Json(VerifyOut::from(verdict)))
}

/// The installation's audit public key and latest signed checkpoint, to keep outside.
#[utoipa::path(get, path = "/api/v1/audit/key", tag = "audit",
    responses((status = 200, body = AuditKeyOut), (status = 403, body = ErrorBody)))]
pub async fn key(State(s): State<AppState>, Authed(c): Authed) -> ApiResult<Json<AuditKeyOut>> {
    let k = s.app.audit_key(&c).await?;
    Ok(Json(AuditKeyOut {
        public_key: k.public_key.to_base64(),
        public_key_hex: k.public_key.to_hex(),
        key_id: k.public_key.key_id(),
        latest_checkpoint: k.latest_checkpoint.map(CheckpointOut::from),
    }))
}

/// Who accessed my work: actions in the caller's projects by people who are not members
/// there (platform admins, support and admin grants), newest first.
#[utoipa::path(get, path = "/api/v1/audit/my-work", tag = "audit", params(LimitQuery),
    responses((status = 200, body = Items<AuditRecordOut>)))]
pub async fn my_work(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<LimitQuery>,
) -> ApiResult<Json<Items<AuditRecordOut>>> {
    let items = s.app.access_to_my_work(&c, q.limit.unwrap_or(100)).await?;
    Ok(Json(Items {
        items: items.into_iter().map(entry_out).collect(),
    }))
}
