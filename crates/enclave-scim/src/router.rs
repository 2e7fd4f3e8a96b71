//! The axum router: authentication, list/get/create/replace/patch/delete, ETags, projection.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, OriginalUri, Query, RawPathParams, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::error::{ScimError, SCIM_CONTENT_TYPE};
use crate::filter::Filter;
use crate::model::{Group, Meta, User, GROUP_SCHEMA, USER_SCHEMA};
use crate::patch::{apply_patch, parse_patch, PatchSchema};
use crate::{discovery, BackendError, BoxFuture, ListPage, ListQuery, ScimBackend, ScimCaller};

/// Largest request body accepted, in bytes (larger: 413).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Page size when the client gives no `count`.
pub const DEFAULT_COUNT: usize = 100;
/// Largest page size; larger `count` values are lowered to it.
pub const MAX_COUNT: usize = 100;
/// Longest bearer token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 4096;
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// Router settings.
#[derive(Debug, Clone, Default)]
pub struct ScimConfig {
    /// Public origin used in `meta.location` (`https://enclave.example.org`); when `None`,
    /// `http://` plus the request's `Host` header.
    pub public_origin: Option<String>,
}

struct Inner {
    backend: Arc<dyn ScimBackend>,
    config: ScimConfig,
}

type St = State<Arc<Inner>>;

/// Builds the SCIM router over a backend. Mount it with `Router::nest("/scim/v2/{source}", ...)`;
/// its routes are relative (`/Users`, `/Groups/{id}`, `/Schemas`, ...).
pub fn router(backend: Arc<dyn ScimBackend>, config: ScimConfig) -> Router {
    let inner = Arc::new(Inner { backend, config });
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema))
        .route("/Users", get(list::<User>).post(create::<User>))
        .route("/Users/.search", post(search::<User>))
        .route(
            "/Users/{id}",
            get(read::<User>)
                .put(replace::<User>)
                .patch(patch::<User>)
                .delete(delete::<User>),
        )
        .route("/Groups", get(list::<Group>).post(create::<Group>))
        .route("/Groups/.search", post(search::<Group>))
        .route(
            "/Groups/{id}",
            get(read::<Group>)
                .put(replace::<Group>)
                .patch(patch::<Group>)
                .delete(delete::<Group>),
        )
        .route("/.search", post(root_search))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(inner)
}

/// What the handlers need to know about a resource type.
trait Kind: Sized + Send + Sync + 'static {
    const PATCH: PatchSchema;
    fn parse(v: &Value) -> Result<Self, ScimError>;
    fn json(&self, base: &str) -> Value;
    fn meta(&self) -> &Meta;
    fn set_id(&mut self, id: &str);
    /// Copies read-only attributes of the stored resource into a replacement.
    fn keep_read_only(&mut self, _current: &Self) {}
    fn list<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        q: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<Self>, BackendError>>;
    fn get<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Self, BackendError>>;
    fn create<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        r: Self,
    ) -> BoxFuture<'a, Result<Self, BackendError>>;
    fn replace<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
        r: Self,
        v: Option<u64>,
    ) -> BoxFuture<'a, Result<Self, BackendError>>;
    fn delete<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
        v: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
}

impl Kind for User {
    const PATCH: PatchSchema = PatchSchema {
        core_urn: USER_SCHEMA,
        multi_valued: &[
            "emails",
            "groups",
            "phoneNumbers",
            "addresses",
            "ims",
            "photos",
            "entitlements",
            "roles",
            "x509Certificates",
        ],
        read_only: &["id", "meta", "schemas", "groups"],
    };
    fn parse(v: &Value) -> Result<Self, ScimError> {
        User::from_json(v)
    }
    fn json(&self, base: &str) -> Value {
        self.to_json(base)
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn set_id(&mut self, id: &str) {
        self.id = id.to_string();
    }
    fn keep_read_only(&mut self, current: &Self) {
        self.groups = current.groups.clone();
        self.meta = current.meta.clone();
    }
    fn list<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        q: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<Self>, BackendError>> {
        b.list_users(c, q)
    }
    fn get<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Self, BackendError>> {
        b.get_user(c, id)
    }
    fn create<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        r: Self,
    ) -> BoxFuture<'a, Result<Self, BackendError>> {
        b.create_user(c, r)
    }
    fn replace<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
        r: Self,
        v: Option<u64>,
    ) -> BoxFuture<'a, Result<Self, BackendError>> {
        b.replace_user(c, id, r, v)
    }
    fn delete<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
        v: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        b.delete_user(c, id, v)
    }
}

