//! Notebook subdomains (origin isolation): each notebook server gets its own origin,
//! `{name}--{project}.{domain}`, so code in one notebook's output runs on an origin that holds
//! no Enclave session and no other notebook's cookie. Pure: which host a request names, what a
//! notebook's host is, and where a handoff may lead.
//!
//! The host is a single DNS label under the domain (so one wildcard certificate `*.{domain}`
//! covers every notebook). Project and notebook names are slugs ([`crate::names::slug`]): they
//! never contain `--`, never start or end with `-`, so `{name}--{project}` splits one way only.

use crate::names;
use crate::notebooks::base_path;

/// Longest DNS label (RFC 1035).
pub const MAX_LABEL: usize = 63;

/// Longest notebook domain: a full label, a dot and the domain fit in a 253-character name.
pub const MAX_DOMAIN: usize = 253 - MAX_LABEL - 1;

/// What a request's `Host` names, for a server in subdomain mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// Not under the notebook domain: Enclave's own origin (API, console, handoff issuing).
    Main,
    /// A notebook server's own origin.
    Notebook {
        /// The project.
        project: String,
        /// The notebook server's name.
        name: String,
    },
    /// Under the notebook domain but no notebook's host (the domain itself, extra labels,
    /// uppercase, a trailing dot, a label that is not `{name}--{project}`): nothing is served.
    Unknown,
}

/// Checks a notebook domain from the configuration: a lowercase DNS name of at least two
/// labels (`nb.enclave.example`), no scheme, port, path or wildcard, at most [`MAX_DOMAIN`]
/// characters. The error says what is wrong.
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return Err(format!(
            "must be a DNS name of 1 to {MAX_DOMAIN} characters, like \"nb.enclave.example\""
        ));
    }
    if domain.contains("://") || domain.contains(['/', ':', '*', '@']) {
        return Err(
            "must be a bare DNS name like \"nb.enclave.example\": no scheme, port, path or wildcard"
                .into(),
        );
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(
            "must be a lowercase DNS name of at least two labels (letters, digits and '-'), like \"nb.enclave.example\""
                .into(),
        );
    }
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err("must be a DNS name, not an IP address".into());
    }
    Ok(())
}

/// The label of a notebook's host, `{name}--{project}`; `None` when the two names together
/// are too long for one DNS label (more than 61 characters).
pub fn label(project: &str, name: &str) -> Option<String> {
    let l = format!("{name}--{project}");
    (l.len() <= MAX_LABEL).then_some(l)
}

/// The host (without port) of a notebook's own origin, when its label fits.
pub fn host(domain: &str, project: &str, name: &str) -> Option<String> {
    label(project, name).map(|l| format!("{l}.{domain}"))
}

/// The origin of a notebook (`https://a--p.nb.example:8443`): `scheme` and `port` are those of
/// Enclave's own address (`None` port: the scheme's default).
pub fn origin(
    scheme: &str,
    port: Option<u16>,
    domain: &str,
    project: &str,
    name: &str,
) -> Option<String> {
    let h = host(domain, project, name)?;
    Some(match port {
        Some(p) => format!("{scheme}://{h}:{p}"),
        None => format!("{scheme}://{h}"),
    })
}

/// Classifies a `Host` header value (`host` or `host:port`) for a server whose notebook domain
/// is `domain`. Matching the domain ignores case, so no spelling of a notebook host ever
/// reaches Enclave's own origin; only the canonical lowercase form is served.
pub fn classify(host_header: &str, domain: &str) -> HostKind {
    let host = strip_port(host_header);
    let lower = host.to_ascii_lowercase();
    let bare = lower.strip_suffix('.').unwrap_or(&lower);
    if bare == domain {
        return HostKind::Unknown;
    }
    let Some(label) = bare
        .strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return HostKind::Main;
    };
    if host.ends_with('.') || host != lower || label.contains('.') {
        return HostKind::Unknown;
    }
    match parse_label(label) {
        Some((project, name)) => HostKind::Notebook { project, name },
        None => HostKind::Unknown,
    }
}

/// `(project, name)` of a label `{name}--{project}`, when both are valid names.
pub fn parse_label(label: &str) -> Option<(String, String)> {
    if label.len() > MAX_LABEL {
        return None;
    }
    let (name, project) = label.split_once("--")?;
    if names::slug("name", name).is_err() || names::slug("project", project).is_err() {
        return None;
    }
    Some((project.to_string(), name.to_string()))
}

/// The host part of a `Host` header value: without a `:port` (an IPv6 literal keeps its
/// brackets).
pub fn strip_port(host_header: &str) -> &str {
    if host_header.starts_with('[') {
        return match host_header.find(']') {
            Some(end) => &host_header[..=end],
            None => host_header,
        };
    }
    match host_header.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_header,
    }
}

/// Longest `next` path a handoff accepts.
pub const MAX_NEXT: usize = 2048;

