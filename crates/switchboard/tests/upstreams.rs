//! Upstream MCP servers as tool sources, end to end over real HTTP: a gateway on
//! 127.0.0.1:0 in front of rmcp's Streamable HTTP server (`common::upstream`), through
//! both doors.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mcp_client::{Client, rpc, tool_names};
use common::upstream::{RmcpUpstream, echo_result, fail_result, tool_objects};
use common::{eventually, start_gateway, test_config};
use serde_json::json;
use sha2::{Digest, Sha256};
use switchboard::clock::Clock;
use switchboard::config::{Config, McpUpstreamConfig};
use switchboard::server::Gateway;
use tokio::net::TcpListener;
use tokio::sync::watch;

fn upstream_config(id: &str, uri: &str) -> McpUpstreamConfig {
    McpUpstreamConfig {
        id: id.into(),
        enabled: true,
        director: None,
        uri: uri.into(),
        timeout: Duration::from_secs(5),
        retry: 0,
        headers: Vec::new(),
    }
}

/// The upstream `up` at `uri`, reachable on loopback through the allowlist.
fn with_upstream(id: &str, uri: &str) -> impl FnOnce(&mut Config) {
    let upstream = upstream_config(id, uri);
    move |c: &mut Config| {
        c.upstreams.push(upstream);
        c.network.allowlist = vec!["127.0.0.1".into()];
    }
}

async fn rest_tool_names(gw: &common::TestGateway) -> Vec<String> {
    let (status, body) = gw.get("/v1/tools?limit=1000").await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["qualified_name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_upstreams_tools_are_listed_on_both_doors_with_its_own_schema() {
    let upstream = RmcpUpstream::start().await;
    let gw = start_gateway(with_upstream("up", upstream.url.as_str())).await;

    let names = rest_tool_names(&gw).await;
    for tool in ["up.echo", "up.fail", "up.slow", "up.big", "Builtin.Echo"] {
        assert!(names.contains(&tool.to_string()), "{tool} in {names:?}");
    }
    let (status, echo) = gw.get("/v1/tools/up.echo").await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["toolkit"]["name"], "up");
    assert_eq!(echo["description"], "Says the message back");
    assert_eq!(echo["input"]["parameters"][0]["name"], "message");
    assert_eq!(echo["input"]["parameters"][0]["required"], true);
    assert_eq!(
        echo["input"]["parameters"][0]["value_schema"]["val_type"],
        "string"
    );

    let mut client = Client::new(&gw, "/v1/mcps/alice/mcp");
    client.initialize(json!({})).await;
    let list = client.post(rpc(1, "tools/list", json!({}))).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let tools = list.body["result"]["tools"].as_array().unwrap();
    let listed = tools.iter().find(|t| t["name"] == "up_echo").unwrap();
    // The upstream's own object, under the gateway's name for it.
    let mut expected = tool_objects()[0].clone();
    expected["name"] = json!("up_echo");
    assert_eq!(*listed, expected);
    assert!(tool_names(&list.body["result"]).contains(&"up_fail".to_string()));
}

#[tokio::test]
async fn calls_pass_through_rest_and_mcp_faithfully() {
    let upstream = RmcpUpstream::start().await;
    let gw = start_gateway(with_upstream("up", upstream.url.as_str())).await;

    let (status, body) = gw
        .execute(json!({"tool_name": "up.echo", "input": {"message": "hi"}, "user_id": "alice"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["output"]["value"], json!({"echo": "hi"}));

    let (status, body) = gw
        .execute(json!({"tool_name": "up.fail", "input": {}, "user_id": "alice"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["output"]["error"]["message"], "it failed");

    let mut client = Client::new(&gw, "/v1/mcps/alice/mcp");
    client.initialize(json!({})).await;
    let echo = client.call("up_echo", json!({"message": "hello"})).await;
    assert_eq!(echo.status, 200, "{}", echo.body);
    assert_eq!(echo.body["result"], echo_result("hello"));
    let fail = client.call("up_fail", json!({})).await;
    assert_eq!(fail.body["result"], fail_result());

    // The same through rmcp's own path (no direct answers).
    let gw2 = start_gateway(|c| {
        with_upstream("up", upstream.url.as_str())(c);
        c.api.mcp_direct_tool_calls = false;
    })
    .await;
    let mut client = Client::new(&gw2, "/v1/mcps/alice/mcp");
    client.initialize(json!({})).await;
    let echo = client.call("up_echo", json!({"message": "hello"})).await;
    assert_eq!(echo.body["result"], echo_result("hello"));
}

#[tokio::test]
async fn each_user_gets_an_upstream_session_of_their_own() {
    let upstream = RmcpUpstream::start().await;
    let gw = start_gateway(with_upstream("up", upstream.url.as_str())).await;
    // The catalog's listing holds one session.
    let listing = upstream.initializes();
    assert_eq!(listing, 1);

    let call =
        |user: &str| json!({"tool_name": "up.echo", "input": {"message": "x"}, "user_id": user});
    assert_eq!(gw.execute(call("alice")).await.1["success"], true);
    assert_eq!(upstream.initializes(), 2);
    assert_eq!(gw.execute(call("alice")).await.1["success"], true);
    assert_eq!(upstream.initializes(), 2, "alice's session is reused");
    assert_eq!(gw.execute(call("bob")).await.1["success"], true);
    assert_eq!(upstream.initializes(), 3, "bob gets his own");
    assert_eq!(upstream.live_sessions().await, 3);
}

/// A TCP forwarder that can be switched off, closing every connection it carries: an
/// upstream that goes down and comes back.
struct Switch {
    url: String,
    target: Arc<Mutex<Option<SocketAddr>>>,
    generation: watch::Sender<u64>,
}

impl Switch {
    async fn start() -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(None::<SocketAddr>));
        let (generation, _) = watch::channel(0u64);
        let (t, g) = (target.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Some(to) = *t.lock().unwrap() else {
                    continue;
                };
                let mut changed = g.subscribe();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = changed.changed() => {}
                        }
                    }
                });
            }
        });
        Switch {
            url: format!("http://{addr}/mcp"),
            target,
            generation,
        }
    }

    fn up(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = Some(to);
    }

    fn down(&self) {
        *self.target.lock().unwrap() = None;
        self.generation.send_modify(|g| *g += 1);
    }
}