impl Kind for Group {
    const PATCH: PatchSchema = PatchSchema {
        core_urn: GROUP_SCHEMA,
        multi_valued: &["members"],
        read_only: &["id", "meta", "schemas"],
    };
    fn parse(v: &Value) -> Result<Self, ScimError> {
        Group::from_json(v)
    }
    fn json(&self, base: &str) -> Value {
        self.to_json(base)
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn set_id(&mut self, id: &str) {
        self.id = id.to_string();
    }
    fn keep_read_only(&mut self, current: &Self) {
        self.meta = current.meta.clone();
    }
    fn list<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        q: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<Self>, BackendError>> {
        b.list_groups(c, q)
    }
    fn get<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Self, BackendError>> {
        b.get_group(c, id)
    }
    fn create<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        r: Self,
    ) -> BoxFuture<'a, Result<Self, BackendError>> {
        b.create_group(c, r)
    }
    fn replace<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
        r: Self,
        v: Option<u64>,
    ) -> BoxFuture<'a, Result<Self, BackendError>> {
        b.replace_group(c, id, r, v)
    }
    fn delete<'a>(
        b: &'a dyn ScimBackend,
        c: &'a ScimCaller,
        id: &'a str,
        v: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        b.delete_group(c, id, v)
    }
}

/// Request context: the caller, the SCIM root URL (for locations) and the `{id}` segment.
struct Ctx {
    caller: ScimCaller,
    base: String,
    id: String,
}

/// Reads `Authorization: Bearer <token>`; `None` when absent or malformed.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && !token.contains(char::is_whitespace))
    .then(|| token.to_string())
}

fn context(
    inner: &Inner,
    headers: &HeaderMap,
    original: &Uri,
    uri: &Uri,
    params: &RawPathParams,
) -> Result<Ctx, ScimError> {
    let token = bearer(headers).ok_or_else(ScimError::unauthorized)?;
    let mut source = String::new();
    let mut id = String::new();
    for (k, v) in params {
        match k {
            "source" => source = v.to_string(),
            "id" => id = v.to_string(),
            _ => {}
        }
    }
    let origin = match &inner.config.public_origin {
        Some(o) => o.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    // The mount prefix is what the nesting router stripped from the original path.
    let full = original.path();
    let prefix = full
        .strip_suffix(uri.path())
        .unwrap_or("")
        .trim_end_matches('/');
    Ok(Ctx {
        caller: ScimCaller::new(token, source),
        base: format!("{origin}{prefix}"),
        id,
    })
}

fn scim_response(status: StatusCode, body: &Value, etag: Option<String>) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert(header::ETAG, tag);
    }
    resp
}

fn read_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Value, ScimError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.contains("json") {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "send the body as application/scim+json (or application/json)",
            ));
        }
    }
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ScimError::bad_request("invalidSyntax", "the body could not be read")
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ScimError::bad_request("invalidSyntax", format!("the body is not valid JSON: {e}"))
    })
}

/// Whether an `If-Match`/`If-None-Match` header value matches the current version (weak comparison).
fn etag_matches(header_value: &str, current: Option<&str>) -> bool {
    let strip = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    header_value
        .split(',')
        .any(|t| t.trim() == "*" || current.is_some_and(|c| strip(t) == strip(c)))
}

fn check_if_match(headers: &HeaderMap, meta: &Meta) -> Result<(), ScimError> {
    if let Some(v) = headers.get(header::IF_MATCH) {
        let v = v.to_str().unwrap_or("");
        if !etag_matches(v, meta.etag().as_deref()) {
            return Err(ScimError::precondition_failed());
        }
    }
    Ok(())
}

