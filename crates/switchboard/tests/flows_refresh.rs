//! Issue 16, items 9 and 12, end to end: real gateways on 127.0.0.1:0, a TDK worker whose
//! tool needs a grant, and the fake OAuth provider (`common::fake_provider`).
//!
//! - Flows don't pile up: calls by a user without a grant reuse one pending flow (same id,
//!   same link), also when they race, also across replicas; old flows are swept.
//! - No refresh storms: a token that lives less than `auth.refresh_skew` is refreshed once
//!   after it expires, not on every call, against rotating single-use refresh tokens.
//!
//! Expiry is reached by advancing the gateways' shared manual clock (`Clock::advance`), not
//! by sleeping. The replica tests need PostgreSQL (`SWITCHBOARD_TEST_POSTGRES_URL`), each in a
//! fresh schema; without it they skip with a note, unless `CI` is set: then they fail.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::fake_provider::{FakeProvider, RefreshMode};
use common::flows::{authorize, browse, oauth_config, open_link};
use common::postgres::with_postgres;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard::clock::Clock;
use switchboard::config::{Config, SecretValue, StorageConfig};
use switchboard::oauth::{AuthService, FLOW_RETENTION};
use switchboard::server::Gateway;
use switchboard_tdk::{Auth, Tool, ToolContext, ToolError, Toolkit};
use tokio::net::TcpListener;

const ROOT_KEY: &str = "flows-refresh-tests-root-key-0123456789";
const FLOW_TTL: Duration = Duration::from_secs(600);

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `Acct.Me` (scope `read`) asks the fake provider whose token it got.
fn acct_toolkit(fake: FakeProvider) -> Toolkit {
    Toolkit::new("Acct", "1.0.0")
        .description("the user's fake account")
        .tool(
            Tool::new(
                "Me",
                "Who the provider says the token belongs to",
                move |ctx: ToolContext, _i: Empty| {
                    let token = ctx.token().map(str::to_owned);
                    let fake = fake.clone();
                    async move {
                        let token = token.ok_or_else(|| ToolError::context_required("no token"))?;
                        match fake.api_subject(&token) {
                            Some(subject) => {
                                Ok(json!({"subject": subject, "token_sha256": sha(&token)}))
                            }
                            None => Err(ToolError::upstream(401, "the provider refused the token")),
                        }
                    }
                },
            )
            .requires_auth(Auth::oauth2("fake").scopes(["read"])),
        )
}

/// One gateway: its HTTP side and its auth service (to sweep its flows).
struct Replica {
    gw: Arc<TestGateway>,
    auth: Arc<AuthService>,
}

struct Env {
    replicas: Vec<Replica>,
    /// Every replica's clock.
    clock: Clock,
    fake: FakeProvider,
    storage: StorageConfig,
    _worker: TestWorker,
}

