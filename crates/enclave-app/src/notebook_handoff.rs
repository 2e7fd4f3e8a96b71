//! Notebook subdomains: how a browser signed in to Enclave's own origin gets a credential for
//! one notebook's own origin (`{name}--{project}.{domain}`), which never sees the session
//! cookie (it is host-only, `__Host-`).
//!
//! Invariants:
//! * A handoff ticket is minted only for a session that may open the notebook now
//!   ([`App::open_notebook`]); it is 256 random bits, stored hashed, bound to the session and
//!   the notebook, valid for [`HANDOFF_TTL`], and taken from the store on first use, whatever
//!   the outcome.
//! * Redeeming it on the notebook's origin authorizes again, then stores a notebook cookie
//!   (hashed) bound to the same session and notebook. Every request carrying that cookie
//!   resolves to the session's caller only while the session is live, and only on that
//!   notebook's origin; the gateway then decides it like any other request (one
//!   authorization path). Ending the session deletes its tickets and cookies with it.
//! * Redemptions are audited (`notebook.handoff`), refusals too.

use crate::chokepoint::{label, Caller, RequestMeta};
use crate::memo::Resolved;
use crate::secrets::{hash_secret, new_secret, plausible_secret};
use crate::{detail, App};
use enclave_core::audit::Outcome;
use enclave_core::authz::Credential;
use enclave_core::model::{Session, User};
use enclave_core::{Error, ErrorCode, Result};
use enclave_store::{NotebookCookieRow, NotebookHandoffRow};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long a handoff ticket stays valid.
pub const HANDOFF_TTL: Duration = Duration::from_secs(60);

/// Most unexpired handoff tickets one session may hold.
pub const MAX_OPEN_HANDOFFS: u64 = 20;

/// The audit action of a handoff redemption (and of its refusals).
pub const HANDOFF_ACTION: &str = "notebook.handoff";

/// Activity on a session through a notebook cookie is written back at most this often.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// What redeeming a handoff gives the notebook's origin.
#[derive(Debug)]
pub struct NotebookEntry {
    /// The caller the ticket was minted for.
    pub caller: Caller,
    /// A new notebook cookie to set, or `None` when the browser's own cookie for this
    /// notebook and session is still good.
    pub cookie: Option<Zeroizing<String>>,
}

fn ticket_refused() -> Error {
    Error::new(
        ErrorCode::Unauthenticated,
        "this link to the notebook has expired or was already used: open the notebook again \
         from the Enclave console",
    )
}

fn cookie_key(secret: &str) -> String {
    format!("nbc:{}", hash_secret(secret))
}

impl App {
    /// Mints a one-time handoff ticket for the caller's session to open `project/name` on the
    /// notebook's own origin. The caller must have signed in with a session (bearer tokens
    /// need no handoff) and may open the server now; the ticket is returned once and stored
    /// only hashed.
    pub async fn notebook_handoff(
        &self,
        caller: &Caller,
        project: &str,
        name: &str,
    ) -> Result<Zeroizing<String>> {
        let Some(session_id) = caller.session_id.clone() else {
            return Err(Error::new(
                ErrorCode::InvalidRequest,
                "only a signed-in browser session is handed to a notebook's own address; \
                 API tokens are sent there directly",
            ));
        };
        self.open_notebook(caller, project, name).await?;
        let ticket = Zeroizing::new(new_secret()?);
        let now = self.now();
        let row = NotebookHandoffRow {
            session_id,
            project: project.to_string(),
            notebook: name.to_string(),
            expires_at: now.plus(HANDOFF_TTL),
        };
        let mut tx = self.store.write().await?;
        let open = tx
            .insert_notebook_handoff(&hash_secret(&ticket), &row, now)
            .await?;
        if open > MAX_OPEN_HANDOFFS {
            // Dropping the transaction rolls the insert back.
            return Err(Error::new(
                ErrorCode::TooManyAttempts,
                "too many notebook openings in the last minute; wait a minute and try again",
            ));
        }
        tx.commit().await?;
        Ok(ticket)
    }

