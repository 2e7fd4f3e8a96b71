//! [`MemoryBackend`]: an in-memory [`ScimBackend`] for tests and the compliance example.

use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::model::{Group, GroupRef, User};
use crate::{BackendError, BoxFuture, ListPage, ListQuery, ScimBackend, ScimCaller};

/// Most users plus groups the memory backend holds.
pub const MEMORY_MAX_RESOURCES: usize = 100_000;

type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

#[derive(Default)]
struct Store {
    users: Vec<User>,
    groups: Vec<Group>,
}

/// An in-memory backend, for tests and the compliance example (not for production: nothing
/// persists). It accepts one bearer token, compared in constant time, for any source.
pub struct MemoryBackend {
    token: Vec<u8>,
    clock: Clock,
    store: Mutex<Store>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // The system RNG failing leaves ids unique through the timestamp-free counter below.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        b[..8].copy_from_slice(
            &COUNTER
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_be_bytes(),
        );
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl MemoryBackend {
    /// A backend accepting `token`, stamping times from the system clock.
    pub fn new(token: impl Into<String>) -> Self {
        Self::with_clock(token, Arc::new(OffsetDateTime::now_utc))
    }

    /// A backend accepting `token`, stamping `meta.created`/`lastModified` from `clock`.
    pub fn with_clock(
        token: impl Into<String>,
        clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    ) -> Self {
        Self {
            token: token.into().into_bytes(),
            clock,
            store: Mutex::new(Store::default()),
        }
    }

    fn check(&self, caller: &ScimCaller) -> Result<(), BackendError> {
        let ok = !self.token.is_empty()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                caller.token().as_bytes(),
                &self.token,
            )
            .is_ok();
        if ok {
            Ok(())
        } else {
            Err(BackendError::Unauthorized)
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }
}

impl Store {
    fn user_view(&self, u: &User) -> User {
        let mut u = u.clone();
        u.groups = self
            .groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m.value == u.id))
            .map(|g| GroupRef {
                value: g.id.clone(),
                display: Some(g.display_name.clone()),
            })
            .collect();
        u
    }

    fn group_view(&self, g: &Group) -> Group {
        g.clone()
    }

    fn check_user_name(&self, name: &str, except: &str) -> Result<(), BackendError> {
        if self
            .users
            .iter()
            .any(|u| u.id != except && u.user_name.eq_ignore_ascii_case(name))
        {
            return Err(BackendError::Conflict(format!(
                "userName '{name}' is already taken; choose another"
            )));
        }
        Ok(())
    }

    fn check_members(&self, g: &Group) -> Result<(), BackendError> {
        for m in &g.members {
            let known = self.users.iter().any(|u| u.id == m.value)
                || self.groups.iter().any(|x| x.id == m.value && x.id != g.id);
            if !known {
                return Err(BackendError::Invalid(format!(
                    "member '{}' is neither a user nor another group",
                    m.value
                )));
            }
        }
        Ok(())
    }

    fn full(&self) -> Result<(), BackendError> {
        if self.users.len() + self.groups.len() >= MEMORY_MAX_RESOURCES {
            return Err(BackendError::Invalid(format!(
                "the memory backend holds at most {MEMORY_MAX_RESOURCES} resources"
            )));
        }
        Ok(())
    }
}

fn page<T>(all: Vec<T>, q: &ListQuery) -> ListPage<T> {
    let total = all.len();
    let items = all
        .into_iter()
        .skip(q.start_index.saturating_sub(1))
        .take(q.count)
        .collect();
    ListPage { total, items }
}

fn version_ok(stored: Option<u64>, expected: Option<u64>) -> Result<(), BackendError> {
    match expected {
        Some(v) if stored != Some(v) => Err(BackendError::VersionMismatch),
        _ => Ok(()),
    }
}

