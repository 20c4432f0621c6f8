//! The REST API end to end: a real gateway on 127.0.0.1:0, real TDK workers over HTTP.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard::config::SecretValue;

#[tokio::test]
async fn health_needs_no_key() {
    let gw = start_gateway(|_| {}).await;
    let res = gw.http.get(gw.url("/v1/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"healthy": true}));
}

#[tokio::test]
async fn missing_or_wrong_key_is_401_with_name_and_message() {
    let gw = start_gateway(|_| {}).await;
    let res = gw.http.get(gw.url("/v1/tools")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "unauthorized");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("missing API key"),
        "{body}"
    );

    for bad in ["arc_nope", "Bearer arc_nope", ""] {
        let res = gw
            .http
            .get(gw.url("/v1/tools"))
            .header("Authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{bad:?}");
    }
}

#[tokio::test]
async fn key_is_accepted_raw_and_as_bearer() {
    let gw = start_gateway(|_| {}).await;
    for header in [
        gw.key.clone(),
        format!("Bearer {}", gw.key),
        format!("bearer {}", gw.key),
    ] {
        let res = gw
            .http
            .get(gw.url("/v1/tools"))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn revoked_key_is_refused_once_the_cache_forgets_it() {
    let gw = start_gateway(|_| {}).await;
    let key = switchboard::identity::generate_key("temp", 0);
    gw.store.insert_api_key(&key.record).await.unwrap();
    gw.store.revoke_api_key("temp", 1).await.unwrap();
    let res = gw
        .http
        .get(gw.url("/v1/tools"))
        .header("Authorization", &key.plaintext)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn tool_list_uses_arcade_envelope_clamps_limit_and_filters_toolkit() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| c.workers.push(worker_config("kit", &worker.url()))).await;

    let (status, page) = gw.get("/v1/tools?limit=1000").await;
    assert_eq!(status, 200);
    assert_eq!(page["limit"], 100);
    assert_eq!(page["offset"], 0);
    let total = page["total_count"].as_u64().unwrap();
    assert_eq!(total as usize, page["items"].as_array().unwrap().len());
    assert_eq!(total, 4 + 6, "4 built-in tools and 6 worker tools");

    let (_, page) = gw.get("/v1/tools?toolkit=kit&limit=2&offset=2").await;
    assert_eq!(page["total_count"], 6);
    assert_eq!(page["page_count"], 3);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["qualified_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Kit.Flaky", "Kit.NeedsSecret"]);

    let (_, page) = gw
        .get("/v1/tools?toolkit=Kit&include_format=arcade,openai,anthropic")
        .await;
    let first = &page["items"][0];
    assert_eq!(
        first["formatted_schema"]["openai"]["function"]["name"],
        "Kit_Add"
    );
    assert_eq!(first["formatted_schema"]["anthropic"]["name"], "Kit_Add");

    let (status, body) = gw.get("/v1/tools?include_format=yaml").await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("yaml"));
}

#[tokio::test]
async fn tool_definition_has_the_fields_arcade_clients_need() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| c.workers.push(worker_config("kit", &worker.url()))).await;
    for name in ["Kit.Echo", "kit_echo", "KIT.ECHO", "Kit.Echo@1.0.0"] {
        let (status, tool) = gw.get(&format!("/v1/tools/{name}")).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(tool["qualified_name"], "Kit.Echo");
        assert_eq!(tool["fully_qualified_name"], "Kit.Echo@1.0.0");
        assert_eq!(tool["toolkit"]["name"], "Kit");
        assert_eq!(tool["input"]["parameters"][0]["name"], "message");
        assert_eq!(tool["input"]["parameters"][0]["required"], true);
        assert_eq!(
            tool["input"]["parameters"][0]["value_schema"]["val_type"],
            "string"
        );
        assert!(tool["output"].is_object() && tool["requirements"].is_object());
        assert!(tool["description"].is_string());
    }
    let (_, tool) = gw.get("/v1/tools/Kit.NeedsSecret").await;
    assert_eq!(tool["requirements"]["secrets"][0]["key"], "KIT_KEY");
    assert_eq!(tool["requirements"]["secrets"][0]["met"], false);
    assert_eq!(tool["requirements"]["met"], false);

    let (status, body) = gw.get("/v1/tools/Kit.Missing").await;
    assert_eq!(status, 404);
    assert_eq!(body["name"], "not_found");
}

