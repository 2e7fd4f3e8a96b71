//! Time-bound support and admin access to a project: requested with a reason, approved by a
//! project owner when the project requires it (never by the requester), visible to the
//! project's members, and over at its expiry for every open session (decisions compare the
//! grant's window with the request's time).

use crate::chokepoint::{label, Caller};
use crate::secrets::{self, plausible_id};
use crate::{detail, App};
use enclave_core::access::{check_grant_request, AccessGrant, GrantRole, GrantStatus};
use enclave_core::audit::Outcome;
use enclave_core::authz::Action;
use enclave_core::{names, Error, ErrorCode, Result};
use enclave_policy::Resource;

/// How many grants a project's list shows.
const GRANT_LIST_LIMIT: u32 = 200;

fn requester(g: &AccessGrant) -> serde_json::Value {
    serde_json::json!({
        "requester": { "__entity": { "type": "User", "id": g.grantee_id } },
        "grant_role": g.role.as_str(),
        "duration_secs": g.duration_secs,
    })
}

impl App {
    /// A project's grants, newest first, for its members and for governance roles.
    pub async fn list_grants(&self, caller: &Caller, project: &str) -> Result<Vec<AccessGrant>> {
        names::slug("project", project).map_err(|_| Error::not_found("project", project))?;
        let resource = Resource::Project(project.to_string());
        self.authorize(
            caller,
            Action::GrantList,
            &resource,
            &label("project", &format!("{project}/grants")),
            true,
        )
        .await?;
        if self.store.project_by_name(project).await?.is_none() {
            return Err(Error::not_found("project", project));
        }
        Ok(self.store.list_grants(project, GRANT_LIST_LIMIT).await?)
    }

    /// Requests time-bound access to a project. It starts at once when the project does not
    /// require approval; otherwise it waits for a project owner.
    pub async fn request_grant(
        &self,
        caller: &Caller,
        project: &str,
        role: GrantRole,
        reason: &str,
        duration_secs: i64,
    ) -> Result<AccessGrant> {
        names::slug("project", project).map_err(|_| Error::not_found("project", project))?;
        let extra = serde_json::json!({
            "grant_role": role.as_str(),
            "duration_secs": duration_secs,
        });
        self.authorize_with(
            caller,
            Action::GrantRequest,
            &Resource::Project(project.to_string()),
            Some(extra),
            &label("project", &format!("{project}/grants")),
            false,
        )
        .await?;
        let max = i64::try_from(self.settings.max_grant.as_secs()).unwrap_or(i64::MAX);
        check_grant_request(reason, duration_secs, max)?;
        let p = self
            .store
            .project_by_name(project)
            .await?
            .ok_or_else(|| Error::not_found("project", project))?;
        let facts = self
            .store
            .project_facts(project)
            .await?
            .ok_or_else(|| Error::not_found("project", project))?;
        let now = self.now();
        let mut grant = AccessGrant {
            id: secrets::new_id("grt")?,
            project: project.to_string(),
            grantee_id: caller.principal.user_id.clone(),
            grantee: caller.principal.username.clone(),
            role,
            reason: reason.trim().to_string(),
            duration_secs,
            status: GrantStatus::Pending,
            requested_at: now,
            decided_by: None,
            decided_at: None,
            starts_at: None,
            expires_at: None,
            revoked_by: None,
            revoked_at: None,
        };
        if !facts.requires_approval {
            grant.activate(None, now);
        }
        let mut tx = self.store.write().await?;
        tx.insert_grant(&grant, &p.id).await?;
        let rec = caller.record(
            self,
            Action::GrantRequest.as_str(),
            label("grant", &grant.id),
            Some(project),
            Outcome::Success,
            detail!(
                "role" => role.as_str(),
                "reason" => grant.reason.clone(),
                "duration_secs" => duration_secs,
                "status" => grant.status.as_str(),
            ),
        );
        self.commit(tx, rec).await?;
        Ok(grant)
    }

    async fn find_grant(&self, caller: &Caller, action: Action, id: &str) -> Result<AccessGrant> {
        let grant = if plausible_id(id) {
            self.store.grant(id).await?
        } else {
            None
        };
        let Some(grant) = grant else {
            // Decided like any other request, then reported as not found.
            self.authorize(
                caller,
                action,
                &Resource::Platform,
                &label("grant", id),
                true,
            )
            .await?;
            return Err(Error::not_found("grant", id));
        };
        let visible = self
            .decide(
                caller,
                Action::GrantList,
                &Resource::Project(grant.project.clone()),
                None,
            )
            .await
            .allowed;
        self.authorize_with(
            caller,
            action,
            &Resource::Project(grant.project.clone()),
            Some(requester(&grant)),
            &label("grant", id),
            !visible,
        )
        .await?;
        Ok(grant)
    }

    /// Approves (`approve = true`) or denies a pending grant. The requester cannot decide on
    /// their own grant.
    pub async fn decide_grant(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
    ) -> Result<AccessGrant> {
        let mut grant = self.find_grant(caller, Action::GrantApprove, id).await?;
        if grant.grantee_id == caller.principal.user_id {
            return Err(Error::new(
                ErrorCode::Forbidden,
                "you cannot decide on your own access request; ask a project owner",
            ));
        }
        if grant.status != GrantStatus::Pending {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("this grant is {}, not pending", grant.status.as_str()),
            ));
        }
        let now = self.now();
        if approve {
            grant.activate(Some(&caller.principal.username), now);
        } else {
            grant.status = GrantStatus::Denied;
            grant.decided_by = Some(caller.principal.username.clone());
            grant.decided_at = Some(now);
        }
        let mut tx = self.store.write().await?;
        if tx.update_grant(&grant, GrantStatus::Pending).await? == 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                "someone else decided on this grant first; reload it",
            ));
        }
        let rec = caller.record(
            self,
            Action::GrantApprove.as_str(),
            label("grant", id),
            Some(&grant.project),
            Outcome::Success,
            detail!(
                "decision" => if approve { "approved" } else { "denied" },
                "grantee" => grant.grantee.clone(),
                "role" => grant.role.as_str(),
            ),
        );
        self.commit(tx, rec).await?;
        Ok(grant)
    }

    /// Ends a pending or active grant early.
    pub async fn revoke_grant(&self, caller: &Caller, id: &str) -> Result<AccessGrant> {
        let mut grant = self.find_grant(caller, Action::GrantRevoke, id).await?;
        let expected = grant.status;
        let now = self.now();
        if !matches!(expected, GrantStatus::Pending | GrantStatus::Active)
            || (expected == GrantStatus::Active && !grant.in_force(now))
        {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("this grant is already {}", grant.display_status(now)),
            ));
        }
        grant.status = GrantStatus::Revoked;
        grant.revoked_by = Some(caller.principal.username.clone());
        grant.revoked_at = Some(now);
        let mut tx = self.store.write().await?;
        if tx.update_grant(&grant, expected).await? == 0 {
            return Err(Error::new(
                ErrorCode::Conflict,
                "this grant changed meanwhile; reload it",
            ));
        }
        let rec = caller.record(
            self,
            Action::GrantRevoke.as_str(),
            label("grant", id),
            Some(&grant.project),
            Outcome::Success,
            detail!("grantee" => grant.grantee.clone(), "role" => grant.role.as_str()),
        );
        self.commit(tx, rec).await?;
        Ok(grant)
    }
}
