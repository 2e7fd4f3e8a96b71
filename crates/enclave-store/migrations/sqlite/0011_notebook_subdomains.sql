-- Notebook subdomains (origin isolation): one-time handoff tickets minted on Enclave's own
-- origin, and the notebook cookies a notebook's origin sets when it redeems one. Both are
-- stored as SHA-256 hashes only and hang off the session that asked for them, so ending the
-- session ends them.

CREATE TABLE notebook_handoffs (
    ticket_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    project TEXT NOT NULL,
    notebook TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX notebook_handoffs_session ON notebook_handoffs (session_id);
CREATE INDEX notebook_handoffs_expiry ON notebook_handoffs (expires_at);

CREATE TABLE notebook_cookies (
    secret_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    project TEXT NOT NULL,
    notebook TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notebook_cookies_session ON notebook_cookies (session_id);
