//! Storage of identity sources, the accounts they vouch for (keyed by source and subject), what
//! their group mappings granted, pending OIDC logins and each source's latest login claims.

use crate::policy::{corrupt, s, ts};
use crate::writes::WriteTx;
use crate::{map_err, Store, StoreResult};
use enclave_core::identity::{IdentitySource, Managed, SourceKind};
use enclave_core::model::ProjectRole;
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use std::collections::BTreeSet;

/// A source as stored: its configuration, its sealed secret and its SCIM token hash.
#[derive(Debug, Clone)]
pub struct StoredSource {
    /// The configuration.
    pub source: IdentitySource,
    /// The client secret or bind password, sealed.
    pub secret: Option<String>,
    /// SHA-256 of the SCIM bearer token.
    pub scim_token_hash: Option<String>,
}

/// An account's link to its identity source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalLink {
    /// Source id.
    pub source_id: String,
    /// Source name.
    pub source: String,
    /// Subject at the source.
    pub subject: String,
    /// The account.
    pub user_id: String,
    /// The account's username.
    pub username: String,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// SCIM `externalId`, if a provisioning client sent one.
    pub external_id: Option<String>,
    /// Groups the source reported last.
    pub groups: Vec<String>,
    /// Link creation.
    pub created_at: Timestamp,
    /// Last login through the source.
    pub last_login_at: Option<Timestamp>,
}

/// The claims of a source's latest login attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct LastLogin {
    /// When.
    pub at: Timestamp,
    /// Subject.
    pub subject: String,
    /// Whether the admission rule admitted it.
    pub admitted: bool,
    /// Why not, when refused.
    pub reason: Option<String>,
    /// The claims (JSON).
    pub claims: serde_json::Value,
}

const SOURCE_COLS: &str = "id, name, kind, display_name, enabled, settings, admission, mappings,
    secret, scim_token_hash, created_at, updated_at, last_sync_at";

fn stored(r: &SqliteRow) -> StoreResult<StoredSource> {
    let kind = SourceKind::parse(&s(r, "kind")?).ok_or(corrupt("identity source kind"))?;
    let settings = s(r, "settings")?;
    let bad = |_| corrupt("identity source settings");
    let (oidc, ldap) = match kind {
        SourceKind::Oidc => (Some(serde_json::from_str(&settings).map_err(bad)?), None),
        SourceKind::Ldap => (None, Some(serde_json::from_str(&settings).map_err(bad)?)),
    };
    let secret: Option<String> = r.try_get("secret").map_err(map_err)?;
    let scim_token_hash: Option<String> = r.try_get("scim_token_hash").map_err(map_err)?;
    Ok(StoredSource {
        source: IdentitySource {
            id: s(r, "id")?,
            name: s(r, "name")?,
            kind,
            display_name: s(r, "display_name")?,
            enabled: r.try_get::<i64, _>("enabled").map_err(map_err)? != 0,
            oidc,
            ldap,
            admission: serde_json::from_str(&s(r, "admission")?).map_err(bad)?,
            mappings: serde_json::from_str(&s(r, "mappings")?).map_err(bad)?,
            secret_set: secret.is_some(),
            scim_token_set: scim_token_hash.is_some(),
            created_at: ts(r, "created_at")?.ok_or(corrupt("identity source time"))?,
            updated_at: ts(r, "updated_at")?.ok_or(corrupt("identity source time"))?,
            last_sync_at: ts(r, "last_sync_at")?,
        },
        secret,
        scim_token_hash,
    })
}

const LINK_SELECT: &str = "SELECT e.source_id, src.name AS source, e.subject, e.user_id,
    u.username, u.disabled, e.external_id, e.groups, e.created_at, e.last_login_at
    FROM external_identities e JOIN identity_sources src ON src.id = e.source_id
    JOIN users u ON u.id = e.user_id";

