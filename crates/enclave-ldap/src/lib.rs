//! LDAP / Active Directory login client for Enclave.
//!
//! A login is: a search for the user under `user_base` with the configured filter (the
//! username RFC 4515-escaped) on a pooled connection bound as the service account, exactly
//! one entry required, the `disabled_filter` evaluated on that entry, then a simple bind as
//! the user's DN on a *separate* connection that is only ever used for user binds (the
//! service connections never change identity), then the user's groups with their nesting.
//! Empty passwords are refused before any network traffic. Transport is LDAPS or StartTLS;
//! plain `ldap://` only with `allow_plain`. A directory that cannot be reached gives
//! [`Error::Unavailable`], never a fallback to anything weaker.

mod config;
mod error;
mod escape;
mod pool;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};

pub use config::{
    LdapConfig, NestedGroups, SecretString, MAX_PASSWORD_LEN, MAX_POOL_SIZE, MAX_USERNAME_LEN,
};
pub use error::Error;
pub use escape::{ad_in_chain_filter, escape_filter_value, user_search_filter};

use config::{Checked, Transport};
use error::{from_ldap, from_result};
use pool::Pool;

/// Most DNs put in one `(|(member=..)..)` filter while resolving nesting.
const MEMBER_FILTER_CHUNK: usize = 64;

/// A user as the directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The entry's DN.
    pub dn: String,
    /// The login name as stored in `username_attr` (the directory's spelling).
    pub username: String,
    /// `email_attr`, when set.
    pub email: Option<String>,
    /// `name_attr`, when set.
    pub name: Option<String>,
    /// Names (`group_name_attr`, e.g. `cn`) of every group the user is in, nesting
    /// included, sorted and deduplicated.
    pub groups: Vec<String>,
    /// DNs of the same groups, sorted.
    pub group_dns: Vec<String>,
    /// True when `disabled_filter` matches the entry (always false from `authenticate`,
    /// which refuses disabled accounts).
    pub disabled: bool,
}

/// One configured directory: validated configuration, TLS settings and connection pools.
/// Cheap to clone (shared state).
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    c: Checked,
    settings: LdapConnSettings,
    /// Connections bound as the service account: searches only.
    service: Pool,
    /// Connections used only for user binds: never searched on.
    binds: Pool,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.inner.c.cfg.url)
            .field("transport", &self.inner.c.transport)
            .field("pool_size", &self.inner.c.cfg.pool_size)
            .finish_non_exhaustive()
    }
}

/// A user entry found by the search.
struct Found {
    /// The username as given (used when the entry lacks `username_attr`).
    asked: String,
    entry: SearchEntry,
    disabled: bool,
}

impl Directory {
    /// Validate `cfg` and prepare the TLS configuration and pools; connects to nothing.
    ///
    /// Errors: [`Error::PlainRefused`] for `ldap://` without `starttls`/`allow_plain`,
    /// [`Error::InvalidConfig`] naming the field for anything else that cannot work.
    pub fn new(cfg: LdapConfig) -> Result<Self, Error> {
        let c = config::check(cfg)?;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(c.cfg.timeout)
            .set_starttls(c.transport == Transport::StartTls);
        if let Some(tls) = &c.tls {
            settings = settings.set_config(tls.clone());
        }
        let size = c.cfg.pool_size;
        Ok(Directory {
            inner: Arc::new(Inner {
                c,
                settings,
                service: Pool::new(size),
                binds: Pool::new(size),
            }),
        })
    }

    /// Like [`Directory::new`] with `pool_size = 0`: every call connects, binds as the
    /// service account, searches, binds as the user on that same connection and closes it
    /// (the baseline the benchmark compares the pool against).
    pub fn new_unpooled(mut cfg: LdapConfig) -> Result<Self, Error> {
        cfg.pool_size = 0;
        Directory::new(cfg)
    }

