//! The notebook gateway as a stand-alone reverse proxy, for `scripts/bench-gateway.sh`
//! (throughput against nginx and configurable-http-proxy in front of the same upstream, and
//! memory across websocket churn). Loopback only: every address must be `127.0.0.1:PORT`.
//!
//! ```text
//! gateway_bench serve   --listen 127.0.0.1:P --upstream 127.0.0.1:U --ws-upstream 127.0.0.1:W [--max-idle N]
//! gateway_bench ws-echo --listen 127.0.0.1:W
//! gateway_bench ws-churn --gateway 127.0.0.1:P --pid GATEWAY_PID [--n 10000] [--concurrency 50]
//! ```
//!
//! * `serve`: an axum server that hands every request to [`Gateway::forward`], as Enclave's
//!   HTTP layer does after authentication, **without** the authentication and authorization
//!   step (no session lookup, no policy decision). Websocket upgrades go to the
//!   `--ws-upstream`, everything else to `--upstream`. The gateway has Enclave's settings
//!   (`enclave_` cookies stripped, the defaults otherwise; `--max-idle N` changes the idle
//!   connections kept per upstream, 32 by default, for diagnosis) and a tap that counts reported
//!   code and forwards it. `GET /_bench/stats` answers with the gateway's own counters as
//!   JSON (not forwarded). Runs until killed.
//! * `ws-echo`: a websocket server that echoes text and binary messages (the stand-in for a
//!   Jupyter kernel channel). Runs until killed.
//! * `ws-churn`: opens `--n` websockets through the gateway at `…/api/kernels/k-1/channels`,
//!   `--concurrency` at a time; on each it sends one `execute_request` (so the gateway
//!   inspects it and reports it to the tap), reads the echo and closes. Prints the gateway
//!   process's VmRSS (from `/proc/PID/status`) before, after half and at the end, and the
//!   gateway's `open_websockets()` once the last socket is closed (it must be 0). Exits 1 when
//!   a socket failed or `open_websockets()` does not return to 0 within 10 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Response, StatusCode};
use axum::serve::ListenerExt as _;
use axum::Router;
use base64::Engine as _;
use enclave_gateway::{
    ConnectFn, Executed, Gateway, GatewayConfig, Labels, Tap, Upstream, Verdict,
};
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(10);
const KERNEL_PATH: &str = "/p/demo/nb/n1/api/kernels/k-1/channels";

// ------------------------------------------------------------------ arguments

struct Args(Vec<String>);

impl Args {
    fn opt(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }

    fn addr(&self, name: &str) -> SocketAddr {
        let v = self
            .opt(name)
            .unwrap_or_else(|| panic!("{name} 127.0.0.1:PORT is required"));
        let addr: SocketAddr = v
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not an address: {v}"));
        // The benchmark must never send traffic anywhere but loopback.
        assert!(
            addr.ip().is_loopback(),
            "{name}: only loopback addresses are allowed (got {addr})"
        );
        addr
    }

    fn num(&self, name: &str, default: usize) -> usize {
        self.opt(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
        })
    }
}

fn nodelay(listener: TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

fn accept_key(key: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

// ------------------------------------------------------------------ serve

/// Counts what the gateway reports and lets it through (Enclave's tap hands the event to the
/// audit queue; that cost is not part of this benchmark).
#[derive(Default)]
struct CountingTap {
    events: AtomicU64,
}

impl Tap for CountingTap {
    fn executed(&self, _: &Labels, _: Executed) -> Verdict {
        self.events.fetch_add(1, Ordering::Relaxed);
        Verdict::Forward
    }
}

#[derive(Clone)]
struct Front {
    gateway: Gateway,
    http: Upstream,
    ws: Upstream,
    tap: Arc<CountingTap>,
    requests: Arc<AtomicU64>,
}

fn connect_to(addr: SocketAddr) -> ConnectFn {
    Arc::new(move || {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(s)
        })
    })
}

