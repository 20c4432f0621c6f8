//! Rows behind per-user OAuth: users' wrapped data keys, connections (sealed tokens),
//! authorization flows, and providers added over the admin API. Sealed fields are
//! ciphertext from `vault/`; the store never sees plaintext tokens.

/// A user's data key, wrapped by a root key.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserKeyRecord {
    pub user_id: String,
    pub root_key_id: String,
    pub wrapped_key: String,
    pub created_at_ms: i64,
}

/// One user's grant at one provider (config id). Unique on `(user_id, provider_id)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub id: String,
    pub user_id: String,
    /// The provider's config id, e.g. `google-internal`.
    pub provider_id: String,
    /// The service, e.g. `google`.
    pub provider_service: String,
    /// `active`, or `needs_reauth` after the provider refused the refresh token.
    pub status: String,
    pub scopes: Vec<String>,
    pub access_token_sealed: String,
    pub refresh_token_sealed: Option<String>,
    pub expires_at_ms: Option<i64>,
    /// The provider's user info as JSON text (not secret; shown to admins).
    pub user_info: Option<String>,
    pub provider_user_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Bumped on every token change, so a refresher can tell someone else refreshed.
    pub version: i64,
    /// The access token's whole lifetime when it was issued (`expires_in`), so refresh
    /// ahead of expiry can be scaled to it; `None` when unknown.
    pub token_lifetime_ms: Option<i64>,
}

/// An authorization flow (Arcade's "authorization", its id is the `id` clients poll).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRecord {
    pub id: String,
    pub user_id: String,
    pub provider_id: String,
    pub scopes: Vec<String>,
    /// `pending`, `awaiting_verification`, `completed` or `failed`.
    pub status: String,
    /// SHA-256 (hex) of the short link token the user is given.
    pub link_hash: String,
    pub link_used: bool,
    /// SHA-256 (hex) of the OAuth `state`, set when the link is followed.
    pub state_hash: Option<String>,
    pub state_used: bool,
    pub pkce_verifier_sealed: Option<String>,
    pub next_uri: Option<String>,
    pub failure_reason: Option<String>,
    /// Tokens waiting for user verification (sealed JSON), moved to the connection on
    /// confirm and erased on failure.
    pub pending_grant_sealed: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    /// The link token itself, sealed, while the flow may be handed out again (pending,
    /// link unused); the store erases it when the link is claimed or the flow ends.
    pub link_sealed: Option<String>,
}

/// A provider added over `/v1/admin/auth_providers`. `config_json` is the provider's
/// mapping as JSON with `client_secret` removed; the secret is sealed separately.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredProviderRecord {
    pub id: String,
    pub config_json: String,
    pub client_secret_sealed: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Which connections [`Store::list_connections`](super::Store::list_connections) returns.
/// `None` filters match all.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    pub user_id: Option<String>,
    pub provider_id: Option<String>,
    /// At most this many; `0` means [`ConnectionFilter::DEFAULT_LIMIT`], and anything above
    /// [`ConnectionFilter::MAX_LIMIT`] is clamped to it.
    pub limit: u32,
    /// Rows skipped before the page starts.
    pub offset: u32,
}

impl ConnectionFilter {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    /// The row limit a backend applies.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

/// New token material for a connection after a refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUpdate {
    pub access_token_sealed: String,
    pub refresh_token_sealed: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub scopes: Vec<String>,
    pub updated_at_ms: i64,
    /// The new token's whole lifetime (`expires_in`); written as given.
    pub token_lifetime_ms: Option<i64>,
}

/// Scopes as stored: joined by single spaces, in the order given (callers sort them, so equal
/// sets compare equal as text).
pub(super) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split_whitespace().map(str::to_owned).collect()
}

