//! Wire types of the API. Request types refuse unknown fields; limits on sizes are enforced by
//! the domain validators, and the body limit bounds everything else.

use enclave_app::ProjectView;
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
}

/// Password login that opens a session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionLogin {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
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
