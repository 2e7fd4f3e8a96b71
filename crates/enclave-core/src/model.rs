//! Domain records shared by the store and the use cases.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A local account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Opaque stable id.
    pub id: String,
    /// Login name (see [`crate::names::username`]).
    pub username: String,
    /// Display name, may be empty.
    pub display_name: String,
    /// Email, may be empty.
    pub email: String,
    /// Platform administrator.
    pub platform_admin: bool,
    /// A disabled account cannot authenticate.
    pub disabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A group of users.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Opaque stable id.
    pub id: String,
    /// Group name (a slug).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Number of direct members.
    pub member_count: i64,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A project: the unit of isolation for members, workloads, data and secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Opaque stable id.
    pub id: String,
    /// Project name (a slug).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Username of the first owner.
    pub owner: String,
    /// Number of members of any role.
    pub member_count: i64,
    /// Data classification label policies can test (default `internal`).
    pub classification: String,
    /// Free-form tags policies can test (key → value).
    pub tags: std::collections::BTreeMap<String, String>,
    /// Whether support and admin access grants need a project owner's approval (default yes).
    pub requires_approval: bool,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Most tags on a project.
pub const MAX_PROJECT_TAGS: usize = 32;

/// Checks a classification label and a tag set.
pub fn check_project_attributes(
    classification: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> crate::Result<()> {
    let label_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    if !label_ok(classification) {
        return Err(crate::Error::invalid(
            "classification",
            "1 to 64 letters, digits, '-', '_', '.' or ':' (e.g. public, internal, confidential, restricted)",
        ));
    }
    if tags.len() > MAX_PROJECT_TAGS {
        return Err(crate::Error::invalid(
            "tags",
            format!("at most {MAX_PROJECT_TAGS} tags"),
        ));
    }
    for (k, v) in tags {
        if !label_ok(k) {
            return Err(crate::Error::invalid(
                "tags",
                format!(
                    "tag key '{}' must be 1 to 64 letters, digits, '-', '_', '.' or ':'",
                    k.chars().take(64).collect::<String>()
                ),
            ));
        }
        if v.chars().count() > 256 || v.chars().any(char::is_control) {
            return Err(crate::Error::invalid(
                "tags",
                format!("the value of tag '{k}' must be at most 256 printable characters"),
            ));
        }
    }
    Ok(())
}

/// A member's role in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectRole {
    /// Reads the project.
    Viewer,
    /// Works in the project.
    Member,
    /// Manages the project and its members.
    Owner,
}

impl ProjectRole {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
            ProjectRole::Member => "member",
            ProjectRole::Owner => "owner",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<ProjectRole> {
        match s {
            "viewer" => Some(ProjectRole::Viewer),
            "member" => Some(ProjectRole::Member),
            "owner" => Some(ProjectRole::Owner),
            _ => None,
        }
    }
}

/// What a personal API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Only read actions.
    Read,
    /// Everything its owner may do.
    Full,
}

impl TokenScope {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Full => "full",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<TokenScope> {
        match s {
            "read" => Some(TokenScope::Read),
            "full" => Some(TokenScope::Full),
            _ => None,
        }
    }
}

/// A personal API token's metadata (the secret itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    /// Public id, shown in lists.
    pub id: String,
    /// Owner's user id.
    pub user_id: String,
    /// Name given at creation.
    pub name: String,
    /// Scope.
    pub scope: TokenScope,
    /// Project names the token is limited to; empty means all the owner's projects.
    pub projects: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Last successful use, if any.
    pub last_used_at: Option<Timestamp>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A browser or API session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Internal id (not the cookie value; the cookie value is only stored hashed).
    pub id: String,
    /// Owner's user id.
    pub user_id: String,
    /// Creation time (absolute timeout counts from here).
    pub created_at: Timestamp,
    /// Last request (idle timeout counts from here).
    pub last_seen_at: Timestamp,
    /// How the session was authenticated, e.g. `password`.
    pub auth_method: String,
    /// Authentication method references (RFC 8176), space separated, e.g. `pwd otp`.
    pub amr: String,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// Cursor for the next page, if there is one.
    pub next: Option<String>,
}

/// Pagination request: at most `limit` items with keys strictly after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1..=200.
    pub limit: u32,
    /// Exclusive lower bound on the key.
    pub after: Option<String>,
}

impl PageRequest {
    /// Largest page.
    pub const MAX_LIMIT: u32 = 200;
    /// Default page.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// Validates client input.
    pub fn new(limit: Option<u32>, after: Option<String>) -> crate::error::Result<Self> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(crate::Error::invalid(
                "limit",
                format!("limit must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        if let Some(a) = &after {
            if a.len() > 256 || a.chars().any(char::is_control) {
                return Err(crate::Error::invalid(
                    "after",
                    "after is not a valid cursor",
                ));
            }
        }
        Ok(PageRequest { limit, after })
    }
}

/// Builds a page from `limit + 1` fetched rows: the extra row only tells that more exist.
pub fn page_from<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit as usize;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(key)
    } else {
        None
    };
    Page { items: rows, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let p = page_from(vec![1, 2, 3], 2, |x| x.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next.as_deref(), Some("2"));
        let p = page_from(vec![1, 2], 2, |x| x.to_string());
        assert_eq!(p.next, None);
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(201), None).is_err());
        assert!(PageRequest::new(None, Some("x\n".into())).is_err());
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(ProjectRole::Owner > ProjectRole::Member);
        assert!(ProjectRole::Member > ProjectRole::Viewer);
        for r in [ProjectRole::Viewer, ProjectRole::Member, ProjectRole::Owner] {
            assert_eq!(ProjectRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(ProjectRole::parse("admin"), None);
    }
}
