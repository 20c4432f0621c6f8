//! Every [`Store`] query, written once for both backends.
//!
//! [`SqlStore`] holds a sqlx pool of either database; its `Store` impl is generic over the
//! database, and a [`Dialect`] (implemented by `sqlx::Sqlite` in `sqlite.rs` and by
//! `sqlx::Postgres` in `postgres.rs`) supplies only what really differs. One SQL text serves
//! both: sqlx's SQLite driver reads `$N` placeholders as PostgreSQL does, and SQLite (3.23+)
//! knows `TRUE`/`FALSE`, which it stores as the 1/0 of its integer flag columns.
//! Must not: open, configure or migrate a database (the backend files do).

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Type,
};

use super::auth::{ConnectionRow, FlowRow, connection_columns, flow_columns, join_scopes};
use super::*;

/// What differs between the two backends, beyond what sqlx already hides.
#[async_trait]
pub trait Dialect: Database + Sync {
    /// What [`Store::backend`] answers.
    const BACKEND: &'static str;
    /// The statement opening a transaction that will write; `None` for the driver's `BEGIN`.
    /// SQLite's `IMMEDIATE` takes the write lock up front, so a second writer waits
    /// (`busy_timeout`) instead of failing when its read lock cannot be upgraded.
    const BEGIN_WRITE: Option<&'static str>;
    /// Deletes at most `$2` execution records started before `$1`, oldest first. SQLite
    /// reaches them by `rowid`, sparing a lookup in the `id` index per row.
    const PRUNE_EXECUTIONS: &'static str;

    /// What the backend keeps beside its pool (SQLite: the execution log's connection).
    type State: Send + Sync + 'static;

    /// Rows a statement changed. sqlx has no trait for it: each driver's result has its own.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// The execution log's fast path: a non-empty batch, in one transaction.
    async fn insert_executions(
        store: &SqlStore<Self>,
        records: &[ExecutionRecord],
    ) -> Result<(), StoreError>;

    /// See [`Store::scrub_old_copies`].
    async fn scrub_old_copies(_store: &SqlStore<Self>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A store on one sqlx pool; `SqliteStore` and `PostgresStore` are its two instances.
pub struct SqlStore<DB: Dialect> {
    pub(super) pool: Pool<DB>,
    pub(super) state: DB::State,
}

/// Rows a statement changed, on either backend.
fn affected<DB: Dialect>(done: Result<DB::QueryResult, sqlx::Error>) -> Result<u64, StoreError> {
    done.map(|done| DB::rows_affected(&done))
        .map_err(StoreError::query)
}

/// The flow whose unique `$column` is `$key`: the three flow lookups differ only there.
/// A macro, not a generic helper, because a helper would repeat the impl's sqlx bounds.
macro_rules! flow_where {
    ($store:expr, $column:literal, $key:expr) => {{
        let row: Option<FlowRow> = sqlx::query_as(concat!(
            "SELECT ",
            flow_columns!(),
            " FROM flows WHERE ",
            $column,
            " = $1"
        ))
        .bind($key)
        .fetch_optional(&$store.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(row.map(Into::into))
    }};
}

// The bounds sqlx needs to run generic queries, stated once for the one generic impl: Rust
// does not carry a trait's `where` clauses to its users, so they cannot live on `Dialect`.
#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'e> &'e str: Encode<'e, DB> + ColumnIndex<DB::Row>,
    for<'e> Option<&'e str>: Encode<'e, DB>,
    for<'e> String: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Option<String>: Encode<'e, DB>,
    for<'e> i64: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Option<i64>: Encode<'e, DB>,
    for<'e> bool: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> f64: Decode<'e, DB> + Type<DB>,
    str: Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::query)?;
        Ok(())
    }

