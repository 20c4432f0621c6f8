"""The TDK example worker (examples/demo-worker) end to end through the gateway, driven by arcadepy."""

from __future__ import annotations

import re
import time

import pytest
from arcadepy import Arcade

from conftest import DEMO_API_KEY_VALUE, Gateway, Worker

DEMO_TOOLS = {"Demo.Echo", "Demo.Add", "Demo.Greet", "Demo.SecretCheck", "Demo.Fail", "Demo.Slow"}


@pytest.fixture(scope="module")
def gw(gateway_factory, demo_worker: Worker) -> Gateway:
    gateway = gateway_factory([demo_worker.engine_entry()])
    gateway.wait_for_tools(*DEMO_TOOLS)
    return gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Arcade:
    return gw.client()


def execute(client: Arcade, tool: str, **inputs: object):
    return client.tools.execute(tool_name=tool, input=inputs, user_id="alice")


def test_the_demo_toolkit_is_listed(client: Arcade) -> None:
    tools = {tool.qualified_name: tool for tool in client.tools.list(toolkit="Demo")}
    assert DEMO_TOOLS <= set(tools)
    for tool in tools.values():
        assert tool.toolkit.name == "Demo"
        assert isinstance(tool.description, str)
        for param in tool.input.parameters:
            assert param.value_schema.val_type in {
                "string", "integer", "number", "boolean", "json", "array",
            }


def test_the_tools_that_need_a_secret_say_so(client: Arcade) -> None:
    tool = client.tools.get("Demo.SecretCheck")
    assert tool.requirements is not None
    keys = {s.key for s in tool.requirements.secrets or []}
    assert "DEMO_API_KEY" in keys


def test_echo_returns_its_message(client: Arcade) -> None:
    result = execute(client, "Demo.Echo", message="hello there")
    assert result.success is True, result
    assert result.output is not None and result.output.value == "hello there"


def test_add_adds_two_numbers(client: Arcade) -> None:
    result = execute(client, "Demo.Add", a=2, b=3.5)
    assert result.success is True, result
    assert result.output is not None and result.output.value == 5.5


def test_greet_uses_the_name(client: Arcade) -> None:
    result = execute(client, "Demo.Greet", name="Ada")
    assert result.success is True, result
    assert result.output is not None
    assert "Ada" in str(result.output.value)


def test_greet_accepts_its_optional_style(client: Arcade) -> None:
    result = execute(client, "Demo.Greet", name="Ada", style="formal")
    assert result.success is True, result
    assert result.output is not None and result.output.value == "Good day, Ada."


def test_greet_refuses_a_style_outside_its_enum(client: Arcade) -> None:
    result = execute(client, "Demo.Greet", name="Ada", style="pirate")
    assert result.success is False, result
    assert result.output is not None and result.output.error is not None, result
    assert result.output.error.kind == "TOOL_RUNTIME_BAD_INPUT_VALUE"
    assert "parameter 'style'" in result.output.error.message, result.output.error.message


def test_the_configured_secret_is_injected(client: Arcade) -> None:
    result = execute(client, "Demo.SecretCheck")
    assert result.success is True, result
    assert result.output is not None
    assert result.output.value == {"configured": True, "length": len(DEMO_API_KEY_VALUE)}
    assert DEMO_API_KEY_VALUE not in str(result), "the secret's value leaked into the result"


def test_a_retryable_failure_keeps_its_kind_and_can_retry(client: Arcade) -> None:
    result = execute(client, "Demo.Fail", mode="retry")
    assert result.success is False, result
    assert result.output is not None and result.output.error is not None, result
    assert result.status == "failed"
    assert result.output.error.kind == "TOOL_RUNTIME_RETRY"
    assert result.output.error.can_retry is True
    assert result.output.error.retry_after_ms == 100


def test_a_fatal_failure_cannot_be_retried(client: Arcade) -> None:
    result = execute(client, "Demo.Fail", mode="fatal")
    assert result.success is False, result
    assert result.output is not None and result.output.error is not None, result
    assert result.output.error.kind == "TOOL_RUNTIME_FATAL"
    assert result.output.error.can_retry is False


