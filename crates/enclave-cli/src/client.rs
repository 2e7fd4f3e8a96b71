//! HTTP access to the Enclave API and the mapping of every failure to a message, a hint and an
//! exit code.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

/// Largest page the API serves.
pub(crate) const MAX_PAGE: usize = 200;

/// What went wrong, which decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A local problem: files, config, IO (exit 1).
    Local,
    /// Bad arguments or input (exit 2).
    Usage,
    /// The server refused the request with a 4xx (exit 3).
    Refused,
    /// A 5xx, an unreachable server, a TLS failure or a garbled answer (exit 4).
    Server,
}

/// A failed command: printed as `error: <message> (<code>)` plus an optional hint.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub kind: Kind,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    /// The server's `details` (`Null` for local failures; boxed to keep results small).
    pub details: Box<Value>,
    /// Lines printed between the error and the hint, e.g. the offending line of a policy.
    pub excerpt: Option<String>,
}

impl Failure {
    fn new(kind: Kind, code: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        Failure {
            kind,
            code: code.into(),
            message: message.into(),
            hint,
            details: Box::new(Value::Null),
            excerpt: None,
        }
    }

    /// A local problem (exit 1).
    pub(crate) fn local(code: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        Self::new(Kind::Local, code, message, hint)
    }

    /// A usage problem (exit 2).
    pub(crate) fn usage(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::new(Kind::Usage, "usage", message, hint)
    }

    /// A server-side or transport problem (exit 4).
    pub(crate) fn server(code: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        Self::new(Kind::Server, code, message, hint)
    }

    /// The process exit code for this failure.
    pub(crate) fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Local => 1,
            Kind::Usage => 2,
            Kind::Refused => 3,
            Kind::Server => 4,
        }
    }

    /// The lines printed on stderr, with every secret replaced by `[redacted]`.
    pub(crate) fn render(&self, secrets: &[&str]) -> String {
        let mut text = format!("error: {} ({})\n", self.message, self.code);
        if let Some(excerpt) = &self.excerpt {
            text.push_str(excerpt);
            if !excerpt.ends_with('\n') {
                text.push('\n');
            }
        }
        if let Some(hint) = &self.hint {
            text.push_str(&format!("hint: {hint}\n"));
        }
        redact(&text, secrets)
    }
}

/// Replaces each secret in `text` by `[redacted]`. Secrets shorter than 6 characters are
/// skipped: they would mangle ordinary words, and the CLI never builds messages from secrets.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.chars().count() >= 6)
        .fold(text.to_string(), |acc, s| acc.replace(s, "[redacted]"))
}

