//! Coalesced audit of API-token use: one `token.use` record per (token, source address) per
//! minute, carrying how many requests it covers, instead of one record per request.
//!
//! A window opens at the first request of a token from a source address and lasts
//! [`USE_WINDOW`]. Requests inside it only count in memory. The window is recorded, through the
//! audit chokepoint ([`App::commit`]), when it has ended: by the next request of the same token
//! from the same address (before that request is answered; if the record cannot be written the
//! request is refused), by the server's periodic audit housekeeping, or when the server shuts
//! down. A record's `request_id` is the first request's, its detail holds `requests`,
//! `first_at` and `last_at`. What a crash can lose is the count of the last minute's requests
//! (the first use is also kept durably as the token's `last_used_at`); every change made with a
//! token has its own record anyway. Time comes from the injected clock.

use crate::chokepoint::label;
use crate::{detail, App};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::{Result, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long one `token.use` record's window lasts.
pub const USE_WINDOW: Duration = Duration::from_secs(60);

/// Windows kept in memory at most; beyond that a new window is recorded at once.
const MAX_WINDOWS: usize = 100_000;

/// Audit action name of a token's use.
pub const TOKEN_USE_ACTION: &str = "token.use";

/// The uses of one token from one address inside one window.
#[derive(Debug, Clone)]
pub(crate) struct UseWindow {
    token_id: String,
    source: String,
    actor: String,
    request_id: String,
    first: Timestamp,
    last: Timestamp,
    requests: u64,
}

impl UseWindow {
    fn record(&self, now: Timestamp) -> AuditRecord {
        let token = label("token", &self.token_id);
        AuditRecord {
            at: now,
            actor: self.actor.clone(),
            auth: token.clone(),
            source: self.source.clone(),
            action: TOKEN_USE_ACTION.into(),
            resource: token,
            project: None,
            outcome: Outcome::Success,
            request_id: self.request_id.clone(),
            detail: detail!(
                "requests" => self.requests,
                "first_at" => self.first.rfc3339(),
                "last_at" => self.last.rfc3339(),
                "window_seconds" => USE_WINDOW.as_secs(),
            ),
        }
    }

    fn ended(&self, now: Timestamp) -> bool {
        now >= self.first.plus(USE_WINDOW) || now < self.first
    }
}

/// The open windows, by (token id, source address).
#[derive(Default)]
pub(crate) struct TokenUses {
    open: Mutex<HashMap<(String, String), UseWindow>>,
}

/// One request made with a token.
pub(crate) struct TokenRequest<'a> {
    pub token_id: &'a str,
    pub actor: &'a str,
    pub source: &'a str,
    pub request_id: &'a str,
}

impl TokenUses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), UseWindow>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request; returns the windows that must be recorded before it is answered
    /// (the ended window of the same token and address, or this request's own when memory is
    /// full).
    pub(crate) fn note(&self, r: &TokenRequest<'_>, now: Timestamp) -> Vec<UseWindow> {
        let fresh = || UseWindow {
            token_id: r.token_id.to_string(),
            source: r.source.to_string(),
            actor: r.actor.to_string(),
            request_id: r.request_id.to_string(),
            first: now,
            last: now,
            requests: 1,
        };
        let key = (r.token_id.to_string(), r.source.to_string());
        let mut open = self.lock();
        let full = open.len() >= MAX_WINDOWS;
        match open.get_mut(&key) {
            Some(w) if !w.ended(now) => {
                w.requests = w.requests.saturating_add(1);
                w.last = w.last.max(now);
                Vec::new()
            }
            Some(w) => vec![std::mem::replace(w, fresh())],
            None if full => vec![fresh()],
            None => {
                open.insert(key, fresh());
                Vec::new()
            }
        }
    }

    /// Removes and returns the windows that have ended (all of them with `all`).
    pub(crate) fn take(&self, now: Timestamp, all: bool) -> Vec<UseWindow> {
        let mut open = self.lock();
        let keys: Vec<_> = open
            .iter()
            .filter(|(_, w)| all || w.ended(now))
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| open.remove(k)).collect()
    }

    /// Puts back windows whose record could not be written, merging them with windows opened
    /// since, so no request goes uncounted.
    pub(crate) fn restore(&self, windows: Vec<UseWindow>) {
        let mut open = self.lock();
        for w in windows {
            let key = (w.token_id.clone(), w.source.clone());
            match open.get_mut(&key) {
                Some(cur) => {
                    cur.requests = cur.requests.saturating_add(w.requests);
                    cur.first = cur.first.min(w.first);
                    cur.last = cur.last.max(w.last);
                    cur.request_id = w.request_id;
                }
                None => {
                    open.insert(key, w);
                }
            }
        }
    }
}

