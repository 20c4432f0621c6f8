"""Interop with an independent OAuth 2.0 server: npm oauth2-mock-server as a custom provider.

The gateway runs outside dev mode with a custom provider `mock` in Arcade's short form
(`authorization.url`, `token.url`, `token.auth_method: client_secret_basic`, PKCE S256).
oauth2-mock-server (behind tests/interop/oauth_mock_server/server.mjs, which adds the checks
of client, code, redirect URI and refresh-token rotation that a real server makes) issues the
tokens; an arcade-mcp-server worker (workers/oauthkit) holds a tool that requires the `mock`
provider and answers sha256 of the token it received. The test plays the user's browser.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import arcadepy
import httpx
import pytest
from arcadepy import Arcade
from arcadepy.types.shared import AuthorizationResponse

from conftest import (
    OAUTHKIT_SECRET,
    STARTUP_TIMEOUT_S,
    Gateway,
    OAuthMockServer,
    Worker,
    free_port,
    http_ok,
    require_file,
    start_arcade_worker,
    start_process,
    stop_process,
    wait_until,
)

FINGERPRINT = "Oauthkit.TokenFingerprint"
SCOPES = ["openid", "profile"]
ROOT_KEY = "interop-root-key-0123456789abcdef-0123456789"
WAIT_FOR_COMPLETION_S = 90.0


@pytest.fixture(scope="module")
def oauthkit_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = start_arcade_worker(tmp_path_factory.mktemp("oauthkit"), "oauthkit",
                                 OAUTHKIT_SECRET, "oauthkit")
    yield worker
    stop_process(worker.proc)


def provider_config(mock: OAuthMockServer) -> dict[str, Any]:
    return {
        "id": "mock",
        "description": "oauth2-mock-server (npm), an independent OAuth 2.0 server",
        "type": "oauth2",
        "client_id": mock.client_id,
        "client_secret": mock.client_secret,
        "authorization": {"url": f"{mock.issuer}/authorize"},
        "token": {"url": f"{mock.issuer}/token", "auth_method": "client_secret_basic"},
        "scopes": SCOPES,
        "oauth2": {"pkce": {"enabled": True, "code_challenge_method": "S256"}},
        # RFC 7009 revocation, which oauth2-mock-server offers.
        "revoke": {"url": f"{mock.issuer}/revoke"},
    }


@pytest.fixture(scope="module")
def gw(gateway_factory, oauthkit_worker: Worker, oauth_mock_server: OAuthMockServer) -> Gateway:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = gateway_factory(
        [oauthkit_worker.engine_entry()],
        extra_config={
            "api": {"development": False, "public_url": base},
            "security": {"root_keys": [{"id": "k1", "default": True, "value": ROOT_KEY}]},
            # The mock server listens on loopback, which only the allowlist opens
            # outside dev mode.
            "network": {"allowlist": ["127.0.0.1"]},
            "auth": {
                # The test is the application and the user at once: nobody to verify.
                "user_verifier": "none",
                "providers": [provider_config(oauth_mock_server)],
            },
        },
        port=port,
    )
    gateway.wait_for_tools(FINGERPRINT)
    return gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Arcade:
    return gw.client()


@pytest.fixture(autouse=True)
def default_lifetimes(oauth_mock_server: OAuthMockServer) -> Iterator[None]:
    oauth_mock_server.configure(code_expires_in=3600, refresh_expires_in=3600)
    yield
    oauth_mock_server.configure(code_expires_in=3600, refresh_expires_in=3600)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _redirect(resp: httpx.Response) -> str:
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
    location = resp.headers.get("location")
    assert location, resp.headers
    return urljoin(str(resp.url), location)


def connect(gw: Gateway, mock: OAuthMockServer, url: str) -> dict[str, list[str]]:
    """Follows an authorization URL like a browser (the mock has no consent page: its
    /authorize sends the code straight back). Returns the query sent to the provider."""
    assert url.startswith(f"{gw.base_url}/v1/oauth/link/"), url
    with httpx.Client(follow_redirects=False, timeout=30.0) as browser:
        authorize_url = _redirect(browser.get(url))
        assert authorize_url.startswith(f"{mock.issuer}/authorize?"), authorize_url
        callback_url = _redirect(browser.get(authorize_url))
        assert callback_url.startswith(f"{gw.base_url}/v1/oauth/callback?"), callback_url
        assert "code" in parse_qs(urlsplit(callback_url).query), callback_url
        page = browser.get(callback_url)
        assert page.status_code == 200, (page.status_code, page.text[:500])
        assert "connected" in page.text.lower(), page.text[:500]
    return parse_qs(urlsplit(authorize_url).query)


def wait_for_completion(client: Arcade, auth: AuthorizationResponse) -> AuthorizationResponse:
    # arcadepy's wait_for_completion loops until "completed", forever if the flow failed.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(client.auth.wait_for_completion, auth).result(WAIT_FOR_COMPLETION_S)


def authorize_and_connect(client: Arcade, gw: Gateway, mock: OAuthMockServer,
                          user_id: str) -> dict[str, list[str]]:
    auth = client.tools.authorize(tool_name=FINGERPRINT, user_id=user_id)
    assert auth.status == "pending", auth
    assert auth.url, auth
    query = connect(gw, mock, auth.url)
    done = wait_for_completion(client, auth)
    assert done.status == "completed", done
    return query


def sha256_prefix(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def fingerprint(client: Arcade, user_id: str) -> str:
    result = client.tools.execute(tool_name=FINGERPRINT, input={}, user_id=user_id)
    assert result.success is True, result
    assert result.output is not None and isinstance(result.output.value, dict), result
    value = result.output.value
    assert value["user_id"] == user_id and value["has_token"] is True, value
    return value["token_sha256_prefix"]


def token_events(mock: OAuthMockServer, since: int = 0) -> list[dict[str, Any]]:
    return [e for e in mock.events()[since:] if e["endpoint"] == "token"]


def grants(events: list[dict[str, Any]], grant_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["grant_type"] == grant_type]


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_running_without_a_user_verifier_is_warned_about_at_start(gw: Gateway) -> None:
    assert any("WARN" in line and "user_verifier" in line for line in gw.proc.log().splitlines())


def test_the_provider_is_listed_without_its_secret(gw: Gateway,
                                                   oauth_mock_server: OAuthMockServer) -> None:
    with gw.http() as http:
        resp = http.get("/v1/admin/auth_providers")
    assert resp.status_code == 200, resp.text
    assert "mock" in resp.text
    assert oauth_mock_server.client_secret not in resp.text


def let_the_token_expire() -> None:
    """Waits out a 1 s access token, so the next call must refresh it (no clock to
    advance in a real binary)."""
    time.sleep(1.2)


def test_a_call_before_connecting_answers_403_with_an_authorization_url(
        client: Arcade, gw: Gateway) -> None:
    with pytest.raises(arcadepy.PermissionDeniedError) as raised:
        client.tools.execute(tool_name=FINGERPRINT, input={}, user_id="nobody")
    err = raised.value
    body = err.body if isinstance(err.body, dict) else err.response.json()
    output = body.get("output") or {}
    assert (output.get("error") or {}).get("kind") == "TOOL_REQUIREMENTS_NOT_MET", body
    url = (output.get("authorization") or {}).get("url", "")
    assert str(url).startswith(f"{gw.base_url}/v1/oauth/link/"), body


def test_authorization_code_with_pkce_s256_and_client_secret_basic(
        client: Arcade, gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    mock = oauth_mock_server
    before = len(mock.events())
    query = authorize_and_connect(client, gw, mock, "carol")

    # What the gateway sent the user to: a standard authorization request with PKCE S256.
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [mock.client_id]
    assert query["redirect_uri"] == [f"{gw.base_url}/v1/oauth/callback"]
    assert sorted(query["scope"][0].split(" ")) == sorted(SCOPES)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256 digest
    assert query["state"][0]
    assert "client_secret" not in query
    assert mock.client_secret not in str(query)

    # One code exchange: Basic client authentication, the same redirect URI, and a
    # code_verifier that oauth2-mock-server checked against the challenge.
    events = token_events(mock, before)
    assert len(events) == 1, events
    exchange = events[0]
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["status"] == 200, exchange
    assert exchange["client_auth"] == "client_secret_basic"
    assert "client_secret" not in exchange["form_keys"]
    assert exchange["code_verifier_sent"] is True
    assert exchange["redirect_uri"] == f"{gw.base_url}/v1/oauth/callback"

    # The worker receives exactly the access token the provider issued for carol.
    assert fingerprint(client, "carol") == sha256_prefix(exchange["issued"]["access_token"])
    assert grants(token_events(mock, before), "refresh_token") == []


def test_an_expiring_token_is_refreshed_once_and_the_call_succeeds(
        client: Arcade, gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    mock = oauth_mock_server
    # The code exchange's token expires in 1 s. The gateway refreshes ahead of expiry only
    # in the last half of a token's lifetime, so once it has expired the first call
    # refreshes it and the second uses the refreshed one (its lifetime is an hour).
    mock.configure(code_expires_in=1, refresh_expires_in=3600)
    before = len(mock.events())
    authorize_and_connect(client, gw, mock, "erin")
    exchange = grants(token_events(mock, before), "authorization_code")
    assert len(exchange) == 1 and exchange[0]["status"] == 200, exchange
    assert grants(token_events(mock, before), "refresh_token") == []
    let_the_token_expire()

    first = fingerprint(client, "erin")
    second = fingerprint(client, "erin")

    refreshes = grants(token_events(mock, before), "refresh_token")
    assert len(refreshes) == 1, refreshes
    refresh = refreshes[0]
    assert refresh["status"] == 200, refresh
    assert refresh["client_auth"] == "client_secret_basic"
    assert refresh["refresh_token_presented"] == exchange[0]["issued"]["refresh_token"]
    refreshed = refresh["issued"]["access_token"]
    assert refreshed != exchange[0]["issued"]["access_token"]
    assert first == second == sha256_prefix(refreshed)

    # Every request that reached /token is one of those two (none refused by the library).
    token_requests = [r for r in mock.requests() if r["path"] == "/token"]
    assert len(token_requests) == len([e for e in mock.events() if e["endpoint"] == "token"])

    auth = client.auth.start("erin", provider="mock", scopes=SCOPES)
    assert auth.status == "completed", auth
    assert auth.context is not None and auth.context.token == refreshed


def test_a_rotated_refresh_token_is_the_one_presented_next(
        client: Arcade, gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    mock = oauth_mock_server
    # Every token expires in 1 s: a call after each expiry refreshes, with the refresh token
    # the previous refresh returned (the server refuses a used one).
    mock.configure(code_expires_in=1, refresh_expires_in=1)
    before = len(mock.events())
    authorize_and_connect(client, gw, mock, "frank")

    let_the_token_expire()
    first = fingerprint(client, "frank")
    let_the_token_expire()
    second = fingerprint(client, "frank")

    events = token_events(mock, before)
    exchange = grants(events, "authorization_code")
    refreshes = grants(events, "refresh_token")
    assert len(exchange) == 1 and len(refreshes) == 2, events
    assert all(r["status"] == 200 for r in refreshes), refreshes
    assert refreshes[0]["refresh_token_presented"] == exchange[0]["issued"]["refresh_token"]
    assert refreshes[1]["refresh_token_presented"] == refreshes[0]["issued"]["refresh_token"]
    access = [e["issued"]["access_token"] for e in (*exchange, *refreshes)]
    assert len(set(access)) == 3, "every token the provider issued is a new one"
    assert first == sha256_prefix(access[1])
    assert second == sha256_prefix(access[2])


def test_a_refresh_refused_with_invalid_grant_asks_the_user_to_connect_again(
        client: Arcade, gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    mock = oauth_mock_server
    mock.configure(code_expires_in=1, refresh_expires_in=3600)
    before = len(mock.events())
    authorize_and_connect(client, gw, mock, "grace")
    mock.revoke_refresh_tokens()
    let_the_token_expire()

    # This call or, at the latest, the next one gets an authorization URL.
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(client.tools.execute(tool_name=FINGERPRINT, input={},
                                                 user_id="grace"))
        except arcadepy.PermissionDeniedError as err:
            outcomes.append(err)
            break
    last = outcomes[-1]
    assert isinstance(last, arcadepy.PermissionDeniedError), outcomes
    body = last.body if isinstance(last.body, dict) else last.response.json()
    output = body.get("output") or {}
    assert (output.get("error") or {}).get("kind") == "TOOL_REQUIREMENTS_NOT_MET", body
    assert str((output.get("authorization") or {}).get("url", "")).startswith(
        f"{gw.base_url}/v1/oauth/link/"), body

    refreshes = grants(token_events(mock, before), "refresh_token")
    assert len(refreshes) == 1, refreshes
    assert refreshes[0]["status"] == 400 and refreshes[0]["error"] == "invalid_grant"


def test_no_issued_token_is_stored_or_logged_in_plaintext(
        client: Arcade, gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    issued = [e["issued"] for e in token_events(oauth_mock_server) if e.get("issued")]
    assert issued
    secrets = [t for i in issued for t in (i["access_token"], i["refresh_token"])]
    db = b"".join(p.read_bytes() for p in gw.db_path.parent.glob(gw.db_path.name + "*"))
    log = gw.proc.log()
    for secret in [*secrets, oauth_mock_server.client_secret]:
        assert secret.encode() not in db
        assert secret not in log


# ---------------------------------------------------------------------------------------------
# The CLI on the same store: auth providers, auth connections, auth revoke, users delete,
# vault rotate
# ---------------------------------------------------------------------------------------------


def cli_ok(gw: Gateway, *args: str) -> str:
    done = gw.cli(*args)
    assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
    return done.stdout


def connection_ids(gw: Gateway, user_id: str) -> list[str]:
    with gw.http() as http:
        resp = http.get("/v1/admin/user_connections", params={"user_id": user_id})
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["items"]]


def restart(gw: Gateway, generation: int) -> None:
    """Stops the gateway and starts it again on the same config, store and port."""
    stop_process(gw.proc)
    gw.proc = start_process(
        f"switchboard serve ({generation})",
        [require_file(gw.binaries.switchboard), "serve", "--config", str(gw.config_path)],
        gw.config_path.parent / f"switchboard-{generation}.log",
        env=gw.env,
    )
    wait_until("the restarted gateway's /v1/health", lambda: http_ok(f"{gw.base_url}/v1/health"),
               STARTUP_TIMEOUT_S, (gw.proc,))
    gw.wait_for_tools(FINGERPRINT)


def set_root_keys(gw: Gateway, keys: list[dict[str, Any]]) -> None:
    config = json.loads(gw.config_path.read_text())
    config["security"]["root_keys"] = keys
    gw.config_path.write_text(json.dumps(config, indent=2) + "\n")


def data_key_roots(gw: Gateway) -> dict[str, str]:
    """user id → id of the root key that wraps their data key, read from the SQLite store."""
    with contextlib.closing(sqlite3.connect(f"file:{gw.db_path}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT user_id, root_key_id FROM user_keys").fetchall())


def test_the_cli_lists_the_providers_without_the_client_secret(
        gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    out = cli_ok(gw, "auth", "providers")
    assert "mock" in out and oauth_mock_server.client_id in out, out
    assert oauth_mock_server.client_secret not in out


def test_the_cli_lists_connections_for_everyone_or_one_user_and_never_a_token(
        gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    everyone = cli_ok(gw, "auth", "connections")
    for user in ("carol", "erin", "frank"):
        assert re.search(rf"\b{user}\b", everyone), everyone
    carol = cli_ok(gw, "auth", "connections", "--user", "carol")
    assert re.search(r"\bcarol\b", carol) and "erin" not in carol and "frank" not in carol, carol
    for id_ in connection_ids(gw, "carol"):
        assert id_ in carol, carol
    assert "No connections." in cli_ok(gw, "auth", "connections", "--user", "nobody-at-all")
    issued = [e["issued"] for e in token_events(oauth_mock_server) if e.get("issued")]
    for tokens in issued:
        assert tokens["access_token"] not in everyone
        assert tokens["refresh_token"] not in everyone


def assert_tool_asks_to_authorize(client: Arcade, user_id: str) -> None:
    """A change made by another process (the CLI) reaches the running gateway through the
    store's change log, read every second: poll, bounded, until the tool asks to authorize.
    The gateway's cached row would otherwise live minutes (it is watched), so this fails if
    the change log does not reach it."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            client.tools.execute(tool_name=FINGERPRINT, input={}, user_id=user_id)
        except arcadepy.PermissionDeniedError:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the tool still ran for {user_id} 10 s after the CLI removed the grant")
        time.sleep(0.25)