async fn front(State(f): State<Front>, req: Request) -> Response<Body> {
    if req.uri().path() == "/_bench/stats" {
        let body = format!(
            "{{\"open_websockets\":{},\"registry_capacity\":{},\"idle_connections\":{},\"tap_events\":{},\"requests\":{}}}\n",
            f.gateway.open_websockets(),
            f.gateway.registry_capacity(),
            f.gateway.idle_connections(f.http.key()),
            f.tap.events.load(Ordering::Relaxed),
            f.requests.load(Ordering::Relaxed),
        );
        let mut resp = Response::new(Body::from(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    f.requests.fetch_add(1, Ordering::Relaxed);
    // What Enclave's front builds for every request after authorizing it.
    let labels = Labels {
        session: "bench-session".into(),
        user: "bench".into(),
        project: "demo".into(),
        notebook: "n1".into(),
    };
    let upstream = if is_upgrade(&req) { &f.ws } else { &f.http };
    f.gateway
        .forward(req, upstream, labels, f.tap.clone())
        .await
}

async fn serve(args: &Args) {
    let listen = args.addr("--listen");
    let http = args.addr("--upstream");
    let ws = args
        .opt("--ws-upstream")
        .map_or(http, |_| args.addr("--ws-upstream"));
    // Enclave's settings (crates/enclave-http/src/gateway.rs: new_gateway).
    let defaults = GatewayConfig::default();
    let gateway = Gateway::new(GatewayConfig {
        strip_cookie_prefixes: vec!["enclave_".into()],
        // `--max-idle N` overrides the pool size, for diagnosis only.
        max_idle_per_upstream: args.num("--max-idle", defaults.max_idle_per_upstream),
        ..defaults
    });
    let token = "0123456789abcdef0123456789abcdef0123456789abcdef";
    let state = Front {
        gateway,
        http: Upstream::new("demo/n1/1", connect_to(http), token).unwrap(),
        ws: Upstream::new("demo/n1/ws", connect_to(ws), token).unwrap(),
        tap: Arc::default(),
        requests: Arc::default(),
    };
    let app = Router::new().fallback(front).with_state(state);
    let listener = TcpListener::bind(listen).await.unwrap();
    println!(
        "gateway on http://{} -> http {http}, websockets {ws} (pid {})",
        listener.local_addr().unwrap(),
        std::process::id()
    );
    axum::serve(nodelay(listener), app).await.unwrap();
}

// ------------------------------------------------------------------ ws-echo

async fn echo(mut req: Request) -> Response<Body> {
    if !is_upgrade(&req) {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())
            .unwrap();
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::empty())
            .unwrap();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(io) = on_upgrade.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Text(_) | Message::Binary(_)) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key(key.as_bytes()))
        .body(Body::empty())
        .unwrap()
}

async fn ws_echo(args: &Args) {
    let listen = args.addr("--listen");
    let listener = TcpListener::bind(listen).await.unwrap();
    println!("websocket echo on {}", listener.local_addr().unwrap());
    axum::serve(nodelay(listener), Router::new().fallback(echo))
        .await
        .unwrap();
}

// ------------------------------------------------------------------ ws-churn

/// VmRSS and VmHWM of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn get_text(addr: SocketAddr, path: &str) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(header::HOST, "127.0.0.1")
        .body(Body::empty())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A number from the flat JSON object `/_bench/stats` answers.
