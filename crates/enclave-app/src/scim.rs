//! SCIM provisioning of an identity source's accounts and groups (the use cases behind the
//! `/scim/v2/{source}` endpoints).
//!
//! A SCIM client authenticates with its source's SCIM token (stored only hashed, compared in
//! constant time) and reaches only that source: its users are exactly the accounts linked to
//! the source, its groups the Enclave groups it created. Every change commits with its audit
//! record (actor `scim:<source>`, auth `scim`). Deactivation (`active=false`, DELETE) ends the
//! account's sessions and tokens at once and its workloads within `access.deprovision_within`.

use crate::chokepoint::{label, RequestMeta};
use crate::secrets::{constant_time_eq, hash_secret, new_id};
use crate::{detail, App};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::identity::derive_username;
use enclave_core::model::User;
use enclave_core::{names, Error, ErrorCode, Result, Timestamp};
use enclave_store::{ScimGroupRow, ScimUserRow, WriteTx};
use std::collections::{BTreeSet, HashMap};

/// Most accounts (and most groups) of one source that SCIM lists; beyond it lists are refused.
pub const SCIM_MAX_RESOURCES: u32 = 10_000;
/// Key in [`Error::details`] marking a failed optimistic version check (SCIM answers 412).
pub const SCIM_VERSION_MISMATCH: &str = "scim_version_mismatch";
/// Longest serialized SCIM attribute set kept per account, in bytes.
pub const SCIM_MAX_ATTRIBUTES: usize = 64 * 1024;
/// Most members one SCIM group may have.
pub const SCIM_MAX_MEMBERS: usize = 1000;

/// An identity source whose SCIM token was verified: the handle every SCIM use case needs.
#[derive(Debug, Clone)]
pub struct ScimSource {
    id: String,
    name: String,
}

impl ScimSource {
    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    fn actor(&self) -> String {
        format!("scim:{}", self.name)
    }
}

/// A user as a SCIM client sends it.
#[derive(Debug, Clone, Default)]
pub struct ScimUserInput {
    /// SCIM `userName` (stored as the link's subject; unique per source, case-insensitively).
    pub user_name: String,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// Display name for the account (`displayName`, else `name.formatted`).
    pub display_name: Option<String>,
    /// The primary (or first) email.
    pub email: Option<String>,
    /// `active`; `None` leaves the account as it is.
    pub active: Option<bool>,
    /// The SCIM attributes to keep and return as given (`name`, `emails`, ...).
    pub attributes: serde_json::Value,
}

/// An account of a source as SCIM shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserRecord {
    /// Account id (the SCIM `id`).
    pub id: String,
    /// The Enclave username (derived at creation, never changed).
    pub username: String,
    /// SCIM `userName` (the link's subject).
    pub user_name: String,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// The account's display name.
    pub display_name: String,
    /// The account's email.
    pub email: String,
    /// Whether the account is enabled.
    pub active: bool,
    /// The SCIM attributes as last sent, when a SCIM client wrote the account.
    pub attributes: Option<serde_json::Value>,
    /// The source's groups the account belongs to: `(group id, display name)`.
    pub groups: Vec<(String, String)>,
    /// Version (ETag).
    pub version: u64,
    /// Creation of the link.
    pub created: Timestamp,
    /// Last change through SCIM.
    pub modified: Timestamp,
}

/// A group as a SCIM client sends it.
#[derive(Debug, Clone, Default)]
pub struct ScimGroupInput {
    /// SCIM `displayName`.
    pub display_name: String,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// Member account ids (users of the same source).
    pub members: Vec<String>,
    /// Members given with `type: Group` (refused: groups do not nest).
    pub group_members: Vec<String>,
}

