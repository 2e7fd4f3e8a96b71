//! Websocket forwarding: the upstream handshake first, then a relay that inspects what the
//! client sends, and closes on request.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::jupyter::{self, Kind, LineAssembler};
use crate::pool::PoolState;
use crate::proxy::{self, plain, ProxyError};
use crate::registry::Registration;
use crate::{Executed, Inner, Labels, Tap, Upstream, Verdict};

const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(WS_GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// A fresh `Sec-WebSocket-Key`.
fn new_key() -> Option<String> {
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(nonce))
}

/// The subprotocols a handshake offers, in order.
fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn ws_config(max_message: usize) -> WebSocketConfig {
    let base = WebSocketConfig::default();
    let write_buffer = base.write_buffer_size;
    base.max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
        .max_write_buffer_size(
            max_message
                .saturating_add(write_buffer)
                .saturating_add(64 * 1024),
        )
}

/// Forwards a websocket upgrade request: opens the upstream websocket first, then answers
/// the client 101 with the subprotocol the upstream chose and relays on a task of its own.
pub(crate) async fn forward(
    inner: &Arc<Inner>,
    mut req: Request<Body>,
    upstream: &Upstream,
    state: Arc<PoolState>,
    labels: Labels,
    tap: Arc<dyn Tap>,
) -> Response<Body> {
    let Some(client_key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return plain(StatusCode::BAD_REQUEST, "Missing Sec-WebSocket-Key.\n");
    };
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !version_ok {
        let mut resp = plain(StatusCode::UPGRADE_REQUIRED, "Websocket version 13 only.\n");
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    if req.extensions().get::<OnUpgrade>().is_none() {
        return plain(
            StatusCode::BAD_REQUEST,
            "This connection cannot be upgraded.\n",
        );
    }
    let client_upgrade = hyper::upgrade::on(&mut req);
    let offers = offered_protocols(req.headers());
    let kind = jupyter::classify(req.uri().path());
    let Some(key) = new_key() else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "No randomness.\n");
    };

    let (mut parts, _) = req.into_parts();
    proxy::upstream_parts(inner, &mut parts, upstream, true);
    let h = &mut parts.headers;
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert(header::SEC_WEBSOCKET_KEY, v);
    }
    let up_req = Request::from_parts(parts, Body::empty());

    let limit = inner.config.connect_timeout;
    let handshake = async {
        let (mut resp, tx) = proxy::send(inner, upstream, &state, up_req).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Err(proxy::client_response(
                inner,
                resp,
                tx,
                Arc::clone(&state),
            )));
        }
        let accept_ok = resp
            .headers()
            .get(header::SEC_WEBSOCKET_ACCEPT)
            .is_some_and(|v| v.as_bytes() == accept_key(key.as_bytes()).as_bytes());
        if !accept_ok {
            return Err(ProxyError::WebSocket("wrong Sec-WebSocket-Accept"));
        }
        let chosen = resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).cloned();
        if let Some(p) = &chosen {
            if !offers.iter().any(|o| o.as_bytes() == p.as_bytes()) {
                return Err(ProxyError::WebSocket("subprotocol not offered"));
            }
        }
        let io = hyper::upgrade::on(&mut resp)
            .await
            .map_err(ProxyError::Http)?;
        drop(tx);
        Ok(Ok((io, chosen)))
    };
    let (upstream_io, chosen) = match tokio::time::timeout(limit, handshake).await {
        Err(_) => return ProxyError::ResponseTimeout.response(&upstream.key),
        Ok(Err(e)) => return e.response(&upstream.key),
        Ok(Ok(Err(refusal))) => return refusal,
        Ok(Ok(Ok(done))) => done,
    };

    let (registration, stop) = inner.registry.register(labels.clone());
    let relay = Relay {
        registration,
        stop,
        inspector: Inspector {
            lines: matches!(kind, Kind::Terminal { .. })
                .then(|| LineAssembler::new(inner.config.max_terminal_line)),
            kind,
            labels,
            tap,
        },
        state,
        max_message: inner.config.max_ws_message,
        handshake_timeout: limit,
        close_timeout: inner.config.ws_close_timeout,
    };
    tokio::spawn(relay.run(client_upgrade, upstream_io));

    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept_key(client_key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = chosen {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    resp
}

/// Reads what the client sends and tells the tap what runs.
struct Inspector {
    kind: Kind,
    labels: Labels,
    tap: Arc<dyn Tap>,
    lines: Option<LineAssembler>,
}

impl Inspector {
    fn report(&self, events: Vec<Executed>) -> Verdict {
        for event in events {
            if self.tap.executed(&self.labels, event) == Verdict::Refuse {
                return Verdict::Refuse;
            }
        }
        Verdict::Forward
    }

    fn cells(&self, runs: impl IntoIterator<Item = jupyter::KernelRun>) -> Vec<Executed> {
        let kernel = match &self.kind {
            Kind::Kernel { kernel } => kernel.as_str(),
            _ => "",
        };
        runs.into_iter()
            .map(|r| Executed::Cell {
                kernel: kernel.to_owned(),
                channel: r.channel,
                msg_type: r.msg_type,
                msg_id: r.msg_id,
                code: r.code,
            })
            .collect()
    }

    fn inspect(&mut self, msg: &Message) -> Verdict {
        let events = match (&self.kind, &mut self.lines, msg) {
            (Kind::Terminal { name }, Some(lines), Message::Text(_) | Message::Binary(_)) => {
                let stdin = match msg {
                    Message::Text(t) => jupyter::terminal_stdin(t.as_str()),
                    Message::Binary(b) => jupyter::terminal_stdin(&jupyter::python_json_text(b)),
                    _ => None,
                };
                let mut done = Vec::new();
                if let Some(text) = stdin {
                    lines.push(&text, &mut done);
                }
                done.into_iter()
                    .map(|line| Executed::Terminal {
                        terminal: name.clone(),
                        line,
                    })
                    .collect()
            }
            (Kind::Terminal { .. }, _, _) => Vec::new(),
            (_, _, Message::Text(t)) => self.cells(jupyter::kernel_text(t.as_str())),
            (_, _, Message::Binary(b)) => self.cells(jupyter::kernel_binary(b)),
            _ => Vec::new(),
        };
        if events.is_empty() {
            return Verdict::Forward;
        }
        self.report(events)
    }

    /// Reports a terminal line typed but not yet entered (the terminal outlives the socket).
    fn finish(&mut self) {
        if let (Kind::Terminal { name }, Some(lines)) = (&self.kind, &mut self.lines) {
            if let Some(line) = lines.finish() {
                let event = Executed::Terminal {
                    terminal: name.clone(),
                    line,
                };
                let _ = self.tap.executed(&self.labels, event);
            }
        }
    }
}

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientClosed,
    UpstreamClosed,
    ClientGone,
    UpstreamGone,
    ClientTooBig,
    UpstreamTooBig,
    Refused,
    Stopped,
}