fn stat(json: &str, name: &str) -> u64 {
    json.split(&format!("\"{name}\":"))
        .nth(1)
        .and_then(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(u64::MAX)
}

/// One websocket through the gateway: handshake, an `execute_request`, its echo, close.
async fn one_socket(addr: SocketAddr, i: usize) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn.with_upgrades());
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    let req = hyper::Request::get(KERNEL_PATH)
        .header(header::HOST, "notebooks.example")
        .header(header::ORIGIN, "https://notebooks.example")
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, &key)
        .header(header::COOKIE, "enclave_session=abc; _xsrf=x")
        .body(Body::empty())
        .unwrap();
    let resp = tx
        .send_request(req)
        .await
        .map_err(|e| format!("upgrade request: {e}"))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(format!("upgrade answered {}", resp.status()));
    }
    let io = hyper::upgrade::on(resp)
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Client, None).await;
    let cell = format!(
        "{{\"header\":{{\"msg_id\":\"m{i}\",\"msg_type\":\"execute_request\",\"username\":\"bench\",\"session\":\"s\",\"date\":\"\",\"version\":\"5.3\"}},\"parent_header\":{{}},\"metadata\":{{}},\"content\":{{\"code\":\"x = {i}\",\"silent\":false}},\"channel\":\"shell\"}}"
    );
    ws.send(Message::Text(cell.clone().into()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == cell => {}
        other => return Err(format!("no echo: {other:?}")),
    }
    ws.close(None).await.map_err(|e| format!("close: {e}"))?;
    // Read until the close handshake completes (the peer's close frame, then the end).
    while let Some(m) = ws.next().await {
        if m.is_err() {
            break;
        }
    }
    Ok(())
}

async fn churn(addr: SocketAddr, from: usize, to: usize, concurrency: usize, errors: &AtomicUsize) {
    let next = Arc::new(AtomicUsize::new(from));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return failed;
                }
                match tokio::time::timeout(WAIT, one_socket(addr, i)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failed.push(e),
                    Err(_) => failed.push("timed out".to_owned()),
                }
            }
        }));
    }
    for w in workers {
        for e in w.await.unwrap() {
            if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("websocket failed: {e}");
            }
        }
    }
}

/// Waits (at most 10 s) until the gateway has no open websocket; returns its stats.
async fn settled(addr: SocketAddr) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = get_text(addr, "/_bench/stats").await;
        if stat(&stats, "open_websockets") == 0 || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ws_churn(args: &Args) -> bool {
    let addr = args.addr("--gateway");
    let pid: u32 = args
        .opt("--pid")
        .expect("--pid GATEWAY_PID is required")
        .parse()
        .expect("--pid: not a number");
    let n = args.num("--n", 10_000);
    let concurrency = args.num("--concurrency", 50).max(1);
    let half = n / 2;
    let errors = AtomicUsize::new(0);
    let show = |label: &str, stats: &str| {
        let (rss, hwm) = rss_kib(pid);
        println!(
            "{label:<22} rss_kib {rss:>7}  hwm_kib {hwm:>7}  open_websockets {:>5}  registry_capacity {:>5}  tap_events {:>6}",
            stat(stats, "open_websockets"),
            stat(stats, "registry_capacity"),
            stat(stats, "tap_events"),
        );
        rss
    };
    println!("ws-churn: {n} websockets through {addr}{KERNEL_PATH}, {concurrency} at a time");
    let before = show("before", &settled(addr).await);
    let start = Instant::now();
    churn(addr, 0, half, concurrency, &errors).await;
    let mid = show(&format!("after {half}"), &settled(addr).await);
    churn(addr, half, n, concurrency, &errors).await;
    let secs = start.elapsed().as_secs_f64();
    let stats = settled(addr).await;
    let end = show(&format!("after {n}"), &stats);
    let open = stat(&stats, "open_websockets");
    let failed = errors.load(Ordering::Relaxed);
    println!(
        "RESULT ws_sockets={n} ws_errors={failed} ws_per_s={:.0} rss_before_kib={before} rss_half_kib={mid} rss_end_kib={end} growth_second_half_kib={} open_websockets={open}",
        n as f64 / secs,
        end as i64 - mid as i64,
    );
    failed == 0 && open == 0
}

fn main() {
    let args = Args(std::env::args().skip(1).collect());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ok = match args.0.first().map(String::as_str) {
        Some("serve") => rt.block_on(async {
            serve(&args).await;
            true
        }),
        Some("ws-echo") => rt.block_on(async {
            ws_echo(&args).await;
            true
        }),
        Some("ws-churn") => rt.block_on(ws_churn(&args)),
        _ => {
            eprintln!("usage: gateway_bench serve|ws-echo|ws-churn … (see the source)");
            false
        }
    };
    std::process::exit(i32::from(!ok));
}
