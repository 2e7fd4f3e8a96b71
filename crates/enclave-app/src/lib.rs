//! Enclave's use cases. Every request from the HTTP front, the console or a local command ends
//! up in a method of [`App`].
//!
//! Invariants:
//! * Every use case authorizes through [`App::authorize`] (the one authorization chokepoint)
//!   before it reads or changes anything that belongs to someone.
//! * Every state change commits together with its audit record ([`App::commit`], the one audit
//!   chokepoint); a denial is audited before the caller learns of it. If the record cannot be
//!   written, the change does not happen and the caller gets `unavailable`.
//! * Secrets (passwords, session ids, tokens) are never stored, logged or audited: only hashes.
//! * Time comes from the injected [`Clock`]; nothing here reads the system time directly.

mod access;
mod auth;
mod backup;
mod chokepoint;
mod environments;
mod grants;
mod groups;
mod identity;
mod jobs;
mod keys;
mod memo;
mod mfa;
mod notebook_handoff;
mod notebooks;
mod passkeys;
mod passwords;
mod policies;
mod project_secrets;
mod projects;
mod scim;
pub mod secrets;
mod setup;
mod token_use;
mod tokens;
mod trail;
mod users;

use enclave_core::session::{SessionPolicy, TokenPolicy};
use enclave_core::throttle::ThrottleRule;
use enclave_core::{Clock, Timestamp};
use enclave_store::Store;
use std::sync::Arc;
use std::time::Duration;

pub use access::membership_role;
pub use auth::csrf_token_for;
pub use auth::{AuthMethod, Authentication, LoginOutcome};
pub use backup::{BackupArchive, BACKUP_DB_NAME};
pub use chokepoint::{count_decisions, Caller, RequestMeta};
pub use environments::{EnvStatus, EnvironmentView};
pub use identity::{IdentitySettings, LoginOption, SourceInput, SourceTest, SyncReport};
pub use jobs::{JobLog, SandboxHost, MAX_JOB_LIST, SERVER_STOPPED};
pub use keys::{project_scope, KeyStatus, KeyVersionStatus, Keyring, MasterSealed, MasterStatus};
pub use mfa::{
    qr_svg, MfaLogin, MfaStatus, SecondFactor, TotpEnrollment, MAX_ATTEMPTS, MFA_AMR, PENDING_TTL,
};
pub use notebook_handoff::{NotebookEntry, HANDOFF_ACTION, HANDOFF_TTL, MAX_OPEN_HANDOFFS};
pub use notebooks::{
    Execution, NotebookSettings, NotebookTarget, MAX_AUDITED_CODE, MAX_NOTEBOOK_LIST,
    NOTEBOOK_SERVER_STOPPED,
};
pub use passkeys::{relying_party, Passkey, PasskeyAdded, UserMfa, MAX_PASSKEYS, PASSKEY_AMR};
pub use passwords::PasswordHasher;
pub use policies::{bindable_roles, CheckAnswer, CheckRequest, NewPolicy};
pub use project_secrets::PlanEntry;
pub use projects::{ProjectPatch, ProjectView};
pub use scim::{
    ScimGroupInput, ScimGroupRecord, ScimSource, ScimUserInput, ScimUserRecord,
    SCIM_MAX_ATTRIBUTES, SCIM_MAX_MEMBERS, SCIM_MAX_RESOURCES, SCIM_VERSION_MISMATCH,
};
pub use token_use::{TOKEN_USE_ACTION, USE_WINDOW};
pub use tokens::TokenCreated;
pub use trail::{AuditKey, AuditScope, MAX_AUDIT_PAGE};
pub use users::{NewUser, UserPatch};