#[tokio::test]
async fn formatted_tools_serve_openai_and_anthropic() {
    let gw = start_gateway(|_| {}).await;
    let (_, page) = gw
        .get("/v1/formatted_tools?format=openai&toolkit=builtin")
        .await;
    assert_eq!(page["total_count"], 4);
    let echo = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "Builtin_Echo")
        .unwrap();
    assert_eq!(echo["type"], "function");
    assert_eq!(
        echo["function"]["parameters"]["required"],
        json!(["message"])
    );
    let (status, tool) = gw
        .get("/v1/formatted_tools/Builtin.Echo?format=anthropic")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        tool["input_schema"]["properties"]["message"]["type"],
        "string"
    );
}

#[tokio::test]
async fn execute_runs_worker_tool_for_the_user_and_records_it() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| c.workers.push(worker_config("kit", &worker.url()))).await;

    let res = gw
        .http
        .post(gw.url("/v1/tools/execute"))
        .header("Authorization", &gw.key)
        .json(&json!({"tool_name": "Kit_Echo", "input": {"message": "hello"}, "user_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-should-retry"], "false");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["status"], "success");
    assert_eq!(body["output"]["value"], "hello");
    assert!(body["execution_id"].is_string() && body["duration"].is_number());

    let (_, body) = gw
        .execute(json!({"tool_name": "Kit.WhoAmI", "input": {}, "user_id": "bob"}))
        .await;
    assert_eq!(body["output"]["value"]["user_id"], "bob");

    let records = gw.executions(2).await;
    assert_eq!(records.len(), 2);
    let echo = records.iter().find(|r| r.tool_name == "Kit.Echo").unwrap();
    assert_eq!(echo.user_id.as_deref(), Some("alice"));
    assert_eq!(echo.status, "success");
    assert_eq!(echo.source, "kit");
    let whoami = records
        .iter()
        .find(|r| r.tool_name == "Kit.WhoAmI")
        .unwrap();
    assert_eq!(whoami.execution_id, body["execution_id"].as_str().unwrap());
}

#[tokio::test]
async fn unknown_tool_is_404_and_records_nothing() {
    let gw = start_gateway(|_| {}).await;
    let (status, body) = gw
        .execute(json!({"tool_name": "Nope.Tool", "input": {}}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["name"], "not_found");
    assert_eq!(body["message"], "tool 'Nope.Tool' not found");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(gw.executions(0).await.is_empty());
}

#[tokio::test]
async fn bad_input_names_the_parameter_and_never_reaches_the_worker() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| c.workers.push(worker_config("kit", &worker.url()))).await;
    let cases = [
        (json!({"a": 1}), "missing required parameter 'b'"),
        (
            json!({"a": "x", "b": 2}),
            "parameter 'a' must be a number, got a string",
        ),
        (json!({"a": 1, "b": 2, "c": 3}), "unknown parameter 'c'"),
    ];
    for (input, expected) in cases {
        let (status, body) = gw
            .execute(json!({"tool_name": "Kit.Add", "input": input}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["success"], false);
        let error = &body["output"]["error"];
        assert_eq!(error["kind"], "TOOL_RUNTIME_BAD_INPUT_VALUE");
        assert!(
            error["message"].as_str().unwrap().contains(expected),
            "{error}"
        );
    }
    assert_eq!(worker.invocations(), 0);
    let (_, body) = gw
        .execute(json!({"tool_name": "Kit.Add", "input": {"a": 1, "b": 2.5}}))
        .await;
    assert_eq!(body["output"]["value"], 3.5);
}

