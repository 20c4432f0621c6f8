"""arcadepy, Arcade's own Python client, against a running gateway with the TDK example worker.

Every client test runs twice: once with the key sent raw (`Authorization: <key>`, what arcadepy
does by itself) and once as `Authorization: Bearer <key>` (what Arcade's CLI sends).
"""

from __future__ import annotations

from collections.abc import Iterator

import arcadepy
import httpx
import pytest
from arcadepy import Arcade

from conftest import DEMO_API_KEY_VALUE, Gateway, Worker


@pytest.fixture(scope="module")
def gw(gateway_factory, demo_worker: Worker) -> Gateway:
    gateway = gateway_factory([demo_worker.engine_entry()])
    gateway.wait_for_tools("Demo.Echo", "Demo.Add", "Demo.SecretCheck")
    return gateway


@pytest.fixture(params=["raw", "bearer"])
def client(request: pytest.FixtureRequest, gw: Gateway) -> Iterator[Arcade]:
    """An arcadepy client that records the Authorization header it actually sends."""
    sent: list[str] = []

    def record(req: httpx.Request) -> None:
        sent.append(req.headers.get("authorization", "<none>"))

    http_client = httpx.Client(event_hooks={"request": [record]})
    bearer = request.param == "bearer"
    yield gw.client(bearer=bearer, http_client=http_client)
    http_client.close()
    expected = f"Bearer {gw.api_key}" if bearer else gw.api_key
    assert sent, "the client sent no request"
    assert set(sent) == {expected}, "arcadepy did not send the key in the intended form"


def test_the_tool_list_contains_the_workers_tools(client: Arcade) -> None:
    names = {tool.qualified_name for tool in client.tools.list()}
    assert "Demo.Echo" in names
    assert "Demo.Add" in names


def test_the_toolkit_filter_returns_only_that_toolkit(client: Arcade) -> None:
    tools = list(client.tools.list(toolkit="Demo"))
    assert tools, "no tools in toolkit Demo"
    assert {tool.toolkit.name for tool in tools} == {"Demo"}
    assert "Demo.Echo" in {tool.qualified_name for tool in tools}


def test_the_toolkit_filter_ignores_case(client: Arcade) -> None:
    tools = list(client.tools.list(toolkit="demo"))
    assert "Demo.Echo" in {tool.qualified_name for tool in tools}


def test_paging_with_a_small_limit_visits_every_tool(client: Arcade) -> None:
    everything = {tool.qualified_name for tool in client.tools.list(limit=100)}
    paged = {tool.qualified_name for tool in client.tools.list(limit=2)}
    assert paged == everything


def test_getting_a_tool_returns_its_definition(client: Arcade) -> None:
    tool = client.tools.get("Demo.Echo")
    assert tool.name == "Echo"
    assert tool.qualified_name == "Demo.Echo"
    assert tool.fully_qualified_name.startswith("Demo.Echo")
    assert tool.toolkit.name == "Demo"
    params = {p.name: p for p in tool.input.parameters}
    assert "message" in params
    assert params["message"].required is True
    assert params["message"].value_schema.val_type == "string"


def test_getting_a_tool_by_its_underscore_name_works(client: Arcade) -> None:
    assert client.tools.get("Demo_Echo").qualified_name == "Demo.Echo"


