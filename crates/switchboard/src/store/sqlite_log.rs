//! The execution log's bulk INSERT, on SQLite's own handle.
//!
//! Not through sqlx: its binding wraps every string in an `Arc`, has SQLite copy it
//! (`SQLITE_TRANSIENT`), looks up each parameter's name and clears the bindings after
//! every statement (callgrind: ~23.5k instructions a record through sqlx, ~14.6k here,
//! most of it SQLite's own `step`). Here each value is bound in place (`SQLITE_STATIC`) to
//! a prepared multi-row INSERT, in one transaction per batch. Multi-row, since one
//! statement keeps its b-tree cursors at the end of each index between rows: one-row
//! statements stepped per record seek every index from its root and cost 70 % more in
//! SQLite.
//!
//! A file database gets a connection of its own for the log ([`LogWriter`]), which keeps
//! its INSERTs prepared from batch to batch: preparing a 50-row INSERT parses 600
//! parameters, ~550k instructions, which was ~1.1k a record in 500-record batches and
//! ~5.5k in 100-record ones. Batches are cut into INSERTs of 50 rows and the rest into
//! powers of two (32, 16, …, 1), so seven statements serve every batch size.
//!
//! An in-memory database has a single connection, sqlx's: there the handle is borrowed
//! from sqlx's [`LockedSqliteHandle`](sqlx::sqlite::LockedSqliteHandle) for one batch
//! (sqlx's own thread for it waits meanwhile), and the statements are finalized before it
//! is given back.

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::time::Duration;

use libsqlite3_sys as ffi;

use super::{ExecutionRecord, StoreError};

/// Rows per INSERT statement. Between two statements the writer offers the CPU to other
/// threads: one 500-row statement held a CPU for over a millisecond, and the calls queued
/// behind it on that CPU waited (BENCHMARKS.md, eighth pass).
const ROWS_PER_STATEMENT: usize = 50;

const COLUMNS: usize = 12;

/// `INSERT INTO executions (…) VALUES (?, …), …` for `rows` rows.
fn insert_sql(rows: usize) -> CString {
    let row = format!("({})", ["?"; COLUMNS].join(", "));
    let sql = format!(
        "INSERT INTO executions (id, execution_id, user_id, tool_name, toolkit, tool_version, \
         source, status, error_kind, duration_ms, started_at_ms, finished_at_ms) VALUES {}",
        vec![row.as_str(); rows].join(", ")
    );
    // Built from literals alone: no NUL inside.
    CString::new(sql).unwrap_or_default()
}

/// The row counts of the INSERTs `records` rows are written with: full statements, then
/// the rest by its binary digits, largest first (123 → 50, 50, 16, 4, 2, 1).
fn chunk_sizes(records: usize) -> impl Iterator<Item = usize> {
    let full = records / ROWS_PER_STATEMENT;
    let rest = records % ROWS_PER_STATEMENT;
    let powers = (0..usize::BITS)
        .rev()
        .map(|bit| 1usize << bit)
        .filter(move |power| rest & power != 0);
    std::iter::repeat_n(ROWS_PER_STATEMENT, full).chain(powers)
}

/// The log's own connection to a database file, with its INSERTs kept prepared.
pub(super) struct LogWriter {
    /// Dropped (finalized) before the connection is closed: see `Drop`.
    statements: Prepared,
    db: Connection,
}

// SAFETY: the connection is opened with SQLITE_OPEN_NOMUTEX, SQLite's multi-thread mode:
// any thread may use it, one at a time. A `LogWriter` is only reached through `&mut`
// (the store keeps it behind a mutex), so no two threads use it at once.
unsafe impl Send for LogWriter {}

