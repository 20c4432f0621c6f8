//! Durable state shared by every replica: API keys, execution records, users' wrapped data
//! keys, OAuth connections and flows, providers added over the admin API, user tokens and
//! MCP sessions.
//!
//! One trait, [`Store`], with a SQLite backend (the embedded default) and a PostgreSQL
//! backend (replicas). Both are one generic implementation (`sql.rs`, each query written
//! once); a backend's file holds only what differs: opening, pool settings, migrations and
//! the execution log's fast path. Migrations are embedded per backend and applied by [`open`].
//! Must not: interpret what it stores (no hashing, no crypto, no HTTP); callers hand it
//! finished rows.

mod auth;
mod postgres;
mod sql;
mod sqlite;
mod sqlite_log;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::StorageConfig;

pub use auth::*;
pub use postgres::{PostgresStore, redact_url};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened (startup, config check).
    #[error("could not open the store: {0}")]
    Open(String),
    #[error("could not apply store migrations: {0}")]
    Migrate(String),
    /// A uniqueness constraint was hit (e.g. a duplicate key name); `0` names the field.
    #[error("{0} already exists")]
    Conflict(String),
    #[error("store query failed: {0}")]
    Query(String),
}

impl StoreError {
    /// A failed query, keeping the database's own message (bind values never appear in it).
    pub(crate) fn query(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => StoreError::Query(db.message().to_owned()),
            _ => StoreError::Query(err.to_string()),
        }
    }

    /// A unique violation becomes [`StoreError::Conflict`]`(field)`; anything else is a query
    /// error.
    pub(crate) fn conflict_or_query(err: sqlx::Error, field: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(field.to_owned())
            }
            _ => StoreError::query(err),
        }
    }
}

/// An API key as stored. The secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the full key.
    pub key_hash: String,
    /// The first characters of the key (e.g. `sb_3f9a`), to recognise it in a list.
    pub hint: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A connection that changed, from the `connection_changes` table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectionChange {
    pub seq: i64,
    pub user_id: String,
    pub provider_id: String,
    pub at_ms: i64,
}

/// One tool execution, written after the call finishes.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExecutionRecord {
    pub id: String,
    pub execution_id: String,
    pub user_id: Option<String>,
    /// Canonical `Toolkit.Tool`.
    pub tool_name: String,
    pub toolkit: String,
    pub tool_version: Option<String>,
    /// Worker id, or `builtin`.
    pub source: String,
    /// `success`, `failed`.
    pub status: String,
    pub error_kind: Option<String>,
    pub duration_ms: f64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// An execution record of `Math.Add` by `alice`, for unit tests.
#[cfg(test)]
pub(crate) fn sample_execution(id: &str, started_at_ms: i64) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        execution_id: format!("x-{id}"),
        user_id: Some("alice".into()),
        tool_name: "Math.Add".into(),
        toolkit: "Math".into(),
        tool_version: None,
        source: "builtin".into(),
        status: "success".into(),
        error_kind: None,
        duration_ms: 1.0,
        started_at_ms,
        finished_at_ms: started_at_ms + 1,
    }
}

/// Which execution records [`Store::list_executions`] returns. `None` filters match all.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub user_id: Option<String>,
    /// Canonical `Toolkit.Tool`, matched exactly.
    pub tool_name: Option<String>,
    /// At most this many records; `0` means [`ExecutionFilter::DEFAULT_LIMIT`], and anything
    /// above [`ExecutionFilter::MAX_LIMIT`] is clamped to it.
    pub limit: u32,
}

