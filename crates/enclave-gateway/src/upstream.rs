//! Where requests go: a notebook server reached through a connect function.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Bytes;
use hyper::header::HeaderValue;
use zeroize::Zeroize;

/// The future a [`ConnectFn`] returns.
pub type ConnectFuture =
    Pin<Box<dyn Future<Output = std::io::Result<tokio::net::TcpStream>> + Send>>;

/// Opens a TCP connection to a notebook server (from inside its sandbox's network
/// namespace). Called for each new pooled connection and for each websocket that finds no
/// idle connection; bounded by [`crate::GatewayConfig::connect_timeout`].
pub type ConnectFn = Arc<dyn Fn() -> ConnectFuture + Send + Sync>;

/// Bytes wiped from memory when the last reference to them goes.
struct SecretBytes(Vec<u8>);

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The notebook token is empty, or has characters a header value cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidToken;

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the notebook token must be non-empty visible ASCII")
    }
}

impl std::error::Error for InvalidToken {}

/// One notebook server: how to reach it, its Jupyter token, and the key its pooled
/// connections and activity are kept under (e.g. `project/notebook/generation`, so a
/// restarted notebook never gets its predecessor's connections).
///
/// The token is held only inside the prepared `Authorization: token …` value, whose memory is
/// wiped when the last `Upstream` clone (and the last request using it) is gone; `Debug`
/// never shows it.
#[derive(Clone)]
pub struct Upstream {
    pub(crate) key: Arc<str>,
    pub(crate) connect: ConnectFn,
    pub(crate) authorization: HeaderValue,
}

impl Upstream {
    /// An upstream under `key`, reached with `connect`, authenticated with `token`.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when the token is empty or not visible ASCII.
    pub fn new(
        key: impl Into<Arc<str>>,
        connect: ConnectFn,
        token: &str,
    ) -> Result<Upstream, InvalidToken> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidToken);
        }
        let mut value = Vec::with_capacity(6 + token.len());
        value.extend_from_slice(b"token ");
        value.extend_from_slice(token.as_bytes());
        let shared = Bytes::from_owner(SecretBytes(value));
        let mut authorization = HeaderValue::from_maybe_shared(shared).map_err(|_| InvalidToken)?;
        authorization.set_sensitive(true);
        Ok(Upstream {
            key: key.into(),
            connect,
            authorization,
        })
    }

    /// The key this upstream's connections and activity are kept under.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("key", &self.key)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn never() -> ConnectFn {
        Arc::new(|| Box::pin(async { Err(std::io::Error::other("no")) }))
    }

    #[test]
    fn token_is_validated_and_never_shown() {
        assert_eq!(Upstream::new("k", never(), "").err(), Some(InvalidToken));
        assert_eq!(Upstream::new("k", never(), "a b").err(), Some(InvalidToken));
        assert_eq!(
            Upstream::new("k", never(), "a\nb").err(),
            Some(InvalidToken)
        );
        let u = Upstream::new("p/n/1", never(), "s3cr3t-t0ken").unwrap();
        assert_eq!(u.authorization, "token s3cr3t-t0ken");
        assert!(u.authorization.is_sensitive());
        let shown = format!("{u:?} {:?}", u.authorization);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(u.key(), "p/n/1");
    }
}
