//! Account administration.

use crate::auth::{account_key, check_new_password};
use crate::chokepoint::{label, Caller};
use crate::{detail, secrets, App};
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::model::{Page, PageRequest, User};
use enclave_core::{names, Error, ErrorCode, Result};
use enclave_policy::Resource;

/// Input for a new account.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Initial password (checked against the password policy).
    pub password: String,
    /// Display name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// Platform admin.
    pub platform_admin: bool,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// Disable (true) or enable (false).
    pub disabled: Option<bool>,
    /// Grant or remove platform admin.
    pub platform_admin: Option<bool>,
}

impl App {
    pub(crate) fn validate_new_user(&self, u: &NewUser) -> Result<()> {
        names::username("username", &u.username)?;
        names::text("display_name", &u.display_name, false)?;
        names::email("email", &u.email)?;
        check_new_password(&u.password, &u.username)
    }

    pub(crate) fn user_record(&self, u: &NewUser) -> Result<User> {
        Ok(User {
            id: secrets::new_id("usr")?,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            platform_admin: u.platform_admin,
            disabled: false,
            created_at: self.now(),
        })
    }

    /// Lists accounts, each with whether it is locked out now.
    pub async fn list_users(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<(User, bool)>> {
        self.authorize(
            caller,
            Action::UserList,
            &Resource::Platform,
            "platform:users",
            false,
        )
        .await?;
        let page = self.store.list_users(page).await?;
        let locked = self.store.locked_keys(&account_key(""), self.now()).await?;
        let items = page
            .items
            .into_iter()
            .map(|u| {
                let is_locked = locked.contains(&account_key(&u.username));
                (u, is_locked)
            })
            .collect();
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Looks up one account (admins; users may read their own).
    pub async fn get_user(&self, caller: &Caller, username: &str) -> Result<User> {
        // Usernames are unique, so the caller's own name is the caller's own account.
        let action = if username == caller.principal.username {
            Action::SelfRead
        } else {
            Action::UserRead
        };
        self.find_user_authorized(caller, action, username, true)
            .await
    }

    pub(crate) async fn find_user(&self, username: &str) -> Result<User> {
        names::username("username", username).map_err(|_| Error::not_found("user", username))?;
        self.store
            .user_by_name(username)
            .await?
            .ok_or_else(|| Error::not_found("user", username))
    }

    /// Creates an account.
    pub async fn create_user(&self, caller: &Caller, input: NewUser) -> Result<User> {
        self.authorize(
            caller,
            Action::UserCreate,
            &Resource::Platform,
            &label("user", &input.username),
            false,
        )
        .await?;
        self.validate_new_user(&input)?;
        let user = self.user_record(&input)?;
        let hash = self.hasher.hash(&input.password).await?;
        let mut tx = self.store.write().await?;
        let hash = self.seal_password_hash(&mut tx, &user.id, &hash).await?;
        tx.insert_user(&user, Some(&hash))
            .await
            .map_err(|e| match e {
                enclave_store::StoreError::Conflict => Error::new(
                    ErrorCode::Conflict,
                    format!("a user named '{}' already exists", input.username),
                )
                .with("field", "username"),
                e => e.into(),
            })?;
        let rec = caller.record(
            self,
            Action::UserCreate.as_str(),
            label("user", &user.username),
            None,
            Outcome::Success,
            detail!("platform_admin" => user.platform_admin),
        );
        self.commit(tx, rec).await?;
        Ok(user)
    }

    /// Updates an account. Disabling ends its sessions and revokes its tokens. The last enabled
    /// platform admin cannot be disabled or demoted.
    pub async fn update_user(
        &self,
        caller: &Caller,
        username: &str,
        patch: UserPatch,
    ) -> Result<User> {
        let mut user = self
            .find_user_authorized(caller, Action::UserUpdate, username, false)
            .await?;
        if let Some(d) = &patch.display_name {
            names::text("display_name", d, false)?;
            user.display_name = d.clone();
        }
        if let Some(e) = &patch.email {
            names::email("email", e)?;
            user.email = e.clone();
        }
        let was_active_admin = user.platform_admin && !user.disabled;
        if let Some(d) = patch.disabled {
            user.disabled = d;
        }
        if let Some(a) = patch.platform_admin {
            user.platform_admin = a;
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        if was_active_admin
            && (!user.platform_admin || user.disabled)
            && tx.other_admins(&user.id).await? == 0
        {
            return Err(Error::new(
                ErrorCode::Conflict,
                "this is the last enabled platform admin; make another user admin first",
            ));
        }
        tx.update_user(&user, now).await?;
        let mut d = detail!();
        if let Some(x) = patch.disabled {
            d.insert("disabled".into(), x.into());
        }
        if let Some(x) = patch.platform_admin {
            d.insert("platform_admin".into(), x.into());
        }
        if patch.display_name.is_some() || patch.email.is_some() {
            d.insert("profile".into(), true.into());
        }
        if user.disabled {
            let s = tx.delete_sessions_of(&user.id).await?;
            let t = tx.revoke_tokens_of(&user.id, now).await?;
            d.insert("sessions_ended".into(), s.into());
            d.insert("tokens_revoked".into(), t.into());
        }
        let rec = caller.record(
            self,
            Action::UserUpdate.as_str(),
            label("user", username),
            None,
            Outcome::Success,
            d,
        );
        self.commit(tx, rec).await?;
        if user.disabled {
            // Its jobs and notebook servers end within `access.deprovision_within`.
            self.wake_deprovisioning();
        }
        Ok(user)
    }

    /// Loads a user and authorizes `action` on it; with `hide`, a denial reads as `not_found`.
    pub(crate) async fn find_user_authorized(
        &self,
        caller: &Caller,
        action: Action,
        username: &str,
        hide: bool,
    ) -> Result<User> {
        let user = self.find_user(username).await;
        let target = Resource::User(user.as_ref().map(|u| u.id.clone()).unwrap_or_default());
        self.authorize(caller, action, &target, &label("user", username), hide)
            .await?;
        user
    }

    /// Deletes an account with its sessions, tokens and memberships. Admins cannot delete
    /// themselves (use another admin), so the platform never loses its last admin this way;
    /// nor can a project lose its only owner.
    pub async fn delete_user(&self, caller: &Caller, username: &str) -> Result<()> {
        let user = self
            .find_user_authorized(caller, Action::UserDelete, username, false)
            .await?;
        if user.id == caller.principal.user_id {
            return Err(Error::new(
                ErrorCode::Conflict,
                "you cannot delete your own account; ask another platform admin",
            ));
        }
        let mut tx = self.store.write().await?;
        if user.platform_admin && !user.disabled && tx.other_admins(&user.id).await? == 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                "this is the last enabled platform admin",
            ));
        }
        let orphaned = tx.projects_only_owned_by(&user.id).await?;
        if !orphaned.is_empty() {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "'{username}' is the only owner of {}; make someone else owner first",
                    orphaned.join(", ")
                ),
            )
            .with("projects", orphaned));
        }
        tx.delete_user(&user.id).await?;
        let rec = caller.record(
            self,
            Action::UserDelete.as_str(),
            label("user", username),
            None,
            Outcome::Success,
            detail!(),
        );
        self.commit(tx, rec).await
    }

    /// Sets another user's password (admin reset); ends the user's sessions.
    pub async fn reset_password(
        &self,
        caller: &Caller,
        username: &str,
        password: &str,
    ) -> Result<()> {
        let user = self
            .find_user_authorized(caller, Action::UserResetPassword, username, false)
            .await?;
        check_new_password(password, &user.username)?;
        let hash = self.hasher.hash(password).await?;
        let mut tx = self.store.write().await?;
        let hash = self.seal_password_hash(&mut tx, &user.id, &hash).await?;
        tx.set_password(&user.id, &hash, self.now()).await?;
        let ended = tx.delete_sessions_of(&user.id).await?;
        let rec = caller.record(
            self,
            Action::UserResetPassword.as_str(),
            label("user", username),
            None,
            Outcome::Success,
            detail!("sessions_ended" => ended),
        );
        self.commit(tx, rec).await
    }

    /// Clears a login lockout on an account.
    pub async fn unlock_user(&self, caller: &Caller, username: &str) -> Result<()> {
        self.find_user_authorized(caller, Action::UserUnlock, username, false)
            .await?;
        let mut tx = self.store.write().await?;
        let was = tx.clear_throttle(&account_key(username)).await?;
        let rec = caller.record(
            self,
            Action::UserUnlock.as_str(),
            label("user", username),
            None,
            Outcome::Success,
            detail!("had_failures" => was),
        );
        self.commit(tx, rec).await
    }

    /// Whether the account is currently locked out.
    pub async fn is_locked(&self, username: &str) -> Result<bool> {
        let s = self.store.throttle(&account_key(username)).await?;
        Ok(self.settings.account_throttle.is_locked(&s, self.now()))
    }

    /// Ends every session of a user.
    pub async fn revoke_sessions(&self, caller: &Caller, username: &str) -> Result<()> {
        let user = self
            .find_user_authorized(caller, Action::UserRevokeSessions, username, false)
            .await?;
        let mut tx = self.store.write().await?;
        let n = tx.delete_sessions_of(&user.id).await?;
        let rec = caller.record(
            self,
            Action::UserRevokeSessions.as_str(),
            label("user", username),
            None,
            Outcome::Success,
            detail!("sessions_ended" => n),
        );
        self.commit(tx, rec).await
    }
}
