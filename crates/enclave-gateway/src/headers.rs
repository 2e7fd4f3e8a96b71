//! Header rewriting between the client and the notebook server. Pure and unit-tested.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Uri, Version};

/// Headers that never cross the gateway in either direction (hop-by-hop, RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Request headers from the client that the notebook server never sees: credentials meant
/// for Enclave, forwarding claims the client could forge, and `Expect` (the gateway's own
/// server answers `100-continue`).
const CLIENT_ONLY: [HeaderName; 8] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::EXPECT,
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-real-ip"),
];

/// Websocket handshake headers the gateway sets itself towards the notebook server (it
/// negotiates no extensions: frames are inspected, so they must not be compressed).
const WS_HANDSHAKE: [HeaderName; 4] = [
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

/// Whether the comma-separated header `name` lists `token` (case-insensitive).
pub(crate) fn lists_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Whether a request asks for a websocket (`GET`, HTTP/1.1, `Connection: upgrade`,
/// `Upgrade: websocket`).
pub(crate) fn is_websocket_upgrade(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    method == Method::GET
        && version == Version::HTTP_11
        && lists_token(headers, &header::CONNECTION, "upgrade")
        && lists_token(headers, &header::UPGRADE, "websocket")
}

/// Removes the hop-by-hop headers: the fixed list, `Proxy-*`, and those `Connection` names.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut named: Vec<HeaderName> = Vec::new();
    for v in headers.get_all(header::CONNECTION) {
        for t in v.to_str().unwrap_or("").split(',') {
            let t = t.trim();
            if !t.is_empty()
                && !t.eq_ignore_ascii_case("close")
                && !t.eq_ignore_ascii_case("keep-alive")
                && !t.eq_ignore_ascii_case("upgrade")
            {
                if let Ok(name) = HeaderName::from_bytes(t.as_bytes()) {
                    named.push(name);
                }
            }
        }
    }
    if headers.keys().any(|k| k.as_str().starts_with("proxy-")) {
        named.extend(
            headers
                .keys()
                .filter(|k| k.as_str().starts_with("proxy-"))
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether a cookie name belongs to Enclave: it starts (after an optional `__Host-` or
/// `__Secure-` prefix) with one of `prefixes`, compared case-insensitively.
pub(crate) fn is_stripped_cookie(name: &str, prefixes: &[Box<str>]) -> bool {
    let name = name.trim();
    let starts = |s: &str, p: &str| {
        s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    let bare = ["__Host-", "__Secure-"]
        .into_iter()
        .find(|p| starts(name, p))
        .map_or(name, |p| &name[p.len()..]);
    prefixes.iter().any(|p| starts(name, p) || starts(bare, p))
}

/// Rewrites the `Cookie` header(s): Enclave's cookies removed, several headers joined into
/// one (HTTP/2 clients split them; HTTP/1.1 wants one). Untouched when there is nothing to do.
fn filter_cookies(headers: &mut HeaderMap, prefixes: &[Box<str>]) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let Some(first) = values.next() else {
        return;
    };
    let single = values.next().is_none();
    let keep = |pair: &&str| {
        let name = pair.split('=').next().unwrap_or("");
        !pair.trim().is_empty() && !is_stripped_cookie(name, prefixes)
    };
    if single {
        let ok = first.to_str().is_ok_and(|s| {
            s.split(';')
                .all(|pair| pair.trim().is_empty() || keep(&pair))
        });
        if ok {
            return;
        }
    }
    let mut joined = String::new();
    for v in headers.get_all(header::COOKIE) {
        // A value that is not text cannot be parsed into cookies; it is dropped.
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';').filter(keep) {
            if !joined.is_empty() {
                joined.push_str("; ");
            }
            joined.push_str(pair.trim());
        }
    }
    headers.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&joined) {
        if !joined.is_empty() {
            headers.insert(header::COOKIE, v);
        }
    }
}

/// What a request to the notebook server carries: everything the client sent except
/// hop-by-hop headers, Enclave's credentials and cookies and forwarding claims; plus
/// `Authorization: token …` and, for HTTP/2 clients, a `Host` from the URI.
pub(crate) fn prepare_request(
    headers: &mut HeaderMap,
    uri: &Uri,
    prefixes: &[Box<str>],
    authorization: &HeaderValue,
    websocket: bool,
) {
    remove_hop_by_hop(headers);
    for name in CLIENT_ONLY {
        headers.remove(name);
    }
    if websocket {
        for name in WS_HANDSHAKE {
            headers.remove(name);
        }
    }
    filter_cookies(headers, prefixes);
    if !headers.contains_key(header::HOST) {
        if let Some(host) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(header::HOST, host);
        }
    }
    headers.insert(header::AUTHORIZATION, authorization.clone());
}

/// What the client gets back: the notebook server's headers except hop-by-hop ones and
/// `Set-Cookie`s for Enclave's cookie names (a notebook must not plant or clear them).
pub(crate) fn prepare_response(headers: &mut HeaderMap, prefixes: &[Box<str>]) {
    remove_hop_by_hop(headers);
    if headers.contains_key(header::SET_COOKIE) {
        let enclave = |v: &HeaderValue| {
            let name = v.as_bytes().split(|&b| b == b'=').next().unwrap_or(&[]);
            is_stripped_cookie(&String::from_utf8_lossy(name), prefixes)
        };
        if headers.get_all(header::SET_COOKIE).iter().any(enclave) {
            let kept: Vec<HeaderValue> = headers
                .get_all(header::SET_COOKIE)
                .iter()
                .filter(|v| !enclave(v))
                .cloned()
                .collect();
            headers.remove(header::SET_COOKIE);
            for v in kept {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }
}

/// The request target in origin form (`/path?query`), as HTTP/1.1 servers expect it, when
/// `uri` is not in that form already.
pub(crate) fn origin_form(uri: &Uri) -> Option<Uri> {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return None;
    }
    Some(
        uri.path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone())),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn prefixes() -> Vec<Box<str>> {
        vec!["enclave_".into()]
    }

    #[test]
    fn request_rewrite() {
        let mut h = map(&[
            ("host", "enclave.example:8443"),
            ("origin", "https://enclave.example:8443"),
            ("authorization", "Bearer enclave-token"),
            ("proxy-authorization", "Basic x"),
            ("proxy-foo", "1"),
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-forwarded-for", "1.2.3.4"),
            ("expect", "100-continue"),
            (
                "cookie",
                "enclave_csrf=1; _xsrf=keep; __Host-enclave_session=s",
            ),
            ("cookie", "other=2"),
            ("accept", "*/*"),
        ]);
        let auth = HeaderValue::from_static("token t0k3n");
        prepare_request(&mut h, &Uri::from_static("/p/x"), &prefixes(), &auth, false);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["accept", "authorization", "cookie", "host", "origin"]
        );
        assert_eq!(h["authorization"], "token t0k3n");
        assert_eq!(h["cookie"], "_xsrf=keep; other=2");
        assert_eq!(h["host"], "enclave.example:8443");
        assert_eq!(h["origin"], "https://enclave.example:8443");
    }

    #[test]
    fn cookies_left_alone_when_clean() {
        let mut h = map(&[("cookie", "_xsrf=a;b=c")]);
        prepare_request(
            &mut h,
            &Uri::from_static("/"),
            &prefixes(),
            &HeaderValue::from_static("token x"),
            false,
        );
        assert_eq!(h["cookie"], "_xsrf=a;b=c");
        let mut h = map(&[("cookie", "enclave_session=a")]);
        prepare_request(
            &mut h,
            &Uri::from_static("/"),
            &prefixes(),
            &HeaderValue::from_static("token x"),
            false,
        );
        assert!(!h.contains_key("cookie"));
    }

    #[test]
    fn cookie_names() {
        let p = prefixes();
        assert!(is_stripped_cookie("enclave_session", &p));
        assert!(is_stripped_cookie(" __Host-enclave_session", &p));
        assert!(is_stripped_cookie("__secure-ENCLAVE_x", &p));
        assert!(!is_stripped_cookie("_xsrf", &p));
        assert!(!is_stripped_cookie("username-localhost-8888", &p));
        assert!(!is_stripped_cookie("", &p));
    }

    #[test]
    fn websocket_handshake_headers() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "abc"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-extensions", "permessage-deflate"),
            ("sec-websocket-protocol", "v1.kernel.websocket.jupyter.org"),
        ]);
        assert!(is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h));
        assert!(!is_websocket_upgrade(&Method::POST, Version::HTTP_11, &h));
        assert!(!is_websocket_upgrade(&Method::GET, Version::HTTP_2, &h));
        prepare_request(
            &mut h,
            &Uri::from_static("/"),
            &prefixes(),
            &HeaderValue::from_static("token x"),
            true,
        );
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "sec-websocket-protocol"]);
        let h = map(&[
            ("connection", "keep-alive, upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert!(is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h));
    }

    #[test]
    fn host_from_uri_for_http2_clients() {
        let mut h = HeaderMap::new();
        let uri = Uri::from_static("https://enclave.example/p/x?y=1");
        prepare_request(
            &mut h,
            &uri,
            &prefixes(),
            &HeaderValue::from_static("token x"),
            false,
        );
        assert_eq!(h["host"], "enclave.example");
        assert_eq!(origin_form(&uri).unwrap(), "/p/x?y=1");
        assert_eq!(origin_form(&Uri::from_static("/a?b")), None);
    }

    #[test]
    fn response_rewrite() {
        let mut h = map(&[
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("content-type", "text/html"),
            ("set-cookie", "_xsrf=2|abc; Path=/p/x/nb/y/"),
            (
                "set-cookie",
                "__Host-enclave_session=planted; Path=/; Secure",
            ),
            ("set-cookie", "username-x=1"),
        ]);
        prepare_response(&mut h, &prefixes());
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "set-cookie"]);
        let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["_xsrf=2|abc; Path=/p/x/nb/y/", "username-x=1"]);
    }
}
