"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, on Node 22 from
the npm package `node@22`) against the gateway's per-user endpoint `/v1/mcps/{user}/mcp`, in
two releases side by side: 0.1.16 (handshake era) and 0.2.0-alpha.12 (installed under the npm
alias `conformance-next`; it adds the 2026-07-28 stateless era: `server-stateless`,
`caching`, `http-header-validation`, ...).

The gateway runs in dev mode, so the suite's requests (which carry no credential) come in as
the user named in the path, the way a developer's local setup works. Each scenario runs as its
own `conformance server --scenario NAME` process; its checks.json is printed on failure.

`server-stateless` calls diagnostic tools by name (`test_logging_tool`,
`test_streaming_elicitation`, `test_trigger_tool_change`). A gateway serves its workers' tools,
so a small worker here (`FixtureWorker`, the Arcade worker protocol over plain HTTP) serves
them as the toolkit `test`: the gateway lists them as `test_<name>` and relays them like any
tool.
"""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import NODE22_DIR, Gateway, mcp_url, node22_env

SUITES = {
    "0.1.16": NODE22_DIR / "node_modules" / "@modelcontextprotocol" / "conformance",
    "0.2.0-alpha.12": NODE22_DIR / "node_modules" / "conformance-next",
}

# The scenarios that need nothing but a correct server (fixture tools, resources and prompts
# would have to come from a proxied fixture server), per suite.
SCENARIOS = [
    *[("0.1.16", s) for s in (
        "server-initialize",
        "ping",
        "tools-list",
        "logging-set-level",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
    )],
    *[("0.2.0-alpha.12", s) for s in (
        "server-stateless",
        "caching",
        "completion-complete",
        "server-initialize",
        "server-session-lifecycle",
        "ping",
        "logging-set-level",
        "tools-list",
        "server-sse-multiple-streams",
        "server-sse-polling",
        "dns-rebinding-protection",
        "http-header-validation",
    )],
]

# Checks that cannot apply to the gateway, with the reason. Any other failure fails the test.
NOT_APPLICABLE = {
    ("0.2.0-alpha.12", "server-stateless"): {
        # The probe calls `test_missing_capability`, a fixture tool that needs the client's
        # `sampling` capability, and expects -32021 with `requiredCapabilities.sampling`. The
        # gateway never uses sampling, and the one client capability it can use (URL
        # elicitation, to ask for an authorization) has a fallback (the link in an isError
        # result), so no request to it ever needs a capability the client did not declare.
        # A tool of the same name served by a worker would simply run, which the check
        # counts as a failure too. (rmcp answers the -32021 it raises itself with HTTP 400.)
        "sep-2575-server-rejects-undeclared-capability",
        "sep-2575-missing-capability-http-400",
    },
}

# Bounded: one scenario takes a few seconds; a hung server must not hang the suite.
SCENARIO_TIMEOUT_S = 180


class FixtureWorker:
    """A worker serving the toolkit `test` with the suite's diagnostic tools. It ignores the
    gateway's token (dev mode; nothing secret here). `trigger_tool_change` adds or removes
    the tool `added_tool`, which the gateway sees at its next health check."""

    TOOLS = {
        "logging_tool": "Returns at once; the gateway relays no log notifications",
        "streaming_elicitation": "Returns at once; nothing is asked on the response stream",
        "trigger_tool_change": "Adds or removes the tool added_tool",
    }

    def __init__(self) -> None:
        self.with_added_tool = False
        self.lock = threading.Lock()
        worker = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/worker/health":
                    self.reply({"status": "ok"})
                elif self.path == "/worker/tools":
                    self.reply(worker.definitions())
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/worker/tools/invoke":
                    self.send_error(404)
                    return
                name = request.get("tool", {}).get("name", "")
                if name == "trigger_tool_change":
                    with worker.lock:
                        worker.with_added_tool = not worker.with_added_tool
                self.reply({"success": True, "output": {"value": f"{name} done"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def definitions(self) -> list[dict[str, Any]]:
        names = dict(self.TOOLS)
        with self.lock:
            if self.with_added_tool:
                names["added_tool"] = "Present after an odd number of trigger_tool_change calls"
        return [{
            "name": name,
            "fully_qualified_name": f"test.{name}",
            "description": description,
            "toolkit": {"name": "test", "version": "1.0.0"},
            "input": {"parameters": []},
            "output": {"value_schema": {"val_type": "string"}},
            "requirements": {},
        } for name, description in names.items()]

    def engine_entry(self) -> dict[str, Any]:
        return {"id": "conformance-fixtures", "enabled": True,
                "http": {"uri": self.uri, "secret": "unused", "timeout": "30s", "retry": 1}}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def conformance_gateway(gateway_factory) -> Gateway:
    fixtures = FixtureWorker()
    # Frequent health checks: a tool list change shows within the suite's 1.5 s window.
    gateway = gateway_factory([fixtures.engine_entry()], extra_config={
        "api": {"development": True},
        "tools": {"health_check_interval": "200ms"},
    })
    gateway.wait_for_tools("test.logging_tool", "test.streaming_elicitation")
    yield gateway
    fixtures.stop()


def _checks(results_dir: Path) -> list[dict]:
    checks: list[dict] = []
    for path in sorted(results_dir.glob("**/checks.json")):
        checks.extend(json.loads(path.read_text()))
    return checks


def _describe(checks: list[dict]) -> str:
    lines = []
    for check in checks:
        line = f"  [{check.get('status')}] {check.get('id')}: {check.get('description', '')}"
        if check.get("errorMessage"):
            line += f"\n      error: {check['errorMessage']}"
        if check.get("status") != "SUCCESS" and check.get("details") is not None:
            line += f"\n      details: {json.dumps(check['details'])[:1500]}"
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize(("suite", "scenario"), SCENARIOS)
def test_the_official_conformance_scenario_passes_against_a_users_endpoint(
        suite: str, scenario: str, conformance_gateway: Gateway, tmp_path: Path) -> None:
    env = node22_env()
    results_dir = tmp_path / "results"
    url = mcp_url(conformance_gateway, "conformance-user")
    proc = subprocess.run(
        [str(NODE22_DIR / "node_modules" / "node" / "bin" / "node"),
         str(SUITES[suite] / "dist" / "index.js"), "server",
         "--url", url, "--scenario", scenario, "--output-dir", str(results_dir)],
        cwd=NODE22_DIR,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    checks = _checks(results_dir)
    report = (
        f"conformance {suite} server --scenario {scenario} --url {url} exited "
        f"{proc.returncode}\nchecks:\n{_describe(checks)}\n"
        f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )
    assert checks, report
    allowed = NOT_APPLICABLE.get((suite, scenario), set())
    failed = {c.get("id") for c in checks if c.get("status") == "FAILURE"}
    assert failed <= allowed, report
    assert proc.returncode == (1 if failed else 0), report
    # The gateway keeps serving after the suite's requests.
    assert conformance_gateway.proc.alive(), report
