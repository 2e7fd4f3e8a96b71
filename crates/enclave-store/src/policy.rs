//! Storage of the facts authorization depends on: role bindings, custom policies, access grants,
//! nested groups and project attributes, plus [`Store::authz_facts`], one consistent read of
//! everything the policy engine's in-memory directory is built from.

use crate::writes::WriteTx;
use crate::{map_err, Store, StoreResult};
use enclave_core::access::{
    AccessGrant, CustomPolicy, GrantRole, GrantStatus, RoleBinding, SubjectKind,
};
use enclave_core::model::ProjectRole;
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// A user as authorization sees it.
#[derive(Debug, Clone)]
pub struct UserFact {
    /// User id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Platform administrator flag.
    pub platform_admin: bool,
    /// Disabled accounts are denied everything.
    pub disabled: bool,
}

/// A project's attributes that policies can test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFacts {
    /// Project name.
    pub name: String,
    /// Data classification label (e.g. `public`, `internal`, `confidential`, `restricted`).
    pub classification: String,
    /// Free-form tags (key → value).
    pub tags: std::collections::BTreeMap<String, String>,
    /// Whether support and admin grants need a project owner's approval.
    pub requires_approval: bool,
}

/// Everything the policy engine's directory is built from, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct AuthzFacts {
    /// The value of the change counter this read corresponds to.
    pub generation: i64,
    /// Every user.
    pub users: Vec<UserFact>,
    /// Every group, `(id, name)`.
    pub groups: Vec<(String, String)>,
    /// Direct user memberships, `(group id, user id)`.
    pub group_members: Vec<(String, String)>,
    /// Nested groups, `(parent group id, child group id)`.
    pub group_groups: Vec<(String, String)>,
    /// Every project.
    pub projects: Vec<ProjectFacts>,
    /// Project memberships, `(project name, user id, role)`.
    pub memberships: Vec<(String, String, ProjectRole)>,
    /// Every role binding (expired ones included; the engine filters by time).
    pub bindings: Vec<RoleBinding>,
    /// Grants in the `active` state (the engine checks their window).
    pub grants: Vec<AccessGrant>,
    /// Every custom policy.
    pub policies: Vec<CustomPolicy>,
    /// Running workloads.
    pub workloads: Vec<crate::WorkloadFact>,
}

pub(crate) fn s(r: &SqliteRow, c: &str) -> StoreResult<String> {
    r.try_get(c).map_err(map_err)
}

pub(crate) fn ts(r: &SqliteRow, c: &str) -> StoreResult<Option<Timestamp>> {
    Ok(r.try_get::<Option<i64>, _>(c)
        .map_err(map_err)?
        .map(Timestamp))
}

pub(crate) fn corrupt(what: &'static str) -> crate::StoreError {
    crate::StoreError::Corrupt(what)
}

const BINDING_SELECT: &str = "SELECT b.id, b.subject_kind, b.subject_id, b.role, p.name AS project,
    b.expires_at, b.created_by, b.created_at,
    COALESCE(u.username, g.name, b.subject_id) AS subject_name
    FROM role_bindings b
    LEFT JOIN projects p ON p.id = b.project_id
    LEFT JOIN users u ON b.subject_kind = 'user' AND u.id = b.subject_id
    LEFT JOIN groups g ON b.subject_kind = 'group' AND g.id = b.subject_id";

fn binding(r: &SqliteRow) -> StoreResult<RoleBinding> {
    Ok(RoleBinding {
        id: s(r, "id")?,
        subject_kind: SubjectKind::parse(&s(r, "subject_kind")?)
            .ok_or(corrupt("role_bindings.subject_kind"))?,
        subject_id: s(r, "subject_id")?,
        subject_name: s(r, "subject_name")?,
        role: s(r, "role")?,
        project: r.try_get("project").map_err(map_err)?,
        expires_at: ts(r, "expires_at")?,
        created_by: s(r, "created_by")?,
        created_at: Timestamp(r.try_get("created_at").map_err(map_err)?),
    })
}

const POLICY_SELECT: &str = "SELECT c.id, c.name, p.name AS project, c.description, c.body,
    c.created_by, c.created_at, c.updated_at
    FROM custom_policies c LEFT JOIN projects p ON p.id = c.project_id";

