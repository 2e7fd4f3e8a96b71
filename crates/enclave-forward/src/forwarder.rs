//! The forwarding loop: read a batch after the cursor, send it, confirm, save the cursor.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::{sleep, timeout};

use crate::config::{ConfigError, ForwardConfig};
use crate::{CursorStore, ForwardError, ForwardRecord, RecordSource, Sink};

/// Tuning of a [`Forwarder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Records per read and per send (at least 1). Default 500.
    pub batch: usize,
    /// How often to look for new records when not notified. Default 1 s.
    pub poll_interval: Duration,
    /// First wait after a failure; doubled after each further failure. Default 250 ms.
    pub initial_backoff: Duration,
    /// Longest wait between retries. Default 60 s.
    pub max_backoff: Duration,
    /// Limit for connecting (TCP and TLS handshake) or opening the file. Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for writing one batch. Default 30 s.
    pub write_timeout: Duration,
    /// Limit for the graceful close at shutdown (waiting for the collector to close its side,
    /// which confirms the syslog tail). Default 5 s.
    pub close_timeout: Duration,
    /// Syslog only: how long a connection must stay healthy after a write before the records
    /// written are confirmed and the cursor saved; also how long a connection must have lived
    /// for its failure to restart the backoff from `initial_backoff`. Default 2 s.
    pub settle: Duration,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            batch: 500,
            poll_interval: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            settle: Duration::from_secs(2),
        }
    }
}

/// A forwarder's state for the status API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    /// Sink name.
    pub name: String,
    /// `syslog` or `file`.
    pub kind: &'static str,
    /// Whether a connection (or the file) is open.
    pub connected: bool,
    /// Highest seq handed to the sink on the current connection (the cursor after a restart or
    /// reconnect).
    pub forwarded_seq: Option<i64>,
    /// Highest seq confirmed and persisted in the cursor.
    pub confirmed_seq: Option<i64>,
    /// Highest seq in the audit trail, as last seen.
    pub head_seq: Option<i64>,
    /// Records in the trail not yet forwarded (`head_seq - forwarded_seq`), when the head is
    /// known.
    pub lag: Option<i64>,
    /// The most recent failure, until the forwarder is healthy again. Never record content.
    pub last_error: Option<String>,
    /// When it happened, unix seconds.
    pub last_error_at: Option<i64>,
    /// Failures since the last healthy cycle.
    pub consecutive_failures: u64,
    /// When a batch was last sent successfully, unix seconds.
    pub last_sent_at: Option<i64>,
}

const NONE: i64 = i64::MIN;

fn opt(v: i64) -> Option<i64> {
    (v != NONE).then_some(v)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug)]
struct Shared {
    name: String,
    kind: &'static str,
    notify: Notify,
    connected: AtomicBool,
    forwarded: AtomicI64,
    confirmed: AtomicI64,
    head: AtomicI64,
    failures: AtomicU64,
    last_sent_at: AtomicI64,
    last_error: Mutex<Option<(String, i64)>>,
}

impl Shared {
    fn set_error(&self, text: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((text, unix_now()));
    }

