//! Enterprise identity: identity sources (OIDC providers, LDAP directories) configured by
//! admins, logins through them with admission rules and accounts created at first login, group
//! mappings refreshed at every login and by the directory sync, and deprovisioning (sessions and
//! tokens end at once, workloads within `access.deprovision_within`).

use crate::auth::{AuthMethod, Authentication, LoginOutcome};
use crate::chokepoint::{label, Caller, RequestMeta};
use crate::secrets::{hash_secret, new_id, new_secret};
use crate::{detail, App};
use enclave_core::access::{RoleBinding, SubjectKind};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::authz::Action;
use enclave_core::identity::{
    derive_username, mapping_changes, plan_mappings, Admission, ExternalIdentity, GroupMapping,
    IdentitySource, LdapSettings, Managed, OidcSettings, SourceKind,
};
use enclave_core::model::User;
use enclave_core::{Error, ErrorCode, Result, Timestamp};
use enclave_policy::Resource;
use enclave_store::{LastLogin, StoredSource, WriteTx};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a started OIDC login may take to come back.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Longest username, password or OIDC parameter accepted from a login form.
const MAX_LOGIN_INPUT: usize = 4096;

/// Settings of the identity part that come from the server's configuration.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// The base URL users reach Enclave at; OIDC redirect URIs are made from it.
    pub public_url: String,
    /// Longest time from deactivating an account to the end of its workloads.
    pub deprovision_within: Duration,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            public_url: "https://localhost".into(),
            deprovision_within: Duration::from_secs(300),
        }
    }
}

/// Live state: configured protocol clients (rebuilt when a source changes) and the wake-up
/// of the deprovisioning sweep.
#[derive(Default)]
pub(crate) struct IdentityState {
    settings: IdentitySettings,
    providers: Mutex<HashMap<String, (Timestamp, Arc<enclave_oidc::Provider>)>>,
    directories: Mutex<HashMap<String, (Timestamp, enclave_ldap::Directory)>>,
    last_sync: Mutex<HashMap<String, Timestamp>>,
    kick: Notify,
}

/// An admin's description of a source (the name comes from the URL).
#[derive(Debug, Clone)]
pub struct SourceInput {
    /// Protocol.
    pub kind: SourceKind,
    /// Name on the login button.
    pub display_name: String,
    /// Whether logins are accepted.
    pub enabled: bool,
    /// OIDC settings.
    pub oidc: Option<OidcSettings>,
    /// LDAP settings.
    pub ldap: Option<LdapSettings>,
    /// The OIDC client secret or LDAP bind password; `None` keeps the stored one.
    pub secret: Option<String>,
    /// Who is admitted.
    pub admission: Admission,
    /// Group mappings.
    pub mappings: Vec<GroupMapping>,
}

/// A login option for the login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOption {
    /// Source name.
    pub name: String,
    /// Button text.
    pub display_name: String,
    /// Protocol.
    pub kind: SourceKind,
}

/// What a "test this source" found.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTest {
    /// Whether the source works.
    pub ok: bool,
    /// What was checked, or what failed.
    pub detail: String,
    /// The person found (LDAP test with a username).
    pub identity: Option<ExternalIdentity>,
    /// Whether the admission rule admits them.
    pub admitted: Option<bool>,
    /// Why not.
    pub reason: Option<String>,
}

/// What a directory sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// Accounts checked.
    pub checked: u64,
    /// Accounts whose profile or mapped access changed.
    pub updated: u64,
    /// Accounts deactivated (gone or disabled in the directory, or no longer admitted).
    pub deactivated: u64,
}

fn not_found(name: &str) -> Error {
    Error::new(
        ErrorCode::NotFound,
        format!("no identity source '{name}'; `enclave idp list` shows them"),
    )
}

fn secret_context(source_id: &str) -> Vec<u8> {
    format!("idp-secret:{source_id}").into_bytes()
}

fn pending_context(state_hash: &str) -> Vec<u8> {
    format!("oidc-pending:{state_hash}").into_bytes()
}

fn refused_login() -> Error {
    Error::new(
        ErrorCode::InvalidCredentials,
        "sign-in through the identity provider failed; try again, and if it keeps failing ask a platform admin to check the provider's settings",
    )
}

fn not_admitted(reason: &str) -> Error {
    Error::new(
        ErrorCode::NotAdmitted,
        format!("you are not authorized for this platform ({reason}); ask a platform admin if you should be"),
    )
}

fn deactivated() -> Error {
    Error::new(
        ErrorCode::InvalidCredentials,
        "this account is deactivated; ask a platform admin",
    )
}

fn oidc_unavailable(e: &enclave_oidc::Error) -> Error {
    Error::new(
        ErrorCode::Unavailable,
        format!("the identity provider cannot be used right now: {e}"),
    )
}

fn ldap_error(e: &enclave_ldap::Error) -> Error {
    if e.is_credentials_failure() {
        Error::new(
            ErrorCode::InvalidCredentials,
            "invalid username or password",
        )
    } else {
        Error::new(
            ErrorCode::Unavailable,
            format!("the directory cannot be used right now: {e}"),
        )
    }
}

fn bounded(field: &str, v: &str) -> Result<()> {
    if v.len() > MAX_LOGIN_INPUT {
        return Err(Error::invalid(field, format!("{field} is too long")));
    }
    Ok(())
}

impl App {
    /// Sets the identity settings (public URL for redirect URIs, deprovisioning bound).
    pub fn with_identity(mut self, settings: IdentitySettings) -> App {
        self.identity = Arc::new(IdentityState {
            settings,
            ..Default::default()
        });
        self
    }

    /// The base URL users reach Enclave at (no trailing slash).
    pub fn public_url(&self) -> &str {
        self.identity.settings.public_url.trim_end_matches('/')
    }