#[tokio::test]
async fn an_upstream_that_is_down_fails_only_its_own_tools_and_comes_back() {
    let upstream = RmcpUpstream::start().await;
    let switch = Switch::start().await;
    let gw = start_gateway(with_upstream("up", &switch.url)).await;

    // Never reached: no tools of its own, every other tool works.
    assert!(!rest_tool_names(&gw).await.contains(&"up.echo".to_string()));
    let builtin = json!({"tool_name": "Builtin.Echo", "input": {"message": "b"}});
    assert_eq!(gw.execute(builtin.clone()).await.1["success"], true);

    switch.up(upstream.addr);
    assert!(
        eventually(|| async { rest_tool_names(&gw).await.contains(&"up.echo".to_string()) }).await,
        "the tools appear once the upstream answers"
    );
    let echo = json!({"tool_name": "up.echo", "input": {"message": "e"}, "user_id": "alice"});
    assert_eq!(gw.execute(echo.clone()).await.1["success"], true);

    switch.down();
    let (_, body) = gw.execute(echo.clone()).await;
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(
        body["output"]["error"]["message"], "upstream 'up' is unreachable",
        "{body}"
    );
    assert_eq!(
        body["output"]["error"]["kind"],
        "NETWORK_TRANSPORT_RUNTIME_UNREACHABLE"
    );
    assert_eq!(gw.execute(builtin).await.1["success"], true);

    switch.up(upstream.addr);
    assert!(
        eventually(|| async { gw.execute(echo.clone()).await.1["success"] == true }).await,
        "calls work again once the upstream is back"
    );
}

#[tokio::test]
async fn a_name_over_64_characters_is_shortened_the_same_way_each_time() {
    let upstream = RmcpUpstream::start().await;
    let id = "u".repeat(95);
    let full = format!("{id}_echo");
    assert_eq!(full.len(), 100);
    let hash = hex::encode(Sha256::digest(full.as_bytes()));
    let expected = format!("{}_{}", &full[..55], &hash[..8]);
    assert_eq!(expected.len(), 64);

    let gw = start_gateway(with_upstream(&id, upstream.url.as_str())).await;
    let mut client = Client::new(&gw, "/v1/mcps/alice/mcp");
    client.initialize(json!({})).await;
    let list = client.post(rpc(1, "tools/list", json!({}))).await;
    let names = tool_names(&list.body["result"]);
    assert!(names.contains(&expected), "{expected} in {names:?}");
    assert!(names.iter().all(|n| n.len() <= 64), "{names:?}");
    let echo = client.call(&expected, json!({"message": "short"})).await;
    assert_eq!(echo.body["result"], echo_result("short"));
    // REST keeps the full name.
    let (_, body) = gw
        .execute(
            json!({"tool_name": format!("{id}.echo"), "input": {"message": "m"}, "user_id": "a"}),
        )
        .await;
    assert_eq!(body["success"], true, "{body}");
}