    async fn scrub_old_copies(&self) -> Result<(), StoreError> {
        DB::scrub_old_copies(self).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, hint, created_at_ms, revoked_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.key_hash)
        .bind(&key.hint)
        .bind(key.created_at_ms)
        .bind(key.revoked_at_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or_query(e, "api key name"))?;
        Ok(())
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        sqlx::query_as(
            "SELECT id, name, key_hash, hint, created_at_ms, revoked_at_ms FROM api_keys \
             ORDER BY created_at_ms, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn find_active_api_key(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        sqlx::query_as(
            "SELECT id, name, key_hash, hint, created_at_ms, revoked_at_ms FROM api_keys \
             WHERE key_hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn revoke_api_key(&self, id_or_name: &str, at_ms: i64) -> Result<bool, StoreError> {
        // An id wins over a name: a key named like another key's id must not shadow it.
        for sql in [
            "UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
            "UPDATE api_keys SET revoked_at_ms = $1 WHERE name = $2 AND revoked_at_ms IS NULL",
        ] {
            let done = sqlx::query(sql)
                .bind(at_ms)
                .bind(id_or_name)
                .execute(&self.pool)
                .await;
            if affected::<DB>(done)? > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn insert_executions(&self, records: &[ExecutionRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        DB::insert_executions(self, records).await
    }

    async fn prune_executions(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(DB::PRUNE_EXECUTIONS)
            .bind(before_ms)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await;
        affected::<DB>(done)
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        // Built per call so an absent filter adds no clause and the indexes stay usable.
        let mut select = QueryBuilder::<DB>::new(
            "SELECT id, execution_id, user_id, tool_name, toolkit, tool_version, source, \
             status, error_kind, duration_ms, started_at_ms, finished_at_ms FROM executions \
             WHERE TRUE",
        );
        if let Some(user_id) = &filter.user_id {
            select.push(" AND user_id = ").push_bind(user_id.clone());
        }
        if let Some(tool_name) = &filter.tool_name {
            select
                .push(" AND tool_name = ")
                .push_bind(tool_name.clone());
        }
        select
            .push(" ORDER BY started_at_ms DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.effective_limit()));
        select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query)
    }

    async fn get_user_key(&self, user_id: &str) -> Result<Option<UserKeyRecord>, StoreError> {
        sqlx::query_as(
            "SELECT user_id, root_key_id, wrapped_key, created_at_ms FROM user_keys \
             WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn insert_user_key(&self, key: &UserKeyRecord) -> Result<UserKeyRecord, StoreError> {
        sqlx::query(
            "INSERT INTO user_keys (user_id, root_key_id, wrapped_key, created_at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(&key.user_id)
        .bind(&key.root_key_id)
        .bind(&key.wrapped_key)
        .bind(key.created_at_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query)?;
        // Whoever won the insert, this is the key every caller must use from now on.
        self.get_user_key(&key.user_id).await?.ok_or_else(|| {
            StoreError::Query("user key vanished right after it was inserted".into())
        })
    }

    async fn list_user_keys(&self) -> Result<Vec<UserKeyRecord>, StoreError> {
        sqlx::query_as(
            "SELECT user_id, root_key_id, wrapped_key, created_at_ms FROM user_keys \
             ORDER BY user_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn update_user_key(&self, key: &UserKeyRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_keys SET root_key_id = $1, wrapped_key = $2 WHERE user_id = $3",
        )
        .bind(&key.root_key_id)
        .bind(&key.wrapped_key)
        .bind(&key.user_id)
        .execute(&self.pool)
        .await;
        Ok(affected::<DB>(done)? > 0)
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut tx = match DB::BEGIN_WRITE {
            Some(begin) => self.pool.begin_with(begin).await,
            None => self.pool.begin().await,
        }
        .map_err(StoreError::query)?;
        let mut deleted = 0;
        for sql in [
            "DELETE FROM user_keys WHERE user_id = $1",
            "DELETE FROM connections WHERE user_id = $1",
            "DELETE FROM flows WHERE user_id = $1",
            "DELETE FROM user_tokens WHERE user_id = $1",
            "DELETE FROM mcp_sessions WHERE user_id = $1",
        ] {
            let done = sqlx::query(sql).bind(user_id).execute(&mut *tx).await;
            deleted += affected::<DB>(done)?;
        }
        tx.commit().await.map_err(StoreError::query)?;
        Ok(deleted > 0)
    }

    async fn get_connection(
        &self,
        user_id: &str,
        provider_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let row: Option<ConnectionRow> = sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE user_id = $1 AND provider_id = $2"
        ))
        .bind(user_id)
        .bind(provider_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(row.map(Into::into))
    }

    async fn get_connection_by_id(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let row: Option<ConnectionRow> = sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(row.map(Into::into))
    }

    async fn upsert_connection(
        &self,
        c: &ConnectionRecord,
    ) -> Result<ConnectionRecord, StoreError> {
        // RETURNING hands back the row as stored by this very statement, so a concurrent
        // upsert cannot slip in between the write and the read.
        let row: ConnectionRow = sqlx::query_as(concat!(
            "INSERT INTO connections (id, user_id, provider_id, provider_service, status, \
             scopes, access_token_sealed, refresh_token_sealed, expires_at_ms, user_info, \
             provider_user_id, created_at_ms, updated_at_ms, version, token_lifetime_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (user_id, provider_id) DO UPDATE SET \
             provider_service = excluded.provider_service, status = excluded.status, \
             scopes = excluded.scopes, access_token_sealed = excluded.access_token_sealed, \
             refresh_token_sealed = excluded.refresh_token_sealed, \
             expires_at_ms = excluded.expires_at_ms, user_info = excluded.user_info, \
             provider_user_id = excluded.provider_user_id, \
             updated_at_ms = excluded.updated_at_ms, version = connections.version + 1, \
             token_lifetime_ms = excluded.token_lifetime_ms, refresh_lock_owner = NULL, \
             refresh_lock_until_ms = NULL \
             RETURNING ",
            connection_columns!()
        ))
        .bind(&c.id)
        .bind(&c.user_id)
        .bind(&c.provider_id)
        .bind(&c.provider_service)
        .bind(&c.status)
        .bind(join_scopes(&c.scopes))
        .bind(&c.access_token_sealed)
        .bind(&c.refresh_token_sealed)
        .bind(c.expires_at_ms)
        .bind(&c.user_info)
        .bind(&c.provider_user_id)
        .bind(c.created_at_ms)
        .bind(c.updated_at_ms)
        .bind(c.version)
        .bind(c.token_lifetime_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or_query(e, "connection id"))?;
        Ok(row.into())
    }

    async fn update_connection_tokens(
        &self,
        id: &str,
        expected_version: i64,
        update: &TokenUpdate,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE connections SET access_token_sealed = $1, \
             refresh_token_sealed = COALESCE($2, refresh_token_sealed), expires_at_ms = $3, \
             scopes = $4, updated_at_ms = $5, version = version + 1, status = 'active', \
             token_lifetime_ms = $8 WHERE id = $6 AND version = $7",
        )
        .bind(&update.access_token_sealed)
        .bind(&update.refresh_token_sealed)
        .bind(update.expires_at_ms)
        .bind(join_scopes(&update.scopes))
        .bind(update.updated_at_ms)
        .bind(id)
        .bind(expected_version)
        .bind(update.token_lifetime_ms)
        .execute(&self.pool)
        .await;
        Ok(affected::<DB>(done)? == 1)
    }

    async fn set_connection_status(
        &self,
        id: &str,
        status: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE connections SET status = $1, updated_at_ms = $2 WHERE id = $3")
                .bind(status)
                .bind(at_ms)
                .bind(id)
                .execute(&self.pool)
                .await;
        Ok(affected::<DB>(done)? > 0)
    }

    async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<(Vec<ConnectionRecord>, u64), StoreError> {
        // One WHERE clause for the page and the count, so the two always agree.
        let filtered = |mut query: QueryBuilder<DB>| {
            query.push(" FROM connections WHERE TRUE");
            if let Some(user_id) = &filter.user_id {
                query.push(" AND user_id = ").push_bind(user_id.clone());
            }
            if let Some(provider_id) = &filter.provider_id {
                query
                    .push(" AND provider_id = ")
                    .push_bind(provider_id.clone());
            }
            query
        };

        let mut select = filtered(QueryBuilder::new(concat!("SELECT ", connection_columns!())));
        select
            .push(" ORDER BY updated_at_ms DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.effective_limit()))
            .push(" OFFSET ")
            .push_bind(i64::from(filter.offset));
        let rows: Vec<ConnectionRow> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query)?;

        let mut count = filtered(QueryBuilder::new("SELECT count(*)"));
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query)?;
        Ok((
            rows.into_iter().map(Into::into).collect(),
            u64::try_from(total).unwrap_or(0),
        ))
    }

    async fn delete_connection(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await;
        Ok(affected::<DB>(done)? > 0)
    }

    async fn try_lock_refresh(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        // One statement, so the check and the take are one step: SQLite has a single
        // writer; in PostgreSQL a second taker blocks on the row lock, then re-checks the
        // WHERE against the committed lease and finds it held.
        let done = sqlx::query(
            "UPDATE connections SET refresh_lock_owner = $1, refresh_lock_until_ms = $2 \
             WHERE id = $3 AND (refresh_lock_until_ms IS NULL OR refresh_lock_until_ms < $4 \
             OR refresh_lock_owner = $1)",
        )
        .bind(owner)
        .bind(lease_until_ms)
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await;
        Ok(affected::<DB>(done)? == 1)
    }

    async fn unlock_refresh(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE connections SET refresh_lock_owner = NULL, refresh_lock_until_ms = NULL \
             WHERE id = $1 AND refresh_lock_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(())
    }

    async fn connection_changes_since(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<ConnectionChange>, StoreError> {
        sqlx::query_as(
            "SELECT seq, user_id, provider_id, at_ms FROM connection_changes \
             WHERE at_ms >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(since_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn prune_connection_changes(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM connection_changes WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await;
        affected::<DB>(done)
    }

    async fn insert_flow(&self, f: &FlowRecord) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO flows (",
            flow_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(&f.id)
        .bind(&f.user_id)
        .bind(&f.provider_id)
        .bind(join_scopes(&f.scopes))
        .bind(&f.status)
        .bind(&f.link_hash)
        .bind(f.link_used)
        .bind(&f.state_hash)
        .bind(f.state_used)
        .bind(&f.pkce_verifier_sealed)
        .bind(&f.next_uri)
        .bind(&f.failure_reason)
        .bind(&f.pending_grant_sealed)
        .bind(f.created_at_ms)
        .bind(f.expires_at_ms)
        .bind(f.completed_at_ms)
        .bind(&f.link_sealed)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or_query(e, "flow"))?;
        Ok(())
    }

    async fn get_flow(&self, id: &str) -> Result<Option<FlowRecord>, StoreError> {
        flow_where!(self, "id", id)
    }

    async fn find_flow_by_link(&self, link_hash: &str) -> Result<Option<FlowRecord>, StoreError> {
        flow_where!(self, "link_hash", link_hash)
    }

    async fn find_flow_by_state(&self, state_hash: &str) -> Result<Option<FlowRecord>, StoreError> {
        flow_where!(self, "state_hash", state_hash)
    }

    async fn claim_flow_link(
        &self,
        id: &str,
        state_hash: &str,
        pkce_verifier_sealed: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE flows SET link_used = TRUE, state_hash = $1, pkce_verifier_sealed = $2, \
             link_sealed = NULL \
             WHERE id = $3 AND link_used = FALSE AND status = 'pending' AND expires_at_ms > $4",
        )
        .bind(state_hash)
        .bind(pkce_verifier_sealed)
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or_query(e, "flow state"))?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn claim_flow_state(&self, id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE flows SET state_used = TRUE WHERE id = $1 AND state_used = FALSE")
                .bind(id)
                .execute(&self.pool)
                .await;
        Ok(affected::<DB>(done)? == 1)
    }

    async fn update_flow(&self, f: &FlowRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE flows SET status = $1, failure_reason = $2, pending_grant_sealed = $3, \
             completed_at_ms = $4, link_hash = $6, next_uri = $7, expires_at_ms = $8, \
             pkce_verifier_sealed = $9, \
             link_sealed = CASE WHEN $1 = 'pending' THEN link_sealed ELSE NULL END \
             WHERE id = $5",
        )
        .bind(&f.status)
        .bind(&f.failure_reason)
        .bind(&f.pending_grant_sealed)
        .bind(f.completed_at_ms)
        .bind(&f.id)
        .bind(&f.link_hash)
        .bind(&f.next_uri)
        .bind(f.expires_at_ms)
        .bind(&f.pkce_verifier_sealed)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(())
    }

    async fn find_reusable_flow(
        &self,
        user_id: &str,
        provider_id: &str,
        scopes: &[String],
        now_ms: i64,
    ) -> Result<Option<FlowRecord>, StoreError> {
        let row: Option<FlowRow> = sqlx::query_as(concat!(
            "SELECT ",
            flow_columns!(),
            " FROM flows WHERE user_id = $1 AND provider_id = $2 AND scopes = $3 \
             AND status = 'pending' AND link_used = FALSE AND expires_at_ms > $4 \
             ORDER BY created_at_ms DESC, id DESC LIMIT 1"
        ))
        .bind(user_id)
        .bind(provider_id)
        .bind(join_scopes(scopes))
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(row.map(Into::into))
    }

    // --- Flow reuse and sweep ----------------------------------------------------------

    async fn retire_reusable_flows(
        &self,
        user_id: &str,
        provider_id: &str,
        scopes: &[String],
        expires_by_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE flows SET link_sealed = NULL WHERE user_id = $1 AND provider_id = $2 \
             AND scopes = $3 AND link_sealed IS NOT NULL AND expires_at_ms <= $4",
        )
        .bind(user_id)
        .bind(provider_id)
        .bind(join_scopes(scopes))
        .bind(expires_by_ms)
        .execute(&self.pool)
        .await;
        affected::<DB>(done)
    }

