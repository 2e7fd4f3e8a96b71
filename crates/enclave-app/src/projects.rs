//! Projects and their members.

use crate::chokepoint::{label, Caller};
use crate::{detail, secrets, App};
use enclave_core::audit::Outcome;
use enclave_core::authz::{Action, Credential, Resource};
use enclave_core::model::{Page, PageRequest, Project, ProjectRole};
use enclave_core::{names, Error, ErrorCode, Result};

/// Memo key of a project list: user id, member-only, cursor, limit.
pub(crate) type ListKey = (String, bool, Option<String>, u32);
/// Memoized page of a project list, with the user's role in each project.
pub(crate) type ListPage = Page<(Project, Option<ProjectRole>)>;

/// A project as seen by a caller: the project and the caller's role in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectView {
    /// The project.
    pub project: Project,
    /// The caller's role, if a member.
    pub your_role: Option<ProjectRole>,
}

impl App {
    /// Loads a project and authorizes `action` on it. Non-members get `not_found`, so that
    /// projects stay invisible to other tenants.
    async fn find_project(
        &self,
        caller: &Caller,
        action: Action,
        name: &str,
    ) -> Result<ProjectView> {
        let project = if names::slug("name", name).is_ok() {
            self.store.project_by_name(name).await?
        } else {
            None
        };
        let role = match &project {
            Some(p) => {
                self.store
                    .project_role(&p.id, &caller.principal.user_id)
                    .await?
            }
            None => None,
        };
        let resource = Resource::Project {
            name: name.to_string(),
            role,
        };
        let hide = role.is_none();
        self.authorize(
            caller,
            action,
            &resource,
            &label("project", name),
            Some(name),
            hide,
        )
        .await?;
        let project = project.ok_or_else(|| Error::not_found("project", name))?;
        Ok(ProjectView {
            project,
            your_role: role,
        })
    }