    /// The OIDC redirect URI of a source, as it must be registered at the provider.
    pub fn oidc_redirect_uri(&self, source: &str) -> String {
        format!("{}/auth/oidc/{source}/callback", self.public_url())
    }

    async fn authorize_idp(&self, caller: &Caller, action: Action, what: &str) -> Result<()> {
        self.authorize(
            caller,
            action,
            &Resource::Platform,
            &label("idp", what),
            false,
        )
        .await
    }

    async fn find_source(&self, name: &str) -> Result<StoredSource> {
        if enclave_core::names::slug("name", name).is_err() {
            return Err(not_found(name));
        }
        self.store
            .identity_source(name)
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// The identity source an account came from, if any (admins; users may read their own).
    pub async fn user_identity(
        &self,
        caller: &Caller,
        username: &str,
    ) -> Result<Option<enclave_store::ExternalLink>> {
        let user = self.get_user(caller, username).await?;
        Ok(self.store.external_link_of(&user.id).await?)
    }

    /// The sources of accounts by user id, for lists already authorized by the caller.
    pub async fn sources_of(&self, user_ids: &[String]) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for id in user_ids {
            if let Some(l) = self.store.external_link_of(id).await? {
                out.insert(id.clone(), l.source);
            }
        }
        Ok(out)
    }

    /// Every identity source (`idp.read`).
    pub async fn identity_sources(&self, caller: &Caller) -> Result<Vec<IdentitySource>> {
        self.authorize_idp(caller, Action::IdpRead, "*").await?;
        Ok(self
            .store
            .identity_sources()
            .await?
            .into_iter()
            .map(|s| s.source)
            .collect())
    }

    /// One identity source (`idp.read`).
    pub async fn identity_source(&self, caller: &Caller, name: &str) -> Result<IdentitySource> {
        self.authorize_idp(caller, Action::IdpRead, name).await?;
        Ok(self.find_source(name).await?.source)
    }

