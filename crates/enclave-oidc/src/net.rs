//! HTTP hygiene: which URLs and addresses Enclave talks to, a resolver that refuses non-public
//! addresses (and so pins the connection to the addresses it checked), no redirects, timeouts,
//! and response size limits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::error::{sanitize, Error};

/// Largest response Enclave reads from a provider (discovery, JWKS, token, userinfo).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout for a whole request, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, fc00::/7),
/// link-local (169.254/16 with the metadata address 169.254.169.254, fe80::/10), CGNAT
/// (100.64/10), unspecified, broadcast, multicast, documentation, benchmarking, reserved, or an
/// IPv6 form that embeds an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", unspecified
        || a == 10 // RFC 1918
        || (a == 100 && (64..=127).contains(&b)) // CGNAT 100.64/10
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..=31).contains(&b)) // RFC 1918
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // RFC 1918
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // Only global unicast (2000::/3) can be public.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    // 2001::/23 (IETF protocol assignments, Teredo), 2001:db8::/32 (documentation),
    // 2002::/16 (6to4), 3fff::/20 (documentation).
    let refused = (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8))
        || s[0] == 0x2002
        || (s[0] == 0x3fff && s[1] < 0x1000);
    !refused
}

/// Whether `ip` is loopback (127/8, ::1, or ::ffff:127.x).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn redacted(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    sanitize(&shown)
}

/// Parses and checks a provider URL: https only, or http on loopback (an IP literal or
/// `localhost`) when the provider is internal; no user info; a host; IP literals must be public
/// unless internal. Host names are checked when resolved (see [`GuardedResolver`]).
pub fn check_url(what: &'static str, raw: &str, internal: bool) -> Result<Url, Error> {
    let url = Url::parse(raw).map_err(|_| Error::UrlNotAllowed {
        what,
        url: sanitize(raw),
        reason: "it is not a valid absolute URL",
    })?;
    let refuse = |reason| Error::UrlNotAllowed {
        what,
        url: redacted(&url),
        reason,
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it must not contain user info"));
    }
    let host = url.host().ok_or_else(|| refuse("it has no host"))?;
    let literal: Option<IpAddr> = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    };
    match url.scheme() {
        "https" => {}
        "http" => {
            let on_loopback = match literal {
                Some(ip) => is_loopback(ip),
                None => url.host_str() == Some("localhost"),
            };
            if !(internal && on_loopback) {
                return Err(refuse(
                    "it must use https (http only on loopback for a provider marked internal)",
                ));
            }
        }
        _ => return Err(refuse("it must use https")),
    }
    if let Some(ip) = literal {
        if !internal && !is_public_ip(ip) {
            return Err(Error::AddressNotAllowed {
                host: sanitize(url.host_str().unwrap_or("")),
                addr: ip,
            });
        }
    }
    Ok(url)
}

/// The resolver's refusal, found again in the error chain of a failed request.
#[derive(Debug)]
struct Refused {
    host: String,
    addr: Option<IpAddr>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Some(addr) => write!(f, "{} resolves to the non-public address {addr}", self.host),
            None => write!(f, "{} could not be resolved", self.host),
        }
    }
}

impl std::error::Error for Refused {}

/// Resolves host names for the HTTP client and refuses every name with a non-public address
/// (unless the provider is internal). The connection is made to exactly the addresses checked
/// here, so a DNS answer that changes between check and connect (rebinding) cannot slip through.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    internal: bool,
}

impl GuardedResolver {
    /// A resolver; `internal` allows non-public addresses.
    pub fn new(internal: bool) -> Self {
        Self { internal }
    }

    /// Resolves `host` and checks every address.
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, Error> {
        let refused = |addr| Refused {
            host: sanitize(host),
            addr,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|_| refused(None))
            .map(|it| it.collect())
            .map_err(refused_to_error)?;
        if addrs.is_empty() {
            return Err(refused_to_error(refused(None)));
        }
        if !self.internal {
            if let Some(bad) = addrs.iter().find(|a| !is_public_ip(a.ip())) {
                return Err(refused_to_error(refused(Some(bad.ip()))));
            }
        }
        Ok(addrs)
    }
}

