//! Audit forwarding: streams Enclave's audit records to outside collectors.
//!
//! The audit trail lives in the store, each record with a strictly increasing `seq`. A
//! [`Forwarder`] tails it by seq through a [`RecordSource`], hands batches to a [`Sink`]
//! (syslog RFC 5424 over TCP or TLS, see [`SyslogSink`]; JSON Lines file, see [`FileSink`]) and
//! persists how far it got in a [`CursorStore`] (one cursor per sink name, see
//! [`FileCursorStore`]).
//!
//! # Delivery guarantees
//!
//! * **Never blocks writers.** The forwarder only *reads* committed records after the fact; the
//!   platform's audit write path does not wait for it, and a slow or absent collector only makes
//!   the forwarder fall behind (its [`StatusSnapshot::lag`] grows). [`ForwarderHandle::notify`]
//!   merely wakes it early.
//! * **Ordered.** Records are sent in seq order, batch after batch, over one connection at a time.
//! * **Bounded memory.** At most one batch ([`ForwardOptions::batch`] records) is held in memory;
//!   the backlog stays in the store. After a failure the forwarder re-reads from the store rather
//!   than buffering.
//! * **At-least-once.** The cursor only moves past a record once the sink has confirmed it:
//!   - *file*: after the batch was written and `fsync`ed — exactly once in practice; a crash
//!     between the fsync and the cursor save replays that batch.
//!   - *syslog (TCP/TLS)*: syslog has no application acknowledgement. A record counts as
//!     delivered once the connection it was written on has stayed healthy for
//!     [`ForwardOptions::settle`] after the write, or when the collector closes the connection
//!     in answer to the forwarder's own close at shutdown (it read everything up to our end of
//!     stream). After any reconnect the forwarder replays the unconfirmed tail, so the collector
//!     may see **duplicates of that tail**; each message carries
//!     `[enclave@32473 seq="…"]` so the collector can drop them. Limitation: a collector that
//!     accepted bytes at the TCP level, stayed connected for the settle period and then crashed
//!     before storing them can still lose them; that is inherent to syslog over TCP.
//!
//! If the trail's head is ever below a saved cursor (the store was restored from an older
//! backup), the forwarder warns and resumes after the head rather than waiting, silently, for
//! seqs to pass the old cursor.
//!
//! Records are never truncated: a collector's maximum message size must allow the largest audit
//! record. Nothing from a record's content is ever logged (warnings carry the sink name, seq
//! numbers and the transport error).
//!
//! # Wiring
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use enclave_forward::*;
//! # async fn wire(source: Arc<dyn RecordSource>, cfg: ForwardConfig) -> Result<(), ConfigError> {
//! let cursors: Arc<dyn CursorStore> = Arc::new(FileCursorStore::new("/var/lib/enclave/forward"));
//! let forwarder = Forwarder::from_config(&cfg, source, cursors)?;
//! let handle = forwarder.handle(); // keep: notify() after each audit commit, status() for the API
//! tokio::spawn(forwarder.run(async { /* shutdown signal */ }));
//! handle.notify();
//! # Ok(()) }
//! ```
//!
//! The source must only return committed records, in increasing seq order, and a record with a
//! lower seq must never become visible after a higher one (true for SQLite, whose writers are
//! serialized; a store with concurrent writers and pre-allocated sequences would need a
//! different cursor).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

mod config;
mod cursor;
mod file;
mod forwarder;
pub mod syslog;

pub use config::{validate_all, ConfigError, Facility, ForwardConfig, Severity, SinkKind};
pub use cursor::{CursorStore, FileCursorStore, MemoryCursorStore};
pub use file::FileSink;
pub use forwarder::{ForwardOptions, Forwarder, ForwarderHandle, StatusSnapshot};
pub use syslog::{SyslogFormat, SyslogSink, SyslogTarget, TlsTarget};

