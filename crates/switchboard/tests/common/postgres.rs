//! A fresh PostgreSQL schema per test, from `SWITCHBOARD_TEST_POSTGRES_URL`. Without that
//! variable, or with the server unreachable, a test skips with a note, unless `CI` is set:
//! then it fails.

use std::future::Future;

use sqlx::{Connection, PgConnection};
use switchboard::store::redact_url;

pub const PG_URL_VAR: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

/// A schema of the test's own, made through an admin connection that drops it again.
pub struct TestSchema {
    pub admin: PgConnection,
    pub name: String,
    /// The server's URL with `search_path` set to the schema.
    pub url: String,
}

impl TestSchema {
    /// Creates `<prefix>_<uuid>`; `None` (after a note) when the test should skip.
    pub async fn create(prefix: &str) -> Option<TestSchema> {
        let in_ci = std::env::var_os("CI").is_some();
        let Some(url) = std::env::var(PG_URL_VAR).ok().filter(|u| !u.is_empty()) else {
            assert!(
                !in_ci,
                "{PG_URL_VAR} is not set, and CI is: the PostgreSQL tests must run in CI"
            );
            eprintln!(
                "skipped: {PG_URL_VAR} is not set (set it, e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            return None;
        };
        let mut admin = match PgConnection::connect(&url).await {
            Ok(conn) => conn,
            Err(e) => {
                let msg = format!("PostgreSQL at {} is unreachable: {e}", redact_url(&url));
                assert!(
                    !in_ci,
                    "{msg} (CI is set, so this fails instead of skipping)"
                );
                eprintln!("skipped: {msg}");
                return None;
            }
        };
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}options=-csearch_path%3D{name}");
        Some(TestSchema { admin, name, url })
    }

    /// Runs `body` as its own task, drops the schema (also when the body panics), then
    /// passes on the body's panic.
    pub async fn run<Fut>(self, body: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(body).await;
        self.drop().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    /// Drops the schema and everything in it.
    pub async fn drop(mut self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .unwrap();
    }
}

/// Runs `body` with a URL whose `search_path` is a fresh schema named `<prefix>_<uuid>`,
/// dropped afterwards (also when the body panics: it runs as its own task).
pub async fn with_postgres<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = TestSchema::create(prefix).await else {
        return;
    };
    let body = body(schema.url.clone());
    schema.run(body).await;
}
