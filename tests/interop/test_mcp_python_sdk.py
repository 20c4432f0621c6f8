"""The official MCP Python SDK (PyPI `mcp`) as a client of the gateway's per-user endpoint
`/v1/mcps/{user}/mcp`: list and call in the 2025-11-25 era (initialize, sessions) and in the
2026-07-28 era (stateless, `server/discover`), and the three forms of the authorization
prompt end to end with the dev-mode sandbox provider:

1. a 2025-11-25 client that declares URL elicitation gets `elicitation/create` (mode `url`);
   the test's callback "opens" the link by driving the sandbox's consent over HTTP, answers
   `accept`, and the same tools/call returns the tool's result;
2. a 2026-07-28 client gets `input_required` carrying the URL elicitation and a
   `requestState`; the SDK's own retry loop (and, separately, raw HTTP) completes the call;
3. a client without elicitation gets an `isError` result whose text carries the link.

The SDK authenticates with the gateway's API key as a Bearer token, as a deployed client
would (dev mode would also let a loopback caller in without one).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from conftest import Gateway, complete_sandbox_consent, mcp_url

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
WHO_AM_I = "Demo_WhoAmI"
# Bounded, so a call that never completes fails the test instead of hanging it.
CALL_TIMEOUT_S = 150.0

T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        with anyio.fail_after(CALL_TIMEOUT_S):
            return await fn()

    return anyio.run(bounded)


@asynccontextmanager
async def sdk_client(gw: Gateway, user_id: str, mode: str, **kwargs: Any) -> AsyncIterator[Client]:
    """A connected `mcp.Client`: mode "legacy" (initialize), "auto" (discover, then fall back)
    or a modern version pinned. Response caching is off so every call reaches the gateway."""
    headers = {"Authorization": f"Bearer {gw.api_key}"}
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(mcp_url(gw, user_id), http_client=http)
        async with Client(transport, mode=mode, cache=None, **kwargs) as client:
            yield client


async def list_all_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return tools
    pytest.fail("tools/list never stopped paginating")


def texts(result: types.CallToolResult) -> list[str]:
    return [block.text for block in result.content if isinstance(block, types.TextContent)]


def profile(result: types.CallToolResult) -> dict[str, Any]:
    """WhoAmI's output (the sandbox's /me answer), from structuredContent or the JSON text."""
    structured = result.structured_content
    if isinstance(structured, dict):
        if "username" in structured:
            return structured
        if isinstance(structured.get("result"), dict):
            return structured["result"]
    for text in texts(result):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    pytest.fail(f"no profile in the result: {result!r}")


def links_in(text: str, gw: Gateway) -> list[str]:
    return re.findall(re.escape(gw.base_url) + r"/v1/oauth/link/[A-Za-z0-9._~%-]+", text)


class UrlElicitationUser:
    """The elicitation callback of a user who opens the link, completes (or denies) the
    sandbox's consent in the browser, then answers `action`."""

    def __init__(self, gw: Gateway, sandbox_username: str, action: str = "accept",
                 decision: str = "allow", open_link: bool = True) -> None:
        self.gw = gw
        self.sandbox_username = sandbox_username
        self.action = action
        self.decision = decision
        self.open_link = open_link
        self.seen: list[types.ElicitRequestURLParams] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams), params
        assert params.mode == "url", params
        assert params.url.startswith(f"{self.gw.base_url}/v1/oauth/link/"), params
        assert params.message, params
        self.seen.append(params)
        if self.open_link:
            page = await anyio.to_thread.run_sync(
                lambda: complete_sandbox_consent(self.gw, params.url, self.sandbox_username,
                                                 self.decision))
            expected = 200 if self.decision == "allow" else 400
            assert page.status_code == expected, (page.status_code, page.text[:500])
        return types.ElicitResult(action=self.action)


# ---------------------------------------------------------------------------------------------
# List and call, 2025-11-25 era
# ---------------------------------------------------------------------------------------------


