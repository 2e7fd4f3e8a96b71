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

/// Reads a time of a search filter as UTC: RFC 3339 (`2026-11-23T08:00:00Z`), or a date and
/// minute (`2026-11-23T08:00`, `2026-11-23 08:00`, as a browser's time field sends it), or a
/// date alone (its midnight).
fn parse_time(field: &str, s: &str) -> enclave_core::Result<Timestamp> {
    let s = s.trim().replacen(' ', "T", 1);
    let full = match s.len() {
        10 => format!("{s}T00:00:00Z"),
        16 => format!("{s}:00Z"),
        _ => s,
    };
    time::OffsetDateTime::parse(&full, &time::format_description::well_known::Rfc3339)
        .map(|t| Timestamp(t.unix_timestamp()))
        .map_err(|_| {
            Error::invalid(
                field,
                "write a UTC time like 2026-11-23T08:00:00Z, 2026-11-23 08:00 or 2026-11-23",
            )
        })
}

/// The filter and order of a search query, checked (the API and the console page share it).
pub(crate) fn filter_of(q: AuditQuery) -> enclave_core::Result<(AuditFilter, AuditOrder)> {
    let outcome = match q.outcome.as_deref() {
        None | Some("") => None,
        Some("success") => Some(Outcome::Success),
        Some("denied") => Some(Outcome::Denied),
        Some("failure") => Some(Outcome::Failure),
        Some(_) => return Err(Error::invalid("outcome", "one of success, denied, failure")),
    };
    let order = match q.order.as_deref() {
        None | Some("newest") => AuditOrder::NewestFirst,
        Some("oldest") => AuditOrder::OldestFirst,
        Some(_) => return Err(Error::invalid("order", "newest or oldest")),
    };
    let clip = |v: Option<String>, field: &str| -> enclave_core::Result<Option<String>> {
        match v.map(|s| s.trim().to_string()) {
            Some(s) if s.len() > 256 => Err(Error::invalid(field, "at most 256 characters")),
            v => Ok(v.filter(|s| !s.is_empty())),
        }
    };
    let time = |v: Option<String>, field: &str| -> enclave_core::Result<Option<Timestamp>> {
        v.filter(|t| !t.trim().is_empty())
            .map(|t| parse_time(field, &t))
            .transpose()
    };
    let filter = AuditFilter {
        actor: clip(q.actor, "actor")?,
        action: clip(q.action, "action")?,
        resource: clip(q.resource, "resource")?,
        project: clip(q.project, "project")?,
        outcome,
        since: time(q.since, "since")?,
        until: time(q.until, "until")?,
        seq_min: None,
        seq_max: None,
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if since > until {
            return Err(Error::invalid(
                "until",
                "the end of the time range is before its start",
            ));
        }
    }
    Ok((filter, order))
}

pub(crate) fn entry_out(e: AuditEntry) -> AuditRecordOut {
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
    let (after, limit) = (q.after, q.limit);
    let (filter, order) = filter_of(q)?;
    let (page, scope) = s
        .app
        .search_audit(&c, filter, order, after, limit.unwrap_or(50))
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
