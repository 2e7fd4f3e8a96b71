//! Directory configuration and its validation (no IO apart from reading the platform CA roots).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::Error;

/// Longest accepted username, in bytes.
pub const MAX_USERNAME_LEN: usize = 256;
/// Longest accepted password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Largest accepted pool size.
pub const MAX_POOL_SIZE: usize = 64;

/// A secret string: zeroized on drop, redacted in `Debug`.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wrap a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(Zeroizing::new(secret.into()))
    }

    /// The secret itself; use only to hand it to the directory.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString::new(s)
    }
}

/// How group membership (and nesting) is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NestedGroups {
    /// Direct groups from the user's `member_of_attr` (e.g. `memberOf`) when present,
    /// otherwise a `(member=<user dn>)` search under `group_base`; then the closure through
    /// groups that are members of groups, level by level, bounded by `max_group_depth`
    /// and `max_groups`, cycle-safe. Works with OpenLDAP, 389-ds, FreeIPA and AD.
    #[default]
    MemberOf,
    /// Active Directory only: one search with the LDAP_MATCHING_RULE_IN_CHAIN rule
    /// `(member:1.2.840.113556.1.4.1941:=<user dn>)`, which AD resolves server-side.
    AdInChain,
}

/// Configuration of one directory.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `ldaps://host[:port]` or `ldap://host[:port]` (the latter with `starttls` or `allow_plain`).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (never falls back to plain).
    pub starttls: bool,
    /// Accept plain `ldap://` without TLS. Passwords then cross the network in clear text.
    pub allow_plain: bool,
    /// PEM CA certificate(s) to trust for the directory; `None` trusts the platform roots.
    pub ca_pem: Option<String>,
    /// DN of the service account used for searches.
    pub bind_dn: String,
    /// Password of the service account.
    pub bind_password: SecretString,
    /// Where users are searched (subtree).
    pub user_base: String,
    /// User filter template; `{username}` is replaced by the RFC 4515-escaped username.
    pub user_filter: String,
    /// Where groups are searched (subtree).
    pub group_base: String,
    /// Filter selecting group entries, e.g. `(objectClass=groupOfNames)`.
    pub group_filter: String,
    /// Attribute holding the login name (e.g. `uid`, `sAMAccountName`).
    pub username_attr: String,
    /// Attribute holding the email address.
    pub email_attr: String,
    /// Attribute holding the display name.
    pub name_attr: String,
    /// Attribute holding a group's name (e.g. `cn`).
    pub group_name_attr: String,
    /// Attribute on the user listing its groups (e.g. `memberOf`); `None` always searches
    /// `(member=<user dn>)` under `group_base`.
    pub member_of_attr: Option<String>,
    /// How nested groups are resolved.
    pub nested: NestedGroups,
    /// Deepest group nesting followed (levels above the direct groups).
    pub max_group_depth: usize,
    /// Most groups one user may be in (after nesting).
    pub max_groups: usize,
    /// Filter matching disabled accounts, e.g. AD `(userAccountControl:1.2.840.113556.1.4.803:=2)`.
    pub disabled_filter: Option<String>,
    /// Number of pooled service connections (and, separately, of pooled connections used
    /// only for user binds). `0` disables pooling: every call connects, binds and closes.
    pub pool_size: usize,
    /// Connect timeout and per-operation timeout.
    pub timeout: Duration,
}

impl LdapConfig {
    /// A configuration for OpenLDAP-like directories (`inetOrgPerson` users with `uid`,
    /// `groupOfNames` groups, the `memberOf` overlay); adjust the public fields as needed.
    pub fn new(
        url: impl Into<String>,
        bind_dn: impl Into<String>,
        bind_password: impl Into<SecretString>,
        user_base: impl Into<String>,
        group_base: impl Into<String>,
    ) -> Self {
        LdapConfig {
            url: url.into(),
            starttls: false,
            allow_plain: false,
            ca_pem: None,
            bind_dn: bind_dn.into(),
            bind_password: bind_password.into(),
            user_base: user_base.into(),
            user_filter: "(&(objectClass=inetOrgPerson)(uid={username}))".to_owned(),
            group_base: group_base.into(),
            group_filter: "(objectClass=groupOfNames)".to_owned(),
            username_attr: "uid".to_owned(),
            email_attr: "mail".to_owned(),
            name_attr: "displayName".to_owned(),
            group_name_attr: "cn".to_owned(),
            member_of_attr: Some("memberOf".to_owned()),
            nested: NestedGroups::MemberOf,
            max_group_depth: 16,
            max_groups: 1000,
            disabled_filter: None,
            pool_size: 4,
            timeout: Duration::from_secs(5),
        }
    }

    /// A configuration for Active Directory: `sAMAccountName` logins, server-side nesting
    /// (`AdInChain`) and the `ACCOUNTDISABLE` bit of `userAccountControl`.
    pub fn active_directory(
        url: impl Into<String>,
        bind_dn: impl Into<String>,
        bind_password: impl Into<SecretString>,
        base: impl Into<String>,
    ) -> Self {
        let base = base.into();
        LdapConfig {
            user_filter: "(&(objectCategory=person)(objectClass=user)(sAMAccountName={username}))"
                .to_owned(),
            group_filter: "(objectClass=group)".to_owned(),
            username_attr: "sAMAccountName".to_owned(),
            nested: NestedGroups::AdInChain,
            disabled_filter: Some("(userAccountControl:1.2.840.113556.1.4.803:=2)".to_owned()),
            ..LdapConfig::new(url, bind_dn, bind_password, base.clone(), base)
        }
    }
}

