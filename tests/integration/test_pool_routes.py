"""Worker-pool routes whose answers depend on the gateway's settings or on a failing backend
(http-api.md §7.3, §7.4): the real gateway app in this process, over real gRPC, in front of the
execution service. The routes' shapes under default settings are pinned by
tests/contract/test_pools_contract.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg
import httpx

from gateway_http.settings import GatewaySettings
from tests.helpers.gateway import in_process_gateway
from tests.helpers.nowhere import NOWHERE, NOWHERE_ENV
from tests.helpers.services import Mesh


@asynccontextmanager
async def gateway(execution_addr: str, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings.load(
        {
            **NOWHERE_ENV,
            "NOETL_EXECUTION_ADDRS": execution_addr,
            "NOETL_GATEWAY_RPC_TIMEOUT": "2",
            **env,
        }
    )
    async with in_process_gateway(settings) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ok(response: httpx.Response) -> Mapping[str, object]:
    assert response.status_code == 200, response.text
    body: Mapping[str, object] = response.json()
    return body


async def test_a_heartbeat_without_name_is_for_the_configured_pool(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    name = unique("configured")
    async with gateway(mesh.addresses["execution"], NOETL_WORKER_POOL_NAME=name) as http:
        registered = ok(
            await http.post("/api/worker/pool/register", json={"name": name, "runtime": "python"})
        )
        await db.execute("UPDATE noetl.runtime SET status = 'offline' WHERE name = $1", name)

        beat = ok(await http.post("/api/worker/pool/heartbeat", json={}))
        empty_body = ok(await http.post("/noetl/worker/pool/heartbeat"))

    assert beat == {"status": "ok", "name": name, "runtime_id": registered["runtime_id"], "runtime": None}
    assert empty_body == beat
    assert await db.fetchval("SELECT status FROM noetl.runtime WHERE name = $1", name) == "ready"


async def test_a_heartbeat_without_name_and_no_configured_pool_changes_nothing(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    before = await db.fetchval("SELECT max(updated_at) FROM noetl.runtime")
    async with gateway(mesh.addresses["execution"]) as http:
        beat = ok(await http.post("/api/worker/pool/heartbeat", json={"name": "  "}))

    assert beat == {"status": "ok", "name": None, "runtime_id": None, "runtime": None}
    assert await db.fetchval("SELECT max(updated_at) FROM noetl.runtime") == before


async def test_without_auto_recreate_a_registration_does_not_bring_a_pool_back(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    name = unique("lost")
    async with gateway(mesh.addresses["execution"], NOETL_WORKER_POOL_AUTO_RECREATE="false") as http:
        response = await http.post(
            "/api/worker/pool/heartbeat",
            json={"name": name, "registration": {"name": name, "runtime": "python"}},
        )

    assert response.status_code == 404
    assert response.json() == {"detail": {"status": "unknown", "name": name}}
    assert response.headers["retry-after"] == "5"
    assert await db.fetchval("SELECT count(*) FROM noetl.runtime WHERE name = $1", name) == 0


async def test_a_listing_the_database_refuses_answers_200_with_the_error(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    async with gateway(mesh.addresses["execution"]) as http:
        await db.execute("ALTER TABLE noetl.runtime RENAME TO runtime_away")
        try:
            response = await http.get("/api/worker/pools", params={"status": "ready"})
        finally:
            await db.execute("ALTER TABLE noetl.runtime_away RENAME TO runtime")
        body = ok(response)
        assert ok(await http.get("/api/worker/pools"))["error"] is None

    assert list(body) == ["items", "count", "runtime", "status", "error"]
    assert (body["items"], body["count"], body["runtime"], body["status"]) == ([], 0, None, "ready")
    assert isinstance(body["error"], str)
    assert body["error"].startswith("worker pool listing failed: ")
    assert "runtime" in body["error"]


async def test_a_listing_without_a_reachable_registry_answers_200_with_the_error() -> None:
    async with gateway(NOWHERE) as http:
        body = ok(await http.get("/api/worker/pools", params={"runtime": "python"}))

    assert (body["items"], body["count"], body["runtime"], body["status"]) == ([], 0, "python", None)
    assert isinstance(body["error"], str) and body["error"]
