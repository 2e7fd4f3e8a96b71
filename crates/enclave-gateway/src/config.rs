//! The gateway's settings and their bounds.

use std::time::Duration;

/// Settings of a [`crate::Gateway`]. Out-of-range values are clamped by
/// [`crate::Gateway::new`] (see each field).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Cookie name prefixes that belong to Enclave (e.g. `enclave_`): such cookies are
    /// removed from requests and from the notebook server's `Set-Cookie`s. A `__Host-` or
    /// `__Secure-` prefix in front of the name is looked through.
    pub strip_cookie_prefixes: Vec<String>,
    /// How long an idle pooled connection is kept (at least 1 s).
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per upstream (at least 1).
    pub max_idle_per_upstream: usize,
    /// Limit on opening a connection (the connect function), and on the websocket handshake
    /// with the notebook server (at least 10 ms).
    pub connect_timeout: Duration,
    /// Limit on waiting for the notebook server's response head (at least 10 ms).
    pub response_timeout: Duration,
    /// Largest response head (status line and headers) accepted from the notebook server,
    /// in bytes (at least 1 KiB); at most 100 headers.
    pub max_response_head: usize,
    /// Largest websocket message (and frame), either direction, in bytes (at least 1 KiB).
    /// A larger one closes the websocket with 1009 (message too big).
    pub max_ws_message: usize,
    /// Longest a terminal command line may grow before it is reported in pieces (characters).
    pub max_terminal_line: usize,
    /// How long the closing handshake of a websocket may take before both connections are
    /// dropped.
    pub ws_close_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            strip_cookie_prefixes: vec!["enclave_".to_owned()],
            pool_idle_timeout: Duration::from_secs(90),
            max_idle_per_upstream: 32,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(300),
            max_response_head: 64 * 1024,
            max_ws_message: 16 * 1024 * 1024,
            max_terminal_line: 4096,
            ws_close_timeout: Duration::from_secs(5),
        }
    }
}

impl GatewayConfig {
    /// The same settings with every value inside its bounds.
    pub(crate) fn clamped(mut self) -> GatewayConfig {
        let ms10 = Duration::from_millis(10);
        self.pool_idle_timeout = self.pool_idle_timeout.max(Duration::from_secs(1));
        self.max_idle_per_upstream = self.max_idle_per_upstream.max(1);
        self.connect_timeout = self.connect_timeout.max(ms10);
        self.response_timeout = self.response_timeout.max(ms10);
        self.max_response_head = self.max_response_head.max(1024);
        self.max_ws_message = self.max_ws_message.max(1024);
        self.max_terminal_line = self.max_terminal_line.max(1);
        self.ws_close_timeout = self.ws_close_timeout.max(ms10);
        self.strip_cookie_prefixes.retain(|p| !p.is_empty());
        self
    }
}
