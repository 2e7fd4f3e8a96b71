//! Who holds which role where: role bindings, custom policies and time-bound access grants, with
//! the pure rules about them (grant lifecycle, limits). The policy engine turns these facts into
//! Cedar decisions; the store persists them.

use crate::error::{Error, Result};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Longest accepted reason for an access grant, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Largest accepted custom policy text, in bytes.
pub const MAX_POLICY_BYTES: usize = 16 * 1024;

/// Who a role is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    /// A user account.
    User,
    /// A group (its members, transitively).
    Group,
    /// A workload (notebook, job, endpoint).
    Workload,
}

impl SubjectKind {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::Group => "group",
            SubjectKind::Workload => "workload",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<SubjectKind> {
        match s {
            "user" => Some(SubjectKind::User),
            "group" => Some(SubjectKind::Group),
            "workload" => Some(SubjectKind::Workload),
            _ => None,
        }
    }
}

/// A role bound to a subject, platform-wide (`project: None`) or on one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    /// Opaque id.
    pub id: String,
    /// Kind of subject.
    pub subject_kind: SubjectKind,
    /// The subject's id (user id, group id, workload id).
    pub subject_id: String,
    /// The subject's name as shown to people (username, group name, workload id).
    pub subject_name: String,
    /// Built-in role name.
    pub role: String,
    /// Project name, or `None` for platform-wide.
    pub project: Option<String>,
    /// When the binding stops applying, if ever.
    pub expires_at: Option<Timestamp>,
    /// Username of whoever created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A custom Cedar policy written by an admin (platform-wide) or a project owner (one project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPolicy {
    /// Opaque id; the Cedar policy id is `custom.<id>`.
    pub id: String,
    /// Short name, unique within its scope.
    pub name: String,
    /// Project name, or `None` for platform-wide.
    pub project: Option<String>,
    /// Free text.
    pub description: String,
    /// Cedar source text.
    pub body: String,
    /// Username of its author.
    pub created_by: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What a time-bound grant gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantRole {
    /// Read the project and open its notebooks to help; no secret values, no changes.
    Support,
    /// A project owner's rights, for the grant's duration.
    ProjectAdmin,
}

impl GrantRole {
    /// Wire and storage name, which is also the role's name in the policy engine.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantRole::Support => "support",
            GrantRole::ProjectAdmin => "project_admin",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<GrantRole> {
        match s {
            "support" => Some(GrantRole::Support),
            "project_admin" => Some(GrantRole::ProjectAdmin),
            _ => None,
        }
    }
}

/// Where a grant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    /// Waiting for a project owner's approval.
    Pending,
    /// Approved (or needing no approval); applies between `starts_at` and `expires_at`.
    Active,
    /// A project owner refused it.
    Denied,
    /// Ended early by the grantee, an owner or an admin.
    Revoked,
}

impl GrantStatus {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Active => "active",
            GrantStatus::Denied => "denied",
            GrantStatus::Revoked => "revoked",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<GrantStatus> {
        match s {
            "pending" => Some(GrantStatus::Pending),
            "active" => Some(GrantStatus::Active),
            "denied" => Some(GrantStatus::Denied),
            "revoked" => Some(GrantStatus::Revoked),
            _ => None,
        }
    }
}

/// Time-bound support or admin access to one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// Opaque id.
    pub id: String,
    /// Project name.
    pub project: String,
    /// The user who gets access.
    pub grantee_id: String,
    /// Their username.
    pub grantee: String,
    /// What the grant gives.
    pub role: GrantRole,
    /// Why (shown to the project's members).
    pub reason: String,
    /// Requested duration in seconds.
    pub duration_secs: i64,
    /// Lifecycle state.
    pub status: GrantStatus,
    /// When it was requested.
    pub requested_at: Timestamp,
    /// Who approved, denied or (with no approval needed) nobody.
    pub decided_by: Option<String>,
    /// When it was approved or denied.
    pub decided_at: Option<Timestamp>,
    /// When it started applying.
    pub starts_at: Option<Timestamp>,
    /// When it stops applying.
    pub expires_at: Option<Timestamp>,
    /// Who ended it early.
    pub revoked_by: Option<String>,
    /// When it was ended early.
    pub revoked_at: Option<Timestamp>,
}