impl ScimBackend for MemoryBackend {
    fn authenticate<'a>(
        &'a self,
        caller: &'a ScimCaller,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move { self.check(caller) })
    }

    fn list_users<'a>(
        &'a self,
        caller: &'a ScimCaller,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<User>, BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let s = self.lock();
            let all: Vec<User> = s
                .users
                .iter()
                .map(|u| s.user_view(u))
                .filter(|u| {
                    query
                        .filter
                        .as_ref()
                        .is_none_or(|f| f.matches(&u.to_json("")))
                })
                .collect();
            Ok(page(all, query))
        })
    }

    fn get_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<User, BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let s = self.lock();
            s.users
                .iter()
                .find(|u| u.id == id)
                .map(|u| s.user_view(u))
                .ok_or(BackendError::NotFound)
        })
    }

    fn create_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        mut user: User,
    ) -> BoxFuture<'a, Result<User, BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let now = self.now();
            let mut s = self.lock();
            s.full()?;
            s.check_user_name(&user.user_name, "")?;
            user.id = new_id();
            user.groups.clear();
            user.meta.created = Some(now);
            user.meta.last_modified = Some(now);
            user.meta.version = Some(1);
            s.users.push(user.clone());
            Ok(s.user_view(&user))
        })
    }

    fn replace_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        mut user: User,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<User, BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let now = self.now();
            let mut s = self.lock();
            s.check_user_name(&user.user_name, id)?;
            let slot = s
                .users
                .iter_mut()
                .find(|u| u.id == id)
                .ok_or(BackendError::NotFound)?;
            version_ok(slot.meta.version, expected_version)?;
            user.id = id.to_string();
            user.groups.clear();
            user.meta.created = slot.meta.created;
            user.meta.last_modified = Some(now);
            user.meta.version = Some(slot.meta.version.unwrap_or(0) + 1);
            *slot = user.clone();
            Ok(s.user_view(&user))
        })
    }

    fn delete_user<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let now = self.now();
            let mut s = self.lock();
            let pos = s
                .users
                .iter()
                .position(|u| u.id == id)
                .ok_or(BackendError::NotFound)?;
            version_ok(s.users[pos].meta.version, expected_version)?;
            s.users.remove(pos);
            for g in &mut s.groups {
                let before = g.members.len();
                g.members.retain(|m| m.value != id);
                if g.members.len() != before {
                    g.meta.version = Some(g.meta.version.unwrap_or(0) + 1);
                    g.meta.last_modified = Some(now);
                }
            }
            Ok(())
        })
    }

    fn list_groups<'a>(
        &'a self,
        caller: &'a ScimCaller,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<ListPage<Group>, BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let s = self.lock();
            let all: Vec<Group> = s
                .groups
                .iter()
                .map(|g| s.group_view(g))
                .filter(|g| {
                    query
                        .filter
                        .as_ref()
                        .is_none_or(|f| f.matches(&g.to_json("")))
                })
                .collect();
            Ok(page(all, query))
        })
    }

    fn get_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Group, BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let s = self.lock();
            s.groups
                .iter()
                .find(|g| g.id == id)
                .map(|g| s.group_view(g))
                .ok_or(BackendError::NotFound)
        })
    }

    fn create_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        mut group: Group,
    ) -> BoxFuture<'a, Result<Group, BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let now = self.now();
            let mut s = self.lock();
            s.full()?;
            s.check_members(&group)?;
            group.id = new_id();
            group.meta.created = Some(now);
            group.meta.last_modified = Some(now);
            group.meta.version = Some(1);
            s.groups.push(group.clone());
            Ok(s.group_view(&group))
        })
    }

    fn replace_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        mut group: Group,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<Group, BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let now = self.now();
            let mut s = self.lock();
            group.id = id.to_string();
            s.check_members(&group)?;
            let slot = s
                .groups
                .iter_mut()
                .find(|g| g.id == id)
                .ok_or(BackendError::NotFound)?;
            version_ok(slot.meta.version, expected_version)?;
            group.meta.created = slot.meta.created;
            group.meta.last_modified = Some(now);
            group.meta.version = Some(slot.meta.version.unwrap_or(0) + 1);
            *slot = group.clone();
            Ok(s.group_view(&group))
        })
    }

    fn delete_group<'a>(
        &'a self,
        caller: &'a ScimCaller,
        id: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.check(caller)?;
            let mut s = self.lock();
            let pos = s
                .groups
                .iter()
                .position(|g| g.id == id)
                .ok_or(BackendError::NotFound)?;
            version_ok(s.groups[pos].meta.version, expected_version)?;
            s.groups.remove(pos);
            for g in &mut s.groups {
                g.members.retain(|m| m.value != id);
            }
            Ok(())
        })
    }
}
