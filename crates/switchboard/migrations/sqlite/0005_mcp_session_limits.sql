-- MCP sessions are capped per user and credential (`api.mcp_max_sessions_per_user`) and
-- in total (`api.mcp_max_sessions`): each row names the credential that started it (an
-- API key's or user token's id, or `loopback`). Rows from before have none ('') and count
-- toward the total only.
ALTER TABLE mcp_sessions ADD COLUMN credential TEXT NOT NULL DEFAULT '';

CREATE INDEX mcp_sessions_caller ON mcp_sessions (user_id, credential, last_seen_ms);