impl ExecutionFilter {
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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Drops the copies of rewritten or deleted rows that the backend keeps in its files
    /// (SQLite's write-ahead log), once plaintext secrets have been sealed in place. A no-op
    /// where there are none to reach.
    async fn scrub_old_copies(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Fails with [`StoreError::Conflict`]`("api key name")` on a duplicate active name.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Every key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// The key with this hash, if it exists and is not revoked.
    async fn find_active_api_key(&self, key_hash: &str)
    -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Marks the active key with this id, else the active key with this name, revoked;
    /// `false` when there is none.
    async fn revoke_api_key(&self, id_or_name: &str, at_ms: i64) -> Result<bool, StoreError>;

    /// Writes a batch in one transaction: all records land or none do.
    async fn insert_executions(&self, records: &[ExecutionRecord]) -> Result<(), StoreError>;
    /// Deletes at most `limit` records started before `before_ms` (oldest first); returns
    /// how many. Bounded so a large backlog is removed in short transactions.
    async fn prune_executions(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError>;
    /// Newest first (by `started_at_ms`), filtered and limited as [`ExecutionFilter`] says.
    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, StoreError>;

    // --- Users' data keys -------------------------------------------------------------

    async fn get_user_key(&self, user_id: &str) -> Result<Option<UserKeyRecord>, StoreError>;
    /// Inserts if the user has no key yet; returns the key now stored (the existing one
    /// when another caller won the race).
    async fn insert_user_key(&self, key: &UserKeyRecord) -> Result<UserKeyRecord, StoreError>;
    /// Ordered by user id.
    async fn list_user_keys(&self) -> Result<Vec<UserKeyRecord>, StoreError>;
    /// Replaces the wrapping (vault rotation); `false` if the user has no key.
    async fn update_user_key(&self, key: &UserKeyRecord) -> Result<bool, StoreError>;
    /// Deletes the user's data key, connections, flows, user tokens and MCP sessions in
    /// one transaction; `false` when there was nothing.
    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError>;

    // --- Connections -------------------------------------------------------------------

    async fn get_connection(
        &self,
        user_id: &str,
        provider_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError>;
    async fn get_connection_by_id(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError>;
    /// Inserts, or replaces the row with the same `(user_id, provider_id)` keeping its
    /// `id` and `created_at_ms` and bumping `version`. Returns the stored row.
    async fn upsert_connection(
        &self,
        connection: &ConnectionRecord,
    ) -> Result<ConnectionRecord, StoreError>;
    /// Writes refreshed tokens if `version` still equals `expected_version` (then bumps
    /// it and sets status `active`); `false` when someone else changed the row first.
    /// A `None` refresh token keeps the stored one (providers that do not rotate send none).
    async fn update_connection_tokens(
        &self,
        id: &str,
        expected_version: i64,
        update: &TokenUpdate,
    ) -> Result<bool, StoreError>;
    /// Sets the status (e.g. `needs_reauth`) and `updated_at_ms`; `version` is left alone.
    /// `false` when there is no such connection.
    async fn set_connection_status(
        &self,
        id: &str,
        status: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Newest first (by `updated_at_ms`), paged as [`ConnectionFilter`] says; returns the
    /// page and the total matching the filters.
    async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<(Vec<ConnectionRecord>, u64), StoreError>;
    async fn delete_connection(&self, id: &str) -> Result<bool, StoreError>;
    /// Takes the refresh lease on a connection if it is free or expired (`lease_until_ms`
    /// in the past). Replicas share nothing else, so this is how one refresh at a time
    /// per connection holds across them.
    async fn try_lock_refresh(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Releases the lease if `owner` holds it; otherwise does nothing.
    async fn unlock_refresh(&self, id: &str, owner: &str) -> Result<(), StoreError>;
    /// Changes to connections (written by triggers on every insert, grant change and
    /// delete, whoever made it) stamped at or after `since_ms` by the store's clock,
    /// oldest first, at most `limit`.
    async fn connection_changes_since(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<ConnectionChange>, StoreError>;
    /// Deletes changes stamped before `before_ms`; returns how many.
    async fn prune_connection_changes(&self, before_ms: i64) -> Result<u64, StoreError>;

    // --- Authorization flows -----------------------------------------------------------

    /// Fails with [`StoreError::Conflict`]`("flow")` on a duplicate id, link or state hash.
    async fn insert_flow(&self, flow: &FlowRecord) -> Result<(), StoreError>;
    async fn get_flow(&self, id: &str) -> Result<Option<FlowRecord>, StoreError>;
    async fn find_flow_by_link(&self, link_hash: &str) -> Result<Option<FlowRecord>, StoreError>;
    async fn find_flow_by_state(&self, state_hash: &str) -> Result<Option<FlowRecord>, StoreError>;
    /// Marks the link used, erases its sealed copy and records the state and PKCE verifier,
    /// only if the link is unused and the flow is pending and unexpired at `now_ms`.
    /// `false` otherwise.
    async fn claim_flow_link(
        &self,
        id: &str,
        state_hash: &str,
        pkce_verifier_sealed: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Marks the state used, only if it was unused. `false` for a replay.
    async fn claim_flow_state(&self, id: &str) -> Result<bool, StoreError>;
    /// Writes status, failure reason, pending grant, completion time, link hash, next URI,
    /// expiry and PKCE verifier of the flow with `flow.id` (so a reused flow can be re-armed
    /// and a finished one can drop its verifier). The claim fields (`link_used`,
    /// `state_hash`, `state_used`) and the rest are left as stored; the sealed link is kept
    /// only while the status stays `pending`.
    async fn update_flow(&self, flow: &FlowRecord) -> Result<(), StoreError>;
    /// A pending flow of this user and provider with these scopes (sorted, joined) whose
    /// link is unused and not expired at `now_ms`, newest first.
    async fn find_reusable_flow(
        &self,
        user_id: &str,
        provider_id: &str,
        scopes: &[String],
        now_ms: i64,
    ) -> Result<Option<FlowRecord>, StoreError>;

    // --- Flow reuse and sweep ----------------------------------------------------------
    // At most one flow per user, provider and scopes holds a sealed link (a unique partial
    // index): `insert_flow` of a second one is a `Conflict("flow")`, and the caller reuses
    // the one that won.

    /// Erases the sealed link of this user's, provider's and scopes' flows that expire at
    /// or before `expires_by_ms`, so they are no longer handed out and a fresh flow can be
    /// inserted; their links keep working until they expire. Returns how many.
    async fn retire_reusable_flows(
        &self,
        user_id: &str,
        provider_id: &str,
        scopes: &[String],
        expires_by_ms: i64,
    ) -> Result<u64, StoreError>;
    /// Deletes at most `limit` flows that expired before `before_ms` and did not finish
    /// after it (`completed_at_ms` unset or before it), oldest expiry first; returns how
    /// many.
    async fn sweep_flows(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError>;

    // --- Providers kept in the store ---------------------------------------------------

    /// Ordered by id.
    async fn list_stored_providers(&self) -> Result<Vec<StoredProviderRecord>, StoreError>;
    async fn get_stored_provider(
        &self,
        id: &str,
    ) -> Result<Option<StoredProviderRecord>, StoreError>;
    /// Fails with `Conflict("auth provider id")` when `create` and the id exists; without
    /// `create`, inserts or replaces (keeping the stored `created_at_ms`).
    async fn put_stored_provider(
        &self,
        provider: &StoredProviderRecord,
        create: bool,
    ) -> Result<(), StoreError>;
    async fn delete_stored_provider(&self, id: &str) -> Result<bool, StoreError>;

    // --- Providers kept in the store: sealing rows written in plaintext (issue 16) ------

    /// Replaces `config_json`, `client_secret_sealed` and `updated_at_ms` of the stored
    /// provider `provider.id` only while its `config_json` is still `expected_config_json`
    /// (compare-and-swap, so a concurrent admin edit is not undone); `false` otherwise.
    async fn replace_stored_provider_if_unchanged(
        &self,
        provider: &StoredProviderRecord,
        expected_config_json: &str,
    ) -> Result<bool, StoreError>;

    // --- User tokens (MCP clients acting for one user) ---------------------------------

    /// Fails with [`StoreError::Conflict`]`("user token")` on a duplicate id or hash.
    async fn insert_user_token(&self, token: &UserTokenRecord) -> Result<(), StoreError>;
    /// The token with this hash if it is not revoked and not expired at `now_ms`.
    async fn find_active_user_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<UserTokenRecord>, StoreError>;
    /// Newest first, revoked and expired ones included; all users when `user_id` is `None`.
    async fn list_user_tokens(
        &self,
        user_id: Option<&str>,
    ) -> Result<Vec<UserTokenRecord>, StoreError>;
    /// Marks the token revoked; `false` if there is no such token or it already was.
    async fn revoke_user_token(&self, id: &str, at_ms: i64) -> Result<bool, StoreError>;

    // --- MCP sessions (legacy era), so any replica can serve a session's next request --

    /// Inserts, or replaces the session with the same id (keeping its `created_at_ms`).
    async fn put_mcp_session(&self, session: &McpSessionRecord) -> Result<(), StoreError>;
    async fn get_mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>, StoreError>;
    /// Updates `last_seen_ms` (and nothing else); `false` if there is no such session.
    async fn touch_mcp_session(&self, id: &str, now_ms: i64) -> Result<bool, StoreError>;
    async fn delete_mcp_session(&self, id: &str) -> Result<bool, StoreError>;
    /// Deletes sessions not seen since `before_ms` (`last_seen_ms < before_ms`); returns
    /// how many.
    async fn prune_mcp_sessions(&self, before_ms: i64) -> Result<u64, StoreError>;

    // --- MCP session limits ------------------------------------------------------------

    /// Stores a session as [`Store::put_mcp_session`] does, with the credential that
    /// started it (an API key's or user token's id, or `loopback`): sessions are capped
    /// per user and credential.
    async fn put_mcp_session_of(
        &self,
        session: &McpSessionRecord,
        credential: &str,
    ) -> Result<(), StoreError>;
    /// Sessions seen at or after `since_ms`: this user's through this credential, and
    /// everyone's. Rows stored without a credential count toward the total only.
    async fn count_mcp_sessions(
        &self,
        user_id: &str,
        credential: &str,
        since_ms: i64,
    ) -> Result<McpSessionCount, StoreError>;
}

/// What [`Store::count_mcp_sessions`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct McpSessionCount {
    /// The user's sessions started through the credential.
    pub caller: u64,
    /// Every session.
    pub total: u64,
}

/// Opens the configured backend and applies its migrations. SQLite creates the file and
/// its parent directory.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StorageConfig::Sqlite { path } => Ok(Arc::new(SqliteStore::open(path).await?)),
        StorageConfig::Postgres { url } => Ok(Arc::new(PostgresStore::open(url.expose()).await?)),
    }
}
