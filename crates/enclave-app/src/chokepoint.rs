//! The two chokepoints every use case goes through: [`App::authorize`] and [`App::commit`].

use crate::App;
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::authz::{Action, Credential, Principal};
use enclave_core::{Error, ErrorCode, Result, Timestamp};
use enclave_policy::{Decision, Resource};
use enclave_store::WriteTx;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    /// Authorization decisions made by the current request (see [`count_decisions`]).
    static DECISIONS: Cell<u32>;
}

/// Runs `f` and returns its output with the number of authorization decisions it asked
/// [`App::authorize`] for. The HTTP front uses it to refuse any response that no decision
/// covered.
pub async fn count_decisions<F: Future>(f: F) -> (F::Output, u32) {
    DECISIONS
        .scope(Cell::new(0), async move {
            let out = f.await;
            let n = DECISIONS.try_with(Cell::get).unwrap_or(0);
            (out, n)
        })
        .await
}

fn note_decision() {
    let _ = DECISIONS.try_with(|c| c.set(c.get().saturating_add(1)));
}

/// Facts about the request that the audit trail needs.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// Source address, or `local` for commands run on the server host.
    pub source: String,
    /// Request id for correlation with logs.
    pub request_id: String,
}

impl RequestMeta {
    /// A successful audit record of this request with no project and no detail; callers set
    /// the remaining fields with struct update syntax.
    pub(crate) fn record(
        &self,
        at: Timestamp,
        actor: &str,
        auth: &str,
        action: &str,
        resource: String,
    ) -> AuditRecord {
        AuditRecord {
            at,
            actor: actor.to_string(),
            auth: auth.to_string(),
            source: self.source.clone(),
            action: action.to_string(),
            resource,
            project: None,
            outcome: Outcome::Success,
            request_id: self.request_id.clone(),
            detail: Map::new(),
        }
    }

    /// Metadata for a command run locally on the server host.
    pub fn local() -> RequestMeta {
        RequestMeta {
            source: "local".into(),
            request_id: crate::secrets::new_id("req").unwrap_or_else(|_| "req_local".into()),
        }
    }
}

/// An authenticated caller: the principal plus the credential that identified it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// Session id (internal id, not the secret), when authenticated by session.
    pub session_id: Option<String>,
    /// Token id, when authenticated by token.
    pub token_id: Option<String>,
    /// The request.
    pub meta: RequestMeta,
}

impl Caller {
    /// How the caller authenticated, as written to the audit trail.
    pub fn auth_label(&self) -> String {
        match (&self.principal.credential, &self.token_id) {
            (Credential::Token { .. }, Some(id)) => format!("token:{id}"),
            _ => "session".into(),
        }
    }

    /// [`Caller::record`] of an action on the caller's own account (no project).
    pub fn record_self(
        &self,
        app: &App,
        action: &str,
        outcome: Outcome,
        detail: Map<String, Value>,
    ) -> AuditRecord {
        let resource = label("user", &self.principal.username);
        self.record(app, action, resource, None, outcome, detail)
    }

    /// An audit record for an action by this caller.
    pub fn record(
        &self,
        app: &App,
        action: &str,
        resource: String,
        project: Option<&str>,
        outcome: Outcome,
        detail: Map<String, Value>,
    ) -> AuditRecord {
        AuditRecord {
            project: project.map(str::to_string),
            outcome,
            detail,
            ..self.meta.record(
                app.now(),
                &self.principal.username,
                &self.auth_label(),
                action,
                resource,
            )
        }
    }
}

/// Builds a small JSON object for audit details.
#[macro_export]
macro_rules! detail {
    ($($k:literal => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = serde_json::Map::new();
        $( m.insert($k.to_string(), serde_json::Value::from($v)); )*
        m
    }};
}

/// The refusal of a request while `login.require_mfa` waits for the account's enrolment.
pub(crate) fn enroll_first() -> Error {
    Error::new(
        ErrorCode::Forbidden,
        "enroll in MFA first: this platform requires a second factor; open Account → \
         Two-factor authentication in the console (/account/mfa) or run `enclave mfa enroll`, \
         then sign in again",
    )
}

/// Human-readable resource label, e.g. `project:fraud`.
pub(crate) fn label(kind: &str, name: &str) -> String {
    format!("{kind}:{name}")
}

