//! Enclave's notebook gateway: the reverse proxy between Enclave's HTTP layer and the
//! JupyterLab servers that run inside sandboxes on private project networks.
//!
//! The host cannot route to those networks; the gateway reaches a notebook server only
//! through the [`ConnectFn`] of its [`Upstream`]. It knows nothing about sessions or policy:
//! the HTTP layer authenticates and authorizes every request, then calls
//! [`Gateway::forward`] for paths under `/p/{project}/nb/{name}/` (JupyterLab runs with that
//! base URL, so paths and queries pass through unchanged — hand it the original URI).
//!
//! # Invariants
//!
//! **Stripped.** Towards the notebook server: hop-by-hop headers (`Connection` and the
//! headers it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
//! `Upgrade` — set again only for the websocket handshake — and every `Proxy-*`), the
//! client's `Authorization`, `Expect`, `Forwarded`, `X-Forwarded-*` and `X-Real-IP`, and
//! cookies whose names start with one of [`GatewayConfig::strip_cookie_prefixes`] (looking
//! through `__Host-`/`__Secure-`); other cookies (Jupyter's `_xsrf`) pass. Then
//! `Authorization: token <jupyter token>` is added: Jupyter's own token check stays on behind
//! the gateway. `Host` and `Origin` pass unchanged (Jupyter compares them). Towards the
//! client: hop-by-hop headers and `Set-Cookie`s for Enclave's cookie names (a notebook must
//! not plant or clear Enclave's session); other `Set-Cookie`s pass. The token is held only in
//! a header value whose memory is wiped when dropped; it is never logged, never in `Debug`,
//! and never in an error answer (502/504 with fixed text).
//!
//! **Streamed.** Request and response bodies flow through as they come, in both directions;
//! nothing is buffered whole. Connections are HTTP/1.1, kept alive in a pool per upstream
//! key, given back to it only after a response body has been read to its end.
//!
//! **Audited.** Every message a client sends on a websocket is inspected before it is
//! forwarded, and every code run is reported to the [`Tap`] first (see [`Executed`]): kernel
//! `execute_request`s, `input_reply`s and debugger evaluations, in all three framings the
//! Jupyter server accepts (legacy JSON text, legacy binary, `v1.kernel.websocket.jupyter.org`
//! binary), each tried on every message whatever subprotocol was negotiated, with a JSON
//! reader that accepts more than Python does (duplicate keys resolve as Python resolves
//! them); and terminal command lines assembled from `["stdin", …]` keystrokes (text frames or
//! binary in any encoding Python's `json.loads` detects), including the unfinished line when
//! the socket closes. Fragmented messages are reassembled before inspection; no compression
//! extension is negotiated. A [`Verdict::Refuse`] from the tap drops the message and closes
//! the websocket. Garbage is forwarded and not reported; parsing never panics.
//!
//! **Bounded.** Connect time and the websocket handshake ([`GatewayConfig::connect_timeout`]),
//! the wait for a response head, the response head's size and header count, idle pooled
//! connections per upstream and their idle time, websocket message and frame size (a larger
//! message closes the socket with 1009), terminal line length, and the closing handshake.
//!
//! **Revocable.** Every open websocket is registered with its [`Labels`];
//! [`Gateway::close_websockets`] stops matching ones at once (nothing more is relayed) and
//! sends close frames both ways. Entries leave the registry when their relay ends, however it
//! ends.

mod config;
mod headers;
mod json;
mod jupyter;
mod pool;
mod proxy;
mod registry;
mod upstream;
mod ws;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::{Request, Response};

pub use config::GatewayConfig;
pub use upstream::{ConnectFn, ConnectFuture, InvalidToken, Upstream};

/// Who a websocket belongs to; [`Gateway::close_websockets`] selects by these.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    /// The Enclave session (an id or a hash of it, never the secret).
    pub session: String,
    /// The user.
    pub user: String,
    /// The project.
    pub project: String,
    /// The notebook.
    pub notebook: String,
}

/// Code a user runs, as seen on a websocket before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    /// A kernel message that runs code.
    Cell {
        /// The kernel id from the websocket's path (empty when the path names none).
        kernel: String,
        /// The kernel channel (`shell`, `control`, `stdin`).
        channel: String,
        /// `execute_request` (`code` is the cell), `input_reply` (what was typed at an
        /// `input()` or debugger prompt) or `debug_request` (an evaluated expression).
        msg_type: String,
        /// The message id (empty when absent).
        msg_id: String,
        /// The code.
        code: String,
    },
    /// A command line typed into a terminal (control characters as typed; a line longer
    /// than [`GatewayConfig::max_terminal_line`] comes in pieces).
    Terminal {
        /// The terminal's name.
        terminal: String,
        /// The line, without its line ending.
        line: String,
    },
}

