//! The gateway against a real upstream on loopback: an axum HTTP server with a websocket
//! endpoint (hyper upgrade + tungstenite), reached only through a counting connect function,
//! with the gateway itself behind a small axum router.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Response, StatusCode};
use axum::routing::{any, get, post};
use axum::serve::ListenerExt as _;
use axum::Router;
use base64::Engine as _;
use enclave_gateway::{
    ConnectFn, Executed, Gateway, GatewayConfig, Labels, Tap, Upstream, Verdict,
};
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const TOKEN: &str = "jupyter-s3cr3t-t0ken";
const KEY: &str = "demo/n1/1";
const V1: &str = "v1.kernel.websocket.jupyter.org";
const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

// ---------------------------------------------------------------- the upstream

#[derive(Default)]
struct UpState {
    /// Messages the upstream's websockets received, in order.
    ws_received: Mutex<Vec<Message>>,
    /// Handshake headers of the last websocket.
    ws_headers: Mutex<Option<HeaderMap>>,
    ws_active: AtomicUsize,
    ws_closes: AtomicUsize,
    slow_gate: Notify,
    upload_first: Notify,
}

fn accept_key(key: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

async fn echo(req: Request) -> String {
    let mut out = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
    for (k, v) in req.headers() {
        out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
    }
    out
}

async fn set_cookie() -> Response<Body> {
    Response::builder()
        .header(header::SET_COOKIE, "_xsrf=2|abc; Path=/p/demo/nb/n1/")
        .header(
            header::SET_COOKIE,
            "__Host-enclave_session=planted; Path=/; Secure",
        )
        .header(header::SET_COOKIE, "enclave_csrf=x")
        .body(Body::from("ok"))
        .unwrap()
}

async fn slow(State(st): State<Arc<UpState>>) -> Body {
    let chunks = futures_util::stream::unfold(0u8, move |step| {
        let st = Arc::clone(&st);
        async move {
            match step {
                0 => Some((Ok::<_, Infallible>(Bytes::from_static(b"first;")), 1)),
                1 => {
                    st.slow_gate.notified().await;
                    Some((Ok(Bytes::from_static(b"second;")), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(chunks)
}

async fn upload(State(st): State<Arc<UpState>>, req: Request) -> String {
    let mut body = req.into_body();
    let mut total = 0usize;
    let mut first = true;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len();
            if first && !data.is_empty() {
                first = false;
                st.upload_first.notify_one();
            }
        }
    }
    format!("got {total}")
}

async fn huge_head() -> Response<Body> {
    Response::builder()
        .header("x-big", "a".repeat(100 * 1024))
        .body(Body::empty())
        .unwrap()
}

/// Websocket endpoint (any other path): echoes text and binary, records everything.
async fn upstream_ws(State(st): State<Arc<UpState>>, mut req: Request) -> Response<Body> {
    if !req.headers().contains_key(header::UPGRADE) {
        return Response::builder().status(404).body(Body::empty()).unwrap();
    }
    if req.uri().path().contains("forbidden") {
        return Response::builder()
            .status(403)
            .body(Body::from("no such kernel"))
            .unwrap();
    }
    *st.ws_headers.lock().unwrap() = Some(req.headers().clone());
    let key = req.headers()[header::SEC_WEBSOCKET_KEY].as_bytes().to_vec();
    let offers = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let st2 = Arc::clone(&st);
    tokio::spawn(async move {
        let io = on_upgrade.await.unwrap();
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        st2.ws_active.fetch_add(1, Ordering::SeqCst);
        while let Some(Ok(msg)) = ws.next().await {
            st2.ws_received.lock().unwrap().push(msg.clone());
            if matches!(msg, Message::Close(_)) {
                st2.ws_closes.fetch_add(1, Ordering::SeqCst);
            }
            let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
            if echo && ws.send(msg).await.is_err() {
                break;
            }
        }
        st2.ws_active.fetch_sub(1, Ordering::SeqCst);
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept_key(&key));
    if offers.split(',').any(|p| p.trim() == V1) {
        resp = resp.header(header::SEC_WEBSOCKET_PROTOCOL, V1);
    }
    resp.body(Body::empty()).unwrap()
}

fn nodelay(listener: TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

async fn start_upstream() -> (SocketAddr, Arc<UpState>) {
    let st = Arc::new(UpState::default());
    let app = Router::new()
        .route("/p/demo/nb/n1/echo", any(echo))
        .route("/p/demo/nb/n1/setcookie", get(set_cookie))
        .route("/p/demo/nb/n1/slow", get(slow))
        .route("/p/demo/nb/n1/upload", post(upload))
        .route("/p/demo/nb/n1/hugehead", get(huge_head))
        .fallback(upstream_ws)
        .with_state(Arc::clone(&st));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(nodelay(listener), app).await.unwrap() });
    (addr, st)
}

// ---------------------------------------------------------------- the front

#[derive(Default)]
struct RecordingTap {
    events: Mutex<Vec<(Labels, Executed)>>,
}

impl Tap for RecordingTap {
    fn executed(&self, labels: &Labels, event: Executed) -> Verdict {
        let refuse = match &event {
            Executed::Cell { code, .. } => code.contains("forbidden_call"),
            Executed::Terminal { line, .. } => line.contains("forbidden_call"),
        };
        self.events.lock().unwrap().push((labels.clone(), event));
        if refuse {
            Verdict::Refuse
        } else {
            Verdict::Forward
        }
    }
}

impl RecordingTap {
    fn events(&self) -> Vec<Executed> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Executed> {
        let deadline = Instant::now() + WAIT;
        loop {
            let events = self.events();
            if events.len() >= n || Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[derive(Clone)]
struct FrontState {
    gateway: Gateway,
    upstream: Upstream,
    tap: Arc<RecordingTap>,
}

async fn front_handler(State(s): State<FrontState>, req: Request) -> Response<Body> {
    let user = req
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("alice")
        .to_owned();
    let labels = Labels {
        session: format!("session-of-{user}"),
        user,
        project: "demo".into(),
        notebook: "n1".into(),
    };
    s.gateway
        .forward(req, &s.upstream, labels, s.tap.clone())
        .await
}

struct Front {
    addr: SocketAddr,
    gateway: Gateway,
    tap: Arc<RecordingTap>,
    connects: Arc<AtomicUsize>,
}

fn connect_to(addr: SocketAddr, count: Arc<AtomicUsize>) -> ConnectFn {
    Arc::new(move || {
        count.fetch_add(1, Ordering::SeqCst);
        Box::pin(TcpStream::connect(addr))
    })
}

async fn start_front_with(
    config: GatewayConfig,
    connect: ConnectFn,
    connects: Arc<AtomicUsize>,
) -> Front {
    let gateway = Gateway::new(config);
    let tap = Arc::new(RecordingTap::default());
    let state = FrontState {
        gateway: gateway.clone(),
        upstream: Upstream::new(KEY, connect, TOKEN).unwrap(),
        tap: Arc::clone(&tap),
    };
    let app = Router::new()
        .route("/p/{project}/nb/{name}/{*rest}", any(front_handler))
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(nodelay(listener), app).await.unwrap() });
    Front {
        addr,
        gateway,
        tap,
        connects,
    }
}

async fn start(config: GatewayConfig) -> (Front, Arc<UpState>) {
    let (up_addr, st) = start_upstream().await;
    let connects = Arc::new(AtomicUsize::new(0));
    let front = start_front_with(
        config,
        connect_to(up_addr, Arc::clone(&connects)),
        Arc::clone(&connects),
    )
    .await;
    (front, st)
}

// ---------------------------------------------------------------- clients

async fn client(addr: SocketAddr) -> SendRequest<Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    tx
}

async fn send(addr: SocketAddr, req: hyper::Request<Body>) -> Response<Incoming> {
    let mut tx = client(addr).await;
    tokio::time::timeout(WAIT, tx.send_request(req))
        .await
        .unwrap()
        .unwrap()
}

async fn text(resp: Response<Incoming>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn get_req(path: &str) -> hyper::Request<Body> {
    hyper::Request::get(path)
        .header(header::HOST, "notebooks.example")
        .body(Body::empty())
        .unwrap()
}

struct WsConn {
    ws: Ws,
    protocol: Option<String>,
}

/// Opens a websocket through the front; `Err` carries a non-101 answer.
async fn ws_open(
    addr: SocketAddr,
    path: &str,
    protocols: &[&str],
    user: &str,
) -> Result<WsConn, Response<Incoming>> {
    let mut tx = client(addr).await;
    let key = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
    let mut req = hyper::Request::get(path)
        .header(header::HOST, "notebooks.example")
        .header(header::ORIGIN, "https://notebooks.example")
        .header(header::CONNECTION, "keep-alive, Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, &key)
        .header(
            header::SEC_WEBSOCKET_EXTENSIONS,
            "permessage-deflate; client_max_window_bits",
        )
        .header(header::COOKIE, "enclave_session=abc; _xsrf=x")
        .header("x-user", user);
    if !protocols.is_empty() {
        req = req.header(header::SEC_WEBSOCKET_PROTOCOL, protocols.join(", "));
    }
    let resp = tokio::time::timeout(WAIT, tx.send_request(req.body(Body::empty()).unwrap()))
        .await
        .unwrap()
        .unwrap();
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(resp);
    }
    assert_eq!(
        resp.headers()[header::SEC_WEBSOCKET_ACCEPT],
        accept_key(key.as_bytes()).as_str()
    );
    assert!(!resp
        .headers()
        .contains_key(header::SEC_WEBSOCKET_EXTENSIONS));
    let protocol = resp
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .map(|v| v.to_str().unwrap().to_owned());
    let io = hyper::upgrade::on(resp).await.unwrap();
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Client, None).await;
    Ok(WsConn { ws, protocol })
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

async fn next_msg(ws: &mut Ws) -> Message {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// The close frame the client gets next (skipping data); the client's reply is sent and the
/// closing handshake completed, as a browser does.
async fn close_code(ws: &mut Ws) -> CloseCode {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => {
                // Reading on sends the queued reply and sees the end of the connection.
                let rest = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
                assert!(matches!(rest, None | Some(Err(_))), "{rest:?}");
                return frame.code;
            }
            Some(Ok(Message::Close(None))) => panic!("close without a code"),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// jupyter_server's `serialize_msg_to_ws_v1`.
fn v1_frame(channel: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut offsets = vec![8 * (1 + 1 + parts.len() as u64 + 1)];
    offsets.push(offsets[0] + channel.len() as u64);
    for p in parts {
        offsets.push(offsets.last().unwrap() + p.len() as u64);
    }
    let mut out = (offsets.len() as u64).to_le_bytes().to_vec();
    for o in &offsets {
        out.extend(o.to_le_bytes());
    }
    out.extend(channel.as_bytes());
    for p in parts {
        out.extend(*p);
    }
    out
}

fn execute_json(code: &str, msg_id: &str) -> String {
    format!(
        r#"{{"header": {{"msg_id": "{msg_id}", "msg_type": "execute_request", "session": "s", "username": "", "version": "5.3"}}, "parent_header": {{}}, "metadata": {{}}, "content": {{"code": "{code}", "silent": false}}, "channel": "shell", "buffers": []}}"#
    )
}

fn cell(kernel: &str, msg_id: &str, code: &str) -> Executed {
    Executed::Cell {
        kernel: kernel.into(),
        channel: "shell".into(),
        msg_type: "execute_request".into(),
        msg_id: msg_id.into(),
        code: code.into(),
    }
}

// ---------------------------------------------------------------- HTTP

#[tokio::test]
async fn headers_are_stripped_and_the_token_added() {
    let (front, _) = start(GatewayConfig::default()).await;
    let req = hyper::Request::get("/p/demo/nb/n1/echo?x=1&y=%2F")
        .header(header::HOST, "notebooks.example")
        .header(header::ORIGIN, "https://notebooks.example")
        .header(header::AUTHORIZATION, "Bearer enclave-api-token")
        .header(header::PROXY_AUTHORIZATION, "Basic eA==")
        .header(
            header::COOKIE,
            "enclave_session=abc; _xsrf=keep; __Host-enclave_csrf=c; theme=dark",
        )
        .header(header::CONNECTION, "keep-alive, X-Hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header(header::TE, "trailers")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-custom", "passes")
        .body(Body::empty())
        .unwrap();
    let resp = send(front.addr, req).await;
    assert_eq!(resp.status(), 200);
    let seen = text(resp).await.to_lowercase();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "get /p/demo/nb/n1/echo?x=1&y=%2f http/1.1");
    for expected in [
        format!("authorization: token {}", TOKEN.to_lowercase()),
        "cookie: _xsrf=keep; theme=dark".into(),
        "host: notebooks.example".into(),
        "origin: https://notebooks.example".into(),
        "x-custom: passes".into(),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "missing {expected:?} in {seen}"
        );
    }
    for absent in [
        "bearer",
        "enclave",
        "proxy-",
        "x-hop",
        "keep-alive",
        "te:",
        "x-forwarded",
    ] {
        assert!(
            !seen.contains(absent),
            "{absent:?} reached the upstream: {seen}"
        );
    }
    assert_eq!(seen.matches("authorization").count(), 1);

    // Set-Cookie: Jupyter's pass, Enclave's names are dropped.
    let resp = send(front.addr, get_req("/p/demo/nb/n1/setcookie")).await;
    let cookies: Vec<_> = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    assert_eq!(
        cookies,
        [HeaderValue::from_static("_xsrf=2|abc; Path=/p/demo/nb/n1/")]
    );
}

#[tokio::test]
async fn unreachable_upstreams_get_502_or_504_without_the_token() {
    // Nothing listens on a port we just freed.
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let connects = Arc::new(AtomicUsize::new(0));
    let front = start_front_with(
        GatewayConfig::default(),
        connect_to(free, Arc::clone(&connects)),
        connects,
    )
    .await;
    let resp = send(front.addr, get_req("/p/demo/nb/n1/lab")).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body = text(resp).await;
    assert!(!body.contains(TOKEN) && !body.contains("s3cr3t"), "{body}");
    assert!(!body.is_empty());
    // Websocket upgrades too.
    let resp = ws_open(
        front.addr,
        "/p/demo/nb/n1/api/kernels/k/channels",
        &[V1],
        "alice",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(!text(resp).await.contains(TOKEN));

    // A connect that hangs is cut at the connect timeout.
    let hang: ConnectFn = Arc::new(|| Box::pin(std::future::pending()));
    let config = GatewayConfig {
        connect_timeout: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let front = start_front_with(config, hang, Arc::default()).await;
    let started = Instant::now();
    let resp = send(front.addr, get_req("/p/demo/nb/n1/lab")).await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!text(resp).await.contains(TOKEN));

    // A response head over the limit is refused.
    let (front, _) = start(GatewayConfig::default()).await;
    let resp = send(front.addr, get_req("/p/demo/nb/n1/hugehead")).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(!text(resp).await.contains(TOKEN));
}

#[tokio::test]
async fn connections_are_kept_alive_and_forgotten() {
    let (front, _) = start(GatewayConfig::default()).await;
    let mut tx = client(front.addr).await;
    for i in 0..100 {
        // Alternate between one client connection and fresh ones: the upstream side pools.
        let resp = if i % 2 == 0 {
            tx.ready().await.unwrap();
            tx.send_request(get_req("/p/demo/nb/n1/echo"))
                .await
                .unwrap()
        } else {
            send(front.addr, get_req("/p/demo/nb/n1/echo")).await
        };
        assert_eq!(resp.status(), 200);
        text(resp).await;
    }
    assert_eq!(
        front.connects.load(Ordering::SeqCst),
        1,
        "sequential requests reuse one connection"
    );
    eventually("the connection is back in the pool", || {
        front.gateway.idle_connections(KEY) == 1
    })
    .await;

    // Concurrent requests open at most one connection each, and are pooled afterwards.
    let reqs = (0..8).map(|_| send(front.addr, get_req("/p/demo/nb/n1/echo")));
    for resp in futures_util::future::join_all(reqs).await {
        assert_eq!(resp.status(), 200);
        text(resp).await;
    }
    let after = front.connects.load(Ordering::SeqCst);
    assert!(after <= 9, "{after}");
    eventually("all are pooled", || {
        front.gateway.idle_connections(KEY) == after
    })
    .await;

    let before = Instant::now();
    text(send(front.addr, get_req("/p/demo/nb/n1/echo")).await).await;
    let seen = front.gateway.last_activity(KEY).unwrap();
    assert!(seen >= before && seen <= Instant::now());
    assert_eq!(front.connects.load(Ordering::SeqCst), after);

    front.gateway.forget_upstream(KEY);
    assert_eq!(front.gateway.last_activity(KEY), None);
    assert_eq!(front.gateway.idle_connections(KEY), 0);
    text(send(front.addr, get_req("/p/demo/nb/n1/echo")).await).await;
    assert_eq!(
        front.connects.load(Ordering::SeqCst),
        after + 1,
        "a forgotten upstream reconnects"
    );
}

#[tokio::test]
async fn response_bodies_stream() {
    let (front, st) = start(GatewayConfig::default()).await;
    let resp = send(front.addr, get_req("/p/demo/nb/n1/slow")).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The upstream holds its second chunk until we have the first.
    let first = tokio::time::timeout(WAIT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first;");
    st.slow_gate.notify_one();
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "second;");
}

#[tokio::test]
async fn request_bodies_stream() {
    let (front, st) = start(GatewayConfig::default()).await;
    let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(chunks_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let req = hyper::Request::post("/p/demo/nb/n1/upload")
        .header(header::HOST, "notebooks.example")
        .body(Body::from_stream(stream))
        .unwrap();
    let mut tx = client(front.addr).await;
    let pending = tokio::spawn(tx.send_request(req));
    chunks_tx
        .send(Bytes::from(vec![b'a'; 64 * 1024]))
        .await
        .unwrap();
    // The upstream sees the first chunk before the client has sent the rest.
    tokio::time::timeout(WAIT, st.upload_first.notified())
        .await
        .unwrap();
    for _ in 0..15 {
        chunks_tx
            .send(Bytes::from(vec![b'b'; 64 * 1024]))
            .await
            .unwrap();
    }
    drop(chunks_tx);
    let resp = tokio::time::timeout(WAIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(text(resp).await, format!("got {}", 16 * 64 * 1024));
}

// ---------------------------------------------------------------- websockets

#[tokio::test]
async fn kernel_websocket_v1_and_json_reach_the_tap() {
    let (front, st) = start(GatewayConfig::default()).await;
    let path = "/p/demo/nb/n1/api/kernels/k-1/channels?session_id=abc";
    let mut conn = ws_open(front.addr, path, &[V1], "alice")
        .await
        .ok()
        .unwrap();
    assert_eq!(conn.protocol.as_deref(), Some(V1));
    {
        let h = st.ws_headers.lock().unwrap();
        let h = h.as_ref().unwrap();
        assert_eq!(h[header::SEC_WEBSOCKET_PROTOCOL], V1);
        assert_eq!(h[header::AUTHORIZATION], format!("token {TOKEN}").as_str());
        assert_eq!(h[header::COOKIE], "_xsrf=x");
        assert_eq!(h[header::ORIGIN], "https://notebooks.example");
        assert!(!h.contains_key(header::SEC_WEBSOCKET_EXTENSIONS));
    }

    let header = br#"{"msg_id": "m-v1", "msg_type": "execute_request", "session": "s"}"#;
    let content = br#"{"code": "print('v1')", "silent": false}"#;
    let frame = v1_frame("shell", &[header, b"{}", b"{}", content]);
    conn.ws
        .send(Message::Binary(frame.clone().into()))
        .await
        .unwrap();
    assert_eq!(next_msg(&mut conn.ws).await, Message::Binary(frame.into()));

    conn.ws
        .send(Message::Text(execute_json("print(2)", "m-json").into()))
        .await
        .unwrap();
    assert!(matches!(next_msg(&mut conn.ws).await, Message::Text(_)));

    // Not code: forwarded, not reported.
    conn.ws
        .send(Message::Text(
            r#"{"header": {"msg_type": "kernel_info_request"}}"#.into(),
        ))
        .await
        .unwrap();
    next_msg(&mut conn.ws).await;
    conn.ws
        .send(Message::Binary(Bytes::from_static(b"\x00garbage")))
        .await
        .unwrap();
    next_msg(&mut conn.ws).await;

    // Pings pass through.
    conn.ws
        .send(Message::Ping(Bytes::from_static(b"are-you-there")))
        .await
        .unwrap();
    eventually("the ping reached the upstream", || {
        st.ws_received
            .lock()
            .unwrap()
            .contains(&Message::Ping(Bytes::from_static(b"are-you-there")))
    })
    .await;

    let events = front.tap.wait_for(2).await;
    assert_eq!(
        events,
        [
            cell("k-1", "m-v1", "print('v1')"),
            cell("k-1", "m-json", "print(2)")
        ]
    );
    let labels = front.tap.events.lock().unwrap()[0].0.clone();
    assert_eq!(labels.user, "alice");
    assert_eq!(labels.notebook, "n1");
    assert!(front.gateway.last_activity(KEY).is_some());
    assert_eq!(front.gateway.open_websockets(), 1);

    conn.ws.close(None).await.unwrap();
    eventually("the upstream got the close", || {
        st.ws_closes.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("the registry is empty", || {
        front.gateway.open_websockets() == 0
    })
    .await;

    // Without a subprotocol offer none is chosen, and JSON is still read.
    let mut conn = ws_open(front.addr, path, &[], "alice").await.ok().unwrap();
    assert_eq!(conn.protocol, None);
    conn.ws
        .send(Message::Text(execute_json("legacy()", "m-3").into()))
        .await
        .unwrap();
    next_msg(&mut conn.ws).await;
    let events = front.tap.wait_for(3).await;
    assert_eq!(events[2], cell("k-1", "m-3", "legacy()"));
}

#[tokio::test]
async fn terminal_lines_reach_the_tap() {
    let (front, _) = start(GatewayConfig::default()).await;
    let mut conn = ws_open(
        front.addr,
        "/p/demo/nb/n1/terminals/websocket/1",
        &[],
        "alice",
    )
    .await
    .ok()
    .unwrap();
    for keys in ["l", "s", " -l", "a\r", "echo x\u{7f}y\r"] {
        let msg = format!(
            r#"["stdin", "{}"]"#,
            keys.replace('\r', "\\r").replace('\u{7f}', "\\u007f")
        );
        conn.ws.send(Message::Text(msg.into())).await.unwrap();
        next_msg(&mut conn.ws).await;
    }
    // A binary frame in UTF-16 (terminado's json.loads reads it).
    let utf16: Vec<u8> = "[\"stdin\", \"id\\r\"]"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    conn.ws.send(Message::Binary(utf16.into())).await.unwrap();
    next_msg(&mut conn.ws).await;
    conn.ws
        .send(Message::Text(r#"["set_size", 24, 80]"#.into()))
        .await
        .unwrap();
    next_msg(&mut conn.ws).await;
    conn.ws
        .send(Message::Text(r#"["stdin", "rm -rf half-typed"]"#.into()))
        .await
        .unwrap();
    next_msg(&mut conn.ws).await;
    conn.ws.close(None).await.unwrap();
    let events = front.tap.wait_for(4).await;
    let lines: Vec<String> = events
        .into_iter()
        .map(|e| match e {
            Executed::Terminal { terminal, line } => {
                assert_eq!(terminal, "1");
                line
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lines, ["ls -la", "echo y", "id", "rm -rf half-typed"]);
}

#[tokio::test]
async fn fragmented_messages_are_inspected_and_huge_ones_close_with_1009() {
    let config = GatewayConfig {
        max_ws_message: 64 * 1024,
        ..GatewayConfig::default()
    };
    let (front, st) = start(config).await;
    let path = "/p/demo/nb/n1/api/kernels/k-2/channels";
    let mut conn = ws_open(front.addr, path, &[], "alice").await.ok().unwrap();
    let msg = execute_json("fragmented()", "m-f");
    let (a, b) = msg.split_at(msg.len() / 2);
    conn.ws
        .send(Message::Frame(Frame::message(
            a.as_bytes().to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .unwrap();
    conn.ws
        .send(Message::Frame(Frame::message(
            b.as_bytes().to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .unwrap();
    assert_eq!(
        next_msg(&mut conn.ws).await,
        Message::Text(msg.clone().into())
    );
    assert_eq!(
        front.tap.wait_for(1).await,
        [cell("k-2", "m-f", "fragmented()")]
    );

    let before = st.ws_received.lock().unwrap().len();
    conn.ws
        .send(Message::Binary(vec![0u8; 100 * 1024].into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut conn.ws).await, CloseCode::Size);
    eventually("the upstream was closed too", || {
        st.ws_closes.load(Ordering::SeqCst) == 1
    })
    .await;
    let only_closes = st.ws_received.lock().unwrap()[before..]
        .iter()
        .all(|m| matches!(m, Message::Close(_)));
    assert!(only_closes, "the big message was not forwarded");
    eventually("the registry is empty", || {
        front.gateway.open_websockets() == 0
    })
    .await;
}

#[tokio::test]
async fn a_refusing_tap_drops_the_message_and_closes() {
    let (front, st) = start(GatewayConfig::default()).await;
    let mut conn = ws_open(
        front.addr,
        "/p/demo/nb/n1/api/kernels/k-3/channels",
        &[],
        "alice",
    )
    .await
    .ok()
    .unwrap();
    conn.ws
        .send(Message::Text(
            execute_json("forbidden_call()", "m-r").into(),
        ))
        .await
        .unwrap();
    assert_eq!(close_code(&mut conn.ws).await, CloseCode::Error);
    eventually("the upstream was closed", || {
        st.ws_closes.load(Ordering::SeqCst) == 1
    })
    .await;
    let received = st.ws_received.lock().unwrap();
    assert!(
        received.iter().all(|m| matches!(m, Message::Close(_))),
        "{received:?}"
    );
}

#[tokio::test]
async fn upstream_refusals_pass_through() {
    let (front, _) = start(GatewayConfig::default()).await;
    let resp = ws_open(
        front.addr,
        "/p/demo/nb/n1/api/kernels/forbidden/channels",
        &[V1],
        "alice",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(text(resp).await, "no such kernel");
    assert_eq!(front.gateway.open_websockets(), 0);
}

#[tokio::test]
async fn close_websockets_closes_both_ends() {
    let (front, st) = start(GatewayConfig::default()).await;
    let path = "/p/demo/nb/n1/api/kernels/k-4/channels";
    let mut alice = ws_open(front.addr, path, &[V1], "alice")
        .await
        .ok()
        .unwrap();
    let mut bob = ws_open(front.addr, path, &[V1], "bob").await.ok().unwrap();
    eventually("both open upstream", || {
        st.ws_active.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(front.gateway.open_websockets(), 2);

    assert_eq!(
        front.gateway.close_websockets(|l| {
            // The predicate may call back into the gateway.
            l.user == "alice" && front.gateway.open_websockets() == 2
        }),
        1
    );
    assert_eq!(close_code(&mut alice.ws).await, CloseCode::Policy);
    eventually("alice's upstream socket closed", || {
        st.ws_active.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        st.ws_closes.load(Ordering::SeqCst),
        1,
        "the upstream got a close frame"
    );
    eventually("one left", || front.gateway.open_websockets() == 1).await;

    // Bob's still works.
    bob.ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next_msg(&mut bob.ws).await, Message::Text("hello".into()));
    assert_eq!(
        front
            .gateway
            .close_websockets(|l| l.session == "session-of-bob"),
        1
    );
    assert_eq!(close_code(&mut bob.ws).await, CloseCode::Policy);
    eventually("none left", || front.gateway.open_websockets() == 0).await;
    assert_eq!(front.gateway.close_websockets(|_| true), 0);
}

/// Opens and closes many websockets (a third closed by the client, a third dropped, a third
/// closed by the gateway) and checks nothing stays behind. 2,000 by default (about 15 s in a
/// debug build on two cores); `GATEWAY_LEAK_SOCKETS=10000` for the long run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_does_not_leak() {
    let n: usize = std::env::var("GATEWAY_LEAK_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let (front, st) = start(GatewayConfig::default()).await;
    let path = "/p/demo/nb/n1/api/kernels/k-5/channels";
    let gateway = &front.gateway;
    let addr = front.addr;
    for batch in 0..n.div_ceil(50) {
        let opens = (0..50.min(n - batch * 50)).map(|i| async move {
            let mut conn = ws_open(addr, path, &[V1], &format!("u{i}"))
                .await
                .ok()
                .unwrap();
            conn.ws.send(Message::Text("x".into())).await.unwrap();
            next_msg(&mut conn.ws).await;
            match i % 3 {
                0 => conn.ws.close(None).await.unwrap(),
                1 => drop(conn),
                _ => {
                    // Closed by the gateway.
                    gateway.close_websockets(|l| l.user == format!("u{i}"));
                    close_code(&mut conn.ws).await;
                }
            }
        });
        futures_util::future::join_all(opens).await;
    }
    eventually("the registry is empty", || {
        front.gateway.open_websockets() == 0
    })
    .await;
    eventually("no upstream socket is left", || {
        st.ws_active.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(front.gateway.idle_connections(KEY) <= 1);
    let capacity = front.gateway.registry_capacity();
    assert!(
        capacity <= 256,
        "registry capacity {capacity} after {n} sockets"
    );
}
