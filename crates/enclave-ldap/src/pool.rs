//! A small pool of LDAP connections: at most `size` in use, idle ones reused, broken ones
//! dropped and re-made.

use std::future::Future;
use std::sync::Mutex;

use ldap3::Ldap;
use tokio::sync::Semaphore;

use crate::error::Error;

/// Connections of one kind (service-bound, or used only for user binds).
pub(crate) struct Pool {
    idle: Mutex<Vec<Ldap>>,
    permits: Option<Semaphore>,
    keep: usize,
}

impl Pool {
    /// A pool keeping up to `size` connections; `0` keeps none (connect per call, unbounded).
    pub(crate) fn new(size: usize) -> Self {
        Pool {
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: (size > 0).then(|| Semaphore::new(size)),
            keep: size,
        }
    }

    fn take_idle(&self) -> Option<Ldap> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut ldap) = idle.pop() {
            if !ldap.is_closed() {
                return Some(ldap);
            }
        }
        None
    }

    fn put_back(&self, mut ldap: Ldap) {
        if self.keep == 0 || ldap.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.keep {
            idle.push(ldap);
        }
    }

    /// Number of idle connections (for tests and metrics).
    pub(crate) fn idle_len(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Run `op` on a connection (`connect` makes one when none is idle). A connection
    /// that fails at the connection level is dropped; when it was a reused one (the
    /// directory may have restarted since) all idle connections are dropped and `op` is
    /// retried once on a fresh connection.
    /// The retry uses the same transport: there is never a fallback to anything weaker.
    pub(crate) async fn run<T, C, CF, F, Fut>(&self, connect: C, mut op: F) -> Result<T, Error>
    where
        C: Fn() -> CF,
        CF: Future<Output = Result<Ldap, Error>>,
        F: FnMut(Ldap) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let _permit = match &self.permits {
            Some(s) => Some(s.acquire().await.map_err(|_| Error::Unavailable {
                url: String::new(),
                reason: "connection pool closed".into(),
            })?),
            None => None,
        };
        let mut retried = false;
        loop {
            let (ldap, reused) = match self.take_idle() {
                Some(l) => (l, true),
                None => (connect().await?, false),
            };
            match op(ldap.clone()).await {
                Ok(v) => {
                    self.put_back(ldap);
                    return Ok(v);
                }
                Err(e) if e.is_connection_failure() => {
                    drop(ldap);
                    if reused && !retried {
                        tracing::debug!(error = %e, "pooled LDAP connection broken; reconnecting");
                        // The other idle connections most likely went the same way
                        // (directory restarted): drop them all.
                        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => {
                    self.put_back(ldap);
                    return Err(e);
                }
            }
        }
    }
}
