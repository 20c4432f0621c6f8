"""A real Arcade worker, arcade-mcp-server serving tests/interop/workers/mathkit, behind the gateway.

The worker is registered in engine.yaml with its ARCADE_WORKER_SECRET; the gateway signs each
call with an HS256 JWT, and arcade-mcp-server rejects anything else.
"""

from __future__ import annotations

import httpx
import jwt
import pytest
from arcadepy import Arcade

from conftest import Gateway, Worker


@pytest.fixture(scope="module")
def gw(gateway_factory, mathkit_worker: Worker) -> Gateway:
    gateway = gateway_factory([mathkit_worker.engine_entry()])
    gateway.wait_for_tools("Mathkit.Add", "Mathkit.Multiply", "Mathkit.Shout")
    return gateway


@pytest.fixture(params=["raw", "bearer"])
def client(request: pytest.FixtureRequest, gw: Gateway) -> Arcade:
    return gw.client(bearer=request.param == "bearer")


def test_the_worker_refuses_calls_without_the_gateways_jwt(mathkit_worker: Worker) -> None:
    # The premise of this module: /worker/tools is protected, so the gateway must sign.
    unsigned = httpx.get(f"{mathkit_worker.uri}/worker/tools", timeout=10)
    assert unsigned.status_code == 401
    forged = jwt.encode({"aud": "worker", "ver": "1"}, "not-the-secret-but-long-enough-for-hs256", algorithm="HS256")
    resp = httpx.get(f"{mathkit_worker.uri}/worker/tools",
                     headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert resp.status_code == 401


def test_the_workers_tools_are_listed(client: Arcade) -> None:
    tools = list(client.tools.list(toolkit="Mathkit"))
    assert {tool.qualified_name for tool in tools} == {
        "Mathkit.Add", "Mathkit.Multiply", "Mathkit.Shout",
    }
    assert {tool.toolkit.name for tool in tools} == {"Mathkit"}


def test_a_workers_tool_definition_keeps_its_parameters(client: Arcade) -> None:
    tool = client.tools.get("Mathkit.Shout")
    assert tool.description == "Turn text into upper case and add exclamation marks."
    assert tool.toolkit.name == "Mathkit"
    assert tool.toolkit.version == "1.0.0"
    params = {p.name: p for p in tool.input.parameters}
    assert params["text"].required is True
    assert params["text"].value_schema.val_type == "string"
    assert params["times"].required is False
    assert params["times"].value_schema.val_type == "integer"


def test_a_workers_tool_executes(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Mathkit.Add", input={"a": 2, "b": 3},
                                  user_id="alice")
    assert result.success is True, result
    assert result.output is not None and result.output.value == 5


def test_a_workers_tool_executes_by_its_underscore_name_in_any_case(client: Arcade) -> None:
    result = client.tools.execute(tool_name="mathkit_multiply", input={"a": 1.5, "b": 4},
                                  user_id="alice")
    assert result.success is True, result
    assert result.output is not None and result.output.value == 6.0


def test_an_optional_parameter_may_be_left_out(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Mathkit.Shout", input={"text": "hi"},
                                  user_id="alice")
    assert result.success is True, result
    assert result.output is not None and result.output.value == "HI!"
    result = client.tools.execute(tool_name="Mathkit.Shout", input={"text": "hi", "times": 3},
                                  user_id="alice")
    assert result.output is not None and result.output.value == "HI!!!"


def test_a_wrong_type_is_a_bad_input_error(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Mathkit.Add", input={"a": "x", "b": 3},
                                  user_id="alice")
    assert result.success is False, result
    assert result.output is not None and result.output.error is not None, result
    assert result.output.error.kind == "TOOL_RUNTIME_BAD_INPUT_VALUE"
    # The gateway checks input against the tool's parameters before calling the worker.
    assert "parameter 'a'" in result.output.error.message, result.output.error.message


def test_the_worker_is_listed_and_healthy(gw: Gateway) -> None:
    with gw.http() as http:
        listed = http.get("/v1/workers")
        assert listed.status_code == 200, listed.text
        ids = {item["id"] for item in listed.json()["items"]}
        assert "mathkit" in ids
        health = http.get("/v1/workers/mathkit/health")
        assert health.status_code == 200, health.text
        assert health.json()["healthy"] is True
        tools = http.get("/v1/workers/mathkit/tools")
        assert tools.status_code == 200, tools.text
        assert {t["qualified_name"] for t in tools.json()["items"]} == {
            "Mathkit.Add", "Mathkit.Multiply", "Mathkit.Shout",
        }


def test_the_worker_secret_is_not_shown_by_the_workers_api(gw: Gateway,
                                                           mathkit_worker: Worker) -> None:
    with gw.http() as http:
        resp = http.get("/v1/workers/mathkit")
    assert resp.status_code == 200, resp.text
    assert mathkit_worker.secret not in resp.text