def test_the_python_sdk_lists_tools_named_toolkit_tool_in_the_2025_11_25_era(
        mcp_gateway: Gateway) -> None:
    async def scenario() -> tuple[str, list[types.Tool], types.Implementation | None]:
        async with sdk_client(mcp_gateway, "py-alice", "legacy") as client:
            return client.protocol_version, await list_all_tools(client), client.server_info

    version, tools, server_info = run(scenario)
    assert version == LEGACY
    assert server_info is not None and server_info.name, server_info
    by_name = {tool.name: tool for tool in tools}
    assert len(by_name) == len(tools), "tool names repeat"
    for name in ("Demo_Echo", "Demo_WhoAmI", "Builtin_Echo"):
        assert name in by_name, sorted(by_name)
    echo = by_name["Demo_Echo"]
    assert echo.description, echo
    assert echo.input_schema.get("type") == "object", echo.input_schema
    assert "message" in echo.input_schema.get("properties", {}), echo.input_schema
    assert "message" in echo.input_schema.get("required", []), echo.input_schema


def test_the_python_sdk_calls_a_tool_in_the_2025_11_25_era(mcp_gateway: Gateway) -> None:
    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with sdk_client(mcp_gateway, "py-alice", "legacy") as client:
            demo = await client.call_tool("Demo_Echo", {"message": "hello from python"})
            builtin = await client.call_tool("Builtin_Echo", {"message": "built in"})
            return demo, builtin

    demo, builtin = run(scenario)
    assert not demo.is_error, demo
    assert any("hello from python" in text for text in texts(demo)), demo
    assert not builtin.is_error, builtin
    assert any("built in" in text for text in texts(builtin)), builtin


def test_a_python_sdk_session_idle_past_the_keep_alive_carries_on(gateway_factory) -> None:
    """The gateway parks a session idle past `api.mcp_session_keep_alive` and restores it on
    its next request: the client keeps its session and never notices."""
    gw = gateway_factory([], extra_config={
        "api": {"development": True, "mcp_session_keep_alive": "1s"}})
    gw.wait_for_tools("Builtin.Echo")

    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with sdk_client(gw, "py-idle", "legacy") as client:
            first = await client.call_tool("Builtin_Echo", {"message": "before"})
            await anyio.sleep(2.5)
            second = await client.call_tool("Builtin_Echo", {"message": "after the pause"})
            return first, second

    first, second = run(scenario)
    assert not first.is_error, first
    assert not second.is_error, second
    assert any("after the pause" in text for text in texts(second)), second


def test_an_unknown_tool_is_a_json_rpc_invalid_params_error_for_the_python_sdk(
        mcp_gateway: Gateway) -> None:
    async def scenario() -> None:
        async with sdk_client(mcp_gateway, "py-alice", "legacy") as client:
            with pytest.raises(MCPError) as raised:
                await client.call_tool("Demo_NoSuchTool", {})
            assert raised.value.error.code == types.INVALID_PARAMS, raised.value.error
            # The session is still usable afterwards.
            ok = await client.call_tool("Demo_Echo", {"message": "still here"})
            assert not ok.is_error, ok

    run(scenario)


# ---------------------------------------------------------------------------------------------
# List and call, 2026-07-28 era
# ---------------------------------------------------------------------------------------------


def test_the_python_sdk_negotiates_the_2026_07_28_era_through_server_discover(
        mcp_gateway: Gateway) -> None:
    async def scenario() -> str:
        async with sdk_client(mcp_gateway, "py-bob", "auto") as client:
            return client.protocol_version

    assert run(scenario) == MODERN


def test_the_python_sdk_lists_and_calls_tools_in_the_2026_07_28_era(mcp_gateway: Gateway) -> None:
    async def scenario() -> tuple[str, list[types.Tool], types.CallToolResult]:
        async with sdk_client(mcp_gateway, "py-bob", MODERN) as client:
            tools = await list_all_tools(client)
            result = await client.call_tool("Demo_Echo", {"message": "hello, stateless"})
            return client.protocol_version, tools, result

    version, tools, result = run(scenario)
    assert version == MODERN
    names = [tool.name for tool in tools]
    assert "Demo_Echo" in names and "Demo_WhoAmI" in names, names
    echo = next(tool for tool in tools if tool.name == "Demo_Echo")
    assert echo.input_schema.get("type") == "object", echo.input_schema
    assert not result.is_error, result
    assert any("hello, stateless" in text for text in texts(result)), result


