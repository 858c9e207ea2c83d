"""Placement on a three-shard mesh: new runs spread over every shard, each run's rows live only in
its owner's database, and the cluster-wide routes merge what the shards hold."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from kernel.sharding import shard_for
from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, database, execute, register
from tests.sharded.conftest import INTERNAL_TOKEN, SHARDS

pytestmark = pytest.mark.e2e

CHAIN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: spread_chain, path: tests/sharded/spread_chain}
workload: {n: 1}
workflow:
  - step: start
    tool: {kind: python, code: 'result = {"n": n + 1}', input: {n: '{{ workload.n }}'}}
    next: [{step: twice}]
  - step: twice
    tool: {kind: python, code: 'result = {"n": n * 2}', input: {n: '{{ start.n }}'}}
"""

# Every table that holds one execution's rows, with its execution id column.
PER_EXECUTION_TABLES = ("event", "execution", "command", "outbox")


async def _execution_ids(dsn: str, table: str) -> set[int]:
    async with database(dsn) as conn:
        rows = await conn.fetch(f"SELECT DISTINCT execution_id FROM noetl.{table}")
    return {int(row[0]) for row in rows}


async def test_runs_spread_over_every_shard_and_each_database_holds_exactly_its_own(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, CHAIN)
    started = [int(await execute(gateway, "tests/sharded/spread_chain", {"n": i})) for i in range(12)]
    runs = await asyncio.gather(*(finish(gateway, process_mesh.pg_dsn, str(i)) for i in started))
    assert all(run.status == "COMPLETED" for run in runs)

    placed = Counter(shard_for(execution_id, SHARDS) for execution_id in started)
    # Dealt in turn: an even spread, whatever else the session started before.
    assert sorted(placed.values()) == [4, 4, 4], placed

    for shard, dsn in enumerate(process_mesh.shard_dsns):
        for table in PER_EXECUTION_TABLES:
            held = await _execution_ids(dsn, table)
            assert all(shard_for(i, SHARDS) == shard for i in held), (shard, table)
            mine = {i for i in started if shard_for(i, SHARDS) == shard}
            assert mine <= held, (shard, table, mine - held)
    # The cluster database holds the catalog and the registries, and no run at all.
    for table in PER_EXECUTION_TABLES:
        assert await _execution_ids(process_mesh.pg_dsn, table) == set(), table


async def test_cluster_wide_routes_merge_the_shards(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, CHAIN)
    started = {await execute(gateway, "tests/sharded/spread_chain") for _ in range(SHARDS)}
    await asyncio.gather(*(finish(gateway, process_mesh.pg_dsn, i) for i in started))

    listed = (await gateway.get("/api/executions", params={"page_size": 200})).json()
    assert started <= {entry["execution_id"] for entry in listed}
    first = (await gateway.get("/api/executions", params={"page_size": 2, "page": 1})).json()
    second = (await gateway.get("/api/executions", params={"page_size": 2, "page": 2})).json()
    assert [e["execution_id"] for e in first + second] == [e["execution_id"] for e in listed[:4]]

    internal = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    pending = await gateway.get("/api/internal/outbox/pending-count", headers=internal)
    assert pending.status_code == 200 and pending.json()["pending"] >= 0
    dead = await gateway.get("/api/internal/outbox/dead", headers=internal)
    assert dead.status_code == 200 and dead.json()["dead"] == 0
    pools = (await gateway.get("/api/worker/pools")).json()
    assert pools["items"], pools  # the worker registered once, in the cluster database

    batch = (
        await gateway.post(
            "/api/execute/batch",
            json={
                "executions": [{"path": "tests/sharded/spread_chain", "payload": {"n": i}} for i in range(6)]
            },
        )
    ).json()
    assert batch["started"] == 6
    batch_ids = [int(item["execution_id"]) for item in batch["results"]]
    assert [item["index"] for item in batch["results"]] == list(range(6))
    assert {shard_for(i, SHARDS) for i in batch_ids} == set(range(SHARDS))
    finished = await asyncio.gather(*(finish(gateway, process_mesh.pg_dsn, str(i)) for i in batch_ids))
    assert all(run.status == "COMPLETED" for run in finished)