    fn clear_error(&self) {
        self.failures.store(0, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// A cheap, cloneable handle on a running [`Forwarder`]: wake it, read its status.
#[derive(Debug, Clone)]
pub struct ForwarderHandle {
    shared: Arc<Shared>,
}

impl ForwarderHandle {
    /// Wakes the forwarder now instead of at its next poll (call after an audit commit). Never
    /// blocks; several calls before it wakes count once.
    pub fn notify(&self) {
        self.shared.notify.notify_one();
    }

    /// The sink name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A consistent-enough copy of the status (each field is read atomically).
    pub fn status(&self) -> StatusSnapshot {
        let s = &self.shared;
        let forwarded = opt(s.forwarded.load(Ordering::Relaxed));
        let head = opt(s.head.load(Ordering::Relaxed));
        let (last_error, last_error_at) =
            match &*s.last_error.lock().unwrap_or_else(PoisonError::into_inner) {
                Some((text, at)) => (Some(text.clone()), Some(*at)),
                None => (None, None),
            };
        StatusSnapshot {
            name: s.name.clone(),
            kind: s.kind,
            connected: s.connected.load(Ordering::Relaxed),
            forwarded_seq: forwarded,
            confirmed_seq: opt(s.confirmed.load(Ordering::Relaxed)),
            head_seq: head,
            lag: head.map(|h| (h - forwarded.unwrap_or(0)).max(0)),
            last_error,
            last_error_at,
            consecutive_failures: s.failures.load(Ordering::Relaxed),
            last_sent_at: opt(s.last_sent_at.load(Ordering::Relaxed)),
        }
    }
}

/// Tails a [`RecordSource`] into a [`Sink`], one per configured destination. See the crate
/// documentation for the guarantees.
pub struct Forwarder {
    source: Arc<dyn RecordSource>,
    sink: Box<dyn Sink>,
    cursors: Arc<dyn CursorStore>,
    options: ForwardOptions,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("name", &self.shared.name)
            .field("kind", &self.shared.kind)
            .field("options", &self.options)
            .finish()
    }
}

/// Where the loop stands; survives the cancellation of the work future at shutdown.
#[derive(Debug)]
struct Progress {
    loaded: bool,
    /// A cursor was loaded or saved (else `confirmed` 0 means "nothing yet").
    has_cursor: bool,
    /// Confirmed: everything up to here has reached the collector.
    confirmed: i64,
    /// What the cursor store holds.
    saved: i64,
    /// Handed to the sink on the current connection.
    sent: i64,
    /// Records up to `.0` were written by `.1`; confirmed once the connection is still healthy
    /// `settle` later.
    pending: Option<(i64, Instant)>,
    in_send: bool,
    connected_at: Option<Instant>,
    backoff: Duration,
}

impl Progress {
    /// `confirmed` for the status.
    fn shown_confirmed(&self) -> i64 {
        if self.has_cursor {
            self.confirmed
        } else {
            NONE
        }
    }
}

enum Step {
    /// A full batch went out; more may be waiting.
    More,
    /// Caught up.
    Idle,
}

enum Failure {
    /// The connection or file is unusable: drop it, replay the unconfirmed tail.
    Sink(ForwardError),
    /// Source or cursor trouble: keep the connection.
    Other(ForwardError),
}

impl Forwarder {
    /// A forwarder named `name` (also the cursor's name: `[a-z0-9_-]`, see
    /// [`ForwardConfig::name`]).
    pub fn new(
        name: impl Into<String>,
        source: Arc<dyn RecordSource>,
        sink: Box<dyn Sink>,
        cursors: Arc<dyn CursorStore>,
        options: ForwardOptions,
    ) -> Self {
        let shared = Arc::new(Shared {
            name: name.into(),
            kind: sink.kind(),
            notify: Notify::new(),
            connected: AtomicBool::new(false),
            forwarded: AtomicI64::new(NONE),
            confirmed: AtomicI64::new(NONE),
            head: AtomicI64::new(NONE),
            failures: AtomicU64::new(0),
            last_sent_at: AtomicI64::new(NONE),
            last_error: Mutex::new(None),
        });
        let mut options = options;
        options.batch = options.batch.max(1);
        Forwarder {
            source,
            sink,
            cursors,
            options,
            shared,
        }
    }

    /// Validates `config`, builds its sink (reading TLS material) and the forwarder.
    pub fn from_config(
        config: &ForwardConfig,
        source: Arc<dyn RecordSource>,
        cursors: Arc<dyn CursorStore>,
    ) -> Result<Self, ConfigError> {
        let sink = config.build_sink()?;
        Ok(Forwarder::new(
            config.name.clone(),
            source,
            sink,
            cursors,
            config.options(),
        ))
    }

    /// The handle for notifications and status; take it before [`Forwarder::run`].
    pub fn handle(&self) -> ForwarderHandle {
        ForwarderHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Forwards until `shutdown` completes, then closes the connection gracefully (confirming
    /// the tail when the collector acknowledges the close) and saves the cursor. Never returns
    /// early: every failure is retried with backoff and shown in the status.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        tracing::info!(sink = %self.shared.name, kind = self.shared.kind, "audit forwarder started");
        let mut progress = Progress {
            loaded: false,
            has_cursor: false,
            confirmed: 0,
            saved: 0,
            sent: 0,
            pending: None,
            in_send: false,
            connected_at: None,
            backoff: self.options.initial_backoff,
        };
        tokio::select! {
            () = shutdown => {}
            () = self.work(&mut progress) => {}
        }
        self.finish(&mut progress).await;
        tracing::info!(sink = %self.shared.name, "audit forwarder stopped");
    }

    async fn work(&mut self, p: &mut Progress) {
        loop {
            match self.step(p).await {
                Ok(Step::More) => {}
                Ok(Step::Idle) => self.idle_wait(p).await,
                Err(failure) => {
                    let wait = self.fail(p, failure);
                    sleep(wait).await;
                }
            }
        }
    }

    async fn step(&mut self, p: &mut Progress) -> Result<Step, Failure> {
        let durable = self.sink.durable();
        if !p.loaded {
            let loaded = self.load().await.map_err(Failure::Other)?;
            p.confirmed = loaded.unwrap_or(0);
            p.saved = p.confirmed;
            p.sent = p.confirmed;
            p.loaded = true;
            p.has_cursor = loaded.is_some();
            let shown = p.shown_confirmed();
            self.shared.confirmed.store(shown, Ordering::Relaxed);
            self.shared.forwarded.store(shown, Ordering::Relaxed);
        }
        // The head first, so that the lag shows while the collector is unreachable.
        let head = self.source.last_seq().await.map_err(Failure::Other)?;
        if let Some(h) = head {
            self.shared.head.store(h, Ordering::Relaxed);
            if h < p.confirmed {
                self.behind_cursor(p, h).await;
            }
        }
        if !self.sink.is_connected() {
            let limit = self.options.connect_timeout;
            match timeout(limit, self.sink.connect()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Failure::Sink(e)),
                Err(_) => {
                    return Err(Failure::Sink(ForwardError::Timeout {
                        what: "connect",
                        after: limit,
                    }))
                }
            }
            // A new connection starts from what is confirmed: the unconfirmed tail is replayed.
            p.sent = p.confirmed;
            p.pending = None;
            p.connected_at = Some(Instant::now());
            self.shared.connected.store(true, Ordering::Relaxed);
            tracing::info!(sink = %self.shared.name, from_seq = p.confirmed, "audit forwarder connected");
        }
        if !durable {
            self.sink.probe().map_err(Failure::Sink)?;
            if let Some((seq, at)) = p.pending {
                if at.elapsed() >= self.options.settle {
                    p.confirmed = p.confirmed.max(seq);
                    // Records written after the mark: all of them were written by now.
                    p.pending = (p.sent > p.confirmed).then(|| (p.sent, Instant::now()));
                }
            }
        }
        self.save_confirmed(p).await?;

        let records = self
            .source
            .after(p.sent, self.options.batch)
            .await
            .map_err(Failure::Other)?;
        let full = records.len() >= self.options.batch;
        let records = in_order(records, p.sent, &self.shared.name);
        let newest = records.last().map(|r| r.seq);
        if let Some(n) = newest {
            self.shared.head.fetch_max(n, Ordering::Relaxed);
        }
        let Some(last) = newest else {
            self.healthy(p);
            return Ok(Step::Idle);
        };

        p.in_send = true;
        let limit = self.options.write_timeout;
        let sent = timeout(limit, self.sink.send(&records)).await;
        p.in_send = false;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::Sink(e)),
            Err(_) => {
                return Err(Failure::Sink(ForwardError::Timeout {
                    what: "send",
                    after: limit,
                }))
            }
        }
        p.sent = last;
        self.shared.forwarded.store(last, Ordering::Relaxed);
        self.shared
            .last_sent_at
            .store(unix_now(), Ordering::Relaxed);
        if durable {
            p.confirmed = last;
            self.save_confirmed(p).await?;
        } else if p.pending.is_none() {
            p.pending = Some((last, Instant::now()));
        }
        self.healthy(p);
        Ok(if full { Step::More } else { Step::Idle })
    }