impl LogWriter {
    /// Opens the (already migrated) database at `path` with the pool's settings for
    /// writers: lock wait, durability, WAL size limit.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let name = path
            .to_str()
            .and_then(|p| CString::new(p).ok())
            .ok_or_else(|| {
                StoreError::Open(format!("{}: not a usable file name", path.display()))
            })?;
        let mut raw = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `raw` receives a handle (even on failure, when it
        // must still be closed, which `Connection`'s drop does).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                name.as_ptr(),
                &mut raw,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let db = NonNull::new(raw)
            .map(Connection)
            .ok_or_else(|| StoreError::Open(format!("{}: out of memory", path.display())))?;
        db.check(rc)
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        let wait_ms = c_int::try_from(busy_timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: the handle is open and ours.
        db.check(unsafe { ffi::sqlite3_busy_timeout(db.0.as_ptr(), wait_ms) })?;
        db.exec(c"PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 33554432")?;
        Ok(Self {
            statements: Prepared::default(),
            db,
        })
    }

    /// Writes `records` in one transaction: all of them, or none (a duplicate id is
    /// [`StoreError::Conflict`]).
    pub fn insert(&mut self, records: &[ExecutionRecord]) -> Result<(), StoreError> {
        in_transaction(&self.db, &mut self.statements, records)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // sqlite3_close refuses to close a connection with statements left.
        self.statements.0.clear();
    }
}

/// Writes `records` in one transaction on a handle borrowed from sqlx for this batch only.
pub(super) fn insert_borrowed(
    db: NonNull<ffi::sqlite3>,
    records: &[ExecutionRecord],
) -> Result<(), StoreError> {
    // Not ours to close: `ManuallyDrop` keeps `Connection`'s drop from closing it, and the
    // statements (declared after it, so dropped first) are finalized before it goes back.
    let db = std::mem::ManuallyDrop::new(Connection(db));
    let mut statements = Prepared::default();
    in_transaction(&db, &mut statements, records)
}

fn in_transaction(
    db: &Connection,
    statements: &mut Prepared,
    records: &[ExecutionRecord],
) -> Result<(), StoreError> {
    db.exec(c"BEGIN IMMEDIATE")?;
    let written = insert_each(db, statements, records).and_then(|()| db.exec(c"COMMIT"));
    if written.is_err() {
        // Best effort: a failed COMMIT leaves the transaction open, and the connection
        // is used again either way.
        let _ = db.exec(c"ROLLBACK");
    }
    written
}

fn insert_each(
    db: &Connection,
    statements: &mut Prepared,
    records: &[ExecutionRecord],
) -> Result<(), StoreError> {
    let mut rest = records;
    for (n, rows) in chunk_sizes(records.len()).enumerate() {
        if n > 0 {
            std::thread::yield_now();
        }
        let (chunk, after) = rest.split_at(rows);
        rest = after;
        let statement = statements.get(db, rows)?;
        let mut index = 0;
        let mut next = || {
            index += 1;
            index
        };
        for r in chunk {
            statement.text(db, next(), Some(&r.id))?;
            statement.text(db, next(), Some(&r.execution_id))?;
            statement.text(db, next(), r.user_id.as_deref())?;
            statement.text(db, next(), Some(&r.tool_name))?;
            statement.text(db, next(), Some(&r.toolkit))?;
            statement.text(db, next(), r.tool_version.as_deref())?;
            statement.text(db, next(), Some(&r.source))?;
            statement.text(db, next(), Some(&r.status))?;
            statement.text(db, next(), r.error_kind.as_deref())?;
            statement.double(db, next(), r.duration_ms)?;
            statement.int64(db, next(), r.started_at_ms)?;
            statement.int64(db, next(), r.finished_at_ms)?;
        }
        statement.run(db)?;
    }
    Ok(())
}

/// INSERT statements by row count, prepared on first use.
#[derive(Default)]
struct Prepared(Vec<(usize, Statement)>);

impl Prepared {
    fn get(&mut self, db: &Connection, rows: usize) -> Result<&Statement, StoreError> {
        let at = match self.0.iter().position(|(n, _)| *n == rows) {
            Some(at) => at,
            None => {
                self.0.push((rows, db.prepare(&insert_sql(rows))?));
                self.0.len() - 1
            }
        };
        Ok(&self.0[at].1)
    }
}

/// A connection handle; closed on drop when it is the log's own.
struct Connection(NonNull<ffi::sqlite3>);

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: only a handle this module opened is dropped (a borrowed one is kept in
        // `ManuallyDrop`), once, after its statements were finalized.
        unsafe { ffi::sqlite3_close(self.0.as_ptr()) };
    }
}

