-- SCIM provisioning: what a provisioning client said about the accounts of its identity source
-- (the SCIM attributes as given, a version for ETags) and the groups it manages.

-- One row per account a SCIM client created or changed; the link itself stays in
-- external_identities (subject = the SCIM userName).
CREATE TABLE scim_users (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    source_id TEXT NOT NULL REFERENCES identity_sources(id) ON DELETE CASCADE,
    -- JSON: the SCIM attributes as the client sent them (name, displayName, emails, ...).
    attributes TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX scim_users_source ON scim_users (source_id);

-- Enclave groups created through SCIM, owned by their source.
CREATE TABLE scim_groups (
    group_id TEXT PRIMARY KEY REFERENCES groups(id) ON DELETE CASCADE,
    source_id TEXT NOT NULL REFERENCES identity_sources(id) ON DELETE CASCADE,
    external_id TEXT,
    display_name TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX scim_groups_source ON scim_groups (source_id);
