//! The engine the application holds: the current snapshot, swapped atomically.

use crate::model::{Credential, Decision, Principal, Request};
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use enclave_core::authz::Action;
use enclave_core::Timestamp;
use std::net::IpAddr;
use std::sync::Arc;

/// Holds the current [`Snapshot`]. Decisions load it without locks; [`PolicyEngine::replace`]
/// swaps in a new one atomically, so a decision in flight finishes on the snapshot it started
/// with and the next one sees the new snapshot.
pub struct PolicyEngine {
    current: ArcSwap<Snapshot>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("current", &*self.current.load())
            .finish()
    }
}

impl PolicyEngine {
    /// An engine deciding with `snapshot`.
    pub fn new(snapshot: Snapshot) -> PolicyEngine {
        PolicyEngine {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// Makes `snapshot` the one every later decision uses.
    pub fn replace(&self, snapshot: impl Into<Arc<Snapshot>>) {
        self.current.store(snapshot.into());
    }

    /// The snapshot decisions use now (to decide several things on one consistent view).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Decides `req` at `now`: default deny, forbid beats permit, any error denies.
    pub fn decide(&self, req: &Request, now: Timestamp) -> Decision {
        self.current.load().decide(req, now)
    }

    /// The actions `principal` may take in `project` at `now` with this credential, asked with
    /// the project as the resource.
    pub fn can(
        &self,
        principal: &Principal,
        credential: &Credential,
        source_ip: IpAddr,
        project: &str,
        now: Timestamp,
    ) -> Vec<Action> {
        self.current
            .load()
            .can(principal, credential, source_ip, project, now)
    }
}
