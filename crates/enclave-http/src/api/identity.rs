//! Identity sources (`/api/v1/identity-sources…`: list, show, create or replace, delete, test,
//! last login's claims, SCIM token, directory sync) and the login options shown before login
//! (`/api/v1/auth/sources`).

use super::extract::Body;
use crate::auth::Authed;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use enclave_app::{SourceInput, SourceTest, SyncReport};
use enclave_core::identity::{IdentitySource, LdapSettings, OidcSettings, SourceKind};
use enclave_core::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// An identity source as the API shows it: settings without secrets (only whether they are
/// set), the OIDC redirect URI to register at the provider.
#[derive(Serialize, ToSchema)]
pub struct SourceOut {
    /// Name.
    pub name: String,
    /// `oidc` or `ldap`.
    pub kind: String,
    /// Login button text.
    pub display_name: String,
    /// Whether logins are accepted.
    pub enabled: bool,
    /// OIDC settings, with `client_secret_set` and `redirect_uri`.
    #[schema(value_type = Option<Object>)]
    pub oidc: Option<Value>,
    /// LDAP settings, with `bind_password_set`.
    #[schema(value_type = Option<Object>)]
    pub ldap: Option<Value>,
    /// `{"mode": "all"|"domains"|"groups", "domains": [...], "groups": [...]}`.
    #[schema(value_type = Object)]
    pub admission: Value,
    /// `[{"idp_group", "group", "platform_role", "project", "project_role"}]`.
    #[schema(value_type = Vec<Object>)]
    pub mappings: Value,
    /// Whether a SCIM token is set.
    pub scim_token_set: bool,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Last completed directory sync.
    pub last_sync_at: Option<String>,
}

impl SourceOut {
    /// The view of a source; `redirect_uri` is the OIDC callback to register.
    pub fn new(s: IdentitySource, redirect_uri: String) -> SourceOut {
        let with = |v: Value, key: &str, extra: Option<(&str, String)>| {
            let mut m = match v {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            m.insert(key.into(), Value::Bool(s.secret_set));
            if let Some((k, v)) = extra {
                m.insert(k.into(), Value::String(v));
            }
            Value::Object(m)
        };
        SourceOut {
            name: s.name.clone(),
            kind: s.kind.as_str().into(),
            display_name: s.display_name.clone(),
            enabled: s.enabled,
            oidc: s.oidc.as_ref().map(|o| {
                with(
                    serde_json::to_value(o).unwrap_or_default(),
                    "client_secret_set",
                    Some(("redirect_uri", redirect_uri.clone())),
                )
            }),
            ldap: s.ldap.as_ref().map(|l| {
                with(
                    serde_json::to_value(l).unwrap_or_default(),
                    "bind_password_set",
                    None,
                )
            }),
            admission: serde_json::to_value(&s.admission).unwrap_or_default(),
            mappings: serde_json::to_value(&s.mappings).unwrap_or_default(),
            scim_token_set: s.scim_token_set,
            created_at: s.created_at.rfc3339(),
            updated_at: s.updated_at.rfc3339(),
            last_sync_at: s.last_sync_at.map(|t| t.rfc3339()),
        }
    }
}

/// Every identity source.
#[derive(Serialize, ToSchema)]
pub struct SourcesOut {
    /// By name.
    pub sources: Vec<SourceOut>,
}

/// A source to create or replace. `oidc.client_secret` and `ldap.bind_password` are
/// write-only; leaving them out keeps the stored value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceIn {
    /// Must equal the name in the path, when given.
    #[serde(default)]
    pub name: Option<String>,
    /// `oidc` or `ldap`.
    pub kind: String,
    /// Login button text.
    pub display_name: String,
    /// Whether logins are accepted (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// OIDC settings (kind `oidc`): issuer, client_id, client_secret, scopes, algorithms,
    /// email_claim, name_claim, groups_claim, use_userinfo, internal.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub oidc: Option<Value>,
    /// LDAP settings (kind `ldap`): url, starttls, allow_plain, ca_pem, bind_dn,
    /// bind_password, user_base, user_filter, group_base, group_filter, group_name_attr,
    /// member_of_attr, username_attr, email_attr, name_attr, nested_groups, disabled_filter,
    /// sync_interval_secs.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub ldap: Option<Value>,
    /// Who is admitted (default: everyone the source authenticates).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub admission: Option<Value>,
    /// Group mappings.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub mappings: Option<Value>,
}

fn yes() -> bool {
    true
}

/// Read-only keys a client may send back from a `GET` (they are ignored).
const ECHOED: [&str; 4] = [
    "client_secret_set",
    "redirect_uri",
    "bind_password_set",
    "ca_pem_set",
];

