-- Batch jobs, and the number each project's sandboxes are known by on the host (its uid range
-- and its network are derived from it; AUTOINCREMENT never hands out a number twice, so a new
-- project never inherits the uids of a deleted one's files).

CREATE TABLE sandbox_projects (
    idx INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workload_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    -- JSON arrays of strings.
    command TEXT NOT NULL,
    secrets TEXT NOT NULL,
    cpu_millis BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    timeout_secs BIGINT NOT NULL,
    exit_code INTEGER,
    reason TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT
);
CREATE INDEX jobs_project ON jobs(project_id, created_at);
CREATE INDEX jobs_state ON jobs(state, created_at);
