//! Wire types of the API. Request types refuse unknown fields; limits on sizes are enforced by
//! the domain validators, and the body limit bounds everything else.

use enclave_app::{CheckAnswer, ProjectView};
use enclave_core::access::{AccessGrant, CustomPolicy, GrantRole, RoleBinding};
use enclave_core::model::{ApiToken, Group, Page, PageRequest, ProjectRole, TokenScope, User};
use enclave_core::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Error body of every failed request.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine code, e.g. `invalid_input`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// Structured details, e.g. `{"field": "name"}`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Pagination query of every list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page's `next`.
    pub after: Option<String>,
}

impl ListQuery {
    /// Validated page request.
    pub fn page(self) -> enclave_core::Result<PageRequest> {
        PageRequest::new(self.limit, self.after)
    }
}

/// A page of items.
#[derive(Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Cursor for the next page, or null on the last page.
    pub next: Option<String>,
}

impl<T: ToSchema> List<T> {
    /// Converts a domain page.
    pub fn from_page<U>(p: Page<U>, f: impl Fn(U) -> T) -> Self {
        List {
            items: p.items.into_iter().map(f).collect(),
            next: p.next,
        }
    }
}

fn ts(t: Timestamp) -> String {
    t.rfc3339()
}

/// An account.
#[derive(Serialize, ToSchema)]
pub struct UserOut {
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Email address.
    pub email: String,
    /// Platform administrator.
    pub platform_admin: bool,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// Currently locked out after failed logins.
    pub locked: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl UserOut {
    /// From the domain record.
    pub fn new(u: User, locked: bool) -> Self {
        UserOut {
            username: u.username,
            display_name: u.display_name,
            email: u.email,
            platform_admin: u.platform_admin,
            disabled: u.disabled,
            locked,
            created_at: ts(u.created_at),
        }
    }
}

/// New account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name.
    pub username: String,
    /// Initial password, 12 to 256 characters, not a common password.
    pub password: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Make the account a platform admin.
    #[serde(default)]
    pub platform_admin: bool,
}

/// Account changes; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Display name.
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Disable (ends sessions, revokes tokens) or enable.
    pub disabled: Option<bool>,
    /// Grant or remove platform admin.
    pub platform_admin: Option<bool>,
}

/// A new password set by an admin.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// New password.
    pub password: String,
}

/// Change of one's own password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// Current password.
    pub current_password: String,
    /// New password.
    pub new_password: String,
}

/// A group.
#[derive(Serialize, ToSchema)]
pub struct GroupOut {
    /// Group name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Number of members.
    pub member_count: i64,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl From<Group> for GroupOut {
    fn from(g: Group) -> Self {
        GroupOut {
            name: g.name,
            description: g.description,
            member_count: g.member_count,
            created_at: ts(g.created_at),
        }
    }
}

/// New group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Group name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

/// Group or project changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDescription {
    /// New description.
    pub description: Option<String>,
}

/// A group member.
#[derive(Serialize, ToSchema)]
pub struct GroupMemberOut {
    /// Username.
    pub username: String,
}

/// A project as seen by the caller.
#[derive(Serialize, ToSchema)]
pub struct ProjectOut {
    /// Project name.
    pub name: String,
    /// Description.
    pub description: String,
    /// An owner's username.
    pub owner: String,
    /// The caller's role, or null.
    #[schema(value_type = Option<String>)]
    pub your_role: Option<ProjectRole>,
    /// Number of members.
    pub member_count: i64,
    /// Data classification label policies can test.
    pub classification: String,
    /// Tags policies can test.
    #[schema(value_type = Object)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Whether support and admin access grants need a project owner's approval.
    pub requires_approval: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl From<ProjectView> for ProjectOut {
    fn from(v: ProjectView) -> Self {
        ProjectOut {
            name: v.project.name,
            description: v.project.description,
            owner: v.project.owner,
            your_role: v.your_role,
            member_count: v.project.member_count,
            classification: v.project.classification,
            tags: v.project.tags,
            requires_approval: v.project.requires_approval,
            created_at: ts(v.project.created_at),
        }
    }
}

/// New project.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Project name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// First owner (default: the caller).
    pub owner: Option<String>,
}