/// Transport security chosen from the URL and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Ldaps,
    StartTls,
    Plain,
}

/// A validated configuration.
#[derive(Debug)]
pub(crate) struct Checked {
    pub cfg: LdapConfig,
    pub transport: Transport,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Validate `cfg` and build the TLS client configuration.
pub(crate) fn check(cfg: LdapConfig) -> Result<Checked, Error> {
    let transport = check_url(&cfg.url, cfg.starttls, cfg.allow_plain)?;
    if cfg.bind_dn.trim().is_empty() {
        return Err(Error::InvalidConfig(
            "bind_dn is empty: a service account is required (anonymous search is not supported)"
                .into(),
        ));
    }
    if cfg.bind_password.expose().is_empty() {
        return Err(Error::InvalidConfig(
            "bind_password is empty: an empty simple bind is an unauthenticated bind".into(),
        ));
    }
    for (name, base) in [
        ("user_base", &cfg.user_base),
        ("group_base", &cfg.group_base),
    ] {
        if base.trim().is_empty() {
            return Err(Error::InvalidConfig(format!("{name} is empty")));
        }
    }
    if !cfg.user_filter.contains("{username}") {
        return Err(Error::InvalidConfig(
            "user_filter must contain {username}, e.g. (&(objectClass=inetOrgPerson)(uid={username}))"
                .into(),
        ));
    }
    check_filter("user_filter", &cfg.user_filter.replace("{username}", "x"))?;
    check_filter("group_filter", &cfg.group_filter)?;
    if let Some(d) = &cfg.disabled_filter {
        check_filter("disabled_filter", d)?;
    }
    let mut attrs = vec![
        ("username_attr", cfg.username_attr.as_str()),
        ("email_attr", cfg.email_attr.as_str()),
        ("name_attr", cfg.name_attr.as_str()),
        ("group_name_attr", cfg.group_name_attr.as_str()),
    ];
    if let Some(m) = &cfg.member_of_attr {
        attrs.push(("member_of_attr", m.as_str()));
    }
    for (name, a) in attrs {
        if a.is_empty()
            || a.len() > 128
            || !a
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b';')
        {
            return Err(Error::InvalidConfig(format!(
                "{name} {a:?} is not an attribute name (letters, digits, '-', '.', ';')"
            )));
        }
    }
    if cfg.pool_size > MAX_POOL_SIZE {
        return Err(Error::InvalidConfig(format!(
            "pool_size is above {MAX_POOL_SIZE}"
        )));
    }
    if cfg.timeout.is_zero() || cfg.timeout > Duration::from_secs(300) {
        return Err(Error::InvalidConfig(
            "timeout must be between 1 ms and 300 s".into(),
        ));
    }
    if cfg.max_group_depth == 0 || cfg.max_group_depth > 64 {
        return Err(Error::InvalidConfig(
            "max_group_depth must be between 1 and 64".into(),
        ));
    }
    if cfg.max_groups == 0 || cfg.max_groups > 100_000 {
        return Err(Error::InvalidConfig(
            "max_groups must be between 1 and 100000".into(),
        ));
    }
    let tls = match transport {
        Transport::Plain => None,
        Transport::Ldaps | Transport::StartTls => Some(tls_config(cfg.ca_pem.as_deref())?),
    };
    Ok(Checked {
        cfg,
        transport,
        tls,
    })
}

fn check_filter(name: &str, filter: &str) -> Result<(), Error> {
    if filter.len() > 4096 {
        return Err(Error::InvalidConfig(format!(
            "{name} is longer than 4096 bytes"
        )));
    }
    if !(filter.starts_with('(') && filter.ends_with(')')) || ldap3::parse_filter(filter).is_err() {
        return Err(Error::InvalidConfig(format!(
            "{name} {filter:?} is not an LDAP filter (RFC 4515), e.g. (objectClass=person)"
        )));
    }
    Ok(())
}

/// Decide the transport from the URL; refuse plain LDAP unless explicitly allowed.
pub(crate) fn check_url(url: &str, starttls: bool, allow_plain: bool) -> Result<Transport, Error> {
    let lower = url.to_ascii_lowercase();
    let (tls, rest) = if let Some(rest) = lower.strip_prefix("ldaps://") {
        (true, rest)
    } else if let Some(rest) = lower.strip_prefix("ldap://") {
        (false, rest)
    } else {
        return Err(Error::InvalidConfig(format!(
            "url {url:?} must start with ldaps:// or ldap://"
        )));
    };
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.is_empty() || hostport.len() > 300 || hostport.contains(['/', '?', '@', '#', ' ']) {
        return Err(Error::InvalidConfig(format!(
            "url {url:?} must be scheme://host[:port] with nothing after the port"
        )));
    }
    match (tls, starttls) {
        (true, true) => Err(Error::InvalidConfig(
            "starttls is for ldap:// URLs; an ldaps:// URL is already TLS".into(),
        )),
        (true, false) => Ok(Transport::Ldaps),
        (false, true) => Ok(Transport::StartTls),
        (false, false) if allow_plain => Ok(Transport::Plain),
        (false, false) => Err(Error::PlainRefused),
    }
}

fn tls_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| {
                    Error::InvalidConfig(format!("ca_pem is not PEM certificates: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::InvalidConfig(format!("ca_pem holds an unusable certificate: {e}"))
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(Error::InvalidConfig(
                    "ca_pem holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
                ));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // Unparseable platform certificates are skipped, as every TLS client does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(Error::InvalidConfig(
                    "no platform CA certificates found: set ca_pem to the directory's CA certificate"
                        .into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
