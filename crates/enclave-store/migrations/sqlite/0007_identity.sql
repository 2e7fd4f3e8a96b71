-- Enterprise identity: the organization's OIDC providers and LDAP directories, the accounts
-- they vouch for, what their group mappings granted, pending OIDC logins, and how each
-- session was authenticated.

CREATE TABLE identity_sources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('oidc', 'ldap')),
    display_name TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    -- JSON: the kind's settings, the admission rule, the group mappings (no secrets).
    settings TEXT NOT NULL,
    admission TEXT NOT NULL,
    mappings TEXT NOT NULL,
    -- The client secret or bind password, sealed with the platform data key.
    secret TEXT,
    -- SHA-256 of the SCIM bearer token.
    scim_token_hash TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_sync_at BIGINT
);

-- Who an account is at its source; (source, subject) is the key, never the email.
CREATE TABLE external_identities (
    source_id TEXT NOT NULL REFERENCES identity_sources(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    -- SCIM's externalId, when a provisioning client sent one.
    external_id TEXT,
    email TEXT NOT NULL DEFAULT '',
    -- JSON array of the groups the source reported last.
    groups TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    last_login_at BIGINT,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (source_id, subject)
);

-- What a source's group mappings granted an account, so a refresh takes back only that.
CREATE TABLE identity_grants (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source_id TEXT NOT NULL REFERENCES identity_sources(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('group', 'platform_role', 'project')),
    target TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, kind, target)
);

-- OIDC logins between the redirect to the provider and its callback; used once.
CREATE TABLE oidc_pending (
    state_hash TEXT PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES identity_sources(id) ON DELETE CASCADE,
    -- The nonce and PKCE verifier, sealed with the platform data key.
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The claims of each source's latest login attempt, for the admin's "show the claims".
CREATE TABLE identity_last_login (
    source_id TEXT PRIMARY KEY REFERENCES identity_sources(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    subject TEXT NOT NULL,
    admitted INTEGER NOT NULL,
    reason TEXT,
    claims TEXT NOT NULL
);

ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN acr TEXT;
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