/// A project member.
#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    /// Username.
    pub username: String,
    /// Role: owner, member or viewer.
    #[schema(value_type = String)]
    pub role: ProjectRole,
}

/// Role to set.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    /// owner, member or viewer.
    #[schema(value_type = String)]
    pub role: ProjectRole,
}

/// A personal API token (never the secret).
#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    /// Public id.
    pub id: String,
    /// Name.
    pub name: String,
    /// read or full.
    #[schema(value_type = String)]
    pub scope: TokenScope,
    /// Projects it is limited to (empty: no limit).
    pub projects: Vec<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
    /// RFC 3339 last use, or null.
    pub last_used_at: Option<String>,
    /// RFC 3339 revocation, or null.
    pub revoked_at: Option<String>,
}

impl From<ApiToken> for TokenOut {
    fn from(t: ApiToken) -> Self {
        TokenOut {
            id: t.id,
            name: t.name,
            scope: t.scope,
            projects: t.projects,
            created_at: ts(t.created_at),
            expires_at: ts(t.expires_at),
            last_used_at: t.last_used_at.map(ts),
            revoked_at: t.revoked_at.map(ts),
        }
    }
}

/// A new token: metadata plus the secret, shown only once.
#[derive(Serialize, ToSchema)]
pub struct TokenCreatedOut {
    /// Metadata.
    #[serde(flatten)]
    pub meta: TokenOut,
    /// The bearer secret; store it now, it is not shown again.
    pub token: String,
}

/// New token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Name.
    pub name: String,
    /// read or full (default full).
    #[schema(value_type = Option<String>)]
    pub scope: Option<TokenScope>,
    /// Limit to these projects.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Lifetime in days (default and maximum from the configuration).
    pub expires_in_days: Option<u32>,
}

/// Password login that issues a token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenLogin {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// Token name, e.g. `cli@laptop`.
    pub name: String,
    /// Lifetime in days.
    pub expires_in_days: Option<u32>,
    /// An LDAP identity source to check the password with (default: a local account).
    #[serde(default)]
    pub source: Option<String>,
}

/// Password login that opens a session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionLogin {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// An LDAP identity source to check the password with (default: a local account).
    #[serde(default)]
    pub source: Option<String>,
}

/// An opened session.
#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    /// Send this as `X-CSRF-Token` on state-changing requests made with the cookie.
    pub csrf_token: String,
    /// The user.
    pub user: UserOut,
}

/// First admin creation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// Token from the setup URL.
    pub token: String,
    /// Admin username.
    pub username: String,
    /// Admin password.
    pub password: String,
}

/// How the caller authenticated.
#[derive(Serialize, ToSchema)]
pub struct AuthInfo {
    /// `session` or `token`.
    pub method: String,
    /// Token id, when a token.
    pub token_id: Option<String>,
    /// Token scope, when a token.
    pub scope: Option<String>,
    /// Projects the token is limited to.
    pub projects: Option<Vec<String>>,
}

/// The caller.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// The account.
    pub user: UserOut,
    /// The credential.
    pub auth: AuthInfo,
}

/// Changes to a project; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    /// New description.
    pub description: Option<String>,
    /// New classification label, e.g. `public`, `internal`, `confidential`, `restricted`.
    pub classification: Option<String>,
    /// New tags (replace all tags).
    #[schema(value_type = Option<Object>)]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// Whether support and admin access grants need a project owner's approval.
    pub requires_approval: Option<bool>,
}

fn opt_ts(t: Option<Timestamp>) -> Option<String> {
    t.map(ts)
}

/// A custom Cedar policy.
#[derive(Serialize, ToSchema)]
pub struct PolicyOut {
    /// Id; the Cedar policy id is `custom.<id>`.
    pub id: String,
    /// Name, unique in its scope.
    pub name: String,
    /// Project, or null for a platform-wide policy.
    pub project: Option<String>,
    /// Description.
    pub description: String,
    /// Cedar text.
    pub body: String,
    /// Author's username.
    pub created_by: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl From<CustomPolicy> for PolicyOut {
    fn from(p: CustomPolicy) -> Self {
        PolicyOut {
            id: p.id,
            name: p.name,
            project: p.project,
            description: p.description,
            body: p.body,
            created_by: p.created_by,
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
        }
    }
}

/// A list without pagination (small, bounded collections).
#[derive(Serialize, ToSchema)]
pub struct Items<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
}

