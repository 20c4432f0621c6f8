//! One user id, one user (issue 16, item 3): a user id is compared as exact bytes and never
//! normalised, and an id that could pass for another ("alice " beside "alice"), holds a
//! control character, is empty or is longer than 256 bytes is refused at every entry point:
//! REST, the MCP path and header, user tokens, admin routes and the CLI.
//!
//! Real HTTP against an in-process gateway on 127.0.0.1:0, a TDK worker, the fake OAuth
//! provider (the test plays the browser), and the real binary for the CLI.

mod common;

use std::process::{Command, Output};

use common::flows::{browse, call, call_url, open_link};
use common::mcp_client::*;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use switchboard::config::{Config, UserVerifier};

const VERIFIER: &str = "https://app.example.test/verify";

/// Ids every entry point must refuse.
fn refused() -> Vec<String> {
    vec![
        " alice".into(),
        "alice ".into(),
        "al\nice".into(),
        String::new(),
        "a".repeat(257),
    ]
}

/// Ids every entry point must take exactly as given.
fn accepted() -> Vec<String> {
    vec!["alice".into(), "b".repeat(256), "zoë".into()]
}

/// A gateway with `Acct` (needs a `fake` grant), the fake provider, and the `Kit` test
/// toolkit (its worker returned); `customise` runs last.
async fn env(customise: impl FnOnce(&mut Config)) -> (AuthEnv, TestWorker) {
    let (kit, configure) = with_kit(customise).await;
    (auth_env(configure).await, kit)
}

async fn post(gw: &TestGateway, path: &str, body: Value) -> (u16, Value) {
    call(gw, Method::POST, path, Some(body)).await
}

/// The gateway's URL with these path segments (see [`path_with`]).
fn url_with(gw: &TestGateway, segments: &[&str]) -> String {
    gw.url(&path_with(segments))
}

/// A path of these segments, every byte but unreserved ones percent-encoded (the `url`
/// crate would drop a `\n` instead).
fn path_with(segments: &[&str]) -> String {
    let mut path = String::new();
    for segment in segments {
        path.push('/');
        for b in segment.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                path.push(b as char);
            } else {
                path.push_str(&format!("%{b:02X}"));
            }
        }
    }
    path
}

/// A REST refusal: 400, Arcade's error body, a message naming the rule.
fn assert_refused(id: &str, status: u16, body: &Value) {
    assert_eq!(status, 400, "{id:?} should be refused: {body}");
    assert_eq!(body["name"], "bad_request", "{id:?}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("invalid user_id"), "{id:?}: {body}");
}

fn auth_body(user: &str) -> Value {
    json!({"auth_requirement": {"provider_id": "fake", "oauth2": {"scopes": ["read"]}}, "user_id": user})
}

/// Follows a pending authorization's link and approves it at the provider as `subject`;
/// returns where the callback sent the browser.
async fn approve(env: &AuthEnv, auth: &Value, subject: &str) -> Option<String> {
    let provider_url = open_link(auth["url"].as_str().expect("a link")).await;
    let approval = env.fake.approve(&provider_url, subject);
    let (status, page, location) = browse(&approval.callback_url()).await;
    assert!(status == 200 || status == 303, "callback: {status} {page}");
    location
}

// --- The attack ----------------------------------------------------------------------

#[tokio::test]
async fn a_user_named_dave_space_can_neither_start_nor_confirm_a_flow_for_dave() {
    let (env, _kit) = env(|c| c.oauth.user_verifier = UserVerifier::Url(VERIFIER.into())).await;
    let gw = &env.gw;

    // Trimmed, this started a flow for "dave".
    let (status, body) = post(gw, "/v1/auth/authorize", auth_body("dave ")).await;
    assert_refused("dave ", status, &body);

    // A flow for dave, approved at the provider by the attacker's own account.
    let (status, auth) = post(gw, "/v1/auth/authorize", auth_body("dave")).await;
    assert_eq!(status, 200, "{auth}");
    let flow_id = auth["id"].as_str().unwrap().to_owned();
    let verifier = approve(&env, &auth, "mallory-login").await;
    assert_eq!(verifier, Some(format!("{VERIFIER}?flow_id={flow_id}")));

    // "dave " confirming it would bind mallory's account to dave.
    let (status, body) = post(
        gw,
        "/v1/auth/confirm_user",
        json!({"flow_id": flow_id, "user_id": "dave "}),
    )
    .await;
    assert_refused("dave ", status, &body);
    let (status, body) = call(gw, Method::GET, "/v1/admin/user_connections", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]), "nothing is bound to anyone");
    let (status, body) = gw
        .execute(json!({"tool_name": "Acct.Me", "input": {}, "user_id": "dave"}))
        .await;
    assert_eq!(status, 403, "dave still has no grant: {body}");
}

