"""Upstream MCP servers as tool sources (issue 18), with real upstreams from the registries:

- `@modelcontextprotocol/server-everything` (npm) over Streamable HTTP, worker id `everything`;
- a server on the MCP Python SDK (PyPI `mcp`, `MCPServer`, formerly FastMCP) over Streamable
  HTTP, worker id `fast`, with a static `X-Api-Key` header set in the gateway's config.

The gateway lists their tools as `{id}.{tool}` on REST and `{id}_{tool}` on MCP; an MCP
`tools/call` returns the upstream's result verbatim; REST returns the structured content (or the
single text) as `output.value`; an upstream `isError` is a failed execution on REST. The caller's
own credential (the gateway API key) never reaches an upstream. An unreachable upstream fails
only its own tools.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

import test_mcp_typescript_sdk as ts_sdk
from test_mcp_python_sdk import run  # each call bounded, so a hang fails the test
from conftest import Gateway, free_port, mcp_url, stop_process
from upstreams.servers import Upstream, start_fast_upstream, start_server_everything

# A test value, not a real credential: the static header the gateway injects for `fast`.
FAST_API_KEY = "fast-upstream-key-for-interop-tests"
# MCP tool names as the gateway lists them, and the upstreams' own names.
EVERYTHING_TOOLS = {"everything_echo": "echo", "everything_get-tiny-image": "get-tiny-image",
                    "everything_get-structured-content": "get-structured-content",
                    "everything_get-annotated-message": "get-annotated-message"}
FAST_TOOLS = {"fast_echo": "echo", "fast_fail": "fail", "fast_check_api_key": "check_api_key"}

@asynccontextmanager
async def sdk_client(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    """A connected `mcp.Client` (2025-11-25 handshake era); no response cache, so every call
    reaches the server."""
    async with create_mcp_http_client(headers=headers or {}) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy",
                          cache=None) as client:
            yield client


def gateway_headers(gw: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gw.api_key}"}


async def list_all_tools(client: Client) -> dict[str, types.Tool]:
    tools: dict[str, types.Tool] = {}
    cursor: str | None = None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor)
        tools.update((tool.name, tool) for tool in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return tools
    pytest.fail("tools/list never stopped paginating")


def dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def call_direct(upstream: Upstream, tool: str, arguments: dict[str, Any],
                headers: dict[str, str] | None = None) -> types.CallToolResult:
    async def go() -> types.CallToolResult:
        async with sdk_client(upstream.url, headers) as client:
            return await client.call_tool(tool, arguments)

    return run(go)


def call_through(gw: Gateway, user_id: str, tool: str,
                 arguments: dict[str, Any]) -> types.CallToolResult:
    async def go() -> types.CallToolResult:
        async with sdk_client(mcp_url(gw, user_id), gateway_headers(gw)) as client:
            return await client.call_tool(tool, arguments)

    return run(go)


def mcp_engine_entry(worker_id: str, uri: str, **mcp: Any) -> dict[str, Any]:
    return {"id": worker_id, "enabled": True, "type": "mcp",
            "mcp": {"uri": uri, "timeout": "30s", "retry": 1, **mcp}}


# Loopback upstreams are refused by the SSRF guard unless allowed.
LOOPBACK_ALLOWED = {"network": {"allowlist": ["127.0.0.1"]}}


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    upstream = start_server_everything(tmp_path_factory.mktemp("server-everything"))
    yield upstream
    stop_process(upstream.proc)


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    upstream = start_fast_upstream(tmp_path_factory.mktemp("fast-upstream"), FAST_API_KEY)
    yield upstream
    stop_process(upstream.proc)


@pytest.fixture(scope="module")
def upstream_gateway(gateway_factory, everything: Upstream, fast: Upstream) -> Gateway:
    gw = gateway_factory(
        [
            mcp_engine_entry("everything", everything.url),
            mcp_engine_entry("fast", fast.url, headers={"X-Api-Key": FAST_API_KEY}),
        ],
        extra_config=LOOPBACK_ALLOWED,
    )
    gw.wait_for_tools("everything.echo", "fast.echo", "fast.fail", "fast.check_api_key")
    return gw


# ---------------------------------------------------------------------------------------------
# The fixtures themselves
# ---------------------------------------------------------------------------------------------


def test_the_upstreams_answer_directly(everything: Upstream, fast: Upstream) -> None:
    async def listed(upstream: Upstream) -> dict[str, types.Tool]:
        async with sdk_client(upstream.url) as client:
            return await list_all_tools(client)

    assert set(EVERYTHING_TOOLS.values()) <= set(run(lambda: listed(everything)))
    assert set(FAST_TOOLS.values()) <= set(run(lambda: listed(fast)))

    echoed = call_direct(everything, "echo", {"message": "hi"})
    assert dump(echoed)["content"] == [{"type": "text", "text": "Echo: hi"}]

    structured = call_direct(fast, "echo", {"message": "hi"})
    assert structured.is_error is False
    assert structured.structured_content == {"message": "hi", "length": 2}

    failed = call_direct(fast, "fail", {"reason": "nope"})
    assert failed.is_error is True
    assert "upstream refused: nope" in failed.content[0].text

    with_key = call_direct(fast, "check_api_key", {}, headers={"X-Api-Key": FAST_API_KEY})
    assert with_key.structured_content["matched"] is True, with_key
    wrong_key = call_direct(fast, "check_api_key", {}, headers={"X-Api-Key": "wrong"})
    assert wrong_key.structured_content["matched"] is False, wrong_key
    assert wrong_key.structured_content["present"] is True, wrong_key


# ---------------------------------------------------------------------------------------------
# MCP clients through the gateway
# ---------------------------------------------------------------------------------------------


def test_the_python_sdk_lists_upstream_tools_with_the_upstreams_schemas(
        upstream_gateway: Gateway, everything: Upstream, fast: Upstream) -> None:
    async def listed(url: str, headers: dict[str, str] | None = None) -> dict[str, types.Tool]:
        async with sdk_client(url, headers) as client:
            return await list_all_tools(client)

    through = run(lambda: listed(mcp_url(upstream_gateway, "py-alice"),
                                 gateway_headers(upstream_gateway)))
    for upstream, names in ((everything, EVERYTHING_TOOLS), (fast, FAST_TOOLS)):
        direct = run(lambda: listed(upstream.url))
        for gateway_name, upstream_name in names.items():
            assert gateway_name in through, sorted(through)
            got, want = through[gateway_name], direct[upstream_name]
            assert got.input_schema == want.input_schema, gateway_name
            assert got.output_schema == want.output_schema, gateway_name
            assert got.description == want.description, gateway_name
            assert got.title == want.title, gateway_name
            assert dump(got).get("annotations") == dump(want).get("annotations"), gateway_name
    assert through["fast_echo"].output_schema is not None


@pytest.mark.parametrize(
    ("gateway_name", "arguments"),
    [
        ("everything_echo", {"message": "hello upstream"}),
        ("everything_get-tiny-image", {}),
        ("everything_get-structured-content", {"location": "Chicago"}),
        # Content annotations (audience, priority) and an image.
        ("everything_get-annotated-message", {"messageType": "error", "includeImage": True}),
        ("fast_echo", {"message": "hello fast"}),
    ],
)
def test_the_python_sdk_gets_the_upstreams_result_verbatim(
        upstream_gateway: Gateway, everything: Upstream, fast: Upstream, gateway_name: str,
        arguments: dict[str, Any]) -> None:
    upstream, names = ((everything, EVERYTHING_TOOLS) if gateway_name.startswith("everything_")
                       else (fast, FAST_TOOLS))
    direct = call_direct(upstream, names[gateway_name], arguments)
    through = call_through(upstream_gateway, "py-alice", gateway_name, arguments)
    assert dump(through) == dump(direct)


def test_an_upstream_error_is_an_is_error_result_for_the_python_sdk(
        upstream_gateway: Gateway, fast: Upstream) -> None:
    through = call_through(upstream_gateway, "py-alice", "fast_fail", {"reason": "nope"})
    assert through.is_error is True
    assert dump(through) == dump(call_direct(fast, "fail", {"reason": "nope"}))


def test_the_typescript_sdk_lists_and_calls_an_upstream_tool(upstream_gateway: Gateway) -> None:
    out = ts_sdk.run_ts_client(upstream_gateway, "ts-alice", call="everything_echo",
                               arguments={"message": "from ts"})
    names = {tool["name"] for tool in out["tools"]}
    assert set(EVERYTHING_TOOLS) | set(FAST_TOOLS) <= names, sorted(names)
    assert out["call"]["content"] == [{"type": "text", "text": "Echo: from ts"}]
    assert not out["call"].get("isError")


# ---------------------------------------------------------------------------------------------
# arcadepy (REST) through the gateway
# ---------------------------------------------------------------------------------------------


def test_arcadepy_executes_an_upstream_tool_with_structured_output(
        upstream_gateway: Gateway) -> None:
    client = upstream_gateway.client()
    result = client.tools.execute(tool_name="fast.echo", input={"message": "hi"},
                                  user_id="alice")
    assert result.success is True, result
    assert result.output is not None and result.output.error is None, result
    assert result.output.value == {"message": "hi", "length": 2}


def test_arcadepy_gets_an_upstreams_single_text_as_a_string(upstream_gateway: Gateway) -> None:
    client = upstream_gateway.client()
    result = client.tools.execute(tool_name="everything.echo", input={"message": "hi"},
                                  user_id="alice")
    assert result.success is True, result
    assert result.output is not None
    assert result.output.value == "Echo: hi"


def test_an_upstream_error_is_a_failed_execution_for_arcadepy(upstream_gateway: Gateway) -> None:
    client = upstream_gateway.client()
    result = client.tools.execute(tool_name="fast.fail", input={"reason": "nope"},
                                  user_id="alice")
    assert result.success is False, result
    assert result.output is not None and result.output.error is not None, result
    assert "upstream refused: nope" in result.output.error.message, result.output.error


def test_the_gateway_lists_upstream_tools_on_rest(upstream_gateway: Gateway) -> None:
    client = upstream_gateway.client()
    tool = client.tools.get("fast.echo")
    assert tool.name == "echo", tool
    assert tool.toolkit.name == "fast", tool
    params = {p.name: p for p in (tool.input.parameters or [])}
    assert "message" in params and params["message"].required is True, tool.input


# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------


def assert_only_the_configured_credential(check: dict[str, Any], gw: Gateway) -> None:
    assert check["matched"] is True, check
    assert "authorization" not in check["header_names"], check["header_names"]
    assert gw.api_key not in json.dumps(check["headers"]), "the gateway API key reached the upstream"


def test_the_upstream_sees_the_configured_header_and_not_the_mcp_clients_credential(
        upstream_gateway: Gateway) -> None:
    through = call_through(upstream_gateway, "py-alice", "fast_check_api_key", {})
    assert through.is_error is False, dump(through)
    assert_only_the_configured_credential(through.structured_content, upstream_gateway)


def test_the_upstream_sees_the_configured_header_and_not_the_rest_callers_credential(
        upstream_gateway: Gateway) -> None:
    for bearer in (False, True):
        client = upstream_gateway.client(bearer=bearer)
        result = client.tools.execute(tool_name="fast.check_api_key", input={}, user_id="alice")
        assert result.success is True, result
        assert result.output is not None
        assert_only_the_configured_credential(result.output.value, upstream_gateway)


# ---------------------------------------------------------------------------------------------
# An unreachable upstream
# ---------------------------------------------------------------------------------------------


def test_an_unreachable_upstream_leaves_the_other_upstreams_tools_working(
        gateway_factory, fast: Upstream) -> None:
    closed = f"http://127.0.0.1:{free_port()}/mcp"
    gw = gateway_factory(
        [
            mcp_engine_entry("down", closed),
            mcp_engine_entry("fast", fast.url, headers={"X-Api-Key": FAST_API_KEY}),
        ],
        extra_config=LOOPBACK_ALLOWED,
    )
    gw.wait_for_tools("fast.echo")

    result = gw.client().tools.execute(tool_name="fast.echo", input={"message": "still up"},
                                       user_id="alice")
    assert result.success is True, result
    assert result.output is not None and result.output.value == {"message": "still up",
                                                                  "length": 8}

    through = call_through(gw, "py-alice", "fast_echo", {"message": "still up"})
    assert through.is_error is False
    assert through.structured_content == {"message": "still up", "length": 8}
    assert gw.proc.alive()
