//! The store behaviour suite: one set of bodies, each run against SQLite and PostgreSQL
//! (`sqlite::<behaviour>` and `postgres::<behaviour>`).
//!
//! PostgreSQL comes from `SWITCHBOARD_TEST_POSTGRES_URL`; each test gets a fresh schema,
//! dropped at the end. Without that variable, or with the server unreachable, the PostgreSQL
//! tests skip with a note, unless `CI` is set: then they fail.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{Connection, PgConnection};
use switchboard::store::{
    ApiKeyRecord, ExecutionFilter, ExecutionRecord, PostgresStore, SqliteStore, Store, StoreError,
    redact_url,
};

const PG_URL_VAR: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

/// What a behaviour body gets: the open store, and the means to open it again.
struct Backend {
    store: Arc<dyn Store>,
    target: Target,
}

#[derive(Clone)]
enum Target {
    Sqlite(PathBuf),
    /// A URL whose `search_path` is the test's own schema.
    Postgres(String),
}

impl Backend {
    /// Opens the same database again, as a restart (or a second replica) would.
    async fn reopen(&self) -> Arc<dyn Store> {
        match &self.target {
            Target::Sqlite(path) => Arc::new(SqliteStore::open(path).await.unwrap()),
            Target::Postgres(url) => Arc::new(PostgresStore::open(url).await.unwrap()),
        }
    }
}

async fn run_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    // A missing parent directory is created by `open`.
    let path = dir.path().join("data").join("switchboard.db");
    let store = SqliteStore::open(&path).await.unwrap();
    body(Backend {
        store: Arc::new(store),
        target: Target::Sqlite(path),
    })
    .await;
}

async fn run_postgres<F, Fut>(body: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let in_ci = std::env::var_os("CI").is_some();
    let Some(url) = std::env::var(PG_URL_VAR).ok().filter(|u| !u.is_empty()) else {
        assert!(
            !in_ci,
            "{PG_URL_VAR} is not set, and CI is: the PostgreSQL store suite must run in CI"
        );
        eprintln!(
            "skipped: {PG_URL_VAR} is not set (set it, e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        return;
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
            return;
        }
    };

    let schema = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let schema_url = format!("{url}{sep}options=-csearch_path%3D{schema}");

    let store = PostgresStore::open(&schema_url).await.unwrap();
    let in_schema: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 \
         AND table_name IN ('api_keys', 'executions', '_sqlx_migrations')",
    )
    .bind(&schema)
    .fetch_one(&mut admin)
    .await
    .unwrap();

    // Run the body as its own task so the schema is dropped even when it panics.
    let outcome = if in_schema == 3 {
        let backend = Backend {
            store: Arc::new(store),
            target: Target::Postgres(schema_url),
        };
        tokio::spawn(body(backend)).await
    } else {
        Ok(())
    };
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        in_schema, 3,
        "migrations did not land in the test's schema {schema}"
    );
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares each behaviour once per backend: `sqlite::<name>` and `postgres::<name>`.
macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run_sqlite(crate::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run_postgres(crate::$name).await;
                }
            )*
        }
    };
}

behaviours!(
    backend_names_itself_and_answers_ping,
    api_key_lookup_finds_active_keys_only,
    api_keys_are_listed_oldest_first_with_revoked_ones,
    a_duplicate_active_key_name_is_a_conflict,
    a_key_name_is_reusable_after_revoke,
    keys_are_revoked_by_name_and_by_id_once,
    revoking_an_unknown_key_returns_false,
    revoking_by_id_wins_over_a_key_named_like_that_id,
    an_execution_batch_lands_and_lists_newest_first_with_filters,
    the_execution_list_limit_defaults_to_100_and_caps_at_1000,
    a_batch_with_a_bad_record_writes_nothing,
    reopening_keeps_data_and_applies_migrations_once,
    concurrent_execution_inserts_from_20_tasks_all_land,
);

fn key(id: &str, name: &str, created_at_ms: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        name: name.into(),
        key_hash: format!("hash-of-{id}"),
        hint: format!("sb_{id}"),
        created_at_ms,
        revoked_at_ms: None,
    }
}

fn execution(id: &str, user: Option<&str>, tool: &str, started_at_ms: i64) -> ExecutionRecord {
    let toolkit = tool.split('.').next().unwrap_or(tool);
    ExecutionRecord {
        id: id.into(),
        execution_id: format!("exec-{id}"),
        user_id: user.map(Into::into),
        tool_name: tool.into(),
        toolkit: toolkit.into(),
        tool_version: (started_at_ms % 2 == 0).then(|| "1.2.0".into()),
        source: "builtin".into(),
        status: if started_at_ms % 3 == 0 {
            "failed".into()
        } else {
            "success".into()
        },
        error_kind: (started_at_ms % 3 == 0).then(|| "TOOL_RUNTIME_FATAL".into()),
        duration_ms: 1.25 + started_at_ms as f64 / 8.0,
        started_at_ms,
        finished_at_ms: started_at_ms + 2,
    }
}

