//! SCIM 2.0 provisioning at `/scim/v2/{source}`: the [`enclave_scim`] protocol layer over
//! Enclave's accounts and groups ([`EnclaveScim`], a [`ScimBackend`] calling [`App`]).
//!
//! A SCIM request is authorized by the bearer token of the identity source named in the path
//! (checked by [`App::scim_authenticate`] in constant time against the stored hash); that token
//! reaches only the accounts linked to its own source and the groups it created, so these
//! routes make no policy decision of their own (see [`crate::decided`]).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use enclave_app::{
    App, RequestMeta, ScimGroupInput, ScimGroupRecord, ScimSource, ScimUserInput, ScimUserRecord,
    SCIM_VERSION_MISMATCH,
};
use enclave_core::{Error, ErrorCode, Timestamp};
use enclave_scim::{
    BackendError, BoxFuture, Email, Group, GroupRef, ListPage, ListQuery, Member, Meta,
    ScimBackend, ScimCaller, ScimConfig, User,
};
use serde_json::Value;
use std::sync::Arc;
use time::OffsetDateTime;

/// Where the SCIM endpoints are mounted; `{source}` names the identity source.
pub const SCIM_PATH: &str = "/scim/v2/{source}";

tokio::task_local! {
    /// The request metadata (source address, request id) of the SCIM request being served.
    static META: RequestMeta;
}

/// The SCIM router over Enclave's accounts, to be mounted at [`SCIM_PATH`].
pub fn routes(app: App) -> Router {
    let config = ScimConfig {
        public_origin: Some(app.public_url().to_string()),
    };
    enclave_scim::router(Arc::new(EnclaveScim { app }), config)
        .layer(axum::middleware::from_fn(with_meta))
}

/// Makes the request's metadata available to the backend for its audit records.
async fn with_meta(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let meta = crate::auth::request_meta(&parts);
    META.scope(meta, next.run(Request::from_parts(parts, body)))
        .await
}

fn meta() -> RequestMeta {
    META.try_with(Clone::clone)
        .unwrap_or_else(|_| RequestMeta::local())
}

/// The SCIM backend: every operation verifies the caller's token for its source, then calls
/// the matching `App::scim_*` use case.
pub struct EnclaveScim {
    app: App,
}

impl EnclaveScim {
    /// A backend over `app`.
    pub fn new(app: App) -> Self {
        EnclaveScim { app }
    }

    async fn source(&self, caller: &ScimCaller) -> Result<ScimSource, BackendError> {
        self.app
            .scim_authenticate(caller.source(), caller.token(), &meta())
            .await
            .map_err(backend_error)
    }
}

fn backend_error(e: Error) -> BackendError {
    match e.code {
        ErrorCode::NotFound => BackendError::NotFound,
        ErrorCode::Conflict if e.details.contains_key(SCIM_VERSION_MISMATCH) => {
            BackendError::VersionMismatch
        }
        ErrorCode::Conflict => BackendError::Conflict(e.message),
        ErrorCode::Unauthenticated | ErrorCode::InvalidCredentials => BackendError::Unauthorized,
        ErrorCode::Forbidden => BackendError::Forbidden,
        ErrorCode::InvalidInput
        | ErrorCode::InvalidRequest
        | ErrorCode::PayloadTooLarge
        | ErrorCode::UnsupportedMediaType => BackendError::Invalid(e.message),
        _ => BackendError::Unavailable,
    }
}

fn time_of(t: Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.unix()).ok()
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Attributes that Enclave stores elsewhere or computes; not kept in the attribute set.
/// (`active` is kept, to know whether the client asserts it: the view shows it only then.)
const COMPUTED: &[&str] = &["schemas", "id", "meta", "groups", "userName", "externalId"];

fn user_input(u: &User) -> ScimUserInput {
    let mut attributes = u.to_json("");
    if let Some(obj) = attributes.as_object_mut() {
        obj.retain(|k, _| !COMPUTED.contains(&k.as_str()));
    }
    let name = u.name.as_ref();
    let joined = name.map(|n| {
        [n.given_name.as_deref(), n.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    });
    let display_name = non_empty(u.display_name.as_deref())
        .or_else(|| non_empty(name.and_then(|n| n.formatted.as_deref())))
        .or_else(|| non_empty(joined.as_deref()));
    let email = u
        .emails
        .iter()
        .find(|e| e.primary == Some(true))
        .or_else(|| u.emails.first())
        .map(|e| e.value.trim().to_string())
        .filter(|e| !e.is_empty());
    ScimUserInput {
        user_name: u.user_name.clone(),
        external_id: u.external_id.clone(),
        display_name,
        email,
        active: u.active,
        attributes,
    }
}

fn user_view(r: ScimUserRecord) -> User {
    let stored = r.attributes.as_ref().and_then(|a| {
        let mut a = a.clone();
        a.as_object_mut()?
            .insert("userName".into(), Value::String(r.user_name.clone()));
        User::from_json(&a).ok()
    });
    let mut u = stored.unwrap_or_else(|| User {
        display_name: non_empty(Some(&r.display_name)),
        emails: if r.email.is_empty() {
            Vec::new()
        } else {
            vec![Email {
                value: r.email.clone(),
                kind: None,
                primary: Some(true),
            }]
        },
        ..User::default()
    });
    u.id = r.id;
    u.user_name = r.user_name;
    u.external_id = r.external_id;
    // The account's real state, where the client asserts `active` (or never wrote the account);
    // a client that removed `active` sees none, while the account stays as it was.
    let asserted = r
        .attributes
        .as_ref()
        .is_none_or(|a| a.get("active").is_some_and(|v| !v.is_null()));
    u.active = asserted.then_some(r.active);
    u.groups = r
        .groups
        .into_iter()
        .map(|(value, display)| GroupRef {
            value,
            display: Some(display),
        })
        .collect();
    u.meta = Meta {
        created: time_of(r.created),
        last_modified: time_of(r.modified),
        version: Some(r.version),
    };
    u
}

fn group_input(g: &Group) -> ScimGroupInput {
    let is_group = |m: &&Member| {
        m.kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("group"))
    };
    ScimGroupInput {
        display_name: g.display_name.clone(),
        external_id: g.external_id.clone(),
        members: g
            .members
            .iter()
            .filter(|m| !is_group(m))
            .map(|m| m.value.clone())
            .collect(),
        group_members: g
            .members
            .iter()
            .filter(is_group)
            .map(|m| m.value.clone())
            .collect(),
    }
}