#[tokio::test]
async fn malformed_bodies_get_specific_400s() {
    let gw = start_gateway(|_| {}).await;
    let send = |body: &'static str, content_type: &'static str| {
        gw.http
            .post(gw.url("/v1/tools/execute"))
            .header("Authorization", &gw.key)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let res = send("{\"tool_name\": ", "application/json").await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON body"),
        "{body}"
    );

    let res = send("{\"input\": {}}", "application/json").await.unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("tool_name"),
        "{body}"
    );

    // A nested field of the wrong type: the message names its path.
    let res = send(
        "{\"tool_name\": \"Builtin.Echo\", \"input\": 5}",
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("invalid request body: input:"),
        "{body}"
    );

    let res = send("{}", "text/plain").await.unwrap();
    assert_eq!(res.status(), 415);

    let res = send(
        "{\"tool_name\": \"Builtin.Echo\", \"run_at\": \"2030-01-01T00:00:00\"}",
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn nothing_is_ever_scheduled_and_the_scheduled_list_says_so() {
    let gw = start_gateway(|_| {}).await;
    let (status, page) = gw.get("/v1/scheduled_tools?limit=5").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["total_count"], 0);
    assert_eq!(page["limit"], 5);
    let (status, body) = gw.get("/v1/scheduled_tools/some-id").await;
    assert_eq!(status, 404);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("run_at is not supported"),
        "{body}"
    );
    let (status, _) = gw.get("/v1/orgs/o/projects/p/scheduled_tools").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn oversized_body_is_rejected_with_413() {
    let gw = start_gateway(|c| c.api.max_request_body_size = 1024).await;
    let big = "x".repeat(4096);
    let (status, body) = gw
        .execute(json!({"tool_name": "Builtin.Echo", "input": {"message": big}}))
        .await;
    assert_eq!(status, 413);
    assert_eq!(body["name"], "payload_too_large");
}

#[tokio::test]
async fn configured_secrets_are_injected_and_missing_ones_are_named() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| {
        c.workers.push(worker_config("kit", &worker.url()));
        c.secrets
            .insert("KIT_KEY".into(), SecretValue::new("twelve-chars"));
    })
    .await;
    let (_, body) = gw
        .execute(json!({"tool_name": "Kit.NeedsSecret", "input": {}}))
        .await;
    assert_eq!(body["output"]["value"]["length"], 12);
    assert!(!body.to_string().contains("twelve-chars"));
    let (_, tool) = gw.get("/v1/tools/Kit.NeedsSecret").await;
    assert_eq!(tool["requirements"]["met"], true);

    let worker2 = start_worker("Kit").await;
    let gw2 = start_gateway(|c| c.workers.push(worker_config("kit", &worker2.url()))).await;
    let (_, body) = gw2
        .execute(json!({"tool_name": "Kit.NeedsSecret", "input": {}}))
        .await;
    assert_eq!(body["output"]["error"]["kind"], "TOOL_REQUIREMENTS_NOT_MET");
    assert!(
        body["output"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("KIT_KEY")
    );
    assert_eq!(worker2.invocations(), 0);
}

#[tokio::test]
async fn tool_errors_keep_their_kind_and_retry_hints() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| c.workers.push(worker_config("kit", &worker.url()))).await;
    let (status, body) = gw
        .execute(json!({"tool_name": "Kit.Flaky", "input": {}}))
        .await;
    assert_eq!(status, 200);
    let error = &body["output"]["error"];
    assert_eq!(error["kind"], "TOOL_RUNTIME_RETRY");
    assert_eq!(error["can_retry"], true);
    assert_eq!(error["retry_after_ms"], 500);
    assert_eq!(body["status"], "failed");
    let records = gw.executions(1).await;
    assert_eq!(records[0].error_kind.as_deref(), Some("TOOL_RUNTIME_RETRY"));
}

