-- Every change to a connection's grant, so each gateway replica can drop its cached copy
-- of that row within a second, whoever made the change (another replica, the CLI).
-- Written by a trigger, so no write path can forget it; the gateway prunes old rows.
-- Lease bookkeeping (`refresh_lock_*`) and `updated_at_ms` alone are not changes.
-- `at_ms` is the database's clock, one clock for every replica.
CREATE TABLE connection_changes (
    seq         BIGSERIAL PRIMARY KEY,
    user_id     TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    at_ms       BIGINT NOT NULL
);

CREATE INDEX connection_changes_at ON connection_changes (at_ms);

CREATE FUNCTION record_connection_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO connection_changes (user_id, provider_id, at_ms)
        VALUES (OLD.user_id, OLD.provider_id,
                (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
        RETURN OLD;
    END IF;
    INSERT INTO connection_changes (user_id, provider_id, at_ms)
    VALUES (NEW.user_id, NEW.provider_id,
            (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER connection_changed
AFTER INSERT OR DELETE OR UPDATE OF user_id, provider_id, status, scopes,
    access_token_sealed, refresh_token_sealed, expires_at_ms, user_info, version
ON connections
FOR EACH ROW EXECUTE FUNCTION record_connection_change();