    /// The trail's head is below the cursor: the store was restored from an older backup (or
    /// replaced). Waiting for seqs to pass the old cursor would silently skip every new record,
    /// so say so loudly and resume from the head.
    async fn behind_cursor(&mut self, p: &mut Progress, head: i64) {
        let text = format!(
            "the audit trail ends at seq {head}, behind the cursor at {} (store restored from an \
             older backup?); forwarding resumes after seq {head}",
            p.confirmed
        );
        tracing::warn!(sink = %self.shared.name, head, cursor = p.confirmed, "{text}");
        self.shared.set_error(text);
        if self.sink.is_connected() {
            // Anything written beyond the head on this connection belongs to the old trail.
            self.sink.disconnect();
            self.shared.connected.store(false, Ordering::Relaxed);
            p.connected_at = None;
        }
        p.confirmed = head;
        p.sent = head;
        p.pending = None;
        self.shared.forwarded.store(head, Ordering::Relaxed);
        match self.save(head).await {
            Ok(()) => {
                p.saved = head;
                p.has_cursor = true;
                self.shared.confirmed.store(head, Ordering::Relaxed);
            }
            Err(e) => {
                // Retried by the next cycle: `saved` stays above `confirmed`.
                tracing::warn!(sink = %self.shared.name, error = %e, "could not save the rewound cursor");
            }
        }
    }

    /// Clears the error and restarts the backoff once the sink has proven itself: a durable
    /// sink on any success, a connection once it has lived `settle`.
    fn healthy(&self, p: &mut Progress) {
        let proven = self.sink.durable()
            || p.connected_at
                .is_some_and(|t| t.elapsed() >= self.options.settle);
        if proven {
            p.backoff = self.options.initial_backoff;
            self.shared.clear_error();
        }
    }