#[tokio::test]
async fn an_upstream_on_loopback_without_the_allowlist_is_refused_by_name_without_hanging() {
    let upstream = RmcpUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config
        .upstreams
        .push(upstream_config("local", upstream.url.as_str()));
    let gateway = tokio::time::timeout(
        Duration::from_secs(30),
        Gateway::start_with_clock(config, Clock::manual()),
    )
    .await
    .expect("the start does not hang")
    .expect("the gateway starts");
    let handle = &gateway.registry.upstreams()[0];
    assert_eq!(handle.config.id, "local");
    let status = handle.status();
    assert!(!status.healthy);
    assert!(
        status.message.contains("refusing to connect to 127.0.0.1"),
        "{}",
        status.message
    );
    assert!(status.tools.is_empty());
    assert!(
        gateway
            .registry
            .catalog()
            .snapshot()
            .resolve("local.echo", None)
            .is_err()
    );
    assert_eq!(upstream.initializes(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn static_headers_reach_the_upstream_and_the_callers_credential_does_not() {
    let upstream = RmcpUpstream::start().await;
    let mut config = upstream_config("up", upstream.url.as_str());
    config.headers = vec![(
        "Authorization".into(),
        switchboard::config::SecretValue::new("Bearer upstream-token"),
    )];
    let gw = start_gateway(move |c| {
        c.upstreams.push(config);
        c.network.allowlist = vec!["127.0.0.1".into()];
    })
    .await;
    let (_, body) = gw
        .execute(json!({"tool_name": "up.echo", "input": {"message": "x"}, "user_id": "alice"}))
        .await;
    assert_eq!(body["success"], true, "{body}");
    let mut client = Client::new(&gw, "/v1/mcps/alice/mcp");
    client.initialize(json!({})).await;
    client.call("up_echo", json!({"message": "y"})).await;
    let seen = upstream.authorizations();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|a| a.as_deref() == Some("Bearer upstream-token")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn the_worker_api_shows_an_upstream_as_type_mcp_without_its_header_values() {
    let upstream = RmcpUpstream::start().await;
    let mut config = upstream_config("up", upstream.url.as_str());
    config.headers = vec![(
        "X-Api-Key".into(),
        switchboard::config::SecretValue::new("upstream-key-never-shown"),
    )];
    let gw = start_gateway(move |c: &mut Config| {
        c.upstreams.push(config);
        c.network.allowlist = vec!["127.0.0.1".into()];
    })
    .await;

    let (status, list) = gw.get("/v1/workers").await;
    assert_eq!(status, 200, "{list}");
    let up = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "up")
        .unwrap_or_else(|| panic!("no worker 'up' in {list}"))
        .clone();
    assert_eq!(up["type"], "mcp");
    assert_eq!(up["mcp"]["uri"], upstream.url.as_str());
    assert_eq!(up["mcp"]["headers"]["X-Api-Key"]["exists"], true);
    assert_eq!(up["healthy"], true, "{up}");
    assert_eq!(up["toolkits"], json!(["up"]));

    let (status, one) = gw.get("/v1/workers/up").await;
    assert_eq!(status, 200);
    assert_eq!(one, up);
    let (status, health) = gw.get("/v1/workers/up/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["healthy"], true);
    let (status, tools) = gw.get("/v1/workers/up/tools").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = tools["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["fully_qualified_name"].as_str().unwrap_or_default())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("up.echo")), "{tools}");

    for body in [&list, &one, &health, &tools] {
        assert!(!body.to_string().contains("upstream-key-never-shown"));
    }
    let (status, _) = gw.get("/v1/workers/nope").await;
    assert_eq!(status, 404);
}

/// Many users at once, each with several calls in flight: every upstream session carries one
/// user's calls only, and each user keeps to one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_concurrency_no_upstream_session_ever_carries_two_users_calls() {
    const USERS: usize = 16;
    const CALLS: usize = 6;
    let upstream = RmcpUpstream::start().await;
    let gw = Arc::new(start_gateway(with_upstream("up", upstream.url.as_str())).await);

    let mut calls = tokio::task::JoinSet::new();
    for call in 0..CALLS {
        for user in 0..USERS {
            let gw = gw.clone();
            calls.spawn(async move {
                let user = format!("user-{user}");
                let (status, body) = gw
                    .execute(json!({
                        "tool_name": "up.echo",
                        "input": {"message": format!("{user}/{call}")},
                        "user_id": user,
                    }))
                    .await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["output"]["value"]["echo"], format!("{user}/{call}"));
            });
        }
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }

    let mut users_of_session: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    let mut sessions_of_user: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    let echoes = upstream.echoes();
    assert_eq!(echoes.len(), USERS * CALLS);
    for (session, message) in echoes {
        let session = session.expect("every call rides a session");
        let user = message.split('/').next().unwrap().to_owned();
        users_of_session
            .entry(session.clone())
            .or_default()
            .insert(user.clone());
        sessions_of_user.entry(user).or_default().insert(session);
    }
    for (session, users) in &users_of_session {
        assert_eq!(users.len(), 1, "session {session} carried {users:?}");
    }
    assert_eq!(sessions_of_user.len(), USERS);
    for (user, sessions) in &sessions_of_user {
        assert_eq!(sessions.len(), 1, "{user} used {sessions:?}");
    }
}
