//! Storage of notebook servers, of the environment templates they run, and of each project's
//! code-audit setting.

use crate::jobs::u64_of;
use crate::policy::{corrupt, s, ts};
use crate::writes::WriteTx;
use crate::{map_err, Store, StoreResult};
use enclave_core::environments::EnvTemplate;
use enclave_core::notebooks::{Notebook, NotebookState};
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

const NOTEBOOK_SELECT: &str = "SELECT p.name AS project, n.name, n.state, n.reason,
    n.environment, n.preset, n.cpu_millis, n.memory_bytes, n.secrets, n.workload_id, n.owner,
    n.created_at, n.started_at, n.stopped_at, p.audit_code
    FROM notebooks n JOIN projects p ON p.id = n.project_id";

fn notebook(r: &SqliteRow) -> StoreResult<Notebook> {
    Ok(Notebook {
        project: s(r, "project")?,
        name: s(r, "name")?,
        state: NotebookState::parse(&s(r, "state")?).ok_or(corrupt("notebook state"))?,
        reason: r.try_get("reason").map_err(map_err)?,
        environment: s(r, "environment")?,
        preset: s(r, "preset")?,
        cpu_millis: u64_of(r, "cpu_millis")?,
        memory_bytes: u64_of(r, "memory_bytes")?,
        secrets: serde_json::from_str(&s(r, "secrets")?)
            .map_err(|_| corrupt("notebook secrets"))?,
        workload_id: s(r, "workload_id")?,
        owner: s(r, "owner")?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("notebook time"))?,
        started_at: ts(r, "started_at")?,
        stopped_at: ts(r, "stopped_at")?,
        audit_code: r.try_get::<i64, _>("audit_code").map_err(map_err)? != 0,
    })
}