/// A boxed, sendable future: the return type of the object-safe async trait methods here.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One audit record as the forwarder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRecord {
    /// Position in the audit trail; strictly increasing, gaps allowed.
    pub seq: i64,
    /// When it happened, unix seconds (UTC).
    pub at: i64,
    /// Stable action name (becomes the syslog MSGID).
    pub action: String,
    /// `success`, `denied` or `failure` (drives the syslog severity).
    pub outcome: String,
    /// The full record as one JSON object (becomes the syslog MSG / the JSON Lines line).
    pub json: String,
}

/// Where the records come from: the store's audit trail.
///
/// Implement with `Box::pin(async move { … })`.
pub trait RecordSource: Send + Sync {
    /// Up to `limit` committed records with `seq > seq`, in increasing seq order.
    fn after(
        &self,
        seq: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ForwardRecord>, ForwardError>>;

    /// The highest committed seq, if known; used for the lag in the status and to notice a
    /// trail that is behind the cursor (a store restored from an older backup: the forwarder then
    /// warns and resumes after the head instead of silently skipping new records). Must never
    /// be below a seq `after` already returned, unless the store really went back. The default
    /// says "unknown".
    fn last_seq(&self) -> BoxFuture<'_, Result<Option<i64>, ForwardError>> {
        Box::pin(async { Ok(None) })
    }
}

/// A destination for records. The forwarder drives it: `connect`, then `send` batches, `probe`
/// between batches, `close` at shutdown; any error leads to `disconnect` and a reconnect with
/// backoff. Timeouts are applied by the forwarder.
pub trait Sink: Send + Sync {
    /// Short kind name for the status (`syslog`, `file`).
    fn kind(&self) -> &'static str;

    /// Whether a successful `send` means the records are durably stored (file: fsynced). When
    /// false, the forwarder confirms records only after [`ForwardOptions::settle`] and replays
    /// the unconfirmed tail after a reconnect.
    fn durable(&self) -> bool;

    /// Whether a connection (or open file) is held.
    fn is_connected(&self) -> bool;

    /// Opens the connection or file.
    fn connect(&mut self) -> BoxFuture<'_, Result<(), ForwardError>>;

    /// Writes the batch, in order; returns once it is handed to the transport (and, for a
    /// durable sink, stored).
    fn send<'a>(
        &'a mut self,
        records: &'a [ForwardRecord],
    ) -> BoxFuture<'a, Result<(), ForwardError>>;

    /// Checks, without waiting, that the connection is still healthy (peer has not closed or
    /// reset it).
    fn probe(&mut self) -> Result<(), ForwardError>;

    /// Closes gracefully. `Ok(true)` when the peer confirmed it read everything that was sent
    /// (it closed its side after our end of stream).
    fn close(&mut self) -> BoxFuture<'_, Result<bool, ForwardError>>;

    /// Drops the connection or file without ceremony.
    fn disconnect(&mut self);
}

/// What went wrong while forwarding. The text goes into logs and the status API; it never
/// contains record content.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The record source failed. The text is logged and shown in the status: it must not
    /// contain record content.
    #[error("reading audit records: {0}")]
    Source(String),
    /// TCP connection could not be established.
    #[error("connecting to {address}: {source}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error).
    #[error("TLS handshake with {server_name}: {source}")]
    Tls {
        /// The name verified.
        server_name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS configuration could not be built (CA bundle, client certificate).
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// Writing to the collector failed.
    #[error("sending to collector: {0}")]
    Send(std::io::Error),
    /// The collector closed or reset the connection.
    #[error("connection lost: {0}")]
    Lost(String),
    /// Not connected when a send was attempted.
    #[error("not connected")]
    NotConnected,
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    File {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A cursor could not be loaded or saved.
    #[error("cursor for {sink}: {reason}")]
    Cursor {
        /// Sink name.
        sink: String,
        /// Why.
        reason: String,
    },
    /// An operation took too long.
    #[error("{what} timed out after {}s", after.as_secs_f64())]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
}

impl std::fmt::Debug for dyn Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("kind", &self.kind())
            .field("connected", &self.is_connected())
            .finish()
    }
}
