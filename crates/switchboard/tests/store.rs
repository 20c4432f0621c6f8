//! The store behaviour suite: one set of bodies, each run against SQLite and PostgreSQL
//! (`sqlite::<behaviour>` and `postgres::<behaviour>`).
//!
//! PostgreSQL comes from `SWITCHBOARD_TEST_POSTGRES_URL`; each test gets a fresh schema,
//! dropped at the end. Without that variable, or with the server unreachable, the PostgreSQL
//! tests skip with a note, unless `CI` is set: then they fail.

mod common;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use common::postgres::TestSchema;
use switchboard::store::{
    ApiKeyRecord, ConnectionChange, ConnectionFilter, ConnectionRecord, ExecutionFilter,
    ExecutionRecord, FlowRecord, McpSessionRecord, PostgresStore, SqliteStore, Store, StoreError,
    StoredProviderRecord, TokenUpdate, UserKeyRecord, UserTokenRecord,
};

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

impl Target {
    /// What the store opened on this target must call itself.
    fn backend(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => "sqlite",
            Target::Postgres(_) => "postgres",
        }
    }
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
    let Some(mut schema) = TestSchema::create("sb_test").await else {
        return;
    };
    let store = PostgresStore::open(&schema.url).await.unwrap();
    let in_schema: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 \
         AND table_name IN ('api_keys', 'executions', '_sqlx_migrations')",
    )
    .bind(&schema.name)
    .fetch_one(&mut schema.admin)
    .await
    .unwrap();

    if in_schema != 3 {
        let name = schema.name.clone();
        schema.drop().await;
        panic!("migrations did not land in the test's schema {name}: {in_schema} of 3 tables");
    }
    let backend = Backend {
        store: Arc::new(store),
        target: Target::Postgres(schema.url.clone()),
    };
    schema.run(body(backend)).await;
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
    execution_text_round_trips_byte_for_byte_in_batches_of_any_size,
    batch_after_batch_of_every_size_lands_whole_around_a_failed_one,
    old_execution_records_are_pruned_oldest_first_in_bounded_batches,
    reopening_keeps_data_and_applies_migrations_once,
    concurrent_execution_inserts_from_20_tasks_all_land,
    ten_concurrent_user_key_inserts_all_get_the_same_winner,
    a_user_key_rewrap_replaces_the_wrapping_of_known_users_only,
    deleting_a_user_removes_their_key_connections_and_flows_only,
    an_upsert_keeps_the_connection_id_and_creation_time_and_bumps_its_version,
    a_token_update_with_a_stale_version_returns_false_and_changes_nothing,
    a_connection_status_change_and_a_delete_touch_only_that_connection,
    of_20_concurrent_refresh_lock_attempts_with_distinct_owners_exactly_one_wins,
    an_expired_refresh_lease_can_be_taken_over,
    unlocking_a_refresh_lease_by_a_non_owner_does_nothing,
    every_grant_change_is_logged_for_other_replicas_but_lease_bookkeeping_is_not,
    a_flow_link_can_be_claimed_once,
    an_expired_or_finished_flow_link_cannot_be_claimed,
    a_flow_state_can_be_claimed_once,
    flows_are_found_by_link_and_by_state_and_updated_in_place,
    a_reusable_flow_ignores_used_expired_finished_and_other_scope_flows,
    connections_are_listed_newest_first_with_filters_pages_and_a_total,
    the_connection_list_limit_defaults_to_100_and_caps_at_1000,
    stored_providers_are_created_read_updated_and_deleted_and_a_duplicate_create_conflicts,
    oauth_rows_survive_a_reopen,
    user_tokens_are_found_by_hash_until_revoked_or_expired,
    user_tokens_are_listed_newest_first_for_one_user_or_all,
    a_duplicate_user_token_hash_is_a_conflict,
    mcp_sessions_are_put_read_touched_deleted_and_pruned,
    putting_an_existing_mcp_session_replaces_it_but_keeps_its_creation_time,
    deleting_a_user_removes_their_user_tokens_and_mcp_sessions_too,
    user_tokens_and_mcp_sessions_survive_a_reopen,
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
    assert_eq!(b.store.backend(), b.target.backend());
    b.store.ping().await.unwrap();
    assert_eq!(b.reopen().await.backend(), b.target.backend());
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

/// Each value is bound in place, statement by statement: every row of a batch that spans
/// several statements (and a short last one) must come back exactly as written.
async fn execution_text_round_trips_byte_for_byte_in_batches_of_any_size(b: Backend) {
    let store = b.store;
    let odd = [
        "it's \"quoted\"; DROP TABLE executions; --",
        "ünïcödé ✓ 日本語 🚀",
        "",
        "x",
    ];
    let batch: Vec<_> = (0..123)
        .map(|i| {
            let text = odd[i % odd.len()];
            let mut record = execution(&format!("e{i:03}"), Some(text), "Math.Add", i as i64);
            record.execution_id = format!("{text}-{i}");
            record.tool_name = format!("Kit.{text}");
            record.error_kind = Some(text.repeat(i % 3));
            record.tool_version = (i % 2 == 0).then(|| "v".repeat(i));
            record
        })
        .collect();
    store.insert_executions(&batch).await.unwrap();
    assert_eq!(oldest_first(&*store).await, batch);
}

