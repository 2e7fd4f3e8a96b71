//! Storage for SCIM provisioning: the accounts of an identity source with the SCIM attributes
//! their client sent and a version per account, and the groups a source's client manages.

use crate::policy::{corrupt, s, ts};
use crate::writes::WriteTx;
use crate::{map_err, Store, StoreResult};
use enclave_core::model::User;
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// An account linked to an identity source, as SCIM sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserRow {
    /// The Enclave account.
    pub user: User,
    /// The link's subject (the SCIM `userName` for accounts a SCIM client created).
    pub subject: String,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// The SCIM attributes as last sent (JSON), if a SCIM client ever wrote this account.
    pub attributes: Option<String>,
    /// Version for ETags (1 for an account no SCIM client wrote yet).
    pub version: i64,
    /// When the link was made.
    pub created_at: Timestamp,
    /// When SCIM last changed the account (the link's creation when never).
    pub updated_at: Timestamp,
}

/// A group managed by an identity source's SCIM client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupRow {
    /// The Enclave group id.
    pub group_id: String,
    /// The Enclave group name.
    pub name: String,
    /// SCIM `displayName`.
    pub display_name: String,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// Version for ETags.
    pub version: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Ids of the member accounts, ordered.
    pub members: Vec<String>,
}

const USER_SELECT: &str = "SELECT u.id, u.username, u.display_name, u.email, u.platform_admin,
    u.disabled, u.created_at AS user_created_at, e.subject, e.external_id,
    e.created_at AS link_created_at, s.attributes, s.version, s.updated_at AS scim_updated_at
    FROM external_identities e JOIN users u ON u.id = e.user_id
    LEFT JOIN scim_users s ON s.user_id = e.user_id";

fn user_row(r: &SqliteRow) -> StoreResult<ScimUserRow> {
    let created_at = ts(r, "link_created_at")?.ok_or(corrupt("identity time"))?;
    Ok(ScimUserRow {
        user: User {
            id: s(r, "id")?,
            username: s(r, "username")?,
            display_name: s(r, "display_name")?,
            email: s(r, "email")?,
            platform_admin: r.try_get("platform_admin").map_err(map_err)?,
            disabled: r.try_get("disabled").map_err(map_err)?,
            created_at: ts(r, "user_created_at")?.ok_or(corrupt("user time"))?,
        },
        subject: s(r, "subject")?,
        external_id: r.try_get("external_id").map_err(map_err)?,
        attributes: r.try_get("attributes").map_err(map_err)?,
        version: r
            .try_get::<Option<i64>, _>("version")
            .map_err(map_err)?
            .unwrap_or(1),
        created_at,
        updated_at: ts(r, "scim_updated_at")?.unwrap_or(created_at),
    })
}

const GROUP_SELECT: &str = "SELECT sg.group_id, g.name, sg.display_name, sg.external_id,
    sg.version, sg.created_at, sg.updated_at
    FROM scim_groups sg JOIN groups g ON g.id = sg.group_id";

fn group_row(r: &SqliteRow) -> StoreResult<ScimGroupRow> {
    Ok(ScimGroupRow {
        group_id: s(r, "group_id")?,
        name: s(r, "name")?,
        display_name: s(r, "display_name")?,
        external_id: r.try_get("external_id").map_err(map_err)?,
        version: r.try_get("version").map_err(map_err)?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("scim group time"))?,
        updated_at: ts(r, "updated_at")?.ok_or(corrupt("scim group time"))?,
        members: Vec::new(),
    })
}

