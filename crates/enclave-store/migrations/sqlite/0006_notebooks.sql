-- Notebook servers and the environment templates they run, plus each project's choice of
-- recording the code executed in its notebooks (on unless an owner turns it off).

ALTER TABLE projects ADD COLUMN audit_code INTEGER NOT NULL DEFAULT 1;

CREATE TABLE environments (
    name TEXT PRIMARY KEY,
    -- The template as JSON (python version, pinned packages, resource presets).
    template TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE notebooks (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('starting', 'ready', 'stopping', 'stopped', 'failed')),
    reason TEXT,
    environment TEXT NOT NULL,
    preset TEXT NOT NULL,
    cpu_millis BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    -- JSON array of injection specs.
    secrets TEXT NOT NULL,
    workload_id TEXT NOT NULL,
    owner_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    stopped_at BIGINT,
    PRIMARY KEY (project_id, name)
);
CREATE INDEX notebooks_state ON notebooks(state);