#[tokio::test]
async fn a_worker_that_goes_down_fails_only_its_own_tools() {
    let up = start_worker("Up").await;
    let down = start_worker("Down").await;
    let gw = start_gateway(|c| {
        c.workers.push(worker_config("up", &up.url()));
        c.workers.push(worker_config("down", &down.url()));
    })
    .await;
    let (_, body) = gw
        .execute(json!({"tool_name": "Down.Echo", "input": {"message": "x"}}))
        .await;
    assert_eq!(body["success"], true);
    down.stop().await;

    let (status, body) = gw
        .execute(json!({"tool_name": "Down.Echo", "input": {"message": "x"}}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["output"]["error"]["kind"],
        "NETWORK_TRANSPORT_RUNTIME_UNREACHABLE"
    );
    assert_eq!(body["output"]["error"]["can_retry"], true);
    let (_, body) = gw
        .execute(json!({"tool_name": "Up.Echo", "input": {"message": "still here"}}))
        .await;
    assert_eq!(body["output"]["value"], "still here");

    assert!(
        eventually(|| async { gw.get("/v1/workers/down/health").await.1["healthy"] == false })
            .await,
        "health check notices the worker is down"
    );
    let (_, health) = gw.get("/v1/workers/up/health").await;
    assert_eq!(
        health,
        json!({"id": "up", "enabled": true, "healthy": true, "message": "ok"})
    );
}

#[tokio::test]
async fn worker_timeout_is_honoured() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| {
        let mut w = worker_config("kit", &worker.url());
        w.timeout = Duration::from_millis(300);
        c.workers.push(w);
    })
    .await;
    let (_, body) = gw
        .execute(json!({"tool_name": "Kit.Sleep", "input": {"millis": 3000}}))
        .await;
    assert_eq!(
        body["output"]["error"]["kind"],
        "NETWORK_TRANSPORT_RUNTIME_TIMEOUT"
    );
    assert_eq!(body["output"]["error"]["can_retry"], false);
    assert_eq!(
        worker.invocations(),
        1,
        "a timed-out call is not retried: it may have run"
    );
}

#[tokio::test]
async fn catalog_refreshes_when_a_worker_comes_back() {
    // The worker's address answers nothing while the gateway starts; then the worker
    // comes up behind it.
    let port = SwitchablePort::bind().await;
    let gw = start_gateway(|c| c.workers.push(worker_config("late", &port.url()))).await;
    let (status, _) = gw.get("/v1/tools/Late.Echo").await;
    assert_eq!(status, 404);
    let (_, health) = gw.get("/v1/workers/late/health").await;
    assert_eq!(health["healthy"], false);

    let worker = start_worker("Late").await;
    port.forward_to(worker.addr);
    assert!(eventually(|| async { gw.get("/v1/tools/Late.Echo").await.0 == 200 }).await);
    let (_, body) = gw
        .execute(json!({"tool_name": "Late.Echo", "input": {"message": "back"}}))
        .await;
    assert_eq!(body["output"]["value"], "back");
}

