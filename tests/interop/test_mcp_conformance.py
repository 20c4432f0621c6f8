"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance` 0.1.16, on Node
22 from the npm package `node@22`) against the gateway's per-user endpoint
`/v1/mcps/{user}/mcp`.

The gateway runs in dev mode, so the suite's requests (which carry no credential) come in as
the user named in the path, the way a developer's local setup works. Each scenario runs as its
own `conformance server --scenario NAME` process; its checks.json is printed on failure.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import NODE22_DIR, Gateway, mcp_url, node22_env

# The scenarios that need nothing but a correct server (fixture tools, resources and prompts
# would have to come from a proxied fixture server).
SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "logging-set-level",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
]

# Bounded: one scenario takes a few seconds; a hung server must not hang the suite.
SCENARIO_TIMEOUT_S = 180


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


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_official_conformance_scenario_passes_against_a_users_endpoint(
        scenario: str, mcp_gateway: Gateway, tmp_path: Path) -> None:
    env = node22_env()
    results_dir = tmp_path / "results"
    url = mcp_url(mcp_gateway, "conformance-user")
    proc = subprocess.run(
        [str(NODE22_DIR / "node_modules" / ".bin" / "conformance"), "server",
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
        f"conformance server --scenario {scenario} --url {url} exited {proc.returncode}\n"
        f"checks:\n{_describe(checks)}\n"
        f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )
    assert proc.returncode == 0, report
    assert checks, report
    assert not [c for c in checks if c.get("status") == "FAILURE"], report
    # The gateway keeps serving after the suite's requests.
    assert mcp_gateway.proc.alive(), report
