//! The shared backend: PostgreSQL, for several replicas behind one database.
//!
//! Migrations run under sqlx's advisory lock, so replicas starting together apply them once.
//! Tables live in the connection's `search_path` (a URL may set it with
//! `?options=-csearch_path%3Dname`).

use std::time::Duration;

use sqlx::QueryBuilder;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};

use super::*;

/// Embedded migrations; their checksums are checked on every start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const MAX_CONNECTIONS: u32 = 10;
/// How long a request waits for a pooled connection (and `open` for the first one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per multi-row INSERT, well under PostgreSQL's 65535 bound parameters (12 per row).
const INSERT_CHUNK: usize = 1000;

pub struct PostgresStore {
    pool: PgPool,
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

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        if self
            .revoke_where(
                "UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
                id_or_name,
                at_ms,
            )
            .await?
        {
            return Ok(true);
        }
        self.revoke_where(
            "UPDATE api_keys SET revoked_at_ms = $1 WHERE name = $2 AND revoked_at_ms IS NULL",
            id_or_name,
            at_ms,
        )
        .await
    }

    async fn insert_executions(&self, records: &[ExecutionRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::query)?;
        for chunk in records.chunks(INSERT_CHUNK) {
            let mut insert = QueryBuilder::<Postgres>::new(
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
        let mut select = QueryBuilder::<Postgres>::new(
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
