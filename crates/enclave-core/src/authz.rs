//! The vocabulary of authorization: every action Enclave authorizes, who asks, and with which
//! credential. Decisions themselves are made by the policy engine (`enclave-policy`, Cedar)
//! through the application's single chokepoint.

use crate::model::TokenScope;

/// Every operation Enclave authorizes: one variant per operation, with a stable wire name that
/// is also its Cedar action id (`Action::"user.list"`). Workload, secret, dataset and template
/// actions are used by the capabilities that add those resources; the built-in roles cover them
/// already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// List all users.
    UserList,
    /// Read one user.
    UserRead,
    /// Create a user.
    UserCreate,
    /// Update a user (profile, disable, admin flag).
    UserUpdate,
    /// Delete a user.
    UserDelete,
    /// Set another user's password.
    UserResetPassword,
    /// Clear a login lockout.
    UserUnlock,
    /// End all of a user's sessions.
    UserRevokeSessions,
    /// Remove another user's second factors (a lost authenticator).
    UserResetMfa,
    /// List groups.
    GroupList,
    /// Read a group and its members.
    GroupRead,
    /// Create a group.
    GroupCreate,
    /// Update a group.
    GroupUpdate,
    /// Delete a group.
    GroupDelete,
    /// Add or remove group members.
    GroupManageMembers,
    /// List projects (filtered to those visible).
    ProjectList,
    /// Create a project.
    ProjectCreate,
    /// Read a project and its members.
    ProjectRead,
    /// Update a project.
    ProjectUpdate,
    /// Delete a project.
    ProjectDelete,
    /// Add, change or remove project members.
    ProjectManageMembers,
    /// Read one's own account.
    SelfRead,
    /// Change one's own password.
    SelfChangePassword,
    /// List, read one's own tokens.
    TokenRead,
    /// Create a personal token.
    TokenCreate,
    /// Revoke a personal token.
    TokenRevoke,
    /// List custom policies (platform-wide or of a project).
    PolicyList,
    /// Read one custom policy.
    PolicyRead,
    /// Add a custom policy.
    PolicyCreate,
    /// Replace a custom policy's text.
    PolicyUpdate,
    /// Delete a custom policy.
    PolicyDelete,
    /// Explain or simulate a decision for some principal.
    PolicyCheck,
    /// List role bindings (platform-wide or of a project).
    RoleList,
    /// Bind a role to a user, group or workload.
    RoleBind,
    /// Remove a role binding.
    RoleUnbind,
    /// List a project's time-bound access grants.
    GrantList,
    /// Request time-bound support or admin access to a project.
    GrantRequest,
    /// Approve a pending access grant (a second person).
    GrantApprove,
    /// End an access grant before it expires.
    GrantRevoke,
    /// Search and read audit records.
    AuditSearch,
    /// Export audit records.
    AuditExport,
    /// Verify the audit trail and read its public key and checkpoints.
    AuditVerify,
    /// See a key's versions and re-encryption progress (never key material).
    KeyRead,
    /// Rotate or retire a project's data key.
    KeyRotate,
    /// Rotate the master key (rewraps every data key).
    KeyRotateMaster,
    /// Write an encrypted backup of the whole installation.
    BackupCreate,
    /// List secret names and metadata (never values).
    SecretList,
    /// Create or update a secret (a new version).
    SecretWrite,
    /// Delete a secret.
    SecretDelete,
    /// Read a secret's value.
    SecretReadValue,
    /// List notebook servers.
    NotebookList,
    /// Create, start and stop notebook servers.
    NotebookCreate,
    /// Delete a notebook server.
    NotebookDelete,
    /// Open a notebook server through the gateway.
    NotebookOpen,
    /// Execute code in a notebook (the notebook-execution role).
    NotebookExecute,
    /// List jobs and read their logs.
    JobList,
    /// Submit a job.
    JobRun,
    /// Cancel a job.
    JobCancel,
    /// Run as a job inside its sandbox (the job-execution role).
    JobExecute,
    /// List model endpoints.
    EndpointList,
    /// Create, update and delete model endpoints.
    EndpointCreate,
    /// Serve a model as an endpoint (the endpoint-hosting role).
    EndpointHost,
    /// Call a model endpoint.
    EndpointInvoke,
    /// Read a dataset.
    DatasetRead,
    /// Write a dataset.
    DatasetWrite,
    /// List environment templates.
    TemplateList,
    /// Create, change and delete environment templates.
    TemplateManage,
    /// List and read identity sources (OIDC providers, LDAP directories).
    IdpRead,
    /// Configure, test, sync and delete identity sources; rotate their SCIM tokens.
    IdpManage,
}

