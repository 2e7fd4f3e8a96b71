//! Enclave's network front door.
//!
//! This crate owns the listening socket, TLS (rustls with the aws-lc-rs
//! provider only) and certificates. It knows nothing of the application: it
//! serves any [`axum::Router`].
//!
//! ```no_run
//! # async fn run(router: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
//! use enclave_listener::{bind, serve, ListenConfig, TlsMode};
//!
//! let listener = bind(ListenConfig {
//!     addr: "0.0.0.0:8443".parse()?,
//!     tls: TlsMode::SelfSigned { dir: "enclave-data/tls".into(), names: vec![] },
//! })
//! .await?;
//! if let Some(ca) = listener.cert_path() {
//!     println!("CA certificate for clients (--ca): {}", ca.display());
//! }
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! serve(listener, router, shutdown).await?;
//! # Ok(()) }
//! ```
//!
//! * [`bind`] validates the configuration, prepares TLS (generating a
//!   self-signed certificate on first start if asked to) and binds the socket.
//! * [`serve`] runs the accept loop until the shutdown future resolves, then
//!   drains in-flight requests. While it runs, `SIGHUP` reloads the
//!   certificate and key from disk (see [`Listener::reload_tls`]).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

mod serve;
mod tls;

pub use serve::{serve, serve_with, ServeOptions};

/// File name of the generated certificate inside a [`TlsMode::SelfSigned`] directory.
pub const SELF_SIGNED_CERT_FILE: &str = tls::CERT_FILE;
/// File name of the generated private key inside a [`TlsMode::SelfSigned`] directory.
pub const SELF_SIGNED_KEY_FILE: &str = tls::KEY_FILE;

/// Where to listen and how to secure the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// Address to bind; port 0 picks a free port (see [`Listener::local_addr`]).
    pub addr: SocketAddr,
    /// TLS settings.
    pub tls: TlsMode,
}

/// How the listener obtains its TLS certificate, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Use `dir/cert.pem` and `dir/key.pem`, generating an ECDSA P-256
    /// self-signed pair (valid one year, SANs `localhost`, `127.0.0.1`, `::1`,
    /// the listen IP and `names`) when they do not exist, the certificate
    /// expires within 30 days, or it does not cover one of `names`. `dir` is
    /// created with mode 0700, the key with 0600.
    SelfSigned {
        /// Directory holding the generated certificate and key.
        dir: PathBuf,
        /// More DNS names the certificate must cover, e.g. `*.nb.enclave.example` for
        /// notebook subdomains (a wildcard covers one label).
        names: Vec<String>,
    },
    /// Load a PEM certificate chain and a PEM private key (PKCS#8, SEC1 or
    /// PKCS#1/RSA) from the given files.
    Files {
        /// PEM certificate chain, leaf first.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
    },
    /// No TLS. Only allowed on a loopback address (127.0.0.0/8 or `::1`).
    PlainHttp,
}

/// Errors from [`bind`] and [`Listener::reload_tls`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// [`TlsMode::PlainHttp`] was requested on a non-loopback address.
    #[error(
        "plain HTTP is only allowed on loopback addresses (127.0.0.0/8 or ::1), \
         not on {addr}; use TLS (self-signed or certificate files) instead"
    )]
    PlainHttpNotLoopback {
        /// The rejected address.
        addr: SocketAddr,
    },
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that failed.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A certificate, key or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was being done (`read`, `write`, `create directory`, ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("invalid PEM in {}: {reason}", path.display())]
    InvalidPem {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("no PEM certificate found in {}", path.display())]
    NoCertificate {
        /// The offending file.
        path: PathBuf,
    },
    /// The key file holds no private key block.
    #[error(
        "no PEM private key (PKCS#8, SEC1 or RSA) found in {}",
        path.display()
    )]
    NoPrivateKey {
        /// The offending file.
        path: PathBuf,
    },
    /// rustls rejected the certificate/key pair (e.g. the key does not match).
    #[error(
        "TLS certificate {} / key {} rejected: {source}",
        cert.display(),
        key.display()
    )]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The rustls error.
        source: rustls::Error,
    },
    /// Generating the self-signed certificate failed.
    #[error("cannot generate self-signed certificate: {0}")]
    CertGen(#[from] rcgen::Error),
}

/// A bound socket plus its TLS state, ready for [`serve`].
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    local_addr: SocketAddr,
    tls: Option<Arc<tls::TlsState>>,
}

impl Listener {
    /// The address actually bound (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The certificate file in use (for self-signed mode, the file clients
    /// pass as `--ca`); `None` for plain HTTP.
    pub fn cert_path(&self) -> Option<&Path> {
        self.tls.as_deref().map(tls::TlsState::cert_path)
    }

    /// Re-reads the certificate and key files and swaps the TLS configuration
    /// used for new connections; existing connections are unaffected.
    ///
    /// In self-signed mode a missing or nearly expired certificate is
    /// regenerated first. On failure the previous configuration stays in use
    /// and the error is returned. A no-op for plain HTTP.
    pub fn reload_tls(&self) -> Result<(), ListenError> {
        self.reloader().reload_tls()
    }

    /// A cloneable handle that can reload TLS after the listener has been
    /// moved into [`serve`] (e.g. from an admin endpoint).
    pub fn reloader(&self) -> TlsReloader {
        TlsReloader {
            tls: self.tls.clone(),
        }
    }
}

/// Handle to reload a [`Listener`]'s certificate; see [`Listener::reload_tls`].
#[derive(Debug, Clone)]
pub struct TlsReloader {
    tls: Option<Arc<tls::TlsState>>,
}

impl TlsReloader {
    /// Same as [`Listener::reload_tls`].
    pub fn reload_tls(&self) -> Result<(), ListenError> {
        match &self.tls {
            Some(state) => state.reload(),
            None => Ok(()),
        }
    }

    /// Whether there is TLS state to reload (false for plain HTTP).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Validates `cfg`, prepares TLS (loading or generating the certificate) and
/// binds the socket.
///
/// Certificate preparation does a little blocking file I/O; it happens once,
/// before the socket is bound, so a bad configuration never holds the port.
pub async fn bind(cfg: ListenConfig) -> Result<Listener, ListenError> {
    let ListenConfig { addr, tls: mode } = cfg;
    let source = match mode {
        TlsMode::PlainHttp => {
            if !is_loopback(addr.ip()) {
                return Err(ListenError::PlainHttpNotLoopback { addr });
            }
            None
        }
        TlsMode::SelfSigned { dir, names } => {
            let ip = addr.ip().to_canonical();
            Some(tls::Source::self_signed(
                dir,
                (!ip.is_unspecified()).then_some(ip),
                names,
            ))
        }
        TlsMode::Files { cert, key } => Some(tls::Source::Files { cert, key }),
    };
    let tls = source.map(tls::TlsState::new).transpose()?.map(Arc::new);

    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Bind { addr, source })?;
    let local_addr = tcp
        .local_addr()
        .map_err(|source| ListenError::Bind { addr, source })?;
    tracing::info!(
        addr = %local_addr,
        tls = tls.is_some(),
        "listening"
    );
    Ok(Listener {
        tcp,
        local_addr,
        tls,
    })
}

/// 127.0.0.0/8, `::1` and IPv4-mapped loopback.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}
