-- Audit chain: every record carries its chain hash, SHA-256(previous hash || canonical v1
-- encoding) (see the enclave-audit crate), and signed checkpoints vouch for the chain.
--
-- Rows written before this migration (0001) have no hash yet. The migration step in Rust
-- (enclave-store/src/migrate.rs, same transaction) chains them in sequence order: it rewrites
-- their detail into canonical JSON (same content), renumbers them contiguously from 1 if
-- there were gaps, and sets their hashes. From then on the triggers below refuse a record
-- without a hash and any update of a chained record.

ALTER TABLE audit_events ADD COLUMN hash BLOB;

CREATE TRIGGER audit_events_hash_required BEFORE INSERT ON audit_events
WHEN NEW.hash IS NULL OR length(NEW.hash) <> 32
BEGIN
    SELECT RAISE(ABORT, 'audit record without a chain hash');
END;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
WHEN OLD.hash IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;

CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);

CREATE INDEX audit_events_actor ON audit_events(actor, seq);
CREATE INDEX audit_events_action ON audit_events(action, seq);
CREATE INDEX audit_events_resource ON audit_events(resource, seq);
CREATE INDEX audit_events_project ON audit_events(project, seq) WHERE project IS NOT NULL;