/// Replaces control characters (terminal escapes included) so server text cannot drive the
/// terminal.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Maps an HTTP error response (status and body) to a failure. `resource` is the first path
/// segment after `/api/v1` (`users`, `groups`…), used for hints.
pub(crate) fn api_failure(
    status: StatusCode,
    body: &[u8],
    resource: &str,
    request_id_header: Option<&str>,
) -> Failure {
    #[derive(Deserialize)]
    struct ErrorBody {
        code: String,
        message: String,
        #[serde(default)]
        details: Value,
    }
    /// `{code, message, details}`, or the same wrapped as `{"error": {…}}`.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorShape {
        Flat(ErrorBody),
        Wrapped { error: ErrorBody },
    }
    let kind = if status.is_client_error() {
        Kind::Refused
    } else {
        Kind::Server
    };
    let parsed = serde_json::from_slice::<ErrorShape>(body)
        .ok()
        .map(|shape| match shape {
            ErrorShape::Flat(b) | ErrorShape::Wrapped { error: b } => b,
        });
    let (code, message, details) = match parsed {
        Some(b) => (sanitize(&b.code), sanitize(&b.message), b.details),
        None => (
            format!("http_{}", status.as_u16()),
            format!("HTTP {status}"),
            Value::Null,
        ),
    };
    let detail = |key: &str| details.get(key).and_then(Value::as_str).map(sanitize);
    let request_id = detail("request_id").or_else(|| request_id_header.map(sanitize));
    let position = match (
        details.get("line").and_then(Value::as_u64),
        details.get("column").and_then(Value::as_u64),
    ) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    };
    let listing = match resource {
        "users" | "groups" | "projects" | "tokens" => {
            format!("; `enclave {resource} list` shows what you can see")
        }
        "policies" => "; `enclave policy list [--project P]` shows what you can see".into(),
        "roles" => "; `enclave roles list [--project P]` shows what you can see".into(),
        "grants" => "; `enclave grants list --project P` shows what you can see".into(),
        "environments" => "; `enclave envs list` shows the environment templates".into(),
        _ => String::new(),
    };
    let hint = match (status.as_u16(), code.as_str()) {
        (401, "invalid_credentials") => Some("check the username and the password".into()),
        (401, _) => Some("your token expired or was revoked: run `enclave login` again".into()),
        (403, "csrf_failed") => Some("run `enclave login` again".into()),
        (403, _) if resource == "grants" => Some(
            "a grant is approved or denied by a project owner other than its requester; \
             revoked by them, the requester or a platform admin"
                .into(),
        ),
        (403, _) => Some(
            "you are not allowed to do this: it may need a platform admin, a project owner, or a \
             token with `full` scope for this project"
                .into(),
        ),
        (404, _) => Some(format!("check the name or id{listing}")),
        (409, _) => Some("the name is taken, or the current state does not allow this".into()),
        (400, "invalid_input") => Some(match detail("field") {
            Some(field) => format!("fix the value of `{field}`{position}"),
            None => "fix the values given".into(),
        }),
        (400, _) | (415, _) => {
            Some("the server did not understand the request: is this CLI too old or too new for the server?".into())
        }
        (413, _) => Some("the request is larger than the server accepts (64 KiB)".into()),
        (429, _) => Some(
            "too many attempts: wait and retry; an admin can run `enclave users unlock NAME`"
                .into(),
        ),
        (503, _) => Some("the server cannot do this now (the message says why) and nothing was changed; retry later".into()),
        (s, _) if s >= 500 => Some(match &request_id {
            Some(id) => format!("the server failed; see its log for request id {id}"),
            None => "the server failed; see its log".into(),
        }),
        (s, _) if (300..400).contains(&s) => Some(
            "the server answered with a redirect, which the CLI does not follow: check the --server URL"
                .into(),
        ),
        _ => None,
    };
    let message = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        message
    };
    let mut failure = Failure::new(kind, &code, message, hint);
    failure.details = Box::new(details);
    failure
}

/// Maps a transport error (no HTTP answer) to a failure naming the server.
pub(crate) fn transport_failure(err: &reqwest::Error, server: &str) -> Failure {
    let mut chain = Vec::new();
    let mut tls: Option<&rustls::Error> = None;
    let mut refused = false;
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        chain.push(e.to_string());
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            tls = tls.or(Some(t));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            if let Some(t) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                tls = tls.or(Some(t));
            }
        }
        current = e.source();
    }
    let detail = chain.last().cloned().unwrap_or_default();
    classify_transport(TransportSignal {
        server,
        detail: &sanitize(&detail),
        tls,
        refused,
        timeout: err.is_timeout(),
        text: &chain.join(": "),
        builder: err.is_builder(),
    })
}

/// What a transport error said, extracted from its source chain.
#[derive(Clone, Copy)]
pub(crate) struct TransportSignal<'a> {
    pub server: &'a str,
    pub detail: &'a str,
    pub tls: Option<&'a rustls::Error>,
    pub refused: bool,
    pub timeout: bool,
    pub text: &'a str,
    pub builder: bool,
}