impl Action {
    /// Stable name, used in the audit trail and as the Cedar action id.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::UserList => "user.list",
            Action::UserRead => "user.read",
            Action::UserCreate => "user.create",
            Action::UserUpdate => "user.update",
            Action::UserDelete => "user.delete",
            Action::UserResetPassword => "user.reset_password",
            Action::UserUnlock => "user.unlock",
            Action::UserRevokeSessions => "user.revoke_sessions",
            Action::UserResetMfa => "user.reset_mfa",
            Action::GroupList => "group.list",
            Action::GroupRead => "group.read",
            Action::GroupCreate => "group.create",
            Action::GroupUpdate => "group.update",
            Action::GroupDelete => "group.delete",
            Action::GroupManageMembers => "group.manage_members",
            Action::ProjectList => "project.list",
            Action::ProjectCreate => "project.create",
            Action::ProjectRead => "project.read",
            Action::ProjectUpdate => "project.update",
            Action::ProjectDelete => "project.delete",
            Action::ProjectManageMembers => "project.manage_members",
            Action::SelfRead => "self.read",
            Action::SelfChangePassword => "self.change_password",
            Action::TokenRead => "token.read",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::PolicyList => "policy.list",
            Action::PolicyRead => "policy.read",
            Action::PolicyCreate => "policy.create",
            Action::PolicyUpdate => "policy.update",
            Action::PolicyDelete => "policy.delete",
            Action::PolicyCheck => "policy.check",
            Action::RoleList => "role.list",
            Action::RoleBind => "role.bind",
            Action::RoleUnbind => "role.unbind",
            Action::GrantList => "grant.list",
            Action::GrantRequest => "grant.request",
            Action::GrantApprove => "grant.approve",
            Action::GrantRevoke => "grant.revoke",
            Action::AuditSearch => "audit.search",
            Action::AuditExport => "audit.export",
            Action::AuditVerify => "audit.verify",
            Action::KeyRead => "key.read",
            Action::KeyRotate => "key.rotate",
            Action::KeyRotateMaster => "key.rotate_master",
            Action::BackupCreate => "backup.create",
            Action::SecretList => "secret.list",
            Action::SecretWrite => "secret.write",
            Action::SecretDelete => "secret.delete",
            Action::SecretReadValue => "secret.read_value",
            Action::NotebookList => "notebook.list",
            Action::NotebookCreate => "notebook.create",
            Action::NotebookDelete => "notebook.delete",
            Action::NotebookOpen => "notebook.open",
            Action::NotebookExecute => "notebook.execute",
            Action::JobList => "job.list",
            Action::JobRun => "job.run",
            Action::JobCancel => "job.cancel",
            Action::JobExecute => "job.execute",
            Action::EndpointList => "endpoint.list",
            Action::EndpointCreate => "endpoint.create",
            Action::EndpointHost => "endpoint.host",
            Action::EndpointInvoke => "endpoint.invoke",
            Action::DatasetRead => "dataset.read",
            Action::DatasetWrite => "dataset.write",
            Action::TemplateList => "template.list",
            Action::TemplateManage => "template.manage",
            Action::IdpRead => "idp.read",
            Action::IdpManage => "idp.manage",
        }
    }

    /// The action with this wire name.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.as_str() == name)
    }

    /// Whether the action only reads.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Action::UserList
                | Action::UserRead
                | Action::GroupList
                | Action::GroupRead
                | Action::ProjectList
                | Action::ProjectRead
                | Action::SelfRead
                | Action::TokenRead
                | Action::PolicyList
                | Action::PolicyRead
                | Action::PolicyCheck
                | Action::RoleList
                | Action::GrantList
                | Action::AuditSearch
                | Action::AuditExport
                | Action::AuditVerify
                | Action::KeyRead
                | Action::SecretList
                | Action::SecretReadValue
                | Action::NotebookList
                | Action::NotebookOpen
                | Action::JobList
                | Action::EndpointList
                | Action::DatasetRead
                | Action::TemplateList
                | Action::IdpRead
        )
    }

    /// Every action, for exhaustive tests and documentation.
    pub const ALL: [Action; 69] = [
        Action::UserList,
        Action::UserRead,
        Action::UserCreate,
        Action::UserUpdate,
        Action::UserDelete,
        Action::UserResetPassword,
        Action::UserUnlock,
        Action::UserRevokeSessions,
        Action::UserResetMfa,
        Action::GroupList,
        Action::GroupRead,
        Action::GroupCreate,
        Action::GroupUpdate,
        Action::GroupDelete,
        Action::GroupManageMembers,
        Action::ProjectList,
        Action::ProjectCreate,
        Action::ProjectRead,
        Action::ProjectUpdate,
        Action::ProjectDelete,
        Action::ProjectManageMembers,
        Action::SelfRead,
        Action::SelfChangePassword,
        Action::TokenRead,
        Action::TokenCreate,
        Action::TokenRevoke,
        Action::PolicyList,
        Action::PolicyRead,
        Action::PolicyCreate,
        Action::PolicyUpdate,
        Action::PolicyDelete,
        Action::PolicyCheck,
        Action::RoleList,
        Action::RoleBind,
        Action::RoleUnbind,
        Action::GrantList,
        Action::GrantRequest,
        Action::GrantApprove,
        Action::GrantRevoke,
        Action::AuditSearch,
        Action::AuditExport,
        Action::AuditVerify,
        Action::KeyRead,
        Action::KeyRotate,
        Action::KeyRotateMaster,
        Action::BackupCreate,
        Action::SecretList,
        Action::SecretWrite,
        Action::SecretDelete,
        Action::SecretReadValue,
        Action::NotebookList,
        Action::NotebookCreate,
        Action::NotebookDelete,
        Action::NotebookOpen,
        Action::NotebookExecute,
        Action::JobList,
        Action::JobRun,
        Action::JobCancel,
        Action::JobExecute,
        Action::EndpointList,
        Action::EndpointCreate,
        Action::EndpointHost,
        Action::EndpointInvoke,
        Action::DatasetRead,
        Action::DatasetWrite,
        Action::TemplateList,
        Action::TemplateManage,
        Action::IdpRead,
        Action::IdpManage,
    ];
}

/// How the principal authenticated, with the limits of that credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser or API session (full rights of the user).
    Session {
        /// Whether the login used a second factor (Enclave's TOTP step, or an identity
        /// provider that vouched for one); policies see it as `context.mfa`.
        mfa: bool,
        /// Whether Enclave itself checked the password (a local account), rather than a
        /// directory or single sign-on provider.
        local: bool,
    },
    /// A personal API token.
    Token {
        /// Token scope.
        scope: TokenScope,
        /// Projects the token is limited to; empty = no limit.
        projects: Vec<String>,
    },
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Username.
    pub username: String,
    /// Platform administrator.
    pub platform_admin: bool,
    /// The credential used.
    pub credential: Credential,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_unique_and_parse_back() {
        let mut names: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("nope"), None);
    }
}