/// Scope filter of policy and role lists.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// A project; absent means the platform-wide ones.
    pub project: Option<String>,
}

/// New custom policy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    /// Name (a slug), unique in its scope.
    pub name: String,
    /// Project, or absent for a platform-wide policy (admins only).
    pub project: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Cedar text: exactly one policy; a project policy must have the resource scope
    /// `resource in Project::"<project>"`.
    pub body: String,
}

/// Changes to a custom policy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicy {
    /// New description.
    pub description: Option<String>,
    /// New Cedar text.
    pub body: Option<String>,
}

/// A simulated request to explain.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// `alice`, `user:alice` or `workload:<id>`.
    pub principal: String,
    /// Action, e.g. `project.read`.
    pub action: String,
    /// Resource, e.g. `platform`, `project:fraud`, `user:bob`, `secret:fraud/db-password`.
    pub resource: String,
    /// Circumstances: `source_ip`, `mfa`, `auth_method`, `read_only`, `token_projects`, and the
    /// schema's optional context fields.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A role held in the request's scope.
#[derive(Serialize, ToSchema)]
pub struct AppliedRoleOut {
    /// Role name.
    pub role: String,
    /// Where it comes from: `membership`, `binding`, `admin flag`, `grant:<id>`.
    pub origin: String,
    /// `platform` or `project:<name>`.
    pub scope: String,
    /// The group it is held through, if any.
    pub via_group: Option<String>,
    /// RFC 3339 expiry, if any.
    pub expires_at: Option<String>,
}

/// The answer of explain.
#[derive(Serialize, ToSchema)]
pub struct CheckOut {
    /// Whether the action would be allowed.
    pub allowed: bool,
    /// `allow` or `deny`.
    pub decision: String,
    /// Ids of the policies that decided.
    pub determining: Vec<String>,
    /// One sentence.
    pub explanation: String,
    /// Roles held in the request's scope.
    pub roles: Vec<AppliedRoleOut>,
    /// Evaluation errors (each denies).
    pub errors: Vec<String>,
}

impl From<CheckAnswer> for CheckOut {
    fn from(a: CheckAnswer) -> Self {
        let d = a.decision;
        CheckOut {
            allowed: d.allowed,
            decision: if d.allowed { "allow" } else { "deny" }.into(),
            determining: d.determining,
            explanation: a.explanation,
            roles: d
                .roles
                .into_iter()
                .map(|r| AppliedRoleOut {
                    role: r.role,
                    origin: r.origin,
                    scope: match r.scope {
                        enclave_policy::Scope::Platform => "platform".into(),
                        enclave_policy::Scope::Project(p) => format!("project:{p}"),
                    },
                    via_group: r.via_group,
                    expires_at: opt_ts(r.expires_at),
                })
                .collect(),
            errors: d.errors,
        }
    }
}

/// Query of `policy can`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CanQuery {
    /// `alice`, `user:alice` or `workload:<id>`.
    pub principal: String,
    /// Project name.
    pub project: String,
}

/// What a principal may do in a project.
#[derive(Serialize, ToSchema)]
pub struct CanOut {
    /// The principal asked about.
    pub principal: String,
    /// The project.
    pub project: String,
    /// Action names.
    pub actions: Vec<String>,
}

/// A role binding.
#[derive(Serialize, ToSchema)]
pub struct BindingOut {
    /// Id.
    pub id: String,
    /// `user:NAME`, `group:NAME` or `workload:ID`.
    pub subject: String,
    /// Role name.
    pub role: String,
    /// Project, or null for platform-wide.
    pub project: Option<String>,
    /// RFC 3339 expiry, or null.
    pub expires_at: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl From<RoleBinding> for BindingOut {
    fn from(b: RoleBinding) -> Self {
        BindingOut {
            subject: format!("{}:{}", b.subject_kind.as_str(), b.subject_name),
            id: b.id,
            role: b.role,
            project: b.project,
            expires_at: opt_ts(b.expires_at),
            created_by: b.created_by,
            created_at: ts(b.created_at),
        }
    }
}

/// New role binding.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBinding {
    /// `user:NAME`, `group:NAME` or `workload:ID`.
    pub subject: String,
    /// A built-in role, e.g. `data_scientist`, `security_auditor`.
    pub role: String,
    /// Project, or absent for platform-wide.
    pub project: Option<String>,
    /// Lifetime, e.g. `8h`; absent means until removed.
    pub expires_in: Option<String>,
}