    async fn save_confirmed(&self, p: &mut Progress) -> Result<(), Failure> {
        // `confirmed` only moves back when the trail is behind the cursor (see `behind_cursor`).
        if p.confirmed != p.saved {
            self.save(p.confirmed).await.map_err(Failure::Other)?;
            p.saved = p.confirmed;
            p.has_cursor = true;
            self.shared.confirmed.store(p.confirmed, Ordering::Relaxed);
            tracing::debug!(sink = %self.shared.name, seq = p.confirmed, "audit forward cursor saved");
        }
        Ok(())
    }

    /// Records the failure and returns how long to wait before retrying.
    fn fail(&mut self, p: &mut Progress, failure: Failure) -> Duration {
        let (error, replay) = match failure {
            Failure::Sink(e) => {
                self.sink.disconnect();
                self.shared.connected.store(false, Ordering::Relaxed);
                let replay = p.sent - p.confirmed;
                p.sent = p.confirmed;
                p.pending = None;
                if p.loaded {
                    self.shared
                        .forwarded
                        .store(p.shown_confirmed(), Ordering::Relaxed);
                }
                // A connection that worked for a while earns a fresh, short backoff.
                if p.connected_at
                    .take()
                    .is_some_and(|t| t.elapsed() >= self.options.settle)
                {
                    p.backoff = self.options.initial_backoff;
                }
                (e, replay)
            }
            Failure::Other(e) => (e, 0),
        };
        let wait = p.backoff;
        tracing::warn!(
            sink = %self.shared.name,
            error = %error,
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            replay_from_seq = p.confirmed,
            unconfirmed = replay,
            "audit forwarding failed; will retry"
        );
        self.shared.set_error(error.to_string());
        p.backoff = p.backoff.saturating_mul(2).min(self.options.max_backoff);
        wait
    }

    async fn idle_wait(&self, p: &Progress) {
        let mut wait = self.options.poll_interval;
        if let Some((_, at)) = p.pending {
            let due = (at + self.options.settle).saturating_duration_since(Instant::now());
            wait = wait.min(due);
        }
        tokio::select! {
            () = self.shared.notify.notified() => {}
            () = sleep(wait) => {}
        }
    }

    async fn finish(&mut self, p: &mut Progress) {
        if self.sink.is_connected() {
            if p.in_send {
                // Cancelled in the middle of a write: the tail stays unconfirmed.
                self.sink.disconnect();
            } else {
                let limit = self.options.close_timeout;
                match timeout(limit, self.sink.close()).await {
                    Ok(Ok(true)) => p.confirmed = p.confirmed.max(p.sent),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(sink = %self.shared.name, error = %e, "close not acknowledged");
                    }
                    Err(_) => {
                        tracing::debug!(sink = %self.shared.name, "close not acknowledged in time");
                    }
                }
                self.sink.disconnect();
            }
        }
        self.shared.connected.store(false, Ordering::Relaxed);
        if p.loaded {
            if let Err(Failure::Sink(e) | Failure::Other(e)) = self.save_confirmed(p).await {
                tracing::warn!(sink = %self.shared.name, error = %e, "could not save the audit forward cursor at shutdown");
                self.shared.set_error(e.to_string());
            }
        }
    }

    async fn load(&self) -> Result<Option<i64>, ForwardError> {
        let cursors = Arc::clone(&self.cursors);
        let name = self.shared.name.clone();
        tokio::task::spawn_blocking(move || cursors.load(&name))
            .await
            .map_err(|e| ForwardError::Cursor {
                sink: self.shared.name.clone(),
                reason: e.to_string(),
            })?
    }

    async fn save(&self, seq: i64) -> Result<(), ForwardError> {
        let cursors = Arc::clone(&self.cursors);
        let name = self.shared.name.clone();
        tokio::task::spawn_blocking(move || cursors.save(&name, seq))
            .await
            .map_err(|e| ForwardError::Cursor {
                sink: self.shared.name.clone(),
                reason: e.to_string(),
            })?
    }
}

/// Keeps the strictly increasing run of records after `after`; a source that breaks the order
/// is reported (once per batch) and the rest of the batch is read again next time.
fn in_order(records: Vec<ForwardRecord>, after: i64, name: &str) -> Vec<ForwardRecord> {
    let mut prev = after;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        if r.seq <= prev {
            tracing::warn!(sink = %name, seq = r.seq, after = prev, "record source returned a record out of order; ignoring the rest of the batch");
            break;
        }
        prev = r.seq;
        out.push(r);
    }
    out
}