    /// Creates or replaces an identity source (`idp.manage`). The kind of an existing source
    /// cannot change; groups and projects its mappings name must exist.
    pub async fn put_identity_source(
        &self,
        caller: &Caller,
        name: &str,
        input: SourceInput,
    ) -> Result<IdentitySource> {
        self.authorize_idp(caller, Action::IdpManage, name).await?;
        let existing = match enclave_core::names::slug("name", name) {
            Ok(()) => self.store.identity_source(name).await?,
            Err(e) => return Err(e),
        };
        let now = self.now();
        let src = IdentitySource {
            id: match &existing {
                Some(e) => e.source.id.clone(),
                None => new_id("idp")?,
            },
            name: name.to_string(),
            kind: input.kind,
            display_name: input.display_name,
            enabled: input.enabled,
            oidc: input.oidc,
            ldap: input.ldap,
            admission: input.admission,
            mappings: input.mappings,
            secret_set: false,
            scim_token_set: false,
            created_at: now,
            updated_at: now,
            last_sync_at: None,
        };
        src.validate()?;
        if let Some(e) = &existing {
            if e.source.kind != src.kind {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    format!(
                        "'{name}' is an {} source; delete it first to make it {}",
                        e.source.kind.as_str(),
                        src.kind.as_str()
                    ),
                ));
            }
        }
        if let Some(s) = &input.secret {
            if s.is_empty() || s.len() > 4096 {
                return Err(Error::invalid(
                    "secret",
                    "the client secret or bind password must be 1 to 4096 bytes",
                ));
            }
        }
        let has_secret =
            input.secret.is_some() || existing.as_ref().is_some_and(|e| e.secret.is_some());
        if src.kind == SourceKind::Ldap && !has_secret {
            return Err(Error::invalid(
                "ldap.bind_password",
                "an LDAP source needs the service account's bind_password",
            ));
        }
        for m in &src.mappings {
            if let Some(g) = &m.group {
                if self.store.group_by_name(g).await?.is_none() {
                    return Err(Error::invalid(
                        "mappings.group",
                        format!("there is no group '{g}'; create it first"),
                    ));
                }
            }
            if let Some(p) = &m.project {
                if self.store.project_by_name(p).await?.is_none() {
                    return Err(Error::invalid(
                        "mappings.project",
                        format!("there is no project '{p}'; create it first"),
                    ));
                }
            }
        }
        let mut tx = self.store.write().await?;
        let sealed = match &input.secret {
            Some(s) => Some(
                self.seal_platform_value(&mut tx, &secret_context(&src.id), s)
                    .await?,
            ),
            None => None,
        };
        tx.put_identity_source(&src, sealed.as_deref(), now).await?;
        let rec = caller.record(
            self,
            "idp.put",
            label("idp", name),
            None,
            Outcome::Success,
            detail!(
                "kind" => src.kind.as_str(),
                "created" => existing.is_none(),
                "enabled" => src.enabled,
                "secret_changed" => input.secret.is_some(),
                "admission" => serde_json::to_value(&src.admission).unwrap_or_default(),
                "mappings" => src.mappings.len()
            ),
        );
        self.commit(tx, rec).await?;
        self.forget_clients(name);
        Ok(self.find_source(name).await?.source)
    }

    fn forget_clients(&self, name: &str) {
        if let Ok(mut p) = self.identity.providers.lock() {
            p.remove(name);
        }
        if let Ok(mut d) = self.identity.directories.lock() {
            d.remove(name);
        }
    }

    /// Deletes an identity source (`idp.manage`). Accounts it created stay (and can still be
    /// deactivated by an admin); they lose the link and can no longer sign in through it.
    pub async fn delete_identity_source(&self, caller: &Caller, name: &str) -> Result<()> {
        self.authorize_idp(caller, Action::IdpManage, name).await?;
        let src = self.find_source(name).await?;
        let mut tx = self.store.write().await?;
        tx.delete_identity_source(&src.source.id).await?;
        let rec = caller.record(
            self,
            "idp.delete",
            label("idp", name),
            None,
            Outcome::Success,
            detail!("kind" => src.source.kind.as_str()),
        );
        self.commit(tx, rec).await?;
        self.forget_clients(name);
        Ok(())
    }

    /// Makes a new SCIM bearer token for a source, replacing the previous one; it is returned
    /// once and stored only hashed (`idp.manage`).
    pub async fn rotate_scim_token(&self, caller: &Caller, name: &str) -> Result<String> {
        self.authorize_idp(caller, Action::IdpManage, name).await?;
        let src = self.find_source(name).await?;
        let token = format!("scim_{}", new_secret()?);
        let mut tx = self.store.write().await?;
        tx.set_scim_token(&src.source.id, Some(&hash_secret(&token)))
            .await?;
        let rec = caller.record(
            self,
            "idp.scim_token",
            label("idp", name),
            None,
            Outcome::Success,
            detail!("replaced" => src.scim_token_hash.is_some()),
        );
        self.commit(tx, rec).await?;
        Ok(token)
    }

    /// The claims of a source's latest login attempt (`idp.read`).
    pub async fn identity_last_login(&self, caller: &Caller, name: &str) -> Result<LastLogin> {
        self.authorize_idp(caller, Action::IdpRead, name).await?;
        let src = self.find_source(name).await?;
        self.store.last_login(&src.source.id).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("nobody has signed in through '{name}' yet"),
            )
        })
    }

    /// Enabled sources, for the login page (public: names and button texts only).
    pub async fn login_options(&self) -> Result<Vec<LoginOption>> {
        Ok(self
            .store
            .identity_sources()
            .await?
            .into_iter()
            .filter(|s| s.source.enabled)
            .map(|s| LoginOption {
                name: s.source.name,
                display_name: s.source.display_name,
                kind: s.source.kind,
            })
            .collect())
    }

    async fn source_secret(
        &self,
        src: &StoredSource,
    ) -> Result<Option<zeroize::Zeroizing<String>>> {
        match &src.secret {
            Some(s) => Ok(Some(
                self.open_platform_value(&secret_context(&src.source.id), s)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    async fn provider(&self, src: &StoredSource) -> Result<Arc<enclave_oidc::Provider>> {
        let name = &src.source.name;
        if let Ok(p) = self.identity.providers.lock() {
            if let Some((at, p)) = p.get(name) {
                if *at == src.source.updated_at {
                    return Ok(p.clone());
                }
            }
        }
        let Some(o) = &src.source.oidc else {
            return Err(not_found(name));
        };
        let secret = self.source_secret(src).await?;
        let mut cfg = enclave_oidc::ProviderConfig::new(
            o.issuer.clone(),
            o.client_id.clone(),
            secret.map(|s| enclave_oidc::ClientSecret::new(s.as_str())),
            self.oidc_redirect_uri(name),
        );
        if cfg.client_secret.is_none() {
            cfg.auth_method = enclave_oidc::TokenAuth::None;
        }
        cfg.scopes = o.scopes.clone();
        if !cfg.scopes.iter().any(|s| s == "openid") {
            cfg.scopes.insert(0, "openid".into());
        }
        cfg.algorithms = o.algorithms.clone();
        cfg.claims = enclave_oidc::ClaimNames {
            email: o.email_claim.clone(),
            name: o.name_claim.clone(),
            groups: o.groups_claim.clone(),
        };
        cfg.use_userinfo = o.use_userinfo;
        cfg.internal = o.internal;
        let p = Arc::new(enclave_oidc::Provider::new(cfg).map_err(|e| {
            Error::new(
                ErrorCode::Unavailable,
                format!("identity source '{name}' is misconfigured: {e}"),
            )
        })?);
        if let Ok(mut m) = self.identity.providers.lock() {
            m.insert(name.clone(), (src.source.updated_at, p.clone()));
        }
        Ok(p)
    }

    async fn directory(&self, src: &StoredSource) -> Result<enclave_ldap::Directory> {
        let name = &src.source.name;
        if let Ok(d) = self.identity.directories.lock() {
            if let Some((at, d)) = d.get(name) {
                if *at == src.source.updated_at {
                    return Ok(d.clone());
                }
            }
        }
        let Some(l) = &src.source.ldap else {
            return Err(not_found(name));
        };
        let secret = self.source_secret(src).await?.unwrap_or_default();
        let mut cfg = enclave_ldap::LdapConfig::new(
            l.url.clone(),
            l.bind_dn.clone(),
            secret.as_str(),
            l.user_base.clone(),
            l.group_base.clone(),
        );
        cfg.starttls = l.starttls;
        cfg.allow_plain = l.allow_plain;
        cfg.ca_pem = l.ca_pem.clone();
        cfg.user_filter = l.user_filter.clone();
        cfg.group_filter = l.group_filter.clone();
        cfg.username_attr = l.username_attr.clone();
        cfg.email_attr = l.email_attr.clone();
        cfg.name_attr = l.name_attr.clone();
        cfg.group_name_attr = l.group_name_attr.clone();
        cfg.member_of_attr = (!l.member_of_attr.is_empty()).then(|| l.member_of_attr.clone());
        cfg.nested = match l.nested_groups {
            enclave_core::identity::NestedGroups::MemberOf => enclave_ldap::NestedGroups::MemberOf,
            enclave_core::identity::NestedGroups::AdInChain => {
                enclave_ldap::NestedGroups::AdInChain
            }
        };
        cfg.disabled_filter = l.disabled_filter.clone();
        let d = enclave_ldap::Directory::new(cfg).map_err(|e| {
            Error::new(
                ErrorCode::Unavailable,
                format!("identity source '{name}' is misconfigured: {e}"),
            )
        })?;
        if let Ok(mut m) = self.identity.directories.lock() {
            m.insert(name.clone(), (src.source.updated_at, d.clone()));
        }
        Ok(d)
    }

    async fn enabled_source(&self, name: &str, kind: SourceKind) -> Result<StoredSource> {
        let src = self.find_source(name).await?;
        if src.source.kind != kind || !src.source.enabled {
            return Err(not_found(name));
        }
        Ok(src)
    }

    /// Starts an OIDC login: stores the one-use pending state (nonce and PKCE verifier sealed)
    /// and returns the provider URL to send the browser to, with the `state` (which the
    /// caller binds to the browser, so a callback only completes where it started).
    pub async fn oidc_begin(&self, name: &str) -> Result<(String, String)> {
        let src = self.enabled_source(name, SourceKind::Oidc).await?;
        let provider = self.provider(&src).await?;
        let (url, pending) = provider.begin().await.map_err(|e| oidc_unavailable(&e))?;
        let state_hash = hash_secret(&pending.state);
        let json = zeroize::Zeroizing::new(
            serde_json::to_string(&pending).map_err(|_| Error::internal())?,
        );
        let now = self.now();
        let mut tx = self.store.write().await?;
        let sealed = self
            .seal_platform_value(&mut tx, &pending_context(&state_hash), &json)
            .await?;
        tx.prune_oidc_pending(Timestamp(now.unix() - PENDING_TTL.as_secs() as i64))
            .await?;
        tx.insert_oidc_pending(&state_hash, &src.source.id, &sealed, now)
            .await?;
        tx.commit().await?;
        Ok((url, pending.state.clone()))
    }

    /// Finishes an OIDC login from the provider's callback: the pending state is taken (so a
    /// replayed callback finds nothing), the code exchanged and the ID token checked; then the
    /// admission rule, the account (created at first login) and the mappings.
    ///
    /// `browser_bound` says whether the callback came from the browser that started the
    /// sign-in (the caller checks its cookie); when not, the attempt is audited and refused.
    pub async fn oidc_finish(
        &self,
        name: &str,
        state: &str,
        code: &str,
        browser_bound: bool,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        bounded("state", state)?;
        bounded("code", code)?;
        let src = self.enabled_source(name, SourceKind::Oidc).await?;
        let now = self.now();
        if !browser_bound {
            let rec = AuditRecord {
                outcome: Outcome::Failure,
                detail: detail!(
                    "method" => "oidc",
                    "source" => name,
                    "reason" => "callback in a browser that did not start the sign-in"
                ),
                ..meta.record(now, "anonymous", "oidc", "auth.login", label("idp", name))
            };
            self.audit(rec).await?;
            return Err(Error::new(
                ErrorCode::InvalidCredentials,
                "this sign-in was not started in this browser (or took over ten minutes); start again from the login page",
            ));
        }
        let state_hash = hash_secret(state);
        let mut tx = self.store.write().await?;
        let taken = tx.take_oidc_pending(&state_hash).await?;
        tx.commit().await?;
        let fail = |reason: &str| AuditRecord {
            outcome: Outcome::Failure,
            detail: detail!("method" => "oidc", "source" => name, "reason" => reason),
            ..meta.record(now, "anonymous", "oidc", "auth.login", label("idp", name))
        };
        let pending = match taken {
            Some((source_id, sealed, at))
                if source_id == src.source.id
                    && now.unix() - at.unix() <= PENDING_TTL.as_secs() as i64 =>
            {
                let json = self
                    .open_platform_value(&pending_context(&state_hash), &sealed)
                    .await?;
                serde_json::from_str::<enclave_oidc::PendingLogin>(&json)
                    .map_err(|_| Error::internal())?
            }
            _ => {
                self.audit(fail("unknown, used or expired state")).await?;
                return Err(refused_login());
            }
        };
        let provider = self.provider(&src).await?;
        let id = match provider.finish(&pending, state, code, now.unix()).await {
            Ok(id) => id,
            Err(e) => {
                let reason = if e.is_suspicious() {
                    format!("rejected token or response: {e}")
                } else {
                    format!("{e}")
                };
                self.audit(fail(&reason)).await?;
                return Err(match e.kind() {
                    enclave_oidc::ErrorKind::Unavailable => oidc_unavailable(&e),
                    _ => refused_login(),
                });
            }
        };
        let ext = ExternalIdentity {
            subject: id.subject.clone(),
            preferred_username: id
                .claims
                .get("preferred_username")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            email: id.email.clone(),
            email_verified: id.email_verified,
            name: id.name.clone(),
            groups: id.groups.clone(),
            amr: id.amr.clone(),
            acr: id.acr.clone(),
        };
        let auth = Authentication {
            method: AuthMethod::Oidc,
            amr: if id.amr.is_empty() {
                vec!["ext".into()]
            } else {
                id.amr.clone()
            },
            acr: id.acr.clone(),
        };
        let user = self
            .external_user(&src, ext, id.claims, &auth, meta)
            .await?;
        self.open_session(&user, &auth, meta).await
    }

    /// Password login through an LDAP source that opens a session.
    pub async fn ldap_login(
        &self,
        name: &str,
        username: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let user = self.ldap_user(name, username, password, meta).await?;
        self.open_session(&user, &Authentication::password(AuthMethod::Ldap), meta)
            .await
    }

    /// Checks a password with an LDAP source and returns the (admitted, refreshed) account.
    /// The directory decides the password; a directory that is down is an error, never a
    /// fallback to anything weaker.
    pub async fn ldap_user(
        &self,
        name: &str,
        username: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<User> {
        bounded("username", username)?;
        bounded("password", password)?;
        let src = self.enabled_source(name, SourceKind::Ldap).await?;
        let now = self.now();
        let shown: String = username.chars().take(64).collect();
        let dir = self.directory(&src).await?;
        let user = match dir.authenticate(username, password).await {
            Ok(u) => u,
            Err(e) => {
                let reason = match &e {
                    enclave_ldap::Error::AccountDisabled { .. } => {
                        "account disabled in the directory".to_string()
                    }
                    e if e.is_credentials_failure() => "invalid credentials".to_string(),
                    e => format!("directory unavailable: {e}"),
                };
                let rec = AuditRecord {
                    outcome: Outcome::Failure,
                    detail: detail!("method" => "ldap", "source" => name, "reason" => reason),
                    ..meta.record(now, &shown, "ldap", "auth.login", label("idp", name))
                };
                self.audit(rec).await?;
                return Err(ldap_error(&e));
            }
        };
        let claims = serde_json::json!({
            "dn": user.dn, "username": user.username, "email": user.email,
            "name": user.name, "groups": user.groups,
        });
        let ext = ExternalIdentity {
            subject: user.username.to_lowercase(),
            preferred_username: Some(user.username.clone()),
            email: user.email.clone(),
            email_verified: None,
            name: user.name.clone(),
            groups: user.groups.clone(),
            amr: vec!["pwd".into()],
            acr: None,
        };
        let auth = Authentication::password(AuthMethod::Ldap);
        self.external_user(&src, ext, claims, &auth, meta).await
    }

    /// After a source authenticated someone: admission, the account (found by source and
    /// subject, or created), the profile and the mappings.
    async fn external_user(
        &self,
        src: &StoredSource,
        ext: ExternalIdentity,
        claims: serde_json::Value,
        auth: &Authentication,
        meta: &RequestMeta,
    ) -> Result<User> {
        let now = self.now();
        let s = &src.source;
        let admitted = s
            .admission
            .admits(ext.email.as_deref(), ext.email_verified, &ext.groups);
        let last = LastLogin {
            at: now,
            subject: ext.subject.clone(),
            admitted: admitted.is_ok(),
            reason: admitted.clone().err(),
            claims,
        };
        let actor = format!(
            "{}:{}",
            s.name,
            ext.subject.chars().take(64).collect::<String>()
        );
        if let Err(reason) = admitted {
            let mut tx = self.store.write().await?;
            tx.put_last_login(&s.id, &last).await?;
            let rec = AuditRecord {
                outcome: Outcome::Failure,
                detail: detail!(
                    "method" => auth.method.as_str(),
                    "source" => s.name.clone(),
                    "reason" => format!("not admitted: {reason}")
                ),
                ..meta.record(
                    now,
                    &actor,
                    auth.method.as_str(),
                    "auth.login",
                    label("idp", &s.name),
                )
            };
            self.commit(tx, rec).await?;
            return Err(not_admitted(&reason));
        }
        let mut link = self.store.external_link(&s.id, &ext.subject).await?;
        let mut subject = ext.subject.clone();
        if link.is_none() {
            // Provisioned ahead of the first sign-in (SCIM): the client's externalId is usually
            // the provider's subject (Okta) or object id (Entra `oid`), its userName the
            // person's login name or email. Same source only: two sources never merge.
            let oid = ext_claim(&last.claims, "oid");
            let ids: Vec<&str> = [Some(ext.subject.as_str()), oid.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let names: Vec<&str> = [ext.preferred_username.as_deref(), ext.email.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            link = self.store.provisioned_link(&s.id, &ids, &names).await?;
            if let Some(l) = &link {
                subject = l.subject.clone();
            }
        }
        let mut tx = self.store.write().await?;
        let (user, created) = match link {
            Some(l) => {
                let Some(c) = self.store.user_by_id(&l.user_id).await? else {
                    return Err(Error::internal());
                };
                (c.user, false)
            }
            None => (
                self.create_external_user(&mut tx, s, &ext, now).await?,
                true,
            ),
        };
        if user.disabled {
            drop(tx);
            let rec = AuditRecord {
                outcome: Outcome::Failure,
                detail: detail!("method" => auth.method.as_str(), "source" => s.name.clone(), "reason" => "account deactivated"),
                ..meta.record(
                    now,
                    &user.username,
                    auth.method.as_str(),
                    "auth.login",
                    label("user", &user.username),
                )
            };
            self.audit(rec).await?;
            return Err(deactivated());
        }
        let user = self.refresh_profile(&mut tx, user, &ext, now).await?;
        tx.update_external_link(
            &s.id,
            &subject,
            ext.email.as_deref().unwrap_or(""),
            &ext.groups,
            true,
            now,
        )
        .await?;
        let changes = self
            .apply_mappings(&mut tx, s, &user, &ext.groups, now)
            .await?;
        tx.put_last_login(&s.id, &last).await?;
        let rec = AuditRecord {
            detail: detail!(
                "method" => auth.method.as_str(),
                "source" => s.name.clone(),
                "subject" => ext.subject.clone(),
                "created" => created,
                "granted" => changes.0,
                "removed" => changes.1
            ),
            ..meta.record(
                now,
                &user.username,
                auth.method.as_str(),
                "auth.login",
                label("user", &user.username),
            )
        };
        self.commit(tx, rec).await?;
        Ok(user)
    }

    async fn create_external_user(
        &self,
        tx: &mut WriteTx,
        s: &IdentitySource,
        ext: &ExternalIdentity,
        now: Timestamp,
    ) -> Result<User> {
        let mut username = None;
        for n in 1..=50 {
            let candidate = derive_username(
                ext.preferred_username.as_deref(),
                ext.email.as_deref(),
                &ext.subject,
                n,
            );
            if self.store.user_by_name(&candidate).await?.is_none() {
                username = Some(candidate);
                break;
            }
        }
        let Some(username) = username else {
            return Err(Error::new(
                ErrorCode::Conflict,
                "no free username for this account; ask a platform admin",
            ));
        };
        let user = User {
            id: new_id("usr")?,
            username,
            display_name: storable_name(ext).unwrap_or_default().to_string(),
            email: storable_email(ext).unwrap_or_default().to_string(),
            platform_admin: false,
            disabled: false,
            created_at: now,
        };
        tx.insert_user(&user, None).await?;
        tx.insert_external_link(&s.id, &ext.subject, &user.id, None, now)
            .await?;
        Ok(user)
    }

    async fn refresh_profile(
        &self,
        tx: &mut WriteTx,
        mut user: User,
        ext: &ExternalIdentity,
        now: Timestamp,
    ) -> Result<User> {
        let mut changed = false;
        if let Some(e) = storable_email(ext) {
            if e != user.email {
                user.email = e.to_string();
                changed = true;
            }
        }
        if let Some(n) = storable_name(ext) {
            if n != user.display_name {
                user.display_name = n.to_string();
                changed = true;
            }
        }
        if changed {
            tx.update_user(&user, now).await?;
        }
        Ok(user)
    }

    /// Brings what the source's mappings granted the user in line with their groups now;
    /// returns what was granted and what was taken away (as text for the audit record).
    async fn apply_mappings(
        &self,
        tx: &mut WriteTx,
        s: &IdentitySource,
        user: &User,
        groups: &[String],
        now: Timestamp,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let before = self.store.identity_grants(&user.id).await?;
        let plan = plan_mappings(&s.mappings, groups);
        let changes = mapping_changes(&before, &plan.items());
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for m in &changes.remove {
            if self.take_back(tx, user, m).await? {
                removed.push(describe(m));
            }
            tx.remove_identity_grant(&user.id, m).await?;
        }
        for m in &changes.add {
            if self.grant(tx, s, user, m, now).await? {
                tx.add_identity_grant(&user.id, &s.id, m).await?;
                added.push(describe(m));
            }
        }
        Ok((added, removed))
    }

    async fn grant(
        &self,
        tx: &mut WriteTx,
        s: &IdentitySource,
        user: &User,
        m: &Managed,
        now: Timestamp,
    ) -> Result<bool> {
        match m {
            Managed::Group(g) => {
                let Some(group) = self.store.group_by_name(g).await? else {
                    return Ok(false);
                };
                tx.add_group_member(&group.id, &user.id, now).await?;
            }
            Managed::Project(p, role) => {
                let Some(project) = self.store.project_by_name(p).await? else {
                    return Ok(false);
                };
                tx.set_project_member(&project.id, &user.id, *role, now)
                    .await?;
            }
            Managed::PlatformRole(r) => {
                let exists = self
                    .store
                    .list_bindings(None)
                    .await?
                    .iter()
                    .any(|b| b.subject_id == user.id && b.role == *r);
                if !exists {
                    tx.insert_binding(
                        &RoleBinding {
                            id: new_id("rb")?,
                            subject_kind: SubjectKind::User,
                            subject_id: user.id.clone(),
                            subject_name: user.username.clone(),
                            role: r.clone(),
                            project: None,
                            expires_at: None,
                            created_by: format!("idp:{}", s.name),
                            created_at: now,
                        },
                        None,
                    )
                    .await?;
                }
            }
        }
        Ok(true)
    }

    async fn take_back(&self, tx: &mut WriteTx, user: &User, m: &Managed) -> Result<bool> {
        match m {
            Managed::Group(g) => {
                let Some(group) = self.store.group_by_name(g).await? else {
                    return Ok(false);
                };
                Ok(tx.remove_group_member(&group.id, &user.id).await?)
            }
            Managed::Project(p, _) => {
                let Some(project) = self.store.project_by_name(p).await? else {
                    return Ok(false);
                };
                let owners = tx.count_owners(&project.id).await?;
                let role = self.store.project_role(&project.id, &user.id).await?;
                if role == Some(enclave_core::model::ProjectRole::Owner) && owners <= 1 {
                    // A project never loses its last owner to a group change.
                    return Ok(false);
                }
                Ok(tx.remove_project_member(&project.id, &user.id).await?)
            }
            Managed::PlatformRole(r) => {
                let mut n = 0;
                for b in self.store.list_bindings(None).await? {
                    if b.subject_id == user.id && b.role == *r && b.created_by.starts_with("idp:") {
                        n += tx.delete_binding(&b.id).await?;
                    }
                }
                Ok(n > 0)
            }
        }
    }

    /// Tests a source (`idp.manage`, since an LDAP test checks a password): OIDC discovery and
    /// keys, the LDAP service bind, or a full LDAP login of `username` with the admission rule.
    pub async fn test_identity_source(
        &self,
        caller: &Caller,
        name: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<SourceTest> {
        self.authorize_idp(caller, Action::IdpManage, name).await?;
        let src = self.find_source(name).await?;
        let result = match src.source.kind {
            SourceKind::Oidc => match self.provider(&src).await?.discover().await {
                Ok(d) => SourceTest {
                    ok: true,
                    detail: format!(
                        "discovery and keys fetched: issuer {}, {} signing key(s), algorithms {}",
                        d.issuer,
                        d.key_ids.len(),
                        d.signing_algorithms.join(", ")
                    ),
                    identity: None,
                    admitted: None,
                    reason: None,
                },
                Err(e) => SourceTest {
                    ok: false,
                    detail: e.to_string(),
                    identity: None,
                    admitted: None,
                    reason: None,
                },
            },
            SourceKind::Ldap => {
                let dir = self.directory(&src).await?;
                match username {
                    None => match dir.test_connection().await {
                        Ok(()) => SourceTest {
                            ok: true,
                            detail: "the service account bound and searched the user base".into(),
                            identity: None,
                            admitted: None,
                            reason: None,
                        },
                        Err(e) => SourceTest {
                            ok: false,
                            detail: e.to_string(),
                            identity: None,
                            admitted: None,
                            reason: None,
                        },
                    },
                    Some(u) => {
                        bounded("username", u)?;
                        match dir.authenticate(u, password.unwrap_or("")).await {
                            Ok(d) => {
                                let adm = src.source.admission.admits(
                                    d.email.as_deref(),
                                    None,
                                    &d.groups,
                                );
                                SourceTest {
                                    ok: true,
                                    detail: format!("{} signed in as {}", u, d.dn),
                                    identity: Some(ExternalIdentity {
                                        subject: d.username.to_lowercase(),
                                        preferred_username: Some(d.username),
                                        email: d.email,
                                        email_verified: None,
                                        name: d.name,
                                        groups: d.groups,
                                        amr: vec![],
                                        acr: None,
                                    }),
                                    admitted: Some(adm.is_ok()),
                                    reason: adm.err(),
                                }
                            }
                            Err(e) => SourceTest {
                                ok: false,
                                detail: e.to_string(),
                                identity: None,
                                admitted: None,
                                reason: None,
                            },
                        }
                    }
                }
            }
        };
        let rec = caller.record(
            self,
            "idp.test",
            label("idp", name),
            None,
            if result.ok {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            detail!("ok" => result.ok, "user" => username.unwrap_or("")),
        );
        self.audit(rec).await?;
        Ok(result)
    }

    /// Runs a directory sync now (`idp.manage`).
    pub async fn sync_identity_source(&self, caller: &Caller, name: &str) -> Result<SyncReport> {
        self.authorize_idp(caller, Action::IdpManage, name).await?;
        let src = self.find_source(name).await?;
        if src.source.kind != SourceKind::Ldap {
            return Err(Error::invalid(
                "name",
                "only LDAP sources are synced; OIDC accounts are refreshed at each login and deprovisioned through SCIM",
            ));
        }
        self.sync_source(&src, &caller.principal.username).await
    }

    /// Checks every account of an LDAP source: gone, disabled or no longer admitted accounts are
    /// deactivated; the others get their profile and mappings refreshed.
    async fn sync_source(&self, src: &StoredSource, by: &str) -> Result<SyncReport> {
        let dir = self.directory(src).await?;
        let s = &src.source;
        let mut report = SyncReport::default();
        let mut after = String::new();
        loop {
            let links = self.store.external_links(&s.id, &after, 200).await?;
            let Some(last) = links.last() else { break };
            after = last.subject.clone();
            for l in links {
                report.checked += 1;
                if l.disabled {
                    continue;
                }
                let found = match dir.lookup(&l.subject).await {
                    Ok(f) => f,
                    Err(e) => return Err(ldap_error(&e)),
                };
                let why = match &found {
                    None => Some("gone from the directory".to_string()),
                    Some(u) if u.disabled => Some("disabled in the directory".to_string()),
                    Some(u) => s
                        .admission
                        .admits(u.email.as_deref(), None, &u.groups)
                        .err()
                        .map(|r| format!("no longer admitted: {r}")),
                };
                if let Some(why) = why {
                    let by = format!("ldap-sync:{}", s.name);
                    match self.deactivate_account(&l.user_id, &by, &why).await {
                        Ok(true) => report.deactivated += 1,
                        Ok(false) => {}
                        // E.g. the last enabled platform admin: kept, said in the log; the
                        // sync goes on with the other accounts.
                        Err(e) => {
                            tracing::warn!(user = %l.username, error = %e.message, "the LDAP sync could not deactivate an account")
                        }
                    }
                    continue;
                }
                let Some(u) = found else { continue };
                let Some(c) = self.store.user_by_id(&l.user_id).await? else {
                    continue;
                };
                let now = self.now();
                let ext = ExternalIdentity {
                    subject: l.subject.clone(),
                    email: u.email.clone(),
                    name: u.name.clone(),
                    groups: u.groups.clone(),
                    ..Default::default()
                };
                let mut tx = self.store.write().await?;
                let before = (c.user.email.clone(), c.user.display_name.clone());
                let user = self.refresh_profile(&mut tx, c.user, &ext, now).await?;
                tx.update_external_link(
                    &s.id,
                    &l.subject,
                    u.email.as_deref().unwrap_or(""),
                    &u.groups,
                    false,
                    now,
                )
                .await?;
                let (added, removed) = self
                    .apply_mappings(&mut tx, s, &user, &u.groups, now)
                    .await?;
                if added.is_empty()
                    && removed.is_empty()
                    && before == (user.email.clone(), user.display_name.clone())
                {
                    tx.commit().await?;
                    continue;
                }
                report.updated += 1;
                let rec = AuditRecord {
                    detail: detail!("source" => s.name.clone(), "granted" => added, "removed" => removed),
                    ..RequestMeta::local().record(
                        now,
                        by,
                        "system",
                        "idp.refresh",
                        label("user", &user.username),
                    )
                };
                self.commit(tx, rec).await?;
            }
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.set_last_sync(&s.id, now).await?;
        let rec = AuditRecord {
            detail: detail!(
                "checked" => report.checked,
                "updated" => report.updated,
                "deactivated" => report.deactivated
            ),
            ..RequestMeta::local().record(now, by, "system", "idp.sync", label("idp", &s.name))
        };
        self.commit(tx, rec).await?;
        if let Ok(mut m) = self.identity.last_sync.lock() {
            m.insert(s.name.clone(), now);
        }
        Ok(report)
    }

    /// Deactivates an account on the platform's own initiative (SCIM, the directory sync):
    /// sessions end and tokens are revoked in the same transaction; its workloads end within
    /// `access.deprovision_within` (the sweep is woken at once).
    pub(crate) async fn deactivate_account(
        &self,
        user_id: &str,
        by: &str,
        why: &str,
    ) -> Result<bool> {
        let Some(c) = self.store.user_by_id(user_id).await? else {
            return Ok(false);
        };
        let mut user = c.user;
        if user.disabled {
            return Ok(false);
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        if user.platform_admin && tx.other_admins(&user.id).await? == 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                "this is the last enabled platform admin; it is not deactivated",
            ));
        }
        user.disabled = true;
        tx.update_user(&user, now).await?;
        let sessions = tx.delete_sessions_of(&user.id).await?;
        let tokens = tx.revoke_tokens_of(&user.id, now).await?;
        let rec = AuditRecord {
            detail: detail!(
                "by" => by,
                "reason" => why,
                "sessions_ended" => sessions,
                "tokens_revoked" => tokens
            ),
            ..RequestMeta::local().record(
                now,
                by,
                "system",
                "user.deactivate",
                label("user", &user.username),
            )
        };
        self.commit(tx, rec).await?;
        self.wake_deprovisioning();
        Ok(true)
    }

    /// Wakes the sweep that ends deactivated accounts' workloads.
    pub fn wake_deprovisioning(&self) {
        self.identity.kick.notify_one();
    }

    /// Ends the running jobs and notebook servers of deactivated accounts; returns how many.
    pub async fn end_deprovisioned_workloads(&self) -> Result<usize> {
        let mut n = 0;
        for (user_id, username) in self.store.disabled_with_workloads(50).await? {
            for (kind, project, what) in self.store.workloads_of(&user_id).await? {
                let now = self.now();
                let reason = format!("{username}'s account was deactivated");
                let rec = |state: &str| AuditRecord {
                    project: Some(project.clone()),
                    detail: detail!("reason" => reason.clone(), "state" => state, "owner" => username.clone()),
                    ..RequestMeta::local().record(
                        now,
                        "system",
                        "system",
                        if kind == "job" {
                            "job.cancel"
                        } else {
                            "notebook.stop"
                        },
                        label(&kind, &format!("{project}/{what}")),
                    )
                };
                let done = if kind == "job" {
                    self.cancel_found_job(&project, &what, "deprovisioning", &rec)
                        .await
                } else {
                    self.stop_notebook_as_system(&project, &what, &reason, rec("active"))
                        .await
                };
                match done {
                    Ok(()) => n += 1,
                    Err(e) => {
                        tracing::warn!(kind, project, what, error = %e.message, "ending a deactivated account's workload failed")
                    }
                }
            }
        }
        Ok(n)
    }

    /// Background work of the identity part until the server stops (spawn once): the
    /// deprovisioning sweep (woken by each deactivation, and at least four times per
    /// `access.deprovision_within`), due LDAP syncs, and expired pending OIDC logins.
    pub async fn run_identity_tasks(&self) {
        let every = (self.identity.settings.deprovision_within / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            let _ = tokio::time::timeout(every, self.identity.kick.notified()).await;
            if let Err(e) = self.end_deprovisioned_workloads().await {
                tracing::warn!(error = %e.message, "the deprovisioning sweep failed");
            }
            if let Err(e) = self.sync_due_sources().await {
                tracing::warn!(error = %e.message, "an LDAP sync failed");
            }
        }
    }

    async fn sync_due_sources(&self) -> Result<()> {
        let now = self.now();
        for src in self.store.identity_sources().await? {
            let Some(l) = &src.source.ldap else { continue };
            if !src.source.enabled {
                continue;
            }
            let last = self
                .identity
                .last_sync
                .lock()
                .ok()
                .and_then(|m| m.get(&src.source.name).copied())
                .or(src.source.last_sync_at);
            let due = last.is_none_or(|t| now.unix() - t.unix() >= l.sync_interval_secs as i64);
            if due {
                if let Err(e) = self.sync_source(&src, "system").await {
                    // Remember the attempt so a directory that is down is not hammered.
                    if let Ok(mut m) = self.identity.last_sync.lock() {
                        m.insert(src.source.name.clone(), now);
                    }
                    tracing::warn!(source = %src.source.name, error = %e.message, "LDAP sync failed");
                }
            }
        }
        Ok(())
    }
}

/// The source's email for the account, if Enclave's email rules accept it (else it is ignored).
fn storable_email(ext: &ExternalIdentity) -> Option<&str> {
    ext.email
        .as_deref()
        .filter(|e| enclave_core::names::email("email", e).is_ok())
}

/// The source's display name for the account, if Enclave's text rules accept it.
fn storable_name(ext: &ExternalIdentity) -> Option<&str> {
    ext.name
        .as_deref()
        .filter(|n| enclave_core::names::text("display_name", n, false).is_ok())
}

/// A string claim from a sign-in's claims.
fn ext_claim(claims: &serde_json::Value, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

fn describe(m: &Managed) -> String {
    match m {
        Managed::Group(g) => format!("group:{g}"),
        Managed::PlatformRole(r) => format!("role:{r}"),
        Managed::Project(p, r) => format!("project:{p}:{}", r.as_str()),
    }
}