/// A time-bound access grant.
#[derive(Serialize, ToSchema)]
pub struct GrantOut {
    /// Id.
    pub id: String,
    /// Project.
    pub project: String,
    /// Who gets access.
    pub grantee: String,
    /// `support` or `project_admin`.
    pub role: String,
    /// Why.
    pub reason: String,
    /// Requested duration in seconds.
    pub duration_secs: i64,
    /// `pending`, `active`, `expired`, `denied` or `revoked`.
    pub status: String,
    /// RFC 3339 request time.
    pub requested_at: String,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// When it was approved or denied.
    pub decided_at: Option<String>,
    /// When it started.
    pub starts_at: Option<String>,
    /// When it ends.
    pub expires_at: Option<String>,
    /// Who ended it early.
    pub revoked_by: Option<String>,
    /// When it was ended early.
    pub revoked_at: Option<String>,
}

impl GrantOut {
    /// The wire form of `g` as seen at `now` (an active grant past its end reads `expired`).
    pub fn at(g: AccessGrant, now: Timestamp) -> Self {
        GrantOut {
            status: g.display_status(now).into(),
            id: g.id,
            project: g.project,
            grantee: g.grantee,
            role: g.role.as_str().into(),
            reason: g.reason,
            duration_secs: g.duration_secs,
            requested_at: ts(g.requested_at),
            decided_by: g.decided_by,
            decided_at: opt_ts(g.decided_at),
            starts_at: opt_ts(g.starts_at),
            expires_at: opt_ts(g.expires_at),
            revoked_by: g.revoked_by,
            revoked_at: opt_ts(g.revoked_at),
        }
    }
}

/// A request for time-bound access.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestGrant {
    /// `support` (read and open notebooks, no secret values) or `project_admin` (an owner's
    /// rights).
    #[schema(value_type = String)]
    pub role: GrantRole,
    /// Why; shown to the project's members.
    pub reason: String,
    /// How long, e.g. `2h` (at most the platform's maximum, 4h by default).
    pub duration: String,
}

/// Audit search filters and paging.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Who (username, `system` or `anonymous`).
    pub actor: Option<String>,
    /// Action, e.g. `project.update`, `auth.login`.
    pub action: Option<String>,
    /// Resource, e.g. `project:fraud`.
    pub resource: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// `success`, `denied` or `failure`.
    pub outcome: Option<String>,
    /// UTC time, at or after: RFC 3339 (`2026-11-23T08:00:00Z`), `2026-11-23 08:00`, or a
    /// date (its midnight).
    pub since: Option<String>,
    /// UTC time, at or before, written like `since`.
    pub until: Option<String>,
    /// `newest` (default) or `oldest` first.
    pub order: Option<String>,
    /// Cursor from the previous page's `next`.
    pub after: Option<u64>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// One audit record with its place in the hash chain.
#[derive(Serialize, ToSchema)]
pub struct AuditRecordOut {
    /// Sequence number.
    pub seq: u64,
    /// Chain hash (hex).
    pub hash: String,
    /// RFC 3339 time (UTC).
    pub at: String,
    /// Who.
    pub actor: String,
    /// How they authenticated.
    pub auth: String,
    /// Source address.
    pub source: String,
    /// Action.
    pub action: String,
    /// Resource.
    pub resource: String,
    /// Project, if any.
    pub project: Option<String>,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    /// Request id (also in the server log).
    pub request_id: String,
    /// Structured detail.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A page of audit records.
#[derive(Serialize, ToSchema)]
pub struct AuditPageOut {
    /// Records.
    pub items: Vec<AuditRecordOut>,
    /// Cursor for the next page, or null.
    pub next: Option<u64>,
    /// What the search covered: `all`, `project` or `own`.
    pub scope: String,
}

/// Start of an export or verification.
#[derive(Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FromQuery {
    /// Start at the checkpoint with this sequence number (default: the beginning).
    pub from: Option<u64>,
}

