"""Fixtures for the interop tests: real processes on loopback ports.

Every module gets fresh processes: the `switchboard` gateway with an engine.yaml written to a
temporary directory, the TDK example worker (`demo-worker`), real Arcade workers served by
arcade-mcp-server (tests/interop/workers/*) and, for the OAuth tests, an independent OAuth 2.0
server (npm `oauth2-mock-server`, tests/interop/oauth_mock_server). Logs of every process go to
files; when a test fails, the logs of the processes alive at that moment are added to its report.
"""

from __future__ import annotations

import hashlib
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
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from arcadepy import Arcade

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET_DIR = REPO_ROOT / "target" / "debug"
WORKERS_DIR = Path(__file__).resolve().parent / "workers"
OAUTH_MOCK_DIR = Path(__file__).resolve().parent / "oauth_mock_server"

# Bounded waits: generous for a loaded 2-core machine, but never unbounded.
STARTUP_TIMEOUT_S = 60.0
CATALOG_TIMEOUT_S = 60.0

DEMO_SECRET = "demo-worker-secret-for-interop-tests"
MATHKIT_SECRET = "mathkit-worker-secret-for-interop-tests"
OAUTHKIT_SECRET = "oauthkit-worker-secret-for-interop-tests"
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


def start_demo_worker(binaries: Binaries, log_dir: Path, worker_id: str = "demo",
                      api_base_url: str | None = None) -> Worker:
    """`api_base_url`: the sandbox provider's API root (`http://<gateway>/sandbox/api`)."""
    port = free_port()
    extra_args = ["--api-base-url", api_base_url] if api_base_url else []
    proc = start_process(
        f"demo-worker {worker_id}",
        [require_file(binaries.demo_worker), "--host", "127.0.0.1", "--port", str(port),
         "--secret", DEMO_SECRET, *extra_args],
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
    return start_arcade_worker(log_dir, "mathkit", MATHKIT_SECRET, worker_id)


def start_arcade_worker(log_dir: Path, toolkit: str, secret: str, worker_id: str,
                        env: dict[str, str] | None = None) -> Worker:
    """The arcade-mcp-server worker in tests/interop/workers/<toolkit>/server.py."""
    port = free_port()
    proc = start_process(
        f"arcade-mcp-server {worker_id}",
        [sys.executable, str(WORKERS_DIR / toolkit / "server.py")],
        log_dir / f"{toolkit}-{worker_id}.log",
        env={
            **(env or {}),
            # /worker/* routes exist only when the secret is set.
            "ARCADE_WORKER_SECRET": secret,
            "ARCADE_SERVER_TRANSPORT": "http",
            "ARCADE_SERVER_HOST": "127.0.0.1",
            "ARCADE_SERVER_PORT": str(port),
            "ARCADE_USAGE_TRACKING": "0",
            "PYTHONUNBUFFERED": "1",
        },
        cwd=WORKERS_DIR / toolkit,
    )
    uri = f"http://127.0.0.1:{port}"
    wait_until("arcade-mcp-server /worker/health", lambda: http_ok(f"{uri}/worker/health"),
               STARTUP_TIMEOUT_S, (proc,))
    return Worker(id=worker_id, uri=uri, secret=secret, proc=proc)


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

    @property
    def db_path(self) -> Path:
        """The gateway's SQLite file (see write_engine_yaml)."""
        return self.config_path.parent / "sb.db"

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


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` laid over `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_engine_yaml(path: Path, port: int, db_path: Path, workers: list[dict[str, Any]],
                      secrets: dict[str, str], extra: dict[str, Any] | None = None) -> None:
    # JSON is YAML: no YAML library needed, and quoting is exact.
    config = {
        "api": {"host": "127.0.0.1", "port": port, "development": False},
        "storage": {"sqlite": {"path": str(db_path)}},
        "secrets": secrets,
        "workers": workers,
    }
    if extra:
        config = merge_config(config, extra)
    path.write_text(json.dumps(config, indent=2) + "\n")


def start_gateway(binaries: Binaries, work_dir: Path, workers: list[dict[str, Any]],
                  secrets: dict[str, str] | None = None, extra_config: dict[str, Any] | None = None,
                  port: int | None = None) -> Gateway:
    """`extra_config` is merged over the generated engine.yaml; `port` is one chosen before
    (for peers that must know the gateway's address before it starts)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port = port if port is not None else free_port()
    config_path = work_dir / "engine.yaml"
    write_engine_yaml(config_path, port, work_dir / "sb.db", workers,
                      secrets if secrets is not None else {"DEMO_API_KEY": DEMO_API_KEY_VALUE},
                      extra_config)
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

    def start(workers: list[dict[str, Any]], secrets: dict[str, str] | None = None,
              extra_config: dict[str, Any] | None = None, port: int | None = None) -> Gateway:
        gw = start_gateway(binaries, tmp_path_factory.mktemp("gateway"), workers, secrets,
                           extra_config, port)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        stop_process(gw.proc)


# ---------------------------------------------------------------------------------------------
# An independent OAuth 2.0 server: npm oauth2-mock-server (tests/interop/oauth_mock_server)
# ---------------------------------------------------------------------------------------------

OAUTH_MOCK_CLIENT_ID = "switchboard-interop"
OAUTH_MOCK_CLIENT_SECRET = "interop-client-secret-not-a-real-one"


@dataclass
class OAuthMockServer:
    """oauth2-mock-server behind server.mjs, which also checks the client, the code and the
    refresh token the way a real server does, and records every request under /_control."""

    issuer: str
    client_id: str
    client_secret: str
    proc: Proc

    def events(self) -> list[dict[str, Any]]:
        """Every /authorize and /token request the library answered, with its answer."""
        return self._control()["events"]

    def requests(self) -> list[dict[str, str]]:
        """Every request that reached the server ({method, path}), refused or not."""
        return self._control()["requests"]

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far is refused from now on (`invalid_grant`)."""
        httpx.post(f"{self.issuer}/_control/revoke_refresh_tokens", timeout=10.0).raise_for_status()

    def _control(self) -> dict[str, Any]:
        resp = httpx.get(f"{self.issuer}/_control/events", timeout=10.0)
        resp.raise_for_status()
        return resp.json()

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change how the next token responses look (see server.mjs for the settings)."""
        resp = httpx.post(f"{self.issuer}/_control/settings", json=settings, timeout=10.0)
        resp.raise_for_status()
        return resp.json()


def _npm_lock_digest() -> str:
    return hashlib.sha256((OAUTH_MOCK_DIR / "package-lock.json").read_bytes()).hexdigest()


def ensure_oauth_mock_installed() -> None:
    """`npm ci` unless scripts/test (or an earlier run) installed this very lock file."""
    stamp = OAUTH_MOCK_DIR / "node_modules" / ".package-lock.sha256"
    want = _npm_lock_digest()
    try:
        if stamp.read_text().strip() == want:
            return
    except OSError:
        pass
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is not on PATH; run `npm ci --prefix {OAUTH_MOCK_DIR}` (Node 20.19+)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(OAUTH_MOCK_DIR)],
                   check=True, stdin=subprocess.DEVNULL, timeout=600)
    stamp.write_text(want + "\n")


def start_oauth_mock_server(log_dir: Path) -> OAuthMockServer:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the OAuth interop tests need Node 20.19+")
    ensure_oauth_mock_installed()
    proc = start_process(
        "oauth2-mock-server",
        [node, str(OAUTH_MOCK_DIR / "server.mjs"), "--client-id", OAUTH_MOCK_CLIENT_ID],
        log_dir / "oauth2-mock-server.log",
        # The secret goes through the environment, not the command line.
        env={"OAUTH_MOCK_CLIENT_SECRET": OAUTH_MOCK_CLIENT_SECRET},
        cwd=OAUTH_MOCK_DIR,
    )
    issuer = ""

    def printed_issuer() -> bool:
        nonlocal issuer
        for line in proc.log().splitlines():
            if line.startswith("oauth2-mock-server issuer "):
                issuer = line.split()[-1]
                return True
        return False

    wait_until("oauth2-mock-server to print its issuer", printed_issuer, STARTUP_TIMEOUT_S,
               (proc,))
    wait_until("oauth2-mock-server's discovery document",
               lambda: http_ok(f"{issuer}/.well-known/openid-configuration"),
               STARTUP_TIMEOUT_S, (proc,))
    return OAuthMockServer(issuer=issuer, client_id=OAUTH_MOCK_CLIENT_ID,
                           client_secret=OAUTH_MOCK_CLIENT_SECRET, proc=proc)


@pytest.fixture(scope="module")
def oauth_mock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthMockServer]:
    server = start_oauth_mock_server(tmp_path_factory.mktemp("oauth-mock"))
    yield server
    stop_process(server.proc)


# ---------------------------------------------------------------------------------------------
# MCP: the gateway's MCP endpoints, Node 22 with the official conformance suite
# (tests/interop/node22), the TypeScript SDK client (tests/interop/ts_client), and a browser
# that completes the sandbox provider's consent
# ---------------------------------------------------------------------------------------------

NODE22_DIR = Path(__file__).resolve().parent / "node22"
TS_CLIENT_DIR = Path(__file__).resolve().parent / "ts_client"


def ensure_npm_ci(directory: Path) -> None:
    """`npm ci` in `directory` unless scripts/test (or an earlier run) installed this very
    package-lock.json (same stamp file as scripts/test writes)."""
    stamp = directory / "node_modules" / ".package-lock.sha256"
    want = hashlib.sha256((directory / "package-lock.json").read_bytes()).hexdigest()
    try:
        if stamp.read_text().strip() == want:
            return
    except OSError:
        pass
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is not on PATH; run `npm ci --prefix {directory}`")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(directory)],
                   check=True, stdin=subprocess.DEVNULL, timeout=600)
    stamp.write_text(want + "\n")


def node22_env() -> dict[str, str]:
    """The environment with Node 22 (npm package `node@22`) first on PATH: the conformance
    suite imports `fs.globSync`, which older Node lacks."""
    ensure_npm_ci(NODE22_DIR)
    bin_dir = NODE22_DIR / "node_modules" / "node" / "bin"
    if not (bin_dir / "node").is_file():
        pytest.fail(f"{bin_dir / 'node'} is missing after `npm ci --prefix {NODE22_DIR}`")
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def mcp_url(gw: Gateway, user_id: str) -> str:
    return f"{gw.base_url}/v1/mcps/{user_id}/mcp"


@pytest.fixture(scope="module")
def mcp_gateway(gateway_factory, binaries: Binaries,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A dev-mode gateway (loopback callers need no credential; the sandbox OAuth provider is
    mounted) with the TDK example worker, whose WhoAmI calls the sandbox's API as the user."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker = start_demo_worker(binaries, tmp_path_factory.mktemp("demo-worker-mcp"),
                               api_base_url=f"{base}/sandbox/api")
    gateway = gateway_factory(
        [worker.engine_entry()],
        extra_config={"api": {"development": True, "public_url": base}},
        port=port,
    )
    gateway.wait_for_tools("Demo.Echo", "Demo.WhoAmI")
    yield gateway
    stop_process(worker.proc)


class _ConsentFormParser(HTMLParser):
    """The first form's action and inputs (name → value), and its buttons (name, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
            self._in_form = True
        elif self._in_form and tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif self._in_form and tag == "button" and a.get("name"):
            self.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def complete_sandbox_consent(gw: Gateway, url: str, username: str,
                             decision: str = "allow") -> httpx.Response:
    """Plays the user's browser on an authorization link the gateway handed out: the link,
    the sandbox's consent page (Allow or Deny as `username`), the callback. Each redirect is
    followed by hand so every hop is checked; returns the callback's page."""

    def redirect(resp: httpx.Response) -> str:
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
        location = resp.headers.get("location")
        assert location, resp.headers
        return urljoin(str(resp.url), location)

    assert url.startswith(f"{gw.base_url}/v1/oauth/link/"), url
    # A browser carries no API key.
    with httpx.Client(follow_redirects=False, timeout=30.0) as browser:
        authorize_url = redirect(browser.get(url))
        assert authorize_url.startswith(f"{gw.base_url}/sandbox/oauth/authorize?"), authorize_url
        query = parse_qs(urlsplit(authorize_url).query)
        assert query["response_type"] == ["code"]
        assert query["redirect_uri"] == [f"{gw.base_url}/v1/oauth/callback"]
        assert query["code_challenge_method"] == ["S256"]
        assert query["state"][0] and query["code_challenge"][0]
        consent = browser.get(authorize_url)
        assert consent.status_code == 200, consent.text[:500]
        form = _ConsentFormParser()
        form.feed(consent.text)
        assert form.action is not None, consent.text[:1000]
        assert ("decision", "allow") in form.buttons and ("decision", "deny") in form.buttons
        fields = {**form.fields, "username": username, "decision": decision}
        callback_url = redirect(browser.post(urljoin(authorize_url, form.action), data=fields))
        assert callback_url.startswith(f"{gw.base_url}/v1/oauth/callback?"), callback_url
        return browser.get(callback_url)
