"""A worker that is down fails only its own tools; the gateway keeps serving the others."""

from __future__ import annotations

import pytest
from arcadepy import Arcade

from conftest import Gateway, Worker, free_port


@pytest.fixture(scope="module")
def gw(gateway_factory, demo_worker: Worker) -> Gateway:
    # Nothing listens on this port: bound once to find it free, then released.
    dead = {
        "id": "ghost",
        "enabled": True,
        "http": {"uri": f"http://127.0.0.1:{free_port()}", "secret": "ghost-worker-secret",
                 "timeout": "2s", "retry": 0},
    }
    gateway = gateway_factory([demo_worker.engine_entry(), dead])
    gateway.wait_for_tools("Demo.Echo")
    return gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Arcade:
    return gw.client()


def test_the_gateway_starts_and_is_healthy_with_a_worker_down(gw: Gateway) -> None:
    with gw.http(key="") as http:
        resp = http.get("/v1/health")
    assert resp.status_code == 200
    assert resp.json()["healthy"] is True


def test_the_healthy_workers_tools_still_execute(client: Arcade) -> None:
    result = client.tools.execute(tool_name="Demo.Echo", input={"message": "still here"},
                                  user_id="alice")
    assert result.success is True, result
    assert result.output is not None and result.output.value == "still here"


def test_the_workers_list_shows_both_workers(gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.get("/v1/workers")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ids = {item["id"] for item in body["items"]}
    assert ids == {"demo", "ghost"}
    assert body["total_count"] == 2
    for item in body["items"]:
        assert item["enabled"] is True
        assert item["type"] == "http"
        assert "ghost-worker-secret" not in str(item)


def test_the_down_worker_reports_unhealthy_and_the_other_healthy(gw: Gateway) -> None:
    with gw.http() as http:
        ghost = http.get("/v1/workers/ghost/health")
        demo = http.get("/v1/workers/demo/health")
    assert ghost.status_code == 200, ghost.text
    assert ghost.json()["id"] == "ghost"
    assert ghost.json()["healthy"] is False
    assert ghost.json().get("message"), "an unhealthy worker should say why"
    assert demo.status_code == 200, demo.text
    assert demo.json()["healthy"] is True


def test_the_down_worker_lists_no_tools(gw: Gateway) -> None:
    # It was never reachable, so the gateway cannot know its tools.
    with gw.http() as http:
        resp = http.get("/v1/workers/ghost/tools")
    assert resp.status_code == 200, resp.text
    assert resp.json()["items"] == []


def test_an_unknown_worker_is_not_found(gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.get("/v1/workers/nobody/health")
    assert resp.status_code == 404
    body = resp.json()
    assert body.get("name") and body.get("message"), body


def test_the_demo_tools_are_unreachable_once_their_worker_stops(
    gateway_factory, binaries, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A worker of its own, so stopping it does not disturb the module's other tests.
    from conftest import start_demo_worker, stop_process

    worker = start_demo_worker(binaries, tmp_path_factory.mktemp("doomed"), worker_id="doomed")
    try:
        gateway = gateway_factory([worker.engine_entry(timeout="2s", retry=0)])
        gateway.wait_for_tools("Demo.Echo")
        client = gateway.client()
        assert client.tools.execute(tool_name="Demo.Echo", input={"message": "a"},
                                    user_id="alice").success is True
    finally:
        stop_process(worker.proc)

    result = client.tools.execute(tool_name="Demo.Echo", input={"message": "b"}, user_id="alice")
    assert result.success is False, result
    assert result.output is not None and result.output.error is not None, result
    assert result.output.error.kind == "NETWORK_TRANSPORT_RUNTIME_UNREACHABLE"
    # Builtin tools do not depend on any worker.
    builtin = client.tools.execute(tool_name="Builtin.Echo", input={"message": "c"},
                                   user_id="alice")
    assert builtin.success is True, builtin
