//! First start: the one-time setup link, and the bootstrap of the first platform admin.

use crate::chokepoint::{label, RequestMeta};
use crate::secrets::{self, hash_secret, plausible_secret};
use crate::users::NewUser;
use crate::App;
use enclave_core::audit::AuditRecord;
use enclave_core::model::User;
use enclave_core::session::not_expired;
use enclave_core::{Error, ErrorCode, Result};

fn unavailable() -> Error {
    Error::new(
        ErrorCode::SetupUnavailable,
        "this setup link is invalid, expired or already used; restart the server for a new one, or run `enclave admin bootstrap`",
    )
}

impl App {
    /// Whether the platform has no account yet.
    pub async fn needs_setup(&self) -> Result<bool> {
        Ok(self.store.count_users().await? == 0)
    }

    /// When no account exists, issues a new one-time setup token (replacing unused ones) and
    /// returns it; otherwise `None`.
    pub async fn issue_setup_token(&self) -> Result<Option<String>> {
        if !self.needs_setup().await? {
            return Ok(None);
        }
        let secret = secrets::new_secret()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.insert_setup_token(
            &secrets::new_id("stp")?,
            &hash_secret(&secret),
            now,
            now.plus(self.settings.setup_ttl),
        )
        .await?;
        let rec = system_record(
            self,
            "setup.issue_link",
            "platform:setup",
            &RequestMeta::local(),
        );
        self.commit(tx, rec).await?;
        Ok(Some(secret))
    }

    /// Whether a setup token is currently usable (for rendering the setup page).
    pub async fn setup_token_valid(&self, token: &str) -> Result<bool> {
        if !plausible_secret(token) {
            return Ok(false);
        }
        Ok(match self.store.setup_token(&hash_secret(token)).await? {
            Some((_, expires, used)) => !used && not_expired(expires, self.now()),
            None => false,
        })
    }

    /// Creates the first platform admin with a setup token. Works once.
    pub async fn complete_setup(
        &self,
        token: &str,
        username: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<User> {
        let input = NewUser {
            username: username.to_string(),
            password: password.to_string(),
            platform_admin: true,
            ..NewUser::default()
        };
        if !plausible_secret(token) {
            return Err(unavailable());
        }
        let Some((id, expires, used)) = self.store.setup_token(&hash_secret(token)).await? else {
            return Err(unavailable());
        };
        if used || !not_expired(expires, self.now()) {
            return Err(unavailable());
        }
        self.validate_new_user(&input)?;
        let hash = self.hasher.hash(password).await?;
        let user = self.user_record(&input)?;
        let mut tx = self.store.write().await?;
        if !tx.use_setup_token(&id, self.now()).await? || tx.count_users().await? != 0 {
            return Err(unavailable());
        }
        let hash = self.seal_password_hash(&mut tx, &user.id, &hash).await?;
        tx.insert_user(&user, Some(&hash)).await?;
        let mut rec = system_record(self, "setup.create_admin", &label("user", username), meta);
        rec.auth = "setup-token".into();
        rec.actor = username.to_string();
        self.commit(tx, rec).await?;
        Ok(user)
    }

    /// Creates a platform admin from the server's shell (`enclave admin bootstrap`). Refused
    /// when the username is taken.
    pub async fn bootstrap_admin(&self, username: &str, password: &str) -> Result<User> {
        let input = NewUser {
            username: username.to_string(),
            password: password.to_string(),
            platform_admin: true,
            ..NewUser::default()
        };
        self.validate_new_user(&input)?;
        let hash = self.hasher.hash(password).await?;
        let user = self.user_record(&input)?;
        let mut tx = self.store.write().await?;
        let hash = self.seal_password_hash(&mut tx, &user.id, &hash).await?;
        tx.insert_user(&user, Some(&hash))
            .await
            .map_err(|e| match e {
                enclave_store::StoreError::Conflict => Error::new(
                    ErrorCode::Conflict,
                    format!("a user named '{username}' already exists"),
                ),
                e => e.into(),
            })?;
        let rec = system_record(
            self,
            "setup.bootstrap_admin",
            &label("user", username),
            &RequestMeta::local(),
        );
        self.commit(tx, rec).await?;
        Ok(user)
    }
}

/// A record of an action by the platform itself (setup, shell commands).
fn system_record(app: &App, action: &str, resource: &str, meta: &RequestMeta) -> AuditRecord {
    meta.record(app.now(), "system", "local", action, resource.to_string())
}