impl Store {
    /// One notebook server of a project.
    pub async fn notebook(&self, project: &str, name: &str) -> StoreResult<Option<Notebook>> {
        sqlx::query(&format!(
            "{NOTEBOOK_SELECT} WHERE p.name = $1 AND n.name = $2"
        ))
        .bind(project)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|r| notebook(&r))
        .transpose()
    }

    /// A project's notebook servers by name, at most `limit`.
    pub async fn project_notebooks(&self, project: &str, limit: u32) -> StoreResult<Vec<Notebook>> {
        sqlx::query(&format!(
            "{NOTEBOOK_SELECT} WHERE p.name = $1 ORDER BY n.name LIMIT $2"
        ))
        .bind(project)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(notebook)
        .collect()
    }

    /// Notebook servers in any of `states`, at most `limit` (for recovery and culling).
    pub async fn notebooks_in_states(
        &self,
        states: &[NotebookState],
        limit: u32,
    ) -> StoreResult<Vec<Notebook>> {
        let mut out = Vec::new();
        for st in states {
            let rows = sqlx::query(&format!(
                "{NOTEBOOK_SELECT} WHERE n.state = $1 ORDER BY p.name, n.name LIMIT $2"
            ))
            .bind(st.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            for r in &rows {
                out.push(notebook(r)?);
            }
        }
        Ok(out)
    }

    /// Whether code executed in `project`'s notebooks is recorded (true unless turned off).
    pub async fn project_audits_code(&self, project: &str) -> StoreResult<Option<bool>> {
        sqlx::query("SELECT audit_code FROM projects WHERE name = $1")
            .bind(project)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| Ok(r.try_get::<i64, _>("audit_code").map_err(map_err)? != 0))
            .transpose()
    }

    /// Every environment template, by name.
    pub async fn environments(&self) -> StoreResult<Vec<EnvTemplate>> {
        sqlx::query("SELECT template FROM environments ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(template)
            .collect()
    }

    /// One environment template.
    pub async fn environment(&self, name: &str) -> StoreResult<Option<EnvTemplate>> {
        sqlx::query("SELECT template FROM environments WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| template(&r))
            .transpose()
    }

    /// How many notebook servers use environment `name`.
    pub async fn environment_users(&self, name: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM notebooks WHERE environment = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?
            .try_get("n")
            .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn template(r: &SqliteRow) -> StoreResult<EnvTemplate> {
    serde_json::from_str(&s(r, "template")?).map_err(|_| corrupt("environment template"))
}

impl WriteTx {
    /// Records a new notebook server (in state `starting`).
    pub async fn insert_notebook(
        &mut self,
        n: &Notebook,
        project_id: &str,
        owner_id: &str,
    ) -> StoreResult<()> {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO notebooks (project_id, name, state, environment, preset, cpu_millis,
                memory_bytes, secrets, workload_id, owner_id, owner, created_at, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(project_id)
        .bind(&n.name)
        .bind(n.state.as_str())
        .bind(&n.environment)
        .bind(&n.preset)
        .bind(i(n.cpu_millis))
        .bind(i(n.memory_bytes))
        .bind(serde_json::to_string(&n.secrets).unwrap_or_else(|_| "[]".into()))
        .bind(&n.workload_id)
        .bind(owner_id)
        .bind(&n.owner)
        .bind(n.created_at.unix())
        .bind(n.started_at.map(|t| t.unix()))
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Moves a notebook server from `from` to `to` (only if it is still in `from`); returns
    /// whether it moved. `started_at` is set on `Starting`, `stopped_at` on `Stopped` and
    /// `Failed`; `reason` replaces the old one (cleared on `Starting`).
    pub async fn move_notebook(
        &mut self,
        project: &str,
        name: &str,
        from: NotebookState,
        to: NotebookState,
        reason: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        if !from.can_become(to) {
            return Ok(false);
        }
        let started = (to == NotebookState::Starting).then_some(now.unix());
        let stopped =
            matches!(to, NotebookState::Stopped | NotebookState::Failed).then_some(now.unix());
        let n = sqlx::query(
            "UPDATE notebooks SET state = $4, reason = $5,
                started_at = COALESCE($6, started_at), stopped_at = COALESCE($7, stopped_at)
             WHERE name = $2 AND state = $3
               AND project_id = (SELECT id FROM projects WHERE name = $1)",
        )
        .bind(project)
        .bind(name)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(reason)
        .bind(started)
        .bind(stopped)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(n.rows_affected() == 1)
    }

    /// Changes what a stopped server starts with next (environment, preset, limits, plan).
    pub async fn update_notebook_plan(&mut self, n: &Notebook) -> StoreResult<()> {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE notebooks SET environment = $3, preset = $4, cpu_millis = $5,
                memory_bytes = $6, secrets = $7
             WHERE name = $2 AND project_id = (SELECT id FROM projects WHERE name = $1)",
        )
        .bind(&n.project)
        .bind(&n.name)
        .bind(&n.environment)
        .bind(&n.preset)
        .bind(i(n.cpu_millis))
        .bind(i(n.memory_bytes))
        .bind(serde_json::to_string(&n.secrets).unwrap_or_else(|_| "[]".into()))
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Deletes a notebook server's record (its files stay on the project volume).
    pub async fn delete_notebook(&mut self, project: &str, name: &str) -> StoreResult<bool> {
        let n = sqlx::query(
            "DELETE FROM notebooks WHERE name = $2
               AND project_id = (SELECT id FROM projects WHERE name = $1)",
        )
        .bind(project)
        .bind(name)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(n.rows_affected() == 1)
    }

    /// Turns the recording of executed code in `project`'s notebooks on or off.
    pub async fn set_project_audit_code(&mut self, project: &str, on: bool) -> StoreResult<u64> {
        let n = sqlx::query("UPDATE projects SET audit_code = $2 WHERE name = $1")
            .bind(project)
            .bind(i64::from(on))
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(n.rows_affected())
    }

    /// Creates or replaces an environment template.
    pub async fn put_environment(
        &mut self,
        t: &EnvTemplate,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(t).map_err(|_| corrupt("environment template"))?;
        sqlx::query(
            "INSERT INTO environments (name, template, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (name) DO UPDATE SET template = $2, updated_at = $4",
        )
        .bind(&t.name)
        .bind(json)
        .bind(by)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Deletes an environment template; returns whether it existed.
    pub async fn delete_environment(&mut self, name: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM environments WHERE name = $1")
            .bind(name)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        Ok(n.rows_affected() == 1)
    }
}

/// A handoff ticket taken from the store (it is gone once taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookHandoffRow {
    /// The session that asked for it.
    pub session_id: String,
    /// The project of the notebook it opens.
    pub project: String,
    /// The notebook it opens.
    pub notebook: String,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

/// A notebook cookie: which session it hangs off and which notebook it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookCookieRow {
    /// The session it belongs to.
    pub session_id: String,
    /// The project of the notebook.
    pub project: String,
    /// The notebook.
    pub notebook: String,
}

/// Most notebook cookies one session keeps (the oldest go first).
pub const MAX_NOTEBOOK_COOKIES_PER_SESSION: i64 = 32;

impl Store {
    /// The notebook cookie whose secret hashes to `secret_hash`.
    pub async fn notebook_cookie(
        &self,
        secret_hash: &str,
    ) -> StoreResult<Option<NotebookCookieRow>> {
        sqlx::query(
            "SELECT session_id, project, notebook FROM notebook_cookies WHERE secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|r| {
            Ok(NotebookCookieRow {
                session_id: s(&r, "session_id")?,
                project: s(&r, "project")?,
                notebook: s(&r, "notebook")?,
            })
        })
        .transpose()
    }
}

impl WriteTx {
    /// Stores a handoff ticket (by its hash) after dropping expired ones; returns how many
    /// unexpired tickets the session now holds (this one included).
    pub async fn insert_notebook_handoff(
        &mut self,
        ticket_hash: &str,
        row: &NotebookHandoffRow,
        now: Timestamp,
    ) -> StoreResult<u64> {
        sqlx::query("DELETE FROM notebook_handoffs WHERE expires_at <= $1")
            .bind(now.unix())
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO notebook_handoffs (ticket_hash, session_id, project, notebook, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ticket_hash)
        .bind(&row.session_id)
        .bind(&row.project)
        .bind(&row.notebook)
        .bind(row.expires_at.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        let n: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM notebook_handoffs WHERE session_id = $1")
                .bind(&row.session_id)
                .fetch_one(self.sql().await?)
                .await
                .map_err(map_err)?
                .try_get("n")
                .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Takes a handoff ticket: returns it and deletes it, so it works once (expired or not:
    /// the caller checks the time).
    pub async fn take_notebook_handoff(
        &mut self,
        ticket_hash: &str,
    ) -> StoreResult<Option<NotebookHandoffRow>> {
        sqlx::query(
            "DELETE FROM notebook_handoffs WHERE ticket_hash = $1
             RETURNING session_id, project, notebook, expires_at",
        )
        .bind(ticket_hash)
        .fetch_optional(self.sql().await?)
        .await
        .map_err(map_err)?
        .map(|r| {
            Ok(NotebookHandoffRow {
                session_id: s(&r, "session_id")?,
                project: s(&r, "project")?,
                notebook: s(&r, "notebook")?,
                expires_at: ts(&r, "expires_at")?.ok_or(corrupt("notebook_handoffs.expires_at"))?,
            })
        })
        .transpose()
    }

    /// Stores a notebook cookie (by its hash); a session keeps at most
    /// [`MAX_NOTEBOOK_COOKIES_PER_SESSION`], the oldest going first.
    pub async fn insert_notebook_cookie(
        &mut self,
        secret_hash: &str,
        row: &NotebookCookieRow,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notebook_cookies (secret_hash, session_id, project, notebook, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(secret_hash)
        .bind(&row.session_id)
        .bind(&row.project)
        .bind(&row.notebook)
        .bind(now.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "DELETE FROM notebook_cookies WHERE session_id = $1 AND rowid NOT IN
               (SELECT rowid FROM notebook_cookies WHERE session_id = $1
                ORDER BY created_at DESC, rowid DESC LIMIT $2)",
        )
        .bind(&row.session_id)
        .bind(MAX_NOTEBOOK_COOKIES_PER_SESSION)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