def test_a_slow_tool_finishes_within_the_workers_timeout(client: Arcade) -> None:
    result = execute(client, "Demo.Slow", millis=200)
    assert result.success is True, result
    assert result.output is not None and result.output.value == {"slept_ms": 200}


def test_the_execute_response_carries_arcades_fields(gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.post("/v1/tools/execute",
                         json={"tool_name": "Demo.Echo", "input": {"message": "x"},
                               "user_id": "alice"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    for key in ("id", "execution_id", "status", "success", "duration", "finished_at", "output"):
        assert key in body, f"{key} missing from {body}"
    assert body["output"]["value"] == "x"


def test_execute_tells_clients_not_to_resend_it(gw: Gateway) -> None:
    # arcadepy re-sends POST /v1/tools/execute after a 5xx unless told not to, which could
    # run a tool twice; the gateway says so on every execute answer.
    with gw.http() as http:
        resp = http.post("/v1/tools/execute",
                         json={"tool_name": "Demo.Echo", "input": {"message": "x"},
                               "user_id": "alice"})
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("x-should-retry") == "false"


def table_rows(out: str) -> list[list[str]]:
    """The cells of each row of a CLI table (UTF-8 borders), the header first."""
    return [
        [cell.strip() for cell in re.split("[│┆]", line.strip())[1:-1]]
        for line in out.splitlines()
        if line.strip().startswith("│")
    ]


def test_the_cli_lists_the_demo_tools(gw: Gateway) -> None:
    out = gw.cli("tools", "list", "--toolkit", "Demo")
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert rows and rows[0] == ["Name", "Version", "Source", "Description"], out.stdout
    names = {row[0] for row in rows[1:]}
    assert DEMO_TOOLS <= names, out.stdout
    # The filter holds: the built-in toolkit (always served) is not listed.
    assert not any(name.startswith("Builtin.") for name in names), out.stdout
    assert all(name.startswith("Demo.") for name in names), out.stdout
    assert "Builtin." not in out.stdout, out.stdout


def test_the_cli_lists_the_worker(gw: Gateway) -> None:
    out = gw.cli("worker", "list")
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert rows and rows[0] == ["ID", "Enabled", "Toolkits", "Status"], out.stdout
    assert ["demo", "True", "Demo", "Running"] in rows[1:], out.stdout


def test_the_cli_lists_recorded_calls_newest_first_for_one_user(client: Arcade, gw: Gateway) -> None:
    client.tools.execute(tool_name="Demo.Echo", input={"message": "logged"}, user_id="carol")
    result = client.tools.execute(tool_name="Demo.Fail", input={"mode": "fatal"}, user_id="carol")
    assert result.success is False, result

    # Records are written in batches (every 200 ms by default): wait for both.
    deadline = time.monotonic() + 10
    while True:
        out = gw.cli("executions", "list", "--user", "carol")
        assert out.returncode == 0, out.stderr
        if "Demo.Fail" in out.stdout and "Demo.Echo" in out.stdout:
            break
        assert time.monotonic() < deadline, out.stdout
        time.sleep(0.2)
    rows = [line for line in out.stdout.splitlines() if "Demo." in line]
    assert len(rows) == 2, out.stdout
    assert "Demo.Fail" in rows[0] and "failed" in rows[0], rows  # newest first
    assert "Demo.Echo" in rows[1] and "success" in rows[1], rows
    assert "logged" not in out.stdout  # inputs and outputs are not in the log
    assert "alice" not in out.stdout

    only_echo = gw.cli("executions", "list", "--user", "carol", "--tool", "Demo.Echo")
    assert only_echo.returncode == 0, only_echo.stderr
    assert "Demo.Echo" in only_echo.stdout and "Demo.Fail" not in only_echo.stdout

    bad = gw.cli("executions", "list", "--limit", "0")
    assert bad.returncode != 0
    assert "--limit must be between 1 and 1000" in bad.stderr