impl AccessGrant {
    /// Whether the grant gives access at `now`.
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.status == GrantStatus::Active
            && self.starts_at.is_some_and(|s| s <= now)
            && self.expires_at.is_some_and(|e| now < e)
    }

    /// The state shown to people: `expired` for an active grant past its end.
    pub fn display_status(&self, now: Timestamp) -> &'static str {
        match self.status {
            GrantStatus::Active if !self.in_force(now) => "expired",
            s => s.as_str(),
        }
    }

    /// Starts the grant at `now` for its requested duration.
    pub fn activate(&mut self, by: Option<&str>, now: Timestamp) {
        self.status = GrantStatus::Active;
        if let Some(by) = by {
            self.decided_by = Some(by.to_string());
            self.decided_at = Some(now);
        }
        self.starts_at = Some(now);
        self.expires_at = Some(Timestamp(now.0.saturating_add(self.duration_secs)));
    }
}

/// Whether making group `child` a member of group `parent` would close a cycle, given the
/// existing nesting `edges` as `(parent, child)` pairs (a group may not contain itself, even
/// through other groups).
pub fn nesting_creates_cycle(edges: &[(String, String)], parent: &str, child: &str) -> bool {
    if parent == child {
        return true;
    }
    // Walk up from `parent`: reaching `child` means `child` already contains `parent`.
    let mut stack = vec![parent.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(g) = stack.pop() {
        if g == child {
            return true;
        }
        if !seen.insert(g.clone()) {
            continue;
        }
        stack.extend(
            edges
                .iter()
                .filter(|(_, c)| *c == g)
                .map(|(p, _)| p.clone()),
        );
    }
    false
}

/// Checks a grant request's reason and duration against the configured maximum.
pub fn check_grant_request(reason: &str, duration_secs: i64, max_secs: i64) -> Result<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid(
            "reason",
            "say why you need access; the project's members will see it",
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid(
            "reason",
            format!("at most {MAX_REASON_CHARS} characters"),
        ));
    }
    if duration_secs < 60 || duration_secs > max_secs {
        return Err(Error::invalid(
            "duration",
            format!(
                "between 1 minute and the platform's maximum of {} minutes",
                max_secs / 60
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> AccessGrant {
        AccessGrant {
            id: "g".into(),
            project: "p".into(),
            grantee_id: "u".into(),
            grantee: "sam".into(),
            role: GrantRole::Support,
            reason: "ticket 1".into(),
            duration_secs: 3600,
            status: GrantStatus::Pending,
            requested_at: Timestamp(100),
            decided_by: None,
            decided_at: None,
            starts_at: None,
            expires_at: None,
            revoked_by: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_grant_applies_exactly_from_start_to_expiry() {
        let mut g = grant();
        assert!(!g.in_force(Timestamp(200)));
        g.activate(Some("olivia"), Timestamp(200));
        assert!(!g.in_force(Timestamp(199)));
        assert!(g.in_force(Timestamp(200)));
        assert!(g.in_force(Timestamp(3799)));
        assert!(!g.in_force(Timestamp(3800)));
        assert_eq!(g.display_status(Timestamp(3800)), "expired");
        g.status = GrantStatus::Revoked;
        assert!(!g.in_force(Timestamp(300)));
    }

    #[test]
    fn nesting_cycles_are_found() {
        let e = |p: &str, c: &str| (p.to_string(), c.to_string());
        let edges = vec![e("all", "eng"), e("eng", "ds")];
        assert!(nesting_creates_cycle(&edges, "ds", "all"));
        assert!(nesting_creates_cycle(&edges, "ds", "ds"));
        assert!(!nesting_creates_cycle(&edges, "all", "ops"));
        assert!(!nesting_creates_cycle(&edges, "ops", "ds"));
    }

    #[test]
    fn requests_need_a_reason_and_a_bounded_duration() {
        assert!(check_grant_request("", 3600, 14400).is_err());
        assert!(check_grant_request("  ", 3600, 14400).is_err());
        assert!(check_grant_request(&"x".repeat(501), 3600, 14400).is_err());
        assert!(check_grant_request("ticket", 14401, 14400).is_err());
        assert!(check_grant_request("ticket", 59, 14400).is_err());
        assert!(check_grant_request("ticket", 14400, 14400).is_ok());
    }
}