fn section<T: serde::de::DeserializeOwned>(
    field: &str,
    v: Value,
    secret_key: &str,
) -> Result<(T, Option<String>), Error> {
    let Value::Object(mut m) = v else {
        return Err(Error::invalid(field, format!("{field} must be an object")));
    };
    for k in ECHOED {
        m.remove(k);
    }
    let secret = match m.remove(secret_key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(Error::invalid(
                field,
                format!("{field}.{secret_key} must be a string"),
            ))
        }
    };
    let t = serde_json::from_value(Value::Object(m))
        .map_err(|e| Error::invalid(field, format!("{field}: {e}")))?;
    Ok((t, secret))
}

impl SourceIn {
    /// Checks the shape and splits off the secret; the app validates the values.
    pub fn into_input(self, name: &str) -> Result<SourceInput, Error> {
        if self.name.as_deref().is_some_and(|n| n != name) {
            return Err(Error::invalid(
                "name",
                "the name in the body differs from the one in the path",
            ));
        }
        let kind = SourceKind::parse(&self.kind)
            .ok_or_else(|| Error::invalid("kind", "kind must be oidc or ldap"))?;
        let mut secret = None;
        let oidc = match self.oidc {
            Some(Value::Null) | None => None,
            Some(v) => {
                let (o, s): (OidcSettings, _) = section("oidc", v, "client_secret")?;
                secret = s;
                Some(o)
            }
        };
        let ldap = match self.ldap {
            Some(Value::Null) | None => None,
            Some(v) => {
                let (l, s): (LdapSettings, _) = section("ldap", v, "bind_password")?;
                secret = secret.or(s);
                Some(l)
            }
        };
        let admission = match self.admission {
            Some(Value::Null) | None => Default::default(),
            Some(v) => serde_json::from_value(v)
                .map_err(|e| Error::invalid("admission", format!("admission: {e}")))?,
        };
        let mappings = match self.mappings {
            Some(Value::Null) | None => Vec::new(),
            Some(v) => serde_json::from_value(v)
                .map_err(|e| Error::invalid("mappings", format!("mappings: {e}")))?,
        };
        Ok(SourceInput {
            kind,
            display_name: self.display_name,
            enabled: self.enabled,
            oidc,
            ldap,
            secret,
            admission,
            mappings,
        })
    }
}

/// Try a source: for LDAP, optionally a user and password.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    /// LDAP: a user to sign in as.
    #[serde(default)]
    pub username: Option<String>,
    /// LDAP: their password (never stored or logged).
    #[serde(default)]
    pub password: Option<String>,
}

/// The person a test found.
#[derive(Serialize, ToSchema)]
pub struct TestIdentity {
    /// Subject at the source.
    pub subject: String,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Groups (nested groups included).
    pub groups: Vec<String>,
}

/// What a test found.
#[derive(Serialize, ToSchema)]
pub struct TestOut {
    /// Whether the source works.
    pub ok: bool,
    /// What was checked, or what failed.
    pub detail: String,
    /// The person found.
    pub identity: Option<TestIdentity>,
    /// Whether the admission rule admits them.
    pub admitted: Option<bool>,
    /// Why not.
    pub reason: Option<String>,
}

impl From<SourceTest> for TestOut {
    fn from(t: SourceTest) -> TestOut {
        TestOut {
            ok: t.ok,
            detail: t.detail,
            identity: t.identity.map(|i| TestIdentity {
                subject: i.subject,
                email: i.email,
                name: i.name,
                groups: i.groups,
            }),
            admitted: t.admitted,
            reason: t.reason,
        }
    }
}

/// The claims of a source's latest login attempt.
#[derive(Serialize, ToSchema)]
pub struct LastLoginOut {
    /// When.
    pub at: String,
    /// Subject.
    pub subject: String,
    /// Whether the admission rule admitted it.
    pub admitted: bool,
    /// Why not.
    pub reason: Option<String>,
    /// The claims (OIDC) or directory attributes (LDAP).
    #[schema(value_type = Object)]
    pub claims: Value,
}

/// A new SCIM token (shown once).
#[derive(Serialize, ToSchema)]
pub struct ScimTokenOut {
    /// The bearer token for the provisioning client.
    pub token: String,
    /// The SCIM base URL for the provisioning client.
    pub scim_url: String,
}

/// What a sync did.
#[derive(Serialize, ToSchema)]
pub struct SyncOut {
    /// Accounts checked.
    pub checked: u64,
    /// Accounts whose profile or mapped access changed.
    pub updated: u64,
    /// Accounts deactivated.
    pub deactivated: u64,
}

impl From<SyncReport> for SyncOut {
    fn from(r: SyncReport) -> SyncOut {
        SyncOut {
            checked: r.checked,
            updated: r.updated,
            deactivated: r.deactivated,
        }
    }
}

/// A way to sign in.
#[derive(Serialize, ToSchema)]
pub struct LoginOptionOut {
    /// Source name.
    pub name: String,
    /// Button text.
    pub display_name: String,
    /// `oidc` (browser redirect to `/auth/oidc/{name}/start`) or `ldap` (password login with
    /// `"source": name`).
    pub kind: String,
}

