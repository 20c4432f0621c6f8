//! The embedded backend: one SQLite file in WAL mode, for a single replica.
//!
//! SQLite allows one writer at a time; `busy_timeout` makes a second writer wait for the
//! first instead of failing, and write transactions start `IMMEDIATE` so they take the write
//! lock up front rather than failing on upgrade.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::QueryBuilder;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use super::*;

/// Embedded migrations; their checksums are checked on every start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for the lock held by another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Readers run in parallel under WAL; writes serialise on SQLite's lock anyway.
const MAX_CONNECTIONS: u32 = 8;

/// Rows per multi-row INSERT, well under SQLite's 32766 bound parameters (12 per row).
const INSERT_CHUNK: usize = 500;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its parent directory, then applies
    /// migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                StoreError::Open(format!("cannot create directory {}: {e}", parent.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is safe under WAL: a power loss may lose the last commits, never corrupt.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        Self::migrated(pool).await
    }

    /// A private in-memory database, for tests. One connection, kept open for the pool's
    /// life: an in-memory database disappears with its last connection.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| StoreError::Open(e.to_string()))?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("in-memory database: {e}")))?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self, StoreError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Runs one revoking `UPDATE` (binds: time, then value); whether a key was revoked.
    async fn revoke_where(
        &self,
        sql: &'static str,
        value: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql)
            .bind(at_ms)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::query)?;
        Ok(())
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, hint, created_at_ms, revoked_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
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
             WHERE key_hash = ?1 AND revoked_at_ms IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query)
    }

    async fn revoke_api_key(&self, id_or_name: &str, at_ms: i64) -> Result<bool, StoreError> {
        // An id wins over a name: a key named like another key's id must not shadow it.
        if self
            .revoke_where(
                "UPDATE api_keys SET revoked_at_ms = ?1 WHERE id = ?2 AND revoked_at_ms IS NULL",
                id_or_name,
                at_ms,
            )
            .await?
        {
            return Ok(true);
        }
        self.revoke_where(
            "UPDATE api_keys SET revoked_at_ms = ?1 WHERE name = ?2 AND revoked_at_ms IS NULL",
            id_or_name,
            at_ms,
        )
        .await
    }

    async fn insert_executions(&self, records: &[ExecutionRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::query)?;
        for chunk in records.chunks(INSERT_CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO executions (id, execution_id, user_id, tool_name, toolkit, \
                 tool_version, source, status, error_kind, duration_ms, started_at_ms, \
                 finished_at_ms) ",
            );
            insert.push_values(chunk, |mut row, r| {
                row.push_bind(r.id.clone())
                    .push_bind(r.execution_id.clone())
                    .push_bind(r.user_id.clone())
                    .push_bind(r.tool_name.clone())
                    .push_bind(r.toolkit.clone())
                    .push_bind(r.tool_version.clone())
                    .push_bind(r.source.clone())
                    .push_bind(r.status.clone())
                    .push_bind(r.error_kind.clone())
                    .push_bind(r.duration_ms)
                    .push_bind(r.started_at_ms)
                    .push_bind(r.finished_at_ms);
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict_or_query(e, "execution record id"))?;
        }
        tx.commit().await.map_err(StoreError::query)?;
        Ok(())
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        // Built per call so an absent filter adds no clause and the indexes stay usable.
        let mut select = QueryBuilder::<Sqlite>::new(
            "SELECT id, execution_id, user_id, tool_name, toolkit, tool_version, source, \
             status, error_kind, duration_ms, started_at_ms, finished_at_ms FROM executions \
             WHERE 1 = 1",
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
}