    /// Redeems a handoff ticket on the origin of `project/name`: takes it (it never works
    /// twice), checks that it is unexpired, for this notebook, and that its session is live,
    /// authorizes `notebook.open` again, and stores a notebook cookie for the session — unless
    /// `current` (the browser's cookie on this origin) already is one for the same session and
    /// notebook. Audited; refusals too.
    pub async fn redeem_notebook_handoff(
        &self,
        ticket: &str,
        project: &str,
        name: &str,
        current: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<NotebookEntry> {
        let resource = label("notebook", &format!("{project}/{name}"));
        if !plausible_secret(ticket) {
            self.handoff_refused(meta, "anonymous", &resource, project, "malformed ticket")
                .await?;
            return Err(ticket_refused());
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        let taken = tx.take_notebook_handoff(&hash_secret(ticket)).await?;
        tx.commit().await?;
        let Some(row) = taken else {
            self.handoff_refused(
                meta,
                "anonymous",
                &resource,
                project,
                "unknown or already used ticket",
            )
            .await?;
            return Err(ticket_refused());
        };
        let found = self.store.session_by_id(&row.session_id).await?;
        let live = found
            .as_ref()
            .is_some_and(|(s, u)| self.session_usable(s, u, now));
        let actor = found
            .as_ref()
            .map(|(_, u)| u.username.clone())
            .unwrap_or_else(|| "anonymous".into());
        let why = if now >= row.expires_at {
            Some("expired ticket")
        } else if row.project != project || row.notebook != name {
            Some("ticket for another notebook")
        } else if !live {
            Some("the session ended")
        } else {
            None
        };
        let (Some((session, user)), None) = (found, why) else {
            let why = why.unwrap_or("the session ended");
            self.handoff_refused(meta, &actor, &resource, project, why)
                .await?;
            return Err(ticket_refused());
        };
        let caller = session_caller(&session, &user, meta);
        self.open_notebook(&caller, project, name).await?;
        if let Some(c) = current {
            if let Some(same) = self
                .authenticate_notebook_cookie(c, project, name, meta)
                .await?
            {
                if same.session_id == caller.session_id {
                    return Ok(NotebookEntry {
                        caller,
                        cookie: None,
                    });
                }
            }
        }
        let secret = Zeroizing::new(new_secret()?);
        let mut tx = self.store.write().await?;
        tx.insert_notebook_cookie(
            &hash_secret(&secret),
            &NotebookCookieRow {
                session_id: session.id.clone(),
                project: project.to_string(),
                notebook: name.to_string(),
            },
            now,
        )
        .await?;
        let rec = caller.record(
            self,
            HANDOFF_ACTION,
            resource,
            Some(project),
            Outcome::Success,
            detail!("session" => session.id.clone()),
        );
        self.commit(tx, rec).await?;
        Ok(NotebookEntry {
            caller,
            cookie: Some(secret),
        })
    }

    /// Resolves a notebook cookie presented on the origin of `project/name` into the caller of
    /// its session; `None` when unknown, for another notebook, or when the session ended,
    /// expired or its account is disabled. Counts as activity on the session.
    pub async fn authenticate_notebook_cookie(
        &self,
        secret: &str,
        project: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<Option<Caller>> {
        if !plausible_secret(secret) {
            return Ok(None);
        }
        let key = cookie_key(secret);
        let now = self.now();
        let (row, session, user) = match self.auth_cache.get(&key, now) {
            (Some(Resolved::NotebookCookie(r, s, u)), _) => (r, s, u),
            (_, generation) => {
                let Some(r) = self.store.notebook_cookie(&hash_secret(secret)).await? else {
                    return Ok(None);
                };
                let Some((s, u)) = self.store.session_by_id(&r.session_id).await? else {
                    return Ok(None);
                };
                let value = Resolved::NotebookCookie(r.clone(), s.clone(), u.clone());
                self.auth_cache.put(key.clone(), value, now, generation);
                (r, s, u)
            }
        };
        if row.project != project
            || row.notebook != name
            || !self.session_usable(&session, &user, now)
        {
            return Ok(None);
        }
        if now >= session.last_seen_at.plus(TOUCH_INTERVAL) {
            let mut tx = self.store.write().await?;
            tx.touch_session(&session.id, now).await?;
            tx.commit().await?;
            self.auth_cache.update(&key, |r| {
                if let Resolved::NotebookCookie(_, s, _) = r {
                    s.last_seen_at = now;
                }
            });
        }
        Ok(Some(session_caller(&session, &user, meta)))
    }

    fn session_usable(&self, session: &Session, user: &User, now: enclave_core::Timestamp) -> bool {
        !user.disabled
            && self
                .settings
                .sessions
                .is_live(session.created_at, session.last_seen_at, now)
    }

    async fn handoff_refused(
        &self,
        meta: &RequestMeta,
        actor: &str,
        resource: &str,
        project: &str,
        why: &str,
    ) -> Result<()> {
        let rec = enclave_core::audit::AuditRecord {
            outcome: Outcome::Failure,
            project: Some(project.to_string()),
            detail: detail!("reason" => why),
            ..meta.record(
                self.now(),
                actor,
                "handoff",
                HANDOFF_ACTION,
                resource.to_string(),
            )
        };
        self.audit(rec).await
    }
}

/// The caller of a session (as its own cookie would give).
fn session_caller(session: &Session, user: &User, meta: &RequestMeta) -> Caller {
    Caller {
        principal: crate::auth::principal(
            user,
            Credential::Session {
                mfa: enclave_core::mfa::amr_has_second_factor(&session.amr),
                local: session.auth_method == crate::AuthMethod::Password.as_str(),
            },
        ),
        session_id: Some(session.id.clone()),
        token_id: None,
        meta: meta.clone(),
    }
}