/// `attributes` / `excludedAttributes` over a resource's JSON (top level and `attr.sub`).
fn project(v: &mut Value, attributes: &[String], excluded: &[String]) {
    let Some(obj) = v.as_object_mut() else { return };
    let split = |a: &String| -> (String, Option<String>) {
        let a = match a.rfind(':') {
            Some(p) if a.to_ascii_lowercase().starts_with("urn:") => &a[p + 1..],
            _ => a.as_str(),
        };
        match a.split_once('.') {
            Some((x, y)) => (x.to_ascii_lowercase(), Some(y.to_ascii_lowercase())),
            None => (a.to_ascii_lowercase(), None),
        }
    };
    const ALWAYS: [&str; 2] = ["id", "schemas"];
    if !attributes.is_empty() {
        let wanted: Vec<(String, Option<String>)> = attributes.iter().map(split).collect();
        let keys: Vec<String> = obj.keys().cloned().collect();
        for k in keys {
            let lk = k.to_ascii_lowercase();
            if ALWAYS.contains(&lk.as_str()) {
                continue;
            }
            let subs: Vec<&Option<String>> = wanted
                .iter()
                .filter(|(a, _)| *a == lk)
                .map(|(_, s)| s)
                .collect();
            if subs.is_empty() {
                obj.remove(&k);
            } else if subs.iter().all(|s| s.is_some()) {
                let keep: Vec<&String> = subs.iter().filter_map(|s| s.as_ref()).collect();
                let trim = |o: &mut Map<String, Value>| {
                    o.retain(|sk, _| keep.contains(&&sk.to_ascii_lowercase()))
                };
                match obj.get_mut(&k) {
                    Some(Value::Object(o)) => trim(o),
                    Some(Value::Array(a)) => {
                        a.iter_mut().filter_map(Value::as_object_mut).for_each(trim)
                    }
                    _ => {}
                }
            }
        }
    } else if !excluded.is_empty() {
        for (a, sub) in excluded.iter().map(split) {
            if ALWAYS.contains(&a.as_str()) {
                continue;
            }
            let Some(k) = obj.keys().find(|k| k.eq_ignore_ascii_case(&a)).cloned() else {
                continue;
            };
            match sub {
                None => {
                    obj.remove(&k);
                }
                Some(s) => {
                    let drop =
                        |o: &mut Map<String, Value>| o.retain(|sk, _| !sk.eq_ignore_ascii_case(&s));
                    match obj.get_mut(&k) {
                        Some(Value::Object(o)) => drop(o),
                        Some(Value::Array(arr)) => arr
                            .iter_mut()
                            .filter_map(Value::as_object_mut)
                            .for_each(drop),
                        _ => {}
                    }
                }
            }
        }
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// List parameters, from the query string or a `.search` body.
#[derive(Debug, Default)]
struct ListParams {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn parse_int(name: &str, v: &str) -> Result<i64, ScimError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ScimError::bad_request("invalidValue", format!("'{name}' must be an integer")))
}

fn params_from_query(q: &[(String, String)]) -> Result<ListParams, ScimError> {
    let mut p = ListParams::default();
    for (k, v) in q {
        match k.to_ascii_lowercase().as_str() {
            "filter" => p.filter = Some(v.clone()),
            "startindex" => p.start_index = Some(parse_int("startIndex", v)?),
            "count" => p.count = Some(parse_int("count", v)?),
            "attributes" => p.attributes = split_list(v),
            "excludedattributes" => p.excluded = split_list(v),
            _ => {}
        }
    }
    if !p.attributes.is_empty() && !p.excluded.is_empty() {
        return Err(ScimError::bad_request(
            "invalidValue",
            "give either 'attributes' or 'excludedAttributes', not both",
        ));
    }
    Ok(p)
}

fn params_from_search(body: &Value) -> Result<ListParams, ScimError> {
    use crate::filter::get_ci;
    let strings = |key: &str| -> Result<Vec<String>, ScimError> {
        match get_ci(body, key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| {
                    s.as_str().map(str::to_string).ok_or_else(|| {
                        ScimError::bad_request("invalidValue", format!("'{key}' must list strings"))
                    })
                })
                .collect(),
            Some(Value::String(s)) => Ok(split_list(s)),
            Some(_) => Err(ScimError::bad_request(
                "invalidValue",
                format!("'{key}' must list strings"),
            )),
        }
    };
    let int = |key: &str| -> Result<Option<i64>, ScimError> {
        match get_ci(body, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                ScimError::bad_request("invalidValue", format!("'{key}' must be an integer"))
            }),
            Some(Value::String(s)) => parse_int(key, s).map(Some),
            Some(_) => Err(ScimError::bad_request(
                "invalidValue",
                format!("'{key}' must be an integer"),
            )),
        }
    };
    let filter = match get_ci(body, "filter") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ScimError::bad_request(
                "invalidFilter",
                "'filter' must be a string",
            ))
        }
    };
    let p = ListParams {
        filter,
        start_index: int("startIndex")?,
        count: int("count")?,
        attributes: strings("attributes")?,
        excluded: strings("excludedAttributes")?,
    };
    if !p.attributes.is_empty() && !p.excluded.is_empty() {
        return Err(ScimError::bad_request(
            "invalidValue",
            "give either 'attributes' or 'excludedAttributes', not both",
        ));
    }
    Ok(p)
}

