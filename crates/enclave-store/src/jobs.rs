//! Storage of batch jobs and of each project's sandbox number.

use crate::policy::{corrupt, s, ts};
use crate::writes::WriteTx;
use crate::{map_err, Store, StoreResult};
use enclave_core::jobs::{Job, JobLimits, JobState};
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

const JOB_SELECT: &str = "SELECT j.id, p.name AS project, j.workload_id, j.state, j.command,
    j.secrets, j.cpu_millis, j.memory_bytes, j.timeout_secs, j.exit_code, j.reason,
    j.cancel_requested, j.created_by, j.created_at, j.started_at, j.ended_at
    FROM jobs j JOIN projects p ON p.id = j.project_id";

fn list(r: &SqliteRow, c: &'static str) -> StoreResult<Vec<String>> {
    serde_json::from_str(&s(r, c)?).map_err(|_| corrupt("job list column"))
}

/// A non-negative integer column (limits, sizes).
pub(crate) fn u64_of(r: &SqliteRow, c: &'static str) -> StoreResult<u64> {
    let v: i64 = r.try_get(c).map_err(map_err)?;
    u64::try_from(v).map_err(|_| corrupt("limit column"))
}

fn job(r: &SqliteRow) -> StoreResult<Job> {
    Ok(Job {
        id: s(r, "id")?,
        project: s(r, "project")?,
        state: JobState::parse(&s(r, "state")?).ok_or(corrupt("job state"))?,
        command: list(r, "command")?,
        secrets: list(r, "secrets")?,
        limits: JobLimits {
            cpu_millis: u64_of(r, "cpu_millis")?,
            memory_bytes: u64_of(r, "memory_bytes")?,
            timeout_secs: u64_of(r, "timeout_secs")?,
        },
        exit_code: r.try_get("exit_code").map_err(map_err)?,
        reason: r.try_get("reason").map_err(map_err)?,
        workload_id: s(r, "workload_id")?,
        created_by: s(r, "created_by")?,
        created_at: ts(r, "created_at")?.ok_or(corrupt("job time"))?,
        started_at: ts(r, "started_at")?,
        ended_at: ts(r, "ended_at")?,
        cancel_requested: r.try_get::<i64, _>("cancel_requested").map_err(map_err)? != 0,
    })
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// One job of a project.
    pub async fn job(&self, project: &str, id: &str) -> StoreResult<Option<Job>> {
        sqlx::query(&format!("{JOB_SELECT} WHERE p.name = $1 AND j.id = $2"))
            .bind(project)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| job(&r))
            .transpose()
    }

    /// A project's jobs, newest first, at most `limit`.
    pub async fn project_jobs(&self, project: &str, limit: u32) -> StoreResult<Vec<Job>> {
        sqlx::query(&format!(
            "{JOB_SELECT} WHERE p.name = $1 ORDER BY j.created_at DESC, j.rowid DESC LIMIT $2"
        ))
        .bind(project)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(job)
        .collect()
    }

    /// All jobs in `state`, oldest first, at most `limit`.
    pub async fn jobs_in_state(&self, state: JobState, limit: u32) -> StoreResult<Vec<Job>> {
        sqlx::query(&format!(
            "{JOB_SELECT} WHERE j.state = $1 ORDER BY j.created_at, j.rowid LIMIT $2"
        ))
        .bind(state.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(job)
        .collect()
    }

    /// A job by id alone (for the runner).
    pub async fn job_by_id(&self, id: &str) -> StoreResult<Option<Job>> {
        sqlx::query(&format!("{JOB_SELECT} WHERE j.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| job(&r))
            .transpose()
    }

    /// The project's sandbox number, if it has one.
    pub async fn sandbox_index(&self, project_id: &str) -> StoreResult<Option<u32>> {
        sqlx::query("SELECT idx FROM sandbox_projects WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|r| {
                let v: i64 = r.try_get("idx").map_err(map_err)?;
                u32::try_from(v).map_err(|_| corrupt("sandbox index"))
            })
            .transpose()
    }
}

impl WriteTx {
    /// The project's sandbox number, given one (never reused) if it has none yet.
    pub async fn ensure_sandbox_index(&mut self, project_id: &str) -> StoreResult<u32> {
        sqlx::query("INSERT OR IGNORE INTO sandbox_projects (project_id) VALUES ($1)")
            .bind(project_id)
            .execute(self.sql().await?)
            .await
            .map_err(map_err)?;
        let v: i64 = sqlx::query("SELECT idx FROM sandbox_projects WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(self.sql().await?)
            .await
            .map_err(map_err)?
            .try_get("idx")
            .map_err(map_err)?;
        u32::try_from(v).map_err(|_| corrupt("sandbox index"))
    }

    /// Records a new queued job.
    pub async fn insert_job(
        &mut self,
        j: &Job,
        project_id: &str,
        owner_id: &str,
    ) -> StoreResult<()> {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO jobs (id, project_id, workload_id, state, command, secrets, cpu_millis,
                memory_bytes, timeout_secs, owner_id, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&j.id)
        .bind(project_id)
        .bind(&j.workload_id)
        .bind(j.state.as_str())
        .bind(json(&j.command))
        .bind(json(&j.secrets))
        .bind(i(j.limits.cpu_millis))
        .bind(i(j.limits.memory_bytes))
        .bind(i(j.limits.timeout_secs))
        .bind(owner_id)
        .bind(&j.created_by)
        .bind(j.created_at.unix())
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Moves a job from `from` to `to` (only if it is still in `from`); returns whether it
    /// moved. `started_at` is set on `Running`, `ended_at` on a final state.
    pub async fn move_job(
        &mut self,
        id: &str,
        from: JobState,
        to: JobState,
        exit_code: Option<i32>,
        reason: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        if !from.can_become(to) {
            return Ok(false);
        }
        let started = (to == JobState::Running).then_some(now.unix());
        let ended = to.is_final().then_some(now.unix());
        let n = sqlx::query(
            "UPDATE jobs SET state = $3, exit_code = COALESCE($4, exit_code),
                reason = COALESCE($5, reason), started_at = COALESCE($6, started_at),
                ended_at = COALESCE($7, ended_at)
             WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(exit_code)
        .bind(reason)
        .bind(started)
        .bind(ended)
        .execute(self.sql().await?)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(n == 1)
    }

    /// Notes that a cancel was asked for a running job; returns whether it was running.
    pub async fn request_job_cancel(&mut self, id: &str) -> StoreResult<bool> {
        let n =
            sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND state = 'running'")
                .bind(id)
                .execute(self.sql().await?)
                .await
                .map_err(map_err)?
                .rows_affected();
        Ok(n == 1)
    }
}
