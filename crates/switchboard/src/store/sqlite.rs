//! The embedded backend: one SQLite file in WAL mode, for a single replica.
//!
//! SQLite allows one writer at a time; `busy_timeout` makes a second writer wait for the
//! first instead of failing, and write transactions start `IMMEDIATE` so they take the write
//! lock up front rather than failing on upgrade.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};

use super::sql::{Dialect, SqlStore};
use super::sqlite_log::{self, LogWriter};
use super::{ExecutionRecord, StoreError};

/// Embedded migrations; their checksums are checked on every start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for the lock held by another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Readers run in parallel under WAL; writes serialise on SQLite's lock anyway.
const MAX_CONNECTIONS: u32 = 8;

/// The SQLite store: every query is in `sql.rs`; this file opens the database and keeps
/// the execution log's fast path.
pub type SqliteStore = SqlStore<Sqlite>;

/// Where the execution log writes, beside the pool.
pub struct ExecutionLog {
    /// The database file, where the execution log opens its own connection; `None` for
    /// an in-memory database, whose one connection the log borrows from the pool.
    path: Option<PathBuf>,
    /// The execution log's connection, opened with the first batch (`sqlite_log`).
    writer: Mutex<Option<LogWriter>>,
}

#[async_trait]
impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");
    const PRUNE_EXECUTIONS: &'static str = "DELETE FROM executions WHERE rowid IN \
         (SELECT rowid FROM executions WHERE started_at_ms < $1 ORDER BY started_at_ms \
         LIMIT $2)";

    type State = ExecutionLog;

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn insert_executions(
        store: &SqliteStore,
        records: &[ExecutionRecord],
    ) -> Result<(), StoreError> {
        if let Some(path) = &store.state.path {
            return store.insert_on_log_writer(path, records);
        }
        let mut conn = store.pool.acquire().await.map_err(StoreError::query)?;
        let mut handle = conn.lock_handle().await.map_err(StoreError::query)?;
        sqlite_log::insert_borrowed(handle.as_raw_handle(), records)
    }

    async fn scrub_old_copies(store: &SqliteStore) -> Result<(), StoreError> {
        // The WAL still holds the pages as they were before the rewrite: copy the current
        // pages into the database file and empty the log.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&store.pool)
            .await
            .map_err(StoreError::query)?;
        Ok(())
    }
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
            // Without a limit the WAL file keeps its high-water size (70+ MiB after 10,000
            // session inserts in the bench); past 32 MiB it is truncated at each checkpoint.
            .pragma("journal_size_limit", "33554432")
            // A deleted or rewritten row's bytes are zeroed in the pages SQLite writes anyway
            // (no extra I/O): a secret sealed in place leaves no plaintext in free space.
            .pragma("secure_delete", "fast")
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        Self::migrated(pool, Some(path.to_path_buf())).await
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
        Self::migrated(pool, None).await
    }

    async fn migrated(pool: SqlitePool, path: Option<PathBuf>) -> Result<Self, StoreError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Self {
            pool,
            state: ExecutionLog {
                path,
                writer: Mutex::new(None),
            },
        })
    }

    /// One batch on the log's own connection. After a failure other than a duplicate id
    /// the connection is closed, and the next batch opens a fresh one.
    fn insert_on_log_writer(
        &self,
        path: &Path,
        records: &[ExecutionRecord],
    ) -> Result<(), StoreError> {
        // Only the log's writer task writes batches, so the lock is never contended.
        let mut slot = match self.state.writer.lock() {
            Ok(slot) => slot,
            Err(poisoned) => {
                // A panic mid-batch may have left a transaction open on the connection:
                // closing it rolls that back, and the batch starts on a fresh one.
                let mut slot = poisoned.into_inner();
                *slot = None;
                self.state.writer.clear_poison();
                slot
            }
        };
        let writer = match slot.as_mut() {
            Some(writer) => writer,
            None => slot.insert(LogWriter::open(path, BUSY_TIMEOUT)?),
        };
        let written = writer.insert(records);
        if matches!(written, Err(ref e) if !matches!(e, StoreError::Conflict(_))) {
            *slot = None;
        }
        written
    }
}
