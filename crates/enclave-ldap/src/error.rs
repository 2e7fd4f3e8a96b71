//! The error type: secret-free messages that say what to do.

/// Everything that can go wrong talking to a directory.
///
/// No message contains a password (the user's or the service account's); DNs and the
/// directory's own diagnostic text are included because they are what an admin needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work; the message names the field to fix.
    #[error("LDAP configuration is invalid: {0}")]
    InvalidConfig(String),
    /// A plain `ldap://` URL without StartTLS and without `allow_plain`.
    #[error(
        "plain ldap:// would send passwords unencrypted: use an ldaps:// URL, set starttls, \
         or set allow_plain only for a directory reached over a trusted local link"
    )]
    PlainRefused,
    /// The password is empty; refused before any network traffic.
    #[error(
        "empty password refused: an empty LDAP simple bind is an unauthenticated bind \
         that many directories accept"
    )]
    EmptyPassword,
    /// The password is longer than the limit; refused before any network traffic.
    #[error("password refused: longer than {0} bytes")]
    PasswordTooLong(usize),
    /// The username is empty, too long or contains NUL.
    #[error("invalid username: {0}")]
    InvalidUsername(&'static str),
    /// Unknown user or wrong password (deliberately the same answer).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The account exists but the directory marks it disabled (`disabled_filter`, or
    /// Active Directory's bind diagnostic `data 533`).
    #[error("account {dn} is disabled in the directory")]
    AccountDisabled {
        /// DN of the disabled entry.
        dn: String,
    },
    /// The username matches more than one entry under `user_base`.
    #[error(
        "the username matches more than one entry under {user_base}; make user_filter or \
         user_base select exactly one entry per username"
    )]
    Ambiguous {
        /// The configured user search base.
        user_base: String,
    },
    /// The directory cannot be reached, dropped the connection, did not answer in time,
    /// or said it is busy/unavailable.
    #[error("directory {url} is unavailable: {reason}; check that it is running and reachable")]
    Unavailable {
        /// The configured URL.
        url: String,
        /// What failed (connection refused, timeout, ...).
        reason: String,
    },
    /// The TLS handshake failed (untrusted certificate, wrong name, StartTLS refused).
    #[error(
        "TLS with directory {url} failed: {reason}; check ca_pem (the CA that signed the \
         directory's certificate) and that the certificate names the host in the URL"
    )]
    Tls {
        /// The configured URL.
        url: String,
        /// The TLS error.
        reason: String,
    },
    /// The directory refused the service account's bind.
    #[error("the directory refused the service account {bind_dn}: {reason}; check bind_dn and bind_password")]
    ServiceBind {
        /// The configured service account DN.
        bind_dn: String,
        /// The directory's answer.
        reason: String,
    },
    /// Group resolution hit `max_groups` or `max_group_depth`.
    #[error(
        "groups of {dn} exceed the limit ({limit}); flatten the nesting or raise \
         max_groups / max_group_depth"
    )]
    GroupLimit {
        /// DN of the user whose groups were being resolved.
        dn: String,
        /// Which limit, in words.
        limit: String,
    },
    /// Any other answer from the directory (missing base DN, insufficient access, ...).
    #[error("directory error during {op}: result code {code}: {message}")]
    Directory {
        /// The operation (`user search`, `group search`, `bind`, ...).
        op: &'static str,
        /// LDAP result code (RFC 4511).
        code: u32,
        /// The directory's diagnostic text, with a hint where one is known.
        message: String,
    },
}

impl Error {
    /// True for the outcomes the user should see as "invalid credentials": unknown user,
    /// wrong password, empty/oversized password, malformed username, disabled account.
    /// The server still audits the distinct variant.
    pub fn is_credentials_failure(&self) -> bool {
        matches!(
            self,
            Error::InvalidCredentials
                | Error::AccountDisabled { .. }
                | Error::EmptyPassword
                | Error::PasswordTooLong(_)
                | Error::InvalidUsername(_)
        )
    }

    /// True when the connection it happened on is no longer usable.
    pub(crate) fn is_connection_failure(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Tls { .. })
    }
}

/// Map an ldap3 error to ours. `op` names the operation for the message.
pub(crate) fn from_ldap(url: &str, op: &'static str, e: ldap3::LdapError) -> Error {
    use ldap3::LdapError as L;
    match e {
        L::Io { source } => io_error(url, source),
        L::Rustls { source } => Error::Tls {
            url: url.to_owned(),
            reason: source.to_string(),
        },
        L::DNSName { source } => Error::Tls {
            url: url.to_owned(),
            reason: source.to_string(),
        },
        L::LdapResult { result } => from_result(url, op, result.rc, &result.text),
        L::Timeout { .. } => Error::Unavailable {
            url: url.to_owned(),
            reason: format!("no answer during {op} within the timeout"),
        },
        L::OpSend { .. }
        | L::ResultRecv { .. }
        | L::IdScrubSend { .. }
        | L::MiscSend { .. }
        | L::EndOfStream => Error::Unavailable {
            url: url.to_owned(),
            reason: format!("connection closed during {op}"),
        },
        L::UrlParsing { source } => Error::InvalidConfig(format!("url: {source}")),
        L::UnknownScheme(s) => Error::InvalidConfig(format!("url: unknown scheme {s}")),
        L::FilterParsing => Error::InvalidConfig(format!("a search filter does not parse ({op})")),
        other => Error::Directory {
            op,
            code: 80,
            message: other.to_string(),
        },
    }
}

fn io_error(url: &str, source: std::io::Error) -> Error {
    // tokio-rustls reports handshake failures as io::Error wrapping rustls::Error.
    if let Some(tls) = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return Error::Tls {
            url: url.to_owned(),
            reason: tls.to_string(),
        };
    }
    Error::Unavailable {
        url: url.to_owned(),
        reason: source.to_string(),
    }
}

/// Map a non-success LDAP result code.
pub(crate) fn from_result(url: &str, op: &'static str, rc: u32, text: &str) -> Error {
    match rc {
        // busy, unavailable
        51 | 52 => Error::Unavailable {
            url: url.to_owned(),
            reason: format!("result code {rc} during {op}: {text}"),
        },
        // confidentialityRequired
        13 => Error::Directory {
            op,
            code: rc,
            message: format!("{text} (the directory requires TLS: use ldaps:// or starttls)"),
        },
        32 => Error::Directory {
            op,
            code: rc,
            message: format!("no such object: {text} (check user_base / group_base)"),
        },
        50 => Error::Directory {
            op,
            code: rc,
            message: format!(
                "insufficient access: {text} (the service account needs read access to users and groups)"
            ),
        },
        _ => Error::Directory { op, code: rc, message: text.to_owned() },
    }
}
