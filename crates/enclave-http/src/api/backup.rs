//! Backups of the whole installation (`POST /api/v1/admin/backup`, platform admins).
//!
//! The answer is the encrypted archive itself (`application/octet-stream`), streamed from a
//! temporary file the use case built; its id, size and SHA-256 are in the headers and in the
//! audit trail. The archive opens only with the installation's master key (`enclave restore`).

use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Response header naming the archive id.
pub const BACKUP_ID_HEADER: &str = "x-enclave-backup-id";
/// Response header with the archive's SHA-256 (lowercase hex).
pub const BACKUP_SHA256_HEADER: &str = "x-enclave-backup-sha256";

/// Writes an encrypted backup archive of the installation while it serves: a consistent
/// snapshot of the database plus the sealed audit signing key, encrypted under a fresh key
/// wrapped by the master key. Restore it with `enclave restore FILE --data-dir NEW
/// --master-key KEYFILE`; the master key is not in the archive. Audited as `backup.create`
/// (before the snapshot, so the archive holds it) and `backup.complete` (size, SHA-256).
#[utoipa::path(post, path = "/api/v1/admin/backup", tag = "backup", operation_id = "create_backup",
    responses(
        (status = 200, content_type = "application/octet-stream", body = String,
            description = "The encrypted archive, binary (format EBK1, see docs/ARCHITECTURE.md)",
            headers(
                ("x-enclave-backup-id" = String, description = "The archive id, as in the audit trail"),
                ("x-enclave-backup-sha256" = String, description = "SHA-256 of the archive, lowercase hex"),
            )),
        (status = 403, body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody, description = "Sealed, or the archive could not be written")))]
pub async fn create(State(s): State<AppState>, Authed(c): Authed) -> ApiResult<Response> {
    let archive = s.app.create_backup(&c).await?;
    let filename = format!("attachment; filename=\"enclave-{}.ebk\"", archive.id);
    let (id, sha, size) = (archive.id.clone(), archive.sha256.clone(), archive.size);
    let stream = futures_util::stream::unfold(Some(archive), |state| async move {
        let mut a = state?;
        match a.read_chunk().await {
            Ok(Some(bytes)) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(bytes)), Some(a))),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, archive = a.id, "reading the backup archive failed");
                Some((Err(e), None))
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, filename),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::HeaderName::from_static(BACKUP_ID_HEADER), id),
            (header::HeaderName::from_static(BACKUP_SHA256_HEADER), sha),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
