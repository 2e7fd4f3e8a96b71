//! Groups and their members.

use crate::chokepoint::{label, Caller};
use crate::{detail, secrets, App};
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::model::{Group, Page, PageRequest};
use enclave_core::{names, Error, ErrorCode, Result};
use enclave_policy::Resource;

impl App {
    async fn find_group(&self, caller: &Caller, action: Action, name: &str) -> Result<Group> {
        let group = if names::slug("name", name).is_ok() {
            self.store.group_by_name(name).await?
        } else {
            None
        };
        let id = group.as_ref().map(|g| g.id.clone()).unwrap_or_default();
        self.authorize(
            caller,
            action,
            &Resource::Group(id),
            &label("group", name),
            false,
        )
        .await?;
        group.ok_or_else(|| Error::not_found("group", name))
    }

    /// Lists groups.
    pub async fn list_groups(&self, caller: &Caller, page: &PageRequest) -> Result<Page<Group>> {
        self.authorize(
            caller,
            Action::GroupList,
            &Resource::Platform,
            "platform:groups",
            false,
        )
        .await?;
        Ok(self.store.list_groups(page).await?)
    }

    /// Reads a group.
    pub async fn get_group(&self, caller: &Caller, name: &str) -> Result<Group> {
        self.find_group(caller, Action::GroupRead, name).await
    }

    /// Creates a group.
    pub async fn create_group(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
    ) -> Result<Group> {
        self.authorize(
            caller,
            Action::GroupCreate,
            &Resource::Platform,
            &label("group", name),
            false,
        )
        .await?;
        names::slug("name", name)?;
        names::text("description", description, false)?;
        let id = secrets::new_id("grp")?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.insert_group(&id, name, description, now)
            .await
            .map_err(|e| match e {
                enclave_store::StoreError::Conflict => Error::new(
                    ErrorCode::Conflict,
                    format!("a group named '{name}' already exists"),
                )
                .with("field", "name"),
                e => e.into(),
            })?;
        let rec = caller.record(
            self,
            Action::GroupCreate.as_str(),
            label("group", name),
            None,
            Outcome::Success,
            detail!(),
        );
        self.commit(tx, rec).await?;
        Ok(Group {
            id,
            name: name.to_string(),
            description: description.to_string(),
            member_count: 0,
            created_at: now,
        })
    }

    /// Updates a group's description.
    pub async fn update_group(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<&str>,
    ) -> Result<Group> {
        let mut g = self.find_group(caller, Action::GroupUpdate, name).await?;
        if let Some(d) = description {
            names::text("description", d, false)?;
            g.description = d.to_string();
        }
        let mut tx = self.store.write().await?;
        tx.update_group(&g.id, &g.description).await?;
        let rec = caller.record(
            self,
            Action::GroupUpdate.as_str(),
            label("group", name),
            None,
            Outcome::Success,
            detail!(),
        );
        self.commit(tx, rec).await?;
        Ok(g)
    }

    /// Deletes a group.
    pub async fn delete_group(&self, caller: &Caller, name: &str) -> Result<()> {
        let g = self.find_group(caller, Action::GroupDelete, name).await?;
        let mut tx = self.store.write().await?;
        tx.delete_group(&g.id).await?;
        let rec = caller.record(
            self,
            Action::GroupDelete.as_str(),
            label("group", name),
            None,
            Outcome::Success,
            detail!("members" => g.member_count),
        );
        self.commit(tx, rec).await
    }

    /// Lists a group's members.
    pub async fn group_members(
        &self,
        caller: &Caller,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<String>> {
        let g = self.find_group(caller, Action::GroupRead, name).await?;
        Ok(self.store.group_members(&g.id, page).await?)
    }

    /// Adds a user to a group (idempotent).
    pub async fn add_group_member(
        &self,
        caller: &Caller,
        name: &str,
        username: &str,
    ) -> Result<()> {
        let g = self
            .find_group(caller, Action::GroupManageMembers, name)
            .await?;
        let user = self.find_user(username).await?;
        let mut tx = self.store.write().await?;
        let added = tx.add_group_member(&g.id, &user.id, self.now()).await?;
        let rec = caller.record(
            self,
            "group.add_member",
            label("group", name),
            None,
            Outcome::Success,
            detail!("user" => username, "changed" => added),
        );
        self.commit(tx, rec).await
    }

    /// Removes a user from a group.
    pub async fn remove_group_member(
        &self,
        caller: &Caller,
        name: &str,
        username: &str,
    ) -> Result<()> {
        let g = self
            .find_group(caller, Action::GroupManageMembers, name)
            .await?;
        let user = self.find_user(username).await?;
        let mut tx = self.store.write().await?;
        if !tx.remove_group_member(&g.id, &user.id).await? {
            return Err(Error::not_found("member", username));
        }
        let rec = caller.record(
            self,
            "group.remove_member",
            label("group", name),
            None,
            Outcome::Success,
            detail!("user" => username),
        );
        self.commit(tx, rec).await
    }

    /// Makes group `child` a member of group `name`: its members, transitively, hold what
    /// `name`'s members hold. Refuses cycles.
    pub async fn add_subgroup(&self, caller: &Caller, name: &str, child: &str) -> Result<()> {
        let g = self
            .find_group(caller, Action::GroupManageMembers, name)
            .await?;
        let c = self.find_group(caller, Action::GroupRead, child).await?;
        let edges = self.store.authz_facts().await?.group_groups;
        if enclave_core::access::nesting_creates_cycle(&edges, &g.id, &c.id) {
            return Err(Error::invalid(
                "child",
                format!("'{child}' already contains '{name}' (directly or through other groups); groups cannot contain themselves"),
            ));
        }
        let mut tx = self.store.write().await?;
        tx.add_group_to_group(&g.id, &c.id, self.now()).await?;
        let rec = caller.record(
            self,
            "group.add_subgroup",
            label("group", name),
            None,
            Outcome::Success,
            detail!("group" => child),
        );
        self.commit(tx, rec).await
    }

    /// Removes group `child` from group `name`.
    pub async fn remove_subgroup(&self, caller: &Caller, name: &str, child: &str) -> Result<()> {
        let g = self
            .find_group(caller, Action::GroupManageMembers, name)
            .await?;
        let c = self.find_group(caller, Action::GroupRead, child).await?;
        let mut tx = self.store.write().await?;
        if tx.remove_group_from_group(&g.id, &c.id).await? == 0 {
            return Err(Error::not_found("subgroup", child));
        }
        let rec = caller.record(
            self,
            "group.remove_subgroup",
            label("group", name),
            None,
            Outcome::Success,
            detail!("group" => child),
        );
        self.commit(tx, rec).await
    }
}