fn refused_to_error(r: Refused) -> Error {
    match r.addr {
        Some(addr) => Error::AddressNotAllowed { host: r.host, addr },
        None => Error::Resolve { host: r.host },
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = *self;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            match this.lookup(&host).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(Error::AddressNotAllowed { host, addr }) => Err(Box::new(Refused {
                    host,
                    addr: Some(addr),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
                Err(_) => Err(Box::new(Refused {
                    host: sanitize(&host),
                    addr: None,
                })
                    as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// The HTTP client for one provider: no redirects, no proxy, timeouts, guarded resolver.
pub fn client(internal: bool) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .dns_resolver(Arc::new(GuardedResolver::new(internal)))
        .user_agent("Enclave-OIDC/1")
        .build()
        .map_err(|_| Error::Config("the HTTP client could not be built".into()))
}

/// Maps a failed request to an error without the URL or any secret.
pub fn request_error(what: &'static str, err: &reqwest::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return refused_to_error(Refused {
                host: r.host.clone(),
                addr: r.addr,
            });
        }
        source = e.source();
    }
    let detail = if err.is_timeout() {
        "the request timed out"
    } else if err.is_connect() {
        "the connection failed"
    } else if err.is_redirect() {
        "it answered with a redirect"
    } else {
        "the request failed"
    };
    Error::Unreachable { what, detail }
}

/// Sends `req`, refuses redirects and non-success statuses (except those listed in
/// `accept_status`), and reads at most [`MAX_RESPONSE_BYTES`] of the body.
pub async fn send(
    what: &'static str,
    req: reqwest::RequestBuilder,
    accept_status: &[u16],
) -> Result<(u16, Option<String>, Vec<u8>), Error> {
    let mut resp = req.send().await.map_err(|e| request_error(what, &e))?;
    let status = resp.status().as_u16();
    if !(resp.status().is_success() || accept_status.contains(&status)) {
        return Err(Error::HttpStatus { what, status });
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase());
    if resp
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(Error::TooLarge {
            what,
            limit: MAX_RESPONSE_BYTES,
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| request_error(what, &e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Error::TooLarge {
                what,
                limit: MAX_RESPONSE_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, content_type, body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for s in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "fec0::1",
            "3fff:0fff::1",
        ] {
            assert!(!is_public_ip(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "3fff:1000::1",
        ] {
            assert!(is_public_ip(ip(s)), "{s} must be allowed");
        }
    }

    #[test]
    fn urls_need_https_and_public_literals() {
        assert!(check_url("issuer", "https://login.example.com/realm", false).is_ok());
        for bad in [
            "http://login.example.com",
            "ftp://login.example.com",
            "https://user:pw@login.example.com",
            "not a url",
            "https://",
        ] {
            let err = check_url("issuer", bad, false).unwrap_err();
            assert!(matches!(err, Error::UrlNotAllowed { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
        for bad in [
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.5",
            "https://[::1]:8443",
            "https://[fd00::1]",
            "https://100.64.1.1",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            let err = check_url("issuer", bad, false).unwrap_err();
            assert!(
                matches!(err, Error::AddressNotAllowed { .. }),
                "{bad}: {err}"
            );
        }
        // http only on loopback and only when internal.
        assert!(check_url("issuer", "http://127.0.0.1:8080", true).is_ok());
        assert!(check_url("issuer", "http://[::1]:8080", true).is_ok());
        assert!(check_url("issuer", "http://localhost:8080", true).is_ok());
        assert!(check_url("issuer", "http://127.0.0.1:8080", false).is_err());
        assert!(check_url("issuer", "http://10.0.0.5", true).is_err());
        assert!(check_url("issuer", "https://10.0.0.5", true).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_loopback_names_unless_internal() {
        let err = GuardedResolver::new(false)
            .lookup("localhost")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AddressNotAllowed { .. }), "{err}");
        let ok = GuardedResolver::new(true)
            .lookup("localhost")
            .await
            .unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback()));
    }
}