    async fn sweep_flows(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM flows WHERE id IN (SELECT id FROM flows WHERE expires_at_ms < $1 \
             AND (completed_at_ms IS NULL OR completed_at_ms < $1) \
             ORDER BY expires_at_ms LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await;
        affected::<DB>(done)
    }

    async fn list_stored_providers(&self) -> Result<Vec<StoredProviderRecord>, StoreError> {
        sqlx::query_as(
            "SELECT id, config_json, client_secret_sealed, created_at_ms, updated_at_ms \
             FROM stored_providers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn get_stored_provider(
        &self,
        id: &str,
    ) -> Result<Option<StoredProviderRecord>, StoreError> {
        sqlx::query_as(
            "SELECT id, config_json, client_secret_sealed, created_at_ms, updated_at_ms \
             FROM stored_providers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn put_stored_provider(
        &self,
        p: &StoredProviderRecord,
        create: bool,
    ) -> Result<(), StoreError> {
        let sql = if create {
            "INSERT INTO stored_providers (id, config_json, client_secret_sealed, \
             created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5)"
        } else {
            "INSERT INTO stored_providers (id, config_json, client_secret_sealed, \
             created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET config_json = excluded.config_json, \
             client_secret_sealed = excluded.client_secret_sealed, \
             updated_at_ms = excluded.updated_at_ms"
        };
        sqlx::query(sql)
            .bind(&p.id)
            .bind(&p.config_json)
            .bind(&p.client_secret_sealed)
            .bind(p.created_at_ms)
            .bind(p.updated_at_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_or_query(e, "auth provider id"))?;
        Ok(())
    }

    async fn delete_stored_provider(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM stored_providers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await;
        Ok(affected::<DB>(done)? > 0)
    }

    // --- Providers kept in the store: sealing rows written in plaintext (issue 16) ------

    async fn replace_stored_provider_if_unchanged(
        &self,
        p: &StoredProviderRecord,
        expected_config_json: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE stored_providers SET config_json = $1, client_secret_sealed = $2, \
             updated_at_ms = $3 WHERE id = $4 AND config_json = $5",
        )
        .bind(&p.config_json)
        .bind(&p.client_secret_sealed)
        .bind(p.updated_at_ms)
        .bind(&p.id)
        .bind(expected_config_json)
        .execute(&self.pool)
        .await;
        Ok(affected::<DB>(done)? > 0)
    }

    async fn insert_user_token(&self, t: &UserTokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_tokens (id, user_id, token_hash, hint, created_at_ms, \
             expires_at_ms, revoked_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.user_id)
        .bind(&t.token_hash)
        .bind(&t.hint)
        .bind(t.created_at_ms)
        .bind(t.expires_at_ms)
        .bind(t.revoked_at_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or_query(e, "user token"))?;
        Ok(())
    }

    async fn find_active_user_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<UserTokenRecord>, StoreError> {
        sqlx::query_as(
            "SELECT id, user_id, token_hash, hint, created_at_ms, expires_at_ms, revoked_at_ms \
             FROM user_tokens WHERE token_hash = $1 AND revoked_at_ms IS NULL \
             AND (expires_at_ms IS NULL OR expires_at_ms > $2)",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn list_user_tokens(
        &self,
        user_id: Option<&str>,
    ) -> Result<Vec<UserTokenRecord>, StoreError> {
        // `$1 IS NULL` keeps one statement for both cases.
        sqlx::query_as(
            "SELECT id, user_id, token_hash, hint, created_at_ms, expires_at_ms, revoked_at_ms \
             FROM user_tokens WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) \
             ORDER BY created_at_ms DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn revoke_user_token(&self, id: &str, at_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_tokens SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(at_ms)
        .bind(id)
        .execute(&self.pool)
        .await;
        Ok(affected::<DB>(done)? > 0)
    }

    async fn put_mcp_session(&self, s: &McpSessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mcp_sessions (id, user_id, gateway, protocol_version, client_json, \
             created_at_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, \
             gateway = excluded.gateway, protocol_version = excluded.protocol_version, \
             client_json = excluded.client_json, last_seen_ms = excluded.last_seen_ms",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.gateway)
        .bind(&s.protocol_version)
        .bind(&s.client_json)
        .bind(s.created_at_ms)
        .bind(s.last_seen_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(())
    }

    async fn get_mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>, StoreError> {
        sqlx::query_as(
            "SELECT id, user_id, gateway, protocol_version, client_json, created_at_ms, \
             last_seen_ms FROM mcp_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn touch_mcp_session(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE mcp_sessions SET last_seen_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await;
        Ok(affected::<DB>(done)? > 0)
    }

    async fn delete_mcp_session(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM mcp_sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await;
        Ok(affected::<DB>(done)? > 0)
    }

    async fn prune_mcp_sessions(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM mcp_sessions WHERE last_seen_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await;
        affected::<DB>(done)
    }

    // --- MCP session limits ------------------------------------------------------------

    async fn put_mcp_session_of(
        &self,
        s: &McpSessionRecord,
        credential: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mcp_sessions (id, user_id, gateway, protocol_version, client_json, \
             created_at_ms, last_seen_ms, credential) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, \
             gateway = excluded.gateway, protocol_version = excluded.protocol_version, \
             client_json = excluded.client_json, last_seen_ms = excluded.last_seen_ms, \
             credential = excluded.credential",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.gateway)
        .bind(&s.protocol_version)
        .bind(&s.client_json)
        .bind(s.created_at_ms)
        .bind(s.last_seen_ms)
        .bind(credential)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(())
    }

    async fn count_mcp_sessions(
        &self,
        user_id: &str,
        credential: &str,
        since_ms: i64,
    ) -> Result<McpSessionCount, StoreError> {
        // Both counts read an index (`mcp_sessions_caller`, `mcp_sessions_last_seen`).
        let (caller, total): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM mcp_sessions WHERE user_id = $1 \
             AND credential = $2 AND last_seen_ms >= $3), \
             (SELECT COUNT(*) FROM mcp_sessions WHERE last_seen_ms >= $3)",
        )
        .bind(user_id)
        .bind(credential)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query)?;
        Ok(McpSessionCount {
            caller: u64::try_from(caller).unwrap_or(0),
            total: u64::try_from(total).unwrap_or(0),
        })
    }
}
