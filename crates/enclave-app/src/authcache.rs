//! A short-lived, in-process cache of resolved credentials (token or session hash → record and
//! user), so that an authenticated request does not cost a database round trip.
//!
//! Consistency: every committed change goes through [`crate::App::commit`], which clears the
//! cache, so a revocation, a disabled account or a password change takes effect on this server
//! at once. A generation counter stops a lookup that raced with such a change from re-inserting
//! the stale record. Entries also expire after [`TTL`], which bounds staleness for changes made
//! by another server process sharing the store.

use enclave_core::model::{ApiToken, Session, User};
use enclave_core::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long a resolved credential is trusted without asking the store again.
pub const TTL: Duration = Duration::from_secs(5);

/// Entries beyond which the cache starts over (bounds memory under credential stuffing).
const MAX_ENTRIES: usize = 10_000;

/// A resolved credential.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Token(ApiToken, User),
    Session(Session, User),
}

struct Entry {
    value: Resolved,
    loaded_at: Timestamp,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    generation: u64,
}

/// The cache. Cheap operations under a short lock.
#[derive(Default)]
pub(crate) struct AuthCache {
    inner: Mutex<Inner>,
}

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached credential for `key` if fresh, and the generation to pass to [`Self::put`].
    pub(crate) fn get(&self, key: &str, now: Timestamp) -> (Option<Resolved>, u64) {
        let inner = self.lock();
        let hit = inner
            .map
            .get(key)
            .filter(|e| now < e.loaded_at.plus(TTL) && now >= e.loaded_at)
            .map(|e| e.value.clone());
        (hit, inner.generation)
    }

    /// Stores a credential loaded at `now`, unless the cache was cleared since `generation`.
    pub(crate) fn put(&self, key: &str, value: Resolved, now: Timestamp, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.map.len() >= MAX_ENTRIES {
            inner.map.clear();
        }
        inner.map.insert(
            key.to_string(),
            Entry {
                value,
                loaded_at: now,
            },
        );
    }

    /// Forgets everything (after any committed change).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enclave_core::model::TokenScope;

    fn token() -> Resolved {
        let user = User {
            id: "u".into(),
            username: "u".into(),
            display_name: String::new(),
            email: String::new(),
            platform_admin: false,
            disabled: false,
            created_at: Timestamp(0),
        };
        let t = ApiToken {
            id: "t".into(),
            user_id: "u".into(),
            name: "n".into(),
            scope: TokenScope::Full,
            projects: vec![],
            created_at: Timestamp(0),
            expires_at: Timestamp(100),
            last_used_at: None,
            revoked_at: None,
        };
        Resolved::Token(t, user)
    }

    #[test]
    fn entries_expire_and_clear_wins_races() {
        let c = AuthCache::default();
        let (hit, g) = c.get("k", Timestamp(10));
        assert!(hit.is_none());
        c.put("k", token(), Timestamp(10), g);
        assert!(c.get("k", Timestamp(14)).0.is_some());
        assert!(c.get("k", Timestamp(15)).0.is_none(), "expired after TTL");
        // A lookup that started before a clear must not re-insert its stale record.
        let (_, g) = c.get("k", Timestamp(20));
        c.clear();
        c.put("k", token(), Timestamp(20), g);
        assert!(c.get("k", Timestamp(20)).0.is_none());
    }
}
