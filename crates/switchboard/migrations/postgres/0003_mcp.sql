-- MCP: tokens bound to one user (for MCP clients), and legacy-era MCP sessions kept in the
-- store so any replica can serve a session's next request.

-- Only the SHA-256 of a token is stored; `hint` is its first characters, for lists.
CREATE TABLE user_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    hint          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT
);

CREATE INDEX user_tokens_user ON user_tokens (user_id, created_at_ms);

-- `gateway` is NULL for `/v1/mcps/{user}/mcp` (every enabled tool).
CREATE TABLE mcp_sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    gateway          TEXT,
    protocol_version TEXT NOT NULL,
    client_json      TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    last_seen_ms     BIGINT NOT NULL
);

CREATE INDEX mcp_sessions_last_seen ON mcp_sessions (last_seen_ms);
