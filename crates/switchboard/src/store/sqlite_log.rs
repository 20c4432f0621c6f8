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
//! The handle comes from sqlx's [`LockedSqliteHandle`](sqlx::sqlite::LockedSqliteHandle):
//! sqlx's own thread for the connection waits while it is held, so nothing else uses the
//! connection meanwhile, and the transaction is over before it is given back.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::{self, NonNull};

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

/// Writes `records` in one transaction: all of them, or none (a duplicate id is
/// [`StoreError::Conflict`]).
pub(super) fn insert(
    db: NonNull<ffi::sqlite3>,
    records: &[ExecutionRecord],
) -> Result<(), StoreError> {
    let db = Connection(db);
    db.exec(c"BEGIN IMMEDIATE")?;
    let written = insert_each(&db, records).and_then(|()| db.exec(c"COMMIT"));
    if written.is_err() {
        // Best effort: a failed COMMIT leaves the transaction open, and the connection
        // goes back to the pool either way.
        let _ = db.exec(c"ROLLBACK");
    }
    written
}

fn insert_each(db: &Connection, records: &[ExecutionRecord]) -> Result<(), StoreError> {
    let mut full = None;
    for (n, chunk) in records.chunks(ROWS_PER_STATEMENT).enumerate() {
        if n > 0 {
            std::thread::yield_now();
        }
        let last;
        let statement = if chunk.len() == ROWS_PER_STATEMENT {
            match &mut full {
                Some(statement) => &*statement,
                None => full.insert(db.prepare(&insert_sql(ROWS_PER_STATEMENT))?),
            }
        } else {
            last = db.prepare(&insert_sql(chunk.len()))?;
            &last
        };
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

/// A connection handle, borrowed for one batch.
struct Connection(NonNull<ffi::sqlite3>);

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
    /// the statement, and binds all parameters before each step.
    fn text(&self, db: &Connection, index: c_int, value: Option<&str>) -> Result<(), StoreError> {
        // SAFETY: the statement is live; for text, the pointer and length describe a
        // valid UTF-8 string that outlives the statement (see above), and SQLITE_STATIC
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

    /// Steps an INSERT to its end and resets it for the next rows.
    fn run(&self, db: &Connection) -> Result<(), StoreError> {
        // SAFETY: the statement is live and all its parameters are bound.
        let rc = unsafe { ffi::sqlite3_step(self.0.as_ptr()) };
        let stepped = db.check(rc);
        // SAFETY: as above. A failed step's code is also returned by reset; `stepped`
        // already holds it, with the message read before reset could change it.
        unsafe { ffi::sqlite3_reset(self.0.as_ptr()) };
        stepped
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on a connection still open (the lock is
        // held for the whole batch) and is finalized exactly once.
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}
