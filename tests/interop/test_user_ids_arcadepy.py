"""One user id, one user (issue 16, item 3), through arcadepy: once alice has connected her
account, "alice " is a different, malformed id, refused with a 400 (arcadepy's
BadRequestError) instead of being trimmed into alice and handed her token.
"""

from __future__ import annotations

import concurrent.futures

import arcadepy
import pytest
from arcadepy import Arcade

from conftest import Binaries, Gateway, complete_sandbox_consent, free_port, start_demo_worker, stop_process

FINGERPRINT = "Demo.TokenFingerprint"
WAIT_FOR_COMPLETION_S = 90.0


@pytest.fixture(scope="module")
def gw(gateway_factory, binaries: Binaries, tmp_path_factory: pytest.TempPathFactory):
    # The worker calls the sandbox's API on the gateway: it needs the address up front.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker = start_demo_worker(binaries, tmp_path_factory.mktemp("demo-worker-user-ids"),
                               api_base_url=f"{base}/sandbox/api")
    gateway = gateway_factory(
        [worker.engine_entry()],
        extra_config={"api": {"development": True, "public_url": base}},
        port=port,
    )
    gateway.wait_for_tools(FINGERPRINT)
    yield gateway
    stop_process(worker.proc)


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Arcade:
    return gw.client()


@pytest.fixture(scope="module")
def alice_connected(client: Arcade, gw: Gateway) -> str:
    """Connects alice's sandbox account; returns her token."""
    auth = client.tools.authorize(tool_name=FINGERPRINT, user_id="alice")
    assert auth.status == "pending" and auth.url, auth
    assert complete_sandbox_consent(gw, auth.url, "alice-sandbox").status_code == 200
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        done = pool.submit(client.auth.wait_for_completion, auth).result(WAIT_FOR_COMPLETION_S)
    assert done.status == "completed", done
    again = client.tools.authorize(tool_name=FINGERPRINT, user_id="alice")
    assert again.status == "completed" and again.context and again.context.token, again
    return again.context.token


@pytest.mark.parametrize("user_id", ["alice ", " alice", "alice\n", ""])
def test_tools_authorize_for_a_padded_alice_is_a_bad_request_not_alices_token(
        client: Arcade, alice_connected: str, user_id: str) -> None:
    with pytest.raises(arcadepy.BadRequestError) as raised:
        client.tools.authorize(tool_name=FINGERPRINT, user_id=user_id)
    assert raised.value.status_code == 400
    body = raised.value.body if isinstance(raised.value.body, dict) else raised.value.response.json()
    assert "invalid user_id" in body.get("message", ""), body
    assert alice_connected not in raised.value.response.text


def test_execute_and_auth_start_refuse_a_padded_alice_too(client: Arcade,
                                                          alice_connected: str) -> None:
    with pytest.raises(arcadepy.BadRequestError):
        client.tools.execute(tool_name=FINGERPRINT, input={}, user_id="alice ")
    with pytest.raises(arcadepy.BadRequestError):
        client.auth.start("alice ", provider="sandbox", scopes=["profile"])
    # alice herself is untouched.
    result = client.tools.execute(tool_name=FINGERPRINT, input={}, user_id="alice")
    assert result.success is True, result
    assert result.output is not None and result.output.value["user_id"] == "alice"
