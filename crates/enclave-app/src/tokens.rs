//! Personal API tokens: shown once, stored hashed, scoped, expiring, revocable.

use crate::chokepoint::{label, Caller, RequestMeta};
use crate::secrets::{self, hash_secret, TOKEN_PREFIX};
use crate::{detail, App};
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::model::{ApiToken, Page, PageRequest, TokenScope};
use enclave_core::{names, Error, Result};
use enclave_policy::Resource;

/// Most projects one token may be limited to.
pub const MAX_TOKEN_PROJECTS: usize = 32;

/// A newly created token: its metadata and the secret, which is never shown again.
#[derive(Debug, Clone)]
pub struct TokenCreated {
    /// Metadata.
    pub token: ApiToken,
    /// The bearer secret.
    pub secret: String,
}

impl App {
    /// Creates a personal token for the caller.
    pub async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
        scope: TokenScope,
        projects: Vec<String>,
        expires_in_days: Option<u32>,
    ) -> Result<TokenCreated> {
        let me = caller.principal.user_id.clone();
        self.authorize(
            caller,
            Action::TokenCreate,
            &Resource::Token { owner: me.clone() },
            &label("user", &caller.principal.username),
            false,
        )
        .await?;
        names::text("name", name, true)?;
        if projects.len() > MAX_TOKEN_PROJECTS {
            return Err(Error::invalid(
                "projects",
                format!("a token can be limited to at most {MAX_TOKEN_PROJECTS} projects"),
            ));
        }
        for p in &projects {
            names::slug("projects", p)?;
            // Only projects the caller can see; otherwise the name is refused like a typo.
            self.get_project(caller, p).await.map_err(|_| {
                Error::invalid(
                    "projects",
                    format!("project '{p}' does not exist or you are not a member"),
                )
            })?;
        }
        let now = self.now();
        let expires_at = self.settings.tokens.expiry(now, expires_in_days)?;
        let secret = format!("{TOKEN_PREFIX}{}", secrets::new_secret()?);
        let token = ApiToken {
            id: secrets::new_id("tok")?,
            user_id: me,
            name: name.to_string(),
            scope,
            projects,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let mut tx = self.store.write().await?;
        tx.insert_token(&token, &hash_secret(&secret)).await?;
        let rec = caller.record(self, Action::TokenCreate.as_str(), label("token", &token.id), None, Outcome::Success, detail!("name" => name, "scope" => scope.as_str(), "projects" => token.projects.join(","), "expires_at" => expires_at.rfc3339()));
        self.commit(tx, rec).await?;
        Ok(TokenCreated { token, secret })
    }

    /// Password login that issues a full-scope token (for the CLI).
    pub async fn login_token(
        &self,
        source: Option<&str>,
        username: &str,
        password: &str,
        name: &str,
        expires_in_days: Option<u32>,
        meta: &RequestMeta,
    ) -> Result<TokenCreated> {
        names::text("name", name, true)?;
        let (user, local) = match source {
            Some(src) => (self.ldap_user(src, username, password, meta).await?, false),
            None => (self.check_password(username, password, meta).await?, true),
        };
        if local {
            let kind = crate::mfa::PendingKind::Token {
                name: name.to_string(),
                expires_in_days,
            };
            if let Some(e) = self.second_factor_gate(&user, kind, meta).await? {
                return Err(e);
            }
            if self.settings.require_mfa {
                return Err(crate::chokepoint::enroll_first());
            }
        }
        let caller = Caller {
            principal: crate::auth::principal(
                &user,
                enclave_core::authz::Credential::Session { mfa: false, local },
            ),
            session_id: None,
            token_id: None,
            meta: meta.clone(),
        };
        self.create_token(&caller, name, TokenScope::Full, Vec::new(), expires_in_days)
            .await
    }

    /// The caller's tokens.
    pub async fn list_tokens(&self, caller: &Caller, page: &PageRequest) -> Result<Page<ApiToken>> {
        let me = caller.principal.user_id.clone();
        self.authorize(
            caller,
            Action::TokenRead,
            &Resource::Token { owner: me.clone() },
            "platform:tokens",
            false,
        )
        .await?;
        Ok(self.store.tokens_of(&me, page).await?)
    }

    async fn own_token(&self, caller: &Caller, action: Action, id: &str) -> Result<ApiToken> {
        let valid_id = crate::secrets::plausible_id(id);
        let token = if valid_id {
            self.store.token_by_id(id).await?
        } else {
            None
        };
        let owner_id = token
            .as_ref()
            .map(|t| t.user_id.clone())
            .unwrap_or_default();
        self.authorize(
            caller,
            action,
            &Resource::Token { owner: owner_id },
            &label("token", id),
            true,
        )
        .await?;
        token.ok_or_else(|| Error::not_found("token", id))
    }

    /// One of the caller's tokens.
    pub async fn get_token(&self, caller: &Caller, id: &str) -> Result<ApiToken> {
        self.own_token(caller, Action::TokenRead, id).await
    }

    /// Revokes one of the caller's tokens (admins may revoke anyone's).
    pub async fn revoke_token(&self, caller: &Caller, id: &str) -> Result<()> {
        let t = self.own_token(caller, Action::TokenRevoke, id).await?;
        let mut tx = self.store.write().await?;
        let live = tx.revoke_token(&t.id, self.now()).await?;
        let rec = caller.record(
            self,
            Action::TokenRevoke.as_str(),
            label("token", id),
            None,
            Outcome::Success,
            detail!("was_live" => live),
        );
        self.commit(tx, rec).await
    }
}
