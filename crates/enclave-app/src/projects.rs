//! Projects and their members.

use crate::chokepoint::{label, Caller};
use crate::{detail, secrets, App};
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::model::{check_project_attributes, Page, PageRequest, Project, ProjectRole};
use enclave_core::{names, Error, ErrorCode, Result};
use enclave_policy::Resource;

/// Memo key of a project list: user id, member-only, cursor, limit.
pub(crate) type ListKey = (String, bool, Option<String>, u32);
/// Memoized page of a project list, with the user's role in each project.
pub(crate) type ListPage = Page<(Project, Option<ProjectRole>)>;

/// Changes to a project; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    /// New description.
    pub description: Option<String>,
    /// New classification label.
    pub classification: Option<String>,
    /// New tag set (replaces all tags).
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// Whether access grants need a project owner's approval.
    pub requires_approval: Option<bool>,
}

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
        let resource = Resource::Project(name.to_string());
        // Whoever may not read the project may not learn that it exists either.
        let hide = action == Action::ProjectRead
            || !self
                .decide(caller, Action::ProjectRead, &resource, None)
                .await
                .allowed;
        self.authorize(caller, action, &resource, &label("project", name), hide)
            .await?;
        let project = project.ok_or_else(|| Error::not_found("project", name))?;
        let your_role = self
            .store
            .project_role(&project.id, &caller.principal.user_id)
            .await?;
        Ok(ProjectView { project, your_role })
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
            false,
        )
        .await?;
        // Every project the caller may read, in name order: the store's pages are filtered
        // by the policy, reading on until the page is full.
        let user_id = caller.principal.user_id.clone();
        let mut items = Vec::new();
        let mut cursor = page.after.clone();
        let next = loop {
            let key: ListKey = (user_id.clone(), false, cursor.clone(), page.limit);
            let now = self.now();
            let raw = match self.project_lists.get(&key, now) {
                (Some(hit), _) => hit,
                (None, generation) => {
                    let request = PageRequest {
                        limit: page.limit,
                        after: cursor.clone(),
                    };
                    let fresh = self.store.list_projects(&request, &user_id, false).await?;
                    self.project_lists.put(key, fresh.clone(), now, generation);
                    fresh
                }
            };
            for (project, your_role) in raw.items {
                if items.len() == page.limit as usize {
                    break;
                }
                let resource = Resource::Project(project.name.clone());
                if self
                    .decide(caller, Action::ProjectRead, &resource, None)
                    .await
                    .allowed
                {
                    items.push(ProjectView { project, your_role });
                }
            }
            if items.len() == page.limit as usize {
                break items.last().map(|v: &ProjectView| v.project.name.clone());
            }
            match raw.next {
                Some(n) => cursor = Some(n),
                None => break None,
            }
        };
        Ok(Page { items, next })
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
                classification: "internal".into(),
                tags: Default::default(),
                requires_approval: true,
                created_at: now,
            },
            your_role,
        })
    }

    /// Updates a project's description and the attributes policies can test
    /// (classification, tags, whether access grants need approval).
    pub async fn update_project(
        &self,
        caller: &Caller,
        name: &str,
        patch: ProjectPatch,
    ) -> Result<ProjectView> {
        let mut v = self
            .find_project(caller, Action::ProjectUpdate, name)
            .await?;
        let mut d = detail!();
        if let Some(desc) = patch.description {
            names::text("description", &desc, false)?;
            v.project.description = desc;
        }
        let attributes_changed = patch.classification.is_some()
            || patch.tags.is_some()
            || patch.requires_approval.is_some();
        if let Some(c) = patch.classification {
            d.insert("classification".into(), c.clone().into());
            v.project.classification = c;
        }
        if let Some(t) = patch.tags {
            d.insert("tags".into(), serde_json::to_value(&t).unwrap_or_default());
            v.project.tags = t;
        }
        if let Some(r) = patch.requires_approval {
            d.insert("requires_approval".into(), r.into());
            v.project.requires_approval = r;
        }
        check_project_attributes(&v.project.classification, &v.project.tags)?;
        let mut tx = self.store.write().await?;
        tx.update_project(&v.project.id, &v.project.description)
            .await?;
        if attributes_changed {
            tx.set_project_facts(&enclave_store::ProjectFacts {
                name: v.project.name.clone(),
                classification: v.project.classification.clone(),
                tags: v.project.tags.clone(),
                requires_approval: v.project.requires_approval,
            })
            .await?;
        }
        let rec = caller.record(
            self,
            Action::ProjectUpdate.as_str(),
            label("project", name),
            Some(name),
            Outcome::Success,
            d,
        );
        self.commit(tx, rec).await?;
        Ok(v)
    }

    /// Deletes a project and its memberships. Refused while any of its notebook servers or
    /// jobs runs: their sandboxes must end first.
    pub async fn delete_project(&self, caller: &Caller, name: &str) -> Result<()> {
        let v = self
            .find_project(caller, Action::ProjectDelete, name)
            .await?;
        let busy = self.running_notebooks_in(name)
            + self
                .store
                .project_jobs(name, crate::jobs::MAX_JOB_LIST)
                .await?
                .iter()
                .filter(|j| !j.state.is_final())
                .count();
        if busy > 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "project {name} still has {busy} running notebook servers or jobs; stop them \
                     first (`enclave notebooks list --project {name}`, `enclave jobs list \
                     --project {name}`)"
                ),
            ));
        }
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