/// Chooses message, code and hint for a transport error.
pub(crate) fn classify_transport(s: TransportSignal<'_>) -> Failure {
    use rustls::CertificateError as C;
    let server = s.server;
    let ca_hint = || {
        "pass --ca FILE to `enclave login` with the server's certificate (DATA_DIR/tls/cert.pem)"
            .to_string()
    };
    if s.builder {
        return Failure::local(
            "tls_setup",
            format!("cannot set up the HTTPS client: {}", s.detail),
            Some("check the --ca file, or install the system's CA certificates".into()),
        );
    }
    let cert_error = match s.tls {
        Some(rustls::Error::InvalidCertificate(c)) => Some(c.clone()),
        _ => None,
    };
    let unknown_issuer = matches!(cert_error, Some(C::UnknownIssuer | C::BadSignature))
        || s.text.contains("UnknownIssuer");
    if unknown_issuer {
        return Failure::server(
            "tls_unknown_issuer",
            format!("the certificate of {server} is not signed by a trusted CA"),
            Some(ca_hint()),
        );
    }
    if let Some(c) = cert_error {
        let hint = match c {
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the certificate is not valid for this host name: use the name or address it was issued for in --server".into()
            }
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is outside its validity period: renew it, or check this machine's clock".into()
            }
            _ => ca_hint(),
        };
        return Failure::server(
            "tls_certificate",
            format!("the certificate of {server} was rejected: {c:?}"),
            Some(hint),
        );
    }
    if s.tls.is_some() {
        return Failure::server(
            "tls",
            format!("TLS with {server} failed: {}", s.detail),
            Some("is --server an https:// URL of the Enclave HTTPS listener?".into()),
        );
    }
    if s.timeout {
        return Failure::server(
            "timeout",
            format!("{server} did not answer in time"),
            Some(format!("is the server at {server} running and reachable?")),
        );
    }
    if s.refused {
        return Failure::server(
            "connection_refused",
            format!("cannot connect to {server}: connection refused"),
            Some(format!("is the server running at {server}?")),
        );
    }
    if s.text.contains("dns error") {
        return Failure::server(
            "unreachable",
            format!("cannot resolve the host of {server}: {}", s.detail),
            Some("check the host name in --server".into()),
        );
    }
    Failure::server(
        "unreachable",
        format!("cannot reach {server}: {}", s.detail),
        Some(format!(
            "is the server running at {server}, and is the URL right?"
        )),
    )
}