/// A group managed by a source as SCIM shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupRecord {
    /// Group id (the SCIM `id`).
    pub id: String,
    /// The Enclave group name (derived from the display name at creation).
    pub name: String,
    /// SCIM `displayName`.
    pub display_name: String,
    /// SCIM `externalId`.
    pub external_id: Option<String>,
    /// Member account ids.
    pub members: Vec<String>,
    /// Version (ETag).
    pub version: u64,
    /// Creation.
    pub created: Timestamp,
    /// Last change.
    pub modified: Timestamp,
}

fn version_mismatch() -> Error {
    Error::new(
        ErrorCode::Conflict,
        "the resource changed since it was read; read it again and retry",
    )
    .with(SCIM_VERSION_MISMATCH, true)
}

fn user_not_found(id: &str) -> Error {
    Error::not_found("user", &id.chars().take(64).collect::<String>())
}

fn group_not_found(id: &str) -> Error {
    Error::not_found("group", &id.chars().take(64).collect::<String>())
}

fn too_many(what: &str) -> Error {
    Error::new(
        ErrorCode::Unavailable,
        format!(
            "this identity source has more than {SCIM_MAX_RESOURCES} {what}, more than SCIM lists serve; read them by id"
        ),
    )
}

fn check_version(current: i64, expected: Option<u64>) -> Result<u64> {
    let current = u64::try_from(current).unwrap_or(0);
    match expected {
        Some(v) if v != current => Err(version_mismatch()),
        _ => Ok(current),
    }
}

fn next_version(v: u64) -> i64 {
    i64::try_from(v.saturating_add(1)).unwrap_or(i64::MAX)
}

/// A group name from a SCIM display name: lowercase letters, digits and single `-`, starting
/// with a letter, 2 to 40 characters; `n > 1` appends `-n`.
fn group_name(display_name: &str, n: u32) -> String {
    let mut base = String::new();
    for c in display_name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            base.push(c);
        } else if !base.is_empty() && !base.ends_with('-') {
            base.push('-');
        }
    }
    let mut base = base.trim_matches('-').to_string();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base = format!("g-{base}");
    }
    let suffix = if n > 1 {
        format!("-{n}")
    } else {
        String::new()
    };
    let keep = 40 - suffix.len();
    let mut name: String = base.chars().take(keep).collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.len() < 2 {
        name = "group".into();
    }
    name.push_str(&suffix);
    name
}

fn check_user_input(u: &ScimUserInput) -> Result<String> {
    names::text("userName", &u.user_name, true)?;
    if let Some(e) = &u.external_id {
        names::text("externalId", e, false)?;
    }
    if let Some(d) = &u.display_name {
        names::text("displayName", d, false)?;
    }
    if let Some(e) = &u.email {
        names::email("emails", e)?;
    }
    let attrs = serde_json::to_string(&u.attributes).map_err(|_| Error::internal())?;
    if attrs.len() > SCIM_MAX_ATTRIBUTES {
        return Err(Error::invalid(
            "attributes",
            format!("the user's attributes are larger than {SCIM_MAX_ATTRIBUTES} bytes"),
        ));
    }
    Ok(attrs)
}

fn check_group_input(g: &ScimGroupInput) -> Result<()> {
    names::text("displayName", &g.display_name, true)?;
    if let Some(e) = &g.external_id {
        names::text("externalId", e, false)?;
    }
    if !g.group_members.is_empty() {
        return Err(Error::invalid(
            "members",
            "groups cannot be members of groups here; list the users instead",
        ));
    }
    if g.members.len() > SCIM_MAX_MEMBERS {
        return Err(Error::invalid(
            "members",
            format!("a group has at most {SCIM_MAX_MEMBERS} members"),
        ));
    }
    Ok(())
}

fn user_record(r: ScimUserRow, groups: Vec<(String, String)>) -> ScimUserRecord {
    ScimUserRecord {
        id: r.user.id,
        username: r.user.username,
        user_name: r.subject,
        external_id: r.external_id,
        display_name: r.user.display_name,
        email: r.user.email,
        active: !r.user.disabled,
        attributes: r.attributes.and_then(|a| serde_json::from_str(&a).ok()),
        groups,
        version: u64::try_from(r.version).unwrap_or(0),
        created: r.created_at,
        modified: r.updated_at,
    }
}

