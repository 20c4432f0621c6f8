"""Real upstream MCP servers for the interop tests, started as child processes on loopback:

- `@modelcontextprotocol/server-everything` (npm, tests/interop/server_everything) over
  Streamable HTTP: `node dist/index.js streamableHttp` with `PORT` set; it serves `/mcp`.
- `fast_upstream.py` (this directory), the MCP Python SDK's own server over Streamable HTTP.

Each start function returns once the server answers HTTP on its `/mcp` endpoint.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import STARTUP_TIMEOUT_S, Proc, ensure_npm_ci, free_port, start_process, wait_until

INTEROP_DIR = Path(__file__).resolve().parents[1]
SERVER_EVERYTHING_DIR = INTEROP_DIR / "server_everything"
SERVER_EVERYTHING_ENTRY = (
    SERVER_EVERYTHING_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist"
    / "index.js"
)
FAST_UPSTREAM_SCRIPT = Path(__file__).resolve().parent / "fast_upstream.py"


@dataclass
class Upstream:
    """A running upstream MCP server; `url` is its Streamable HTTP endpoint."""

    name: str
    port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def answers_http(url: str) -> bool:
    """Any HTTP answer on the endpoint (a bare GET without a session is refused with a 4xx,
    which is enough to know the server is up)."""
    return httpx.get(url, timeout=2.0, headers={"Accept": "text/event-stream"}).status_code < 500


def start_server_everything(log_dir: Path) -> Upstream:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the upstream interop tests need Node 20.19+")
    ensure_npm_ci(SERVER_EVERYTHING_DIR)
    if not SERVER_EVERYTHING_ENTRY.is_file():
        pytest.fail(f"{SERVER_EVERYTHING_ENTRY} is missing after `npm ci`")
    port = free_port()
    # server-everything reads only PORT; loopback.mjs makes its listen bind 127.0.0.1 only.
    proc = start_process(
        "server-everything",
        [node, "--import", str(SERVER_EVERYTHING_DIR / "loopback.mjs"),
         str(SERVER_EVERYTHING_ENTRY), "streamableHttp"],
        log_dir / "server-everything.log",
        env={"PORT": str(port)},
        cwd=SERVER_EVERYTHING_DIR,
    )
    upstream = Upstream(name="server-everything", port=port, proc=proc)
    wait_until("server-everything to listen",
               lambda: f"listening on port {port}" in proc.log(), STARTUP_TIMEOUT_S, (proc,))
    wait_until("server-everything's /mcp", lambda: answers_http(upstream.url), STARTUP_TIMEOUT_S,
               (proc,))
    return upstream


def start_fast_upstream(log_dir: Path, api_key: str) -> Upstream:
    """`api_key`: the X-Api-Key value its check_api_key tool expects (passed by environment)."""
    port = free_port()
    proc = start_process(
        "fast-upstream",
        [sys.executable, str(FAST_UPSTREAM_SCRIPT), "--port", str(port)],
        log_dir / "fast-upstream.log",
        env={"FAST_UPSTREAM_API_KEY": api_key, "PYTHONUNBUFFERED": "1"},
        cwd=FAST_UPSTREAM_SCRIPT.parent,
    )
    upstream = Upstream(name="fast-upstream", port=port, proc=proc)
    wait_until("fast-upstream's /mcp", lambda: answers_http(upstream.url), STARTUP_TIMEOUT_S,
               (proc,))
    return upstream