/// Whether `next` is a place inside the notebook's own path that a handoff may send the
/// browser to: an absolute path under `/p/{project}/nb/{name}/`, printable ASCII, no `//`,
/// backslash, `..` segment or fragment, at most [`MAX_NEXT`] characters.
pub fn next_ok(next: &str, project: &str, name: &str) -> bool {
    next.len() <= MAX_NEXT
        && next.starts_with(&base_path(project, name))
        && next.bytes().all(|b| b.is_ascii_graphic())
        && !next.contains("//")
        && !next.contains('\\')
        && !next.contains('#')
        && !next
            .split(['/', '?'])
            .any(|seg| seg.to_ascii_lowercase().replace("%2e", ".") == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "nb.localhost";

    fn nb(project: &str, name: &str) -> HostKind {
        HostKind::Notebook {
            project: project.into(),
            name: name.into(),
        }
    }

    #[test]
    fn hosts_are_classified() {
        assert_eq!(classify("a1--b1.nb.localhost", D), nb("b1", "a1"));
        assert_eq!(classify("a1--b1.nb.localhost:8443", D), nb("b1", "a1"));
        assert_eq!(
            classify("explore--fraud-team.nb.localhost", D),
            nb("fraud-team", "explore")
        );
        // Enclave's own origin: anything not under the domain.
        for main in [
            "127.0.0.1:8443",
            "localhost",
            "enclave.example",
            "[::1]:8443",
            "a1--b1.nb.localhost.evil.example",
            "a1--b1.xnb.localhost",
            "nb.localhost.example",
            "",
        ] {
            assert_eq!(classify(main, D), HostKind::Main, "{main}");
        }
        // Under the domain but no notebook: never Enclave's origin, never served.
        for unknown in [
            "nb.localhost",
            "NB.LOCALHOST",
            "nb.localhost:8443",
            "A1--B1.nb.localhost",
            "a1--b1.NB.localhost",
            "a1--b1.nb.localhost.",
            "x.a1--b1.nb.localhost",
            "a1.nb.localhost",
            "a1---b1.nb.localhost",
            "a1--b1-.nb.localhost",
            "-a1--b1.nb.localhost",
            "a1--b1--c1.nb.localhost",
            "a_1--b1.nb.localhost",
            "1a--b1.nb.localhost",
            "--b1.nb.localhost",
            ".nb.localhost",
        ] {
            assert_eq!(classify(unknown, D), HostKind::Unknown, "{unknown}");
        }
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.example:8443"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("a.example:"), "a.example:");
        assert_eq!(strip_port("[::1]:8443"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("127.0.0.1:1"), "127.0.0.1");
    }

    #[test]
    fn labels_round_trip_and_long_ones_do_not_fit() {
        assert_eq!(label("fraud", "explore").as_deref(), Some("explore--fraud"));
        assert_eq!(
            parse_label("explore--fraud"),
            Some(("fraud".into(), "explore".into()))
        );
        let p = "p".repeat(40);
        let n = "n".repeat(21);
        assert_eq!(label(&p, &n).map(|l| l.len()), Some(63));
        assert_eq!(label(&p, &format!("{n}x")), None);
        assert_eq!(
            host(D, "fraud", "explore").as_deref(),
            Some("explore--fraud.nb.localhost")
        );
        assert_eq!(
            origin("https", Some(8443), D, "fraud", "explore").as_deref(),
            Some("https://explore--fraud.nb.localhost:8443")
        );
        assert_eq!(
            origin("https", None, D, "fraud", "explore").as_deref(),
            Some("https://explore--fraud.nb.localhost")
        );
        assert_eq!(parse_label(&"a".repeat(64)), None);
    }

    #[test]
    fn domains_are_checked() {
        for ok in ["nb.localhost", "nb.enclave.example", "x-1.y2.example"] {
            assert!(check_domain(ok).is_ok(), "{ok}");
        }
        let long = format!("{}.example", "a".repeat(MAX_DOMAIN));
        for bad in [
            "",
            "localhost",
            "https://nb.example",
            "nb.example:8443",
            "*.nb.example",
            "nb.example/",
            "NB.example",
            "nb..example",
            ".nb.example",
            "nb.example.",
            "-nb.example",
            "nb_x.example",
            "10.0.0.1",
            "user@nb.example",
            long.as_str(),
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_stays_inside_the_notebook() {
        for ok in [
            "/p/fraud/nb/explore/lab",
            "/p/fraud/nb/explore/",
            "/p/fraud/nb/explore/lab/tree/a.ipynb?reset",
        ] {
            assert!(next_ok(ok, "fraud", "explore"), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/p/fraud/nb/explore/",
            "/p/fraud/nb/other/lab",
            "/p/fraud/nb/explore",
            "/p/fraud/nb/explore/../../../api/v1/users",
            "/p/fraud/nb/explore/%2E%2E/x",
            "/p/fraud/nb/explore/.%2e/x",
            "/p/fraud/nb/explore//evil",
            "/p/fraud/nb/explore/\\evil",
            "/p/fraud/nb/explore/lab#x",
            "/p/fraud/nb/explore/a b",
            "/api/v1/users",
        ] {
            assert!(!next_ok(bad, "fraud", "explore"), "{bad}");
        }
        assert!(!next_ok(
            &format!("/p/fraud/nb/explore/{}", "a".repeat(MAX_NEXT)),
            "fraud",
            "explore"
        ));
    }
}
