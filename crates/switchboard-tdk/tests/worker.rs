//! The worker protocol end to end: a Worker on 127.0.0.1:0, called over HTTP as the
//! gateway calls it (`reference/arcade-api.md` §2).

use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_tdk::{Auth, NoInput, Tool, ToolContext, ToolError, Toolkit, Worker};

const SECRET: &str = "test-worker-secret";

#[derive(Deserialize, JsonSchema)]
struct EchoInput {
    /// The message to echo.
    message: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Style {
    Formal,
    Casual,
}

#[derive(Deserialize, JsonSchema)]
struct GreetInput {
    name: String,
    /// How formal the greeting is.
    style: Option<Style>,
    #[serde(default)]
    tags: Vec<String>,
    times: Option<u32>,
}

fn toolkit() -> Toolkit {
    Toolkit::new("Testkit", "1.2.3")
        .description("Tools for tests")
        .tool(Tool::new(
            "Echo",
            "Echo a message back",
            |_ctx: ToolContext, i: EchoInput| async move { Ok::<_, ToolError>(i.message) },
        ))
        .tool(Tool::new(
            "Greet",
            "Greet someone",
            |_ctx: ToolContext, i: GreetInput| async move {
                let greeting = match i.style {
                    Some(Style::Formal) => format!("Good day, {}.", i.name),
                    _ => format!("Hi {}!", i.name),
                };
                Ok::<_, ToolError>(json!({"greeting": greeting, "tags": i.tags, "times": i.times}))
            },
        ))
        .tool(
            Tool::new(
                "WhoAmI",
                "Who the call is for",
                |ctx: ToolContext, _: NoInput| async move {
                    let token = ctx.require_token()?;
                    Ok::<_, ToolError>(json!({"user_id": ctx.user_id(), "token_len": token.len()}))
                },
            )
            .requires_auth(Auth::oauth2("sandbox").scopes(["profile"])),
        )
        .tool(
            Tool::new(
                "SecretLen",
                "Length of a secret",
                |ctx: ToolContext, _: NoInput| async move {
                    Ok::<_, ToolError>(ctx.secret("API_KEY")?.len())
                },
            )
            .secret("API_KEY"),
        )
        .tool(Tool::new(
            "Flaky",
            "Always asks for a retry",
            |_ctx: ToolContext, _: NoInput| async move {
                Err::<Value, _>(
                    ToolError::retry("try again")
                        .retry_after_ms(100)
                        .additional_prompt_content("wait"),
                )
            },
        ))
        .tool(Tool::new(
            "Boom",
            "Panics",
            |_ctx: ToolContext, _: NoInput| async move {
                if true {
                    panic!("the handler blew up");
                }
                Ok::<_, ToolError>(Value::Null)
            },
        ))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bearer() -> String {
    format!(
        "Bearer {}",
        switchboard_wire::jwt::sign(SECRET, now()).unwrap()
    )
}

struct TestWorker {
    base: String,
    http: reqwest::Client,
}

impl TestWorker {
    async fn start() -> TestWorker {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let worker = Worker::new(SECRET).toolkit(toolkit());
        tokio::spawn(worker.serve(listener, std::future::pending()));
        TestWorker {
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn invoke_raw(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/worker/tools/invoke", self.base))
            .header("authorization", bearer())
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn invoke(&self, body: Value) -> Value {
        let res = self.invoke_raw(body).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn call(&self, tool: &str, inputs: Value, context: Value) -> Value {
        self.invoke(json!({
            "execution_id": "exec-1",
            "tool": {"name": tool, "toolkit": "Testkit"},
            "inputs": inputs,
            "context": context,
        }))
        .await
    }

    async fn tools(&self, auth: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}/worker/tools", self.base));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send().await.unwrap()
    }
}

fn error_kind(res: &Value) -> &str {
    res["output"]["error"]["kind"].as_str().unwrap_or("")
}

#[tokio::test]
async fn health_needs_no_token_and_counts_tools_as_a_string() {
    let w = TestWorker::start().await;
    let res = w
        .http
        .get(format!("{}/worker/health", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok", "tool_count": "6"}));
}

#[tokio::test]
async fn listing_tools_without_a_token_is_401_not_authenticated() {
    let w = TestWorker::start().await;
    for header in [None, Some("Basic abc"), Some("Bearer"), Some(SECRET)] {
        let res = w.tools(header).await;
        assert_eq!(res.status(), 401, "{header:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json!({"detail": "Not authenticated"}), "{header:?}");
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_401_invalid_token() {
    let w = TestWorker::start().await;
    let other = switchboard_wire::jwt::sign("another-secret", now()).unwrap();
    let res = w.tools(Some(&format!("Bearer {other}"))).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body: Value = res.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.starts_with("Invalid token. Error: "), "{detail}");
    assert!(!detail.contains(SECRET));
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let w = TestWorker::start().await;
    let old = switchboard_wire::jwt::sign(SECRET, now() - 3600).unwrap();
    assert_eq!(w.tools(Some(&format!("Bearer {old}"))).await.status(), 401);
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_in_any_case() {
    let w = TestWorker::start().await;
    let token = switchboard_wire::jwt::sign(SECRET, now()).unwrap();
    assert_eq!(
        w.tools(Some(&format!("bearer {token}"))).await.status(),
        200
    );
    assert_eq!(
        w.tools(Some(&format!("BEARER {token}"))).await.status(),
        200
    );
}

#[tokio::test]
async fn listed_tools_carry_arcade_parameter_schemas_and_requirements() {
    let w = TestWorker::start().await;
    let res = w.tools(Some(&bearer())).await;
    assert_eq!(res.status(), 200);
    let tools: Vec<Value> = res.json().await.unwrap();
    assert_eq!(tools.len(), 6);
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap().clone();

    let echo = tool("Echo");
    assert_eq!(echo["fully_qualified_name"], "Testkit.Echo");
    assert_eq!(echo["description"], "Echo a message back");
    assert_eq!(
        echo["toolkit"],
        json!({"name": "Testkit", "description": "Tools for tests", "version": "1.2.3"})
    );
    let p = &echo["input"]["parameters"][0];
    assert_eq!(p["name"], "message");
    assert_eq!(p["required"], true);
    assert_eq!(p["description"], "The message to echo.");
    assert_eq!(p["value_schema"]["val_type"], "string");
    assert_eq!(p["inferrable"], true);
    assert_eq!(echo["output"]["available_modes"], json!(["value", "error"]));
    assert_eq!(
        echo["requirements"],
        json!({"authorization": null, "secrets": null, "metadata": null})
    );

    let greet = tool("Greet");
    let params = greet["input"]["parameters"].as_array().unwrap();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["name", "style", "tags", "times"]);
    assert_eq!(params[0]["required"], true);
    assert_eq!(params[1]["required"], false);
    assert_eq!(params[1]["description"], "How formal the greeting is.");
    assert_eq!(params[1]["value_schema"]["val_type"], "string");
    assert_eq!(
        params[1]["value_schema"]["enum"],
        json!(["formal", "casual"])
    );
    assert_eq!(params[2]["required"], false);
    assert_eq!(params[2]["value_schema"]["val_type"], "array");
    assert_eq!(params[2]["value_schema"]["inner_val_type"], "string");
    assert_eq!(params[3]["value_schema"]["val_type"], "integer");

    assert_eq!(
        tool("WhoAmI")["requirements"]["authorization"],
        json!({"provider_id": "sandbox", "provider_type": "oauth2", "id": null, "oauth2": {"scopes": ["profile"]}})
    );
    assert_eq!(tool("WhoAmI")["input"]["parameters"], json!([]));
    assert_eq!(
        tool("SecretLen")["requirements"]["secrets"],
        json!([{"key": "API_KEY"}])
    );
}

#[tokio::test]
async fn echo_returns_its_message_with_the_execution_id_and_timing() {
    let w = TestWorker::start().await;
    let res = w.call("Echo", json!({"message": "hello"}), json!({})).await;
    assert_eq!(res["success"], true, "{res}");
    assert_eq!(res["output"]["value"], "hello");
    assert_eq!(res["output"]["error"], Value::Null);
    assert_eq!(res["execution_id"], "exec-1");
    assert!(res["duration"].as_f64().unwrap() >= 0.0);
    let finished = res["finished_at"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(finished, "%Y-%m-%dT%H:%M:%S%.f").is_ok(),
        "{finished}"
    );
}

#[tokio::test]
async fn a_call_without_execution_id_gets_an_empty_one() {
    let w = TestWorker::start().await;
    let res = w
        .invoke(json!({"tool": {"name": "Echo", "toolkit": "Testkit"}, "inputs": {"message": "x"}}))
        .await;
    assert_eq!(res["execution_id"], "");
    assert_eq!(res["success"], true);
}

#[tokio::test]
async fn tool_lookup_ignores_case_and_accepts_the_matching_version() {
    let w = TestWorker::start().await;
    let res = w
        .invoke(json!({"tool": {"name": "echo", "toolkit": "TESTKIT", "version": "1.2.3"}, "inputs": {"message": "hi"}}))
        .await;
    assert_eq!(res["output"]["value"], "hi", "{res}");
}

#[tokio::test]
async fn optional_enum_parameters_are_accepted_and_used() {
    let w = TestWorker::start().await;
    let res = w
        .call(
            "Greet",
            json!({"name": "Ada", "style": "formal", "tags": ["a"]}),
            json!({}),
        )
        .await;
    assert_eq!(
        res["output"]["value"]["greeting"], "Good day, Ada.",
        "{res}"
    );
    let res = w
        .call("Greet", json!({"name": "Ada", "style": null}), json!({}))
        .await;
    assert_eq!(res["output"]["value"]["greeting"], "Hi Ada!", "{res}");
}

#[tokio::test]
async fn input_of_the_wrong_shape_is_bad_input_value_naming_the_parameter() {
    let w = TestWorker::start().await;
    let cases = [
        (json!({}), "message"),
        (json!({"message": 5}), "message"),
        (json!({"message": null}), "message"),
    ];
    for (inputs, param) in cases {
        let res = w.call("Echo", inputs.clone(), json!({})).await;
        assert_eq!(res["success"], false, "{inputs}");
        assert_eq!(error_kind(&res), "TOOL_RUNTIME_BAD_INPUT_VALUE", "{inputs}");
        let msg = res["output"]["error"]["message"].as_str().unwrap();
        assert!(msg.contains(param), "{msg}");
    }
    let res = w
        .call("Greet", json!({"name": "Ada", "style": "rude"}), json!({}))
        .await;
    assert_eq!(error_kind(&res), "TOOL_RUNTIME_BAD_INPUT_VALUE");
    assert!(
        res["output"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("formal, casual"),
        "{res}"
    );
    let res = w
        .call("Greet", json!({"name": "Ada", "times": 1.5}), json!({}))
        .await;
    assert_eq!(error_kind(&res), "TOOL_RUNTIME_BAD_INPUT_VALUE");
    let res = w
        .call("Greet", json!({"name": "Ada", "times": -1}), json!({}))
        .await;
    assert_eq!(error_kind(&res), "TOOL_RUNTIME_BAD_INPUT_VALUE", "{res}");
}

#[tokio::test]
async fn a_tool_that_requires_auth_without_a_token_is_context_required() {
    let w = TestWorker::start().await;
    let res = w
        .call("WhoAmI", json!({}), json!({"user_id": "alice"}))
        .await;
    assert_eq!(res["success"], false);
    assert_eq!(error_kind(&res), "TOOL_RUNTIME_CONTEXT_REQUIRED");
}

#[tokio::test]
async fn a_tool_that_requires_auth_gets_the_token_and_the_user() {
    let w = TestWorker::start().await;
    let context =
        json!({"user_id": "alice", "authorization": {"token": "tok-abc", "user_info": {}}});
    let res = w.call("WhoAmI", json!({}), context).await;
    assert_eq!(
        res["output"]["value"],
        json!({"user_id": "alice", "token_len": 7}),
        "{res}"
    );
}

#[tokio::test]
async fn a_declared_secret_reaches_the_tool_and_its_absence_names_the_key() {
    let w = TestWorker::start().await;
    let res = w
        .call(
            "SecretLen",
            json!({}),
            json!({"secrets": [{"key": "API_KEY", "value": "sk-12345"}]}),
        )
        .await;
    assert_eq!(res["output"]["value"], 8, "{res}");

    let res = w
        .call(
            "SecretLen",
            json!({}),
            json!({"secrets": [{"key": "OTHER", "value": "zzz"}]}),
        )
        .await;
    assert_eq!(error_kind(&res), "TOOL_RUNTIME_CONTEXT_REQUIRED");
    let msg = res["output"]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("API_KEY") && !msg.contains("zzz"), "{msg}");
}

#[tokio::test]
async fn a_retryable_error_carries_its_retry_hints() {
    let w = TestWorker::start().await;
    let res = w.call("Flaky", json!({}), json!({})).await;
    assert_eq!(res["success"], false);
    let err = &res["output"]["error"];
    assert_eq!(err["kind"], "TOOL_RUNTIME_RETRY");
    assert_eq!(err["can_retry"], true);
    assert_eq!(err["retry_after_ms"], 100);
    assert_eq!(err["additional_prompt_content"], "wait");
}

#[tokio::test]
async fn an_unknown_tool_is_a_plain_500_like_arcade_serve() {
    let w = TestWorker::start().await;
    let res = w
        .invoke_raw(json!({"tool": {"name": "Nope", "toolkit": "Testkit"}, "inputs": {}}))
        .await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.text().await.unwrap(), "Internal Server Error");
}

#[tokio::test]
async fn a_version_that_does_not_match_is_a_500() {
    let w = TestWorker::start().await;
    let res = w
        .invoke_raw(json!({"tool": {"name": "Echo", "toolkit": "Testkit", "version": "9.9.9"}, "inputs": {"message": "x"}}))
        .await;
    assert_eq!(res.status(), 500);
}

#[tokio::test]
async fn a_malformed_body_is_400_invalid_params() {
    let w = TestWorker::start().await;
    for body in [r#"{"tool": "#, r#"{"inputs": {}}"#] {
        let res = w
            .http
            .post(format!("{}/worker/tools/invoke", w.base))
            .header("authorization", bearer())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["code"], -32602);
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid params: "),
            "{v}"
        );
    }
}

#[tokio::test]
async fn invoking_without_a_token_is_401() {
    let w = TestWorker::start().await;
    let res = w
        .http
        .post(format!("{}/worker/tools/invoke", w.base))
        .json(&json!({"tool": {"name": "Echo", "toolkit": "Testkit"}, "inputs": {"message": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_panicking_handler_is_a_fatal_error_and_the_worker_keeps_serving() {
    let w = TestWorker::start().await;
    let res = w.call("Boom", json!({}), json!({})).await;
    assert_eq!(res["success"], false);
    assert_eq!(error_kind(&res), "TOOL_RUNTIME_FATAL");
    assert!(
        !res["output"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("blew up")
    );
    let res = w
        .call("Echo", json!({"message": "still here"}), json!({}))
        .await;
    assert_eq!(res["output"]["value"], "still here");
}

#[tokio::test]
async fn in_process_invoke_answers_like_the_http_route() {
    let worker = Worker::new(SECRET).toolkit(toolkit());
    assert_eq!(worker.tool_count(), 6);
    let request = serde_json::from_value(
        json!({"tool": {"name": "Echo", "toolkit": "Testkit"}, "inputs": {"message": "x"}}),
    )
    .unwrap();
    let res = worker.invoke(request).await.unwrap();
    assert!(res.success);
    assert_eq!(res.output.value, Some(json!("x")));
}

#[derive(Deserialize, JsonSchema)]
struct PlotInput {
    /// Any JSON the tool passes on: a required `json` parameter.
    payload: Value,
    /// Plain integers only.
    #[serde(default)]
    points: Vec<i64>,
}

/// Calls `Plot` in-process, as `POST /worker/tools/invoke` would.
async fn plot(inputs: Value) -> Value {
    let worker = Worker::new(SECRET).toolkit(Toolkit::new("Plotkit", "1.0.0").tool(Tool::new(
        "Plot",
        "Plot points",
        |_ctx: ToolContext, i: PlotInput| async move {
            Ok::<_, ToolError>(json!({"payload": i.payload, "points": i.points}))
        },
    )));
    let request = serde_json::from_value(json!({
        "tool": {"name": "Plot", "toolkit": "Plotkit"},
        "inputs": inputs,
    }))
    .unwrap();
    serde_json::to_value(worker.invoke(request).await.unwrap()).unwrap()
}

/// The gateway refused this and the TDK let it reach the handler: one validator now.
#[tokio::test]
async fn a_required_json_parameter_that_is_missing_or_null_is_refused() {
    for inputs in [json!({}), json!({"payload": null})] {
        let res = plot(inputs.clone()).await;
        assert_eq!(res["success"], false, "{inputs}");
        let err = &res["output"]["error"];
        assert_eq!(err["kind"], "TOOL_RUNTIME_BAD_INPUT_VALUE", "{res}");
        assert_eq!(
            err["message"],
            "Invalid input for tool 'Plotkit.Plot': missing required parameter 'payload'"
        );
        assert_eq!(err["extra"]["parameter"], "payload");
    }
    let res = plot(json!({"payload": {"title": "t"}, "points": [1, 2]})).await;
    assert_eq!(
        res["output"]["value"],
        json!({"payload": {"title": "t"}, "points": [1, 2]}),
        "{res}"
    );
}

#[tokio::test]
async fn input_is_refused_with_the_gateways_message_for_items_and_unknown_names() {
    let cases = [
        (
            json!({"payload": 1, "points": [1, "2"]}),
            "parameter 'points[1]' must be an integer, got a string",
        ),
        (
            json!({"payload": 1, "colour": "red"}),
            "unknown parameter 'colour' (expected: payload, points)",
        ),
    ];
    for (inputs, reason) in cases {
        let res = plot(inputs).await;
        assert_eq!(
            res["output"]["error"]["message"],
            format!("Invalid input for tool 'Plotkit.Plot': {reason}"),
            "{res}"
        );
    }
}