#[tokio::test]
async fn tools_authorize_for_alice_space_does_not_return_alices_token() {
    let (env, _kit) = env(|_| {}).await;
    let gw = &env.gw;
    let (status, auth) = post(gw, "/v1/auth/authorize", auth_body("alice")).await;
    assert_eq!(status, 200, "{auth}");
    approve(&env, &auth, "alice-login").await;
    let (status, own) = post(
        gw,
        "/v1/tools/authorize",
        json!({"tool_name": "Acct.Me", "user_id": "alice"}),
    )
    .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["status"], "completed", "{own}");
    let token = own["context"]["token"].as_str().expect("alice's token");

    for id in ["alice ", " alice", "alice\t", "alice\u{a0}"] {
        let (status, body) = post(
            gw,
            "/v1/tools/authorize",
            json!({"tool_name": "Acct.Me", "user_id": id}),
        )
        .await;
        assert_refused(id, status, &body);
        assert!(
            !body.to_string().contains(token),
            "{id:?} got alice's token"
        );
    }
}

// --- REST ----------------------------------------------------------------------------

#[tokio::test]
async fn execute_refuses_malformed_user_ids_and_passes_valid_ones_exactly() {
    let (env, _kit) = env(|_| {}).await;
    let gw = &env.gw;
    for id in refused() {
        let (status, body) = gw
            .execute(json!({"tool_name": "Kit.WhoAmI", "input": {}, "user_id": id}))
            .await;
        assert_refused(&id, status, &body);
    }
    for id in accepted() {
        let (status, body) = gw
            .execute(json!({"tool_name": "Kit.WhoAmI", "input": {}, "user_id": id}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["output"]["value"]["user_id"], id.as_str());
    }
    // No user at all stays what it was: the call acts for nobody.
    let (status, body) = gw
        .execute(json!({"tool_name": "Kit.WhoAmI", "input": {}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"]["value"]["user_id"], Value::Null);
}

#[tokio::test]
async fn tools_authorize_refuses_malformed_user_ids_and_passes_valid_ones_exactly() {
    let (env, _kit) = env(|_| {}).await;
    let gw = &env.gw;
    for id in refused() {
        let (status, body) = post(
            gw,
            "/v1/tools/authorize",
            json!({"tool_name": "Kit.Echo", "user_id": id}),
        )
        .await;
        assert_refused(&id, status, &body);
    }
    for id in accepted() {
        let (status, body) = post(
            gw,
            "/v1/tools/authorize",
            json!({"tool_name": "Kit.Echo", "user_id": id}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user_id"], id.as_str());
    }
}

#[tokio::test]
async fn auth_authorize_refuses_malformed_user_ids_and_passes_valid_ones_exactly() {
    let (env, _kit) = env(|_| {}).await;
    let gw = &env.gw;
    for id in refused() {
        let (status, body) = post(gw, "/v1/auth/authorize", auth_body(&id)).await;
        assert_refused(&id, status, &body);
    }
    for id in accepted() {
        let (status, body) = post(gw, "/v1/auth/authorize", auth_body(&id)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "pending", "{body}");
        assert_eq!(body["user_id"], id.as_str());
    }
}

#[tokio::test]
async fn confirm_user_refuses_malformed_user_ids_before_looking_at_the_flow() {
    let (env, _kit) = env(|_| {}).await;
    let gw = &env.gw;
    let flow = "no-such-flow";
    for id in refused() {
        let body = json!({"flow_id": flow, "user_id": id});
        let (status, body) = post(gw, "/v1/auth/confirm_user", body).await;
        assert_refused(&id, status, &body);
    }
    for id in accepted() {
        let body = json!({"flow_id": flow, "user_id": id});
        let (status, body) = post(gw, "/v1/auth/confirm_user", body).await;
        assert_eq!(status, 404, "the id passes; the flow is unknown: {body}");
    }
}

#[tokio::test]
async fn admin_user_routes_refuse_malformed_user_ids_and_tokens_carry_the_exact_id() {
    let (env, _kit) = env(|_| {}).await;
    let gw = &env.gw;
    for id in refused() {
        let tokens = url_with(gw, &["v1", "admin", "users", &id, "tokens"]);
        let (status, body) = call_url(gw, Method::POST, &tokens, Some(json!({}))).await;
        let user = url_with(gw, &["v1", "admin", "users", &id]);
        let (del_status, del_body) = call_url(gw, Method::DELETE, &user, None).await;
        if id.is_empty() {
            // `/users//tokens` names no user: no route takes it.
            assert!(!(200..300).contains(&status), "{body}");
            assert!(!(200..300).contains(&del_status), "{del_body}");
            continue;
        }
        assert_refused(&id, status, &body);
        assert_refused(&id, del_status, &del_body);
        let (status, body) = gw
            .http
            .get(gw.url("/v1/admin/user_connections"))
            .query(&[("user_id", id.as_str())])
            .header("Authorization", &gw.key)
            .send()
            .await
            .map(|r| (r.status().as_u16(), r))
            .unwrap();
        let body: Value = body.json().await.unwrap();
        assert_refused(&id, status, &body);
    }
    for id in accepted() {
        let tokens = url_with(gw, &["v1", "admin", "users", &id, "tokens"]);
        let (status, body) = call_url(gw, Method::POST, &tokens, Some(json!({}))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["user_id"], id.as_str());
        // The token acts for exactly that id.
        let token = body["token"].as_str().unwrap();
        let mut mcp = Client::new(gw, "/mcp").auth(Some(format!("Bearer {token}")));
        mcp.initialize(json!({})).await;
        assert_eq!(who_am_i(&mcp).await, json!(id));
        let user = url_with(gw, &["v1", "admin", "users", &id]);
        let (status, body) = call_url(gw, Method::DELETE, &user, None).await;
        assert_eq!(status, 204, "the user had a token: {body}");
    }
}

// --- MCP -----------------------------------------------------------------------------

/// The user a `Kit_WhoAmI` call through `c` ran for.
async fn who_am_i(c: &Client<'_>) -> Value {
    let r = c.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["result"]["structuredContent"]["user_id"].clone()
}

/// An MCP refusal: HTTP 400 with a JSON-RPC error naming the rule.
fn assert_mcp_refused(what: &str, Reply { status, body, .. }: Reply) {
    assert_eq!(status, 400, "{what} should be refused: {body}");
    assert_eq!(body["jsonrpc"], "2.0", "{what}: {body}");
    assert!(body["error"]["code"].is_i64(), "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("invalid user_id"), "{what}: {body}");
}

#[tokio::test]
async fn the_mcp_path_refuses_malformed_user_ids_after_percent_decoding() {
    let (env, _kit) = env(|_| {}).await;
    let gw = &env.gw;
    for id in refused() {
        let path = path_with(&["v1", "mcps", &id, "mcp"]);
        let reply = Client::new(gw, &path).handshake(json!({})).await;
        if id.is_empty() {
            // `/v1/mcps//mcp` names no user: no route takes it.
            assert_ne!(reply.status, 200, "{}", reply.body);
            continue;
        }
        assert_mcp_refused(&format!("{id:?} in the path"), reply);
    }
    // Spelled out: decoded, these are "alice " and "alice\n", not alice.
    for path in [
        "/v1/mcps/alice%20/mcp",
        "/v1/mcps/%20alice/mcp",
        "/v1/mcps/alice%0a/mcp",
        "/v1/mcps/al%0Aice/mcp",
        "/v1/mcps/alice%C2%A0/mcp",
        "/v1/mcps/alice%00/mcp",
    ] {
        let reply = Client::new(gw, path).handshake(json!({})).await;
        assert_mcp_refused(path, reply);
    }
    for id in accepted() {
        let mut mcp = Client::new(gw, &path_with(&["v1", "mcps", &id, "mcp"]));
        mcp.initialize(json!({})).await;
        assert_eq!(who_am_i(&mcp).await, json!(id));
    }
}

#[tokio::test]
async fn the_arcade_user_id_header_is_taken_exactly_and_refused_when_malformed() {
    let (env, _kit) = env(|_| {}).await;
    let gw = &env.gw;
    // HTTP itself drops spaces and tabs around a header value (RFC 9110 §5.5), so " alice"
    // arrives as "alice"; what survives the wire must not be trimmed by the gateway.
    let long = "a".repeat(257);
    for value in [
        "\u{a0}alice".as_bytes(),
        "alice\u{3000}".as_bytes(),
        "alice\u{2003}".as_bytes(),
        b"al\tice",
        b"",
        long.as_bytes(),
        b"\xffalice",
    ] {
        let reply = Client::new(gw, "/mcp")
            .header("Arcade-User-Id", value)
            .handshake(json!({}))
            .await;
        assert_mcp_refused(
            &format!("header {:?}", String::from_utf8_lossy(value)),
            reply,
        );
    }
    for id in accepted() {
        let mut mcp = Client::new(gw, "/mcp").header("Arcade-User-Id", &id);
        mcp.initialize(json!({})).await;
        assert_eq!(who_am_i(&mcp).await, json!(id));
    }
}

// --- CLI -----------------------------------------------------------------------------

/// The real binary on a temporary config and SQLite file.
struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("engine.yaml"),
            "api:\n  public_url: https://sb.example.com\nstorage:\n  sqlite:\n    path: sb.db\n",
        )
        .unwrap();
        Self { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(self.dir.path().join("engine.yaml"))
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join(".config"))
            .env("SWITCHBOARD_DATA_DIR", self.dir.path().join("data"))
            .env_remove("SWITCHBOARD_CONFIG")
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    }
}

#[test]
fn cli_commands_that_take_a_user_refuse_malformed_ids_and_keep_valid_ones_exactly() {
    let cli = Cli::new();
    for id in refused() {
        let commands: [Vec<&str>; 6] = [
            vec!["users", "token", "create", &id],
            vec!["users", "token", "list", "--user", &id],
            vec!["users", "delete", &id],
            vec!["auth", "connections", "--user", &id],
            vec!["executions", "list", "--user", &id],
            vec!["configure", "vscode", "--print", "--user", &id],
        ];
        for args in commands {
            let out = cli.run(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} succeeded");
            assert!(stderr.contains("invalid user_id"), "{args:?}: {stderr}");
        }
    }
    for id in accepted() {
        let out = cli.run(&["users", "token", "create", &id]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{id:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("for user '{id}'")), "{stdout}");
        let out = cli.run(&["users", "token", "list", "--user", &id]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains(id.as_str()));
    }
}
