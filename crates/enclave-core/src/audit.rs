//! The shape of an audit record. Records are written through the application's single audit
//! chokepoint; the store persists them in the same transaction as the change they describe.
//! Details never hold secrets: callers put names and ids here, never passwords or tokens.

use crate::time::Timestamp;
use serde_json::{Map, Value};

/// Whether the audited action took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action was performed.
    Success,
    /// The policy refused it.
    Denied,
    /// It failed (bad credentials, invalid input, conflict).
    Failure,
}

impl Outcome {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When (UTC).
    pub at: Timestamp,
    /// Who: a username, `anonymous`, or `system`.
    pub actor: String,
    /// How the actor authenticated: `session`, `token:<id>`, `password`, `setup-token`, `cli`, …
    pub auth: String,
    /// Source address, or `local` for commands run on the server.
    pub source: String,
    /// Stable action name (see [`crate::authz::Action::as_str`] plus authentication events).
    pub action: String,
    /// The resource, e.g. `user:alice`, `project:fraud`.
    pub resource: String,
    /// The project the resource belongs to, if any.
    pub project: Option<String>,
    /// Outcome.
    pub outcome: Outcome,
    /// Request id, for correlation with the server log.
    pub request_id: String,
    /// Short structured detail (names, reasons — never secrets).
    pub detail: Map<String, Value>,
}