/// Parses and normalises a server URL: `https://` (or `http://` to a loopback address), no
/// credentials, query or fragment; the trailing slash is dropped.
pub(crate) fn parse_server_url(text: &str) -> Result<String, Failure> {
    let hint = || Some("use the form https://HOST:PORT, e.g. https://127.0.0.1:8443".to_string());
    let url = Url::parse(text.trim()).map_err(|e| {
        Failure::usage(
            format!("invalid server URL `{}`: {e}", sanitize(text)),
            hint(),
        )
    })?;
    let host = url.host_str().unwrap_or("");
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Failure::usage(
                "refusing to send credentials over plain http to a non-loopback host",
                hint(),
            ))
        }
        other => {
            return Err(Failure::usage(
                format!("unsupported URL scheme `{}`", sanitize(other)),
                hint(),
            ))
        }
    }
    if host.is_empty()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(Failure::usage(
            "the server URL must have a host and no user, query or fragment",
            hint(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// One page of a list: `{"items": [...], "next": CURSOR|null}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    pub items: Vec<Value>,
    #[serde(default)]
    pub next: Option<String>,
}

/// Fetches pages with `fetch(limit, after)` until the cursor runs out or `max` items are
/// collected.
pub(crate) async fn collect_pages<F, Fut>(
    max: Option<usize>,
    mut fetch: F,
) -> Result<Vec<Value>, Failure>
where
    F: FnMut(usize, Option<String>) -> Fut,
    Fut: Future<Output = Result<Page, Failure>>,
{
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let want = max.map_or(MAX_PAGE, |m| m.saturating_sub(items.len()).min(MAX_PAGE));
        if want == 0 {
            break;
        }
        let page = fetch(want, after.clone()).await?;
        items.extend(page.items);
        if max.is_some_and(|m| items.len() >= m) {
            break;
        }
        match page.next {
            None => break,
            Some(next) if after.as_deref() == Some(next.as_str()) => {
                return Err(Failure::server(
                    "invalid_response",
                    "the server returned the same list cursor twice",
                    None,
                ))
            }
            Some(next) => after = Some(next),
        }
    }
    if let Some(m) = max {
        items.truncate(m);
    }
    Ok(items)
}

/// An API client bound to one server, optionally with a bearer token.
pub(crate) struct ApiClient {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl ApiClient {
    /// Builds a client for `server` (already normalised). With `ca_pem`, only the CAs in it
    /// are trusted; otherwise the system roots are.
    pub(crate) fn new(
        server: &str,
        ca_pem: Option<&[u8]>,
        token: Option<String>,
    ) -> Result<Self, Failure> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("enclave-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_pem {
            builder = builder.tls_certs_only(parse_ca(pem)?);
        }
        let http = builder.build().map_err(|e| transport_failure(&e, server))?;
        Ok(ApiClient {
            http,
            server: server.to_string(),
            token,
        })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, Failure> {
        for s in segments {
            if s.is_empty() || *s == "." || *s == ".." {
                return Err(Failure::usage(
                    format!("invalid name `{}`", sanitize(s)),
                    None,
                ));
            }
        }
        let mut url = Url::parse(&self.server)
            .map_err(|e| Failure::local("config", format!("invalid server URL: {e}"), None))?;
        url.path_segments_mut()
            .map_err(|()| Failure::local("config", "invalid server URL", None))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok(url)
    }

    /// Sends one request to `/api/v1/<segments>` and returns the JSON answer (`None` for an
    /// empty body, e.g. 204).
    pub(crate) async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, Failure> {
        let bytes = self.call_bytes(method, segments, query, body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Failure::server(
                "invalid_response",
                format!("the server's answer is not valid JSON: {e}"),
                Some(format!("is {} an Enclave server?", self.server)),
            )
        })
    }

    /// Sends one request to `/api/v1/<segments>` and returns the body of a successful answer
    /// as it came (e.g. the audit export's JSON Lines).
    pub(crate) async fn call_bytes(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Vec<u8>, Failure> {
        let url = self.url(segments)?;
        let mut req = self.http.request(method, url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_failure(&e, &self.server))?;
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_failure(&e, &self.server))?;
        if !status.is_success() {
            let resource = segments.first().copied().unwrap_or("");
            return Err(api_failure(status, &bytes, resource, request_id.as_deref()));
        }
        Ok(bytes.to_vec())
    }

    /// Sends a bodiless request to `/api/v1/<segments>` and streams a successful answer into
    /// `sink` (no overall time limit beyond `timeout`: archives may be large). Returns the
    /// bytes written and the answer's headers; checks them against `Content-Length`.
    pub(crate) async fn download(
        &self,
        method: Method,
        segments: &[&str],
        sink: &mut (dyn std::io::Write + Send),
        timeout: Duration,
    ) -> Result<(u64, reqwest::header::HeaderMap), Failure> {
        let url = self.url(segments)?;
        let mut req = self.http.request(method, url).timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| transport_failure(&e, &self.server))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if !status.is_success() {
            let request_id = headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| transport_failure(&e, &self.server))?;
            let resource = segments.first().copied().unwrap_or("");
            return Err(api_failure(status, &bytes, resource, request_id.as_deref()));
        }
        let expected = resp.content_length();
        let mut written = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport_failure(&e, &self.server))?
        {
            sink.write_all(&chunk).map_err(|e| {
                Failure::local("io", format!("cannot write the download: {e}"), None)
            })?;
            written += chunk.len() as u64;
        }
        if expected.is_some_and(|n| n != written) {
            return Err(Failure::server(
                "incomplete",
                format!(
                    "the server's answer ended after {written} of {} bytes",
                    expected.unwrap_or(0)
                ),
                Some("retry; nothing was kept".into()),
            ));
        }
        Ok((written, headers))
    }

    /// Like [`ApiClient::call`] but requires a JSON answer.
    pub(crate) async fn call_json(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        self.call(method, segments, &[], body)
            .await?
            .ok_or_else(|| {
                Failure::server("invalid_response", "the server's answer is empty", None)
            })
    }

    /// Fetches every item of a list that takes only `query` (no `limit`), following a `next`
    /// cursor with `after` if the server sends one.
    pub(crate) async fn list_all(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, Failure> {
        collect_pages(None, |_, after| async move {
            let mut query = query.to_vec();
            if let Some(after) = after {
                query.push(("after", after));
            }
            let value = self.call(Method::GET, segments, &query, None).await?;
            parse_page(value)
        })
        .await
    }

    /// Fetches every item of a list (or the first `max`), following `next` cursors.
    pub(crate) async fn list(
        &self,
        segments: &[&str],
        max: Option<usize>,
    ) -> Result<Vec<Value>, Failure> {
        collect_pages(max, |limit, after| async move {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(after) = after {
                query.push(("after", after));
            }
            let value = self.call(Method::GET, segments, &query, None).await?;
            parse_page(value)
        })
        .await
    }
}