def test_executing_a_tool_returns_its_output(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Demo.Echo", input={"message": "hi"}, user_id="alice")
    assert result.success is True, result
    assert result.output is not None
    assert result.output.error is None
    assert result.output.value == "hi"
    assert result.status == "success"
    assert result.execution_id


def test_executing_a_tool_by_its_underscore_name_works(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Demo_Echo", input={"message": "hey"}, user_id="alice")
    assert result.success is True, result
    assert result.output is not None
    assert result.output.value == "hey"


def test_an_unknown_tool_is_not_found(client: Arcade) -> None:
    with pytest.raises(arcadepy.NotFoundError) as raised:
        client.tools.get("Demo.NoSuchTool")
    assert raised.value.status_code == 404
    body = raised.value.body
    assert isinstance(body, dict) and body.get("name") and body.get("message"), body


def test_the_scheduled_list_is_empty_and_a_scheduled_id_is_not_found(client: Arcade) -> None:
    page = client.tools.scheduled.list(limit=10)
    assert list(page) == []
    with pytest.raises(arcadepy.NotFoundError):
        client.tools.scheduled.get("no-such-id")


def test_executing_an_unknown_tool_is_not_found(client: Arcade) -> None:
    with pytest.raises(arcadepy.NotFoundError):
        client.tools.execute(tool_name="Demo.NoSuchTool", input={}, user_id="alice")


def test_a_wrong_type_is_rejected_naming_the_parameter(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Demo.Add", input={"a": "x", "b": 2}, user_id="alice")
    assert result.success is False, result
    assert result.output is not None and result.output.error is not None, result
    error = result.output.error
    assert error.kind == "TOOL_RUNTIME_BAD_INPUT_VALUE"
    assert error.can_retry is False
    assert "parameter 'a'" in error.message, error.message


def test_a_missing_required_parameter_is_rejected_naming_it(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Demo.Echo", input={}, user_id="alice")
    assert result.success is False, result
    assert result.output is not None and result.output.error is not None, result
    assert result.output.error.kind == "TOOL_RUNTIME_BAD_INPUT_VALUE"
    assert "parameter 'message'" in result.output.error.message, result.output.error.message


def test_a_configured_secret_reaches_the_tool(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Demo.SecretCheck", input={}, user_id="alice")
    assert result.success is True, result
    assert result.output is not None
    assert result.output.value == {"configured": True, "length": len(DEMO_API_KEY_VALUE)}


def test_the_builtin_toolkit_is_listed_and_runs(client: Arcade) -> None:
    names = {tool.qualified_name for tool in client.tools.list(toolkit="Builtin")}
    assert {"Builtin.Echo", "Builtin.CurrentTime", "Builtin.RandomUuid"} <= names
    result = client.tools.execute(tool_name="Builtin.Echo", input={"message": "b"}, user_id="a")
    assert result.success is True, result
    assert result.output is not None and result.output.value == "b"


# --- Keys ------------------------------------------------------------------------------------


def test_health_needs_no_key(gw: Gateway) -> None:
    resp = httpx.get(f"{gw.base_url}/v1/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["healthy"] is True


def test_arcadepy_health_check_with_an_empty_key_works(gw: Gateway) -> None:
    # Arcade's CLI checks health with Arcade(api_key="").
    assert Arcade(api_key="", base_url=gw.base_url, max_retries=0).health.check().healthy is True


def test_a_wrong_key_is_an_authentication_error(gw: Gateway) -> None:
    bad = Arcade(api_key="arc_not_a_real_key", base_url=gw.base_url, max_retries=0)
    with pytest.raises(arcadepy.AuthenticationError) as raised:
        bad.tools.list()
    body = raised.value.body
    assert isinstance(body, dict) and body.get("name") and body.get("message"), body
    assert "arc_not_a_real_key" not in str(body), "the error echoes the key"


def test_a_wrong_bearer_key_is_an_authentication_error(gw: Gateway) -> None:
    bad = Arcade(api_key="x", base_url=gw.base_url, max_retries=0,
                 default_headers={"Authorization": "Bearer arc_not_a_real_key"})
    with pytest.raises(arcadepy.AuthenticationError):
        bad.tools.execute(tool_name="Demo.Echo", input={"message": "hi"}, user_id="alice")


def test_an_empty_key_is_an_authentication_error(gw: Gateway) -> None:
    empty = Arcade(api_key="", base_url=gw.base_url, max_retries=0)
    with pytest.raises(arcadepy.AuthenticationError):
        empty.tools.list()


def test_a_request_without_an_authorization_header_is_401_with_name_and_message(
    gw: Gateway,
) -> None:
    resp = httpx.get(f"{gw.base_url}/v1/tools", timeout=10)
    assert resp.status_code == 401
    body = resp.json()
    assert body.get("name") and body.get("message"), body