fn link(r: &SqliteRow) -> StoreResult<ExternalLink> {
    Ok(ExternalLink {
        source_id: s(r, "source_id")?,
        source: s(r, "source")?,
        subject: s(r, "subject")?,
        user_id: s(r, "user_id")?,
        username: s(r, "username")?,
        disabled: r.try_get::<i64, _>("disabled").map_err(map_err)? != 0,
        external_id: r.try_get("external_id").map_err(map_err)?,
        groups: serde_json::from_str(&s(r, "groups")?).map_err(|_| corrupt("identity groups"))?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("identity time"))?,
        last_login_at: ts(r, "last_login_at")?,
    })
}

fn managed(r: &SqliteRow) -> StoreResult<Managed> {
    let target = s(r, "target")?;
    Ok(match s(r, "kind")?.as_str() {
        "group" => Managed::Group(target),
        "platform_role" => Managed::PlatformRole(target),
        "project" => Managed::Project(
            target,
            ProjectRole::parse(&s(r, "role")?).ok_or(corrupt("identity grant role"))?,
        ),
        _ => return Err(corrupt("identity grant kind")),
    })
}

fn managed_parts(m: &Managed) -> (&'static str, &str, &'static str) {
    match m {
        Managed::Group(g) => ("group", g, ""),
        Managed::PlatformRole(r) => ("platform_role", r, ""),
        Managed::Project(p, role) => ("project", p, role.as_str()),
    }
}

