"""Per-user OAuth through arcadepy, against the gateway's dev-mode sandbox provider.

The test plays the user's browser: it follows the authorization link, the sandbox's consent
page and the callback by hand (no redirect is followed automatically), so every hop's status
and address is checked. The TDK example worker's `Demo.TokenFingerprint` answers sha256 of the
token it received, so "the worker got this user's token" is checked without the worker ever
showing a token.
"""

from __future__ import annotations

import concurrent.futures
import hashlib

import arcadepy
import httpx
import pytest
from arcadepy import Arcade
from arcadepy.types.shared import AuthorizationResponse

from conftest import (
    Binaries,
    Gateway,
    complete_sandbox_consent,
    free_port,
    start_demo_worker,
    stop_process,
)

FINGERPRINT = "Demo.TokenFingerprint"
WHO_AM_I = "Demo.WhoAmI"
# Bounded, so a flow that never completes fails the test instead of hanging it.
WAIT_FOR_COMPLETION_S = 90.0


@pytest.fixture(scope="module")
def gw(gateway_factory, binaries: Binaries, tmp_path_factory: pytest.TempPathFactory):
    # The worker calls the sandbox's API on the gateway, and links must point at the gateway:
    # both need the gateway's address before it starts.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker = start_demo_worker(binaries, tmp_path_factory.mktemp("demo-worker-oauth"),
                               api_base_url=f"{base}/sandbox/api")
    gateway = gateway_factory(
        [worker.engine_entry()],
        extra_config={"api": {"development": True, "public_url": base}},
        port=port,
    )
    gateway.wait_for_tools(FINGERPRINT, WHO_AM_I)
    yield gateway
    stop_process(worker.proc)


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Arcade:
    return gw.client()


# ---------------------------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------------------------


def _browser() -> httpx.Client:
    # A browser carries no API key; it follows redirects one at a time (here, by hand).
    return httpx.Client(follow_redirects=False, timeout=30.0)


# The user's browser: the link, the sandbox consent page, the callback (checked hop by hop).
connect_sandbox_account = complete_sandbox_consent


def wait_for_completion(client: Arcade, auth: AuthorizationResponse) -> AuthorizationResponse:
    # arcadepy's wait_for_completion loops until "completed", forever if the flow failed.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(client.auth.wait_for_completion, auth).result(WAIT_FOR_COMPLETION_S)


