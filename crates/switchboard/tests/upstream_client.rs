//! The client side of an upstream MCP server over Streamable HTTP (`switchboard::upstream`),
//! against real servers on 127.0.0.1:0: rmcp's own (SSE answers, sessions) and a
//! hand-written one for misbehaviour (JSON answers, garbage, lost sessions, no sessions).

mod common;

use std::time::Duration;

use common::upstream::*;
use http::HeaderName;
use serde_json::{Map, Value, json};
use switchboard::net::{OutboundPolicy, guarded_client};
use switchboard::upstream::{UpstreamClient, UpstreamError, UpstreamSettings};
use switchboard::vault::SecretString;

const SECRET: &str = "Bearer sekrit-token-4242";

fn settings(uri: reqwest::Url) -> UpstreamSettings {
    UpstreamSettings {
        id: "up".into(),
        uri,
        timeout: Duration::from_secs(10),
        retry: 1,
        headers: vec![(
            HeaderName::from_static("authorization"),
            SecretString::new(SECRET),
        )],
        max_reply_bytes: 64 * 1024,
    }
}

fn client(settings: UpstreamSettings) -> UpstreamClient {
    let http = guarded_client(OutboundPolicy::new(&[], true).unwrap()).unwrap();
    UpstreamClient::new(settings, http)
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// Neither the error's text nor its debug form carries the configured header value.
fn assert_no_secret(e: &UpstreamError) {
    let text = format!("{e} {e:?}");
    assert!(!text.contains("sekrit"), "{text}");
}

#[tokio::test]
async fn tools_are_listed_across_pages_exactly_as_the_upstream_gave_them() {
    let up = RmcpUpstream::start().await;
    let c = client(settings(up.url.clone()));
    let tools = c.list_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["echo", "fail", "slow", "big"]);
    assert_eq!(tools[0].raw, tool_objects()[0]);
    assert_eq!(up.initializes(), 1);
}

#[tokio::test]
async fn a_call_returns_the_upstream_result_object_exactly() {
    let up = RmcpUpstream::start().await;
    let c = client(settings(up.url.clone()));
    let result = c
        .call_tool("alice", "echo", args(json!({ "message": "hi" })))
        .await
        .unwrap();
    assert_eq!(result, echo_result("hi"));
    assert_eq!(up.authorizations(), vec![Some(SECRET.to_owned())]);
}

#[tokio::test]
async fn an_is_error_result_passes_through_as_a_result() {
    let up = RmcpUpstream::start().await;
    let c = client(settings(up.url.clone()));
    let result = c.call_tool("alice", "fail", Map::new()).await.unwrap();
    assert_eq!(result, fail_result());
}

