//! Notebook servers: their states and transitions, what a start request may ask for, and when
//! an idle server is culled. Pure: the sandbox, the gateway and the store live elsewhere.

use crate::error::{Error, Result};
use crate::secrets::{check_plan, SecretMapping};
use crate::{names, Timestamp};

/// Most notebook servers one project may have (stopped ones included).
pub const MAX_NOTEBOOKS_PER_PROJECT: usize = 200;

/// The port JupyterLab listens on inside its sandbox (on the sandbox's private address).
pub const JUPYTER_PORT: u16 = 8888;

/// Where a notebook server is in its life.
///
/// `Stopped → Starting → Ready → Stopping → Stopped`; a start may fail (`Failed`, with a
/// reason), a ready server may die (`Failed`), and a failed or stopped server may start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotebookState {
    /// Its sandbox is starting and JupyterLab is not answering yet.
    Starting,
    /// JupyterLab answers: it can be opened.
    Ready,
    /// Asked to stop; its sandbox is being removed.
    Stopping,
    /// Not running; its files stay on the project volume.
    Stopped,
    /// Could not start, or ended on its own; the reason says why.
    Failed,
}

impl NotebookState {
    /// Every state.
    pub const ALL: [NotebookState; 5] = [
        NotebookState::Starting,
        NotebookState::Ready,
        NotebookState::Stopping,
        NotebookState::Stopped,
        NotebookState::Failed,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotebookState::Starting => "starting",
            NotebookState::Ready => "ready",
            NotebookState::Stopping => "stopping",
            NotebookState::Stopped => "stopped",
            NotebookState::Failed => "failed",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<NotebookState> {
        NotebookState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether a sandbox may exist for the server (it is not at rest).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            NotebookState::Starting | NotebookState::Ready | NotebookState::Stopping
        )
    }

    /// Whether a server may go from `self` to `to`.
    pub fn can_become(self, to: NotebookState) -> bool {
        use NotebookState::*;
        match self {
            Stopped | Failed => to == Starting,
            Starting => matches!(to, Ready | Failed | Stopping),
            Ready => matches!(to, Stopping | Failed),
            Stopping => matches!(to, Stopped | Failed),
        }
    }
}

/// A notebook server as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notebook {
    /// Its project.
    pub project: String,
    /// Its name, unique in the project.
    pub name: String,
    /// Where it is in its life.
    pub state: NotebookState,
    /// Why it failed or stopped (culled, stopped by someone, exited).
    pub reason: Option<String>,
    /// The environment template it runs.
    pub environment: String,
    /// The resource preset it runs with.
    pub preset: String,
    /// CPU in thousandths of a CPU.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Its injection plan (`NAME=env:VAR` or `NAME=file:/path`).
    pub secrets: Vec<String>,
    /// Its workload principal (the notebook-execution role).
    pub workload_id: String,
    /// The user who owns it.
    pub owner: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last started.
    pub started_at: Option<Timestamp>,
    /// When it last stopped or failed.
    pub stopped_at: Option<Timestamp>,
    /// Whether code executed in it is recorded in the audit trail.
    pub audit_code: bool,
}

/// A request to create and start a notebook server, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct NotebookRequest {
    /// The server's name (a slug, unique in the project).
    pub name: String,
    /// The environment template, or the default one.
    pub environment: Option<String>,
    /// The resource preset of the template, or its first.
    pub preset: Option<String>,
    /// Its injection plan.
    pub secrets: Vec<SecretMapping>,
}

impl NotebookRequest {
    /// Checks the name and the plan. Errors name the field and what to change.
    pub fn check(&self) -> Result<()> {
        names::slug("name", &self.name)?;
        if let Some(e) = &self.environment {
            names::slug("environment", e)?;
        }
        if let Some(p) = &self.preset {
            names::slug("preset", p)?;
        }
        check_plan(&self.secrets)
    }
}

/// When idle servers are culled: `idle_secs` after their last activity (never when 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CullPolicy {
    /// Seconds without a request or a kernel message after which a server is stopped.
    pub idle_secs: u64,
}

impl CullPolicy {
    /// Whether a ready server last active at `last_activity` is to be stopped at `now`.
    pub fn is_idle(&self, last_activity: Timestamp, now: Timestamp) -> bool {
        self.idle_secs > 0
            && now.unix().saturating_sub(last_activity.unix())
                >= i64::try_from(self.idle_secs).unwrap_or(i64::MAX)
    }
}

/// The URL path prefix under which the gateway serves a notebook (JupyterLab's base URL).
pub fn base_path(project: &str, name: &str) -> String {
    format!("/p/{project}/nb/{name}/")
}

/// Checks a notebook name from a URL or request: a slug, or "not found" (never echoing junk).
pub fn check_name(name: &str) -> Result<()> {
    names::slug("name", name).map_err(|_| Error::not_found("notebook", name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn transitions() {
        use NotebookState::*;
        assert!(Stopped.can_become(Starting));
        assert!(Failed.can_become(Starting));
        assert!(Starting.can_become(Ready));
        assert!(Ready.can_become(Stopping));
        assert!(Stopping.can_become(Stopped));
        assert!(!Stopped.can_become(Ready));
        assert!(!Ready.can_become(Starting));
        assert!(!Stopping.can_become(Ready));
        for s in NotebookState::ALL {
            assert_eq!(NotebookState::parse(s.as_str()), Some(s));
        }
        assert_eq!(NotebookState::parse("running"), None);
    }

    #[test]
    fn requests_are_checked() {
        let ok = NotebookRequest {
            name: "analysis".into(),
            ..Default::default()
        };
        assert!(ok.check().is_ok());
        for bad in ["", "Bad Name", "../x", &"a".repeat(200)] {
            let r = NotebookRequest {
                name: bad.into(),
                ..Default::default()
            };
            assert!(r.check().is_err(), "{bad:?}");
        }
        let r = NotebookRequest {
            name: "a".into(),
            environment: Some("x/y".into()),
            ..Default::default()
        };
        assert!(r.check().is_err());
    }

    #[test]
    fn culling() {
        let p = CullPolicy { idle_secs: 60 };
        let t = Timestamp(1000);
        assert!(!p.is_idle(t, Timestamp(1059)));
        assert!(p.is_idle(t, Timestamp(1060)));
        let off = CullPolicy { idle_secs: 0 };
        assert!(!off.is_idle(t, Timestamp(1_000_000)));
        assert_eq!(base_path("fraud", "nb1"), "/p/fraud/nb/nb1/");
    }
}
