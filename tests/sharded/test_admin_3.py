"""The database utilities on a three-shard mesh: `/api/pool/status` sums every shard's pool (and is
"unavailable" while any shard cannot be asked), `/api/postgres/execute` runs on the shard it names
and refuses to guess one for SQL on the mesh's own databases (docs/sharding.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from gateway_http.settings import GatewaySettings
from kernel.sharding import shard_for
from tests.contract.support import expect
from tests.helpers.gateway import in_process_gateway
from tests.helpers.infra import database_of
from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, execute, register
from tests.helpers.nowhere import NOWHERE, NOWHERE_ENV
from tests.sharded.conftest import SHARDS
from tests.sharded.test_spread import CHAIN

pytestmark = pytest.mark.e2e

EXECUTE = "/api/postgres/execute"
# Each execution service's pool (services/execution: min 1, max 20).
POOL_MIN, POOL_MAX = 1, 20


def answer_of(response: httpx.Response, status: int) -> Any:
    """The JSON body of a response with `status` (anything else fails, showing the body)."""
    expect(response, status)
    return response.json()


@asynccontextmanager
async def gateway_over(
    process_mesh: ProcessMesh, execution_addrs: list[str]
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway app in this process whose execution shards are `execution_addrs`."""
    env = {
        **NOWHERE_ENV,
        "NOETL_EXECUTION_ADDRS": ",".join(execution_addrs),
        "NOETL_GATEWAY_RPC_TIMEOUT": "5",
        **process_mesh.mesh_env("gateway"),
    }
    settings = GatewaySettings.load(env)
    async with in_process_gateway(settings, http_timeout=30.0) as client:
        yield client


async def test_pool_status_sums_every_shards_pool(gateway: httpx.AsyncClient) -> None:
    body = answer_of(await gateway.get("/api/pool/status"), 200)
    assert list(body) == [
        "pool_min",
        "pool_max",
        "pool_size",
        "pool_available",
        "requests_waiting",
        "utilization",
        "slots_available",
        "status",
    ]
    assert (body["pool_min"], body["pool_max"], body["status"]) == (
        SHARDS * POOL_MIN,
        SHARDS * POOL_MAX,
        "ok",
    )
    # Every shard's pool holds at least its minimum: the sum spans all of them.
    assert body["pool_size"] >= SHARDS * POOL_MIN
    in_use = body["pool_size"] - body["pool_available"]
    assert body["slots_available"] == SHARDS * POOL_MAX - in_use
    assert body["utilization"] == round(in_use / (SHARDS * POOL_MAX), 2)


async def test_pool_status_is_unavailable_while_a_shard_cannot_be_asked(process_mesh: ProcessMesh) -> None:
    addrs = list(process_mesh.info.execution_addrs)
    async with gateway_over(process_mesh, addrs) as http:
        assert answer_of(await http.get("/api/pool/status"), 200)["pool_max"] == SHARDS * POOL_MAX
    async with gateway_over(process_mesh, [*addrs[:-1], NOWHERE]) as http:
        body = answer_of(await http.get("/api/pool/status"), 200)
    assert body == {
        "pool_min": 0,
        "pool_max": 0,
        "pool_size": 0,
        "pool_available": 0,
        "requests_waiting": 0,
        "utilization": 0.0,
        "slots_available": 0,
        "status": "unavailable",
    }


async def test_postgres_execute_runs_on_the_shard_it_names(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    for shard, dsn in enumerate(process_mesh.shard_dsns):
        body = {"query": "SELECT current_database() AS db", "shard": shard}
        answer = answer_of(await gateway.post(EXECUTE, json=body), 200)
        assert answer == {"status": "ok", "result": [{"db": database_of(dsn)}], "error": None}

    # A run's rows are read on its owner's database, and only there.
    await register(gateway, CHAIN)
    execution_id = int(await execute(gateway, "tests/sharded/spread_chain"))
    await finish(gateway, process_mesh.pg_dsn, str(execution_id))
    query = "SELECT count(*) AS n FROM noetl.execution WHERE execution_id = $1"
    counts = []
    for shard in range(SHARDS):
        body = {"query": query, "parameters": [execution_id], "shard": shard}
        counts.append(answer_of(await gateway.post(EXECUTE, json=body), 200)["result"][0]["n"])
    owner = shard_for(execution_id, SHARDS)
    assert counts == [1 if shard == owner else 0 for shard in range(SHARDS)]


async def test_postgres_execute_without_a_shard_is_refused_on_the_meshs_databases(
    gateway: httpx.AsyncClient,
) -> None:
    for body in ({"query": "SELECT 1 AS x"}, {"query": "SELECT 1 AS x", "database": "postgres"}):
        refused = answer_of(await gateway.post(EXECUTE, json=body), 400)
        assert "'shard' (0..2)" in refused["detail"], refused


async def test_postgres_execute_on_an_outside_target_needs_no_shard(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    body = {"query": "SELECT current_database() AS db", "connection_string": process_mesh.pg_dsn}
    answer = answer_of(await gateway.post(EXECUTE, json=body), 200)
    assert answer["result"] == [{"db": database_of(process_mesh.pg_dsn)}]


@pytest.mark.parametrize("shard", [SHARDS, -1, "one"])
async def test_postgres_execute_names_an_existing_shard(gateway: httpx.AsyncClient, shard: object) -> None:
    response = await gateway.post(EXECUTE, json={"query": "SELECT 1 AS x", "shard": shard})
    (problem,) = answer_of(response, 422)["detail"]
    assert problem["loc"] == ["body", "shard"]