impl Store {
    /// Every identity source, by name.
    pub async fn identity_sources(&self) -> StoreResult<Vec<StoredSource>> {
        sqlx::query(&format!(
            "SELECT {SOURCE_COLS} FROM identity_sources ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(stored)
        .collect()
    }

    /// One identity source by name.
    pub async fn identity_source(&self, name: &str) -> StoreResult<Option<StoredSource>> {
        sqlx::query(&format!(
            "SELECT {SOURCE_COLS} FROM identity_sources WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|r| stored(&r))
        .transpose()
    }

    /// The account linked to `(source, subject)`.
    pub async fn external_link(
        &self,
        source_id: &str,
        subject: &str,
    ) -> StoreResult<Option<ExternalLink>> {
        sqlx::query(&format!(
            "{LINK_SELECT} WHERE e.source_id = $1 AND e.subject = $2"
        ))
        .bind(source_id)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|r| link(&r))
        .transpose()
    }

    /// A link of `source_id` made by a provisioning client (SCIM) for the person a sign-in
    /// names: its `external_id` equals one of `ids` (e.g. the OIDC `sub` or `oid`), or its
    /// subject (the SCIM `userName`) equals one of `names`, ignoring case.
    pub async fn provisioned_link(
        &self,
        source_id: &str,
        ids: &[&str],
        names: &[&str],
    ) -> StoreResult<Option<ExternalLink>> {
        for id in ids {
            let found = sqlx::query(&format!(
                "{LINK_SELECT} WHERE e.source_id = $1 AND e.external_id = $2"
            ))
            .bind(source_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            if let Some(r) = found {
                return link(&r).map(Some);
            }
        }
        for name in names {
            let found = sqlx::query(&format!(
                "{LINK_SELECT} WHERE e.source_id = $1 AND lower(e.subject) = lower($2)"
            ))
            .bind(source_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            if let Some(r) = found {
                return link(&r).map(Some);
            }
        }
        Ok(None)
    }

    /// The link of an account, if it came from an identity source.
    pub async fn external_link_of(&self, user_id: &str) -> StoreResult<Option<ExternalLink>> {
        sqlx::query(&format!("{LINK_SELECT} WHERE e.user_id = $1"))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| link(&r))
            .transpose()
    }

    /// A source's linked accounts by subject, after `after`, at most `limit`.
    pub async fn external_links(
        &self,
        source_id: &str,
        after: &str,
        limit: u32,
    ) -> StoreResult<Vec<ExternalLink>> {
        sqlx::query(&format!(
            "{LINK_SELECT} WHERE e.source_id = $1 AND e.subject > $2 ORDER BY e.subject LIMIT $3"
        ))
        .bind(source_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(link)
        .collect()
    }

    /// What a source's mappings granted an account.
    pub async fn identity_grants(&self, user_id: &str) -> StoreResult<BTreeSet<Managed>> {
        sqlx::query("SELECT kind, target, role FROM identity_grants WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(managed)
            .collect()
    }

    /// A source's latest login attempt.
    pub async fn last_login(&self, source_id: &str) -> StoreResult<Option<LastLogin>> {
        sqlx::query(
            "SELECT at, subject, admitted, reason, claims FROM identity_last_login
             WHERE source_id = $1",
        )
        .bind(source_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|r| {
            Ok(LastLogin {
                at: ts(&r, "at")?.ok_or(corrupt("last login time"))?,
                subject: s(&r, "subject")?,
                admitted: r.try_get::<i64, _>("admitted").map_err(map_err)? != 0,
                reason: r.try_get("reason").map_err(map_err)?,
                claims: serde_json::from_str(&s(&r, "claims")?)
                    .map_err(|_| corrupt("last login claims"))?,
            })
        })
        .transpose()
    }

    /// Disabled accounts that still own a queued or running job or an active notebook
    /// server: `(user id, username)`, at most `limit`.
    pub async fn disabled_with_workloads(&self, limit: u32) -> StoreResult<Vec<(String, String)>> {
        sqlx::query(
            "SELECT u.id, u.username FROM users u WHERE u.disabled = 1 AND (
               EXISTS (SELECT 1 FROM jobs j WHERE j.owner_id = u.id
                       AND j.state IN ('queued', 'running'))
               OR EXISTS (SELECT 1 FROM notebooks n WHERE n.owner_id = u.id
                          AND n.state IN ('starting', 'ready')))
             ORDER BY u.username LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| Ok((s(r, "id")?, s(r, "username")?)))
        .collect()
    }

    /// A user's active workloads: `(kind, project, id or name)` with kind `job` or `notebook`.
    pub async fn workloads_of(&self, user_id: &str) -> StoreResult<Vec<(String, String, String)>> {
        sqlx::query(
            "SELECT 'job' AS kind, p.name AS project, j.id AS what FROM jobs j
               JOIN projects p ON p.id = j.project_id
               WHERE j.owner_id = $1 AND j.state IN ('queued', 'running')
             UNION ALL
             SELECT 'notebook', p.name, n.name FROM notebooks n
               JOIN projects p ON p.id = n.project_id
               WHERE n.owner_id = $1 AND n.state IN ('starting', 'ready')",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| Ok((s(r, "kind")?, s(r, "project")?, s(r, "what")?)))
        .collect()
    }
}

impl WriteTx {
    /// Creates or replaces a source's configuration; `secret` `None` keeps the stored one.
    pub async fn put_identity_source(
        &mut self,
        src: &IdentitySource,
        secret: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let bad = |_| corrupt("identity source settings");
        let settings = match (&src.oidc, &src.ldap) {
            (Some(o), _) => serde_json::to_string(o).map_err(bad)?,
            (_, Some(l)) => serde_json::to_string(l).map_err(bad)?,
            _ => return Err(corrupt("identity source settings")),
        };
        let admission = serde_json::to_string(&src.admission).map_err(bad)?;
        let mappings = serde_json::to_string(&src.mappings).map_err(bad)?;
        sqlx::query(
            "INSERT INTO identity_sources (id, name, kind, display_name, enabled, settings,
               admission, mappings, secret, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
             ON CONFLICT (name) DO UPDATE SET display_name = $4, enabled = $5, settings = $6,
               admission = $7, mappings = $8, secret = COALESCE($9, secret), updated_at = $10",
        )
        .bind(&src.id)
        .bind(&src.name)
        .bind(src.kind.as_str())
        .bind(&src.display_name)
        .bind(i64::from(src.enabled))
        .bind(settings)
        .bind(admission)
        .bind(mappings)
        .bind(secret)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Deletes a source (its links, grants records and pending logins go with it; the accounts
    /// stay). Returns whether it existed.
    pub async fn delete_identity_source(&mut self, id: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM identity_sources WHERE id = $1")
            .bind(id)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(n.rows_affected() == 1)
    }

    /// Sets (or clears) a source's SCIM token hash.
    pub async fn set_scim_token(&mut self, id: &str, hash: Option<&str>) -> StoreResult<()> {
        sqlx::query("UPDATE identity_sources SET scim_token_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(hash)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Records a completed directory sync.
    pub async fn set_last_sync(&mut self, id: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE identity_sources SET last_sync_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now.unix())
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Links an account to `(source, subject)`.
    pub async fn insert_external_link(
        &mut self,
        source_id: &str,
        subject: &str,
        user_id: &str,
        external_id: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO external_identities (source_id, subject, user_id, external_id,
               created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(source_id)
        .bind(subject)
        .bind(user_id)
        .bind(external_id)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Records what the source said about the account now; `login` also sets the last login.
    pub async fn update_external_link(
        &mut self,
        source_id: &str,
        subject: &str,
        email: &str,
        groups: &[String],
        login: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        let groups = serde_json::to_string(groups).map_err(|_| corrupt("identity groups"))?;
        sqlx::query(
            "UPDATE external_identities SET email = $3, groups = $4, last_seen_at = $5,
               last_login_at = CASE WHEN $6 THEN $5 ELSE last_login_at END
             WHERE source_id = $1 AND subject = $2",
        )
        .bind(source_id)
        .bind(subject)
        .bind(email)
        .bind(groups)
        .bind(now.unix())
        .bind(login)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Remembers that a source's mapping granted `m` to the account.
    pub async fn add_identity_grant(
        &mut self,
        user_id: &str,
        source_id: &str,
        m: &Managed,
    ) -> StoreResult<()> {
        let (kind, target, role) = managed_parts(m);
        sqlx::query(
            "INSERT INTO identity_grants (user_id, source_id, kind, target, role)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, kind, target) DO UPDATE SET role = $5, source_id = $2",
        )
        .bind(user_id)
        .bind(source_id)
        .bind(kind)
        .bind(target)
        .bind(role)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Forgets a grant the mapping no longer gives.
    pub async fn remove_identity_grant(&mut self, user_id: &str, m: &Managed) -> StoreResult<()> {
        let (kind, target, _) = managed_parts(m);
        sqlx::query("DELETE FROM identity_grants WHERE user_id = $1 AND kind = $2 AND target = $3")
            .bind(user_id)
            .bind(kind)
            .bind(target)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Stores a pending OIDC login under the hash of its `state`.
    pub async fn insert_oidc_pending(
        &mut self,
        state_hash: &str,
        source_id: &str,
        sealed: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oidc_pending (state_hash, source_id, sealed, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(state_hash)
        .bind(source_id)
        .bind(sealed)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Takes (reads and deletes) a pending OIDC login: `(source id, sealed, created_at)`. A
    /// second take of the same state finds nothing.
    pub async fn take_oidc_pending(
        &mut self,
        state_hash: &str,
    ) -> StoreResult<Option<(String, String, Timestamp)>> {
        sqlx::query(
            "DELETE FROM oidc_pending WHERE state_hash = $1
             RETURNING source_id, sealed, created_at",
        )
        .bind(state_hash)
        .fetch_optional(self.sql().await?)
        .await
        .map_err(map_err)?
        .map(|r| {
            Ok((
                s(&r, "source_id")?,
                s(&r, "sealed")?,
                ts(&r, "created_at")?.ok_or(corrupt("pending login time"))?,
            ))
        })
        .transpose()
    }

    /// Drops pending OIDC logins started before `before`; returns how many.
    pub async fn prune_oidc_pending(&mut self, before: Timestamp) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM oidc_pending WHERE created_at < $1")
                .bind(before.unix())
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?
                .rows_affected(),
        )
    }

    /// Replaces a source's latest login claims.
    pub async fn put_last_login(&mut self, source_id: &str, l: &LastLogin) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_last_login (source_id, at, subject, admitted, reason, claims)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (source_id) DO UPDATE SET at = $2, subject = $3, admitted = $4,
               reason = $5, claims = $6",
        )
        .bind(source_id)
        .bind(l.at.unix())
        .bind(&l.subject)
        .bind(l.admitted)
        .bind(&l.reason)
        .bind(l.claims.to_string())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
