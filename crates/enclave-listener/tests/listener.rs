//! Integration tests for enclave-listener. All traffic stays on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use enclave_listener::{
    bind, serve, serve_with, ListenConfig, ListenError, Listener, ServeOptions, TlsMode,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------- helpers

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn self_signed(addr: SocketAddr, dir: &Path) -> ListenConfig {
    ListenConfig {
        addr,
        tls: TlsMode::SelfSigned {
            dir: dir.to_path_buf(),
            names: vec![],
        },
    }
}

/// DER of the first certificate in a PEM file.
fn leaf_der(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// A client trusting only `ca_pem`; with `fresh`, every request opens a new
/// connection (and so sees the server's current certificate).
fn client(ca_pem: &[u8], fresh: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if fresh {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

fn client_for(cert_path: &Path, fresh: bool) -> reqwest::Client {
    client(&std::fs::read(cert_path).unwrap(), fresh)
}

/// DER of the certificate the server presented.
fn presented_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("tls info")
        .peer_certificate()
        .expect("peer certificate")
        .to_vec()
}

/// A fresh self-signed (cert PEM, key PEM) pair for localhost/127.0.0.1.
fn new_pair() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write_pair(cert_path: &Path, key_path: &Path, pair: &(String, String)) {
    std::fs::write(key_path, &pair.1).unwrap();
    std::fs::write(cert_path, &pair.0).unwrap();
}

#[derive(Clone)]
struct AppState {
    /// Told when `/slow` has started.
    slow_started: mpsc::UnboundedSender<()>,
    slow_for: Duration,
}

fn app(slow_for: Duration) -> (Router, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/slow",
            get(|State(s): State<AppState>| async move {
                let _ = s.slow_started.send(());
                tokio::time::sleep(s.slow_for).await;
                "done"
            }),
        )
        .route("/upgrade", get(upgrade_echo))
        .with_state(AppState {
            slow_started: tx,
            slow_for,
        });
    (router, rx)
}

/// Switches protocols and echoes whatever the client sends afterwards.
async fn upgrade_echo(mut req: Request) -> Response {
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = on_upgrade.await.unwrap();
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        io.write_all(&buf[..n]).await.unwrap();
        io.flush().await.unwrap();
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(Body::empty())
        .unwrap()
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn start(listener: Listener, router: Router, opts: ServeOptions) -> Running {
    let addr = listener.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(
        listener,
        router,
        async move {
            let _ = stopped.await;
        },
        opts,
    ));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn self_signed_is_generated_with_safe_modes_and_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state").join("tls");

    let first = bind(self_signed(loopback0(), &dir)).await.unwrap();
    let cert_path = first.cert_path().unwrap().to_path_buf();
    assert_eq!(cert_path, dir.join(enclave_listener::SELF_SIGNED_CERT_FILE));
    let key_path = dir.join(enclave_listener::SELF_SIGNED_KEY_FILE);
    assert_eq!(mode(&dir), 0o700, "tls dir mode");
    assert_eq!(mode(&key_path), 0o600, "key mode");
    assert_eq!(mode(&cert_path), 0o644, "cert mode");
    assert!(!dir.join("key.pem.tmp").exists());
    let cert_bytes = std::fs::read(&cert_path).unwrap();
    let key_bytes = std::fs::read(&key_path).unwrap();
    assert!(String::from_utf8_lossy(&cert_bytes).contains("BEGIN CERTIFICATE"));
    drop(first);

    let second = bind(self_signed(loopback0(), &dir)).await.unwrap();
    assert_eq!(second.cert_path(), Some(cert_path.as_path()));
    assert_eq!(
        std::fs::read(&cert_path).unwrap(),
        cert_bytes,
        "cert reused"
    );
    assert_eq!(std::fs::read(&key_path).unwrap(), key_bytes, "key reused");
}

#[tokio::test]
async fn self_signed_expired_is_renewed_and_missing_key_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cert_path = tmp.path().join("cert.pem");
    let key_path = tmp.path().join("key.pem");

    // An expired pair in the directory is replaced by a fresh one.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = params.self_signed(&key).unwrap().pem();
    write_pair(
        &cert_path,
        &key_path,
        &(expired.clone(), key.serialize_pem()),
    );
    let listener = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    let renewed = std::fs::read_to_string(&cert_path).unwrap();
    assert_ne!(renewed, expired);
    assert_eq!(mode(&key_path), 0o600);
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());
    let resp = client(renewed.as_bytes(), true)
        .get(format!("https://{}/", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().await;

    // A certificate without its key is not silently replaced.
    std::fs::remove_file(&key_path).unwrap();
    let err = bind(self_signed(loopback0(), tmp.path()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&key_path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&cert_path).unwrap(), renewed);
}

#[tokio::test]
async fn https_works_and_requests_carry_the_peer_address() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    assert!(listener.is_tls());
    let cert_path = listener.cert_path().unwrap().to_path_buf();
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());
    let port = server.addr.port();

    let http = client_for(&cert_path, false);
    let resp = http
        .get(format!("https://127.0.0.1:{port}/peer"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(presented_cert(&resp), leaf_der(&cert_path));
    let peer: SocketAddr = resp.text().await.unwrap().parse().unwrap();
    assert!(peer.ip().is_loopback(), "peer {peer}");
    assert_ne!(peer.port(), port);

    // The DNS SAN works too (`localhost` pinned to the loopback address).
    let by_name = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(&cert_path).unwrap()).unwrap(),
        ])
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    let body = by_name
        .get(format!("https://localhost:{port}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");

    // Keep-alive: several requests on one client all succeed.
    for _ in 0..5 {
        let r = http
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    server.stop().await;
}

#[tokio::test]
async fn self_signed_certificate_covers_the_listen_ip() {
    // Linux routes all of 127.0.0.0/8 to the loopback interface.
    let tmp = tempfile::tempdir().unwrap();
    let listener = bind(self_signed("127.0.0.2:0".parse().unwrap(), tmp.path()))
        .await
        .unwrap();
    let cert_path = listener.cert_path().unwrap().to_path_buf();
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());
    let body = client_for(&cert_path, true)
        .get(format!("https://{}/", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    server.stop().await;
}

#[tokio::test]
async fn self_signed_certificate_covers_extra_names_and_is_renewed_to_cover_them() {
    let tmp = tempfile::tempdir().unwrap();
    // A certificate made without the notebook wildcard...
    let first = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    let cert_path = first.cert_path().unwrap().to_path_buf();
    let before = std::fs::read(&cert_path).unwrap();
    drop(first);
    // ...is replaced when the wildcard is asked for, and then kept.
    let cfg = ListenConfig {
        addr: loopback0(),
        tls: TlsMode::SelfSigned {
            dir: tmp.path().to_path_buf(),
            names: vec!["*.nb.localhost".into()],
        },
    };
    let listener = bind(cfg.clone()).await.unwrap();
    let after = std::fs::read(&cert_path).unwrap();
    assert_ne!(after, before, "regenerated to cover the wildcard");
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());
    let port = server.addr.port();
    let by_name = |host: &str| {
        reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(&after).unwrap()])
            .resolve(host, server.addr)
            .build()
            .unwrap()
    };
    let ok = by_name("n1--p1.nb.localhost")
        .get(format!("https://n1--p1.nb.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.text().await.unwrap(), "ok");
    // A wildcard covers one label only.
    let deeper = by_name("x.n1--p1.nb.localhost")
        .get(format!("https://x.n1--p1.nb.localhost:{port}/"))
        .send()
        .await;
    assert!(deeper.is_err(), "two labels deep must not verify");
    server.stop().await;
    drop(bind(cfg).await.unwrap());
    assert_eq!(
        std::fs::read(&cert_path).unwrap(),
        after,
        "kept once it covers"
    );
}

#[tokio::test]
async fn upgrades_are_supported() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    let cert_path = listener.cert_path().unwrap().to_path_buf();
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());

    let resp = client_for(&cert_path, true)
        .get(format!("https://{}/upgrade", server.addr))
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let mut io = resp.upgrade().await.unwrap();
    io.write_all(b"ping over upgraded stream").await.unwrap();
    let mut buf = vec![0u8; 25];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, b"ping over upgraded stream");
    server.stop().await;
}

