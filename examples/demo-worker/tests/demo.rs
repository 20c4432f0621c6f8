//! The Demo toolkit in process (with a fake sandbox API) and the `demo-worker` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use switchboard_tdk::Worker;

fn request(tool: &str, inputs: Value, context: Value) -> switchboard_wire::ToolCallRequest {
    serde_json::from_value(json!({
        "tool": {"name": tool, "toolkit": "Demo", "version": "0.1.0"},
        "inputs": inputs,
        "context": context,
    }))
    .unwrap()
}

/// A sandbox API whose `/me` knows one token.
async fn fake_sandbox_api() -> String {
    let app = Router::new().route(
        "/api/me",
        get(|headers: HeaderMap| async move {
            match headers.get("authorization").and_then(|h| h.to_str().ok()) {
                Some("Bearer good-token") => {
                    Ok(axum::Json(json!({"sub": "alice", "name": "Alice"})))
                }
                _ => Err(StatusCode::UNAUTHORIZED),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn worker() -> Worker {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = fake_sandbox_api().await;
    Worker::new("s").toolkit(demo_worker::toolkit(&api, reqwest::Client::new()))
}

fn with_token(token: &str) -> Value {
    json!({"user_id": "alice", "authorization": {"token": token}})
}

#[tokio::test]
async fn the_no_auth_tools_answer() {
    let w = worker().await;
    let call = |tool: &'static str, inputs: Value| w.invoke(request(tool, inputs, json!({})));
    assert_eq!(
        call("Echo", json!({"message": "hi"}))
            .await
            .unwrap()
            .output
            .value,
        Some(json!("hi"))
    );
    assert_eq!(
        call("Add", json!({"a": 1.5, "b": 2}))
            .await
            .unwrap()
            .output
            .value,
        Some(json!(3.5))
    );
    let greet = call("Greet", json!({"name": "Ada", "style": "formal"}))
        .await
        .unwrap();
    assert_eq!(greet.output.value, Some(json!("Good day, Ada.")));
    let slow = call("Slow", json!({"millis": 1})).await.unwrap();
    assert_eq!(slow.output.value, Some(json!({"slept_ms": 1})));
}

#[tokio::test]
async fn who_am_i_calls_the_sandbox_api_with_the_users_token() {
    let w = worker().await;
    let res = w
        .invoke(request("WhoAmI", json!({}), with_token("good-token")))
        .await
        .unwrap();
    assert!(res.success, "{res:?}");
    assert_eq!(
        res.output.value,
        Some(json!({"sub": "alice", "name": "Alice"}))
    );
}

#[tokio::test]
async fn a_token_the_sandbox_api_refuses_is_an_upstream_auth_error() {
    let w = worker().await;
    let res = w
        .invoke(request("WhoAmI", json!({}), with_token("stale-token")))
        .await
        .unwrap();
    let err = res.output.error.unwrap();
    assert_eq!(err.kind.as_deref(), Some("UPSTREAM_RUNTIME_AUTH_ERROR"));
    assert_eq!(err.status_code, Some(401));
    assert!(!err.message.contains("stale-token"));
}

#[tokio::test]
async fn token_fingerprint_identifies_the_token_without_returning_it() {
    let w = worker().await;
    let res = w
        .invoke(request(
            "TokenFingerprint",
            json!({}),
            with_token("good-token"),
        ))
        .await
        .unwrap();
    let value = res.output.value.unwrap();
    assert_eq!(value["user_id"], "alice");
    // sha256("good-token"), first 12 hex digits.
    let prefix = value["token_sha256_prefix"].as_str().unwrap();
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"good-token"));
    assert_eq!(prefix, &expected[..12]);
    assert!(!value.to_string().contains("good-token"));
    let again = w
        .invoke(request("TokenFingerprint", json!({}), with_token("other")))
        .await
        .unwrap();
    assert_ne!(again.output.value.unwrap()["token_sha256_prefix"], prefix);
}

#[tokio::test]
async fn fingerprint_answers_like_token_fingerprint_without_a_grant() {
    let w = worker().await;
    let res = w
        .invoke(request(
            "Fingerprint",
            json!({}),
            json!({"user_id": "alice"}),
        ))
        .await
        .unwrap();
    assert!(res.success, "{:?}", res.output.error);
    let value = res.output.value.unwrap();
    assert_eq!(value["user_id"], "alice");
    let prefix = value["token_sha256_prefix"].as_str().unwrap();
    assert_eq!(prefix.len(), 12);
    assert!(prefix.chars().all(|c| c.is_ascii_hexdigit()));
    // The same answer whatever token a call might carry: it uses none.
    let again = w
        .invoke(request("Fingerprint", json!({}), with_token("good-token")))
        .await
        .unwrap();
    assert_eq!(again.output.value.unwrap()["token_sha256_prefix"], prefix);
}

#[tokio::test]
async fn secret_check_reports_the_length_and_never_the_value() {
    let w = worker().await;
    let ctx = json!({"secrets": [{"key": "DEMO_API_KEY", "value": "abcdef"}]});
    let res = w
        .invoke(request("SecretCheck", json!({}), ctx))
        .await
        .unwrap();
    assert_eq!(
        res.output.value,
        Some(json!({"configured": true, "length": 6}))
    );
    let res = w
        .invoke(request("SecretCheck", json!({}), json!({})))
        .await
        .unwrap();
    assert_eq!(
        res.output.error.unwrap().kind.as_deref(),
        Some("TOOL_RUNTIME_CONTEXT_REQUIRED")
    );
}

#[tokio::test]
async fn fail_returns_the_error_it_is_asked_for() {
    let w = worker().await;
    let retry = w
        .invoke(request("Fail", json!({"mode": "retry"}), json!({})))
        .await
        .unwrap();
    let err = retry.output.error.unwrap();
    assert_eq!(
        (err.kind.as_deref(), err.can_retry),
        (Some("TOOL_RUNTIME_RETRY"), true)
    );
    let fatal = w
        .invoke(request("Fail", json!({"mode": "fatal"}), json!({})))
        .await
        .unwrap();
    let err = fatal.output.error.unwrap();
    assert_eq!(
        (err.kind.as_deref(), err.can_retry),
        (Some("TOOL_RUNTIME_FATAL"), false)
    );
}

#[test]
fn the_binary_refuses_to_start_without_a_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo-worker"))
        .args(["--port", "0"])
        .env_remove("ARCADE_WORKER_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ARCADE_WORKER_SECRET") && stderr.contains("--dev"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_binary_prints_its_address_and_serves_the_worker_protocol() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_demo-worker"))
            .args(["--port", "0", "--secret", "bin-secret"])
            .env_remove("ARCADE_WORKER_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("demo-worker listening on ")
        .unwrap()
        .to_owned();

    let http = reqwest::Client::new();
    let health: Value = http
        .get(format!("{base}/worker/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok", "tool_count": "9"}));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = switchboard_wire::jwt::sign("bin-secret", now).unwrap();
    let tools: Vec<Value> = http
        .get(format!("{base}/worker/tools"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<&str> = tools
        .iter()
        .map(|t| t["fully_qualified_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Demo.Add",
            "Demo.Echo",
            "Demo.Fail",
            "Demo.Fingerprint",
            "Demo.Greet",
            "Demo.SecretCheck",
            "Demo.Slow",
            "Demo.TokenFingerprint",
            "Demo.WhoAmI"
        ]
    );
}

/// Stops the worker process even when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