# ---------------------------------------------------------------------------------------------
# The authorization prompt: 2025-11-25 URL elicitation
# ---------------------------------------------------------------------------------------------


def test_a_2025_11_25_client_with_url_elicitation_authorizes_inside_the_call_and_gets_the_result(
        mcp_gateway: Gateway) -> None:
    user = UrlElicitationUser(mcp_gateway, "py-carol-sandbox")

    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with sdk_client(mcp_gateway, "py-carol", "legacy",
                              elicitation_callback=user) as client:
            first = await client.call_tool(WHO_AM_I, {})
            # Connected now: the next call runs at once, without asking again.
            second = await client.call_tool(WHO_AM_I, {})
            return first, second

    first, second = run(scenario)
    assert len(user.seen) == 1, user.seen
    assert not first.is_error, first
    assert profile(first).get("username") == "py-carol-sandbox", first
    assert not second.is_error, second
    assert profile(second).get("username") == "py-carol-sandbox", second


def test_declining_the_url_elicitation_gives_an_is_error_result_that_says_so(
        mcp_gateway: Gateway) -> None:
    user = UrlElicitationUser(mcp_gateway, "py-dave-sandbox", action="decline", open_link=False)

    async def scenario() -> types.CallToolResult:
        async with sdk_client(mcp_gateway, "py-dave", "legacy",
                              elicitation_callback=user) as client:
            return await client.call_tool(WHO_AM_I, {})

    result = run(scenario)
    assert len(user.seen) == 1, user.seen
    assert result.is_error, result
    assert any(re.search(r"declin", text, re.IGNORECASE) for text in texts(result)), result


def test_cancelling_the_url_elicitation_gives_an_is_error_result(mcp_gateway: Gateway) -> None:
    user = UrlElicitationUser(mcp_gateway, "py-erin-sandbox", action="cancel", open_link=False)

    async def scenario() -> types.CallToolResult:
        async with sdk_client(mcp_gateway, "py-erin", "legacy",
                              elicitation_callback=user) as client:
            return await client.call_tool(WHO_AM_I, {})

    result = run(scenario)
    assert len(user.seen) == 1, user.seen
    assert result.is_error, result
    assert any(re.search(r"cancel", text, re.IGNORECASE) for text in texts(result)), result


# ---------------------------------------------------------------------------------------------
# The authorization prompt: 2026-07-28 input_required
# ---------------------------------------------------------------------------------------------


def test_a_2026_07_28_client_gets_input_required_and_its_retry_returns_the_result(
        mcp_gateway: Gateway) -> None:
    user = UrlElicitationUser(mcp_gateway, "py-frank-sandbox")

    async def scenario() -> tuple[str, types.CallToolResult]:
        async with sdk_client(mcp_gateway, "py-frank", MODERN,
                              elicitation_callback=user) as client:
            # The SDK answers the input request through the callback and retries with the
            # requestState on its own.
            return client.protocol_version, await client.call_tool(WHO_AM_I, {})

    version, result = run(scenario)
    assert version == MODERN
    assert len(user.seen) == 1, user.seen
    assert not result.is_error, result
    assert profile(result).get("username") == "py-frank-sandbox", result