    /// Check `username` and `password` against the directory and return the user with
    /// groups. Unknown user and wrong password both give [`Error::InvalidCredentials`];
    /// a disabled account gives [`Error::AccountDisabled`] (no bind is attempted).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<DirectoryUser, Error> {
        check_username(username)?;
        check_password(password)?;
        let inner = &*self.inner;
        if inner.c.cfg.pool_size == 0 {
            // One connection for everything: groups are read before the user bind changes
            // its identity, and the connection is closed afterwards.
            return inner
                .service
                .run(
                    || inner.connect(true),
                    |mut ldap| async move {
                        let found = inner.find_user(&mut ldap, username).await?;
                        let found = refuse_missing_or_disabled(found)?;
                        let groups = inner.groups(&mut ldap, &found.entry).await?;
                        inner
                            .user_bind(&mut ldap, &found.entry.dn, password)
                            .await?;
                        let _ = ldap.unbind().await;
                        Ok(inner.user(found, groups))
                    },
                )
                .await;
        }
        let found = inner
            .service
            .run(
                || inner.connect(true),
                |mut ldap| async move { inner.find_user(&mut ldap, username).await },
            )
            .await?;
        let found = refuse_missing_or_disabled(found)?;
        let dn = found.entry.dn.as_str();
        inner
            .binds
            .run(
                || inner.connect(false),
                |mut ldap| async move { inner.user_bind(&mut ldap, dn, password).await },
            )
            .await?;
        let entry = &found.entry;
        let groups = inner
            .service
            .run(
                || inner.connect(true),
                |mut ldap| async move { inner.groups(&mut ldap, entry).await },
            )
            .await?;
        Ok(inner.user(found, groups))
    }

    /// The user named `username` with groups and `disabled`, without a password (for the
    /// periodic sync); `None` when no entry matches.
    pub async fn lookup(&self, username: &str) -> Result<Option<DirectoryUser>, Error> {
        check_username(username)?;
        let inner = &*self.inner;
        inner
            .service
            .run(
                || inner.connect(true),
                |mut ldap| async move {
                    let Some(found) = inner.find_user(&mut ldap, username).await? else {
                        return Ok(None);
                    };
                    let groups = inner.groups(&mut ldap, &found.entry).await?;
                    Ok(Some(inner.user(found, groups)))
                },
            )
            .await
    }

    /// Connect on a fresh connection, bind as the service account and read the entries
    /// `user_base` and `group_base` (for an admin's "test this directory" button).
    pub async fn test_connection(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        let mut ldap = inner.connect(true).await?;
        let cfg = &inner.c.cfg;
        for (name, base) in [
            ("user_base", &cfg.user_base),
            ("group_base", &cfg.group_base),
        ] {
            let (entries, _) = inner
                .search(
                    &mut ldap,
                    "base check",
                    base,
                    Scope::Base,
                    "(objectClass=*)",
                    &["1.1"],
                    1,
                )
                .await?;
            if entries.is_empty() {
                return Err(Error::Directory {
                    op: "base check",
                    code: 32,
                    message: format!("{name} {base} is not visible to the service account"),
                });
            }
        }
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// Idle pooled connections (service, user-bind); for tests and metrics.
    pub fn idle_connections(&self) -> (usize, usize) {
        (self.inner.service.idle_len(), self.inner.binds.idle_len())
    }
}

fn check_username(username: &str) -> Result<(), Error> {
    if username.is_empty() {
        return Err(Error::InvalidUsername("empty"));
    }
    if username.len() > MAX_USERNAME_LEN {
        return Err(Error::InvalidUsername("longer than 256 bytes"));
    }
    if username.contains('\0') {
        return Err(Error::InvalidUsername("contains NUL"));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), Error> {
    if password.is_empty() {
        return Err(Error::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::PasswordTooLong(MAX_PASSWORD_LEN));
    }
    Ok(())
}

fn refuse_missing_or_disabled(found: Option<Found>) -> Result<Found, Error> {
    match found {
        None => Err(Error::InvalidCredentials),
        Some(f) if f.disabled => Err(Error::AccountDisabled { dn: f.entry.dn }),
        Some(f) => Ok(f),
    }
}

/// First value of `attr` (case-insensitive name).
fn first_value(entry: &SearchEntry, attr: &str) -> Option<String> {
    all_values(entry, attr).and_then(|v| v.first().cloned())
}

fn all_values<'e>(entry: &'e SearchEntry, attr: &str) -> Option<&'e Vec<String>> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map(|(_, v)| v)
}

async fn timed<T>(
    url: &str,
    op: &'static str,
    timeout: std::time::Duration,
    fut: impl Future<Output = ldap3::result::Result<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(|e| from_ldap(url, op, e)),
        Err(_) => Err(Error::Unavailable {
            url: url.to_owned(),
            reason: format!("no answer during {op} within {} ms", timeout.as_millis()),
        }),
    }
}

impl Inner {
    fn url(&self) -> &str {
        &self.c.cfg.url
    }

    /// Open a connection; bind it as the service account when `service_bind`.
    async fn connect(&self, service_bind: bool) -> Result<Ldap, Error> {
        let cfg = &self.c.cfg;
        let (conn, mut ldap) = timed(
            self.url(),
            "connect",
            cfg.timeout,
            LdapConnAsync::with_settings(self.settings.clone(), &cfg.url),
        )
        .await
        .map_err(|e| match e {
            // The server answered the StartTLS request with an error result.
            Error::Directory { code, message, .. } if self.c.transport == Transport::StartTls => {
                Error::Tls {
                    url: cfg.url.clone(),
                    reason: format!("StartTLS refused (result code {code}: {message})"),
                }
            }
            e => e,
        })?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        if service_bind {
            let res = timed(
                self.url(),
                "service bind",
                cfg.timeout,
                ldap.simple_bind(&cfg.bind_dn, cfg.bind_password.expose()),
            )
            .await?;
            match res.rc {
                0 => {}
                // invalidCredentials, inappropriateAuthentication, insufficientAccess, unwillingToPerform
                49 | 48 | 50 | 53 => {
                    return Err(Error::ServiceBind {
                        bind_dn: cfg.bind_dn.clone(),
                        reason: format!("result code {}: {}", res.rc, res.text),
                    })
                }
                rc => return Err(from_result(self.url(), "service bind", rc, &res.text)),
            }
        }
        Ok(ldap)
    }

