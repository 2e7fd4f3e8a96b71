-- Keys and secrets: data-encryption keys (DEKs) wrapped by the master key, versioned secrets
-- sealed with their project's DEK, and the workloads that secrets are resolved for.

-- One row per key scope ('platform' or 'project:<project id>') and version. `wrapped` is the
-- key material wrapped by the master key named in `master_key_id`, bound to
-- 'dek:<scope>:<version>'. The newest 'active' version seals new data; 'decrypt_only' versions
-- still open old ciphertexts; 'retired' versions have lost their material.
CREATE TABLE data_keys (
    scope TEXT NOT NULL,
    version INTEGER NOT NULL,
    wrapped BLOB,
    master_key_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    PRIMARY KEY (scope, version),
    CHECK ((state = 'retired') = (wrapped IS NULL))
);
CREATE INDEX data_keys_master ON data_keys(master_key_id);

-- A secret belongs to a project (sealed with the project's key) or to one person (a personal
-- secret, sealed with the platform key), never both.
CREATE TABLE secrets (
    id TEXT PRIMARY KEY,
    project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
    owner_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    current_version INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((project_id IS NULL) <> (owner_id IS NULL))
);
CREATE UNIQUE INDEX secrets_project_name ON secrets(project_id, name) WHERE project_id IS NOT NULL;
CREATE UNIQUE INDEX secrets_owner_name ON secrets(owner_id, name) WHERE owner_id IS NOT NULL;

-- Each version's value, sealed with AES-256-GCM under (key_scope, key_version), bound to
-- 'secret:<secret id>:<version>'.
CREATE TABLE secret_versions (
    secret_id TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    ciphertext BLOB NOT NULL,
    key_scope TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    size INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (secret_id, version)
);
CREATE INDEX secret_versions_key ON secret_versions(key_scope, key_version);

-- Workloads (jobs, notebook servers, endpoints) as authorization principals: each acts with its
-- own roles (role_bindings with subject_kind 'workload'), only inside its project.
CREATE TABLE workloads (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('notebook', 'job', 'endpoint')),
    name TEXT NOT NULL,
    owner_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX workloads_project ON workloads(project_id);

CREATE TRIGGER authz_wl_i AFTER INSERT ON workloads BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_wl_u AFTER UPDATE ON workloads BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_wl_d AFTER DELETE ON workloads BEGIN UPDATE authz_generation SET generation = generation + 1; END;
