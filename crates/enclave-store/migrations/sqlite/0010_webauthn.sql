-- WebAuthn passkeys of local accounts, as a second factor: each credential's public key (a
-- COSE key, public by nature), its signature counter, and ceremonies waiting for the browser.

CREATE TABLE webauthn_credentials (
    -- The credential ID, base64url without padding.
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The owner's label for it ("laptop", "YubiKey 5").
    name TEXT NOT NULL,
    -- The COSE_Key bytes as the authenticator sent them.
    public_key BLOB NOT NULL,
    algorithm BIGINT NOT NULL,
    -- The last signature counter seen (0 for authenticators that keep none).
    sign_count BIGINT NOT NULL,
    -- The authenticator model's AAGUID, hex.
    aaguid TEXT NOT NULL,
    -- 'none', 'packed-self' or 'packed-x5c'.
    attestation TEXT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    backed_up BOOLEAN NOT NULL,
    -- JSON array of transport hints.
    transports TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    UNIQUE (user_id, name)
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

-- A registration waiting for the browser: one per account, its challenge taken once.
CREATE TABLE webauthn_registrations (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- base64url without padding.
    challenge TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A login waiting for its second factor may wait for a passkey: the challenge it was given,
-- taken once by the attempt that answers it.
ALTER TABLE mfa_pending ADD COLUMN webauthn_challenge TEXT;