/// Every execution record (up to 1,000), oldest first.
async fn oldest_first(store: &dyn Store) -> Vec<ExecutionRecord> {
    let mut all = store
        .list_executions(&ExecutionFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    all.reverse();
    all
}

/// SQLite keeps its INSERTs prepared from one batch to the next (one per row count), and
/// each batch binds values that are freed once it is written: every batch, whatever its
/// size and whatever failed before it, must land exactly as written, with no value of an
/// earlier batch in it.
async fn batch_after_batch_of_every_size_lands_whole_around_a_failed_one(b: Backend) {
    let store = b.store;
    let mut written = Vec::new();
    let mut next = 0;
    let mut batch_of = |rows: usize, tag: &str| -> Vec<ExecutionRecord> {
        (0..rows)
            .map(|_| {
                next += 1;
                let mut record = execution(&format!("e{next:05}"), Some(tag), "Math.Add", next);
                record.execution_id = format!("{tag}-{next}-{}", "x".repeat(next as usize % 7));
                record
            })
            .collect()
    };
    for (n, rows) in [1, 3, 50, 51, 123, 2, 500, 49, 1].into_iter().enumerate() {
        let batch = batch_of(rows, &format!("batch{n}"));
        store.insert_executions(&batch).await.unwrap();
        written.extend(batch);
        if n == 4 {
            // A duplicate id in the last row: nothing of this batch may land.
            let mut failing = batch_of(70, "failing");
            failing[69].id = written[0].id.clone();
            let err = store.insert_executions(&failing).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        }
    }
    let all = oldest_first(&*store).await;
    assert_eq!(all.len(), written.len());
    assert_eq!(all, written);
}

async fn old_execution_records_are_pruned_oldest_first_in_bounded_batches(b: Backend) {
    let store = b.store;
    let batch: Vec<_> = [40, 10, 30, 20, 50]
        .iter()
        .map(|&at| execution(&format!("e{at}"), Some("alice"), "Math.Add", at))
        .collect();
    store.insert_executions(&batch).await.unwrap();
    let all = ExecutionFilter::default();

    // Started before 45: e10..e40. Two at a time, the oldest first.
    assert_eq!(store.prune_executions(45, 2).await.unwrap(), 2);
    assert_eq!(
        ids(&store.list_executions(&all).await.unwrap()),
        ["e50", "e40", "e30"]
    );
    assert_eq!(store.prune_executions(45, 2).await.unwrap(), 2);
    assert_eq!(store.prune_executions(45, 2).await.unwrap(), 0);
    // A record started exactly at the bound is kept.
    assert_eq!(store.prune_executions(50, 10).await.unwrap(), 0);
    assert_eq!(ids(&store.list_executions(&all).await.unwrap()), ["e50"]);
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

// --- Per-user OAuth: data keys, connections, flows, stored providers ---------------------

fn user_key(user: &str, wrapped: &str) -> UserKeyRecord {
    UserKeyRecord {
        user_id: user.into(),
        root_key_id: "root-1".into(),
        wrapped_key: wrapped.into(),
        created_at_ms: 1,
    }
}

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn connection(id: &str, user: &str, provider: &str, updated_at_ms: i64) -> ConnectionRecord {
    ConnectionRecord {
        id: id.into(),
        user_id: user.into(),
        provider_id: provider.into(),
        provider_service: "google".into(),
        status: "active".into(),
        scopes: scopes(&["email", "profile"]),
        access_token_sealed: format!("sealed-access-{id}"),
        refresh_token_sealed: Some(format!("sealed-refresh-{id}")),
        expires_at_ms: Some(updated_at_ms + 3_600_000),
        user_info: Some(r#"{"email":"a@example.com"}"#.into()),
        provider_user_id: Some(format!("sub-{user}")),
        created_at_ms: updated_at_ms,
        updated_at_ms,
        version: 1,
        token_lifetime_ms: None,
    }
}

fn flow(id: &str, user: &str, provider: &str, created_at_ms: i64) -> FlowRecord {
    FlowRecord {
        id: id.into(),
        user_id: user.into(),
        provider_id: provider.into(),
        scopes: scopes(&["email", "profile"]),
        status: "pending".into(),
        link_hash: format!("link-{id}"),
        link_used: false,
        state_hash: None,
        state_used: false,
        pkce_verifier_sealed: None,
        next_uri: Some("https://app.example/done".into()),
        failure_reason: None,
        pending_grant_sealed: None,
        created_at_ms,
        expires_at_ms: created_at_ms + 600_000,
        completed_at_ms: None,
        link_sealed: None,
    }
}

fn provider(id: &str, at_ms: i64) -> StoredProviderRecord {
    StoredProviderRecord {
        id: id.into(),
        config_json: format!(r#"{{"id":"{id}","client_id":"c"}}"#),
        client_secret_sealed: Some(format!("sealed-secret-{id}")),
        created_at_ms: at_ms,
        updated_at_ms: at_ms,
    }
}

fn connection_ids(records: &[ConnectionRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

async fn ten_concurrent_user_key_inserts_all_get_the_same_winner(b: Backend) {
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = Arc::clone(&b.store);
            tokio::spawn(async move {
                store
                    .insert_user_key(&user_key("alice", &format!("wrapped-{i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut stored = Vec::new();
    for task in tasks {
        stored.push(task.await.unwrap());
    }
    let winner = stored[0].clone();
    assert!(winner.wrapped_key.starts_with("wrapped-"), "{winner:?}");
    assert!(stored.iter().all(|k| *k == winner), "{stored:?}");
    assert_eq!(b.store.get_user_key("alice").await.unwrap(), Some(winner));
    assert_eq!(b.store.list_user_keys().await.unwrap().len(), 1);
}

async fn a_user_key_rewrap_replaces_the_wrapping_of_known_users_only(b: Backend) {
    let store = b.store;
    store
        .insert_user_key(&user_key("bob", "w-b"))
        .await
        .unwrap();
    store
        .insert_user_key(&user_key("alice", "w-a"))
        .await
        .unwrap();
    assert_eq!(store.get_user_key("carol").await.unwrap(), None);

    let rewrapped = UserKeyRecord {
        root_key_id: "root-2".into(),
        wrapped_key: "w-a2".into(),
        // The creation time is not part of a rewrap.
        created_at_ms: 99,
        ..user_key("alice", "")
    };
    assert!(store.update_user_key(&rewrapped).await.unwrap());
    assert!(
        !store
            .update_user_key(&user_key("carol", "w-c"))
            .await
            .unwrap()
    );

    let listed = store.list_user_keys().await.unwrap();
    assert_eq!(
        listed,
        vec![
            UserKeyRecord {
                root_key_id: "root-2".into(),
                ..user_key("alice", "w-a2")
            },
            user_key("bob", "w-b"),
        ]
    );
}

async fn deleting_a_user_removes_their_key_connections_and_flows_only(b: Backend) {
    let store = b.store;
    for user in ["alice", "bob"] {
        store
            .insert_user_key(&user_key(user, &format!("w-{user}")))
            .await
            .unwrap();
        for provider in ["google", "github"] {
            let id = format!("{user}-{provider}");
            store
                .upsert_connection(&connection(&id, user, provider, 10))
                .await
                .unwrap();
            store
                .insert_flow(&flow(&id, user, provider, 10))
                .await
                .unwrap();
        }
    }

    assert!(store.delete_user("alice").await.unwrap());
    assert_eq!(store.get_user_key("alice").await.unwrap(), None);
    assert_eq!(store.get_connection("alice", "google").await.unwrap(), None);
    assert_eq!(store.get_flow("alice-github").await.unwrap(), None);

    assert!(store.get_user_key("bob").await.unwrap().is_some());
    let (bobs, total) = store
        .list_connections(&ConnectionFilter::default())
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert!(bobs.iter().all(|c| c.user_id == "bob"), "{bobs:?}");
    assert!(store.get_flow("bob-google").await.unwrap().is_some());
    assert!(store.get_flow("bob-github").await.unwrap().is_some());

    // Nothing left for alice: a second delete reports it.
    assert!(!store.delete_user("alice").await.unwrap());
    // A user with connections but no data key yet is still deleted.
    store
        .upsert_connection(&connection("c-carol", "carol", "google", 10))
        .await
        .unwrap();
    assert!(store.delete_user("carol").await.unwrap());
    assert_eq!(store.get_connection_by_id("c-carol").await.unwrap(), None);
}

async fn an_upsert_keeps_the_connection_id_and_creation_time_and_bumps_its_version(b: Backend) {
    let store = b.store;
    let first = connection("c1", "alice", "google", 100);
    let stored = store.upsert_connection(&first).await.unwrap();
    assert_eq!(stored, first);
    assert_eq!(
        store.get_connection("alice", "google").await.unwrap(),
        Some(first.clone())
    );

    // A held lease is cleared by the upsert: the new grant needs no old refresh to finish.
    assert!(
        store
            .try_lock_refresh("c1", "r1", 150, 10_000)
            .await
            .unwrap()
    );

    let again = ConnectionRecord {
        scopes: scopes(&["calendar", "email", "profile"]),
        access_token_sealed: "sealed-access-new".into(),
        refresh_token_sealed: None,
        expires_at_ms: None,
        user_info: None,
        provider_user_id: None,
        status: "active".into(),
        created_at_ms: 200,
        updated_at_ms: 200,
        ..connection("c-other-id", "alice", "google", 200)
    };
    let replaced = store.upsert_connection(&again).await.unwrap();
    let expected = ConnectionRecord {
        id: "c1".into(),
        created_at_ms: 100,
        version: 2,
        ..again.clone()
    };
    assert_eq!(replaced, expected);
    assert_eq!(
        store.get_connection_by_id("c1").await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        store.get_connection_by_id("c-other-id").await.unwrap(),
        None
    );
    assert!(
        store
            .try_lock_refresh("c1", "r2", 250, 10_000)
            .await
            .unwrap()
    );

    // Another provider of the same user is another connection.
    let github = connection("c2", "alice", "github", 300);
    assert_eq!(store.upsert_connection(&github).await.unwrap(), github);
    let (_, total) = store
        .list_connections(&ConnectionFilter::default())
        .await
        .unwrap();
    assert_eq!(total, 2);
}

async fn a_token_update_with_a_stale_version_returns_false_and_changes_nothing(b: Backend) {
    let store = b.store;
    let original = connection("c1", "alice", "google", 100);
    store.upsert_connection(&original).await.unwrap();
    assert!(
        store
            .set_connection_status("c1", "needs_reauth", 110)
            .await
            .unwrap()
    );

    let update = TokenUpdate {
        access_token_sealed: "sealed-access-2".into(),
        refresh_token_sealed: None,
        expires_at_ms: Some(9_000),
        scopes: scopes(&["email"]),
        updated_at_ms: 120,
        token_lifetime_ms: None,
    };
    assert!(
        !store
            .update_connection_tokens("c1", 0, &update)
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_connection_tokens("nope", 1, &update)
            .await
            .unwrap()
    );
    let unchanged = ConnectionRecord {
        status: "needs_reauth".into(),
        updated_at_ms: 110,
        ..original.clone()
    };
    assert_eq!(
        store.get_connection_by_id("c1").await.unwrap(),
        Some(unchanged)
    );

    // The current version wins, sets the connection active and keeps the old refresh token
    // when none came back.
    assert!(
        store
            .update_connection_tokens("c1", 1, &update)
            .await
            .unwrap()
    );
    let refreshed = ConnectionRecord {
        access_token_sealed: "sealed-access-2".into(),
        expires_at_ms: Some(9_000),
        scopes: scopes(&["email"]),
        updated_at_ms: 120,
        version: 2,
        ..original.clone()
    };
    assert_eq!(
        store.get_connection_by_id("c1").await.unwrap(),
        Some(refreshed.clone())
    );
    // The same expected version again is now stale.
    assert!(
        !store
            .update_connection_tokens("c1", 1, &update)
            .await
            .unwrap()
    );

    let rotated = TokenUpdate {
        refresh_token_sealed: Some("sealed-refresh-3".into()),
        updated_at_ms: 130,
        ..update
    };
    assert!(
        store
            .update_connection_tokens("c1", 2, &rotated)
            .await
            .unwrap()
    );
    let stored = store.get_connection_by_id("c1").await.unwrap().unwrap();
    assert_eq!(
        stored.refresh_token_sealed.as_deref(),
        Some("sealed-refresh-3")
    );
    assert_eq!(stored.version, 3);
}

async fn a_connection_status_change_and_a_delete_touch_only_that_connection(b: Backend) {
    let store = b.store;
    store
        .upsert_connection(&connection("c1", "alice", "google", 100))
        .await
        .unwrap();
    store
        .upsert_connection(&connection("c2", "bob", "google", 100))
        .await
        .unwrap();

    assert!(
        store
            .set_connection_status("c1", "needs_reauth", 150)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_connection_status("nope", "active", 150)
            .await
            .unwrap()
    );
    let c1 = store.get_connection_by_id("c1").await.unwrap().unwrap();
    assert_eq!(
        (c1.status.as_str(), c1.updated_at_ms, c1.version),
        ("needs_reauth", 150, 1)
    );
    let c2 = store.get_connection_by_id("c2").await.unwrap().unwrap();
    assert_eq!(c2.status, "active");

    assert!(store.delete_connection("c1").await.unwrap());
    assert!(!store.delete_connection("c1").await.unwrap());
    assert_eq!(store.get_connection("alice", "google").await.unwrap(), None);
    assert!(
        store
            .get_connection("bob", "google")
            .await
            .unwrap()
            .is_some()
    );
}

async fn every_grant_change_is_logged_for_other_replicas_but_lease_bookkeeping_is_not(b: Backend) {
    let store = b.store;
    let since = chrono::Utc::now().timestamp_millis() - 60_000;
    let changed = |changes: &[ConnectionChange]| -> Vec<(String, String)> {
        changes
            .iter()
            .map(|c| (c.user_id.clone(), c.provider_id.clone()))
            .collect()
    };
    store
        .upsert_connection(&connection("c1", "alice", "google", 100))
        .await
        .unwrap();
    store
        .upsert_connection(&connection("c2", "bob", "github", 100))
        .await
        .unwrap();
    // Lease bookkeeping is not a change of the grant.
    assert!(store.try_lock_refresh("c1", "me", 100, 200).await.unwrap());
    store.unlock_refresh("c1", "me").await.unwrap();
    let update = TokenUpdate {
        access_token_sealed: "sealed-access-2".into(),
        refresh_token_sealed: None,
        expires_at_ms: Some(9_000),
        scopes: scopes(&["email"]),
        updated_at_ms: 120,
        token_lifetime_ms: None,
    };
    assert!(
        store
            .update_connection_tokens("c1", 1, &update)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_connection_status("c2", "needs_reauth", 130)
            .await
            .unwrap()
    );
    assert!(store.delete_connection("c1").await.unwrap());

    let changes = store.connection_changes_since(since, 100).await.unwrap();
    let pair = |u: &str, p: &str| (u.to_string(), p.to_string());
    assert_eq!(
        changed(&changes),
        vec![
            pair("alice", "google"),
            pair("bob", "github"),
            pair("alice", "google"),
            pair("bob", "github"),
            pair("alice", "google"),
        ]
    );
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        changes
            .iter()
            .all(|c| c.at_ms >= since && c.at_ms <= now + 1_000)
    );

    // Only what is new since a point, at most `limit`, oldest first.
    let limited = store.connection_changes_since(since, 2).await.unwrap();
    assert_eq!(changed(&limited), changed(&changes[..2]));
    let later = store
        .connection_changes_since(now + 60_000, 100)
        .await
        .unwrap();
    assert!(later.is_empty());

    // Pruning removes what is older than the cut, nothing else.
    assert_eq!(store.prune_connection_changes(since).await.unwrap(), 0);
    assert_eq!(
        store.prune_connection_changes(now + 60_000).await.unwrap(),
        5
    );
    assert!(
        store
            .connection_changes_since(since, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn of_20_concurrent_refresh_lock_attempts_with_distinct_owners_exactly_one_wins(b: Backend) {
    b.store
        .upsert_connection(&connection("c1", "alice", "google", 100))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&b.store);
            tokio::spawn(async move {
                let owner = format!("replica-{i}");
                let won = store
                    .try_lock_refresh("c1", &owner, 1_000, 31_000)
                    .await
                    .unwrap();
                (owner, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (owner, won) = task.await.unwrap();
        if won {
            winners.push(owner);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");

    // The winner may renew its own lease; anyone else still loses while it holds.
    assert!(
        b.store
            .try_lock_refresh("c1", &winners[0], 2_000, 32_000)
            .await
            .unwrap()
    );
    assert!(
        !b.store
            .try_lock_refresh("c1", "latecomer", 2_000, 32_000)
            .await
            .unwrap()
    );
    // There is no lease on a connection that does not exist.
    assert!(
        !b.store
            .try_lock_refresh("nope", "latecomer", 2_000, 32_000)
            .await
            .unwrap()
    );
}

async fn an_expired_refresh_lease_can_be_taken_over(b: Backend) {
    let store = b.store;
    store
        .upsert_connection(&connection("c1", "alice", "google", 100))
        .await
        .unwrap();
    assert!(
        store
            .try_lock_refresh("c1", "crashed", 1_000, 5_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lock_refresh("c1", "next", 4_999, 9_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .try_lock_refresh("c1", "next", 5_001, 9_000)
            .await
            .unwrap()
    );
    // The old holder's late release must not free the new holder's lease.
    store.unlock_refresh("c1", "crashed").await.unwrap();
    assert!(
        !store
            .try_lock_refresh("c1", "third", 6_000, 9_000)
            .await
            .unwrap()
    );
}

async fn unlocking_a_refresh_lease_by_a_non_owner_does_nothing(b: Backend) {
    let store = b.store;
    store
        .upsert_connection(&connection("c1", "alice", "google", 100))
        .await
        .unwrap();
    assert!(
        store
            .try_lock_refresh("c1", "owner", 1_000, 60_000)
            .await
            .unwrap()
    );

    store.unlock_refresh("c1", "intruder").await.unwrap();
    assert!(
        !store
            .try_lock_refresh("c1", "intruder", 1_001, 60_000)
            .await
            .unwrap()
    );

    store.unlock_refresh("c1", "owner").await.unwrap();
    assert!(
        store
            .try_lock_refresh("c1", "intruder", 1_002, 60_000)
            .await
            .unwrap()
    );
    // Unlocking an unknown connection is not an error.
    store.unlock_refresh("nope", "owner").await.unwrap();
}

async fn a_flow_link_can_be_claimed_once(b: Backend) {
    let store = b.store;
    store
        .insert_flow(&flow("f1", "alice", "google", 1_000))
        .await
        .unwrap();
    assert!(
        store
            .claim_flow_link("f1", "state-1", Some("sealed-verifier"), 2_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_flow_link("f1", "state-2", None, 2_001)
            .await
            .unwrap()
    );
    let claimed = store.get_flow("f1").await.unwrap().unwrap();
    assert!(claimed.link_used);
    assert_eq!(claimed.state_hash.as_deref(), Some("state-1"));
    assert_eq!(
        claimed.pkce_verifier_sealed.as_deref(),
        Some("sealed-verifier")
    );
    assert!(
        !store
            .claim_flow_link("nope", "state-3", None, 2_000)
            .await
            .unwrap()
    );
}

async fn an_expired_or_finished_flow_link_cannot_be_claimed(b: Backend) {
    let store = b.store;
    let expiring = flow("f1", "alice", "google", 1_000);
    store.insert_flow(&expiring).await.unwrap();
    assert!(
        !store
            .claim_flow_link("f1", "state-1", None, expiring.expires_at_ms)
            .await
            .unwrap()
    );
    let untouched = store.get_flow("f1").await.unwrap().unwrap();
    assert_eq!(untouched, expiring);

    let failed = FlowRecord {
        status: "failed".into(),
        failure_reason: Some("access_denied".into()),
        ..flow("f2", "alice", "google", 1_000)
    };
    store.insert_flow(&failed).await.unwrap();
    assert!(
        !store
            .claim_flow_link("f2", "state-2", None, 1_500)
            .await
            .unwrap()
    );
}

async fn a_flow_state_can_be_claimed_once(b: Backend) {
    let store = b.store;
    store
        .insert_flow(&flow("f1", "alice", "google", 1_000))
        .await
        .unwrap();
    assert!(
        store
            .claim_flow_link("f1", "state-1", None, 1_500)
            .await
            .unwrap()
    );
    assert!(store.claim_flow_state("f1").await.unwrap());
    assert!(!store.claim_flow_state("f1").await.unwrap());
    assert!(store.get_flow("f1").await.unwrap().unwrap().state_used);
    assert!(!store.claim_flow_state("nope").await.unwrap());
}

async fn flows_are_found_by_link_and_by_state_and_updated_in_place(b: Backend) {
    let store = b.store;
    let mut f1 = flow("f1", "alice", "google", 1_000);
    f1.scopes = Vec::new();
    f1.next_uri = None;
    store.insert_flow(&f1).await.unwrap();
    store
        .insert_flow(&flow("f2", "bob", "google", 1_000))
        .await
        .unwrap();

    // Every field round-trips, an empty scope list and nulls included.
    assert_eq!(
        store.find_flow_by_link("link-f1").await.unwrap(),
        Some(f1.clone())
    );
    assert_eq!(store.find_flow_by_link("link-nope").await.unwrap(), None);
    assert_eq!(store.find_flow_by_state("state-1").await.unwrap(), None);

    assert!(
        store
            .claim_flow_link("f1", "state-1", None, 1_500)
            .await
            .unwrap()
    );
    let by_state = store.find_flow_by_state("state-1").await.unwrap().unwrap();
    assert_eq!(by_state.id, "f1");

    // `update_flow` writes the outcome and re-arm fields and leaves the claim fields (and
    // who the flow is for) as stored.
    let rewritten = FlowRecord {
        status: "awaiting_verification".into(),
        failure_reason: Some("none yet".into()),
        pending_grant_sealed: Some("sealed-grant".into()),
        completed_at_ms: Some(1_800),
        link_hash: "link-f1-rearmed".into(),
        next_uri: Some("https://app.example/next".into()),
        expires_at_ms: 9_999_999,
        pkce_verifier_sealed: Some("sealed-verifier".into()),
        ..by_state.clone()
    };
    let ignored = FlowRecord {
        user_id: "mallory".into(),
        provider_id: "github".into(),
        scopes: scopes(&["admin"]),
        link_used: false,
        state_hash: None,
        state_used: true,
        created_at_ms: 7,
        ..rewritten.clone()
    };
    store.update_flow(&ignored).await.unwrap();
    assert_eq!(store.get_flow("f1").await.unwrap(), Some(rewritten));
    assert_eq!(store.find_flow_by_link("link-f1").await.unwrap(), None);
    assert_eq!(
        store
            .find_flow_by_link("link-f1-rearmed")
            .await
            .unwrap()
            .map(|f| f.id),
        Some("f1".into())
    );
    // Updating a flow that does not exist is not an error.
    store
        .update_flow(&flow("nope", "alice", "google", 1))
        .await
        .unwrap();

    // A second flow with the same link is a conflict.
    let err = store
        .insert_flow(&FlowRecord {
            link_hash: "link-f1-rearmed".into(),
            ..flow("f3", "alice", "google", 1_000)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn a_reusable_flow_ignores_used_expired_finished_and_other_scope_flows(b: Backend) {
    let store = b.store;
    let wanted = scopes(&["email", "profile"]);
    let lookup = |now: i64| {
        let store = Arc::clone(&store);
        let wanted = wanted.clone();
        async move {
            store
                .find_reusable_flow("alice", "google", &wanted, now)
                .await
                .unwrap()
                .map(|f| f.id)
        }
    };
    assert_eq!(lookup(1_000).await, None);

    let used = flow("used", "alice", "google", 1_000);
    store.insert_flow(&used).await.unwrap();
    assert!(
        store
            .claim_flow_link("used", "s1", None, 1_001)
            .await
            .unwrap()
    );
    let expired = FlowRecord {
        expires_at_ms: 1_500,
        ..flow("expired", "alice", "google", 1_400)
    };
    store.insert_flow(&expired).await.unwrap();
    let other_scopes = FlowRecord {
        scopes: scopes(&["email"]),
        ..flow("other-scopes", "alice", "google", 1_600)
    };
    store.insert_flow(&other_scopes).await.unwrap();
    let failed = FlowRecord {
        status: "failed".into(),
        ..flow("failed", "alice", "google", 1_700)
    };
    store.insert_flow(&failed).await.unwrap();
    store
        .insert_flow(&flow("bob", "bob", "google", 1_800))
        .await
        .unwrap();
    store
        .insert_flow(&flow("github", "alice", "github", 1_800))
        .await
        .unwrap();
    assert_eq!(lookup(2_000).await, None);

    store
        .insert_flow(&flow("older", "alice", "google", 1_900))
        .await
        .unwrap();
    store
        .insert_flow(&flow("newer", "alice", "google", 1_950))
        .await
        .unwrap();
    assert_eq!(lookup(2_000).await.as_deref(), Some("newer"));
    // Once the newer one's link is used, the older one is still good.
    assert!(
        store
            .claim_flow_link("newer", "s2", None, 2_001)
            .await
            .unwrap()
    );
    assert_eq!(lookup(2_002).await.as_deref(), Some("older"));
    // And past its expiry, nothing is.
    assert_eq!(lookup(1_900 + 600_000).await, None);
}

async fn connections_are_listed_newest_first_with_filters_pages_and_a_total(b: Backend) {
    let store = b.store;
    for (i, (user, provider)) in [
        ("alice", "google"),
        ("alice", "github"),
        ("bob", "google"),
        ("bob", "github"),
        ("carol", "google"),
    ]
    .into_iter()
    .enumerate()
    {
        let at = 100 * (i as i64 + 1);
        store
            .upsert_connection(&connection(
                &format!("{user}-{provider}"),
                user,
                provider,
                at,
            ))
            .await
            .unwrap();
    }

    let (all, total) = store
        .list_connections(&ConnectionFilter::default())
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        connection_ids(&all),
        [
            "carol-google",
            "bob-github",
            "bob-google",
            "alice-github",
            "alice-google"
        ]
    );
    assert_eq!(all[4], connection("alice-google", "alice", "google", 100));

    let alice = ConnectionFilter {
        user_id: Some("alice".into()),
        ..Default::default()
    };
    let (page, total) = store.list_connections(&alice).await.unwrap();
    assert_eq!(
        (connection_ids(&page), total),
        (vec!["alice-github", "alice-google"], 2)
    );

    let google = ConnectionFilter {
        provider_id: Some("google".into()),
        limit: 1,
        offset: 1,
        ..Default::default()
    };
    let (page, total) = store.list_connections(&google).await.unwrap();
    assert_eq!((connection_ids(&page), total), (vec!["bob-google"], 3));

    let bob_github = ConnectionFilter {
        user_id: Some("bob".into()),
        provider_id: Some("github".into()),
        ..Default::default()
    };
    let (page, total) = store.list_connections(&bob_github).await.unwrap();
    assert_eq!((connection_ids(&page), total), (vec!["bob-github"], 1));

    // A page past the end is empty but still counts what matches.
    let past = ConnectionFilter {
        offset: 10,
        ..Default::default()
    };
    let (page, total) = store.list_connections(&past).await.unwrap();
    assert_eq!((page.len(), total), (0, 5));

    let nobody = ConnectionFilter {
        user_id: Some("dave".into()),
        ..Default::default()
    };
    assert_eq!(
        store.list_connections(&nobody).await.unwrap(),
        (Vec::new(), 0)
    );
}

async fn the_connection_list_limit_defaults_to_100_and_caps_at_1000(b: Backend) {
    let store = b.store;
    for i in 0..120 {
        store
            .upsert_connection(&connection(
                &format!("c{i:03}"),
                &format!("u{i:03}"),
                "google",
                i,
            ))
            .await
            .unwrap();
    }
    let (page, total) = store
        .list_connections(&ConnectionFilter::default())
        .await
        .unwrap();
    assert_eq!((page.len(), total, page[0].id.as_str()), (100, 120, "c119"));

    let huge = ConnectionFilter {
        limit: 5000,
        ..Default::default()
    };
    assert_eq!(
        ConnectionFilter {
            limit: 5000,
            ..Default::default()
        }
        .effective_limit(),
        1000
    );
    let (page, _) = store.list_connections(&huge).await.unwrap();
    assert_eq!(page.len(), 120);
}

async fn stored_providers_are_created_read_updated_and_deleted_and_a_duplicate_create_conflicts(
    b: Backend,
) {
    let store = b.store;
    assert!(store.list_stored_providers().await.unwrap().is_empty());
    store
        .put_stored_provider(&provider("zeta", 10), true)
        .await
        .unwrap();
    store
        .put_stored_provider(&provider("acme", 20), true)
        .await
        .unwrap();

    let err = store
        .put_stored_provider(&provider("acme", 30), true)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(field) if field == "auth provider id"),
        "{err:?}"
    );
    assert_eq!(
        store.get_stored_provider("acme").await.unwrap(),
        Some(provider("acme", 20))
    );

    // Without `create` it replaces, keeping the creation time...
    let replacement = StoredProviderRecord {
        config_json: r#"{"id":"acme","client_id":"c2"}"#.into(),
        client_secret_sealed: None,
        created_at_ms: 40,
        updated_at_ms: 40,
        ..provider("acme", 40)
    };
    store
        .put_stored_provider(&replacement, false)
        .await
        .unwrap();
    assert_eq!(
        store.get_stored_provider("acme").await.unwrap(),
        Some(StoredProviderRecord {
            created_at_ms: 20,
            ..replacement
        })
    );
    // ...and inserts a new id.
    store
        .put_stored_provider(&provider("mid", 50), false)
        .await
        .unwrap();

    let ids: Vec<_> = store
        .list_stored_providers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["acme", "mid", "zeta"]);

    assert!(store.delete_stored_provider("zeta").await.unwrap());
    assert!(!store.delete_stored_provider("zeta").await.unwrap());
    assert_eq!(store.get_stored_provider("zeta").await.unwrap(), None);
    assert_eq!(store.list_stored_providers().await.unwrap().len(), 2);
}

async fn oauth_rows_survive_a_reopen(b: Backend) {
    b.store
        .insert_user_key(&user_key("alice", "w-a"))
        .await
        .unwrap();
    b.store
        .upsert_connection(&connection("c1", "alice", "google", 100))
        .await
        .unwrap();
    b.store
        .insert_flow(&flow("f1", "alice", "google", 100))
        .await
        .unwrap();
    b.store
        .put_stored_provider(&provider("acme", 1), true)
        .await
        .unwrap();

    let again = b.reopen().await;
    assert_eq!(
        again.get_user_key("alice").await.unwrap(),
        Some(user_key("alice", "w-a"))
    );
    assert_eq!(
        again.get_connection_by_id("c1").await.unwrap(),
        Some(connection("c1", "alice", "google", 100))
    );
    assert_eq!(
        again.get_flow("f1").await.unwrap(),
        Some(flow("f1", "alice", "google", 100))
    );
    assert_eq!(again.list_stored_providers().await.unwrap().len(), 1);
}

// --- User tokens and MCP sessions --------------------------------------------------------

fn user_token(
    id: &str,
    user: &str,
    created_at_ms: i64,
    expires_at_ms: Option<i64>,
) -> UserTokenRecord {
    UserTokenRecord {
        id: id.into(),
        user_id: user.into(),
        token_hash: format!("hash-{id}"),
        hint: "sbu_abcd…".into(),
        created_at_ms,
        expires_at_ms,
        revoked_at_ms: None,
    }
}

fn session(id: &str, user: &str, gateway: Option<&str>, last_seen_ms: i64) -> McpSessionRecord {
    McpSessionRecord {
        id: id.into(),
        user_id: user.into(),
        gateway: gateway.map(Into::into),
        protocol_version: "2025-11-25".into(),
        client_json: r#"{"capabilities":{},"clientInfo":{"name":"t","version":"1"}}"#.into(),
        created_at_ms: 1,
        last_seen_ms,
    }
}

async fn user_tokens_are_found_by_hash_until_revoked_or_expired(b: Backend) {
    let store = b.store;
    store
        .insert_user_token(&user_token("t1", "alice", 10, None))
        .await
        .unwrap();
    store
        .insert_user_token(&user_token("t2", "bob", 10, Some(1_000)))
        .await
        .unwrap();

    assert_eq!(
        store
            .find_active_user_token("hash-t1", 5_000)
            .await
            .unwrap(),
        Some(user_token("t1", "alice", 10, None))
    );
    assert_eq!(store.find_active_user_token("nope", 0).await.unwrap(), None);
    // Valid before its expiry, refused at and after it.
    assert!(
        store
            .find_active_user_token("hash-t2", 999)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .find_active_user_token("hash-t2", 1_000)
            .await
            .unwrap(),
        None
    );

    assert!(store.revoke_user_token("t1", 20).await.unwrap());
    assert!(!store.revoke_user_token("t1", 30).await.unwrap());
    assert!(!store.revoke_user_token("unknown", 30).await.unwrap());
    assert_eq!(
        store.find_active_user_token("hash-t1", 40).await.unwrap(),
        None
    );
    let listed = store.list_user_tokens(Some("alice")).await.unwrap();
    assert_eq!(listed[0].revoked_at_ms, Some(20));
}

async fn user_tokens_are_listed_newest_first_for_one_user_or_all(b: Backend) {
    let store = b.store;
    for (id, user, at) in [("a1", "alice", 1), ("b1", "bob", 2), ("a2", "alice", 3)] {
        store
            .insert_user_token(&user_token(id, user, at, None))
            .await
            .unwrap();
    }
    let ids = |v: Vec<UserTokenRecord>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_user_tokens(None).await.unwrap()),
        ["a2", "b1", "a1"]
    );
    assert_eq!(
        ids(store.list_user_tokens(Some("alice")).await.unwrap()),
        ["a2", "a1"]
    );
    assert!(
        store
            .list_user_tokens(Some("carol"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_duplicate_user_token_hash_is_a_conflict(b: Backend) {
    b.store
        .insert_user_token(&user_token("t1", "alice", 1, None))
        .await
        .unwrap();
    let twin = UserTokenRecord {
        id: "t2".into(),
        ..user_token("t1", "bob", 2, None)
    };
    let err = b.store.insert_user_token(&twin).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref f) if f == "user token"),
        "{err:?}"
    );
}

async fn mcp_sessions_are_put_read_touched_deleted_and_pruned(b: Backend) {
    let store = b.store;
    store
        .put_mcp_session(&session("s1", "alice", None, 100))
        .await
        .unwrap();
    store
        .put_mcp_session(&session("s2", "bob", Some("sales"), 200))
        .await
        .unwrap();
    store
        .put_mcp_session(&session("s3", "bob", None, 300))
        .await
        .unwrap();

    assert_eq!(
        store.get_mcp_session("s2").await.unwrap(),
        Some(session("s2", "bob", Some("sales"), 200))
    );
    assert_eq!(store.get_mcp_session("nope").await.unwrap(), None);

    // A touch moves last_seen and nothing else.
    assert!(store.touch_mcp_session("s1", 400).await.unwrap());
    assert!(!store.touch_mcp_session("nope", 400).await.unwrap());
    assert_eq!(
        store.get_mcp_session("s1").await.unwrap(),
        Some(session("s1", "alice", None, 400))
    );

    // Pruning drops sessions last seen strictly before the cut-off.
    assert_eq!(store.prune_mcp_sessions(300).await.unwrap(), 1);
    assert_eq!(store.get_mcp_session("s2").await.unwrap(), None);
    assert!(store.get_mcp_session("s3").await.unwrap().is_some());
    assert_eq!(store.prune_mcp_sessions(300).await.unwrap(), 0);

    assert!(store.delete_mcp_session("s3").await.unwrap());
    assert!(!store.delete_mcp_session("s3").await.unwrap());
    assert!(store.get_mcp_session("s1").await.unwrap().is_some());
}

async fn putting_an_existing_mcp_session_replaces_it_but_keeps_its_creation_time(b: Backend) {
    b.store
        .put_mcp_session(&session("s1", "alice", None, 100))
        .await
        .unwrap();
    let replacement = McpSessionRecord {
        protocol_version: "2025-06-18".into(),
        client_json: "{}".into(),
        created_at_ms: 999,
        ..session("s1", "alice", Some("sales"), 500)
    };
    b.store.put_mcp_session(&replacement).await.unwrap();
    assert_eq!(
        b.store.get_mcp_session("s1").await.unwrap(),
        Some(McpSessionRecord {
            created_at_ms: 1,
            ..replacement
        })
    );
}

async fn deleting_a_user_removes_their_user_tokens_and_mcp_sessions_too(b: Backend) {
    let store = b.store;
    store
        .insert_user_token(&user_token("ta", "alice", 1, None))
        .await
        .unwrap();
    store
        .insert_user_token(&user_token("tb", "bob", 1, None))
        .await
        .unwrap();
    store
        .put_mcp_session(&session("sa", "alice", None, 1))
        .await
        .unwrap();
    store
        .put_mcp_session(&session("sb", "bob", None, 1))
        .await
        .unwrap();

    // Tokens alone are enough for the user to count as existing.
    assert!(store.delete_user("alice").await.unwrap());
    assert_eq!(
        store.find_active_user_token("hash-ta", 2).await.unwrap(),
        None
    );
    assert_eq!(store.get_mcp_session("sa").await.unwrap(), None);
    assert!(
        store
            .find_active_user_token("hash-tb", 2)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.get_mcp_session("sb").await.unwrap().is_some());
}

async fn user_tokens_and_mcp_sessions_survive_a_reopen(b: Backend) {
    b.store
        .insert_user_token(&user_token("t1", "alice", 1, Some(10_000)))
        .await
        .unwrap();
    b.store
        .put_mcp_session(&session("s1", "alice", None, 5))
        .await
        .unwrap();
    let again = b.reopen().await;
    assert_eq!(
        again.find_active_user_token("hash-t1", 2).await.unwrap(),
        Some(user_token("t1", "alice", 1, Some(10_000)))
    );
    assert_eq!(
        again.get_mcp_session("s1").await.unwrap(),
        Some(session("s1", "alice", None, 5))
    );
}

// --- Flow reuse, the flow sweep and token lifetimes (issue 16) -------------------------------

mod flow_reuse_and_lifetimes {
    behaviours!(
        only_one_flow_per_user_provider_and_scopes_holds_a_sealed_link,
        retiring_erases_the_sealed_link_of_expiring_flows_only,
        claiming_or_finishing_a_flow_erases_its_sealed_link,
        the_flow_sweep_deletes_long_expired_and_long_finished_flows_in_batches,
        a_token_lifetime_is_written_by_upsert_and_token_update,
    );
}

fn reusable(id: &str, user: &str, created_at_ms: i64) -> FlowRecord {
    FlowRecord {
        link_sealed: Some(format!("sealed-link-{id}")),
        ..flow(id, user, "google", created_at_ms)
    }
}

async fn only_one_flow_per_user_provider_and_scopes_holds_a_sealed_link(b: Backend) {
    let store = b.store;
    store
        .insert_flow(&reusable("f1", "alice", 1_000))
        .await
        .unwrap();
    let err = store
        .insert_flow(&reusable("f2", "alice", 1_001))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Other scopes, another user or another provider: their own slot.
    store
        .insert_flow(&FlowRecord {
            scopes: scopes(&["email"]),
            ..reusable("f3", "alice", 1_002)
        })
        .await
        .unwrap();
    store
        .insert_flow(&reusable("f4", "bob", 1_003))
        .await
        .unwrap();
    store
        .insert_flow(&FlowRecord {
            provider_id: "github".into(),
            ..reusable("f5", "alice", 1_004)
        })
        .await
        .unwrap();
    // Flows without a sealed link (from before) don't take the slot.
    store
        .insert_flow(&flow("f6", "alice", "google", 1_005))
        .await
        .unwrap();
    let found = store
        .find_reusable_flow("alice", "google", &scopes(&["email", "profile"]), 1_500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "f6", "newest first");
    assert_eq!(
        store
            .get_flow("f1")
            .await
            .unwrap()
            .unwrap()
            .link_sealed
            .as_deref(),
        Some("sealed-link-f1")
    );
}

async fn retiring_erases_the_sealed_link_of_expiring_flows_only(b: Backend) {
    let store = b.store;
    let wanted = scopes(&["email", "profile"]);
    // Expires at 601_000.
    store
        .insert_flow(&reusable("f1", "alice", 1_000))
        .await
        .unwrap();
    store
        .insert_flow(&reusable("bob", "bob", 1_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .retire_reusable_flows("alice", "google", &wanted, 600_999)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .retire_reusable_flows("alice", "google", &wanted, 601_000)
            .await
            .unwrap(),
        1
    );
    let retired = store.get_flow("f1").await.unwrap().unwrap();
    assert_eq!(retired.link_sealed, None);
    assert_eq!(
        retired.status, "pending",
        "its link still works until it expires"
    );
    assert!(
        store
            .claim_flow_link("f1", "s1", None, 2_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .get_flow("bob")
            .await
            .unwrap()
            .unwrap()
            .link_sealed
            .is_some()
    );
    // The slot is free again.
    store
        .insert_flow(&reusable("f2", "alice", 2_000))
        .await
        .unwrap();
}

async fn claiming_or_finishing_a_flow_erases_its_sealed_link(b: Backend) {
    let store = b.store;
    store
        .insert_flow(&reusable("f1", "alice", 1_000))
        .await
        .unwrap();
    assert!(
        store
            .claim_flow_link("f1", "s1", None, 1_500)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_flow("f1").await.unwrap().unwrap().link_sealed,
        None
    );
    store
        .insert_flow(&reusable("f2", "alice", 2_000))
        .await
        .unwrap();

    // A pending update (e.g. `next_uri`) keeps it; an ending one erases it.
    let mut f2 = store.get_flow("f2").await.unwrap().unwrap();
    f2.next_uri = Some("https://app.example/other".into());
    store.update_flow(&f2).await.unwrap();
    assert!(
        store
            .get_flow("f2")
            .await
            .unwrap()
            .unwrap()
            .link_sealed
            .is_some()
    );
    f2.status = "failed".into();
    f2.completed_at_ms = Some(2_100);
    store.update_flow(&f2).await.unwrap();
    assert_eq!(
        store.get_flow("f2").await.unwrap().unwrap().link_sealed,
        None
    );
    store
        .insert_flow(&reusable("f3", "alice", 3_000))
        .await
        .unwrap();
}

async fn the_flow_sweep_deletes_long_expired_and_long_finished_flows_in_batches(b: Backend) {
    let store = b.store;
    // Expire at 601_000 + i; the last two finished later than they expired.
    for i in 0..5 {
        store
            .insert_flow(&flow(&format!("old{i}"), "alice", "google", 1_000 + i))
            .await
            .unwrap();
    }
    store
        .insert_flow(&FlowRecord {
            status: "completed".into(),
            completed_at_ms: Some(700_000),
            ..flow("late", "alice", "google", 1_000)
        })
        .await
        .unwrap();
    store
        .insert_flow(&flow("young", "alice", "google", 500_000))
        .await
        .unwrap();

    assert_eq!(store.sweep_flows(601_000, 100).await.unwrap(), 0);
    assert_eq!(store.sweep_flows(650_000, 3).await.unwrap(), 3);
    assert_eq!(store.sweep_flows(650_000, 3).await.unwrap(), 2);
    assert_eq!(store.sweep_flows(650_000, 3).await.unwrap(), 0);
    assert!(store.get_flow("late").await.unwrap().is_some());
    assert!(store.get_flow("young").await.unwrap().is_some());
    assert_eq!(store.sweep_flows(700_001, 100).await.unwrap(), 1);
    assert!(store.get_flow("young").await.unwrap().is_some());
    assert_eq!(store.sweep_flows(1_100_001, 100).await.unwrap(), 1);
    assert_eq!(store.get_flow("young").await.unwrap(), None);
}

async fn a_token_lifetime_is_written_by_upsert_and_token_update(b: Backend) {
    let store = b.store;
    let original = ConnectionRecord {
        token_lifetime_ms: Some(5_000),
        ..connection("c1", "alice", "google", 100)
    };
    assert_eq!(store.upsert_connection(&original).await.unwrap(), original);
    let update = TokenUpdate {
        access_token_sealed: "sealed-access-2".into(),
        refresh_token_sealed: None,
        expires_at_ms: Some(60_200),
        scopes: scopes(&["email", "profile"]),
        updated_at_ms: 200,
        token_lifetime_ms: Some(60_000),
    };
    assert!(
        store
            .update_connection_tokens("c1", 1, &update)
            .await
            .unwrap()
    );
    let got = store.get_connection_by_id("c1").await.unwrap().unwrap();
    assert_eq!(got.token_lifetime_ms, Some(60_000));
    let again = ConnectionRecord {
        token_lifetime_ms: None,
        ..original
    };
    let replaced = store.upsert_connection(&again).await.unwrap();
    assert_eq!(replaced.token_lifetime_ms, None);
}

// --- MCP session limits: counted per user and credential, and in total ----------------

mod mcp_session_limits {
    behaviours!(
        mcp_sessions_are_counted_per_user_and_credential_and_in_total_since_a_time,
        putting_a_session_again_keeps_one_row_under_its_latest_credential,
    );
}

async fn mcp_sessions_are_counted_per_user_and_credential_and_in_total_since_a_time(b: Backend) {
    use switchboard::store::McpSessionCount;
    let store = &b.store;
    let count = |user: &'static str, credential: &'static str, since: i64| {
        let store = store.clone();
        async move {
            store
                .count_mcp_sessions(user, credential, since)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("alice", "key:1", 0).await, McpSessionCount::default());
    for (id, user, credential, seen) in [
        ("s1", "alice", "key:1", 100),
        ("s2", "alice", "key:1", 200),
        ("s3", "alice", "key:2", 200),
        ("s4", "bob", "key:1", 300),
    ] {
        store
            .put_mcp_session_of(&session(id, user, None, seen), credential)
            .await
            .unwrap();
    }
    // A row stored without a credential (as before the column) counts in the total only.
    store
        .put_mcp_session(&session("s5", "alice", Some("dev"), 400))
        .await
        .unwrap();
    let of = |caller, total| McpSessionCount { caller, total };
    assert_eq!(count("alice", "key:1", 0).await, of(2, 5));
    assert_eq!(count("alice", "key:2", 0).await, of(1, 5));
    assert_eq!(count("bob", "key:1", 0).await, of(1, 5));
    assert_eq!(count("carol", "key:1", 0).await, of(0, 5));
    // Sessions last seen before `since` are expired: not counted.
    assert_eq!(count("alice", "key:1", 200).await, of(1, 4));
    assert_eq!(count("alice", "key:1", 401).await, of(0, 0));
    assert!(store.delete_mcp_session("s2").await.unwrap());
    assert_eq!(count("alice", "key:1", 0).await, of(1, 4));
    assert_eq!(store.prune_mcp_sessions(250).await.unwrap(), 2);
    assert_eq!(count("alice", "key:1", 0).await, of(0, 2));
}

async fn putting_a_session_again_keeps_one_row_under_its_latest_credential(b: Backend) {
    let store = &b.store;
    let first = session("s1", "alice", None, 10);
    store.put_mcp_session_of(&first, "key:1").await.unwrap();
    let again = McpSessionRecord {
        last_seen_ms: 20,
        created_at_ms: 15,
        ..first.clone()
    };
    store.put_mcp_session_of(&again, "token:9").await.unwrap();
    let counted = store
        .count_mcp_sessions("alice", "token:9", 0)
        .await
        .unwrap();
    assert_eq!((counted.caller, counted.total), (1, 1));
    let counted = store.count_mcp_sessions("alice", "key:1", 0).await.unwrap();
    assert_eq!(counted.caller, 0);
    let stored = store.get_mcp_session("s1").await.unwrap().unwrap();
    assert_eq!(stored.last_seen_ms, 20);
    assert_eq!(stored.created_at_ms, 1, "its creation time is kept");
}
