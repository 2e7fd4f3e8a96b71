//! End-to-end tests of the forwarder with real sockets and files. All traffic stays on
//! 127.0.0.1, to listeners these tests start themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enclave_forward::syslog::{parse_frame, SyslogFormat, SyslogSink, SyslogTarget, TlsTarget};
use enclave_forward::{
    BoxFuture, CursorStore, FileCursorStore, FileSink, ForwardError, ForwardOptions, ForwardRecord,
    Forwarder, ForwarderHandle, RecordSource, Sink, StatusSnapshot,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

// ---------------------------------------------------------------- source

/// The audit trail in memory; can be told to fail.
#[derive(Default)]
struct MemSource {
    records: Mutex<Vec<ForwardRecord>>,
    fail: AtomicBool,
}

fn record(seq: i64) -> ForwardRecord {
    let outcome = if seq % 3 == 0 { "denied" } else { "success" };
    ForwardRecord {
        seq,
        at: 1_700_000_000 + seq,
        action: "project.create".to_owned(),
        outcome: outcome.to_owned(),
        json: format!(
            "{{\"seq\":{seq},\"action\":\"project.create\",\"outcome\":\"{outcome}\",\"detail\":{{\"name\":\"p]\\\"{seq}\"}}}}"
        ),
    }
}

impl MemSource {
    fn with(n: i64) -> Arc<Self> {
        let s = Arc::new(MemSource::default());
        s.push(n);
        s
    }

    fn push(&self, n: i64) {
        let mut records = self.records.lock().unwrap();
        let next = records.last().map_or(1, |r| r.seq + 1);
        for seq in next..next + n {
            records.push(record(seq));
        }
    }
}

impl RecordSource for MemSource {
    fn after(
        &self,
        seq: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ForwardRecord>, ForwardError>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err(ForwardError::Source("database is locked".to_owned()));
            }
            let records = self.records.lock().unwrap();
            Ok(records
                .iter()
                .filter(|r| r.seq > seq)
                .take(limit)
                .cloned()
                .collect())
        })
    }

    fn last_seq(&self) -> BoxFuture<'_, Result<Option<i64>, ForwardError>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err(ForwardError::Source("database is locked".to_owned()));
            }
            Ok(self.records.lock().unwrap().last().map(|r| r.seq))
        })
    }
}

// ---------------------------------------------------------------- collector

/// What a collector received, across restarts: (connection number, seq, raw message).
#[derive(Default)]
struct Log {
    frames: Mutex<Vec<(usize, i64, Vec<u8>)>>,
    connections: AtomicUsize,
    handshake_failures: AtomicUsize,
}

impl Log {
    fn seqs(&self) -> Vec<i64> {
        self.frames.lock().unwrap().iter().map(|f| f.1).collect()
    }

    fn per_connection(&self) -> Vec<Vec<i64>> {
        let frames = self.frames.lock().unwrap();
        let mut out: Vec<(usize, Vec<i64>)> = Vec::new();
        for (conn, seq, _) in frames.iter() {
            match out.last_mut() {
                Some((c, v)) if c == conn => v.push(*seq),
                _ => out.push((*conn, vec![*seq])),
            }
        }
        out.into_iter().map(|(_, v)| v).collect()
    }

    fn distinct(&self) -> Vec<i64> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for s in self.seqs() {
            if seen.insert(s) {
                out.push(s);
            }
        }
        out
    }
}

fn seq_of(message: &[u8]) -> i64 {
    let text = std::str::from_utf8(message).unwrap();
    let start = text.find("seq=\"").unwrap() + 5;
    let end = start + text[start..].find('"').unwrap();
    text[start..end].parse().unwrap()
}

/// Reads frames until end of stream; `true` when it stopped because `kill_after` frames were
/// read by this collector instance (the connection is then dropped with unread data).
async fn read_frames<S: AsyncRead + Unpin>(
    mut stream: S,
    conn: usize,
    log: &Log,
    count: &mut usize,
    kill_after: Option<usize>,
) -> bool {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some((used, msg)) = parse_frame(&buf).unwrap() {
            let seq = seq_of(msg);
            log.frames.lock().unwrap().push((conn, seq, msg.to_vec()));
            buf.drain(..used);
            *count += 1;
            if kill_after.is_some_and(|k| *count >= k) {
                return true;
            }
        }
    }
}