#[tokio::test]
async fn an_unknown_tool_is_a_json_rpc_error() {
    let up = RmcpUpstream::start().await;
    let c = client(settings(up.url.clone()));
    let e = c.call_tool("alice", "nope", Map::new()).await.unwrap_err();
    assert!(
        matches!(e, UpstreamError::Rpc { code: -32602, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn two_session_keys_get_two_upstream_sessions_and_close_ends_both() {
    let up = RmcpUpstream::start().await;
    let c = client(settings(up.url.clone()));
    for key in ["alice", "bob", "alice"] {
        c.call_tool(key, "echo", args(json!({ "message": key })))
            .await
            .unwrap();
    }
    assert_eq!(up.initializes(), 2);
    assert_eq!(up.live_sessions().await, 2);
    assert_eq!(c.session_count(), 2);
    c.close().await;
    assert_eq!(c.session_count(), 0);
    assert_eq!(up.live_sessions().await, 0);
}

#[tokio::test]
async fn a_session_the_upstream_ended_is_initialized_again_once_and_the_call_succeeds() {
    let up = RmcpUpstream::start().await;
    let c = client(settings(up.url.clone()));
    c.call_tool("alice", "echo", args(json!({ "message": "a" })))
        .await
        .unwrap();
    up.kill_sessions().await;
    let result = c
        .call_tool("alice", "echo", args(json!({ "message": "b" })))
        .await
        .unwrap();
    assert_eq!(result, echo_result("b"));
    assert_eq!(up.initializes(), 2);
}

#[tokio::test]
async fn a_forgotten_session_on_a_json_upstream_is_replaced_with_the_negotiated_version() {
    let up = RawUpstream::start(RawMode::Sessions).await;
    let c = client(settings(up.url.clone()));
    c.call_tool("alice", "raw", Map::new()).await.unwrap();
    up.forget();
    c.call_tool("alice", "raw", Map::new()).await.unwrap();
    assert_eq!(up.initializes(), 2);
    let seen = up.seen();
    let last = seen.last().unwrap();
    assert_eq!(last["mcp-session-id"], "raw-1");
    assert_eq!(last["mcp-protocol-version"], "2025-06-18");
    assert_eq!(last["authorization"], SECRET);
}

#[tokio::test]
async fn a_session_that_keeps_answering_404_fails_after_one_reinitialize() {
    let up = RawUpstream::start(RawMode::AlwaysGone).await;
    let c = client(settings(up.url.clone()));
    let e = c.call_tool("alice", "raw", Map::new()).await.unwrap_err();
    assert_eq!(e, UpstreamError::Http { status: 404 });
    assert_eq!(up.initializes(), 2);
}

#[tokio::test]
async fn an_upstream_without_sessions_works_and_gets_no_session_header() {
    let up = RawUpstream::start(RawMode::Sessionless).await;
    let c = client(settings(up.url.clone()));
    let tools = c.list_tools().await.unwrap();
    assert_eq!(tools[0].name, "raw");
    c.call_tool("alice", "raw", Map::new()).await.unwrap();
    c.call_tool("alice", "raw", Map::new()).await.unwrap();
    assert_eq!(up.initializes(), 2, "one per key");
    assert!(up.seen().iter().all(|h| !h.contains_key("mcp-session-id")));
    c.close().await;
    assert_eq!(up.deletes(), 0, "nothing to end");
}

#[tokio::test]
async fn a_slow_tool_times_out() {
    let up = RmcpUpstream::start().await;
    let mut s = settings(up.url.clone());
    s.timeout = Duration::from_millis(300);
    let c = client(s);
    let e = c.call_tool("alice", "slow", Map::new()).await.unwrap_err();
    assert_eq!(e, UpstreamError::Timeout);
    assert_no_secret(&e);
}

#[tokio::test]
async fn a_reply_over_the_cap_is_too_large() {
    let up = RmcpUpstream::start().await;
    let c = client(settings(up.url.clone()));
    let e = c.call_tool("alice", "big", Map::new()).await.unwrap_err();
    assert_eq!(e, UpstreamError::TooLarge);
}

#[tokio::test]
async fn a_garbage_body_is_a_protocol_error_without_the_header_value() {
    let up = RawUpstream::start(RawMode::Garbage).await;
    let c = client(settings(up.url.clone()));
    let e = c.call_tool("alice", "raw", Map::new()).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Protocol(_)), "{e:?}");
    assert_no_secret(&e);
}

#[tokio::test]
async fn an_upstream_nobody_listens_on_is_unreachable_without_the_header_value() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = client(settings(format!("http://{addr}/mcp").parse().unwrap()));
    let e = c.list_tools().await.unwrap_err();
    assert_eq!(e, UpstreamError::Unreachable);
    assert_no_secret(&e);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_its_target_never_hears_from_the_gateway() {
    // The target stands for an internal address the upstream would like us to reach.
    let target = RawUpstream::start(RawMode::Sessionless).await;
    let up = RawUpstream::start(RawMode::Redirect).await;
    up.redirect_to(target.url.as_str());
    let c = client(settings(up.url.clone()));
    let e = c.call_tool("alice", "raw", Map::new()).await.unwrap_err();
    assert_eq!(e, UpstreamError::Http { status: 307 });
    assert_no_secret(&e);
    assert_eq!(target.initializes(), 0);
    assert!(target.seen().is_empty());
}

#[tokio::test]
async fn a_loopback_upstream_is_refused_by_the_guard_outside_dev_mode() {
    let up = RmcpUpstream::start().await;
    let http = guarded_client(OutboundPolicy::new(&[], false).unwrap()).unwrap();
    let c = UpstreamClient::new(settings(up.url.clone()), http);
    let e = c.list_tools().await.unwrap_err();
    assert!(matches!(e, UpstreamError::Refused(_)), "{e:?}");
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
    assert_no_secret(&e);
    assert_eq!(up.initializes(), 0);
}

#[tokio::test]
async fn a_header_value_that_is_not_valid_is_named_but_not_shown() {
    let up = RawUpstream::start(RawMode::Sessions).await;
    let mut s = settings(up.url.clone());
    s.headers = vec![(
        HeaderName::from_static("x-api-key"),
        SecretString::new("sekrit\nvalue"),
    )];
    let e = client(s).list_tools().await.unwrap_err();
    assert_eq!(e, UpstreamError::BadHeader("x-api-key".into()));
    assert_no_secret(&e);
}

#[tokio::test]
async fn an_idle_session_is_ended_and_replaced_on_the_next_use() {
    let up = RawUpstream::start(RawMode::Sessions).await;
    let http = guarded_client(OutboundPolicy::new(&[], true).unwrap()).unwrap();
    let c = UpstreamClient::with_session_idle(
        settings(up.url.clone()),
        http,
        Duration::from_millis(100),
    );
    c.call_tool("alice", "raw", Map::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.call_tool("bob", "raw", Map::new()).await.unwrap();
    assert_eq!(c.session_count(), 1, "alice's session was dropped");
    // Its DELETE is sent in the background.
    for _ in 0..200 {
        if up.deletes() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.deletes(), 1);
    c.call_tool("alice", "raw", Map::new()).await.unwrap();
    assert_eq!(up.initializes(), 3);
}