#[tokio::test]
async fn reload_swaps_certificate_for_new_connections_only() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    let reloader = listener.reloader();
    let cert_path = listener.cert_path().unwrap().to_path_buf();
    let key_path = tmp.path().join("key.pem");
    let old_pem = std::fs::read(&cert_path).unwrap();
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());
    let url = format!("https://127.0.0.1:{}/", server.addr.port());

    // A pooled connection established under the old certificate.
    let pooled_old = client(&old_pem, false);
    assert_eq!(pooled_old.get(&url).send().await.unwrap().status(), 200);

    let pair = new_pair();
    write_pair(&cert_path, &key_path, &pair);
    reloader.reload_tls().unwrap();

    // New connections present the new certificate...
    let resp = client(pair.0.as_bytes(), true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(presented_cert(&resp), leaf_der(&cert_path));
    // ...so clients trusting only the old one are rejected...
    assert!(client(&old_pem, true).get(&url).send().await.is_err());
    // ...while the already-open connection carries on.
    assert_eq!(pooled_old.get(&url).send().await.unwrap().status(), 200);

    // A broken file: reload fails, names the file, keeps the current config.
    std::fs::write(&cert_path, "not a certificate").unwrap();
    let err = reloader.reload_tls().unwrap_err();
    assert!(
        err.to_string().contains(&cert_path.display().to_string()),
        "{err}"
    );
    let resp = client(pair.0.as_bytes(), true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Mismatched key: rejected, old config kept.
    let other = new_pair();
    std::fs::write(&cert_path, &pair.0).unwrap();
    std::fs::write(&key_path, &other.1).unwrap();
    assert!(matches!(
        reloader.reload_tls().unwrap_err(),
        ListenError::Tls { .. }
    ));
    let resp = client(pair.0.as_bytes(), true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(presented_cert(&resp), leaf_der(&cert_path));
    server.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let cert_path = tmp.path().join("server.crt");
    let key_path = tmp.path().join("server.key");
    let first = new_pair();
    write_pair(&cert_path, &key_path, &first);
    let listener = bind(ListenConfig {
        addr: loopback0(),
        tls: TlsMode::Files {
            cert: cert_path.clone(),
            key: key_path.clone(),
        },
    })
    .await
    .unwrap();
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());
    let url = format!("https://{}/", server.addr);
    // Serving implies the SIGHUP handler is installed (done before accepting).
    assert_eq!(
        client(first.0.as_bytes(), true)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let second = new_pair();
    write_pair(&cert_path, &key_path, &second);
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("kill -HUP \"$0\"")
        .arg(std::process::id().to_string())
        .status()
        .unwrap();
    assert!(status.success());

    let new_client = client(second.0.as_bytes(), true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(resp) = new_client.get(&url).send().await {
            assert_eq!(presented_cert(&resp), leaf_der(&cert_path));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn plain_http_only_on_loopback() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let err = bind(ListenConfig {
            addr: addr.parse().unwrap(),
            tls: TlsMode::PlainHttp,
        })
        .await
        .unwrap_err();
        assert!(
            matches!(err, ListenError::PlainHttpNotLoopback { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("plain HTTP is only allowed on loopback"),
            "{err}"
        );
    }

    let listener = bind(ListenConfig {
        addr: loopback0(),
        tls: TlsMode::PlainHttp,
    })
    .await
    .unwrap();
    assert!(!listener.is_tls());
    assert_eq!(listener.cert_path(), None);
    listener.reload_tls().unwrap();
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());
    let body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/peer", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let peer: SocketAddr = body.parse().unwrap();
    assert!(peer.ip().is_loopback());
    server.stop().await;
}

#[tokio::test]
async fn certificate_files_mode_and_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("chain.pem");
    let key = tmp.path().join("private.pem");
    let pair = new_pair();
    write_pair(&cert, &key, &pair);
    let files = |cert: &Path, key: &Path| ListenConfig {
        addr: loopback0(),
        tls: TlsMode::Files {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        },
    };

    let listener = bind(files(&cert, &key)).await.unwrap();
    assert_eq!(listener.cert_path(), Some(cert.as_path()));
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default());
    let resp = client(pair.0.as_bytes(), true)
        .get(format!("https://{}/", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(presented_cert(&resp), leaf_der(&cert));
    server.stop().await;

    let err_text = |e: ListenError| e.to_string();
    let missing: PathBuf = tmp.path().join("nope.pem");
    let e = bind(files(&missing, &key)).await.unwrap_err();
    assert!(matches!(e, ListenError::File { .. }));
    assert!(err_text(e).contains(&missing.display().to_string()));
    let e = bind(files(&cert, &missing)).await.unwrap_err();
    assert!(err_text(e).contains(&missing.display().to_string()));

    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "hello, not PEM\n").unwrap();
    let e = bind(files(&garbage, &key)).await.unwrap_err();
    assert!(matches!(e, ListenError::NoCertificate { .. }), "{e}");
    assert!(err_text(e).contains(&garbage.display().to_string()));
    let e = bind(files(&cert, &garbage)).await.unwrap_err();
    assert!(matches!(e, ListenError::NoPrivateKey { .. }), "{e}");
    assert!(err_text(e).contains(&garbage.display().to_string()));

    let wrong_key = tmp.path().join("wrong.pem");
    std::fs::write(&wrong_key, new_pair().1).unwrap();
    let e = bind(files(&cert, &wrong_key)).await.unwrap_err();
    assert!(matches!(e, ListenError::Tls { .. }), "{e}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    let cert_path = listener.cert_path().unwrap().to_path_buf();
    let (router, mut slow_started) = app(Duration::from_millis(800));
    let server = start(listener, router, ServeOptions::default());
    let addr = server.addr;

    let http = client_for(&cert_path, false);
    let in_flight = tokio::spawn({
        let http = http.clone();
        async move {
            http.get(format!("https://{addr}/slow"))
                .send()
                .await?
                .text()
                .await
        }
    });
    slow_started.recv().await.unwrap();

    let Running { stop, mut task, .. } = server;
    stop.unwrap().send(()).unwrap();
    // serve waits for the in-flight request...
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut task)
            .await
            .is_err(),
        "serve returned while a request was in flight"
    );
    // ...new connections are refused...
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // ...the request completes...
    assert_eq!(in_flight.await.unwrap().unwrap(), "done");
    // ...and serve returns.
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns once drained")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_grace_period_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    let cert_path = listener.cert_path().unwrap().to_path_buf();
    let (router, mut slow_started) = app(Duration::from_secs(120));
    let server = start(
        listener,
        router,
        ServeOptions::default().shutdown_grace(Duration::from_millis(200)),
    );
    let addr = server.addr;
    let http = client_for(&cert_path, false);
    let in_flight =
        tokio::spawn(async move { http.get(format!("https://{addr}/slow")).send().await });
    slow_started.recv().await.unwrap();

    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(in_flight.await.unwrap().is_err(), "connection was cut");
}

#[tokio::test]
async fn idle_connections_are_timed_out() {
    // Header read timeout (plain HTTP, so the socket talks HTTP directly).
    let listener = bind(ListenConfig {
        addr: loopback0(),
        tls: TlsMode::PlainHttp,
    })
    .await
    .unwrap();
    let (router, _) = app(Duration::ZERO);
    let plain = start(
        listener,
        router,
        ServeOptions::default().header_read_timeout(Duration::from_millis(300)),
    );
    // TLS handshake timeout.
    let tmp = tempfile::tempdir().unwrap();
    let listener = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    let (router, _) = app(Duration::ZERO);
    let tls = start(
        listener,
        router,
        ServeOptions::default().handshake_timeout(Duration::from_millis(300)),
    );

    for (addr, partial) in [
        (plain.addr, &b"GET / HTTP/1.1\r\n"[..]),
        (tls.addr, &b""[..]),
    ] {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(partial).await.unwrap();
        let mut buf = [0u8; 256];
        let started = Instant::now();
        // The server closes the connection (maybe after a 408 response).
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
                .await
                .expect("server closes an idle connection")
                .unwrap_or(0);
            if n == 0 {
                break;
            }
        }
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
    plain.stop().await;
    tls.stop().await;
}

#[tokio::test]
async fn connection_limit_pauses_accepting() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = bind(self_signed(loopback0(), tmp.path())).await.unwrap();
    let cert_path = listener.cert_path().unwrap().to_path_buf();
    let (router, _) = app(Duration::ZERO);
    let server = start(listener, router, ServeOptions::default().max_connections(1));
    let url = format!("https://{}/", server.addr);

    // A silent connection takes the only slot (it sits in the TLS handshake).
    let hog = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(&cert_path).unwrap()).unwrap(),
        ])
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(impatient.get(&url).send().await.is_err());

    drop(hog);
    let resp = client_for(&cert_path, true).get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn serve_with_defaults_runs_until_shutdown() {
    let listener = bind(ListenConfig {
        addr: loopback0(),
        tls: TlsMode::PlainHttp,
    })
    .await
    .unwrap();
    let addr = listener.local_addr();
    let (router, _) = app(Duration::ZERO);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, async move {
        let _ = rx.await;
    }));
    let body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}