def _modern_post(http: httpx.Client, gw: Gateway, user_id: str, request_id: int,
                 params: dict[str, Any]) -> httpx.Response:
    params = {
        **params,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}},
            "io.modelcontextprotocol/clientInfo": {"name": "raw-httpx", "version": "1.0.0"},
        },
    }
    return http.post(
        mcp_url(gw, user_id),
        headers={
            "Authorization": f"Bearer {gw.api_key}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "tools/call",
            "Mcp-Name": params["name"],
        },
        json={"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params},
    )


def _json_rpc_result(resp: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC response, whether the gateway answered JSON or an SSE stream."""
    assert resp.status_code == 200, (resp.status_code, resp.headers, resp.text[:1000])
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        for line in resp.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message = json.loads(line[5:])
                if "result" in message or "error" in message:
                    break
        else:
            pytest.fail(f"no JSON-RPC response in the stream: {resp.text[:1000]}")
    else:
        message = resp.json()
    assert "result" in message, message
    return message["result"]


def test_input_required_carries_a_url_elicitation_and_a_request_state_that_completes_the_call(
        mcp_gateway: Gateway) -> None:
    with httpx.Client(timeout=CALL_TIMEOUT_S) as http:
        first = _json_rpc_result(_modern_post(http, mcp_gateway, "py-grace", 1,
                                              {"name": WHO_AM_I, "arguments": {}}))
        assert first.get("resultType") == "input_required", first
        state = first.get("requestState")
        assert isinstance(state, str) and state, first
        requests = first.get("inputRequests") or {}
        elicitations = {key: req for key, req in requests.items()
                        if req.get("method") == "elicitation/create"}
        assert len(elicitations) == 1, first
        key, request = next(iter(elicitations.items()))
        assert request["params"].get("mode") == "url", request
        link = request["params"]["url"]
        assert link.startswith(f"{mcp_gateway.base_url}/v1/oauth/link/"), request
        # No token, and no secret of ours, rides in what the client sees.
        assert mcp_gateway.api_key not in json.dumps(first)

        page = complete_sandbox_consent(mcp_gateway, link, "py-grace-sandbox")
        assert page.status_code == 200, page.text[:500]

        retried = _json_rpc_result(_modern_post(http, mcp_gateway, "py-grace", 2, {
            "name": WHO_AM_I,
            "arguments": {},
            "inputResponses": {key: {"action": "accept"}},
            "requestState": state,
        }))
        assert retried.get("resultType", "complete") == "complete", retried
        assert not retried.get("isError"), retried
        structured = retried.get("structuredContent")
        text = " ".join(c.get("text", "") for c in retried.get("content", []))
        assert "py-grace-sandbox" in json.dumps(structured) or "py-grace-sandbox" in text, retried


def _refused(resp: httpx.Response) -> bool:
    """A JSON-RPC error (in JSON or SSE) or an HTTP 4xx: anything but a result."""
    if 400 <= resp.status_code < 500:
        return True
    if resp.status_code != 200:
        return False
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        messages = [json.loads(line[5:]) for line in resp.text.splitlines()
                    if line.startswith("data:") and line[5:].strip()]
    else:
        messages = [resp.json()]
    return any("error" in m for m in messages) and not any("result" in m for m in messages)


def test_a_request_state_works_only_for_its_own_user_and_only_untampered(
        mcp_gateway: Gateway) -> None:
    with httpx.Client(timeout=CALL_TIMEOUT_S) as http:
        first = _json_rpc_result(_modern_post(http, mcp_gateway, "py-heidi", 1,
                                              {"name": WHO_AM_I, "arguments": {}}))
        assert first.get("resultType") == "input_required", first
        state = first["requestState"]
        key, request = next(iter((first.get("inputRequests") or {}).items()))
        page = complete_sandbox_consent(mcp_gateway, request["params"]["url"], "py-heidi-sandbox")
        assert page.status_code == 200, page.text[:500]

        def retry(user_id: str, request_id: int, request_state: str) -> httpx.Response:
            return _modern_post(http, mcp_gateway, user_id, request_id, {
                "name": WHO_AM_I,
                "arguments": {},
                "inputResponses": {key: {"action": "accept"}},
                "requestState": request_state,
            })

        # Heidi's state replayed on Ivan's endpoint: refused, and never Heidi's profile.
        stolen = retry("py-ivan", 2, state)
        assert "py-heidi-sandbox" not in stolen.text, stolen.text[:1000]
        assert _refused(stolen), (stolen.status_code, stolen.text[:1000])

        # One character changed: refused.
        flipped = "A" if state[len(state) // 2] != "A" else "B"
        tampered = state[:len(state) // 2] + flipped + state[len(state) // 2 + 1:]
        forged = retry("py-heidi", 3, tampered)
        assert "py-heidi-sandbox" not in forged.text, forged.text[:1000]
        assert _refused(forged), (forged.status_code, forged.text[:1000])

        # The genuine state on Heidi's own endpoint still completes the call.
        done = _json_rpc_result(retry("py-heidi", 4, state))
        assert not done.get("isError"), done
        assert "py-heidi-sandbox" in json.dumps(done), done
    assert mcp_gateway.proc.alive()


# ---------------------------------------------------------------------------------------------
# The authorization prompt: a client without elicitation
# ---------------------------------------------------------------------------------------------


def test_a_client_without_elicitation_gets_an_is_error_result_with_the_link_and_can_follow_it(
        mcp_gateway: Gateway) -> None:
    async def call() -> types.CallToolResult:
        async with sdk_client(mcp_gateway, "py-judy", "legacy") as client:
            return await client.call_tool(WHO_AM_I, {})

    asked = run(call)
    assert asked.is_error, asked
    # One link (the text may repeat it, e.g. in a JSON block for programs).
    links = {link for text in texts(asked) for link in links_in(text, mcp_gateway)}
    assert len(links) == 1, asked

    page = complete_sandbox_consent(mcp_gateway, links.pop(), "py-judy-sandbox")
    assert page.status_code == 200, page.text[:500]

    done = run(call)
    assert not done.is_error, done
    assert profile(done).get("username") == "py-judy-sandbox", done


def test_a_2026_07_28_client_without_elicitation_gets_an_is_error_result_with_the_link(
        mcp_gateway: Gateway) -> None:
    async def call() -> tuple[str, types.CallToolResult]:
        async with sdk_client(mcp_gateway, "py-kim", MODERN) as client:
            return client.protocol_version, await client.call_tool(WHO_AM_I, {})

    version, asked = run(call)
    assert version == MODERN
    assert asked.is_error, asked
    links = {link for text in texts(asked) for link in links_in(text, mcp_gateway)}
    assert len(links) == 1, asked

    page = complete_sandbox_consent(mcp_gateway, links.pop(), "py-kim-sandbox")
    assert page.status_code == 200, page.text[:500]

    version, done = run(call)
    assert not done.is_error, done
    assert profile(done).get("username") == "py-kim-sandbox", done


def test_arguments_that_fail_the_schema_are_an_error_result_for_the_python_sdk(
        mcp_gateway: Gateway) -> None:
    """SEP-1303 (2025-11-25): the model reads the validation message and corrects its call,
    in both eras the SDK speaks."""
    async def scenario() -> dict[str, types.CallToolResult]:
        results = {}
        for mode in ("legacy", MODERN):
            async with sdk_client(mcp_gateway, "py-alice", mode) as client:
                results[mode] = await client.call_tool("Demo_Echo", {"message": 42})
        return results

    for mode, result in run(scenario).items():
        assert result.is_error, (mode, result)
        assert any("Invalid input" in text for text in texts(result)), (mode, result)


def test_the_python_sdk_ends_its_session_without_a_termination_failure(
        mcp_gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    """The SDK sends DELETE when its client closes and logs "Session termination failed"
    for any answer but 200 or 204."""
    answers: list[tuple[str, int]] = []

    async def record(response: Any) -> None:
        answers.append((response.request.method, response.status_code))

    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {mcp_gateway.api_key}"}
        async with create_mcp_http_client(headers=headers) as http:
            hooks = dict(http.event_hooks)
            hooks["response"] = [*hooks.get("response", []), record]
            http.event_hooks = hooks
            transport = streamable_http_client(mcp_url(mcp_gateway, "py-alice"), http_client=http)
            async with Client(transport, mode="legacy", cache=None) as client:
                await client.list_tools()

    with caplog.at_level(logging.DEBUG, logger="mcp.client.streamable_http"):
        run(scenario)
    failures = [r.getMessage() for r in caplog.records if "termination failed" in r.getMessage()]
    assert not failures, failures
    assert ("DELETE", 200) in answers, answers