/// A syslog collector on `listener`, one connection at a time. With `kill_after`, it dies
/// (listener and connection dropped) after that many frames.
fn spawn_collector(
    listener: TcpListener,
    log: Arc<Log>,
    tls: Option<TlsAcceptor>,
    kill_after: Option<usize>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let conn = log.connections.fetch_add(1, Ordering::SeqCst);
            let killed = match &tls {
                None => read_frames(tcp, conn, &log, &mut count, kill_after).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(s) => read_frames(s, conn, &log, &mut count, kill_after).await,
                    Err(_) => {
                        log.handshake_failures.fetch_add(1, Ordering::SeqCst);
                        false
                    }
                },
            };
            if killed {
                return;
            }
        }
    })
}

async fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("rebinding {addr}: {e}"),
        }
    }
}

// ---------------------------------------------------------------- forwarder plumbing

fn fast_options() -> ForwardOptions {
    ForwardOptions {
        batch: 100,
        poll_interval: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        close_timeout: Duration::from_secs(5),
        settle: Duration::from_millis(300),
    }
}

fn syslog_sink(addr: SocketAddr, tls: Option<TlsTarget>) -> Box<dyn Sink> {
    Box::new(
        SyslogSink::new(SyslogTarget {
            address: addr.to_string(),
            tls,
            format: SyslogFormat::new(10, None, Some("enclave-test")),
        })
        .unwrap(),
    )
}

struct Running {
    handle: ForwarderHandle,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) -> StatusSnapshot {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("forwarder stops")
            .unwrap();
        self.handle.status()
    }
}

fn start(
    name: &str,
    source: Arc<MemSource>,
    sink: Box<dyn Sink>,
    cursors: Arc<dyn CursorStore>,
    options: ForwardOptions,
) -> Running {
    let forwarder = Forwarder::new(name, source, sink, cursors, options);
    let handle = forwarder.handle();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(forwarder.run(async move {
        let _ = rx.await;
    }));
    Running { handle, stop, task }
}

