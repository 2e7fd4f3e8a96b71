//! The accept loop and per-connection HTTP/1.1 serving.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use crate::{Listener, TlsReloader};

/// Tunables for [`serve_with`]; [`Default`] gives the values [`serve`] uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Maximum simultaneous connections; when reached, accepting pauses until
    /// one closes. Default 10 000.
    pub max_connections: usize,
    /// Time allowed for the TLS handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time allowed to receive a request's headers, which is also how long an
    /// idle keep-alive connection is kept. Default 30 s.
    pub header_read_timeout: Duration,
    /// After shutdown is requested, how long in-flight requests may run before
    /// their connections are closed. Default 10 s.
    pub shutdown_grace: Duration,
    /// Reload the certificate on `SIGHUP`. Default true.
    pub reload_on_sighup: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            reload_on_sighup: true,
        }
    }
}

impl ServeOptions {
    /// Sets [`ServeOptions::max_connections`] (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
    /// Sets [`ServeOptions::handshake_timeout`].
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }
    /// Sets [`ServeOptions::header_read_timeout`].
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = d;
        self
    }
    /// Sets [`ServeOptions::shutdown_grace`].
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }
    /// Sets [`ServeOptions::reload_on_sighup`].
    pub fn reload_on_sighup(mut self, on: bool) -> Self {
        self.reload_on_sighup = on;
        self
    }
}

/// Serves `router` on `listener` with [`ServeOptions::default`] until
/// `shutdown` resolves; see [`serve_with`].
pub async fn serve(
    listener: Listener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

/// Lifecycle broadcast to connection tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Finish in-flight requests, then close.
    Draining,
    /// Grace period over: close now.
    Kill,
}

/// State shared by all connection tasks.
struct Shared {
    router: Router,
    http: http1::Builder,
    handshake_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves.
///
/// Every request carries [`ConnectInfo<SocketAddr>`] with the peer address.
/// Connections speak HTTP/1.1 with keep-alive and upgrades (WebSocket). On
/// `SIGHUP` the TLS certificate is reloaded (when enabled in `opts`). Once
/// `shutdown` resolves the listening socket is closed, in-flight requests get
/// [`ServeOptions::shutdown_grace`] to finish, and the function returns.
/// Accept errors (e.g. out of file descriptors) are logged and retried.
/// Dropping the returned future instead closes every connection at once.
///
/// Upgraded connections (WebSocket) are handed to the application and are
/// neither counted against [`ServeOptions::max_connections`] nor drained.
pub async fn serve_with(
    listener: Listener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    opts: ServeOptions,
) -> io::Result<()> {
    let reloader = listener.reloader();
    let Listener {
        tcp,
        local_addr,
        tls,
    } = listener;

    let _sighup = if opts.reload_on_sighup {
        spawn_sighup_watcher(reloader)
    } else {
        None
    };

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .keep_alive(true);
    let shared = Arc::new(Shared {
        // Turn every route into its final form once, not per connection.
        router: router.with_state(()),
        http,
        handshake_timeout: opts.handshake_timeout,
    });

    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut limit_log = LogLimiter::default();
    let mut accept_log = LogLimiter::default();

    loop {
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if limit_log.allow() {
                    warn!(
                        max = opts.max_connections,
                        "connection limit reached; pausing accept"
                    );
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = tcp.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if is_per_connection_error(&e) => {
                debug!(error = %e, "accept: connection failed before it was accepted");
                continue;
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ...: back off briefly, keep going.
                if accept_log.allow() {
                    error!(error = %e, "accept failed; retrying shortly");
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = tls.as_ref().map(|state| TlsAcceptor::from(state.current()));
        tokio::spawn(handle_connection(
            stream,
            peer,
            acceptor,
            Arc::clone(&shared),
            phase_rx.clone(),
            permit,
        ));
    }

    // Stop accepting: close the listening socket right away.
    drop(tcp);
    drop(phase_rx);
    info!(addr = %local_addr, "shutting down; draining connections");
    let _ = phase_tx.send(Phase::Draining);
    if tokio::time::timeout(opts.shutdown_grace, phase_tx.closed())
        .await
        .is_err()
    {
        warn!(
            remaining = phase_tx.receiver_count(),
            "shutdown grace period elapsed; closing remaining connections"
        );
        let _ = phase_tx.send(Phase::Kill);
        let _ = tokio::time::timeout(Duration::from_secs(1), phase_tx.closed()).await;
    }
    info!(addr = %local_addr, "server stopped");
    Ok(())
}

/// Lets a repeated log line through at most once every 10 seconds.
#[derive(Default)]
struct LogLimiter {
    last: Option<std::time::Instant>,
}

impl LogLimiter {
    fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < Duration::from_secs(10) => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// Errors that concern only the connection being accepted.
fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Aborts the wrapped task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Registers the `SIGHUP` handler now (so a signal sent once `serve` accepts
/// connections cannot kill the process) and reloads TLS on each signal.
fn spawn_sighup_watcher(reloader: TlsReloader) -> Option<AbortOnDrop> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot install SIGHUP handler; TLS reload on SIGHUP disabled");
            return None;
        }
    };
    Some(AbortOnDrop(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if !reloader.is_tls() {
                info!("SIGHUP received; plain HTTP, no certificate to reload");
                continue;
            }
            match reloader.reload_tls() {
                Ok(()) => info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => {
                    error!(error = %e, "SIGHUP: TLS reload failed; keeping the previous certificate")
                }
            }
        }
    })))
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    _permit: OwnedSemaphorePermit,
) {
    let service = ConnService {
        router: shared.router.clone(),
        peer,
    };
    let Some(acceptor) = acceptor else {
        return drive(&shared.http, TokioIo::new(stream), service, peer, phase).await;
    };
    let handshake = tokio::time::timeout(shared.handshake_timeout, acceptor.accept(stream));
    let tls = tokio::select! {
        biased;
        r = handshake => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        _ = phase.changed() => return,
    };
    drive(&shared.http, TokioIo::new(tls), service, peer, phase).await;
}

/// Runs HTTP/1.1 on an established connection, honouring shutdown phases.
async fn drive<I>(
    http: &http1::Builder,
    io: I,
    service: ConnService,
    peer: SocketAddr,
    mut phase: watch::Receiver<Phase>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut conn = std::pin::pin!(http.serve_connection(io, service).with_upgrades());
    let result = tokio::select! {
        biased;
        r = conn.as_mut() => r,
        _ = phase.changed() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                biased;
                r = conn.as_mut() => r,
                _ = phase.wait_for(|p| *p == Phase::Kill) => {
                    debug!(%peer, "closing connection at end of shutdown grace period");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with error");
    }
}

/// Per-connection hyper service: tags requests with the peer address and
/// hands them to the router.
#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        tower::Service::call(&mut self.router.clone(), req)
    }
}