/// A list size.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// How many, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// Where verification starts.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    /// The sequence number of a checkpoint to start from (default: the beginning).
    pub from: Option<u64>,
}

/// The first bad place of the trail.
#[derive(Serialize, ToSchema)]
pub struct VerifyFailureOut {
    /// Sequence number of the first bad record or checkpoint.
    pub seq: u64,
    /// `modified`, `deleted`, `inserted`, `reordered`, `broken`, `truncated`,
    /// `checkpoint_mismatch`, `bad_signature`, `checkpoint_out_of_order`, `missing_start`,
    /// `malformed`.
    pub kind: String,
    /// One sentence.
    pub message: String,
}

/// The verdict of a verification.
#[derive(Serialize, ToSchema)]
pub struct VerifyOut {
    /// Whether the trail is intact.
    pub ok: bool,
    /// Records verified.
    pub records: u64,
    /// First sequence number verified.
    pub first_seq: Option<u64>,
    /// Last sequence number verified.
    pub last_seq: Option<u64>,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Checkpoint verification started from.
    pub started_from: Option<u64>,
    /// Head hash (hex).
    pub head: Option<String>,
    /// What is wrong, when not ok.
    pub failure: Option<VerifyFailureOut>,
}

/// Stable name of a tamper kind.
pub fn tamper_kind(t: &enclave_audit::Tamper) -> &'static str {
    use enclave_audit::Tamper;
    match t {
        Tamper::Modified => "modified",
        Tamper::Deleted { .. } => "deleted",
        Tamper::Inserted => "inserted",
        Tamper::Reordered { .. } => "reordered",
        Tamper::Broken => "broken",
        Tamper::Truncated { .. } => "truncated",
        Tamper::CheckpointMismatch => "checkpoint_mismatch",
        Tamper::BadSignature => "bad_signature",
        Tamper::CheckpointOutOfOrder => "checkpoint_out_of_order",
        Tamper::MissingStart => "missing_start",
        Tamper::Malformed { .. } => "malformed",
    }
}

impl From<Result<enclave_audit::Summary, enclave_audit::Failure>> for VerifyOut {
    fn from(v: Result<enclave_audit::Summary, enclave_audit::Failure>) -> Self {
        match v {
            Ok(s) => VerifyOut {
                ok: true,
                records: s.records,
                first_seq: s.first_seq,
                last_seq: s.last_seq,
                checkpoints: s.checkpoints,
                started_from: s.started_from,
                head: Some(enclave_audit::to_hex(&s.head)),
                failure: None,
            },
            Err(f) => VerifyOut {
                ok: false,
                records: 0,
                first_seq: None,
                last_seq: None,
                checkpoints: 0,
                started_from: None,
                head: None,
                failure: Some(VerifyFailureOut {
                    seq: f.seq,
                    kind: tamper_kind(&f.kind).into(),
                    message: f.to_string(),
                }),
            },
        }
    }
}

/// A signed checkpoint.
#[derive(Serialize, ToSchema)]
pub struct CheckpointOut {
    /// The record it covers.
    pub seq: u64,
    /// That record's chain hash (hex).
    pub hash: String,
    /// RFC 3339 signing time.
    pub at: String,
    /// Signing key id.
    pub key_id: String,
    /// Ed25519 signature (base64).
    pub signature: String,
}

impl From<enclave_audit::Checkpoint> for CheckpointOut {
    fn from(c: enclave_audit::Checkpoint) -> Self {
        use base64::Engine;
        CheckpointOut {
            seq: c.seq,
            hash: enclave_audit::to_hex(&c.hash),
            at: c.at.rfc3339(),
            key_id: c.key_id,
            signature: base64::engine::general_purpose::STANDARD.encode(&c.signature),
        }
    }
}

/// The audit public key and the latest checkpoint.
#[derive(Serialize, ToSchema)]
pub struct AuditKeyOut {
    /// Ed25519 public key (base64 of the 32 raw bytes).
    pub public_key: String,
    /// The same key in hex.
    pub public_key_hex: String,
    /// Key id.
    pub key_id: String,
    /// The newest signed checkpoint, covering the trail up to now.
    pub latest_checkpoint: Option<CheckpointOut>,
}