impl Connection {
    fn exec(&self, sql: &CStr) -> Result<(), StoreError> {
        // SAFETY: the handle is open and ours while the lock is held; `sql` is a
        // NUL-terminated string, and no callback or error buffer is passed.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.0.as_ptr(),
                sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        self.check(rc)
    }

    fn prepare(&self, sql: &CStr) -> Result<Statement, StoreError> {
        let mut raw = ptr::null_mut();
        // SAFETY: as in `exec`; `raw` receives the statement, finalized by `Statement`'s
        // drop. `-1`: read `sql` up to its NUL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(self.0.as_ptr(), sql.as_ptr(), -1, &mut raw, ptr::null_mut())
        };
        self.check(rc)?;
        NonNull::new(raw)
            .map(Statement)
            .ok_or_else(|| StoreError::Query("SQLite prepared no statement".into()))
    }

    /// `rc` as a result, with SQLite's message for the connection's last error (it names
    /// the constraint or the failure, never a bound value).
    fn check(&self, rc: c_int) -> Result<(), StoreError> {
        if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_DONE {
            return Ok(());
        }
        // SAFETY: the handle is open; SQLite keeps the message until the next call on
        // this connection, and it is copied before that.
        let (extended, message) = unsafe {
            let db = self.0.as_ptr();
            let message = ffi::sqlite3_errmsg(db);
            let message = if message.is_null() {
                String::from("unknown SQLite error")
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            };
            (ffi::sqlite3_extended_errcode(db), message)
        };
        match extended {
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_UNIQUE => {
                Err(StoreError::Conflict("execution record id".into()))
            }
            _ => Err(StoreError::Query(message)),
        }
    }
}

/// A prepared statement, finalized on drop.
struct Statement(NonNull<ffi::sqlite3_stmt>);

