//! `/api/v1/tokens`: the caller's personal API tokens.

use super::dto::*;
use super::extract::{Body, Q};
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use enclave_core::model::TokenScope;

/// Lists the caller's tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(ListQuery),
    responses((status = 200, body = List<TokenOut>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    Authed(c): Authed,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<List<TokenOut>>> {
    let page = s.app.list_tokens(&c, &q.page()?).await?;
    Ok(Json(List::from_page(page, TokenOut::from)))
}

/// Creates a token; the secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = TokenCreatedOut), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Authed(c): Authed,
    Body(b): Body<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreatedOut>)> {
    let t = s
        .app
        .create_token(
            &c,
            &b.name,
            b.scope.unwrap_or(TokenScope::Full),
            b.projects,
            b.expires_in_days,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreatedOut {
            meta: t.token.into(),
            token: t.secret,
        }),
    ))
}

/// Reads one of the caller's tokens.
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = TokenOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenOut>> {
    Ok(Json(s.app.get_token(&c, &id).await?.into()))
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.revoke_token(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