async fn eventually<F: Fn() -> bool>(what: &str, limit: Duration, cond: F) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn eventually_status<F: Fn(&StatusSnapshot) -> bool>(
    h: &ForwarderHandle,
    what: &str,
    cond: F,
) -> StatusSnapshot {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = h.status();
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; status: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cursor_store(dir: &Path) -> Arc<FileCursorStore> {
    Arc::new(FileCursorStore::new(dir.join("cursors")))
}

// ---------------------------------------------------------------- syslog over TCP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_forwards_1000_records_in_order_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let _collector = spawn_collector(listener, Arc::clone(&log), None, None);

    let source = MemSource::with(1000);
    let cursors = cursor_store(dir.path());
    let run = start(
        "siem",
        Arc::clone(&source),
        syslog_sink(addr, None),
        cursors.clone(),
        fast_options(),
    );
    eventually("1000 frames", Duration::from_secs(20), || {
        log.seqs().len() >= 1000
    })
    .await;
    // Confirmed (and persisted) once the connection stayed healthy for the settle period.
    let status = eventually_status(&run.handle, "confirmed 1000", |s| {
        s.confirmed_seq == Some(1000)
    })
    .await;
    assert!(status.connected);
    assert_eq!(status.forwarded_seq, Some(1000));
    assert_eq!(status.head_seq, Some(1000));
    assert_eq!(status.lag, Some(0));
    assert_eq!(status.last_error, None);
    assert_eq!(status.kind, "syslog");
    assert_eq!(cursors.load("siem").unwrap(), Some(1000));

    assert_eq!(log.seqs(), (1..=1000).collect::<Vec<_>>());
    assert_eq!(log.connections.load(Ordering::SeqCst), 1);
    // A message as a collector sees it.
    let (first, third) = {
        let frames = log.frames.lock().unwrap();
        (
            frames[0].2.clone(),
            String::from_utf8(frames[2].2.clone()).unwrap(),
        )
    };
    assert!(
        third.starts_with("<84>1 2023-11-14T22:13:23Z enclave-test enclave "),
        "{third}"
    );
    assert!(
        third.contains(" project.create [enclave@32473 seq=\"3\" outcome=\"denied\"] \u{feff}{"),
        "{third}"
    );
    assert!(first.starts_with(b"<85>1 "));

    let status = run.stop().await;
    assert!(!status.connected);
    assert_eq!(cursors.load("siem").unwrap(), Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_confirms_the_tail_when_the_collector_acknowledges_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let _collector = spawn_collector(listener, Arc::clone(&log), None, None);
    let cursors = cursor_store(dir.path());
    let options = ForwardOptions {
        settle: Duration::from_secs(3600),
        ..fast_options()
    };
    let run = start(
        "siem",
        MemSource::with(250),
        syslog_sink(addr, None),
        cursors.clone(),
        options,
    );
    eventually("250 frames", Duration::from_secs(20), || {
        log.seqs().len() >= 250
    })
    .await;
    // Nothing is confirmed before the (long) settle period...
    assert_eq!(run.handle.status().confirmed_seq, None);
    assert_eq!(cursors.load("siem").unwrap(), None);
    // ...but the collector closing in answer to our end of stream confirms everything.
    let status = run.stop().await;
    assert_eq!(status.confirmed_seq, Some(250));
    assert_eq!(cursors.load("siem").unwrap(), Some(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_survives_collector_down_then_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    // A port with nobody listening.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let source = MemSource::with(600);
    let cursors = cursor_store(dir.path());
    let options = ForwardOptions {
        batch: 50,
        ..fast_options()
    };
    let run = start(
        "siem",
        Arc::clone(&source),
        syslog_sink(addr, None),
        cursors.clone(),
        options,
    );

    // Down: retries with backoff, shows the error, confirms nothing.
    let status = eventually_status(&run.handle, "connection failures", |s| {
        s.consecutive_failures >= 3
    })
    .await;
    assert!(!status.connected);
    let err = status.last_error.unwrap();
    assert!(err.starts_with(&format!("connecting to {addr}: ")), "{err}");
    assert!(
        !err.contains("project.create"),
        "no record content in errors: {err}"
    );
    assert_eq!(status.confirmed_seq, None);
    assert_eq!(status.forwarded_seq, None);
    assert_eq!(status.lag, Some(600));
    assert_eq!(cursors.load("siem").unwrap(), None);

    // Up, but it dies after reading 250 frames, dropping whatever else was in flight.
    let log = Arc::new(Log::default());
    let first = spawn_collector(bind_again(addr).await, Arc::clone(&log), None, Some(250));
    tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.seqs(), (1..=250).collect::<Vec<_>>());
    let status = eventually_status(&run.handle, "the loss noticed", |s| !s.connected).await;
    // Whatever was confirmed had been received (normally nothing: the connection died well
    // within the settle period).
    assert!(status.confirmed_seq.unwrap_or(0) <= 250, "{status:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Back, for good; more records arrive meanwhile.
    let _second = spawn_collector(bind_again(addr).await, Arc::clone(&log), None, None);
    source.push(400);
    run.handle.notify();
    eventually("all 1000 distinct records", Duration::from_secs(30), || {
        log.distinct().len() >= 1000
    })
    .await;
    let status = eventually_status(&run.handle, "confirmed 1000", |s| {
        s.confirmed_seq == Some(1000)
    })
    .await;
    assert_eq!(status.last_error, None);
    assert_eq!(status.lag, Some(0));

    // Nothing lost, first arrivals in order.
    assert_eq!(log.distinct(), (1..=1000).collect::<Vec<_>>());
    // Each connection delivers an ordered run without gaps, starting no later than where the
    // previous one got to: duplicates are only the replayed, unconfirmed tail.
    let runs = log.per_connection();
    assert!(runs.len() >= 2, "{}", runs.len());
    let mut max_seen = 0;
    for r in &runs {
        assert!(r[0] <= max_seen + 1, "gap before {}", r[0]);
        assert!(r.windows(2).all(|w| w[1] == w[0] + 1), "not contiguous");
        max_seen = max_seen.max(*r.last().unwrap());
    }
    assert_eq!(max_seen, 1000);
    assert_eq!(cursors.load("siem").unwrap(), Some(1000));
    run.stop().await;
}

// ---------------------------------------------------------------- TLS

struct Pki {
    ca_pem: String,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

fn new_ca(cn: &str) -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = params.self_signed(&ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        ca_cert,
        ca_key,
    }
}

impl Pki {
    /// A leaf certificate and key (PEM) for `names`, signed by this CA.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_acceptor(server: &Pki, client_ca: Option<&Pki>) -> TlsAcceptor {
    let (cert_pem, key_pem) = server.issue(&["localhost", "127.0.0.1"]);
    let certs = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(ca.ca_pem.as_bytes()).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).unwrap();
    TlsAcceptor::from(Arc::new(config))
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_works_and_the_wrong_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("Test collector CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.ca_pem);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let _collector = spawn_collector(
        listener,
        Arc::clone(&log),
        Some(server_acceptor(&ca, None)),
        None,
    );

    let tls = TlsTarget {
        ca_file: ca_file.clone(),
        server_name: "localhost".to_owned(),
        client_cert: None,
        client_key: None,
    };
    let cursors = cursor_store(dir.path());
    let run = start(
        "tls-ok",
        MemSource::with(120),
        syslog_sink(addr, Some(tls.clone())),
        cursors.clone(),
        fast_options(),
    );
    eventually("120 frames over TLS", Duration::from_secs(20), || {
        log.seqs().len() >= 120
    })
    .await;
    assert_eq!(log.seqs(), (1..=120).collect::<Vec<_>>());
    eventually_status(&run.handle, "confirmed", |s| s.confirmed_seq == Some(120)).await;
    run.stop().await;
    assert_eq!(cursors.load("tls-ok").unwrap(), Some(120));

    // A collector whose certificate comes from a CA we do not trust.
    let other = new_ca("Some other CA");
    let other_file = write(dir.path(), "other.pem", &other.ca_pem);
    let before = log.seqs().len();
    let run = start(
        "tls-wrong",
        MemSource::with(10),
        syslog_sink(
            addr,
            Some(TlsTarget {
                ca_file: other_file,
                ..tls.clone()
            }),
        ),
        cursors.clone(),
        fast_options(),
    );
    let status =
        eventually_status(&run.handle, "TLS failures", |s| s.consecutive_failures >= 2).await;
    let err = status.last_error.clone().unwrap();
    assert!(err.starts_with("TLS handshake with localhost: "), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(!status.connected);
    assert_eq!(status.forwarded_seq, None);
    assert_eq!(status.confirmed_seq, None);
    let status = run.stop().await;
    assert_eq!(status.confirmed_seq, None);
    assert_eq!(cursors.load("tls-wrong").unwrap(), None);
    assert_eq!(log.seqs().len(), before);
    assert!(log.handshake_failures.load(Ordering::SeqCst) >= 1);

    // The right CA but the wrong name.
    let run = start(
        "tls-name",
        MemSource::with(10),
        syslog_sink(
            addr,
            Some(TlsTarget {
                server_name: "collector.example".to_owned(),
                ..tls
            }),
        ),
        cursors.clone(),
        fast_options(),
    );
    let status = eventually_status(&run.handle, "name mismatch", |s| {
        s.consecutive_failures >= 1
    })
    .await;
    let err = status.last_error.clone().unwrap();
    assert!(err.contains("invalid peer certificate"), "{err}");
    run.stop().await;
    assert_eq!(cursors.load("tls-name").unwrap(), None);
    assert_eq!(log.seqs().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("Test collector CA");
    let client_ca = new_ca("Test client CA");
    let (cert_pem, key_pem) = client_ca.issue(&["enclave.example"]);
    let tls = TlsTarget {
        ca_file: write(dir.path(), "ca.pem", &ca.ca_pem),
        server_name: "127.0.0.1".to_owned(),
        client_cert: Some(write(dir.path(), "client.pem", &cert_pem)),
        client_key: Some(write(dir.path(), "client.key", &key_pem)),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let _collector = spawn_collector(
        listener,
        Arc::clone(&log),
        Some(server_acceptor(&ca, Some(&client_ca))),
        None,
    );
    let cursors = cursor_store(dir.path());
    let run = start(
        "mtls",
        MemSource::with(30),
        syslog_sink(addr, Some(tls.clone())),
        cursors.clone(),
        fast_options(),
    );
    eventually("30 frames over mutual TLS", Duration::from_secs(20), || {
        log.seqs().len() >= 30
    })
    .await;
    let status = run.stop().await;
    assert_eq!(status.confirmed_seq, Some(30));
    assert_eq!(log.seqs(), (1..=30).collect::<Vec<_>>());

    // Without a client certificate the collector refuses; nothing is confirmed.
    let run = start(
        "mtls-none",
        MemSource::with(30),
        syslog_sink(
            addr,
            Some(TlsTarget {
                client_cert: None,
                client_key: None,
                ..tls
            }),
        ),
        cursors.clone(),
        fast_options(),
    );
    let status = eventually_status(&run.handle, "refused", |s| s.consecutive_failures >= 2).await;
    assert!(status.last_error.is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = run.stop().await;
    assert_eq!(status.confirmed_seq, None);
    assert_eq!(cursors.load("mtls-none").unwrap(), None);
    assert_eq!(log.seqs().len(), 30);
}

// ---------------------------------------------------------------- file sink

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn line_seq(line: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["seq"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_appends_survives_restart_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let source = MemSource::with(250);
    let cursors = cursor_store(dir.path());

    let run = start(
        "archive",
        Arc::clone(&source),
        Box::new(FileSink::new(&path)),
        cursors.clone(),
        fast_options(),
    );
    let status = eventually_status(&run.handle, "250 confirmed", |s| {
        s.confirmed_seq == Some(250)
    })
    .await;
    assert_eq!(status.kind, "file");
    assert_eq!(status.forwarded_seq, Some(250));
    assert_eq!(cursors.load("archive").unwrap(), Some(250));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        lines(&path).iter().map(|l| line_seq(l)).collect::<Vec<_>>(),
        (1..=250).collect::<Vec<_>>()
    );

    // notify() wakes it at once (the poll interval here is an hour).
    run.stop().await;
    let slow = ForwardOptions {
        poll_interval: Duration::from_secs(3600),
        ..fast_options()
    };
    // A crash had left half a line behind.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"seq\":251,\"act").unwrap();
    }
    let run = start(
        "archive",
        Arc::clone(&source),
        Box::new(FileSink::new(&path)),
        cursors.clone(),
        slow,
    );
    eventually_status(&run.handle, "file open", |s| s.connected).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    source.push(50);
    run.handle.notify();
    let status = eventually_status(&run.handle, "300 confirmed", |s| {
        s.confirmed_seq == Some(300)
    })
    .await;
    assert_eq!(status.last_error, None);
    let all = lines(&path);
    assert_eq!(all.len(), 301);
    assert_eq!(all[250], "{\"seq\":251,\"act");
    let seqs: Vec<i64> = all
        .iter()
        .filter(|l| l.ends_with('}'))
        .map(|l| line_seq(l))
        .collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());

    // Rotation: the file is renamed away; the next batch creates a new one, mode 0600.
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    source.push(5);
    run.handle.notify();
    eventually_status(&run.handle, "305 confirmed", |s| {
        s.confirmed_seq == Some(305)
    })
    .await;
    assert_eq!(
        lines(&path).iter().map(|l| line_seq(l)).collect::<Vec<_>>(),
        (301..=305).collect::<Vec<_>>()
    );
    assert_eq!(lines(&rotated).len(), 301);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    run.stop().await;
    assert_eq!(cursors.load("archive").unwrap(), Some(305));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_source_shows_in_status_and_does_not_advance_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let source = MemSource::with(20);
    source.fail.store(true, Ordering::SeqCst);
    let cursors = cursor_store(dir.path());
    let run = start(
        "archive",
        Arc::clone(&source),
        Box::new(FileSink::new(&path)),
        cursors.clone(),
        fast_options(),
    );
    let status = eventually_status(&run.handle, "source failures", |s| {
        s.consecutive_failures >= 3
    })
    .await;
    assert_eq!(
        status.last_error.as_deref(),
        Some("reading audit records: database is locked")
    );
    assert!(status.last_error_at.is_some());
    assert_eq!(status.confirmed_seq, None);
    assert_eq!(status.forwarded_seq, None);
    assert_eq!(cursors.load("archive").unwrap(), None);
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "");

    // It recovers on its own once the source does.
    source.fail.store(false, Ordering::SeqCst);
    let status = eventually_status(&run.handle, "recovered", |s| s.confirmed_seq == Some(20)).await;
    assert_eq!(status.last_error, None);
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(lines(&path).len(), 20);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_cursor_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // The cursor directory is a file: saving fails.
    let blocker = dir.path().join("cursors");
    std::fs::write(&blocker, "").unwrap();
    let cursors: Arc<dyn CursorStore> = Arc::new(FileCursorStore::new(&blocker));
    let run = start(
        "archive",
        MemSource::with(5),
        Box::new(FileSink::new(dir.path().join("a.jsonl"))),
        cursors,
        fast_options(),
    );
    let status = eventually_status(&run.handle, "cursor failure", |s| s.last_error.is_some()).await;
    let err = status.last_error.unwrap();
    assert!(err.starts_with("cursor for archive: "), "{err}");
    assert_eq!(status.confirmed_seq, None);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trail_behind_the_cursor_is_reported_and_forwarding_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let cursors = cursor_store(dir.path());
    // The cursor says 100, but the store was restored from a backup that ends at 30.
    cursors.save("archive", 100).unwrap();
    let source = MemSource::with(30);
    let run = start(
        "archive",
        Arc::clone(&source),
        Box::new(FileSink::new(&path)),
        cursors.clone(),
        fast_options(),
    );
    eventually_status(&run.handle, "rewound", |s| s.confirmed_seq == Some(30)).await;
    assert_eq!(cursors.load("archive").unwrap(), Some(30));
    source.push(5);
    run.handle.notify();
    eventually_status(&run.handle, "new records", |s| s.confirmed_seq == Some(35)).await;
    let seqs: Vec<i64> = lines(&path).iter().map(|l| line_seq(l)).collect();
    assert_eq!(seqs, (31..=35).collect::<Vec<_>>());
    run.stop().await;
}