/// Columns of `connections` that make a [`ConnectionRecord`], as a literal for `concat!`
/// (sqlx takes only `'static` SQL without an explicit safety assertion).
macro_rules! connection_columns {
    () => {
        "id, user_id, provider_id, provider_service, status, scopes, access_token_sealed, \
         refresh_token_sealed, expires_at_ms, user_info, provider_user_id, created_at_ms, \
         updated_at_ms, version, token_lifetime_ms"
    };
}
pub(super) use connection_columns;

/// Columns of `flows` that make a [`FlowRecord`], as a literal for `concat!`.
macro_rules! flow_columns {
    () => {
        "id, user_id, provider_id, scopes, status, link_hash, link_used, state_hash, \
         state_used, pkce_verifier_sealed, next_uri, failure_reason, pending_grant_sealed, \
         created_at_ms, expires_at_ms, completed_at_ms, link_sealed"
    };
}
pub(super) use flow_columns;

/// A `connections` row as read; differs from [`ConnectionRecord`] only in the scopes' form.
#[derive(sqlx::FromRow)]
pub(super) struct ConnectionRow {
    id: String,
    user_id: String,
    provider_id: String,
    provider_service: String,
    status: String,
    scopes: String,
    access_token_sealed: String,
    refresh_token_sealed: Option<String>,
    expires_at_ms: Option<i64>,
    user_info: Option<String>,
    provider_user_id: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
    version: i64,
    token_lifetime_ms: Option<i64>,
}

impl From<ConnectionRow> for ConnectionRecord {
    fn from(row: ConnectionRow) -> Self {
        ConnectionRecord {
            id: row.id,
            user_id: row.user_id,
            provider_id: row.provider_id,
            provider_service: row.provider_service,
            status: row.status,
            scopes: split_scopes(&row.scopes),
            access_token_sealed: row.access_token_sealed,
            refresh_token_sealed: row.refresh_token_sealed,
            expires_at_ms: row.expires_at_ms,
            user_info: row.user_info,
            provider_user_id: row.provider_user_id,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
            version: row.version,
            token_lifetime_ms: row.token_lifetime_ms,
        }
    }
}

/// A `flows` row as read; differs from [`FlowRecord`] only in the scopes' form.
#[derive(sqlx::FromRow)]
pub(super) struct FlowRow {
    id: String,
    user_id: String,
    provider_id: String,
    scopes: String,
    status: String,
    link_hash: String,
    link_used: bool,
    state_hash: Option<String>,
    state_used: bool,
    pkce_verifier_sealed: Option<String>,
    next_uri: Option<String>,
    failure_reason: Option<String>,
    pending_grant_sealed: Option<String>,
    created_at_ms: i64,
    expires_at_ms: i64,
    completed_at_ms: Option<i64>,
    link_sealed: Option<String>,
}

impl From<FlowRow> for FlowRecord {
    fn from(row: FlowRow) -> Self {
        FlowRecord {
            id: row.id,
            user_id: row.user_id,
            provider_id: row.provider_id,
            scopes: split_scopes(&row.scopes),
            status: row.status,
            link_hash: row.link_hash,
            link_used: row.link_used,
            state_hash: row.state_hash,
            state_used: row.state_used,
            pkce_verifier_sealed: row.pkce_verifier_sealed,
            next_uri: row.next_uri,
            failure_reason: row.failure_reason,
            pending_grant_sealed: row.pending_grant_sealed,
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
            completed_at_ms: row.completed_at_ms,
            link_sealed: row.link_sealed,
        }
    }
}

/// A bearer token bound to one user, for MCP clients (`switchboard users token create`).
/// Only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserTokenRecord {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    /// The first characters, to recognise it in a list.
    pub hint: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// A legacy-era MCP session (2025-06-18 / 2025-11-25).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct McpSessionRecord {
    pub id: String,
    pub user_id: String,
    /// The gateway slug, or `None` for `/v1/mcps/{user}/mcp` (all tools).
    pub gateway: Option<String>,
    pub protocol_version: String,
    /// The client's `initialize` capabilities and info, as JSON text.
    pub client_json: String,
    pub created_at_ms: i64,
    pub last_seen_ms: i64,
}
