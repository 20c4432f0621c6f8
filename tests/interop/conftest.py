"""Fixtures for the interop tests: real processes on loopback ports.

Every module gets fresh processes: the `switchboard` gateway with an engine.yaml written to a
temporary directory, the TDK example worker (`demo-worker`) and a real Arcade worker served by
arcade-mcp-server (tests/interop/workers/mathkit). Logs of every process go to files; when a
test fails, the logs of the processes alive at that moment are added to its report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from arcadepy import Arcade

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET_DIR = REPO_ROOT / "target" / "debug"
WORKERS_DIR = Path(__file__).resolve().parent / "workers"

# Bounded waits: generous for a loaded 2-core machine, but never unbounded.
STARTUP_TIMEOUT_S = 60.0
CATALOG_TIMEOUT_S = 60.0

DEMO_SECRET = "demo-worker-secret-for-interop-tests"
MATHKIT_SECRET = "mathkit-worker-secret-for-interop-tests"
DEMO_API_KEY_VALUE = "k-123"


# ---------------------------------------------------------------------------------------------
# Processes and their logs
# ---------------------------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process whose stdout and stderr go to one log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as err:
            return f"<cannot read {self.log_path}: {err}>"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        # Graceful first (the gateway drains on SIGTERM), then force.
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)


# Processes alive right now, so a failing test's report can carry their logs.
_LIVE: list[Proc] = []


def start_process(name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> Proc:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed when the process is stopped
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    popen = subprocess.Popen(
        argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=str(cwd) if cwd else None,
        # Its own process group, so stopping it also stops anything it spawned.
        start_new_session=True,
    )
    log_file.close()
    proc = Proc(name=name, popen=popen, log_path=log_path)
    _LIVE.append(proc)
    return proc


def stop_process(proc: Proc) -> None:
    proc.stop()
    if proc in _LIVE:
        _LIVE.remove(proc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.failed:
        for proc in list(_LIVE):
            report.sections.append((f"log of {proc.name} ({proc.log_path})", proc.log()))
    return report


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, check: Callable[[], bool], timeout_s: float,
               procs: tuple[Proc, ...] = ()) -> None:
    """Poll `check` until it is true; fail with the processes' logs on timeout or exit."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while True:
        for proc in procs:
            if not proc.alive():
                pytest.fail(
                    f"{proc.name} exited with status {proc.popen.returncode} while waiting for "
                    f"{what}\n--- log of {proc.name} ---\n{proc.log()}"
                )
        try:
            if check():
                return
        except (httpx.HTTPError, OSError) as err:
            last_error = repr(err)
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- log of {p.name} ---\n{p.log()}" for p in procs)
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what} {last_error}{logs}")
        time.sleep(0.1)


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


# ---------------------------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binaries:
    switchboard: Path
    demo_worker: Path


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """The gateway and the TDK example worker, built unless scripts/test just built them."""
    if os.environ.get("SWITCHBOARD_INTEROP_NO_BUILD") != "1":
        cargo = shutil.which("cargo")
        if cargo is None:
            pytest.fail("cargo is not on PATH; build with `cargo build -p switchboard -p demo-worker`")
        subprocess.run(
            [cargo, "build", "-p", "switchboard", "-p", "demo-worker"],
            cwd=REPO_ROOT,
            check=True,
        )
    return Binaries(
        switchboard=TARGET_DIR / "switchboard",
        demo_worker=TARGET_DIR / "demo-worker",
    )


def require_file(path: Path) -> str:
    if not path.is_file():
        pytest.fail(f"{path} is missing; run `cargo build -p switchboard -p demo-worker`")
    return str(path)


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------


@dataclass
class Worker:
    """A running worker that speaks the Arcade worker protocol under /worker."""

    id: str
    uri: str
    secret: str
    proc: Proc

    def engine_entry(self, **http: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "enabled": True,
            "http": {"uri": self.uri, "secret": self.secret, "timeout": "30s", "retry": 1, **http},
        }


def start_demo_worker(binaries: Binaries, log_dir: Path, worker_id: str = "demo") -> Worker:
    port = free_port()
    proc = start_process(
        f"demo-worker {worker_id}",
        [require_file(binaries.demo_worker), "--host", "127.0.0.1", "--port", str(port),
         "--secret", DEMO_SECRET],
        log_dir / f"demo-worker-{worker_id}.log",
        env={"RUST_LOG": os.environ.get("RUST_LOG", "info")},
    )
    uri = f"http://127.0.0.1:{port}"
    wait_until(
        "demo-worker to print its address",
        lambda: f"demo-worker listening on {uri}" in proc.log(),
        STARTUP_TIMEOUT_S,
        (proc,),
    )
    wait_until("demo-worker /worker/health", lambda: http_ok(f"{uri}/worker/health"),
               STARTUP_TIMEOUT_S, (proc,))
    return Worker(id=worker_id, uri=uri, secret=DEMO_SECRET, proc=proc)


def start_mathkit_worker(log_dir: Path, worker_id: str = "mathkit") -> Worker:
    port = free_port()
    proc = start_process(
        f"arcade-mcp-server {worker_id}",
        [sys.executable, str(WORKERS_DIR / "mathkit" / "server.py")],
        log_dir / f"mathkit-{worker_id}.log",
        env={
            # /worker/* routes exist only when the secret is set.
            "ARCADE_WORKER_SECRET": MATHKIT_SECRET,
            "ARCADE_SERVER_TRANSPORT": "http",
            "ARCADE_SERVER_HOST": "127.0.0.1",
            "ARCADE_SERVER_PORT": str(port),
            "ARCADE_USAGE_TRACKING": "0",
            "PYTHONUNBUFFERED": "1",
        },
        cwd=WORKERS_DIR / "mathkit",
    )
    uri = f"http://127.0.0.1:{port}"
    wait_until("arcade-mcp-server /worker/health", lambda: http_ok(f"{uri}/worker/health"),
               STARTUP_TIMEOUT_S, (proc,))
    return Worker(id=worker_id, uri=uri, secret=MATHKIT_SECRET, proc=proc)


