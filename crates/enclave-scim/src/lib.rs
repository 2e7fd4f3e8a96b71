//! Enclave's SCIM 2.0 protocol layer (RFC 7643 / RFC 7644).
//!
//! [`router`] serves the SCIM endpoints (`/Users`, `/Groups`, `/ServiceProviderConfig`,
//! `/ResourceTypes`, `/Schemas`) over any [`ScimBackend`]; the host mounts it under a path
//! with a `{source}` segment (`/scim/v2/{source}`), which reaches the backend in
//! [`ScimCaller::source`] together with the bearer token. The crate parses filters
//! ([`Filter`]), applies PATCH operations ([`patch`]), paginates, projects attributes and
//! enforces ETags; the backend stores, authorizes and audits. [`MemoryBackend`] is an
//! in-memory backend for tests and the compliance example.

use std::future::Future;
use std::pin::Pin;

pub mod discovery;
pub mod error;
pub mod filter;
pub mod memory;
pub mod model;
pub mod patch;
mod router;

pub use error::{BackendError, ScimError, SCIM_CONTENT_TYPE};
pub use filter::{AttrPath, CompareOp, Filter, FilterError, Literal};
pub use memory::MemoryBackend;
pub use model::{weak_etag, Email, Group, GroupRef, Member, Meta, Name, User};
pub use router::{router, ScimConfig, DEFAULT_COUNT, MAX_BODY_BYTES, MAX_COUNT};

/// A boxed, sendable future (keeps [`ScimBackend`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is calling: the raw bearer token and the `{source}` path segment. The backend verifies
/// the token (in constant time) for that source. `Debug` never shows the token.
#[derive(Clone)]
pub struct ScimCaller {
    token: String,
    source: String,
}

impl ScimCaller {
    /// A caller from a token and a source name.
    pub fn new(token: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            source: source.into(),
        }
    }
    /// The bearer token as sent; never log it.
    pub fn token(&self) -> &str {
        &self.token
    }
    /// The identity source named in the path (empty when the router is not mounted under `{source}`).
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Debug for ScimCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimCaller")
            .field("token", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// A list request after parsing: filter, 1-based start index and page size (already capped).
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// The filter, if any; evaluate with [`Filter::matches`] or translate the AST.
    pub filter: Option<Filter>,
    /// 1-based index of the first result (at least 1).
    pub start_index: usize,
    /// Most results to return (0 asks only for the total).
    pub count: usize,
}

/// One page of a list: the total number of matches and the page's items.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<T> {
    /// Number of resources matching the filter (all pages).
    pub total: usize,
    /// The resources of this page, at most `count`.
    pub items: Vec<T>,
}

/// Storage, authentication and authorization behind the SCIM protocol layer.
///
/// Every operation receives the [`ScimCaller`] and must verify its token. Versions are
/// the numbers in `meta.version`; `expected_version` asks for an optimistic check
/// (return [`BackendError::VersionMismatch`] when the stored version differs).
pub trait ScimBackend: Send + Sync + 'static {
    /// Verifies the caller (used for the discovery endpoints).
    fn authenticate<'a>(
        &'a self,
        caller: &'a ScimCaller,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Lists users matching the query.
    fn list_users<'a>(
        &'a self,
        caller: &'a ScimCaller,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<User>, BackendError>>;
    /// Reads one user.
    fn get_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<User, BackendError>>;
    /// Creates a user (its `id` is empty); returns it as stored, with id and meta.
    fn create_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        user: User,
    ) -> BoxFuture<'a, Result<User, BackendError>>;
    /// Replaces a user's writable attributes; returns it as stored.
    fn replace_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        user: User,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<User, BackendError>>;
    /// Deletes (deprovisions) a user.
    fn delete_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Lists groups matching the query.
    fn list_groups<'a>(
        &'a self,
        caller: &'a ScimCaller,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<Group>, BackendError>>;
    /// Reads one group.
    fn get_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Group, BackendError>>;
    /// Creates a group (its `id` is empty); returns it as stored.
    fn create_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        group: Group,
    ) -> BoxFuture<'a, Result<Group, BackendError>>;
    /// Replaces a group (display name, members); returns it as stored.
    fn replace_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        group: Group,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<Group, BackendError>>;
    /// Deletes a group.
    fn delete_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
}
