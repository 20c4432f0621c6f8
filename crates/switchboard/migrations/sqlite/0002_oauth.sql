-- Per-user OAuth: users' wrapped data keys, connections, authorization flows, and providers
-- added over the admin API. Sealed columns hold vault ciphertext, never plaintext tokens.
-- Booleans are INTEGER 0/1.

-- One data key per user, wrapped by the root key `root_key_id`.
CREATE TABLE user_keys (
    user_id       TEXT PRIMARY KEY NOT NULL,
    root_key_id   TEXT NOT NULL,
    wrapped_key   TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

-- One grant per user and provider. `version` is bumped on every token change so a refresher
-- can tell someone else refreshed; `refresh_lock_*` is the cross-replica refresh lease.
CREATE TABLE connections (
    id                    TEXT PRIMARY KEY NOT NULL,
    user_id               TEXT NOT NULL,
    provider_id           TEXT NOT NULL,
    provider_service      TEXT NOT NULL,
    status                TEXT NOT NULL,
    -- Space-joined, sorted by the caller.
    scopes                TEXT NOT NULL,
    access_token_sealed   TEXT NOT NULL,
    refresh_token_sealed  TEXT,
    expires_at_ms         INTEGER,
    user_info             TEXT,
    provider_user_id      TEXT,
    created_at_ms         INTEGER NOT NULL,
    updated_at_ms         INTEGER NOT NULL,
    version               INTEGER NOT NULL,
    refresh_lock_owner    TEXT,
    refresh_lock_until_ms INTEGER,
    UNIQUE (user_id, provider_id)
);

CREATE INDEX connections_updated ON connections (updated_at_ms);

-- Authorization flows. The link and the OAuth state are kept as SHA-256 hashes only.
CREATE TABLE flows (
    id                   TEXT PRIMARY KEY NOT NULL,
    user_id              TEXT NOT NULL,
    provider_id          TEXT NOT NULL,
    scopes               TEXT NOT NULL,
    status               TEXT NOT NULL,
    link_hash            TEXT NOT NULL UNIQUE,
    link_used            INTEGER NOT NULL DEFAULT 0,
    state_hash           TEXT UNIQUE,
    state_used           INTEGER NOT NULL DEFAULT 0,
    pkce_verifier_sealed TEXT,
    next_uri             TEXT,
    failure_reason       TEXT,
    pending_grant_sealed TEXT,
    created_at_ms        INTEGER NOT NULL,
    expires_at_ms        INTEGER NOT NULL,
    completed_at_ms      INTEGER
);

CREATE INDEX flows_user_provider ON flows (user_id, provider_id);

-- Providers added over `/v1/admin/auth_providers`; the client secret is sealed apart.
CREATE TABLE stored_providers (
    id                   TEXT PRIMARY KEY NOT NULL,
    config_json          TEXT NOT NULL,
    client_secret_sealed TEXT,
    created_at_ms        INTEGER NOT NULL,
    updated_at_ms        INTEGER NOT NULL
);
