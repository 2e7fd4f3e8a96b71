//! Plain HTTP forwarding over pooled connections.

use std::sync::Arc;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::Extensions;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;

use crate::pool::{PoolState, PooledBody, Sender};
use crate::{headers, Inner, Upstream};

/// Why a request could not be forwarded. Its `Display` never holds a header value.
#[derive(Debug)]
pub(crate) enum ProxyError {
    ConnectTimeout,
    Connect(std::io::Error),
    Http(hyper::Error),
    ResponseTimeout,
    WebSocket(&'static str),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::ConnectTimeout => f.write_str("connect timed out"),
            ProxyError::Connect(e) => write!(f, "connect failed: {e}"),
            ProxyError::Http(e) => write!(f, "http: {e}"),
            ProxyError::ResponseTimeout => f.write_str("no response in time"),
            ProxyError::WebSocket(what) => write!(f, "websocket handshake: {what}"),
        }
    }
}

/// A short plain-text answer of the gateway's own.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl ProxyError {
    /// What the client is told: fixed text, nothing from the upstream or its token.
    pub(crate) fn response(&self, key: &str) -> Response<Body> {
        tracing::warn!(upstream = key, error = %self, "notebook gateway: upstream failed");
        match self {
            ProxyError::ConnectTimeout | ProxyError::ResponseTimeout => plain(
                StatusCode::GATEWAY_TIMEOUT,
                "The notebook server did not answer in time.\n",
            ),
            _ => plain(
                StatusCode::BAD_GATEWAY,
                "The notebook server is not reachable.\n",
            ),
        }
    }
}

/// Opens a fresh connection to `upstream` and starts its HTTP/1.1 client task.
pub(crate) async fn connect(inner: &Inner, upstream: &Upstream) -> Result<Sender, ProxyError> {
    let stream = tokio::time::timeout(inner.config.connect_timeout, (upstream.connect)())
        .await
        .map_err(|_| ProxyError::ConnectTimeout)?
        .map_err(ProxyError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (tx, conn) = inner
        .client
        .handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(ProxyError::Http)?;
    let key = Arc::clone(&upstream.key);
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(upstream = &*key, error = %e, "notebook gateway: connection ended");
        }
    });
    Ok(tx)
}

/// Sends `req` on an idle pooled connection, or a fresh one. When an idle connection turns
/// out to be closed before the request was written, the next one (finally a fresh one) is
/// tried; a request that was written is never sent twice.
pub(crate) async fn send(
    inner: &Inner,
    upstream: &Upstream,
    state: &PoolState,
    mut req: Request<Body>,
) -> Result<(Response<Incoming>, Sender), ProxyError> {
    loop {
        let (mut tx, reused) = match state.take() {
            Some(tx) => (tx, true),
            None => (connect(inner, upstream).await?, false),
        };
        let sent = tx.try_send_request(req);
        match tokio::time::timeout(inner.config.response_timeout, sent).await {
            Err(_) => return Err(ProxyError::ResponseTimeout),
            Ok(Ok(resp)) => return Ok((resp, tx)),
            Ok(Err(mut e)) => match e.take_message() {
                Some(unsent) if reused => req = unsent,
                _ => return Err(ProxyError::Http(e.into_error())),
            },
        }
    }
}

/// The client's response: the upstream's, its headers cleaned, its body streamed, its
/// connection pooled again once the body has been read.
pub(crate) fn client_response(
    inner: &Inner,
    resp: Response<Incoming>,
    tx: Sender,
    state: Arc<PoolState>,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    headers::prepare_response(&mut parts.headers, &inner.prefixes);
    parts.extensions = Extensions::new();
    Response::from_parts(parts, Body::new(PooledBody::new(body, tx, state)))
}

/// Turns the client's request into the upstream's, in place (no copy of the body).
pub(crate) fn upstream_parts(
    inner: &Inner,
    parts: &mut hyper::http::request::Parts,
    upstream: &Upstream,
    websocket: bool,
) {
    headers::prepare_request(
        &mut parts.headers,
        &parts.uri,
        &inner.prefixes,
        &upstream.authorization,
        websocket,
    );
    if let Some(uri) = headers::origin_form(&parts.uri) {
        parts.uri = uri;
    }
    parts.version = Version::HTTP_11;
    parts.extensions = Extensions::new();
}

/// Forwards a plain HTTP request.
pub(crate) async fn forward(
    inner: &Inner,
    req: Request<Body>,
    upstream: &Upstream,
    state: Arc<PoolState>,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    upstream_parts(inner, &mut parts, upstream, false);
    match send(inner, upstream, &state, Request::from_parts(parts, body)).await {
        Ok((resp, tx)) => client_response(inner, resp, tx, state),
        Err(e) => e.response(&upstream.key),
    }
}