fn policy(r: &SqliteRow) -> StoreResult<CustomPolicy> {
    Ok(CustomPolicy {
        id: s(r, "id")?,
        name: s(r, "name")?,
        project: r.try_get("project").map_err(map_err)?,
        description: s(r, "description")?,
        body: s(r, "body")?,
        created_by: s(r, "created_by")?,
        created_at: Timestamp(r.try_get("created_at").map_err(map_err)?),
        updated_at: Timestamp(r.try_get("updated_at").map_err(map_err)?),
    })
}

const GRANT_SELECT: &str = "SELECT a.id, p.name AS project, a.grantee_id, u.username AS grantee,
    a.role, a.reason, a.duration_secs, a.status, a.requested_at, a.decided_by, a.decided_at,
    a.starts_at, a.expires_at, a.revoked_by, a.revoked_at
    FROM access_grants a JOIN projects p ON p.id = a.project_id JOIN users u ON u.id = a.grantee_id";

fn grant(r: &SqliteRow) -> StoreResult<AccessGrant> {
    Ok(AccessGrant {
        id: s(r, "id")?,
        project: s(r, "project")?,
        grantee_id: s(r, "grantee_id")?,
        grantee: s(r, "grantee")?,
        role: GrantRole::parse(&s(r, "role")?).ok_or(corrupt("access_grants.role"))?,
        reason: s(r, "reason")?,
        duration_secs: r.try_get("duration_secs").map_err(map_err)?,
        status: GrantStatus::parse(&s(r, "status")?).ok_or(corrupt("access_grants.status"))?,
        requested_at: Timestamp(r.try_get("requested_at").map_err(map_err)?),
        decided_by: r.try_get("decided_by").map_err(map_err)?,
        decided_at: ts(r, "decided_at")?,
        starts_at: ts(r, "starts_at")?,
        expires_at: ts(r, "expires_at")?,
        revoked_by: r.try_get("revoked_by").map_err(map_err)?,
        revoked_at: ts(r, "revoked_at")?,
    })
}

fn project_facts(r: &SqliteRow) -> StoreResult<ProjectFacts> {
    let tags: String = s(r, "tags")?;
    Ok(ProjectFacts {
        name: s(r, "name")?,
        classification: s(r, "classification")?,
        tags: serde_json::from_str(&tags).map_err(|_| corrupt("projects.tags"))?,
        requires_approval: r.try_get("requires_approval").map_err(map_err)?,
    })
}

impl Store {
    /// The authorization change counter, bumped by triggers on every table that feeds
    /// authorization.
    pub async fn authz_generation(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT generation FROM authz_generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        row.try_get("generation").map_err(map_err)
    }

