//! The shared backend: PostgreSQL, for several replicas behind one database.
//!
//! Migrations run under sqlx's advisory lock, so replicas starting together apply them once.
//! Tables live in the connection's `search_path` (a URL may set it with
//! `?options=-csearch_path%3Dname`).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult, Postgres};

use super::sql::{Dialect, SqlStore};
use super::{ExecutionRecord, StoreError};

/// Embedded migrations; their checksums are checked on every start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const MAX_CONNECTIONS: u32 = 10;
/// How long a request waits for a pooled connection (and `open` for the first one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL store: every query but the execution log's is in `sql.rs`; this file
/// connects and migrates.
pub type PostgresStore = SqlStore<Postgres>;

#[async_trait]
impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const BEGIN_WRITE: Option<&'static str> = None;
    const PRUNE_EXECUTIONS: &'static str = "DELETE FROM executions WHERE id IN \
         (SELECT id FROM executions WHERE started_at_ms < $1 ORDER BY started_at_ms LIMIT $2)";

    type State = ();

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn insert_executions(
        store: &PostgresStore,
        records: &[ExecutionRecord],
    ) -> Result<(), StoreError> {
        // One statement for any batch size, so it stays prepared: each column goes as one
        // array and UNNEST turns the arrays back into rows. Atomic by itself.
        let column = |f: fn(&ExecutionRecord) -> &str| records.iter().map(f).collect::<Vec<_>>();
        let optional =
            |f: fn(&ExecutionRecord) -> Option<&str>| records.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO executions (id, execution_id, user_id, tool_name, toolkit, \
             tool_version, source, status, error_kind, duration_ms, started_at_ms, \
             finished_at_ms) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::float8[], $11::int8[], \
             $12::int8[])",
        )
        .bind(column(|r| &r.id))
        .bind(column(|r| &r.execution_id))
        .bind(optional(|r| r.user_id.as_deref()))
        .bind(column(|r| &r.tool_name))
        .bind(column(|r| &r.toolkit))
        .bind(optional(|r| r.tool_version.as_deref()))
        .bind(column(|r| &r.source))
        .bind(column(|r| &r.status))
        .bind(optional(|r| r.error_kind.as_deref()))
        .bind(records.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.started_at_ms).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.finished_at_ms).collect::<Vec<_>>())
        .execute(&store.pool)
        .await
        .map_err(|e| StoreError::conflict_or_query(e, "execution record id"))?;
        Ok(())
    }
}

impl PostgresStore {
    /// Connects to `url` and applies migrations. Errors never repeat the URL's password.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let fail =
            |e: &dyn std::fmt::Display| StoreError::Open(scrub(&format!("{shown}: {e}"), url));
        let options: PgConnectOptions = url.parse().map_err(|e| fail(&e))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| fail(&e))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(scrub(&e.to_string(), url)))?;
        Ok(Self { pool, state: () })
    }
}

/// `url` with any password (in the user info or a `password=` parameter) replaced by `***`,
/// fit for messages and logs. A string that is not a URL is not echoed at all.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<connection string>".into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Removes the URL's password, raw or percent-decoded, from a driver message, in case a
/// driver ever echoes it.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.to_owned();
    for secret in passwords_in(url) {
        if !secret.is_empty() {
            out = out.replace(&secret, "***");
        }
    }
    out
}

fn passwords_in(url: &str) -> Vec<String> {
    let mut raw = Vec::new();
    if let Some((_, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            raw.push(password.to_owned());
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some((k, v)) = pair.split_once('=')
                && k.eq_ignore_ascii_case("password")
            {
                raw.push(v.to_owned());
            }
        }
    }
    let decoded: Vec<String> = raw.iter().map(|p| percent_decode(p)).collect();
    // Longest first, so a decoded form containing the raw form is removed whole.
    let mut all: Vec<String> = raw.into_iter().chain(decoded).collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    all
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_url_hides_the_password_in_user_info_and_parameters() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db:5432/sb?sslmode=require&password=x"),
            "postgres://app:***@db:5432/sb?sslmode=require&password=***"
        );
        assert_eq!(redact_url("postgres://app@db/sb"), "postgres://app@db/sb");
        assert_eq!(redact_url("host=db password=x"), "<connection string>");
    }

    #[test]
    fn scrub_removes_raw_and_decoded_passwords_from_messages() {
        let url = "postgres://app:s3cr%40t@db/sb";
        assert_eq!(scrub("bad s3cr@t and s3cr%40t", url), "bad *** and ***");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_open_error_without_the_password() {
        // Port 1 on loopback refuses at once; nothing listens there.
        let err = PostgresStore::open("postgres://app:hunter2@127.0.0.1:1/sb")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("could not open the store: postgres://app:***@127.0.0.1:1/sb"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}
