-- Second factors of local accounts: a TOTP secret (sealed with the platform data key), its
-- one-use recovery codes (SHA-256 only), and logins waiting for their second factor.

CREATE TABLE mfa_totp (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- The base32 secret, sealed with the platform data key (bound to the user id).
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- NULL until a first code proved the authenticator works; MFA is on from then.
    confirmed_at BIGINT,
    -- The last TOTP time step accepted: only later steps are, so each code works once.
    last_step BIGINT
);

CREATE TABLE mfa_recovery (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Logins whose password was right, waiting for the code; the id is only stored hashed.
CREATE TABLE mfa_pending (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- What the login opens once finished: 'session' or 'token'.
    kind TEXT NOT NULL CHECK (kind IN ('session', 'token')),
    -- JSON: the token's name and lifetime for kind 'token'; '{}' otherwise.
    detail TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX mfa_pending_created ON mfa_pending (created_at);