/// Reads one page of a list answer.
fn parse_page(value: Option<Value>) -> Result<Page, Failure> {
    serde_json::from_value::<Page>(value.unwrap_or(Value::Null)).map_err(|e| {
        Failure::server(
            "invalid_response",
            format!("the server's list is malformed: {e}"),
            None,
        )
    })
}

/// Parses a PEM bundle into certificates; at least one is required.
pub(crate) fn parse_ca(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, Failure> {
    let hint = || {
        Some("give the PEM file with the server's certificate (DATA_DIR/tls/cert.pem)".to_string())
    };
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
        Failure::local(
            "invalid_ca",
            format!("the CA file is not valid PEM: {e}"),
            hint(),
        )
    })?;
    if certs.is_empty() {
        return Err(Failure::local(
            "invalid_ca",
            "the CA file contains no PEM certificate",
            hint(),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn exit_codes_follow_status_classes() {
        let body = br#"{"code":"not_found","message":"no such user","details":{}}"#;
        let f = api_failure(status(404), body, "users", None);
        assert_eq!((f.exit_code(), f.code.as_str()), (3, "not_found"));
        assert!(f.hint.unwrap().contains("enclave users list"));
        for code in [400, 401, 403, 409, 410, 413, 415, 429] {
            assert_eq!(
                api_failure(status(code), b"", "", None).exit_code(),
                3,
                "{code}"
            );
        }
        for code in [500, 502, 503] {
            assert_eq!(
                api_failure(status(code), b"<html>", "", None).exit_code(),
                4,
                "{code}"
            );
        }
        assert_eq!(api_failure(status(302), b"", "", None).exit_code(), 4);
        assert_eq!(Failure::usage("x", None).exit_code(), 2);
        assert_eq!(Failure::local("io", "x", None).exit_code(), 1);
    }

    #[test]
    fn hints_name_what_to_fix() {
        let f = api_failure(
            status(401),
            br#"{"code":"unauthenticated","message":"expired"}"#,
            "",
            None,
        );
        assert!(f.hint.unwrap().contains("enclave login"));
        let f = api_failure(
            status(400),
            br#"{"code":"invalid_input","message":"bad","details":{"field":"email"}}"#,
            "users",
            None,
        );
        assert_eq!(f.hint.as_deref(), Some("fix the value of `email`"));
        let f = api_failure(
            status(500),
            br#"{"code":"internal","message":"boom","details":{"request_id":"r-1"}}"#,
            "",
            None,
        );
        assert!(f.hint.unwrap().contains("r-1"));
        let f = api_failure(
            status(403),
            br#"{"error":{"code":"forbidden","message":"no"}}"#,
            "grants",
            None,
        );
        assert_eq!((f.code.as_str(), f.message.as_str()), ("forbidden", "no"));
        assert!(f.hint.unwrap().contains("other than its requester"));
        let f = api_failure(
            status(400),
            br#"{"code":"invalid_input","message":"bad","details":{"field":"body","line":3,"column":9}}"#,
            "policies",
            None,
        );
        assert_eq!(
            f.hint.as_deref(),
            Some("fix the value of `body` at line 3, column 9")
        );
        assert_eq!(f.details["line"], 3);
        let f = api_failure(status(502), b"bad gateway", "", Some("r-2"));
        assert_eq!(f.code, "http_502");
        assert!(f.hint.unwrap().contains("r-2"));
    }

    #[test]
    fn rendering_redacts_and_sanitizes() {
        let f = api_failure(
            status(409),
            br#"{"code":"conflict","message":"token enc_pat_x \u001b[31mtaken"}"#,
            "",
            None,
        );
        let text = f.render(&["enc_pat_x", "", "taken"]);
        assert!(redact("a taken b", &["take"]) == "a taken b");
        assert!(text.starts_with("error: token [redacted] ?[31mtaken (conflict)\nhint: "));
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn transport_classification() {
        let base = TransportSignal {
            server: "https://h:1",
            detail: "x",
            tls: None,
            refused: true,
            timeout: false,
            text: "",
            builder: false,
        };
        let f = classify_transport(base);
        assert_eq!((f.code.as_str(), f.exit_code()), ("connection_refused", 4));
        assert_eq!(
            f.hint.as_deref(),
            Some("is the server running at https://h:1?")
        );
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let f = classify_transport(TransportSignal {
            tls: Some(&tls),
            refused: false,
            ..base
        });
        assert_eq!((f.code.as_str(), f.exit_code()), ("tls_unknown_issuer", 4));
        assert!(f.hint.unwrap().contains("--ca FILE"));
        let f = classify_transport(TransportSignal {
            builder: true,
            ..base
        });
        assert_eq!(f.exit_code(), 1);
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            parse_server_url("https://h:8443/").unwrap(),
            "https://h:8443"
        );
        assert_eq!(
            parse_server_url("https://h/enclave/").unwrap(),
            "https://h/enclave"
        );
        assert_eq!(
            parse_server_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "http://example.com",
            "localhost:8443",
            "https://u:p@h/",
            "https://h/?q",
            "nope",
        ] {
            assert_eq!(parse_server_url(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn urls_encode_segments_and_reject_dots() {
        let c = ApiClient::new("https://h:1/base", None, None);
        // Building may fail on hosts without system roots; the URL logic is what is tested.
        let Ok(c) = c else { return };
        let url = c.url(&["users", "a/b c"]).unwrap();
        assert_eq!(url.as_str(), "https://h:1/base/api/v1/users/a%2Fb%20c");
        assert_eq!(c.url(&["users", ".."]).unwrap_err().exit_code(), 2);
        assert_eq!(c.url(&["users", ""]).unwrap_err().exit_code(), 2);
    }

    fn pages(total: usize) -> impl Fn(usize, Option<String>) -> Page {
        move |limit, after| {
            let start: usize = after.map_or(0, |a| a.parse().unwrap());
            let end = (start + limit).min(total);
            Page {
                items: (start..end).map(|i| Value::from(i as u64)).collect(),
                next: (end < total).then(|| end.to_string()),
            }
        }
    }

    #[tokio::test]
    async fn pagination_follows_cursor() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let source = pages(450);
        let got = collect_pages(None, |limit, after| {
            calls.lock().unwrap().push((limit, after.clone()));
            let page = source(limit, after);
            async move { Ok(page) }
        })
        .await
        .unwrap();
        assert_eq!(got.len(), 450);
        assert_eq!(got[449], Value::from(449u64));
        assert_eq!(
            *calls.lock().unwrap(),
            vec![
                (200, None),
                (200, Some("200".into())),
                (200, Some("400".into()))
            ]
        );
    }

    #[tokio::test]
    async fn pagination_stops_at_limit() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let source = pages(1000);
        let got = collect_pages(Some(250), |limit, after| {
            calls.lock().unwrap().push(limit);
            let page = source(limit, after);
            async move { Ok(page) }
        })
        .await
        .unwrap();
        assert_eq!(got.len(), 250);
        assert_eq!(*calls.lock().unwrap(), vec![200, 50]);
    }

    #[tokio::test]
    async fn pagination_rejects_repeated_cursor_and_passes_errors() {
        let err = collect_pages(None, |_, _| async {
            Ok(Page {
                items: vec![Value::Null],
                next: Some("same".into()),
            })
        })
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 4);
        let err = collect_pages(None, |_, _| async {
            Err::<Page, _>(Failure::usage("x", None))
        })
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn ca_parsing() {
        assert_eq!(parse_ca(b"hello").unwrap_err().code, "invalid_ca");
        assert!(parse_ca(b"").is_err());
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        assert_eq!(parse_ca(key.cert.pem().as_bytes()).unwrap().len(), 1);
    }
}