impl App {
    /// Counts a request made with a token and records the windows that are due, before the
    /// request is answered; an error (the trail cannot record) refuses the request.
    pub(crate) async fn note_token_use(&self, r: &TokenRequest<'_>) -> Result<()> {
        let due = self.token_uses.note(r, self.now());
        self.record_token_uses(due).await
    }

    /// Records the windows of token use that have ended (every open one with `all`, at
    /// shutdown); returns how many records were written. Windows whose record could not be
    /// written stay for the next try.
    pub async fn flush_token_use(&self, all: bool) -> Result<usize> {
        let due = self.token_uses.take(self.now(), all);
        let n = due.len();
        self.record_token_uses(due).await?;
        Ok(n)
    }

    async fn record_token_uses(&self, windows: Vec<UseWindow>) -> Result<()> {
        let now = self.now();
        let mut records: Vec<AuditRecord> = windows.iter().map(|w| w.record(now)).collect();
        let Some(last) = records.pop() else {
            return Ok(());
        };
        let result = async {
            let mut tx = self.store.write().await?;
            for rec in &records {
                tx.append_audit(rec).await?;
            }
            self.commit(tx, last).await
        }
        .await;
        if let Err(e) = &result {
            tracing::warn!(error = %e.message, windows = windows.len(), "token use not recorded yet");
            self.token_uses.restore(windows);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(source: &'a str, id: &'a str) -> TokenRequest<'a> {
        TokenRequest {
            token_id: "tok_a",
            actor: "ana",
            source,
            request_id: id,
        }
    }

    #[test]
    fn one_window_per_token_and_address_per_minute() {
        let u = TokenUses::default();
        let t0 = Timestamp(1_000);
        assert!(u.note(&req("10.0.0.1", "req_1"), t0).is_empty());
        assert!(u
            .note(&req("10.0.0.1", "req_2"), Timestamp(1_030))
            .is_empty());
        assert!(u
            .note(&req("10.0.0.2", "req_3"), Timestamp(1_031))
            .is_empty());
        assert!(u
            .note(&req("10.0.0.1", "req_4"), Timestamp(1_059))
            .is_empty());
        // The first request after the minute closes the window of its address only.
        let due = u.note(&req("10.0.0.1", "req_5"), Timestamp(1_060));
        assert_eq!(due.len(), 1);
        let rec = due[0].record(Timestamp(1_060));
        assert_eq!(rec.action, "token.use");
        assert_eq!(rec.auth, "token:tok_a");
        assert_eq!(rec.resource, "token:tok_a");
        assert_eq!(rec.source, "10.0.0.1");
        assert_eq!(rec.request_id, "req_1");
        assert_eq!(rec.detail["requests"], 3);
        assert_eq!(rec.detail["first_at"], Timestamp(1_000).rfc3339());
        assert_eq!(rec.detail["last_at"], Timestamp(1_059).rfc3339());
        // The housekeeping takes only ended windows, or all at shutdown.
        assert!(u.take(Timestamp(1_090), false).is_empty());
        let ended = u.take(Timestamp(1_091), false);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].source, "10.0.0.2");
        let rest = u.take(Timestamp(1_092), true);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].requests, 1);
        assert!(u.take(Timestamp(1_092), true).is_empty());
    }

    #[test]
    fn windows_put_back_keep_their_requests() {
        let u = TokenUses::default();
        u.note(&req("10.0.0.1", "req_1"), Timestamp(0));
        u.note(&req("10.0.0.1", "req_2"), Timestamp(1));
        let taken = u.take(Timestamp(2), true);
        u.note(&req("10.0.0.1", "req_3"), Timestamp(3));
        u.restore(taken);
        let all = u.take(Timestamp(4), true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].requests, 3);
        assert_eq!(all[0].request_id, "req_1");
        assert_eq!(all[0].first, Timestamp(0));
    }

    #[test]
    fn a_clock_that_goes_back_ends_the_window() {
        let u = TokenUses::default();
        u.note(&req("10.0.0.1", "req_1"), Timestamp(100));
        assert_eq!(u.note(&req("10.0.0.1", "req_2"), Timestamp(50)).len(), 1);
    }
}