fn group_view(r: ScimGroupRecord) -> Group {
    Group {
        id: r.id,
        external_id: r.external_id,
        display_name: r.display_name,
        members: r
            .members
            .into_iter()
            .map(|value| Member {
                value,
                kind: Some("User".into()),
            })
            .collect(),
        meta: Meta {
            created: time_of(r.created),
            last_modified: time_of(r.modified),
            version: Some(r.version),
        },
    }
}

/// Filters in memory and cuts one page.
fn page<T>(all: Vec<T>, query: &ListQuery, json: impl Fn(&T) -> Value) -> ListPage<T> {
    let matched: Vec<T> = all
        .into_iter()
        .filter(|r| query.filter.as_ref().is_none_or(|f| f.matches(&json(r))))
        .collect();
    let total = matched.len();
    let items = matched
        .into_iter()
        .skip(query.start_index.saturating_sub(1))
        .take(query.count)
        .collect();
    ListPage { total, items }
}

impl ScimBackend for EnclaveScim {
    fn authenticate<'a>(
        &'a self,
        caller: &'a ScimCaller,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move { self.source(caller).await.map(|_| ()) })
    }

    fn list_users<'a>(
        &'a self,
        caller: &'a ScimCaller,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<User>, BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            let all = self.app.scim_users(&src).await.map_err(backend_error)?;
            let users: Vec<User> = all.into_iter().map(user_view).collect();
            Ok(page(users, query, |u| u.to_json("")))
        })
    }

    fn get_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<User, BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            let r = self.app.scim_user(&src, id).await.map_err(backend_error)?;
            Ok(user_view(r))
        })
    }

    fn create_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        user: User,
    ) -> BoxFuture<'a, Result<User, BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            let r = self
                .app
                .scim_create_user(&src, user_input(&user), &meta())
                .await
                .map_err(backend_error)?;
            Ok(user_view(r))
        })
    }

    fn replace_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        user: User,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<User, BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            let r = self
                .app
                .scim_replace_user(&src, id, user_input(&user), expected_version, &meta())
                .await
                .map_err(backend_error)?;
            Ok(user_view(r))
        })
    }

    fn delete_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            self.app
                .scim_delete_user(&src, id, expected_version, &meta())
                .await
                .map_err(backend_error)
        })
    }

    fn list_groups<'a>(
        &'a self,
        caller: &'a ScimCaller,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<Group>, BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            let all = self.app.scim_groups(&src).await.map_err(backend_error)?;
            let groups: Vec<Group> = all.into_iter().map(group_view).collect();
            Ok(page(groups, query, |g| g.to_json("")))
        })
    }

    fn get_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Group, BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            let r = self.app.scim_group(&src, id).await.map_err(backend_error)?;
            Ok(group_view(r))
        })
    }

    fn create_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        group: Group,
    ) -> BoxFuture<'a, Result<Group, BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            let r = self
                .app
                .scim_create_group(&src, group_input(&group), &meta())
                .await
                .map_err(backend_error)?;
            Ok(group_view(r))
        })
    }

    fn replace_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        group: Group,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<Group, BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            let r = self
                .app
                .scim_replace_group(&src, id, group_input(&group), expected_version, &meta())
                .await
                .map_err(backend_error)?;
            Ok(group_view(r))
        })
    }

    fn delete_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let src = self.source(caller).await?;
            self.app
                .scim_delete_group(&src, id, expected_version, &meta())
                .await
                .map_err(backend_error)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_input_takes_enclave_fields_and_keeps_the_rest() {
        let u = User::from_json(&json!({
            "userName": "Bjensen@example.com", "externalId": "e1", "active": false,
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@home.test"}, {"value": "b@work.test", "primary": true}],
        }))
        .unwrap();
        let i = user_input(&u);
        assert_eq!(i.display_name.as_deref(), Some("Barbara Jensen"));
        assert_eq!(i.email.as_deref(), Some("b@work.test"));
        assert_eq!(i.active, Some(false));
        assert!(i.attributes.get("userName").is_none());
        assert_eq!(i.attributes["active"], false);
        assert_eq!(i.attributes["name"]["givenName"], "Barbara");
    }

    #[test]
    fn errors_map_to_scim() {
        let vm = Error::new(ErrorCode::Conflict, "x").with(SCIM_VERSION_MISMATCH, true);
        assert_eq!(backend_error(vm), BackendError::VersionMismatch);
        assert_eq!(
            backend_error(Error::new(ErrorCode::Conflict, "taken")),
            BackendError::Conflict("taken".into())
        );
        assert_eq!(
            backend_error(Error::unauthenticated()),
            BackendError::Unauthorized
        );
        assert_eq!(
            backend_error(Error::invalid("emails", "bad")),
            BackendError::Invalid("bad".into())
        );
        assert_eq!(backend_error(Error::internal()), BackendError::Unavailable);
    }
}