@pytest.fixture(scope="module")
def demo_worker(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = start_demo_worker(binaries, tmp_path_factory.mktemp("demo-worker"))
    yield worker
    stop_process(worker.proc)


@pytest.fixture(scope="module")
def mathkit_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = start_mathkit_worker(tmp_path_factory.mktemp("mathkit"))
    yield worker
    stop_process(worker.proc)


# ---------------------------------------------------------------------------------------------
# Gateway
# ---------------------------------------------------------------------------------------------


@dataclass
class Gateway:
    """A running `switchboard serve` with one API key."""

    port: int
    config_path: Path
    api_key: str
    proc: Proc
    binaries: Binaries
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, bearer: bool = False, **kwargs: Any) -> Arcade:
        """An arcadepy client; raw key by default (arcadepy's own behaviour), or as Bearer."""
        kwargs.setdefault("max_retries", 0)
        if bearer:
            headers = dict(kwargs.pop("default_headers", {}) or {})
            headers["Authorization"] = f"Bearer {self.api_key}"
            kwargs["default_headers"] = headers
        return Arcade(api_key=self.api_key, base_url=self.base_url, **kwargs)

    def http(self, key: str | None = None) -> httpx.Client:
        """A plain HTTP client, authorized with `key` (default: the gateway's key)."""
        headers = {"Authorization": key if key is not None else self.api_key}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.binaries, self.config_path, self.env, *args)

    def wait_for_tools(self, *qualified_names: str) -> None:
        """Wait until the catalog lists every named tool (workers are discovered asynchronously)."""
        wanted = set(qualified_names)

        def listed() -> bool:
            with self.http() as http:
                names: set[str] = set()
                offset = 0
                while True:
                    resp = http.get("/v1/tools", params={"limit": 100, "offset": offset})
                    if resp.status_code != 200:
                        return False
                    body = resp.json()
                    items = body.get("items", [])
                    names.update(item.get("qualified_name", "") for item in items)
                    offset += len(items)
                    if not items or offset >= body.get("total_count", 0):
                        break
                return wanted <= names

        wait_until(f"the gateway to list {sorted(wanted)}", listed, CATALOG_TIMEOUT_S, (self.proc,))


def run_cli(binaries: Binaries, config_path: Path, env: dict[str, str],
            *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_file(binaries.switchboard), *args, "--config", str(config_path)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def write_engine_yaml(path: Path, port: int, db_path: Path, workers: list[dict[str, Any]],
                      secrets: dict[str, str]) -> None:
    # JSON is YAML: no YAML library needed, and quoting is exact.
    config = {
        "api": {"host": "127.0.0.1", "port": port, "development": False},
        "storage": {"sqlite": {"path": str(db_path)}},
        "secrets": secrets,
        "workers": workers,
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


def start_gateway(binaries: Binaries, work_dir: Path, workers: list[dict[str, Any]],
                  secrets: dict[str, str] | None = None) -> Gateway:
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = work_dir / "engine.yaml"
    write_engine_yaml(config_path, port, work_dir / "sb.db", workers,
                      secrets if secrets is not None else {"DEMO_API_KEY": DEMO_API_KEY_VALUE})
    # Keep the gateway away from the developer's own configuration and data.
    env = {
        "HOME": str(work_dir / "home"),
        "XDG_CONFIG_HOME": str(work_dir / "home" / ".config"),
        "XDG_DATA_HOME": str(work_dir / "home" / ".local" / "share"),
        "SWITCHBOARD_CONFIG": str(config_path),
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        "NO_COLOR": "1",
    }
    proc = start_process(
        "switchboard serve",
        [require_file(binaries.switchboard), "serve", "--config", str(config_path)],
        work_dir / "switchboard.log",
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_until("the gateway's /v1/health", lambda: http_ok(f"{base_url}/v1/health"),
               STARTUP_TIMEOUT_S, (proc,))

    created = run_cli(binaries, config_path, env, "keys", "create", "--name", "interop")
    if created.returncode != 0:
        stop_process(proc)
        pytest.fail(
            f"`switchboard keys create` exited {created.returncode}\n"
            f"stdout:\n{created.stdout}\nstderr:\n{created.stderr}"
        )
    lines = created.stdout.strip().splitlines()
    api_key = lines[-1].strip() if lines else ""
    if not api_key.startswith("arc_"):
        stop_process(proc)
        pytest.fail(
            "`switchboard keys create` did not print a key starting with arc_ on its last line "
            f"of stdout\nstdout:\n{created.stdout}\nstderr:\n{created.stderr}"
        )
    return Gateway(port=port, config_path=config_path, api_key=api_key, proc=proc,
                   binaries=binaries, env=env)


@pytest.fixture(scope="module")
def gateway_factory(binaries: Binaries,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Gateway]]:
    """Start gateways for this module; all are stopped when the module ends."""
    started: list[Gateway] = []

    def start(workers: list[dict[str, Any]], secrets: dict[str, str] | None = None) -> Gateway:
        gw = start_gateway(binaries, tmp_path_factory.mktemp("gateway"), workers, secrets)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        stop_process(gw.proc)
