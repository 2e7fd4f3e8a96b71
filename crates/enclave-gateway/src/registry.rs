//! The open websockets and who they belong to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::Labels;

struct Entry {
    labels: Labels,
    stop: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    entries: HashMap<u64, Entry>,
}

/// Every open websocket, with its labels and a way to stop it.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

/// A websocket's place in the registry; dropping it (when the relay ends, however it ends)
/// removes the entry.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.entries.remove(&self.id);
        let (len, cap) = (inner.entries.len(), inner.entries.capacity());
        if cap > 64 && len * 4 < cap {
            inner.entries.shrink_to(len * 2);
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a websocket; the receiver fires when it is to be closed.
    pub(crate) fn register(
        self: &Arc<Self>,
        labels: Labels,
    ) -> (Registration, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.entries.insert(
            id,
            Entry {
                labels,
                stop: Some(tx),
            },
        );
        (
            Registration {
                registry: Arc::clone(self),
                id,
            },
            rx,
        )
    }

    /// Signals every open websocket whose labels match to close; returns how many were
    /// signalled (each at most once). `pred` runs without the registry's lock held, so it may
    /// call back into the gateway.
    pub(crate) fn close_matching(&self, pred: impl Fn(&Labels) -> bool) -> usize {
        let candidates: Vec<(u64, Labels)> = {
            let inner = self.lock();
            inner
                .entries
                .iter()
                .filter(|(_, e)| e.stop.is_some())
                .map(|(id, e)| (*id, e.labels.clone()))
                .collect()
        };
        let chosen: Vec<u64> = candidates
            .into_iter()
            .filter(|(_, labels)| pred(labels))
            .map(|(id, _)| id)
            .collect();
        if chosen.is_empty() {
            return 0;
        }
        let mut inner = self.lock();
        let mut n = 0;
        for id in chosen {
            if let Some(stop) = inner.entries.get_mut(&id).and_then(|e| e.stop.take()) {
                let _ = stop.send(());
                n += 1;
            }
        }
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.lock().entries.capacity()
    }
}