impl App {
    /// The authorization chokepoint: asks the policy engine (Cedar) whether `caller` may do
    /// `action` on `resource`. A denial is audited with the engine's explanation and returned as
    /// `forbidden` (or as `not_found` when `hide` is set, so that callers cannot learn that a
    /// resource they may not see exists).
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource,
        label: &str,
        hide: bool,
    ) -> Result<()> {
        self.authorize_with(caller, action, resource, None, label, hide)
            .await
    }

    /// [`App::authorize`] of `action` on the caller's own account.
    pub(crate) async fn authorize_self(&self, caller: &Caller, action: Action) -> Result<()> {
        self.authorize(
            caller,
            action,
            &Resource::User(caller.principal.user_id.clone()),
            &label("user", &caller.principal.username),
            false,
        )
        .await
    }

    /// [`App::authorize`] with extra request context for the policies (e.g. the role being
    /// bound, the requester of a grant).
    pub async fn authorize_with(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource,
        extra: Option<serde_json::Value>,
        label: &str,
        hide: bool,
    ) -> Result<()> {
        if self.settings.require_mfa
            && matches!(
                caller.principal.credential,
                Credential::Session {
                    mfa: false,
                    local: true
                }
            )
            && !matches!(action, Action::SelfRead | Action::SelfChangePassword)
        {
            note_decision();
            let rec = caller.record(
                self,
                action.as_str(),
                label.to_string(),
                resource.project(),
                Outcome::Denied,
                crate::detail!("reason" => "login.require_mfa: the account has not enrolled in MFA"),
            );
            self.audit(rec).await?;
            return Err(enroll_first());
        }
        let decision = self.decide(caller, action, resource, extra).await;
        if decision.allowed {
            return Ok(());
        }
        let rec = caller.record(
            self,
            action.as_str(),
            label.to_string(),
            resource.project(),
            Outcome::Denied,
            crate::detail!("reason" => decision.explain()),
        );
        self.audit(rec).await?;
        if hide {
            let (kind, name) = label.split_once(':').unwrap_or(("resource", label));
            Err(Error::not_found(kind, name))
        } else {
            Err(Error::forbidden())
        }
    }

    /// The decision itself, without auditing or erroring: for filtering lists (each hidden
    /// item is simply left out) and for explain. Counts as a decision of the request.
    pub(crate) async fn decide(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource,
        extra: Option<serde_json::Value>,
    ) -> Decision {
        note_decision();
        self.ensure_policy().await;
        let req = crate::access::request(caller, action, resource.clone(), extra);
        self.policy.engine.decide(&req, self.now())
    }

    /// Which of `actions` the caller may do platform-wide (the audit actions on the whole
    /// trail, the others on the platform), for showing navigation only. Each is decided by
    /// [`App::decide`] and not audited; the decisions are counted in a scope of their own, so
    /// they never stand in for the decision a page must still ask for itself.
    pub async fn my_platform_actions(&self, caller: &Caller, actions: &[Action]) -> Vec<Action> {
        let decide_all = async {
            let mut allowed = Vec::new();
            for &action in actions {
                let resource = match action {
                    Action::AuditSearch | Action::AuditExport | Action::AuditVerify => {
                        Resource::AuditTrail { project: None }
                    }
                    _ => Resource::Platform,
                };
                if self.decide(caller, action, &resource, None).await.allowed {
                    allowed.push(action);
                }
            }
            allowed
        };
        count_decisions(decide_all).await.0
    }

    /// Which of `actions` the caller may do in `project`: the `secret.*` actions on the secret
    /// `secret` when one is named, everything else on the project. For showing forms and
    /// buttons only, like [`App::my_platform_actions`]: decided by [`App::decide`], not
    /// audited, counted in a scope of their own; the use case decides again when it is called.
    pub async fn my_project_actions(
        &self,
        caller: &Caller,
        project: &str,
        secret: Option<&str>,
        actions: &[Action],
    ) -> Vec<Action> {
        let decide_all = async {
            let mut allowed = Vec::new();
            for &action in actions {
                let resource = match (action, secret) {
                    (
                        Action::SecretWrite | Action::SecretDelete | Action::SecretReadValue,
                        Some(name),
                    ) => Resource::Secret {
                        name: name.to_string(),
                        project: project.to_string(),
                        owner: None,
                    },
                    _ => Resource::Project(project.to_string()),
                };
                if self.decide(caller, action, &resource, None).await.allowed {
                    allowed.push(action);
                }
            }
            allowed
        };
        count_decisions(decide_all).await.0
    }

    /// The authorization chokepoint for a workload acting as itself (its own roles, in its own
    /// project). A denial is audited with the engine's explanation and returned as `forbidden`.
    pub(crate) async fn authorize_workload(
        &self,
        workload_id: &str,
        meta: &RequestMeta,
        action: Action,
        resource: &Resource,
        label: &str,
    ) -> Result<()> {
        note_decision();
        self.ensure_policy().await;
        let req = enclave_policy::Request {
            principal: enclave_policy::Principal::Workload(workload_id.to_string()),
            credential: enclave_policy::Credential::full(
                enclave_policy::AuthMethod::Workload,
                false,
            ),
            source_ip: crate::access::source_ip(&meta.source),
            action,
            resource: resource.clone(),
            extra: None,
        };
        let decision = self.policy.engine.decide(&req, self.now());
        if decision.allowed {
            return Ok(());
        }
        let rec = AuditRecord {
            project: resource.project().map(str::to_string),
            outcome: Outcome::Denied,
            detail: crate::detail!("reason" => decision.explain()),
            ..meta.record(
                self.now(),
                &format!("workload:{workload_id}"),
                "workload",
                action.as_str(),
                label.to_string(),
            )
        };
        self.audit(rec).await?;
        Err(Error::new(
            ErrorCode::Forbidden,
            format!("workload {workload_id} may not {} {label}", action.as_str()),
        ))
    }

    /// The audit chokepoint for changes: appends `record` to the transaction and commits both.
    /// Nothing is visible to anyone before the record is durable with it.
    pub async fn commit(&self, mut tx: WriteTx, record: AuditRecord) -> Result<()> {
        tx.append_audit(&record).await.map_err(audit_failed)?;
        tx.commit().await.map_err(audit_failed)?;
        // Any change may revoke a credential or a membership: memoized reads start afresh,
        // and the policy snapshot is rebuilt if authorization facts changed.
        self.auth_cache.clear();
        self.project_lists.clear();
        if let Err(e) = self.refresh_policy().await {
            tracing::error!(error = %e, "policy refresh after a commit failed");
        }
        if let Some(f) = self.on_commit.get() {
            f();
        }
        Ok(())
    }

    /// The audit chokepoint for events that change nothing else (denials, failed logins).
    pub async fn audit(&self, record: AuditRecord) -> Result<()> {
        let tx = self.store.write().await.map_err(audit_failed)?;
        self.commit(tx, record).await
    }
}

fn audit_failed(e: enclave_store::StoreError) -> Error {
    tracing::error!(error = %e, "audit trail write failed; refusing the action");
    Error::new(
        ErrorCode::Unavailable,
        "the audit trail is unavailable, so the action was refused and nothing was changed; retry later",
    )
}