fn group_record(g: ScimGroupRow) -> ScimGroupRecord {
    ScimGroupRecord {
        id: g.group_id,
        name: g.name,
        display_name: g.display_name,
        external_id: g.external_id,
        members: g.members,
        version: u64::try_from(g.version).unwrap_or(0),
        created: g.created_at,
        modified: g.updated_at,
    }
}

impl App {
    /// Verifies a SCIM bearer token for the source named in the path: the source must exist, be
    /// enabled and hold this token. A failure is audited (`scim.auth`, never the token) and
    /// answered as `unauthenticated`.
    pub async fn scim_authenticate(
        &self,
        source: &str,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<ScimSource> {
        let found = if names::slug("source", source).is_ok() {
            self.store.identity_source(source).await?
        } else {
            None
        };
        let presented = hash_secret(token);
        let (ok, reason) = match &found {
            None => (false, "no such identity source"),
            Some(s) if !s.source.enabled => (false, "identity source disabled"),
            Some(s) => match s.scim_token_hash.as_deref() {
                None => (false, "no SCIM token set for this source"),
                Some(h) if constant_time_eq(h, &presented) => (true, ""),
                Some(_) => (false, "wrong token"),
            },
        };
        match found {
            Some(s) if ok => Ok(ScimSource {
                id: s.source.id,
                name: s.source.name,
            }),
            _ => {
                let shown: String = source.chars().take(64).collect();
                let rec = AuditRecord {
                    outcome: Outcome::Failure,
                    detail: detail!("reason" => reason),
                    ..meta.record(
                        self.now(),
                        &format!("scim:{shown}"),
                        "scim",
                        "scim.auth",
                        label("idp", &shown),
                    )
                };
                self.audit(rec).await?;
                Err(Error::unauthenticated())
            }
        }
    }

    /// Every account of the source (at most [`SCIM_MAX_RESOURCES`], else `unavailable`).
    pub async fn scim_users(&self, src: &ScimSource) -> Result<Vec<ScimUserRecord>> {
        let rows = self
            .store
            .scim_users(&src.id, SCIM_MAX_RESOURCES + 1)
            .await?;
        if rows.len() > SCIM_MAX_RESOURCES as usize {
            return Err(too_many("accounts"));
        }
        let groups = self
            .store
            .scim_groups(&src.id, SCIM_MAX_RESOURCES + 1)
            .await?;
        let mut of_user: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for g in &groups {
            for m in &g.members {
                of_user
                    .entry(m.clone())
                    .or_default()
                    .push((g.group_id.clone(), g.display_name.clone()));
            }
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let g = of_user.remove(&r.user.id).unwrap_or_default();
                user_record(r, g)
            })
            .collect())
    }

    /// One account of the source.
    pub async fn scim_user(&self, src: &ScimSource, id: &str) -> Result<ScimUserRecord> {
        let row = self
            .store
            .scim_user(&src.id, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        let groups = self.store.scim_groups_of(&src.id, id).await?;
        Ok(user_record(row, groups))
    }

    /// Creates an account linked to the source (no password: it signs in through the source).
    pub async fn scim_create_user(
        &self,
        src: &ScimSource,
        input: ScimUserInput,
        meta: &RequestMeta,
    ) -> Result<ScimUserRecord> {
        let attrs = check_user_input(&input)?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        if tx.scim_subject_taken(&src.id, &input.user_name, "").await? {
            return Err(taken(&input.user_name));
        }
        let mut username = None;
        for n in 1..=50 {
            let candidate = derive_username(
                Some(&input.user_name),
                input.email.as_deref(),
                &input.user_name,
                n,
            );
            if names::username("username", &candidate).is_ok()
                && self.store.user_by_name(&candidate).await?.is_none()
            {
                username = Some(candidate);
                break;
            }
        }
        let Some(username) = username else {
            return Err(Error::new(
                ErrorCode::Conflict,
                "no free username could be derived from this userName; choose another userName",
            ));
        };
        let user = User {
            id: new_id("usr")?,
            username: username.clone(),
            display_name: input.display_name.clone().unwrap_or_default(),
            email: input.email.clone().unwrap_or_default(),
            platform_admin: false,
            disabled: false,
            created_at: now,
        };
        tx.insert_user(&user, None).await?;
        tx.insert_external_link(
            &src.id,
            &input.user_name,
            &user.id,
            input.external_id.as_deref(),
            now,
        )
        .await?;
        tx.put_scim_user(&user.id, &src.id, &attrs, 1, now).await?;
        let rec = AuditRecord {
            detail: detail!(
                "source" => src.name.clone(),
                "user_name" => input.user_name.clone(),
                "id" => user.id.clone()
            ),
            ..meta.record(
                now,
                &src.actor(),
                "scim",
                "scim.user.create",
                label("user", &username),
            )
        };
        self.commit(tx, rec).await?;
        if input.active == Some(false) {
            self.deactivate_account(&user.id, &src.actor(), "deactivated through SCIM")
                .await?;
        }
        self.scim_user(src, &user.id).await
    }

    /// Replaces an account's SCIM attributes (PUT, and PATCH after the patch is applied).
    /// `active=false` deactivates the account, `active=true` enables it again.
    pub async fn scim_replace_user(
        &self,
        src: &ScimSource,
        id: &str,
        input: ScimUserInput,
        expected_version: Option<u64>,
        meta: &RequestMeta,
    ) -> Result<ScimUserRecord> {
        let attrs = check_user_input(&input)?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let current = tx
            .scim_user_version(&src.id, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        let current = check_version(current, expected_version)?;
        if tx.scim_subject_taken(&src.id, &input.user_name, id).await? {
            return Err(taken(&input.user_name));
        }
        let Some(c) = self.store.user_by_id(id).await? else {
            return Err(user_not_found(id));
        };
        let mut user = c.user;
        let enable = input.active == Some(true) && user.disabled;
        user.display_name = input.display_name.clone().unwrap_or_default();
        user.email = input.email.clone().unwrap_or_default();
        if enable {
            user.disabled = false;
        }
        tx.update_user(&user, now).await?;
        tx.set_scim_link(
            &src.id,
            id,
            &input.user_name,
            input.external_id.as_deref(),
            now,
        )
        .await?;
        tx.put_scim_user(id, &src.id, &attrs, next_version(current), now)
            .await?;
        let rec = AuditRecord {
            detail: detail!(
                "source" => src.name.clone(),
                "user_name" => input.user_name.clone(),
                "enabled" => enable
            ),
            ..meta.record(
                now,
                &src.actor(),
                "scim",
                "scim.user.update",
                label("user", &user.username),
            )
        };
        self.commit(tx, rec).await?;
        if input.active == Some(false) && !user.disabled {
            self.deactivate_account(id, &src.actor(), "deactivated through SCIM")
                .await?;
        }
        self.scim_user(src, id).await
    }

    /// Deprovisions an account: deactivates it (sessions and tokens end at once, workloads
    /// within the deprovisioning bound), takes it out of the source's groups and removes its
    /// link. The account stays, disabled, for the audit trail.
    pub async fn scim_delete_user(
        &self,
        src: &ScimSource,
        id: &str,
        expected_version: Option<u64>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let row = self
            .store
            .scim_user(&src.id, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        check_version(row.version, expected_version)?;
        self.deactivate_account(id, &src.actor(), "deprovisioned through SCIM")
            .await?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let current = tx
            .scim_user_version(&src.id, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        check_version(current, expected_version)?;
        let mut left = Vec::new();
        for (gid, _) in self.store.scim_groups_of(&src.id, id).await? {
            if tx.remove_group_member(&gid, id).await? {
                if let Some(v) = tx.scim_group_version(&src.id, &gid).await? {
                    bump_group(&mut tx, &self.store, &src.id, &gid, v, now).await?;
                }
                left.push(gid);
            }
        }
        tx.delete_scim_link(&src.id, id).await?;
        let rec = AuditRecord {
            detail: detail!(
                "source" => src.name.clone(),
                "user_name" => row.subject.clone(),
                "groups_left" => left
            ),
            ..meta.record(
                now,
                &src.actor(),
                "scim",
                "scim.user.delete",
                label("user", &row.user.username),
            )
        };
        self.commit(tx, rec).await
    }

    /// Every group the source manages (at most [`SCIM_MAX_RESOURCES`], else `unavailable`).
    pub async fn scim_groups(&self, src: &ScimSource) -> Result<Vec<ScimGroupRecord>> {
        let rows = self
            .store
            .scim_groups(&src.id, SCIM_MAX_RESOURCES + 1)
            .await?;
        if rows.len() > SCIM_MAX_RESOURCES as usize {
            return Err(too_many("groups"));
        }
        Ok(rows.into_iter().map(group_record).collect())
    }

    /// One group the source manages.
    pub async fn scim_group(&self, src: &ScimSource, id: &str) -> Result<ScimGroupRecord> {
        self.store
            .scim_group(&src.id, id)
            .await?
            .map(group_record)
            .ok_or_else(|| group_not_found(id))
    }

    /// Creates an Enclave group managed by the source; its name is derived from the display
    /// name. Members must be accounts of the source.
    pub async fn scim_create_group(
        &self,
        src: &ScimSource,
        input: ScimGroupInput,
        meta: &RequestMeta,
    ) -> Result<ScimGroupRecord> {
        check_group_input(&input)?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        check_members(&mut tx, &src.id, &input.members).await?;
        let mut name = None;
        for n in 1..=50 {
            let candidate = group_name(&input.display_name, n);
            if names::slug("name", &candidate).is_ok() && !tx.group_name_taken(&candidate).await? {
                name = Some(candidate);
                break;
            }
        }
        let Some(name) = name else {
            return Err(Error::new(
                ErrorCode::Conflict,
                "no free group name could be derived from this displayName; choose another",
            ));
        };
        let id = new_id("grp")?;
        tx.insert_group(&id, &name, &input.display_name, now)
            .await?;
        tx.insert_scim_group(
            &id,
            &src.id,
            &input.display_name,
            input.external_id.as_deref(),
            now,
        )
        .await?;
        for m in &input.members {
            tx.add_group_member(&id, m, now).await?;
        }
        let rec = AuditRecord {
            detail: detail!(
                "source" => src.name.clone(),
                "display_name" => input.display_name.clone(),
                "members" => input.members.len()
            ),
            ..meta.record(
                now,
                &src.actor(),
                "scim",
                "scim.group.create",
                label("group", &name),
            )
        };
        self.commit(tx, rec).await?;
        self.scim_group(src, &id).await
    }

    /// Replaces a managed group's display name, externalId and members (the Enclave name stays).
    pub async fn scim_replace_group(
        &self,
        src: &ScimSource,
        id: &str,
        input: ScimGroupInput,
        expected_version: Option<u64>,
        meta: &RequestMeta,
    ) -> Result<ScimGroupRecord> {
        check_group_input(&input)?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let current = tx
            .scim_group_version(&src.id, id)
            .await?
            .ok_or_else(|| group_not_found(id))?;
        let current = check_version(current, expected_version)?;
        check_members(&mut tx, &src.id, &input.members).await?;
        let Some(row) = self.store.scim_group(&src.id, id).await? else {
            return Err(group_not_found(id));
        };
        let before: BTreeSet<String> = tx.group_member_ids(id).await?.into_iter().collect();
        let after: BTreeSet<String> = input.members.iter().cloned().collect();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for m in after.difference(&before) {
            tx.add_group_member(id, m, now).await?;
            added.push(m.clone());
        }
        for m in before.difference(&after) {
            tx.remove_group_member(id, m).await?;
            removed.push(m.clone());
        }
        tx.update_group(id, &input.display_name).await?;
        tx.update_scim_group(
            id,
            &input.display_name,
            input.external_id.as_deref(),
            next_version(current),
            now,
        )
        .await?;
        let rec = AuditRecord {
            detail: detail!(
                "source" => src.name.clone(),
                "display_name" => input.display_name.clone(),
                "added" => added,
                "removed" => removed
            ),
            ..meta.record(
                now,
                &src.actor(),
                "scim",
                "scim.group.update",
                label("group", &row.name),
            )
        };
        self.commit(tx, rec).await?;
        self.scim_group(src, id).await
    }

    /// Deletes a managed group (its memberships go with it).
    pub async fn scim_delete_group(
        &self,
        src: &ScimSource,
        id: &str,
        expected_version: Option<u64>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let current = tx
            .scim_group_version(&src.id, id)
            .await?
            .ok_or_else(|| group_not_found(id))?;
        check_version(current, expected_version)?;
        let Some(row) = self.store.scim_group(&src.id, id).await? else {
            return Err(group_not_found(id));
        };
        tx.delete_group(id).await?;
        let rec = AuditRecord {
            detail: detail!(
                "source" => src.name.clone(),
                "display_name" => row.display_name.clone(),
                "members" => row.members.len()
            ),
            ..meta.record(
                now,
                &src.actor(),
                "scim",
                "scim.group.delete",
                label("group", &row.name),
            )
        };
        self.commit(tx, rec).await
    }
}

fn taken(user_name: &str) -> Error {
    Error::new(
        ErrorCode::Conflict,
        format!(
            "userName '{}' is already taken in this identity source; choose another",
            user_name.chars().take(64).collect::<String>()
        ),
    )
    .with("field", "userName")
}

async fn check_members(tx: &mut WriteTx, source_id: &str, members: &[String]) -> Result<()> {
    for m in members {
        if tx.scim_user_version(source_id, m).await?.is_none() {
            return Err(Error::invalid(
                "members",
                format!(
                    "member '{}' is not a user of this identity source; members must be users provisioned here",
                    m.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

async fn bump_group(
    tx: &mut WriteTx,
    store: &enclave_store::Store,
    source_id: &str,
    group_id: &str,
    version: i64,
    now: Timestamp,
) -> Result<()> {
    if let Some(g) = store.scim_group(source_id, group_id).await? {
        tx.update_scim_group(
            group_id,
            &g.display_name,
            g.external_id.as_deref(),
            version.saturating_add(1),
            now,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_the_slug_rules() {
        for (display, want) in [
            ("Data Science", "data-science"),
            ("  R&D -- Team ", "r-d-team"),
            ("3f2a-77", "g-3f2a-77"),
            ("!", "group"),
            ("Ünïcode", "n-code"),
        ] {
            let got = group_name(display, 1);
            assert_eq!(got, want, "{display}");
            assert!(names::slug("n", &got).is_ok(), "{got}");
        }
        let long = "x".repeat(100);
        let n = group_name(&long, 12);
        assert_eq!(n.len(), 40);
        assert!(n.ends_with("-12"));
        assert!(names::slug("n", &n).is_ok());
        let uuid = group_name("0b7c1f3e-5d8a-4c2b-9e1f-2a3b4c5d6e7f", 1);
        assert!(names::slug("n", &uuid).is_ok(), "{uuid}");
    }

    #[test]
    fn versions_are_checked() {
        assert_eq!(check_version(3, None).unwrap(), 3);
        assert_eq!(check_version(3, Some(3)).unwrap(), 3);
        let e = check_version(3, Some(2)).unwrap_err();
        assert!(e.details.contains_key(SCIM_VERSION_MISMATCH));
        assert_eq!(next_version(3), 4);
    }
}
