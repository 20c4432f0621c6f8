-- Every change to a connection's grant, so each gateway process can drop its cached copy
-- of that row within a second, whoever made the change (another replica, the CLI).
-- Written by triggers, so no write path can forget it; the gateway prunes old rows.
-- Lease bookkeeping (`refresh_lock_*`) and `updated_at_ms` alone are not changes.
CREATE TABLE connection_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    at_ms       INTEGER NOT NULL
);

CREATE INDEX connection_changes_at ON connection_changes (at_ms);

CREATE TRIGGER connection_inserted AFTER INSERT ON connections
BEGIN
    INSERT INTO connection_changes (user_id, provider_id, at_ms)
    VALUES (NEW.user_id, NEW.provider_id,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER connection_updated
AFTER UPDATE OF user_id, provider_id, status, scopes, access_token_sealed,
    refresh_token_sealed, expires_at_ms, user_info, version ON connections
BEGIN
    INSERT INTO connection_changes (user_id, provider_id, at_ms)
    VALUES (NEW.user_id, NEW.provider_id,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER connection_deleted AFTER DELETE ON connections
BEGIN
    INSERT INTO connection_changes (user_id, provider_id, at_ms)
    VALUES (OLD.user_id, OLD.provider_id,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