#[tokio::test]
async fn worker_endpoints_describe_workers_without_their_secret() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| c.workers.push(worker_config("kit", &worker.url()))).await;
    let (status, page) = gw.get("/v1/workers").await;
    assert_eq!(status, 200);
    assert_eq!(page["total_count"], 1);
    let w = &page["items"][0];
    assert_eq!(w["id"], "kit");
    assert_eq!(w["type"], "http");
    assert_eq!(w["enabled"], true);
    assert_eq!(w["http"]["uri"], worker.url());
    assert_eq!(w["toolkits"], json!(["Kit"]));
    assert!(!page.to_string().contains(WORKER_SECRET));

    let (_, tools) = gw.get("/v1/workers/kit/tools?limit=2").await;
    assert_eq!(tools["total_count"], 6);
    assert_eq!(tools["items"].as_array().unwrap().len(), 2);
    let (status, _) = gw.get("/v1/workers/nope").await;
    assert_eq!(status, 404);
    let (status, _) = gw.get("/v1/workers/nope/health").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn org_scoped_paths_serve_the_same_api() {
    let gw = start_gateway(|_| {}).await;
    let (status, page) = gw
        .get("/v1/orgs/o1/projects/p1/tools?toolkit=Builtin")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["total_count"], 4);
    let (status, tool) = gw.get("/v1/orgs/o1/projects/p1/tools/Builtin.Echo").await;
    assert_eq!(status, 200);
    assert_eq!(tool["name"], "Echo");
    let res = gw
        .http
        .post(gw.url("/v1/orgs/o1/projects/p1/tools/execute"))
        .header("Authorization", &gw.key)
        .json(&json!({"tool_name": "Builtin.Echo", "input": {"message": "org"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["output"]["value"], "org");
    let res = gw
        .http
        .get(gw.url("/v1/orgs/o1/projects/p1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn dev_mode_lets_loopback_callers_in_without_a_key_but_not_with_a_wrong_one() {
    let gw = start_gateway(|c| c.api.development = true).await;
    let res = gw.http.get(gw.url("/v1/tools")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = gw
        .http
        .get(gw.url("/v1/tools"))
        .header("Authorization", "arc_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn worker_without_secret_is_refused_outside_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let mut w = worker_config("nosecret", "http://127.0.0.1:9");
    w.secret = None;
    config.workers.push(w);
    let err = switchboard::server::Gateway::start(config.clone())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "worker 'nosecret' has no secret; set http.secret (only dev mode defaults it to 'dev')"
    );
    config.api.development = true;
    assert!(switchboard::server::Gateway::start(config).await.is_ok());
}

/// `POST /v1/tools/execute` is served before the router (`api::service`); the same route
/// under an org and project still goes through it. Every outcome, good and bad, gets the
/// same status, headers and body from both (ids and times aside).
#[tokio::test]
async fn the_hot_execute_route_answers_exactly_as_the_router_does() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| {
        c.workers.push(worker_config("kit", &worker.url()));
        c.api.max_request_body_size = 2048;
    })
    .await;
    let token = gw.user_token("bob").await;
    let key = format!("Bearer {}", gw.key);
    let user_token = format!("Bearer {token}");
    let big = json!({"tool_name": "Kit.Echo", "input": {"message": "x".repeat(4096)}}).to_string();
    let json_type = Some("application/json");
    let cases: Vec<(Option<&str>, Option<&str>, String)> = vec![
        (
            Some(&key),
            json_type,
            json!({"tool_name": "Kit.Echo", "input": {"message": "hi"}, "user_id": "alice"})
                .to_string(),
        ),
        (
            Some(&gw.key),
            json_type,
            json!({"tool_name": "kit_whoami", "user_id": "bob"}).to_string(),
        ),
        (
            Some(&key),
            json_type,
            json!({"tool_name": "Kit.Add", "input": {"a": "x", "b": 2}}).to_string(),
        ),
        (
            Some(&key),
            json_type,
            json!({"tool_name": "Kit.Flaky", "input": {}}).to_string(),
        ),
        (
            Some(&key),
            json_type,
            json!({"tool_name": "Kit.NeedsSecret", "input": {}}).to_string(),
        ),
        (
            Some(&key),
            json_type,
            json!({"tool_name": "Kit.Echo", "tool_version": "9.9.9", "input": {"message": "hi"}})
                .to_string(),
        ),
        (
            Some(&key),
            json_type,
            json!({"tool_name": "Nope.Tool", "input": {}}).to_string(),
        ),
        (
            Some(&key),
            json_type,
            json!({"tool_name": " ", "input": {}}).to_string(),
        ),
        (
            Some(&key),
            json_type,
            json!({"tool_name": "Kit.Echo", "run_at": "2030-01-01T00:00:00"}).to_string(),
        ),
        (Some(&key), json_type, "{\"tool_name\": ".into()),
        (Some(&key), json_type, "{\"input\": {}}".into()),
        (
            Some(&key),
            json_type,
            "{\"tool_name\": \"Kit.Echo\", \"input\": 5}".into(),
        ),
        (
            Some(&key),
            Some("application/json; charset=utf-8"),
            json!({"tool_name": "Kit.Echo", "input": {"message": "hi"}}).to_string(),
        ),
        (
            Some(&key),
            Some("application/vnd.api+json"),
            json!({"tool_name": "Kit.Echo", "input": {"message": "hi"}}).to_string(),
        ),
        (Some(&key), Some("text/plain"), "{}".into()),
        (Some(&key), None, "{}".into()),
        (Some(&key), json_type, big),
        (
            None,
            json_type,
            json!({"tool_name": "Kit.Echo"}).to_string(),
        ),
        (
            Some("Bearer nope"),
            json_type,
            json!({"tool_name": "Kit.Echo"}).to_string(),
        ),
        (
            Some(&user_token),
            json_type,
            json!({"tool_name": "Kit.Echo"}).to_string(),
        ),
    ];
    // What may differ between two calls: their ids and times.
    fn comparable(mut body: Value) -> Value {
        for field in ["id", "execution_id", "finished_at", "duration"] {
            if let Some(v) = body.get_mut(field) {
                *v = json!("…");
            }
        }
        body
    }
    for (n, (authorization, content_type, body)) in cases.iter().enumerate() {
        let mut seen = Vec::new();
        for path in ["/v1/tools/execute", "/v1/orgs/o/projects/p/tools/execute"] {
            let mut req = gw.http.post(gw.url(path)).body(body.clone());
            if let Some(a) = authorization {
                req = req.header("Authorization", *a);
            }
            if let Some(t) = content_type {
                req = req.header("Content-Type", *t);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let mut headers: Vec<(String, String)> = res
                .headers()
                .iter()
                .filter(|(name, _)| *name != "date")
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            headers.sort();
            let text = res.text().await.unwrap();
            let body = serde_json::from_str(&text).map_or(Value::String(text), comparable);
            seen.push((status, headers, body));
        }
        let headers_without_length = |h: &[(String, String)]| {
            h.iter()
                .filter(|(k, _)| k != "content-length")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(seen[0].0, seen[1].0, "case {n}: status");
        assert_eq!(seen[0].2, seen[1].2, "case {n}: body");
        // Lengths differ only with the ids' and times' digits, on successes.
        assert_eq!(
            headers_without_length(&seen[0].1),
            headers_without_length(&seen[1].1),
            "case {n}: headers"
        );
    }
    assert_eq!(
        worker.invocations(),
        2 * 5,
        "each tool call ran once per path"
    );
}

/// `http.retry`: a call whose connection to the worker fails before any request is sent
/// is tried 1 + retry times; with `retry: 0`, exactly once. The worker's port accepts
/// and closes each connection, reached over https so each attempt fails in the
/// handshake (a connection failure, which is what the client retries).
#[tokio::test]
async fn a_call_whose_connection_fails_is_tried_once_plus_the_workers_retry_count() {
    use switchboard::catalog::{Catalog, ToolEntry, ToolSource};
    for retry in [0u32, 2] {
        let port = ClosingPort::bind().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        // No health checks while the call runs: only the call reaches the port.
        config.worker_health_interval = Duration::from_secs(3600);
        let mut w = worker_config("kit", &port.https_url());
        w.retry = retry;
        config.workers.push(w);
        let gateway = switchboard::server::Gateway::start(config).await.unwrap();
        // The start-up health check failed, so the catalog lacks the worker's tools: put
        // in those it listed before its connections started failing.
        let listed = test_toolkit("Kit", Default::default()).definitions();
        gateway.registry.catalog().replace(Catalog::new(
            listed
                .into_iter()
                .map(|d| ToolEntry::new(d, ToolSource::Worker("kit".into()))),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw = serve_gateway(gateway, listener, dir).await;
        let before = port.accepted();

        let (status, body) = gw
            .execute(json!({"tool_name": "Kit.Echo", "input": {"message": "x"}}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["output"]["error"]["kind"], "NETWORK_TRANSPORT_RUNTIME_UNREACHABLE",
            "{body}"
        );
        assert_eq!(
            port.accepted() - before,
            1 + retry as usize,
            "connection attempts with retry: {retry}"
        );
    }
}

/// A failed tool call (the tool raised an error, or its input was refused) is still a
/// 200 that tells SDKs not to resend it: the tool may have run.
#[tokio::test]
async fn failed_tool_calls_say_x_should_retry_false() {
    let worker = start_worker("Kit").await;
    let gw = start_gateway(|c| c.workers.push(worker_config("kit", &worker.url()))).await;
    for (body, kind) in [
        (
            json!({"tool_name": "Kit.Flaky", "input": {}}),
            "TOOL_RUNTIME_RETRY",
        ),
        (
            json!({"tool_name": "Kit.Add", "input": {"a": "x", "b": 1}}),
            "TOOL_RUNTIME_BAD_INPUT_VALUE",
        ),
    ] {
        for path in ["/v1/tools/execute", "/v1/orgs/o/projects/p/tools/execute"] {
            let res = gw
                .http
                .post(gw.url(path))
                .header("Authorization", &gw.key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(res.headers()["x-should-retry"], "false", "{path} {kind}");
            let got: Value = res.json().await.unwrap();
            assert_eq!(got["success"], false);
            assert_eq!(got["output"]["error"]["kind"], kind);
        }
    }
}

/// The 403 of a missing grant says `x-should-retry: false` too: the client's next step
/// is the authorization, not a resend.
#[tokio::test]
async fn the_missing_grant_403_says_x_should_retry_false() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use switchboard_tdk::{Auth, Tool, ToolContext, ToolError, Toolkit};

    let fake = common::fake_provider::FakeProvider::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let toolkit = Toolkit::new("Acct", "1.0.0").tool(
        Tool::new(
            "Me",
            "Needs a grant",
            move |_ctx: ToolContext, _i: Empty| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, ToolError>(json!({})) }
            },
        )
        .requires_auth(Auth::oauth2("fake").scopes(["read"])),
    );
    let worker = start_toolkit_worker(toolkit).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = start_gateway_on(listener, |c| {
        c.security.root_keys = vec![switchboard::config::RootKeyConfig {
            id: "k1".into(),
            default: true,
            value: SecretValue::new("api-tests-root-key-0123456789abcdef"),
        }];
        c.auth_providers.push(fake.provider_config("fake"));
        c.workers.push(worker_config("acct", &worker.url()));
        c.oauth.user_verifier = switchboard::config::UserVerifier::Disabled;
    })
    .await;
    let res = gw
        .http
        .post(gw.url("/v1/tools/execute"))
        .header("Authorization", &gw.key)
        .json(&json!({"tool_name": "Acct.Me", "input": {}, "user_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["x-should-retry"], "false");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "authorization_required", "{body}");
    assert!(body["output"]["authorization"]["url"].is_string(), "{body}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the tool never ran");
}

/// Dev mode: a worker configured without a secret is called with `dev`, so a worker
/// started with that secret lists and runs its tools.
#[tokio::test]
async fn dev_mode_calls_a_worker_without_a_configured_secret_with_dev() {
    let worker = start_worker_with_secret("Kit", "dev").await;
    let gw = start_gateway(|c| {
        c.api.development = true;
        let mut w = worker_config("kit", &worker.url());
        w.secret = None;
        c.workers.push(w);
    })
    .await;
    let (status, body) = gw
        .execute(json!({"tool_name": "Kit.Echo", "input": {"message": "dev secret"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["output"]["value"], "dev secret");
    assert_eq!(worker.invocations(), 1);
}

/// A worker that stays healthy but changes its tool list: the next health check
/// refreshes the catalog (new tool listed, removed tool gone).
#[tokio::test]
async fn the_catalog_follows_a_healthy_workers_changed_tool_list() {
    let first = switchboard_tdk::Toolkit::new("Shift", "1.0.0").tool(switchboard_tdk::Tool::new(
        "Old",
        "Goes away",
        |_ctx: switchboard_tdk::ToolContext, _i: Empty| async {
            Ok::<_, switchboard_tdk::ToolError>(json!("old"))
        },
    ));
    let second = switchboard_tdk::Toolkit::new("Shift", "1.0.0").tool(switchboard_tdk::Tool::new(
        "New",
        "Arrives later",
        |_ctx: switchboard_tdk::ToolContext, _i: Empty| async {
            Ok::<_, switchboard_tdk::ToolError>(json!("new"))
        },
    ));
    let worker = ShiftingWorker::start(first, second).await;
    let gw = start_gateway(|c| c.workers.push(worker_config("shift", &worker.url()))).await;
    assert_eq!(gw.get("/v1/tools/Shift.Old").await.0, 200);
    assert_eq!(gw.get("/v1/tools/Shift.New").await.0, 404);

    worker.shift();
    assert!(
        eventually(|| async { gw.get("/v1/tools/Shift.New").await.0 == 200 }).await,
        "the new tool is listed"
    );
    assert_eq!(
        gw.get("/v1/tools/Shift.Old").await.0,
        404,
        "the old one is gone"
    );
    let (_, tools) = gw.get("/v1/workers/shift/tools").await;
    assert_eq!(tools["total_count"], 1, "{tools}");
    let (_, body) = gw
        .execute(json!({"tool_name": "Shift.New", "input": {}}))
        .await;
    assert_eq!(body["output"]["value"], "new", "{body}");
    let (_, health) = gw.get("/v1/workers/shift/health").await;
    assert_eq!(health["healthy"], true);
}
