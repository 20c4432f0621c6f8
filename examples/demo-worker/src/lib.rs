//! The Demo toolkit: a few tools that show what a switchboard-tdk worker looks like, and
//! that the gateway's tests drive end to end. `WhoAmI` and `TokenFingerprint` need an
//! OAuth token from the `sandbox` provider; `WhoAmI` calls that provider's API with it.
//!
//! Must not: return or log a token or a secret value.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_tdk::{Auth, ErrorKind, NoInput, Tool, ToolContext, ToolError, Toolkit};

pub const TOOLKIT_NAME: &str = "Demo";
pub const TOOLKIT_VERSION: &str = "0.1.0";
/// Where the sandbox provider's API lives unless told otherwise (the gateway's fake
/// OAuth provider in dev).
pub const DEFAULT_API_BASE_URL: &str = "http://127.0.0.1:9099/sandbox/api";
/// What `Fingerprint` hashes: as long as a sandbox access token.
const STAND_IN_TOKEN: &str = "sbx_at_0000000000000000000000000000000000000000";
/// `Slow` never sleeps longer than this.
pub const MAX_SLEEP_MS: u64 = 10_000;

#[derive(Deserialize, JsonSchema)]
pub struct EchoInput {
    /// The message to send back.
    pub message: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct AddInput {
    /// The first addend.
    pub a: f64,
    /// The second addend.
    pub b: f64,
}

#[derive(Deserialize, JsonSchema, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
pub enum GreetStyle {
    Formal,
    #[default]
    Casual,
}

#[derive(Deserialize, JsonSchema)]
pub struct GreetInput {
    /// Who to greet.
    pub name: String,
    /// How formal the greeting is (casual when left out).
    pub style: Option<GreetStyle>,
}

#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    Retry,
    Fatal,
}

#[derive(Deserialize, JsonSchema)]
pub struct FailInput {
    /// Which error to return: `retry` (can be retried) or `fatal`.
    pub mode: FailMode,
}

#[derive(Deserialize, JsonSchema)]
pub struct SlowInput {
    /// How long to sleep, in milliseconds (at most 10000).
    pub millis: u64,
}

/// The Demo toolkit. `api_base_url` is the sandbox provider's API root (`/me` below it);
/// `http` is the one client every upstream call shares.
pub fn toolkit(api_base_url: &str, http: reqwest::Client) -> Toolkit {
    let me_url = format!("{}/me", api_base_url.trim_end_matches('/'));
    Toolkit::new(TOOLKIT_NAME, TOOLKIT_VERSION)
        .description("Demonstration tools for Switchboard workers")
        .tool(Tool::new(
            "Echo",
            "Echo a message back",
            |_: ToolContext, i: EchoInput| async move { Ok::<_, ToolError>(i.message) },
        ))
        .tool(Tool::new(
            "Add",
            "Add two numbers",
            |_: ToolContext, i: AddInput| async move { Ok::<_, ToolError>(i.a + i.b) },
        ))
        .tool(Tool::new(
            "Greet",
            "Greet someone by name",
            |_: ToolContext, i: GreetInput| async move {
                Ok::<_, ToolError>(match i.style.unwrap_or_default() {
                    GreetStyle::Formal => format!("Good day, {}.", i.name),
                    GreetStyle::Casual => format!("Hi, {}!", i.name),
                })
            },
        ))
        .tool(
            Tool::new(
                "WhoAmI",
                "Show the sandbox profile of the user the call is made for",
                move |ctx: ToolContext, _: NoInput| who_am_i(ctx, http.clone(), me_url.clone()),
            )
            .requires_auth(Auth::oauth2("sandbox").scopes(["profile"])),
        )
        .tool(
            Tool::new(
                "TokenFingerprint",
                "Identify the token the call carried without revealing it",
                |ctx: ToolContext, _: NoInput| async move {
                    let token = ctx.require_token()?;
                    let digest = hex::encode(Sha256::digest(token.as_bytes()));
                    Ok::<_, ToolError>(json!({
                        "user_id": ctx.user_id(),
                        "token_sha256_prefix": &digest[..12],
                    }))
                },
            )
            .requires_auth(Auth::oauth2("sandbox").scopes(["profile"])),
        )
        .tool(Tool::new(
            "Fingerprint",
            "TokenFingerprint's work and answer without a grant, on a fixed stand-in token (the benchmark's control for the grant)",
            |ctx: ToolContext, _: NoInput| async move {
                let digest = hex::encode(Sha256::digest(STAND_IN_TOKEN.as_bytes()));
                Ok::<_, ToolError>(json!({
                    "user_id": ctx.user_id(),
                    "token_sha256_prefix": &digest[..12],
                }))
            },
        ))
        .tool(
            Tool::new(
                "SecretCheck",
                "Tell whether the DEMO_API_KEY secret is configured (never its value)",
                |ctx: ToolContext, _: NoInput| async move {
                    let secret = ctx.secret("DEMO_API_KEY")?;
                    Ok::<_, ToolError>(
                        json!({"configured": true, "length": secret.chars().count()}),
                    )
                },
            )
            .secret("DEMO_API_KEY"),
        )
        .tool(Tool::new(
            "Fail",
            "Fail on purpose, with a retryable or a fatal error",
            |_: ToolContext, i: FailInput| async move {
                Err::<Value, _>(match i.mode {
                    FailMode::Retry => {
                        ToolError::retry("The demo tool failed on purpose; try again")
                            .retry_after_ms(100)
                    }
                    FailMode::Fatal => ToolError::fatal("The demo tool failed on purpose"),
                })
            },
        ))
        .tool(Tool::new(
            "Slow",
            "Sleep for a while, then answer",
            |_: ToolContext, i: SlowInput| async move {
                let millis = i.millis.min(MAX_SLEEP_MS);
                tokio::time::sleep(Duration::from_millis(millis)).await;
                Ok::<_, ToolError>(json!({"slept_ms": millis}))
            },
        ))
}

/// `GET {api}/me` with the user's token; the provider's answer is the tool's output.
async fn who_am_i(
    ctx: ToolContext,
    http: reqwest::Client,
    url: String,
) -> Result<Value, ToolError> {
    let token = ctx.require_token()?;
    let res = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(transport_error)?;
    let status = res.status();
    if !status.is_success() {
        return Err(ToolError::upstream(
            status.as_u16(),
            format!(
                "The sandbox API refused the profile request (HTTP {})",
                status.as_u16()
            ),
        ));
    }
    res.json::<Value>().await.map_err(|_| {
        ToolError::new(
            ErrorKind::UpstreamUnmapped,
            "The sandbox API answered with something other than JSON",
        )
    })
}

fn transport_error(e: reqwest::Error) -> ToolError {
    // The error's text names the URL, not the token: safe for the developer message.
    let (kind, message) = if e.is_timeout() {
        (
            ErrorKind::NetworkTimeout,
            "The sandbox API did not answer in time",
        )
    } else if e.is_connect() {
        (
            ErrorKind::NetworkUnreachable,
            "The sandbox API could not be reached",
        )
    } else {
        (ErrorKind::Retry, "The request to the sandbox API failed")
    };
    ToolError::new(kind, message).developer_message(e.to_string())
}