impl Env {
    /// `n` gateways on `pg_url` (or one on SQLite), one provider in `mode` and one worker.
    async fn start(n: usize, pg_url: Option<&str>, mode: RefreshMode) -> Env {
        let fake = FakeProvider::start().await;
        fake.set_mode(mode);
        let worker = start_toolkit_worker(acct_toolkit(fake.clone())).await;
        let clock = Clock::manual();
        let mut replicas = Vec::new();
        let mut storage = None;
        for _ in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut c = test_config(dir.path());
            c.api.public_url = format!("http://{}", listener.local_addr().unwrap());
            configure(&mut c, &fake, &worker);
            if let Some(url) = pg_url {
                c.storage = StorageConfig::Postgres {
                    url: SecretValue::new(url),
                };
            }
            storage = Some(c.storage.clone());
            let gateway = Gateway::start_with_clock(c, clock.clone()).await.unwrap();
            let auth = gateway.state.oauth.clone();
            let gw = serve_gateway(gateway, listener, dir).await;
            replicas.push(Replica {
                gw: Arc::new(gw),
                auth,
            });
        }
        Env {
            replicas,
            clock,
            fake,
            storage: storage.unwrap(),
            _worker: worker,
        }
    }

    fn gw(&self) -> &TestGateway {
        &self.replicas[0].gw
    }

    /// Rows in `flows`, counted in the database itself.
    async fn flow_rows(&self) -> i64 {
        use sqlx::Connection;
        let sql = "SELECT count(*) FROM flows";
        match &self.storage {
            StorageConfig::Sqlite { path } => {
                let url = format!("sqlite://{}", path.display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            StorageConfig::Postgres { url } => {
                let mut c = sqlx::PgConnection::connect(url.expose()).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

fn configure(c: &mut Config, fake: &FakeProvider, worker: &TestWorker) {
    oauth_config(c, ROOT_KEY);
    c.auth_providers.push(fake.provider_config("fake"));
    c.workers.push(worker_config("acct", &worker.url()));
    c.oauth.flow_ttl = FLOW_TTL;
}

async fn run_me(gw: &TestGateway, user: &str) -> (u16, Value) {
    gw.execute(json!({"tool_name": "Acct.Me", "input": {}, "user_id": user}))
        .await
}

/// A call by a user without a grant: the flow (id, link URL) it was answered with.
async fn needs_authorization(gw: &TestGateway, user: &str) -> (String, String) {
    let (status, body) = run_me(gw, user).await;
    assert_eq!(status, 403, "{body}");
    let authz = &body["output"]["authorization"];
    assert_eq!(authz["status"], "pending", "{body}");
    (
        authz["id"].as_str().expect("a flow id").to_owned(),
        authz["url"].as_str().expect("a link").to_owned(),
    )
}

/// The whole flow for `user`, who is `subject` at the provider, through `gw`.
async fn connect(gw: &TestGateway, fake: &FakeProvider, user: &str, subject: &str) {
    let (_, link) = needs_authorization(gw, user).await;
    let provider_url = open_link(&link).await;
    let approval = fake.approve(&provider_url, subject);
    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200, "{page}");
}

/// Runs `Acct.Me` and expects `subject`'s newest token.
fn assert_newest_token(fake: &FakeProvider, subject: &str, (status, body): &(u16, Value)) {
    assert_eq!(*status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["output"]["value"]["subject"], subject, "{body}");
    assert_eq!(
        body["output"]["value"]["token_sha256"],
        sha(&fake.latest_access_token(subject).unwrap()),
        "{body}"
    );
}

// --- Item 9: flows ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_calls_without_a_grant_leave_one_flow_and_hand_out_one_link() {
    let env = Env::start(1, None, RefreshMode::Normal).await;
    let first = needs_authorization(env.gw(), "carol").await;
    for _ in 0..499 {
        assert_eq!(needs_authorization(env.gw(), "carol").await, first);
    }
    assert_eq!(env.flow_rows().await, 1);

    // `/v1/auth/authorize` for the same scopes, in any order, is the same flow too.
    let auth = authorize(env.gw(), "carol", &["read"]).await;
    assert_eq!(
        (auth["id"].as_str(), auth["url"].as_str()),
        (Some(&*first.0), Some(&*first.1))
    );
    let a = authorize(env.gw(), "carol", &["write", "read"]).await;
    let b = authorize(env.gw(), "carol", &["read", " write", "write"]).await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["url"], b["url"]);
    assert_ne!(
        a["id"].as_str(),
        Some(&*first.0),
        "another scope set, another flow"
    );
    // Another user gets a flow of their own.
    assert_ne!(needs_authorization(env.gw(), "dave").await.0, first.0);
    assert_eq!(env.flow_rows().await, 3);

    // The reused link still works, once.
    connect(env.gw(), &env.fake, "carol", "carol-login").await;
    assert_newest_token(&env.fake, "carol-login", &run_me(env.gw(), "carol").await);
}

async fn twenty_parallel_calls_share_one_flow(env: &Env) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let gw = env.replicas[i % env.replicas.len()].gw.clone();
            tokio::spawn(async move { needs_authorization(&gw, "erin").await.0 })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "every caller got the same flow: {ids:?}");
    assert_eq!(env.flow_rows().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_calls_without_a_grant_share_one_flow() {
    let env = Env::start(1, None, RefreshMode::Normal).await;
    twenty_parallel_calls_share_one_flow(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_calls_across_two_replicas_share_one_flow() {
    with_postgres("sb_flows", |pg_url| async move {
        let env = Env::start(2, Some(&pg_url), RefreshMode::Normal).await;
        twenty_parallel_calls_share_one_flow(&env).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_past_its_ttl_is_replaced_and_swept_with_finished_ones() {
    let env = Env::start(1, None, RefreshMode::Normal).await;
    let auth = &env.replicas[0].auth;
    let old = needs_authorization(env.gw(), "frank").await;
    assert_eq!(
        auth.sweep_flows(env.clock.now_ms()).await.unwrap(),
        0,
        "nothing old yet"
    );

    // Past its TTL the flow is not handed out again.
    env.clock.advance(FLOW_TTL + Duration::from_secs(1));
    let new = needs_authorization(env.gw(), "frank").await;
    assert_ne!(new.0, old.0);
    assert_ne!(new.1, old.1);
    // A completed flow, for grace.
    connect(env.gw(), &env.fake, "grace", "grace-login").await;
    assert_eq!(env.flow_rows().await, 3);

    // The expired flow goes once its retention is over; the live and finished ones stay.
    assert_eq!(
        auth.sweep_flows(env.clock.now_ms() + FLOW_RETENTION.as_millis() as i64)
            .await
            .unwrap(),
        1
    );
    assert_eq!(env.flow_rows().await, 2);
    assert_eq!(needs_authorization(env.gw(), "frank").await, new);

    // Later, everything old goes; the connection stays.
    let later = env.clock.now_ms() + (FLOW_TTL + FLOW_RETENTION).as_millis() as i64 + 1_000;
    assert_eq!(auth.sweep_flows(later).await.unwrap(), 2);
    assert_eq!(env.flow_rows().await, 0);
    assert_newest_token(&env.fake, "grace-login", &run_me(env.gw(), "grace").await);
}

// --- Item 12: refresh ------------------------------------------------------------------------

/// Alice and Bob connect with 5-second tokens (shorter than the default 5-minute skew),
/// the tokens expire, and 40 concurrent calls each (round-robin over the replicas) are
/// followed by one more call each per replica. The provider rotates single-use refresh
/// tokens: exactly one refresh per user, and no refresh token used twice.
async fn forty_concurrent_calls_per_user_refresh_once(env: &Env) {
    env.fake.set_expires_in(5);
    let users = [("alice", "alice-login"), ("bob", "bob-login")];
    for (user, subject) in users {
        connect(env.gw(), &env.fake, user, subject).await;
    }
    // Refreshed tokens live a minute: still well inside the skew, so without scaling each
    // call would refresh again, yet long enough that none is due again during the test.
    env.fake.set_expires_in(60);
    env.clock.advance(Duration::from_secs(6));

    let tasks: Vec<_> = (0..80)
        .map(|i| {
            let gw = env.replicas[i % env.replicas.len()].gw.clone();
            let (user, subject) = users[(i / env.replicas.len()) % 2];
            tokio::spawn(async move { (subject, run_me(&gw, user).await) })
        })
        .collect();
    for t in tasks {
        let (subject, result) = t.await.unwrap();
        assert_newest_token(&env.fake, subject, &result);
    }
    for r in &env.replicas {
        for (user, subject) in users {
            assert_newest_token(&env.fake, subject, &run_me(&r.gw, user).await);
        }
    }
    for (_, subject) in users {
        assert_eq!(env.fake.refreshes_of(subject), 1, "refreshes for {subject}");
    }
    assert_eq!(env.fake.refreshes(), 2);
    assert_eq!(env.fake.invalid_grants(), 0, "no refresh token used twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_calls_per_user_after_expiry_refresh_each_short_lived_token_once() {
    let env = Env::start(1, None, RefreshMode::Rotate).await;
    forty_concurrent_calls_per_user_refresh_once(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_calls_per_user_across_two_replicas_refresh_each_token_once() {
    with_postgres("sb_flows", |pg_url| async move {
        let env = Env::start(2, Some(&pg_url), RefreshMode::Rotate).await;
        forty_concurrent_calls_per_user_refresh_once(&env).await;
    })
    .await;
}