def sha256_prefix(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def current_token(client: Arcade, user_id: str) -> str:
    """The user's token, as a connected grant answers `/v1/auth/authorize` at once."""
    auth = client.auth.start(user_id, provider="sandbox", scopes=["profile"])
    assert auth.status == "completed", auth
    assert auth.context is not None and auth.context.token, auth
    return auth.context.token


def fingerprint(client: Arcade, user_id: str) -> dict:
    result = client.tools.execute(tool_name=FINGERPRINT, input={}, user_id=user_id)
    assert result.success is True, result
    assert result.output is not None and isinstance(result.output.value, dict), result
    return result.output.value


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_a_tool_that_needs_a_grant_answers_403_with_the_authorization_url(
        client: Arcade, gw: Gateway) -> None:
    with pytest.raises(arcadepy.PermissionDeniedError) as raised:
        client.tools.execute(tool_name=FINGERPRINT, input={}, user_id="not-connected-yet")
    err = raised.value
    assert err.status_code == 403
    body = err.body if isinstance(err.body, dict) else err.response.json()
    output = body.get("output") or {}
    authorization = output.get("authorization") or {}
    assert authorization.get("status") == "pending", body
    assert str(authorization.get("url", "")).startswith(f"{gw.base_url}/v1/oauth/link/"), body
    assert (output.get("error") or {}).get("kind") == "TOOL_REQUIREMENTS_NOT_MET", body


def test_the_whole_flow_authorize_follow_the_link_wait_execute_carries_the_users_token(
        client: Arcade, gw: Gateway) -> None:
    auth = client.tools.authorize(tool_name=FINGERPRINT, user_id="alice")
    assert auth.status == "pending", auth
    assert auth.id and auth.url, auth

    page = connect_sandbox_account(gw, auth.url, "alice-sandbox")
    assert page.status_code == 200, page.text[:500]
    assert "connected" in page.text.lower(), page.text[:500]

    done = wait_for_completion(client, auth)
    assert done.status == "completed", done
    assert done.user_id in (None, "alice"), done

    value = fingerprint(client, "alice")
    assert value["user_id"] == "alice", value
    assert value["token_sha256_prefix"] == sha256_prefix(current_token(client, "alice")), value


def test_the_worker_calls_the_providers_api_as_that_user(client: Arcade) -> None:
    # Connected by the previous test as sandbox user alice-sandbox.
    result = client.tools.execute(tool_name=WHO_AM_I, input={}, user_id="alice")
    assert result.success is True, result
    assert result.output is not None and isinstance(result.output.value, dict), result
    assert result.output.value.get("username") == "alice-sandbox", result.output.value


def test_two_users_each_get_their_own_token(client: Arcade, gw: Gateway) -> None:
    auth = client.auth.start("bob", provider="sandbox", scopes=["profile"])
    assert auth.status == "pending", auth
    assert connect_sandbox_account(gw, auth.url, "bob-sandbox").status_code == 200
    assert wait_for_completion(client, auth).status == "completed"

    tokens = {user: current_token(client, user) for user in ("alice", "bob")}
    assert tokens["alice"] != tokens["bob"]
    for user in ("alice", "bob", "alice", "bob", "bob", "alice"):
        value = fingerprint(client, user)
        assert value == {"user_id": user, "token_sha256_prefix": sha256_prefix(tokens[user])}


def test_an_authorization_link_works_once(client: Arcade, gw: Gateway) -> None:
    auth = client.auth.start("carol", provider="sandbox", scopes=["profile"])
    assert auth.status == "pending" and auth.url, auth
    with _browser() as browser:
        first = browser.get(auth.url)
        assert first.status_code == 303, first.text[:500]
        again = browser.get(auth.url)
        assert again.status_code == 400, (again.status_code, again.headers, again.text[:500])
        assert "location" not in again.headers


def test_denying_consent_fails_the_flow_and_the_tool_still_asks(client: Arcade,
                                                                gw: Gateway) -> None:
    auth = client.auth.start("dave", provider="sandbox", scopes=["profile"])
    assert auth.status == "pending", auth
    page = connect_sandbox_account(gw, auth.url, "dave-sandbox", decision="deny")
    assert page.status_code == 400, (page.status_code, page.text[:500])
    assert "access_denied" in page.text, page.text[-800:]

    status = client.auth.status(id=auth.id, wait=5)
    assert status.status == "failed", status
    with gw.http() as http:
        raw = http.get("/v1/auth/status", params={"id": auth.id}).json()
    assert "access_denied" in raw.get("status_reason", ""), raw
    with pytest.raises(arcadepy.PermissionDeniedError):
        client.tools.execute(tool_name=FINGERPRINT, input={}, user_id="dave")


def test_a_replayed_callback_is_refused_and_changes_nothing(client: Arcade, gw: Gateway) -> None:
    auth = client.auth.start("erin", provider="sandbox", scopes=["profile"])
    page = connect_sandbox_account(gw, auth.url, "erin-sandbox")
    assert page.status_code == 200, page.text[:500]
    token = current_token(client, "erin")

    with _browser() as browser:
        replay = browser.get(str(page.url))
    assert replay.status_code == 400, (replay.status_code, replay.text[:500])
    assert current_token(client, "erin") == token
    assert fingerprint(client, "erin")["token_sha256_prefix"] == sha256_prefix(token)


def test_no_token_is_stored_or_logged_in_plaintext(client: Arcade, gw: Gateway) -> None:
    tokens = [current_token(client, user) for user in ("alice", "bob")]
    db = b"".join(p.read_bytes() for p in gw.db_path.parent.glob(gw.db_path.name + "*"))
    log = gw.proc.log()
    for token in tokens:
        assert token.encode() not in db
        assert token not in log


def test_the_cli_lists_the_sandbox_provider_and_the_users_connections(gw: Gateway) -> None:
    providers = gw.cli("auth", "providers")
    assert providers.returncode == 0, providers
    assert "sandbox" in providers.stdout, providers.stdout
    connections = gw.cli("auth", "connections", "--user", "bob")
    assert connections.returncode == 0, connections
    assert "bob" in connections.stdout and "alice" not in connections.stdout, connections.stdout