/// Tunable rules of the application, filled from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Session timeouts.
    pub sessions: SessionPolicy,
    /// Token lifetimes.
    pub tokens: TokenPolicy,
    /// Throttle per account name.
    pub account_throttle: ThrottleRule,
    /// Throttle per source address.
    pub address_throttle: ThrottleRule,
    /// Lifetime of the one-time setup link.
    pub setup_ttl: Duration,
    /// Parallel password hashes.
    pub hash_concurrency: usize,
    /// Waiting password hashes beyond which logins are refused as unavailable.
    pub hash_queue: usize,
    /// Longest time-bound access grant.
    pub max_grant: Duration,
    /// Local accounts must enrol in MFA: until they do, their sessions may only read their
    /// own account, enrol and log out (`login.require_mfa`).
    pub require_mfa: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sessions: SessionPolicy {
                idle: Duration::from_secs(30 * 60),
                absolute: Duration::from_secs(12 * 3600),
            },
            tokens: TokenPolicy {
                default_lifetime: Duration::from_secs(30 * 86_400),
                max_lifetime: Duration::from_secs(90 * 86_400),
            },
            account_throttle: ThrottleRule {
                max_failures: 5,
                window: Duration::from_secs(15 * 60),
                lockout: Duration::from_secs(15 * 60),
            },
            address_throttle: ThrottleRule {
                max_failures: 20,
                window: Duration::from_secs(15 * 60),
                lockout: Duration::from_secs(15 * 60),
            },
            setup_ttl: Duration::from_secs(3600),
            hash_concurrency: 0,
            hash_queue: 64,
            max_grant: Duration::from_secs(4 * 3600),
            require_mfa: false,
        }
    }
}

/// The system clock, for production.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// The application: store, clock, rules and the password hashing pool. Cheap to clone.
#[derive(Clone)]
pub struct App {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: Arc<Settings>,
    hasher: PasswordHasher,
    auth_cache: Arc<memo::Memo<String, memo::Resolved>>,
    project_lists: Arc<memo::Memo<projects::ListKey, projects::ListPage>>,
    policy: Arc<access::PolicyState>,
    on_commit: Arc<std::sync::OnceLock<CommitListener>>,
    token_uses: Arc<token_use::TokenUses>,
    keys: Option<Arc<keys::Keyring>>,
    /// Files of the data directory that backups hold besides the database.
    backup_files: Arc<Vec<std::path::PathBuf>>,
    /// Runs jobs in sandboxes (absent where sandboxes are unavailable).
    runner: Option<Arc<jobs::Runner>>,
    /// Builds notebook environments (absent where sandboxes are unavailable).
    environments: Option<Arc<environments::Environments>>,
    /// Runs notebook servers (absent where sandboxes are unavailable).
    notebooks: Option<Arc<notebooks::Notebooks>>,
    /// Identity sources' live clients and the deprovisioning sweep.
    identity: Arc<identity::IdentityState>,
}

/// Called after every successful commit (e.g. to wake the audit forwarders).
pub type CommitListener = Box<dyn Fn() + Send + Sync>;

impl App {
    /// Wires the application.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> enclave_core::Result<App> {
        let hasher = PasswordHasher::new(settings.hash_concurrency, settings.hash_queue)?;
        Ok(App {
            store,
            clock,
            settings: Arc::new(settings),
            hasher,
            auth_cache: Arc::default(),
            project_lists: Arc::default(),
            policy: Arc::new(access::PolicyState::new()?),
            on_commit: Arc::default(),
            token_uses: Arc::default(),
            keys: None,
            backup_files: Arc::default(),
            runner: None,
            environments: None,
            notebooks: None,
            identity: Arc::default(),
        })
    }

    /// The application with its encryption keys (without them, secrets are unavailable).
    pub fn with_keys(mut self, keys: Arc<keys::Keyring>) -> App {
        self.keys = Some(keys);
        self
    }

    /// Sets the function called after every successful commit (once; later calls are ignored).
    pub fn set_commit_listener(&self, f: CommitListener) {
        let _ = self.on_commit.set(f);
    }

    /// The current time from the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The rules in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store (for readiness checks and local administration).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Readiness: the store answers and its schema is current.
    pub async fn ready(&self) -> bool {
        self.store.ready().await.is_ok()
    }

    /// Housekeeping: removes expired sessions and stale throttle rows. Run periodically.
    pub async fn prune(&self) -> enclave_core::Result<()> {
        let now = self.now();
        let s = &self.settings;
        let mut tx = self.store.write().await?;
        tx.prune_sessions(now.minus(s.sessions.idle), now.minus(s.sessions.absolute))
            .await?;
        let window = s.account_throttle.window.max(s.address_throttle.window);
        tx.prune_throttle(now.minus(window), now).await?;
        tx.commit().await?;
        Ok(())
    }
}