fn close(code: CloseCode, reason: &'static str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

impl End {
    /// The close frames still to send: (to the client, to the upstream).
    fn frames(self) -> (Option<CloseFrame>, Option<CloseFrame>) {
        let away = || close(CloseCode::Away, "");
        match self {
            End::ClientClosed | End::UpstreamClosed => (None, None),
            End::ClientGone => (None, away()),
            End::UpstreamGone => (close(CloseCode::Away, "notebook server went away"), None),
            End::ClientTooBig => (close(CloseCode::Size, "message too big"), away()),
            End::UpstreamTooBig => (
                close(CloseCode::Size, "message too big"),
                close(CloseCode::Size, "message too big"),
            ),
            End::Refused => (close(CloseCode::Error, "cannot record this action"), away()),
            End::Stopped => (close(CloseCode::Policy, "access ended"), away()),
        }
    }
}

struct Relay {
    registration: Registration,
    stop: oneshot::Receiver<()>,
    inspector: Inspector,
    state: Arc<PoolState>,
    max_message: usize,
    handshake_timeout: Duration,
    close_timeout: Duration,
}

impl Relay {
    async fn run(mut self, client_upgrade: OnUpgrade, upstream_io: Upgraded) {
        let client_io = tokio::select! {
            r = tokio::time::timeout(self.handshake_timeout, client_upgrade) => match r {
                Ok(Ok(io)) => io,
                _ => return,
            },
            _ = &mut self.stop => return,
        };
        let config = ws_config(self.max_message);
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(client_io), Role::Server, Some(config))
                .await;
        let upstream =
            WebSocketStream::from_raw_socket(TokioIo::new(upstream_io), Role::Client, Some(config))
                .await;
        self.relay(client, upstream).await;
    }

    async fn relay<C, U>(mut self, client: WebSocketStream<C>, upstream: WebSocketStream<U>)
    where
        C: AsyncRead + AsyncWrite + Unpin,
        U: AsyncRead + AsyncWrite + Unpin,
    {
        let (mut c_tx, mut c_rx) = client.split();
        let (mut u_tx, mut u_rx) = upstream.split();
        let state = &self.state;
        let inspector = &mut self.inspector;
        let end = {
            let up = async {
                loop {
                    let msg = match c_rx.next().await {
                        None => return End::ClientGone,
                        Some(Err(WsError::Capacity(_))) => return End::ClientTooBig,
                        Some(Err(_)) => return End::ClientGone,
                        Some(Ok(m)) => m,
                    };
                    state.touch();
                    if inspector.inspect(&msg) == Verdict::Refuse {
                        return End::Refused;
                    }
                    let closing = matches!(msg, Message::Close(_));
                    if u_tx.send(msg).await.is_err() {
                        return End::UpstreamGone;
                    }
                    if closing {
                        return End::ClientClosed;
                    }
                }
            };
            let down = async {
                loop {
                    let msg = match u_rx.next().await {
                        None => return End::UpstreamGone,
                        Some(Err(WsError::Capacity(_))) => return End::UpstreamTooBig,
                        Some(Err(_)) => return End::UpstreamGone,
                        Some(Ok(m)) => m,
                    };
                    state.touch();
                    let closing = matches!(msg, Message::Close(_));
                    if c_tx.send(msg).await.is_err() {
                        return End::ClientGone;
                    }
                    if closing {
                        return End::UpstreamClosed;
                    }
                }
            };
            tokio::select! {
                end = up => end,
                end = down => end,
                _ = &mut self.stop => End::Stopped,
            }
        };
        self.inspector.finish();
        let (to_client, to_upstream) = end.frames();
        let client = c_tx.reunite(c_rx).ok();
        let upstream = u_tx.reunite(u_rx).ok();
        let _ = tokio::time::timeout(self.close_timeout, async {
            tokio::join!(
                close_side(client, to_client),
                close_side(upstream, to_upstream)
            )
        })
        .await;
        drop(self.registration);
    }
}

/// Sends a close frame (when given) and reads until the peer's close arrives or the
/// connection ends, which completes the closing handshake.
async fn close_side<S>(ws: Option<WebSocketStream<S>>, frame: Option<CloseFrame>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(mut ws) = ws else { return };
    if let Some(frame) = frame {
        let _ = ws.close(Some(frame)).await;
    }
    while let Some(Ok(_)) = ws.next().await {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_ne!(new_key(), new_key());
    }

    #[test]
    fn offers_are_split() {
        let mut h = HeaderMap::new();
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("a, b"),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("c"),
        );
        assert_eq!(offered_protocols(&h), ["a", "b", "c"]);
    }
}