    /// A search returning entries (references dropped) and whether the size limit was hit.
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        ldap: &mut Ldap,
        op: &'static str,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        size_limit: usize,
    ) -> Result<(Vec<SearchEntry>, bool), Error> {
        let limit = i32::try_from(size_limit).unwrap_or(i32::MAX);
        ldap.with_search_options(SearchOptions::new().sizelimit(limit));
        let ldap3::SearchResult(entries, res) = timed(
            self.url(),
            op,
            self.c.cfg.timeout,
            ldap.search(base, scope, filter, attrs.to_vec()),
        )
        .await?;
        let exceeded = match res.rc {
            0 => false,
            4 => true, // sizeLimitExceeded: the entries so far are returned
            rc => return Err(from_result(self.url(), op, rc, &res.text)),
        };
        let entries = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect();
        Ok((entries, exceeded))
    }

    /// The entry for `username` (at most one, else [`Error::Ambiguous`]) and whether
    /// `disabled_filter` matches it.
    async fn find_user(&self, ldap: &mut Ldap, username: &str) -> Result<Option<Found>, Error> {
        let cfg = &self.c.cfg;
        let filter = user_search_filter(&cfg.user_filter, username);
        let mut attrs = vec![
            cfg.username_attr.as_str(),
            cfg.email_attr.as_str(),
            cfg.name_attr.as_str(),
        ];
        if let Some(m) = &cfg.member_of_attr {
            attrs.push(m.as_str());
        }
        let (mut entries, exceeded) = self
            .search(
                ldap,
                "user search",
                &cfg.user_base,
                Scope::Subtree,
                &filter,
                &attrs,
                2,
            )
            .await?;
        if exceeded || entries.len() > 1 {
            return Err(Error::Ambiguous {
                user_base: cfg.user_base.clone(),
            });
        }
        let Some(entry) = entries.pop() else {
            return Ok(None);
        };
        if entry.dn.is_empty() {
            return Ok(None);
        }
        let disabled = match &cfg.disabled_filter {
            None => false,
            Some(d) => {
                let (hit, _) = self
                    .search(
                        ldap,
                        "disabled check",
                        &entry.dn,
                        Scope::Base,
                        d,
                        &["1.1"],
                        1,
                    )
                    .await?;
                !hit.is_empty()
            }
        };
        Ok(Some(Found {
            asked: username.to_owned(),
            entry,
            disabled,
        }))
    }

    /// Simple bind as `dn`; the only operation ever run on a user-bind connection.
    async fn user_bind(&self, ldap: &mut Ldap, dn: &str, password: &str) -> Result<(), Error> {
        // Checked again here: an empty password must never reach a bind.
        check_password(password)?;
        let res = timed(
            self.url(),
            "user bind",
            self.c.cfg.timeout,
            ldap.simple_bind(dn, password),
        )
        .await?;
        match res.rc {
            0 => Ok(()),
            // Active Directory: "... data 533" is ACCOUNTDISABLE.
            49 if res.text.contains("data 533") => {
                Err(Error::AccountDisabled { dn: dn.to_owned() })
            }
            49 => Err(Error::InvalidCredentials),
            rc => Err(from_result(self.url(), "user bind", rc, &res.text)),
        }
    }

    fn group_name(&self, entry: &SearchEntry) -> String {
        first_value(entry, &self.c.cfg.group_name_attr)
            .or_else(|| escape::first_rdn(&entry.dn).map(|(_, v)| v))
            .unwrap_or_else(|| entry.dn.clone())
    }

    /// Every group of `user` (nesting included): DN (lower-cased) → (DN, name).
    async fn groups(
        &self,
        ldap: &mut Ldap,
        user: &SearchEntry,
    ) -> Result<BTreeMap<String, (String, String)>, Error> {
        let cfg = &self.c.cfg;
        let attrs = [cfg.group_name_attr.as_str()];
        let mut known: BTreeMap<String, (String, String)> = BTreeMap::new();
        let limit_err = |what: String| Error::GroupLimit {
            dn: user.dn.clone(),
            limit: what,
        };
        match cfg.nested {
            NestedGroups::AdInChain => {
                let filter = ad_in_chain_filter(&cfg.group_filter, &user.dn);
                let (entries, exceeded) = self
                    .search(
                        ldap,
                        "group search",
                        &cfg.group_base,
                        Scope::Subtree,
                        &filter,
                        &attrs,
                        cfg.max_groups + 1,
                    )
                    .await?;
                if exceeded || entries.len() > cfg.max_groups {
                    return Err(limit_err(format!("more than {} groups", cfg.max_groups)));
                }
                for e in entries {
                    let name = self.group_name(&e);
                    known.insert(e.dn.to_ascii_lowercase(), (e.dn, name));
                }
                return Ok(known);
            }
            NestedGroups::MemberOf => {}
        }
        // Direct groups.
        let member_of = cfg
            .member_of_attr
            .as_deref()
            .and_then(|a| all_values(user, a))
            .filter(|v| !v.is_empty());
        let mut frontier: Vec<String> = Vec::new();
        match member_of {
            Some(dns) => {
                if dns.len() > cfg.max_groups {
                    return Err(limit_err(format!("more than {} groups", cfg.max_groups)));
                }
                for dn in dns {
                    let name = match escape::first_rdn(dn) {
                        Some((t, v)) if t.eq_ignore_ascii_case(&cfg.group_name_attr) => v,
                        _ => {
                            let (e, _) = self
                                .search(
                                    ldap,
                                    "group read",
                                    dn,
                                    Scope::Base,
                                    "(objectClass=*)",
                                    &attrs,
                                    1,
                                )
                                .await?;
                            e.first()
                                .map(|e| self.group_name(e))
                                .unwrap_or_else(|| dn.clone())
                        }
                    };
                    if known
                        .insert(dn.to_ascii_lowercase(), (dn.clone(), name))
                        .is_none()
                    {
                        frontier.push(dn.clone());
                    }
                }
            }
            None => {
                frontier = self
                    .member_search(ldap, std::slice::from_ref(&user.dn), &mut known)
                    .await?;
            }
        }
        // Nesting: groups whose members include the previous level, until none is new.
        let mut depth = 0;
        while !frontier.is_empty() {
            if known.len() > cfg.max_groups {
                return Err(limit_err(format!("more than {} groups", cfg.max_groups)));
            }
            let mut next = Vec::new();
            for chunk in frontier.chunks(MEMBER_FILTER_CHUNK) {
                next.extend(self.member_search(ldap, chunk, &mut known).await?);
            }
            if !next.is_empty() {
                depth += 1;
                if depth > cfg.max_group_depth {
                    return Err(limit_err(format!(
                        "nesting deeper than {} levels",
                        cfg.max_group_depth
                    )));
                }
            }
            frontier = next;
        }
        if known.len() > cfg.max_groups {
            return Err(limit_err(format!("more than {} groups", cfg.max_groups)));
        }
        Ok(known)
    }

    /// Groups under `group_base` with any of `members` as a direct member; records them in
    /// `known` and returns the DNs not seen before (cycle safety).
    async fn member_search(
        &self,
        ldap: &mut Ldap,
        members: &[String],
        known: &mut BTreeMap<String, (String, String)>,
    ) -> Result<Vec<String>, Error> {
        let cfg = &self.c.cfg;
        let filter = escape::member_any_filter(&cfg.group_filter, members);
        let (entries, exceeded) = self
            .search(
                ldap,
                "group search",
                &cfg.group_base,
                Scope::Subtree,
                &filter,
                &[cfg.group_name_attr.as_str()],
                cfg.max_groups + 1,
            )
            .await?;
        if exceeded {
            return Err(Error::GroupLimit {
                dn: members.first().cloned().unwrap_or_default(),
                limit: format!("more than {} groups", cfg.max_groups),
            });
        }
        let mut new = Vec::new();
        for e in entries {
            let key = e.dn.to_ascii_lowercase();
            if let std::collections::btree_map::Entry::Vacant(slot) = known.entry(key) {
                let name = self.group_name(&e);
                new.push(e.dn.clone());
                slot.insert((e.dn, name));
            }
        }
        Ok(new)
    }

    fn user(&self, found: Found, groups: BTreeMap<String, (String, String)>) -> DirectoryUser {
        let cfg = &self.c.cfg;
        let entry = &found.entry;
        let mut names: Vec<String> = groups.values().map(|(_, n)| n.clone()).collect();
        names.sort();
        names.dedup();
        let mut dns: Vec<String> = groups.into_values().map(|(d, _)| d).collect();
        dns.sort();
        DirectoryUser {
            dn: entry.dn.clone(),
            username: first_value(entry, &cfg.username_attr).unwrap_or_else(|| found.asked.clone()),
            email: first_value(entry, &cfg.email_attr),
            name: first_value(entry, &cfg.name_attr),
            groups: names,
            group_dns: dns,
            disabled: found.disabled,
        }
    }
}
