-- API keys: only the SHA-256 of a key is kept; `hint` lets a person recognise it in a list.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    hint          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

-- A name is unique among active keys only, so it can be reused once its key is revoked.
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at_ms IS NULL;

-- One row per finished tool call.
CREATE TABLE executions (
    id             TEXT PRIMARY KEY,
    execution_id   TEXT NOT NULL,
    user_id        TEXT,
    tool_name      TEXT NOT NULL,
    toolkit        TEXT NOT NULL,
    tool_version   TEXT,
    source         TEXT NOT NULL,
    status         TEXT NOT NULL,
    error_kind     TEXT,
    duration_ms    DOUBLE PRECISION NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT NOT NULL
);

CREATE INDEX executions_user_started ON executions (user_id, started_at_ms);
CREATE INDEX executions_started ON executions (started_at_ms);