/// Turns list parameters into a [`ListQuery`]: startIndex < 1 → 1, count < 0 → 0, count capped.
fn list_query(p: &ListParams) -> Result<ListQuery, ScimError> {
    let filter = match p.filter.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(f) => Some(Filter::parse(f)?),
    };
    let start_index = usize::try_from(p.start_index.unwrap_or(1).max(1)).unwrap_or(1);
    let count = usize::try_from(p.count.unwrap_or(DEFAULT_COUNT as i64).max(0))
        .unwrap_or(0)
        .min(MAX_COUNT);
    Ok(ListQuery {
        filter,
        start_index,
        count,
    })
}

async fn run_list<K: Kind>(inner: &Inner, ctx: &Ctx, p: ListParams) -> Result<Response, ScimError> {
    let q = list_query(&p)?;
    let page = K::list(inner.backend.as_ref(), &ctx.caller, &q).await?;
    let resources: Vec<Value> = page
        .items
        .iter()
        .take(q.count)
        .map(|r| {
            let mut v = r.json(&ctx.base);
            project(&mut v, &p.attributes, &p.excluded);
            v
        })
        .collect();
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": page.total,
        "startIndex": q.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    Ok(scim_response(StatusCode::OK, &body, None))
}

fn respond(r: Result<Response, ScimError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn list<K: Kind>(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    respond(
        async {
            let ctx = context(&inner, &headers, &original, &uri, &params)?;
            let Query(query) = query.map_err(|_| {
                ScimError::bad_request("invalidValue", "the query string is malformed")
            })?;
            run_list::<K>(&inner, &ctx, params_from_query(&query)?).await
        }
        .await,
    )
}

async fn search<K: Kind>(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(
        async {
            let ctx = context(&inner, &headers, &original, &uri, &params)?;
            let body = read_body(&headers, body)?;
            let schemas_ok = crate::filter::get_ci(&body, "schemas")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    a.iter().any(|s| {
                        s.as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_SCHEMA))
                    })
                });
            if !schemas_ok {
                return Err(ScimError::bad_request(
                    "invalidSyntax",
                    format!("a search body must list \"{SEARCH_SCHEMA}\" in 'schemas'"),
                ));
            }
            run_list::<K>(&inner, &ctx, params_from_search(&body)?).await
        }
        .await,
    )
}

async fn read<K: Kind>(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    respond(
        async {
            let ctx = context(&inner, &headers, &original, &uri, &params)?;
            let Query(query) = query.map_err(|_| {
                ScimError::bad_request("invalidValue", "the query string is malformed")
            })?;
            let p = params_from_query(&query)?;
            let r = K::get(inner.backend.as_ref(), &ctx.caller, &ctx.id).await?;
            let etag = r.meta().etag();
            if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
                if etag_matches(inm.to_str().unwrap_or(""), etag.as_deref()) {
                    let mut resp = StatusCode::NOT_MODIFIED.into_response();
                    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
                        resp.headers_mut().insert(header::ETAG, tag);
                    }
                    return Ok(resp);
                }
            }
            let mut v = r.json(&ctx.base);
            project(&mut v, &p.attributes, &p.excluded);
            Ok(scim_response(StatusCode::OK, &v, etag))
        }
        .await,
    )
}