    /// Reads every fact authorization depends on, consistently (one read transaction).
    pub async fn authz_facts(&self) -> StoreResult<AuthzFacts> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let c = &mut *tx;
        let generation: i64 = sqlx::query("SELECT generation FROM authz_generation WHERE id = 1")
            .fetch_one(&mut *c)
            .await
            .map_err(map_err)?
            .try_get("generation")
            .map_err(map_err)?;
        let users = sqlx::query("SELECT id, username, platform_admin, disabled FROM users")
            .fetch_all(&mut *c)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(UserFact {
                    id: s(r, "id")?,
                    username: s(r, "username")?,
                    platform_admin: r.try_get("platform_admin").map_err(map_err)?,
                    disabled: r.try_get("disabled").map_err(map_err)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let pairs = |rows: Vec<SqliteRow>, a: &str, b: &str| {
            rows.iter()
                .map(|r| Ok((s(r, a)?, s(r, b)?)))
                .collect::<StoreResult<Vec<_>>>()
        };
        let groups = pairs(
            sqlx::query("SELECT id, name FROM groups")
                .fetch_all(&mut *c)
                .await
                .map_err(map_err)?,
            "id",
            "name",
        )?;
        let group_members = pairs(
            sqlx::query("SELECT group_id, user_id FROM group_members")
                .fetch_all(&mut *c)
                .await
                .map_err(map_err)?,
            "group_id",
            "user_id",
        )?;
        let group_groups = pairs(
            sqlx::query("SELECT parent_id, child_id FROM group_groups")
                .fetch_all(&mut *c)
                .await
                .map_err(map_err)?,
            "parent_id",
            "child_id",
        )?;
        let projects =
            sqlx::query("SELECT name, classification, tags, requires_approval FROM projects")
                .fetch_all(&mut *c)
                .await
                .map_err(map_err)?
                .iter()
                .map(project_facts)
                .collect::<StoreResult<Vec<_>>>()?;
        let memberships = sqlx::query(
            "SELECT p.name, m.user_id, m.role FROM project_members m
             JOIN projects p ON p.id = m.project_id",
        )
        .fetch_all(&mut *c)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            let role = ProjectRole::parse(&s(r, "role")?).ok_or(corrupt("project_members.role"))?;
            Ok((s(r, "name")?, s(r, "user_id")?, role))
        })
        .collect::<StoreResult<Vec<_>>>()?;
        let bindings = sqlx::query(BINDING_SELECT)
            .fetch_all(&mut *c)
            .await
            .map_err(map_err)?
            .iter()
            .map(binding)
            .collect::<StoreResult<Vec<_>>>()?;
        let grants = sqlx::query(&format!("{GRANT_SELECT} WHERE a.status = 'active'"))
            .fetch_all(&mut *c)
            .await
            .map_err(map_err)?
            .iter()
            .map(grant)
            .collect::<StoreResult<Vec<_>>>()?;
        let policies = sqlx::query(POLICY_SELECT)
            .fetch_all(&mut *c)
            .await
            .map_err(map_err)?
            .iter()
            .map(policy)
            .collect::<StoreResult<Vec<_>>>()?;
        let workloads = Store::workload_facts(&mut *c).await?;
        tx.rollback().await.map_err(map_err)?;
        Ok(AuthzFacts {
            generation,
            users,
            groups,
            group_members,
            group_groups,
            projects,
            memberships,
            bindings,
            grants,
            policies,
            workloads,
        })
    }

    /// Usernames of every member of a project, whatever their role.
    pub async fn all_project_members(&self, project_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query(
            "SELECT u.username FROM project_members m JOIN users u ON u.id = m.user_id
             WHERE m.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| s(r, "username"))
        .collect()
    }

    /// A project's policy-relevant attributes.
    pub async fn project_facts(&self, project: &str) -> StoreResult<Option<ProjectFacts>> {
        sqlx::query(
            "SELECT name, classification, tags, requires_approval FROM projects WHERE name = $1",
        )
        .bind(project)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(project_facts)
        .transpose()
    }

    /// Role bindings of one project, or the platform-wide ones (`project: None`), by creation.
    pub async fn list_bindings(&self, project: Option<&str>) -> StoreResult<Vec<RoleBinding>> {
        let sql = match project {
            Some(_) => format!("{BINDING_SELECT} WHERE p.name = $1 ORDER BY b.created_at, b.id"),
            None => {
                format!("{BINDING_SELECT} WHERE b.project_id IS NULL ORDER BY b.created_at, b.id")
            }
        };
        sqlx::query(&sql)
            .bind(project)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(binding)
            .collect()
    }

    /// One role binding.
    pub async fn binding(&self, id: &str) -> StoreResult<Option<RoleBinding>> {
        sqlx::query(&format!("{BINDING_SELECT} WHERE b.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(binding)
            .transpose()
    }

    /// Custom policies of one project, or the platform-wide ones, by name.
    pub async fn list_policies(&self, project: Option<&str>) -> StoreResult<Vec<CustomPolicy>> {
        let sql = match project {
            Some(_) => format!("{POLICY_SELECT} WHERE p.name = $1 ORDER BY c.name"),
            None => format!("{POLICY_SELECT} WHERE c.project_id IS NULL ORDER BY c.name"),
        };
        sqlx::query(&sql)
            .bind(project)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(policy)
            .collect()
    }

    /// One custom policy.
    pub async fn policy(&self, id: &str) -> StoreResult<Option<CustomPolicy>> {
        sqlx::query(&format!("{POLICY_SELECT} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(policy)
            .transpose()
    }

    /// A project's grants, newest first (at most `limit`).
    pub async fn list_grants(&self, project: &str, limit: u32) -> StoreResult<Vec<AccessGrant>> {
        sqlx::query(&format!(
            "{GRANT_SELECT} WHERE p.name = $1 ORDER BY a.requested_at DESC, a.id LIMIT $2"
        ))
        .bind(project)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(grant)
        .collect()
    }

    /// One grant.
    pub async fn grant(&self, id: &str) -> StoreResult<Option<AccessGrant>> {
        sqlx::query(&format!("{GRANT_SELECT} WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(grant)
            .transpose()
    }
}

impl WriteTx {
    /// Adds a role binding. `project_id` `None` binds platform-wide.
    pub async fn insert_binding(
        &mut self,
        b: &RoleBinding,
        project_id: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO role_bindings (id, subject_kind, subject_id, role, project_id, expires_at,
               created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&b.id)
        .bind(b.subject_kind.as_str())
        .bind(&b.subject_id)
        .bind(&b.role)
        .bind(project_id)
        .bind(b.expires_at.map(Timestamp::unix))
        .bind(&b.created_by)
        .bind(b.created_at.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Removes a role binding; returns the number of rows removed.
    pub async fn delete_binding(&mut self, id: &str) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM role_bindings WHERE id = $1")
            .bind(id)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?
            .rows_affected())
    }

    /// Adds a custom policy.
    pub async fn insert_policy(
        &mut self,
        p: &CustomPolicy,
        project_id: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO custom_policies (id, name, project_id, description, body, created_by,
               created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(project_id)
        .bind(&p.description)
        .bind(&p.body)
        .bind(&p.created_by)
        .bind(p.created_at.unix())
        .bind(p.updated_at.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Replaces a custom policy's description and text.
    pub async fn update_policy(&mut self, p: &CustomPolicy) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE custom_policies SET description = $1, body = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&p.description)
        .bind(&p.body)
        .bind(p.updated_at.unix())
        .bind(&p.id)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    /// Deletes a custom policy.
    pub async fn delete_policy(&mut self, id: &str) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM custom_policies WHERE id = $1")
            .bind(id)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?
            .rows_affected())
    }

    /// Stores a new grant.
    pub async fn insert_grant(&mut self, g: &AccessGrant, project_id: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO access_grants (id, project_id, grantee_id, role, reason, duration_secs,
               status, requested_at, decided_by, decided_at, starts_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&g.id)
        .bind(project_id)
        .bind(&g.grantee_id)
        .bind(g.role.as_str())
        .bind(&g.reason)
        .bind(g.duration_secs)
        .bind(g.status.as_str())
        .bind(g.requested_at.unix())
        .bind(g.decided_by.as_deref())
        .bind(g.decided_at.map(Timestamp::unix))
        .bind(g.starts_at.map(Timestamp::unix))
        .bind(g.expires_at.map(Timestamp::unix))
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Stores a grant's new state, only if it is still in `expected` (so two people deciding
    /// at once cannot both win). Returns the number of rows changed.
    pub async fn update_grant(
        &mut self,
        g: &AccessGrant,
        expected: GrantStatus,
    ) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE access_grants SET status = $1, decided_by = $2, decided_at = $3,
               starts_at = $4, expires_at = $5, revoked_by = $6, revoked_at = $7
             WHERE id = $8 AND status = $9",
        )
        .bind(g.status.as_str())
        .bind(g.decided_by.as_deref())
        .bind(g.decided_at.map(Timestamp::unix))
        .bind(g.starts_at.map(Timestamp::unix))
        .bind(g.expires_at.map(Timestamp::unix))
        .bind(g.revoked_by.as_deref())
        .bind(g.revoked_at.map(Timestamp::unix))
        .bind(&g.id)
        .bind(expected.as_str())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    /// Stores a project's policy-relevant attributes.
    pub async fn set_project_facts(&mut self, f: &ProjectFacts) -> StoreResult<u64> {
        let tags = serde_json::to_string(&f.tags).map_err(|_| corrupt("projects.tags"))?;
        Ok(sqlx::query(
            "UPDATE projects SET classification = $1, tags = $2, requires_approval = $3
             WHERE name = $4",
        )
        .bind(&f.classification)
        .bind(tags)
        .bind(f.requires_approval)
        .bind(&f.name)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    /// Makes group `child_id` a member of group `parent_id`.
    pub async fn add_group_to_group(
        &mut self,
        parent_id: &str,
        child_id: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO group_groups (parent_id, child_id, added_at) VALUES ($1, $2, $3)
             ON CONFLICT (parent_id, child_id) DO NOTHING",
        )
        .bind(parent_id)
        .bind(child_id)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Removes a nested group membership.
    pub async fn remove_group_from_group(
        &mut self,
        parent_id: &str,
        child_id: &str,
    ) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM group_groups WHERE parent_id = $1 AND child_id = $2")
                .bind(parent_id)
                .bind(child_id)
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?
                .rows_affected(),
        )
    }
}