    /// Lists the projects the caller can see: all for platform admins, otherwise those where
    /// the caller has a role; a project-limited token narrows this further.
    pub async fn list_projects(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<ProjectView>> {
        self.authorize(
            caller,
            Action::ProjectList,
            &Resource::Platform,
            "platform:projects",
            None,
            false,
        )
        .await?;
        let member_only = !caller.principal.platform_admin;
        let limit: Option<&[String]> = match &caller.principal.credential {
            Credential::Token { projects, .. } if !projects.is_empty() => Some(projects),
            _ => None,
        };
        let key: ListKey = (
            caller.principal.user_id.clone(),
            member_only,
            page.after.clone(),
            page.limit,
        );
        let now = self.now();
        let mut page = match self.project_lists.get(&key, now) {
            (Some(hit), _) => hit,
            (None, generation) => {
                let fresh = self
                    .store
                    .list_projects(page, &caller.principal.user_id, member_only)
                    .await?;
                self.project_lists.put(key, fresh.clone(), now, generation);
                fresh
            }
        };
        // A project-limited token sees only its projects (a page may then hold fewer items).
        if let Some(allowed) = limit {
            page.items.retain(|(p, _)| allowed.contains(&p.name));
        }
        let items = page
            .items
            .into_iter()
            .map(|(project, your_role)| ProjectView { project, your_role })
            .collect();
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Reads a project.
    pub async fn get_project(&self, caller: &Caller, name: &str) -> Result<ProjectView> {
        self.find_project(caller, Action::ProjectRead, name).await
    }

    /// Creates a project; `owner` (default: the caller) becomes its first owner.
    pub async fn create_project(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
        owner: Option<&str>,
    ) -> Result<ProjectView> {
        self.authorize(
            caller,
            Action::ProjectCreate,
            &Resource::Platform,
            &label("project", name),
            Some(name),
            false,
        )
        .await?;
        names::slug("name", name)?;
        names::text("description", description, false)?;
        let owner_user = match owner {
            Some(o) => self
                .find_user(o)
                .await
                .map_err(|_| Error::invalid("owner", format!("owner '{o}' is not a user")))?,
            None => self
                .store
                .user_by_name(&caller.principal.username)
                .await?
                .ok_or_else(Error::unauthenticated)?,
        };
        let id = secrets::new_id("prj")?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        tx.insert_project(&id, name, description, now)
            .await
            .map_err(|e| match e {
                enclave_store::StoreError::Conflict => Error::new(
                    ErrorCode::Conflict,
                    format!("a project named '{name}' already exists"),
                )
                .with("field", "name"),
                e => e.into(),
            })?;
        tx.set_project_member(&id, &owner_user.id, ProjectRole::Owner, now)
            .await?;
        let rec = caller.record(
            self,
            Action::ProjectCreate.as_str(),
            label("project", name),
            Some(name),
            Outcome::Success,
            detail!("owner" => owner_user.username.clone()),
        );
        self.commit(tx, rec).await?;
        let your_role = (owner_user.id == caller.principal.user_id).then_some(ProjectRole::Owner);
        Ok(ProjectView {
            project: Project {
                id,
                name: name.to_string(),
                description: description.to_string(),
                owner: owner_user.username,
                member_count: 1,
                created_at: now,
            },
            your_role,
        })
    }

    /// Updates a project's description.
    pub async fn update_project(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<&str>,
    ) -> Result<ProjectView> {
        let mut v = self
            .find_project(caller, Action::ProjectUpdate, name)
            .await?;
        if let Some(d) = description {
            names::text("description", d, false)?;
            v.project.description = d.to_string();
        }
        let mut tx = self.store.write().await?;
        tx.update_project(&v.project.id, &v.project.description)
            .await?;
        let rec = caller.record(
            self,
            Action::ProjectUpdate.as_str(),
            label("project", name),
            Some(name),
            Outcome::Success,
            detail!(),
        );
        self.commit(tx, rec).await?;
        Ok(v)
    }

    /// Deletes a project and its memberships.
    pub async fn delete_project(&self, caller: &Caller, name: &str) -> Result<()> {
        let v = self
            .find_project(caller, Action::ProjectDelete, name)
            .await?;
        let mut tx = self.store.write().await?;
        tx.delete_project(&v.project.id).await?;
        let rec = caller.record(
            self,
            Action::ProjectDelete.as_str(),
            label("project", name),
            Some(name),
            Outcome::Success,
            detail!(),
        );
        self.commit(tx, rec).await
    }

    /// Lists a project's members with their roles.
    pub async fn project_members(
        &self,
        caller: &Caller,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<(String, ProjectRole)>> {
        let v = self.find_project(caller, Action::ProjectRead, name).await?;
        Ok(self.store.project_members(&v.project.id, page).await?)
    }

    /// Adds a member or changes a member's role. A project never loses its last owner.
    pub async fn set_project_member(
        &self,
        caller: &Caller,
        name: &str,
        username: &str,
        role: ProjectRole,
    ) -> Result<()> {
        let v = self
            .find_project(caller, Action::ProjectManageMembers, name)
            .await?;
        let user = self.find_user(username).await?;
        let mut tx = self.store.write().await?;
        let current = self.store.project_role(&v.project.id, &user.id).await?;
        if current == Some(ProjectRole::Owner)
            && role != ProjectRole::Owner
            && tx.count_owners(&v.project.id).await? <= 1
        {
            return Err(Error::new(
                ErrorCode::Conflict,
                "a project needs at least one owner; make someone else owner first",
            ));
        }
        tx.set_project_member(&v.project.id, &user.id, role, self.now())
            .await?;
        let rec = caller.record(self, "project.set_member", label("project", name), Some(name), Outcome::Success, detail!("user" => username, "role" => role.as_str(), "previous" => current.map(|r| r.as_str())));
        self.commit(tx, rec).await
    }

    /// Removes a member. A project never loses its last owner.
    pub async fn remove_project_member(
        &self,
        caller: &Caller,
        name: &str,
        username: &str,
    ) -> Result<()> {
        let v = self
            .find_project(caller, Action::ProjectManageMembers, name)
            .await?;
        let user = self.find_user(username).await?;
        let mut tx = self.store.write().await?;
        let current = self.store.project_role(&v.project.id, &user.id).await?;
        if current == Some(ProjectRole::Owner) && tx.count_owners(&v.project.id).await? <= 1 {
            return Err(Error::new(
                ErrorCode::Conflict,
                "a project needs at least one owner; make someone else owner first",
            ));
        }
        if !tx.remove_project_member(&v.project.id, &user.id).await? {
            return Err(Error::not_found("member", username));
        }
        let rec = caller.record(
            self,
            "project.remove_member",
            label("project", name),
            Some(name),
            Outcome::Success,
            detail!("user" => username),
        );
        self.commit(tx, rec).await
    }
}
