-- Policy: role bindings, custom Cedar policies, time-bound access grants, nested groups and the
-- project facts that policies can test. A trigger on every table that feeds authorization bumps
-- `authz_generation`, so the server rebuilds its policy snapshot after any such change, however
-- it was made.

CREATE TABLE group_groups (
    parent_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    child_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (parent_id, child_id),
    CHECK (parent_id <> child_id)
);
CREATE INDEX group_groups_child ON group_groups(child_id);

ALTER TABLE projects ADD COLUMN classification TEXT NOT NULL DEFAULT 'internal';
ALTER TABLE projects ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE projects ADD COLUMN requires_approval INTEGER NOT NULL DEFAULT 1;

CREATE TABLE role_bindings (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'group', 'workload')),
    subject_id TEXT NOT NULL,
    role TEXT NOT NULL,
    project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
    expires_at BIGINT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX role_bindings_project ON role_bindings(project_id);
CREATE INDEX role_bindings_subject ON role_bindings(subject_kind, subject_id);

CREATE TABLE custom_policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX custom_policies_name ON custom_policies(COALESCE(project_id, ''), name);

CREATE TABLE access_grants (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    grantee_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('support', 'project_admin')),
    reason TEXT NOT NULL,
    duration_secs BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'denied', 'revoked')),
    requested_at BIGINT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    starts_at BIGINT,
    expires_at BIGINT,
    revoked_by TEXT,
    revoked_at BIGINT
);
CREATE INDEX access_grants_project ON access_grants(project_id);

CREATE TABLE authz_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO authz_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER authz_users_i AFTER INSERT ON users BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_users_u AFTER UPDATE OF username, platform_admin, disabled ON users BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_users_d AFTER DELETE ON users BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_groups_i AFTER INSERT ON groups BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_groups_u AFTER UPDATE OF name ON groups BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_groups_d AFTER DELETE ON groups BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_gm_i AFTER INSERT ON group_members BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_gm_d AFTER DELETE ON group_members BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_gg_i AFTER INSERT ON group_groups BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_gg_d AFTER DELETE ON group_groups BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_projects_i AFTER INSERT ON projects BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_projects_u AFTER UPDATE OF name, classification, tags, requires_approval ON projects BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_projects_d AFTER DELETE ON projects BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_pm_i AFTER INSERT ON project_members BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_pm_u AFTER UPDATE ON project_members BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_pm_d AFTER DELETE ON project_members BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_rb_i AFTER INSERT ON role_bindings BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_rb_u AFTER UPDATE ON role_bindings BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_rb_d AFTER DELETE ON role_bindings BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_cp_i AFTER INSERT ON custom_policies BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_cp_u AFTER UPDATE ON custom_policies BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_cp_d AFTER DELETE ON custom_policies BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_ag_i AFTER INSERT ON access_grants BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_ag_u AFTER UPDATE ON access_grants BEGIN UPDATE authz_generation SET generation = generation + 1; END;
CREATE TRIGGER authz_ag_d AFTER DELETE ON access_grants BEGIN UPDATE authz_generation SET generation = generation + 1; END;
