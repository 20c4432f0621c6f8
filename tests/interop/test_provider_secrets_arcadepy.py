"""A provider's client secret, given through arcadepy's documented admin API, never reaches the
database file in plaintext (issue 16, item 2).

arcadepy's `client.admin.auth_providers.create(id=..., oauth2={"client_id": ...,
"client_secret": ..., ...})` puts the secret inside `oauth2`, not at the top level; an earlier
gateway sealed only a top-level `client_secret` and kept this one as sent in
`stored_providers.config_json`, while the API reported it as set. The tests read the SQLite
file directly, and check that a row stored in plaintext before is sealed when the gateway
starts.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from arcadepy import Arcade

from conftest import (
    STARTUP_TIMEOUT_S,
    Gateway,
    free_port,
    http_ok,
    require_file,
    start_process,
    stop_process,
    wait_until,
)

ROOT_KEY = "interop-provider-secrets-root-key-0123456789"
CLIENT_SECRET = "arcadepy-client-secret-0123456789abcdef"
PATCHED_SECRET = "arcadepy-patched-secret-fedcba9876543210"
PARAM_SECRET = "arcadepy-literal-api-key-5555555555"
LEGACY_SECRET = "legacy-plaintext-secret-1111111111"
# Never contacted: the tests only store providers. Loopback, which the allowlist opens.
IDP = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def gw(gateway_factory) -> Gateway:
    port = free_port()
    return gateway_factory(
        [],
        extra_config={
            "api": {"development": False, "public_url": f"http://127.0.0.1:{port}"},
            "security": {"root_keys": [{"id": "k1", "default": True, "value": ROOT_KEY}]},
            "network": {"allowlist": ["127.0.0.1"]},
        },
        port=port,
    )


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Arcade:
    return gw.client()


def oauth2(secret: str) -> dict:
    """Arcade's long form, as arcadepy's docs show it, with the client inside `oauth2`."""
    return {
        "client_id": "arcadepy-client",
        "client_secret": secret,
        "authorize_request": {"endpoint": f"{IDP}/authorize"},
        "token_request": {
            "endpoint": f"{IDP}/token",
            "params": {"api_key": PARAM_SECRET},
        },
        "pkce": {"enabled": True, "code_challenge_method": "S256"},
    }


def stored_rows(gw: Gateway) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(gw.db_path) as db:
        rows = db.execute(
            "SELECT id, config_json, client_secret_sealed FROM stored_providers").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def database_bytes(gw: Gateway) -> bytes:
    """The SQLite file with its journal files: whatever reached the disk."""
    return b"".join(p.read_bytes() for p in gw.db_path.parent.glob(gw.db_path.name + "*"))


def test_a_secret_given_in_oauth2_is_sealed_and_reported_as_set(client: Arcade,
                                                                 gw: Gateway) -> None:
    created = client.admin.auth_providers.create(
        id="arcadepy-layout", description="created with arcadepy", oauth2=oauth2(CLIENT_SECRET))
    assert created.id == "arcadepy-layout"
    assert created.oauth2 is not None and created.oauth2.client_secret is not None
    assert created.oauth2.client_secret.exists is True
    assert created.oauth2.client_secret.binding == "static"
    assert CLIENT_SECRET not in created.model_dump_json()

    patched = client.admin.auth_providers.patch("arcadepy-layout", oauth2=oauth2(PATCHED_SECRET))
    assert patched.oauth2 is not None and patched.oauth2.client_secret is not None
    assert patched.oauth2.client_secret.exists is True
    assert PATCHED_SECRET not in patched.model_dump_json()

    got = client.admin.auth_providers.get("arcadepy-layout")
    assert got.oauth2 is not None and got.oauth2.client_secret is not None
    assert got.oauth2.client_secret.exists is True
    listed = client.admin.auth_providers.list()
    for secret in (CLIENT_SECRET, PATCHED_SECRET, PARAM_SECRET):
        assert secret not in got.model_dump_json()
        assert secret not in listed.model_dump_json()

    config_json, sealed = stored_rows(gw)["arcadepy-layout"]
    assert sealed, "the client secret is sealed in its own column"
    for secret in (CLIENT_SECRET, PATCHED_SECRET, PARAM_SECRET):
        assert secret not in config_json, config_json
        assert secret.encode() not in database_bytes(gw)
        assert secret not in gw.proc.log()


def test_a_row_stored_in_plaintext_before_is_sealed_when_the_gateway_starts(
        client: Arcade, gw: Gateway) -> None:
    # What an earlier version stored for arcadepy's create(oauth2={...client_secret...}).
    legacy = {"id": "legacy", "oauth2": oauth2(LEGACY_SECRET)}
    stop_process(gw.proc)
    with sqlite3.connect(gw.db_path) as db:
        db.execute(
            "INSERT INTO stored_providers (id, config_json, client_secret_sealed, created_at_ms,"
            " updated_at_ms) VALUES (?, ?, NULL, 1, 1)",
            ("legacy", json.dumps(legacy)),
        )
    gw.proc = start_process(
        "switchboard serve (restarted)",
        [require_file(gw.binaries.switchboard), "serve", "--config", str(gw.config_path)],
        Path(gw.config_path).parent / "switchboard-restarted.log",
        env=gw.env,
    )
    wait_until("the restarted gateway's /v1/health", lambda: http_ok(f"{gw.base_url}/v1/health"),
               STARTUP_TIMEOUT_S, (gw.proc,))

    config_json, sealed = stored_rows(gw)["legacy"]
    assert sealed, "the plaintext secret moved into the sealed column"
    assert LEGACY_SECRET not in config_json, config_json
    assert PARAM_SECRET not in config_json, config_json
    got = client.admin.auth_providers.get("legacy")
    assert got.oauth2 is not None and got.oauth2.client_secret is not None
    assert got.oauth2.client_secret.exists is True
    assert LEGACY_SECRET not in got.model_dump_json()