fn ids(records: &[ExecutionRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

async fn backend_names_itself_and_answers_ping(b: Backend) {
    assert!(matches!(b.store.backend(), "sqlite" | "postgres"));
    b.store.ping().await.unwrap();
}

async fn api_key_lookup_finds_active_keys_only(b: Backend) {
    let store = b.store;
    store.insert_api_key(&key("k1", "ci", 1)).await.unwrap();
    store.insert_api_key(&key("k2", "laptop", 2)).await.unwrap();

    assert_eq!(
        store.find_active_api_key("hash-of-k1").await.unwrap(),
        Some(key("k1", "ci", 1))
    );
    assert_eq!(
        store.find_active_api_key("no-such-hash").await.unwrap(),
        None
    );

    assert!(store.revoke_api_key("k1", 10).await.unwrap());
    assert_eq!(store.find_active_api_key("hash-of-k1").await.unwrap(), None);
    assert_eq!(
        store.find_active_api_key("hash-of-k2").await.unwrap(),
        Some(key("k2", "laptop", 2))
    );
}

async fn api_keys_are_listed_oldest_first_with_revoked_ones(b: Backend) {
    let store = b.store;
    store.insert_api_key(&key("k3", "third", 30)).await.unwrap();
    store.insert_api_key(&key("k1", "first", 10)).await.unwrap();
    store
        .insert_api_key(&key("k2", "second", 20))
        .await
        .unwrap();
    assert!(store.revoke_api_key("k2", 25).await.unwrap());

    let listed = store.list_api_keys().await.unwrap();
    let revoked = ApiKeyRecord {
        revoked_at_ms: Some(25),
        ..key("k2", "second", 20)
    };
    assert_eq!(
        listed,
        vec![key("k1", "first", 10), revoked, key("k3", "third", 30)]
    );
}

async fn a_duplicate_active_key_name_is_a_conflict(b: Backend) {
    let store = b.store;
    store.insert_api_key(&key("k1", "ci", 1)).await.unwrap();
    let err = store.insert_api_key(&key("k2", "ci", 2)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(field) if field == "api key name"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "api key name already exists");
    assert_eq!(store.list_api_keys().await.unwrap().len(), 1);
}

async fn a_key_name_is_reusable_after_revoke(b: Backend) {
    let store = b.store;
    store.insert_api_key(&key("k1", "ci", 1)).await.unwrap();
    assert!(store.revoke_api_key("ci", 5).await.unwrap());
    store.insert_api_key(&key("k2", "ci", 6)).await.unwrap();

    assert_eq!(
        store.find_active_api_key("hash-of-k2").await.unwrap(),
        Some(key("k2", "ci", 6))
    );
    // Only one of the two may be active: a third key with the name still conflicts.
    let err = store.insert_api_key(&key("k3", "ci", 7)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn keys_are_revoked_by_name_and_by_id_once(b: Backend) {
    let store = b.store;
    store
        .insert_api_key(&key("k1", "by-name", 1))
        .await
        .unwrap();
    store.insert_api_key(&key("k2", "by-id", 2)).await.unwrap();

    assert!(store.revoke_api_key("by-name", 10).await.unwrap());
    assert!(store.revoke_api_key("k2", 11).await.unwrap());
    // Already revoked: nothing active answers to either handle any more.
    assert!(!store.revoke_api_key("by-name", 12).await.unwrap());
    assert!(!store.revoke_api_key("k2", 12).await.unwrap());

    let revoked: Vec<_> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.revoked_at_ms)
        .collect();
    assert_eq!(revoked, vec![Some(10), Some(11)]);
}

async fn revoking_an_unknown_key_returns_false(b: Backend) {
    let store = b.store;
    store.insert_api_key(&key("k1", "ci", 1)).await.unwrap();
    assert!(!store.revoke_api_key("nobody", 5).await.unwrap());
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        vec![key("k1", "ci", 1)]
    );
}

async fn revoking_by_id_wins_over_a_key_named_like_that_id(b: Backend) {
    let store = b.store;
    store.insert_api_key(&key("k1", "first", 1)).await.unwrap();
    store.insert_api_key(&key("k2", "k1", 2)).await.unwrap();

    assert!(store.revoke_api_key("k1", 5).await.unwrap());
    assert_eq!(store.find_active_api_key("hash-of-k1").await.unwrap(), None);
    assert!(
        store
            .find_active_api_key("hash-of-k2")
            .await
            .unwrap()
            .is_some()
    );
    // With the id gone, the same handle now names the other key.
    assert!(store.revoke_api_key("k1", 6).await.unwrap());
    assert_eq!(store.find_active_api_key("hash-of-k2").await.unwrap(), None);
}

async fn an_execution_batch_lands_and_lists_newest_first_with_filters(b: Backend) {
    let store = b.store;
    let batch = vec![
        execution("e1", Some("alice"), "Math.Add", 100),
        execution("e2", Some("bob"), "Math.Add", 300),
        execution("e3", Some("alice"), "Text.Upper", 200),
        execution("e4", None, "Math.Add", 400),
        execution("e5", Some("alice"), "Math.Add", 500),
    ];
    store.insert_executions(&batch).await.unwrap();
    store.insert_executions(&[]).await.unwrap();

    let all = store
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    assert_eq!(ids(&all), ["e5", "e4", "e2", "e3", "e1"]);
    // Every field round-trips, nulls and fractions included.
    assert_eq!(all[0], batch[4]);
    assert_eq!(all[1], batch[3]);

    let alice = ExecutionFilter {
        user_id: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&store.list_executions(&alice).await.unwrap()),
        ["e5", "e3", "e1"]
    );

    let adds = ExecutionFilter {
        tool_name: Some("Math.Add".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&store.list_executions(&adds).await.unwrap()),
        ["e5", "e4", "e2", "e1"]
    );

    let alice_adds = ExecutionFilter {
        user_id: Some("alice".into()),
        tool_name: Some("Math.Add".into()),
        limit: 1,
    };
    assert_eq!(
        ids(&store.list_executions(&alice_adds).await.unwrap()),
        ["e5"]
    );

    let nobody = ExecutionFilter {
        user_id: Some("carol".into()),
        ..Default::default()
    };
    assert!(store.list_executions(&nobody).await.unwrap().is_empty());
}

async fn the_execution_list_limit_defaults_to_100_and_caps_at_1000(b: Backend) {
    let store = b.store;
    // More rows than one multi-row INSERT takes on either backend.
    let batch: Vec<_> = (0..1100)
        .map(|i| execution(&format!("e{i:04}"), Some("u"), "Math.Add", i))
        .collect();
    store.insert_executions(&batch).await.unwrap();

    let default = store
        .list_executions(&ExecutionFilter::default())
        .await
        .unwrap();
    assert_eq!(default.len(), 100);
    assert_eq!(default[0].id, "e1099");

    let huge = ExecutionFilter {
        limit: 5000,
        ..Default::default()
    };
    let capped = store.list_executions(&huge).await.unwrap();
    assert_eq!(capped.len(), 1000);
    assert_eq!(capped[999].id, "e0100");
}

async fn a_batch_with_a_bad_record_writes_nothing(b: Backend) {
    let store = b.store;
    let batch = vec![
        execution("e1", Some("alice"), "Math.Add", 1),
        execution("e2", Some("alice"), "Math.Add", 2),
        execution("e1", Some("alice"), "Math.Add", 3),
    ];
    let err = store.insert_executions(&batch).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        store
            .list_executions(&ExecutionFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn reopening_keeps_data_and_applies_migrations_once(b: Backend) {
    b.store.insert_api_key(&key("k1", "ci", 1)).await.unwrap();
    b.store
        .insert_executions(&[execution("e1", None, "Math.Add", 1)])
        .await
        .unwrap();

    let again = b.reopen().await;
    let third = b.reopen().await;
    assert_eq!(
        again.list_api_keys().await.unwrap(),
        vec![key("k1", "ci", 1)]
    );
    assert_eq!(
        third
            .list_executions(&ExecutionFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // The reopened store writes to the same tables the first one reads.
    again.insert_api_key(&key("k2", "laptop", 2)).await.unwrap();
    assert_eq!(b.store.list_api_keys().await.unwrap().len(), 2);
}

async fn concurrent_execution_inserts_from_20_tasks_all_land(b: Backend) {
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let store = Arc::clone(&b.store);
            tokio::spawn(async move {
                for n in 0..5 {
                    let batch: Vec<_> = (0..3)
                        .map(|i| {
                            let seq = t * 100 + n * 10 + i;
                            execution(
                                &format!("t{t}-{n}-{i}"),
                                Some(&format!("user{t}")),
                                "Math.Add",
                                seq,
                            )
                        })
                        .collect();
                    store.insert_executions(&batch).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let everything = ExecutionFilter {
        limit: 1000,
        ..Default::default()
    };
    assert_eq!(
        b.store.list_executions(&everything).await.unwrap().len(),
        20 * 5 * 3
    );
    let one_user = ExecutionFilter {
        user_id: Some("user7".into()),
        ..Default::default()
    };
    assert_eq!(b.store.list_executions(&one_user).await.unwrap().len(), 15);
}