def test_the_cli_revokes_a_connection_at_the_provider_and_the_tool_asks_again(
        client: Arcade, gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    assert fingerprint(client, "carol")
    ids = connection_ids(gw, "carol")
    assert len(ids) == 1, ids
    revokes_before = [r for r in oauth_mock_server.requests() if r["path"] == "/revoke"]

    out = cli_ok(gw, "auth", "revoke", ids[0])
    assert f"Deleted connection {ids[0]}" in out and "revoked at the provider" in out, out
    revokes = [r for r in oauth_mock_server.requests() if r["path"] == "/revoke"]
    assert len(revokes) > len(revokes_before), revokes

    assert connection_ids(gw, "carol") == []
    assert "No connections." in cli_ok(gw, "auth", "connections", "--user", "carol")
    assert_tool_asks_to_authorize(client, "carol")

    again = gw.cli("auth", "revoke", ids[0])
    assert again.returncode != 0, again


def test_the_cli_deletes_a_user_and_their_connections(client: Arcade, gw: Gateway) -> None:
    assert fingerprint(client, "erin")
    out = cli_ok(gw, "users", "delete", "erin")
    assert "erin" in out, out
    again = gw.cli("users", "delete", "erin")
    assert again.returncode != 0, again
    assert connection_ids(gw, "erin") == []
    assert_tool_asks_to_authorize(client, "erin")


def test_vault_rotate_rewraps_data_keys_so_the_old_root_key_can_go(
        client: Arcade, gw: Gateway, oauth_mock_server: OAuthMockServer) -> None:
    authorize_and_connect(client, gw, oauth_mock_server, "heidi")
    before = fingerprint(client, "heidi")
    new_key = {"id": "k2", "default": True, "value": "interop-second-root-key-fedcba9876543210-xyz"}
    old_key = {"id": "k1", "default": False, "value": ROOT_KEY}

    # A new default root key; the old one stays until the store has been rotated.
    set_root_keys(gw, [new_key, old_key])
    restart(gw, 2)
    assert fingerprint(client, "heidi") == before
    wrapped_under = data_key_roots(gw)
    assert wrapped_under.get("heidi") == "k1", wrapped_under

    out = cli_ok(gw, "vault", "rotate")
    rewrapped = re.search(r"Re-wrapped (\d+) data key", out)
    assert rewrapped and int(rewrapped.group(1)) >= 1 and "'k2'" in out, out
    wrapped_under = data_key_roots(gw)
    assert wrapped_under and set(wrapped_under.values()) == {"k2"}, wrapped_under
    out = cli_ok(gw, "vault", "rotate")
    assert "Re-wrapped 0 data key" in out, out

    # The old root key removed: every connection still opens.
    set_root_keys(gw, [new_key])
    restart(gw, 3)
    assert fingerprint(client, "heidi") == before
