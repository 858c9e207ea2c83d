"""EventService.AppendMany: independent appends in one call, each answered as its own `Append`
would be, and the execution service's concurrent appends coalesced into it
(services/execution/clients.py, kernel/coalescing.py). The real events and execution services
over real gRPC, and Postgres.
"""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import events_pb2, execution_pb2
from prometheus_client import REGISTRY

from kernel.ids import MAX_MACHINE_ID, Snowflake
from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh

CONCURRENT_STARTS = 20


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "append-many")


@pytest.fixture
async def started(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> Started:
    return await start_noop(mesh, db, playbook)


def marker(execution_id: int, catalog_id: int, label: str) -> events_pb2.AppendRequest:
    """An event type the engine does not fold: appending it never changes orchestration."""
    event = events_pb2.NewEvent(
        event_type="test.marker",
        node_name="workflow",
        status="RUNNING",
        meta_json=orjson.dumps({"label": label}),
    )
    return events_pb2.AppendRequest(execution_id=execution_id, catalog_id=catalog_id, events=[event])


def append_many_calls() -> float:
    labels = {"service": "EventService", "method": "AppendMany", "code": "OK"}
    return REGISTRY.get_sample_value("noetl_grpc_server_requests_total", labels) or 0.0


async def test_each_append_gets_its_own_outcome(mesh: Mesh, db: asyncpg.Connection, started: Started) -> None:
    unknown = Snowflake(MAX_MACHINE_ID).next_id()
    first = marker(started.execution_id, started.catalog_id, "first")
    # No catalog id for an execution that has no events: what a lone Append refuses.
    stray = marker(unknown, 0, "stray")
    second = marker(started.execution_id, started.catalog_id, "second")
    alone = await failure_of(mesh.events.Append(stray, timeout=10))

    response = await mesh.events.AppendMany(
        events_pb2.AppendManyRequest(appends=[first, stray, second]), timeout=20
    )

    stored_first, refused, stored_second = response.results
    assert not stored_first.HasField("error") and not stored_second.HasField("error")
    assert (refused.error.code, refused.error.kind, refused.error.message) == (
        alone.code.value[0],
        alone.kind,
        alone.message,
    )
    assert alone.code is grpc.StatusCode.NOT_FOUND
    assert not refused.HasField("appended")
    # Both good appends are in the log, chained one after the other; the stray one nowhere.
    (one,), (two,) = stored_first.appended.stored, stored_second.appended.stored
    rows = await db.fetch(
        "SELECT event_id, prev_event_id, meta->>'label' AS label FROM noetl.event "
        "WHERE execution_id = $1 AND event_type = 'test.marker' ORDER BY event_id",
        started.execution_id,
    )
    assert [(row["event_id"], row["label"]) for row in rows] == [
        (one.event_id, "first"),
        (two.event_id, "second"),
    ]
    assert rows[1]["prev_event_id"] == one.event_id
    assert await db.fetchval("SELECT count(*) FROM noetl.event WHERE execution_id = $1", unknown) == 0


async def test_the_execution_service_shares_calls_between_concurrent_appends(
    mesh: Mesh, db: asyncpg.Connection, playbook: str
) -> None:
    before = append_many_calls()
    responses = await asyncio.gather(
        *(
            mesh.execution.Start(execution_pb2.StartRequest(path=playbook), timeout=30)
            for _ in range(CONCURRENT_STARTS)
        )
    )
    calls = append_many_calls() - before
    # Each start appends its root and its first command at least: fewer calls than starts.
    assert 1 <= calls < CONCURRENT_STARTS
    roots = await db.fetchval(
        "SELECT count(*) FROM noetl.event WHERE execution_id = ANY($1::bigint[]) "
        "AND event_type = 'playbook.initialized'",
        [response.execution_id for response in responses],
    )
    assert roots == CONCURRENT_STARTS