impl Statement {
    /// Binds `value` in place, or NULL. SQLite reads the bytes when the statement steps,
    /// so they must stay put until then: every caller binds from a record that outlives
    /// the step, binds all parameters before each step, and `run` clears them after.
    fn text(&self, db: &Connection, index: c_int, value: Option<&str>) -> Result<(), StoreError> {
        // SAFETY: the statement is live; for text, the pointer and length describe a
        // valid UTF-8 string that outlives the step (see above), and SQLITE_STATIC
        // tells SQLite not to free it.
        let rc = unsafe {
            match value {
                Some(text) => ffi::sqlite3_bind_text64(
                    self.0.as_ptr(),
                    index,
                    text.as_ptr().cast::<c_char>(),
                    text.len() as u64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                None => ffi::sqlite3_bind_null(self.0.as_ptr(), index),
            }
        };
        db.check(rc)
    }

    fn double(&self, db: &Connection, index: c_int, value: f64) -> Result<(), StoreError> {
        // SAFETY: the statement is live; a double is copied.
        db.check(unsafe { ffi::sqlite3_bind_double(self.0.as_ptr(), index, value) })
    }

    fn int64(&self, db: &Connection, index: c_int, value: i64) -> Result<(), StoreError> {
        // SAFETY: the statement is live; an integer is copied.
        db.check(unsafe { ffi::sqlite3_bind_int64(self.0.as_ptr(), index, value) })
    }

    /// Steps an INSERT to its end and resets it for the next rows. Its bindings are
    /// cleared too: they point into records the caller is about to free, and a statement
    /// kept prepared outlives them.
    fn run(&self, db: &Connection) -> Result<(), StoreError> {
        // SAFETY: the statement is live and all its parameters are bound.
        let rc = unsafe { ffi::sqlite3_step(self.0.as_ptr()) };
        let stepped = db.check(rc);
        // SAFETY: as above. A failed step's code is also returned by reset; `stepped`
        // already holds it, with the message read before reset could change it.
        unsafe {
            ffi::sqlite3_reset(self.0.as_ptr());
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
        }
        stepped
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on a connection still open (a borrowed one
        // is held for the whole batch, the log's own is closed after its statements) and
        // is finalized exactly once.
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ExecutionFilter, SqliteStore, Store, sample_execution};

    #[test]
    fn every_batch_size_is_cut_into_the_seven_kept_statements() {
        for records in 0..=1200 {
            let sizes: Vec<_> = chunk_sizes(records).collect();
            assert_eq!(sizes.iter().sum::<usize>(), records, "{records}");
            assert!(
                sizes.iter().all(|s| [50, 32, 16, 8, 4, 2, 1].contains(s)),
                "{records}: {sizes:?}"
            );
            // Full statements first, then each smaller one at most once.
            let rest = &sizes[records / ROWS_PER_STATEMENT..];
            assert!(rest.windows(2).all(|w| w[0] > w[1]), "{records}: {sizes:?}");
        }
        assert_eq!(chunk_sizes(123).collect::<Vec<_>>(), [50, 50, 16, 4, 2, 1]);
    }

    /// An in-memory database has one connection, sqlx's: the log borrows it per batch and
    /// finalizes its statements before giving it back, so sqlx can go on using (and, at
    /// the end, close) it.
    #[tokio::test]
    async fn an_in_memory_store_writes_batches_on_the_borrowed_connection() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let record = |n: i64| sample_execution(&format!("e{n:04}"), n);
        let first: Vec<_> = (0..123).map(record).collect();
        let second: Vec<_> = (123..130).map(record).collect();
        store.insert_executions(&first).await.unwrap();
        store.insert_executions(&second).await.unwrap();
        let listed = store
            .list_executions(&ExecutionFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 130);
        assert_eq!(listed[0], second[6]);
        assert_eq!(listed[129], first[0]);
    }

    /// Another connection holding SQLite's write lock past the wait makes a batch fail
    /// whole; once the lock is free the same writer, with its statements kept, writes the
    /// next batch, and nothing of the failed one ever lands.
    #[tokio::test]
    async fn a_batch_refused_by_a_held_lock_fails_whole_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sb.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut writer = LogWriter::open(&path, Duration::from_millis(50)).unwrap();
        writer.insert(&[sample_execution("before", 1)]).unwrap();

        let holder = LogWriter::open(&path, Duration::from_millis(50)).unwrap();
        holder.db.exec(c"BEGIN IMMEDIATE").unwrap();
        let refused: Vec<_> = (0..60)
            .map(|n| sample_execution(&format!("refused{n:02}"), 10 + n))
            .collect();
        let err = writer.insert(&refused).unwrap_err();
        assert!(
            matches!(&err, StoreError::Query(m) if m.contains("locked")),
            "{err:?}"
        );
        holder.db.exec(c"ROLLBACK").unwrap();

        writer.insert(&[sample_execution("after", 100)]).unwrap();
        let listed = store
            .list_executions(&ExecutionFilter::default())
            .await
            .unwrap();
        let ids: Vec<_> = listed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["after", "before"]);
    }

    #[test]
    fn a_missing_database_file_is_an_open_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        let err = LogWriter::open(&path, Duration::from_millis(50))
            .err()
            .expect("no file to open");
        assert!(
            matches!(&err, StoreError::Open(m) if m.contains("absent.db")),
            "{err:?}"
        );
        assert!(
            !path.exists(),
            "the log's writer must not create a database"
        );
    }
}