impl Store {
    /// The accounts linked to a source, oldest link first, at most `limit`.
    pub async fn scim_users(&self, source_id: &str, limit: u32) -> StoreResult<Vec<ScimUserRow>> {
        sqlx::query(&format!(
            "{USER_SELECT} WHERE e.source_id = $1 ORDER BY e.created_at, e.user_id LIMIT $2"
        ))
        .bind(source_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(user_row)
        .collect()
    }

    /// One account linked to a source, by account id.
    pub async fn scim_user(
        &self,
        source_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<ScimUserRow>> {
        sqlx::query(&format!(
            "{USER_SELECT} WHERE e.source_id = $1 AND e.user_id = $2"
        ))
        .bind(source_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|r| user_row(&r))
        .transpose()
    }

    /// The groups a source manages, oldest first, at most `limit`, with their members.
    pub async fn scim_groups(&self, source_id: &str, limit: u32) -> StoreResult<Vec<ScimGroupRow>> {
        let mut groups = sqlx::query(&format!(
            "{GROUP_SELECT} WHERE sg.source_id = $1 ORDER BY sg.created_at, sg.group_id LIMIT $2"
        ))
        .bind(source_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(group_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT m.group_id, m.user_id FROM group_members m
             JOIN scim_groups sg ON sg.group_id = m.group_id
             WHERE sg.source_id = $1 ORDER BY m.group_id, m.user_id",
        )
        .bind(source_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut index = std::collections::HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            index.insert(g.group_id.clone(), i);
        }
        for r in &rows {
            if let Some(&i) = index.get(&s(r, "group_id")?) {
                if let Some(g) = groups.get_mut(i) {
                    g.members.push(s(r, "user_id")?);
                }
            }
        }
        Ok(groups)
    }

    /// One group a source manages, with its members.
    pub async fn scim_group(
        &self,
        source_id: &str,
        group_id: &str,
    ) -> StoreResult<Option<ScimGroupRow>> {
        let Some(mut g) = sqlx::query(&format!(
            "{GROUP_SELECT} WHERE sg.source_id = $1 AND sg.group_id = $2"
        ))
        .bind(source_id)
        .bind(group_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|r| group_row(&r))
        .transpose()?
        else {
            return Ok(None);
        };
        g.members =
            sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
                .bind(group_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(|r| s(r, "user_id"))
                .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(g))
    }

    /// The groups of a source an account belongs to: `(group id, display name)`.
    pub async fn scim_groups_of(
        &self,
        source_id: &str,
        user_id: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        sqlx::query(
            "SELECT sg.group_id, sg.display_name FROM scim_groups sg
             JOIN group_members m ON m.group_id = sg.group_id
             WHERE sg.source_id = $1 AND m.user_id = $2 ORDER BY sg.created_at, sg.group_id",
        )
        .bind(source_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| Ok((s(r, "group_id")?, s(r, "display_name")?)))
        .collect()
    }
}

impl WriteTx {
    /// Whether another account of the source has this subject, compared case-insensitively.
    pub async fn scim_subject_taken(
        &mut self,
        source_id: &str,
        subject: &str,
        except_user_id: &str,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM external_identities
             WHERE source_id = $1 AND lower(subject) = lower($2) AND user_id <> $3",
        )
        .bind(source_id)
        .bind(subject)
        .bind(except_user_id)
        .fetch_one(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(r.try_get::<i64, _>("n").map_err(map_err)? > 0)
    }

    /// The current SCIM version of an account of the source (`None`: not linked to it; 1 when
    /// linked but never written through SCIM).
    pub async fn scim_user_version(
        &mut self,
        source_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<i64>> {
        let r = sqlx::query(
            "SELECT s.version FROM external_identities e
             LEFT JOIN scim_users s ON s.user_id = e.user_id
             WHERE e.source_id = $1 AND e.user_id = $2",
        )
        .bind(source_id)
        .bind(user_id)
        .fetch_optional(self.sql().await?)
        .await
        .map_err(map_err)?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(
                r.try_get::<Option<i64>, _>("version")
                    .map_err(map_err)?
                    .unwrap_or(1),
            )),
        }
    }

    /// Stores the SCIM attributes and version of an account.
    pub async fn put_scim_user(
        &mut self,
        user_id: &str,
        source_id: &str,
        attributes: &str,
        version: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO scim_users (user_id, source_id, attributes, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (user_id) DO UPDATE SET source_id = $2, attributes = $3, version = $4,
               updated_at = $5",
        )
        .bind(user_id)
        .bind(source_id)
        .bind(attributes)
        .bind(version)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Changes the subject and `externalId` of an account's link to a source.
    pub async fn set_scim_link(
        &mut self,
        source_id: &str,
        user_id: &str,
        subject: &str,
        external_id: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE external_identities SET subject = $3, external_id = $4, last_seen_at = $5
             WHERE source_id = $1 AND user_id = $2",
        )
        .bind(source_id)
        .bind(user_id)
        .bind(subject)
        .bind(external_id)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Removes an account's link to a source and its SCIM record (the account stays);
    /// returns whether a link was removed.
    pub async fn delete_scim_link(&mut self, source_id: &str, user_id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM scim_users WHERE user_id = $1 AND source_id = $2")
            .bind(user_id)
            .bind(source_id)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        let n =
            sqlx::query("DELETE FROM external_identities WHERE source_id = $1 AND user_id = $2")
                .bind(source_id)
                .bind(user_id)
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?;
        Ok(n.rows_affected() == 1)
    }

    /// The current version of a group the source manages (`None`: not one of its groups).
    pub async fn scim_group_version(
        &mut self,
        source_id: &str,
        group_id: &str,
    ) -> StoreResult<Option<i64>> {
        let r =
            sqlx::query("SELECT version FROM scim_groups WHERE source_id = $1 AND group_id = $2")
                .bind(source_id)
                .bind(group_id)
                .fetch_optional(self.sql().await?)
                .await
                .map_err(map_err)?;
        r.map(|r| r.try_get::<i64, _>("version").map_err(map_err))
            .transpose()
    }

    /// Records that a source's SCIM client manages a group (created just before).
    pub async fn insert_scim_group(
        &mut self,
        group_id: &str,
        source_id: &str,
        display_name: &str,
        external_id: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO scim_groups (group_id, source_id, external_id, display_name, version,
               created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5)",
        )
        .bind(group_id)
        .bind(source_id)
        .bind(external_id)
        .bind(display_name)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Stores a managed group's SCIM attributes and new version.
    pub async fn update_scim_group(
        &mut self,
        group_id: &str,
        display_name: &str,
        external_id: Option<&str>,
        version: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE scim_groups SET display_name = $2, external_id = $3, version = $4,
               updated_at = $5 WHERE group_id = $1",
        )
        .bind(group_id)
        .bind(display_name)
        .bind(external_id)
        .bind(version)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Whether a group with this name exists (checked inside the transaction).
    pub async fn group_name_taken(&mut self, name: &str) -> StoreResult<bool> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM groups WHERE name = $1")
            .bind(name)
            .fetch_one(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(r.try_get::<i64, _>("n").map_err(map_err)? > 0)
    }

    /// The ids of a group's members (checked inside the transaction).
    pub async fn group_member_ids(&mut self, group_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
            .bind(group_id)
            .fetch_all(self.sql().await?)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| s(r, "user_id"))
            .collect()
    }
}
