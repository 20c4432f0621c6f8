"""The official MCP TypeScript SDK (npm `@modelcontextprotocol/sdk` 1.32, what most MCP clients
run) as a client of the gateway's per-user endpoint `/v1/mcps/{user}/mcp`, in the 2025-11-25
era: list and call, and the authorization prompt both for a client without elicitation (an
`isError` result carrying the link) and for one that declares URL elicitation.

tests/interop/ts_client/client.mjs connects with StreamableHTTPClientTransport (the API key as
a Bearer header through `requestInit`), lists the tools, calls one, and prints JSON lines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest

from conftest import TS_CLIENT_DIR, Gateway, complete_sandbox_consent, ensure_npm_ci, mcp_url

WHO_AM_I = "Demo_WhoAmI"
# Bounded: a client that never finishes is killed and the test fails.
CLIENT_TIMEOUT_S = 200.0


def run_ts_client(gw: Gateway, user_id: str, call: str | None = None,
                  arguments: dict[str, Any] | None = None,
                  on_elicitation: Callable[[dict[str, Any]], str] | None = None,
                  bearer: str | None = "api-key") -> dict[str, Any]:
    """Runs client.mjs; `on_elicitation` (given → the client declares URL elicitation) gets each
    elicitation's params and returns the action. Returns the client's final JSON line."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the TypeScript SDK tests need Node 18+")
    ensure_npm_ci(TS_CLIENT_DIR)
    argv = [node, str(TS_CLIENT_DIR / "client.mjs"), mcp_url(gw, user_id)]
    if call is not None:
        argv += ["--call", call, "--arguments", json.dumps(arguments or {})]
    if on_elicitation is not None:
        argv.append("--elicit")
    env = dict(os.environ)
    env.pop("MCP_BEARER", None)
    if bearer == "api-key":
        env["MCP_BEARER"] = gw.api_key
    elif bearer is not None:
        env["MCP_BEARER"] = bearer
    proc = subprocess.Popen(argv, cwd=TS_CLIENT_DIR, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(CLIENT_TIMEOUT_S, proc.kill)
    watchdog.start()
    events: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            if not line.strip():
                continue
            event = json.loads(line)
            events.append(event)
            if event.get("event") == "elicitation":
                action = on_elicitation(event["params"]) if on_elicitation else "cancel"
                proc.stdin.write(action + "\n")
                proc.stdin.flush()
        stderr = proc.stderr.read() if proc.stderr else ""
        code = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = [e for e in events if e.get("event") == "done"]
    assert code == 0 and done, (
        f"client.mjs exited {code}\nstdout events: {json.dumps(events)[:3000]}\n"
        f"stderr:\n{stderr[-4000:]}"
    )
    result = done[-1]
    result["elicitations"] = [e["params"] for e in events if e.get("event") == "elicitation"]
    return result


def texts(call: dict[str, Any]) -> list[str]:
    return [c.get("text", "") for c in call.get("content", []) if c.get("type") == "text"]


def username_in(call: dict[str, Any]) -> str | None:
    structured = call.get("structuredContent")
    for candidate in (structured, (structured or {}).get("result") if isinstance(structured, dict)
                      else None):
        if isinstance(candidate, dict) and "username" in candidate:
            return candidate["username"]
    for text in texts(call):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and "username" in value:
            return value["username"]
    return None


def test_the_typescript_sdk_lists_tools_in_the_2025_11_25_era(mcp_gateway: Gateway) -> None:
    out = run_ts_client(mcp_gateway, "ts-alice")
    assert out["protocolVersion"] == "2025-11-25", out["protocolVersion"]
    assert out["sessionId"], "the gateway gave the legacy session no MCP-Session-Id"
    assert (out["serverCapabilities"] or {}).get("tools") is not None, out["serverCapabilities"]
    names = [tool["name"] for tool in out["tools"]]
    assert len(names) == len(set(names)), names
    for name in ("Demo_Echo", "Demo_WhoAmI", "Builtin_Echo"):
        assert name in names, names
    echo = next(tool for tool in out["tools"] if tool["name"] == "Demo_Echo")
    assert echo["inputSchema"].get("type") == "object", echo
    assert "message" in echo["inputSchema"].get("properties", {}), echo


def test_the_typescript_sdk_calls_a_tool_in_the_2025_11_25_era(mcp_gateway: Gateway) -> None:
    out = run_ts_client(mcp_gateway, "ts-alice", call="Demo_Echo",
                        arguments={"message": "hello from typescript"})
    call = out["call"]
    assert not call.get("isError"), call
    assert any("hello from typescript" in text for text in texts(call)), call


def test_a_typescript_client_without_elicitation_gets_the_link_in_an_is_error_result(
        mcp_gateway: Gateway) -> None:
    asked = run_ts_client(mcp_gateway, "ts-bob", call=WHO_AM_I)["call"]
    assert asked.get("isError") is True, asked
    text = " ".join(texts(asked))
    # One link (the text may repeat it, e.g. in a JSON block for programs).
    links = set(re.findall(re.escape(mcp_gateway.base_url) + r"/v1/oauth/link/[A-Za-z0-9._~%-]+",
                           text))
    assert len(links) == 1, asked

    page = complete_sandbox_consent(mcp_gateway, links.pop(), "ts-bob-sandbox")
    assert page.status_code == 200, page.text[:500]

    done = run_ts_client(mcp_gateway, "ts-bob", call=WHO_AM_I)["call"]
    assert not done.get("isError"), done
    assert username_in(done) == "ts-bob-sandbox", done


def test_a_typescript_client_with_url_elicitation_authorizes_inside_the_call(
        mcp_gateway: Gateway) -> None:
    def user_opens_the_link(params: dict[str, Any]) -> str:
        assert params.get("mode") == "url", params
        page = complete_sandbox_consent(mcp_gateway, params["url"], "ts-carol-sandbox")
        assert page.status_code == 200, page.text[:500]
        return "accept"

    out = run_ts_client(mcp_gateway, "ts-carol", call=WHO_AM_I,
                        on_elicitation=user_opens_the_link)
    assert len(out["elicitations"]) == 1, out["elicitations"]
    call = out["call"]
    assert not call.get("isError"), call
    assert username_in(call) == "ts-carol-sandbox", call