/// What the gateway does with a message after reporting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Forward it.
    Forward,
    /// Drop it and close the websocket (e.g. the audit trail cannot record it).
    Refuse,
}

/// Receives what users run. Called on the websocket's relay task before the message is
/// forwarded: it must not block (hand the event to a queue).
pub trait Tap: Send + Sync {
    /// `event` was submitted on a websocket with `labels`.
    fn executed(&self, labels: &Labels, event: Executed) -> Verdict;
}

/// Shared state of a [`Gateway`].
pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    pub(crate) prefixes: Vec<Box<str>>,
    pub(crate) pools: pool::Pools,
    pub(crate) registry: Arc<registry::Registry>,
    pub(crate) client: hyper::client::conn::http1::Builder,
    sweeper: AtomicBool,
}

/// The notebook gateway: a reverse proxy with connection pools and a websocket registry.
/// Cheap to clone (clones share everything).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.inner.config)
            .field("open_websockets", &self.open_websockets())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with `config` (values clamped into their bounds).
    pub fn new(config: GatewayConfig) -> Gateway {
        let config = config.clamped();
        let mut client = hyper::client::conn::http1::Builder::new();
        client
            .max_header_size(config.max_response_head)
            .max_headers(100);
        let prefixes = config
            .strip_cookie_prefixes
            .iter()
            .map(|p| p.as_str().into())
            .collect();
        Gateway {
            inner: Arc::new(Inner {
                pools: pool::Pools::new(config.pool_idle_timeout, config.max_idle_per_upstream),
                prefixes,
                registry: Arc::default(),
                client,
                sweeper: AtomicBool::new(false),
                config,
            }),
        }
    }

    /// Forwards one request (plain HTTP, or a websocket upgrade) to `upstream` and returns
    /// the response for the client: the notebook server's, or 502/504 with a short plain
    /// message when it cannot be reached or does not answer in time. `labels` and `tap`
    /// serve websockets: who it belongs to, and who hears what runs on it.
    pub async fn forward(
        &self,
        req: Request<Body>,
        upstream: &Upstream,
        labels: Labels,
        tap: Arc<dyn Tap>,
    ) -> Response<Body> {
        self.start_sweeper();
        let state = self.inner.pools.state(&upstream.key);
        state.touch();
        if headers::is_websocket_upgrade(req.method(), req.version(), req.headers()) {
            ws::forward(&self.inner, req, upstream, state, labels, tap).await
        } else {
            proxy::forward(&self.inner, req, upstream, state).await
        }
    }

    /// Closes every open websocket whose labels match now: nothing more is relayed, and
    /// both sides get a close frame (the client 1008 "access ended"). Returns how many.
    pub fn close_websockets(&self, pred: impl Fn(&Labels) -> bool) -> usize {
        self.inner.registry.close_matching(pred)
    }

    /// How many websockets are open (registered, until their relay has ended).
    pub fn open_websockets(&self) -> usize {
        self.inner.registry.len()
    }

    /// Drops the pooled connections and activity of `key` (call it when a notebook stops).
    /// Connections in use finish their exchange and are not pooled again.
    pub fn forget_upstream(&self, key: &str) {
        self.inner.pools.forget(key);
    }

    /// When `key` last saw a request or a websocket message, for idle culling; `None` when
    /// it has seen none since it was last forgotten.
    pub fn last_activity(&self, key: &str) -> Option<Instant> {
        self.inner.pools.last_activity(key)
    }

    /// How many idle connections are pooled for `key`.
    pub fn idle_connections(&self, key: &str) -> usize {
        self.inner.pools.idle_count(key)
    }

    /// How many entries the websocket registry has room for (it shrinks as sockets close;
    /// for leak checks).
    pub fn registry_capacity(&self) -> usize {
        self.inner.registry.capacity()
    }

    /// Starts, once, the task that closes expired idle connections; it ends with the gateway.
    fn start_sweeper(&self) {
        if self.inner.sweeper.swap(true, Ordering::Relaxed) {
            return;
        }
        let every = (self.inner.config.pool_idle_timeout / 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.pools.sweep();
            }
        });
    }
}