/// The ways to sign in besides local accounts.
#[derive(Serialize, ToSchema)]
pub struct LoginOptionsOut {
    /// Enabled identity sources.
    pub sources: Vec<LoginOptionOut>,
}

/// The enabled identity sources, for login pages and clients (no credential needed).
#[utoipa::path(get, path = "/api/v1/auth/sources", tag = "auth", security(()),
    responses((status = 200, body = LoginOptionsOut)))]
pub async fn login_options(State(s): State<AppState>) -> ApiResult<Json<LoginOptionsOut>> {
    let sources = s
        .app
        .login_options()
        .await?
        .into_iter()
        .map(|o| LoginOptionOut {
            name: o.name,
            display_name: o.display_name,
            kind: o.kind.as_str().into(),
        })
        .collect();
    Ok(Json(LoginOptionsOut { sources }))
}

/// Lists identity sources (`idp.read`).
#[utoipa::path(get, path = "/api/v1/identity-sources", tag = "identity",
    responses((status = 200, body = SourcesOut), (status = 403, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Authed(c): Authed) -> ApiResult<Json<SourcesOut>> {
    let sources = s
        .app
        .identity_sources(&c)
        .await?
        .into_iter()
        .map(|src| {
            let uri = s.app.oidc_redirect_uri(&src.name);
            SourceOut::new(src, uri)
        })
        .collect();
    Ok(Json(SourcesOut { sources }))
}

/// Shows an identity source (`idp.read`).
#[utoipa::path(get, path = "/api/v1/identity-sources/{name}", tag = "identity",
    params(("name" = String, Path)),
    responses((status = 200, body = SourceOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<SourceOut>> {
    let src = s.app.identity_source(&c, &name).await?;
    Ok(Json(SourceOut::new(src, s.app.oidc_redirect_uri(&name))))
}

/// Creates or replaces an identity source (`idp.manage`).
#[utoipa::path(put, path = "/api/v1/identity-sources/{name}", tag = "identity",
    params(("name" = String, Path)), request_body = SourceIn,
    responses((status = 200, body = SourceOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn put(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Body(b): Body<SourceIn>,
) -> ApiResult<Json<SourceOut>> {
    let input = b.into_input(&name)?;
    let src = s.app.put_identity_source(&c, &name, input).await?;
    Ok(Json(SourceOut::new(src, s.app.oidc_redirect_uri(&name))))
}

/// Deletes an identity source (`idp.manage`); the accounts it created stay.
#[utoipa::path(delete, path = "/api/v1/identity-sources/{name}", tag = "identity",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_identity_source(&c, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tests a source: OIDC discovery and keys; the LDAP service bind, or a full LDAP sign-in of a
/// user with the admission rule's verdict (`idp.manage`).
#[utoipa::path(post, path = "/api/v1/identity-sources/{name}/test", tag = "identity",
    params(("name" = String, Path)), request_body = TestIn,
    responses((status = 200, body = TestOut), (status = 404, body = ErrorBody)))]
pub async fn test(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
    Body(b): Body<TestIn>,
) -> ApiResult<Json<TestOut>> {
    let t = s
        .app
        .test_identity_source(&c, &name, b.username.as_deref(), b.password.as_deref())
        .await?;
    Ok(Json(t.into()))
}

/// The claims (or directory attributes) of the source's latest sign-in attempt
/// (`idp.read`).
#[utoipa::path(get, path = "/api/v1/identity-sources/{name}/last-login", tag = "identity",
    params(("name" = String, Path)),
    responses((status = 200, body = LastLoginOut), (status = 404, body = ErrorBody)))]
pub async fn last_login(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<LastLoginOut>> {
    let l = s.app.identity_last_login(&c, &name).await?;
    Ok(Json(LastLoginOut {
        at: l.at.rfc3339(),
        subject: l.subject,
        admitted: l.admitted,
        reason: l.reason,
        claims: l.claims,
    }))
}

/// Makes a new SCIM bearer token for the source (shown once; the previous one stops working)
/// (`idp.manage`).
#[utoipa::path(post, path = "/api/v1/identity-sources/{name}/scim-token", tag = "identity",
    params(("name" = String, Path)),
    responses((status = 200, body = ScimTokenOut), (status = 404, body = ErrorBody)))]
pub async fn scim_token(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<ScimTokenOut>> {
    let token = s.app.rotate_scim_token(&c, &name).await?;
    Ok(Json(ScimTokenOut {
        token,
        scim_url: format!("{}/scim/v2/{name}", s.app.public_url()),
    }))
}

/// Syncs an LDAP source now: accounts gone or disabled in the directory are deactivated, the
/// others' groups and mapped access refreshed (`idp.manage`).
#[utoipa::path(post, path = "/api/v1/identity-sources/{name}/sync", tag = "identity",
    params(("name" = String, Path)),
    responses((status = 200, body = SyncOut), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn sync(
    State(s): State<AppState>,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<SyncOut>> {
    Ok(Json(s.app.sync_identity_source(&c, &name).await?.into()))
}

use super::dto::ErrorBody;
