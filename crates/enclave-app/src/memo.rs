//! Short-lived, in-process memos of read results: resolved credentials (token or session hash
//! → record and user) and the project lists callers ask for most, so that a routine
//! authenticated read does not cost database round trips.
//!
//! Consistency: every committed change goes through [`crate::App::commit`], which clears every
//! memo, so a revocation, a disabled account, a removed membership or a password change takes
//! effect on this server at once. A generation counter stops a lookup that raced with such a
//! change from re-inserting what it read before. Entries also expire after [`TTL`], which
//! bounds staleness for changes made by another server process sharing the store.

use enclave_core::model::{ApiToken, Session, User};
use enclave_core::Timestamp;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// How long a memoized result is trusted without asking the store again.
pub const TTL: Duration = Duration::from_secs(5);

/// Entries beyond which a memo starts over (bounds memory under credential stuffing).
const MAX_ENTRIES: usize = 10_000;

/// A resolved credential.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Token(ApiToken, User),
    Session(Session, User),
    /// A notebook cookie (see `notebook_handoff`): its notebook, its session, the user.
    NotebookCookie(enclave_store::NotebookCookieRow, Session, User),
}

struct Entry<V> {
    value: V,
    loaded_at: Timestamp,
}

struct Inner<K, V> {
    map: HashMap<K, Entry<V>>,
    generation: u64,
}

/// One memo: cheap operations under a short lock.
pub(crate) struct Memo<K, V> {
    inner: Mutex<Inner<K, V>>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                generation: 0,
            }),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The memoized value for `key` if fresh, and the generation to pass to [`Self::put`].
    pub(crate) fn get(&self, key: &K, now: Timestamp) -> (Option<V>, u64) {
        let inner = self.lock();
        let hit = inner
            .map
            .get(key)
            .filter(|e| now < e.loaded_at.plus(TTL) && now >= e.loaded_at)
            .map(|e| e.value.clone());
        (hit, inner.generation)
    }

    /// Stores a value read at `now`, unless the memo was cleared since `generation`.
    pub(crate) fn put(&self, key: K, value: V, now: Timestamp, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.map.len() >= MAX_ENTRIES {
            inner.map.clear();
        }
        inner.map.insert(
            key,
            Entry {
                value,
                loaded_at: now,
            },
        );
    }

    /// Changes a memoized value in place (keeping its age); nothing if it is not memoized,
    /// for instance because a change cleared the memo meanwhile.
    pub(crate) fn update(&self, key: &K, change: impl FnOnce(&mut V)) {
        if let Some(entry) = self.lock().map.get_mut(key) {
            change(&mut entry.value);
        }
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
    #![allow(clippy::panic)]
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
        let c: Memo<String, Resolved> = Memo::default();
        let (hit, g) = c.get(&"k".to_string(), Timestamp(10));
        assert!(hit.is_none());
        c.put("k".to_string(), token(), Timestamp(10), g);
        assert!(c.get(&"k".to_string(), Timestamp(14)).0.is_some());
        assert!(
            c.get(&"k".to_string(), Timestamp(15)).0.is_none(),
            "expired after TTL"
        );
        // A lookup that started before a clear must not re-insert its stale record.
        let (_, g) = c.get(&"k".to_string(), Timestamp(20));
        c.clear();
        c.put("k".to_string(), token(), Timestamp(20), g);
        assert!(c.get(&"k".to_string(), Timestamp(20)).0.is_none());
        // Updates touch only what is memoized.
        c.update(&"k".to_string(), |_| panic!("nothing to update"));
        let (_, g) = c.get(&"k".to_string(), Timestamp(30));
        c.put("k".to_string(), token(), Timestamp(30), g);
        c.update(&"k".to_string(), |r| {
            if let Resolved::Token(t, _) = r {
                t.last_used_at = Some(Timestamp(31));
            }
        });
        match c.get(&"k".to_string(), Timestamp(31)).0 {
            Some(Resolved::Token(t, _)) => assert_eq!(t.last_used_at, Some(Timestamp(31))),
            other => panic!("unexpected {other:?}"),
        }
    }
}