async fn create<K: Kind>(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(
        async {
            let ctx = context(&inner, &headers, &original, &uri, &params)?;
            let body = read_body(&headers, body)?;
            let r = K::parse(&body)?;
            let created = K::create(inner.backend.as_ref(), &ctx.caller, r).await?;
            let v = created.json(&ctx.base);
            let mut resp = scim_response(StatusCode::CREATED, &v, created.meta().etag());
            if let Some(loc) = v["meta"]["location"]
                .as_str()
                .and_then(|l| HeaderValue::from_str(l).ok())
            {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            Ok(resp)
        }
        .await,
    )
}

async fn replace<K: Kind>(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(
        async {
            let ctx = context(&inner, &headers, &original, &uri, &params)?;
            let body = read_body(&headers, body)?;
            let mut r = K::parse(&body)?;
            let current = K::get(inner.backend.as_ref(), &ctx.caller, &ctx.id).await?;
            check_if_match(&headers, current.meta())?;
            r.set_id(&ctx.id);
            r.keep_read_only(&current);
            let stored = K::replace(
                inner.backend.as_ref(),
                &ctx.caller,
                &ctx.id,
                r,
                current.meta().version,
            )
            .await?;
            Ok(scim_response(
                StatusCode::OK,
                &stored.json(&ctx.base),
                stored.meta().etag(),
            ))
        }
        .await,
    )
}

async fn patch<K: Kind>(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(
        async {
            let ctx = context(&inner, &headers, &original, &uri, &params)?;
            let body = read_body(&headers, body)?;
            let ops = parse_patch(&body)?;
            let current = K::get(inner.backend.as_ref(), &ctx.caller, &ctx.id).await?;
            check_if_match(&headers, current.meta())?;
            let mut v = current.json(&ctx.base);
            apply_patch(&mut v, &ops, &K::PATCH)?;
            let mut r = K::parse(&v)?;
            r.set_id(&ctx.id);
            r.keep_read_only(&current);
            let stored = K::replace(
                inner.backend.as_ref(),
                &ctx.caller,
                &ctx.id,
                r,
                current.meta().version,
            )
            .await?;
            Ok(scim_response(
                StatusCode::OK,
                &stored.json(&ctx.base),
                stored.meta().etag(),
            ))
        }
        .await,
    )
}

async fn delete<K: Kind>(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
) -> Response {
    respond(
        async {
            let ctx = context(&inner, &headers, &original, &uri, &params)?;
            let expected = if headers.contains_key(header::IF_MATCH) {
                let current = K::get(inner.backend.as_ref(), &ctx.caller, &ctx.id).await?;
                check_if_match(&headers, current.meta())?;
                current.meta().version
            } else {
                None
            };
            K::delete(inner.backend.as_ref(), &ctx.caller, &ctx.id, expected).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// Authenticates a discovery request and returns its context.
async fn discovery_ctx(
    inner: &Inner,
    headers: &HeaderMap,
    original: &Uri,
    uri: &Uri,
    params: &RawPathParams,
) -> Result<Ctx, ScimError> {
    let ctx = context(inner, headers, original, uri, params)?;
    inner.backend.authenticate(&ctx.caller).await?;
    Ok(ctx)
}

async fn service_provider_config(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
) -> Response {
    respond(
        async {
            let ctx = discovery_ctx(&inner, &headers, &original, &uri, &params).await?;
            Ok(scim_response(
                StatusCode::OK,
                &discovery::service_provider_config(&ctx.base, MAX_COUNT),
                None,
            ))
        }
        .await,
    )
}

async fn resource_types(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
) -> Response {
    respond(
        async {
            let ctx = discovery_ctx(&inner, &headers, &original, &uri, &params).await?;
            Ok(scim_response(
                StatusCode::OK,
                &discovery::list(discovery::resource_types(&ctx.base)),
                None,
            ))
        }
        .await,
    )
}

async fn resource_type(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
) -> Response {
    respond(
        async {
            let ctx = discovery_ctx(&inner, &headers, &original, &uri, &params).await?;
            discovery::resource_types(&ctx.base)
                .into_iter()
                .find(|r| {
                    r["id"]
                        .as_str()
                        .is_some_and(|i| i.eq_ignore_ascii_case(&ctx.id))
                })
                .map(|r| scim_response(StatusCode::OK, &r, None))
                .ok_or_else(|| {
                    ScimError::not_found(format!(
                        "no resource type '{}'; see /ResourceTypes",
                        ctx.id
                    ))
                })
        }
        .await,
    )
}

async fn schemas(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
) -> Response {
    respond(
        async {
            let ctx = discovery_ctx(&inner, &headers, &original, &uri, &params).await?;
            Ok(scim_response(
                StatusCode::OK,
                &discovery::list(discovery::schemas(&ctx.base)),
                None,
            ))
        }
        .await,
    )
}

async fn schema(
    State(inner): St,
    headers: HeaderMap,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    params: RawPathParams,
) -> Response {
    respond(
        async {
            let ctx = discovery_ctx(&inner, &headers, &original, &uri, &params).await?;
            discovery::schemas(&ctx.base)
                .into_iter()
                .find(|r| {
                    r["id"]
                        .as_str()
                        .is_some_and(|i| i.eq_ignore_ascii_case(&ctx.id))
                })
                .map(|r| scim_response(StatusCode::OK, &r, None))
                .ok_or_else(|| {
                    ScimError::not_found(format!("no schema '{}'; see /Schemas", ctx.id))
                })
        }
        .await,
    )
}

async fn root_search(headers: HeaderMap) -> Response {
    if bearer(&headers).is_none() {
        return ScimError::unauthorized().into_response();
    }
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "searching all resource types at once is not supported; POST to /Users/.search or /Groups/.search",
    )
    .into_response()
}

async fn not_found(headers: HeaderMap, uri: Uri) -> Response {
    if bearer(&headers).is_none() {
        return ScimError::unauthorized().into_response();
    }
    let path: String = uri.path().chars().take(200).collect();
    ScimError::not_found(format!("no SCIM endpoint at '{path}'; the endpoints are /Users, /Groups, /ServiceProviderConfig, /ResourceTypes and /Schemas")).into_response()
}

async fn method_not_allowed() -> Response {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "this method is not supported on this endpoint",
    )
    .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn pagination_edges() {
        let q = |s: Option<i64>, c: Option<i64>| {
            list_query(&ListParams {
                start_index: s,
                count: c,
                ..Default::default()
            })
            .unwrap()
        };
        assert_eq!(
            (q(None, None).start_index, q(None, None).count),
            (1, DEFAULT_COUNT)
        );
        assert_eq!(q(Some(0), None).start_index, 1);
        assert_eq!(q(Some(-5), None).start_index, 1);
        assert_eq!(q(Some(7), None).start_index, 7);
        assert_eq!(q(None, Some(-1)).count, 0);
        assert_eq!(q(None, Some(0)).count, 0);
        assert_eq!(q(None, Some(1_000_000)).count, MAX_COUNT);
        assert_eq!(q(None, Some(i64::MIN)).count, 0);
        assert_eq!(
            q(Some(i64::MAX), None).start_index,
            usize::try_from(i64::MAX).unwrap()
        );
        assert!(params_from_query(&[("count".into(), "ten".into())]).is_err());
        let e = list_query(&ListParams {
            filter: Some("userName eq".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.scim_type, Some("invalidFilter"));
    }

    #[test]
    fn etag_comparison_is_weak() {
        assert!(etag_matches("W/\"3\"", Some("W/\"3\"")));
        assert!(etag_matches("\"3\"", Some("W/\"3\"")));
        assert!(etag_matches("W/\"1\", W/\"3\"", Some("W/\"3\"")));
        assert!(etag_matches("*", Some("W/\"3\"")));
        assert!(!etag_matches("W/\"2\"", Some("W/\"3\"")));
        assert!(!etag_matches("W/\"2\"", None));
    }

    #[test]
    fn bearer_parsing() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            bearer(&m)
        };
        assert_eq!(h("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(h("bearer abc").as_deref(), Some("abc"));
        assert_eq!(h("Basic abc"), None);
        assert_eq!(h("Bearer "), None);
        assert_eq!(
            h(&format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1))),
            None
        );
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn projection() {
        let base = json!({"schemas":["s"],"id":"1","userName":"u","displayName":"d","name":{"givenName":"g","familyName":"f"},"meta":{}});
        let mut v = base.clone();
        project(&mut v, &["userName".into(), "name.givenName".into()], &[]);
        assert_eq!(
            v,
            json!({"schemas":["s"],"id":"1","userName":"u","name":{"givenName":"g"}})
        );
        let mut v = base.clone();
        project(
            &mut v,
            &[],
            &["DisplayName".into(), "name.familyName".into(), "id".into()],
        );
        assert_eq!(
            v,
            json!({"schemas":["s"],"id":"1","userName":"u","name":{"givenName":"g"},"meta":{}})
        );
        let mut v = base.clone();
        project(
            &mut v,
            &["urn:ietf:params:scim:schemas:core:2.0:User:displayName".into()],
            &[],
        );
        assert_eq!(v, json!({"schemas":["s"],"id":"1","displayName":"d"}));
    }
}
