//! Keep-alive pools of HTTP/1.1 client connections, one per upstream key, and the activity
//! clock each upstream keeps.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::{Body as _, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

/// A connection's request handle.
pub(crate) type Sender = SendRequest<Body>;

struct Idle {
    tx: Sender,
    since: Instant,
}

/// One upstream's idle connections and last activity.
pub(crate) struct PoolState {
    base: Instant,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
    /// Nanoseconds after `base` of the last request or websocket message.
    last_activity: AtomicU64,
    forgotten: AtomicBool,
}

impl PoolState {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records activity now.
    pub(crate) fn touch(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_activity.fetch_max(nanos, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_activity.load(Ordering::Relaxed))
    }

    /// The most recently used idle connection that is still open and ready, if any.
    pub(crate) fn take(&self) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.idle();
        while let Some(c) = idle.pop() {
            if now.duration_since(c.since) < self.idle_timeout && c.tx.is_ready() {
                return Some(c.tx);
            }
        }
        None
    }

    /// Keeps an idle connection (unless the pool is full, forgotten, or it is closed).
    pub(crate) fn put(&self, tx: Sender) {
        if tx.is_closed() || self.forgotten.load(Ordering::Relaxed) {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    fn prune(&self, now: Instant) {
        self.idle()
            .retain(|c| now.duration_since(c.since) < self.idle_timeout && !c.tx.is_closed());
    }

    pub(crate) fn idle_count(&self) -> usize {
        self.idle().len()
    }
}

/// Gives a connection whose response is done back to its pool: at once when it is ready for
/// the next request, else once it is (its own task finishes the exchange), within the idle
/// timeout.
pub(crate) fn release(tx: Sender, state: Arc<PoolState>) {
    if tx.is_ready() {
        state.put(tx);
        return;
    }
    if tx.is_closed() {
        return;
    }
    let limit = state.idle_timeout;
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let mut tx = tx;
        handle.spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(limit, tx.ready()).await {
                state.put(tx);
            }
        });
    }
}

/// The pools of all upstreams.
pub(crate) struct Pools {
    base: Instant,
    idle_timeout: Duration,
    max_idle: usize,
    map: RwLock<HashMap<Box<str>, Arc<PoolState>>>,
}

impl Pools {
    pub(crate) fn new(idle_timeout: Duration, max_idle: usize) -> Pools {
        Pools {
            base: Instant::now(),
            idle_timeout,
            max_idle,
            map: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<Arc<PoolState>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(key).cloned()
    }

    /// The state of `key`, created on first use.
    pub(crate) fn state(&self, key: &str) -> Arc<PoolState> {
        if let Some(s) = self.get(key) {
            return s;
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.entry(key.into())
            .or_insert_with(|| {
                Arc::new(PoolState {
                    base: self.base,
                    idle_timeout: self.idle_timeout,
                    max_idle: self.max_idle,
                    idle: Mutex::new(Vec::new()),
                    last_activity: AtomicU64::new(0),
                    forgotten: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// Drops `key`'s idle connections and activity; connections in use are not pooled again.
    pub(crate) fn forget(&self, key: &str) {
        let removed = {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            let removed = map.remove(key);
            let len = map.len();
            if map.capacity() > 64 && len * 4 < map.capacity() {
                map.shrink_to(len * 2);
            }
            removed
        };
        if let Some(state) = removed {
            state.forgotten.store(true, Ordering::Relaxed);
            state.idle().clear();
        }
    }

    pub(crate) fn last_activity(&self, key: &str) -> Option<Instant> {
        self.get(key).map(|s| s.last_activity())
    }

    pub(crate) fn idle_count(&self, key: &str) -> usize {
        self.get(key).map_or(0, |s| s.idle_count())
    }

    /// Closes expired and dead idle connections of every upstream.
    pub(crate) fn sweep(&self) {
        let states: Vec<Arc<PoolState>> = {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            map.values().cloned().collect()
        };
        let now = Instant::now();
        for s in states {
            s.prune(now);
        }
    }
}

/// A response body from a pooled connection: streams the notebook server's body and gives
/// the connection back once it has been read to its end (never when it was cut short).
pub(crate) struct PooledBody {
    inner: Incoming,
    release: Option<(Sender, Arc<PoolState>)>,
}

impl PooledBody {
    pub(crate) fn new(inner: Incoming, tx: Sender, state: Arc<PoolState>) -> PooledBody {
        PooledBody {
            inner,
            release: Some((tx, state)),
        }
    }

    fn done(&mut self) {
        if let Some((tx, state)) = self.release.take() {
            release(tx, state);
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => this.done(),
            Some(Err(_)) => this.release = None,
            Some(Ok(_)) if this.inner.is_end_stream() => this.done(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.done();
        }
    }
}
