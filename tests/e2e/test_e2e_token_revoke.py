"""A token revoked or rotated through one server process is refused at once by another:
``rundfunk serve --no-worker`` and ``rundfunk serve`` on one PostgreSQL database, no
cache between them and the database that could outlive a revoke."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_server import Server, WebOnly, _free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_nodes(postgres_url: str) -> Iterator[tuple[WebOnly, Server]]:
    with tempfile.TemporaryDirectory(prefix="rundfunk-e2e-tokens-") as tmp:
        shared = {"RUNDFUNK_DATABASE_URL": postgres_url, "RUNDFUNK_SECRET_KEY": "e2e-tokens"}
        node_a = WebOnly(Path(tmp) / "a", _free_port(), shared)
        node_b = Server(Path(tmp) / "b", _free_port(), shared)
        try:
            node_a.start()  # first on the empty database: creates the demo workspace
            node_b.token, node_b.channel_id = node_a.token, node_a.channel_id
            node_b.start()
            yield node_a, node_b
        finally:
            node_b.stop()
            node_a.stop()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_revoke_and_rotate_on_one_node_take_effect_at_once_on_the_other(
    two_nodes: tuple[WebOnly, Server],
) -> None:
    node_a, node_b = two_nodes
    owner = bearer(node_a.token)
    with httpx.Client(base_url=node_a.base_url, timeout=10) as a, httpx.Client(
        base_url=node_b.base_url, timeout=10
    ) as b:
        made = a.post("/api/v1/tokens", json={"name": "sync", "role": "agent"}, headers=owner)
        assert made.status_code == 201, made.text
        secret, token_id = made.json()["secret"], made.json()["token"]["id"]
        for _ in range(3):  # used on B, so any per-process memory of it would be warm
            assert b.get("/api/v1/contacts", headers=bearer(secret)).status_code == 200

        revoked = a.post(f"/api/v1/tokens/{token_id}/revoke", headers=owner)
        assert revoked.status_code == 200, revoked.text
        refused = b.get("/api/v1/contacts", headers=bearer(secret))
        assert refused.status_code == 401, refused.text

        other = a.post("/api/v1/tokens", json={"name": "crm", "role": "editor"}, headers=owner)
        old = other.json()["secret"]
        assert a.get("/api/v1/topics", headers=bearer(old)).status_code == 200
        rotated = b.post(f"/api/v1/tokens/{other.json()['token']['id']}/rotate", headers=owner)
        assert rotated.status_code == 201, rotated.text
        assert a.get("/api/v1/topics", headers=bearer(old)).status_code == 401
        new = rotated.json()["secret"]
        assert a.get("/api/v1/topics", headers=bearer(new)).status_code == 200
