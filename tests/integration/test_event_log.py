"""Event log invariants (data-model.md §4.1, §4.3) through the real EventService and Postgres."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import events_pb2

from kernel.ids import MAX_MACHINE_ID, Snowflake
from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh

CONCURRENT_EMITS = 50
TERMINAL_TYPES = ["playbook.completed", "playbook.failed", "execution.cancelled"]


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "event-log")


@pytest.fixture
async def started(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> Started:
    return await start_noop(mesh, db, playbook)


def marker(**fields: Any) -> events_pb2.NewEvent:
    """An event type the engine does not fold, so appending it never changes orchestration."""
    return events_pb2.NewEvent(event_type="test.marker", node_name="workflow", status="RUNNING", **fields)


def worker_event(started: Started, event_type: str, payload: dict[str, Any]) -> events_pb2.EmitRequest:
    return events_pb2.EmitRequest(
        event=events_pb2.WorkerEvent(
            execution_id=started.execution_id,
            step="start",
            event_type=event_type,
            payload_json=orjson.dumps(payload),
            meta_json=orjson.dumps({"command_id": started.command_id}),
            worker_id="worker-a",
            actionable=True,
            informative=True,
        )
    )


async def append(mesh: Mesh, started: Started, *events: events_pb2.NewEvent) -> events_pb2.AppendResponse:
    request = events_pb2.AppendRequest(
        execution_id=started.execution_id, catalog_id=started.catalog_id, events=list(events)
    )
    response: events_pb2.AppendResponse = await mesh.events.Append(request, timeout=10)
    return response


async def count_events(db: asyncpg.Connection, execution_id: int, where: str = "TRUE", *args: Any) -> int:
    sql = f"SELECT count(*) FROM noetl.event WHERE execution_id = $1 AND ({where})"
    return int(await db.fetchval(sql, execution_id, *args))


async def test_an_append_repeated_with_its_idempotency_key_is_stored_once(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    key = f"key-{uuid.uuid4().hex}"
    first = await append(mesh, started, marker(idempotency_key=key))
    second = await append(mesh, started, marker(idempotency_key=key))

    assert list(first.duplicates) == [False]
    assert list(second.duplicates) == [True]
    assert list(second.event_ids) == list(first.event_ids)
    assert await count_events(db, started.execution_id, "idempotency_key = $2", key) == 1


async def test_an_explicit_event_id_appended_twice_is_stored_once(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    event_id = Snowflake(MAX_MACHINE_ID).next_id()
    first = await append(mesh, started, marker(event_id=event_id))
    second = await append(mesh, started, marker(event_id=event_id))

    assert (list(first.event_ids), list(first.duplicates)) == ([event_id], [False])
    assert (list(second.event_ids), list(second.duplicates)) == ([event_id], [True])
    assert await count_events(db, started.execution_id, "event_id = $2", event_id) == 1


async def test_a_repeated_worker_completion_returns_the_first_event(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    request = worker_event(
        started, "command.completed", {"command_id": started.command_id, "status": "success"}
    )
    first = await mesh.events.Emit(request, timeout=20)
    second = await mesh.events.Emit(request, timeout=20)

    assert not first.duplicate
    assert second.duplicate
    assert second.event_id == first.event_id
    assert second.commands_generated == 0
    stored = await count_events(
        db, started.execution_id, "event_type = 'command.completed' AND command_id = $2", started.command_id
    )
    assert stored == 1


async def test_concurrent_emits_form_one_gap_free_chain(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    requests = [
        worker_event(started, "command.heartbeat", {"command_id": started.command_id, "beat": i})
        for i in range(CONCURRENT_EMITS)
    ]
    responses = await asyncio.gather(*(mesh.events.Emit(r, timeout=30) for r in requests))
    assert len({r.event_id for r in responses}) == CONCURRENT_EMITS

    rows = await db.fetch(
        "SELECT event_id, prev_event_id, event_type FROM noetl.event WHERE execution_id = $1 ORDER BY event_id",
        started.execution_id,
    )
    assert sum(1 for r in rows if r["event_type"] == "command.heartbeat") == CONCURRENT_EMITS
    roots = [r for r in rows if r["prev_event_id"] is None]
    assert [r["event_type"] for r in roots] == ["playbook.initialized"]
    assert rows[0]["event_id"] == roots[0]["event_id"]
    for previous, row in itertools.pairwise(rows):
        assert row["event_id"] > previous["event_id"]
        assert row["prev_event_id"] == previous["event_id"], f"chain broken at event {row['event_id']}"


async def test_a_second_terminal_event_is_dropped(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    completed = events_pb2.NewEvent(event_type="playbook.completed", node_name="workflow", status="COMPLETED")
    failed = events_pb2.NewEvent(
        event_type="playbook.failed", node_name="workflow", status="FAILED", error="too late"
    )
    first = await append(mesh, started, completed)
    second = await append(mesh, started, failed)

    assert list(first.duplicates) == [False]
    assert list(second.duplicates) == [True]
    assert list(second.event_ids) == list(first.event_ids)
    terminal = await db.fetch(
        "SELECT event_id, event_type FROM noetl.event WHERE execution_id = $1 AND event_type = ANY($2::text[])",
        started.execution_id,
        TERMINAL_TYPES,
    )
    assert [(r["event_id"], r["event_type"]) for r in terminal] == [
        (first.event_ids[0], "playbook.completed")
    ]


async def test_emit_to_an_unknown_execution_is_not_found(mesh: Mesh) -> None:
    unknown = Started(
        execution_id=Snowflake(MAX_MACHINE_ID).next_id(), catalog_id=0, event_id=0, command_id=1
    )
    failure = await failure_of(mesh.events.Emit(worker_event(unknown, "command.started", {}), timeout=10))
    assert failure.code is grpc.StatusCode.NOT_FOUND
    assert failure.message == f"Execution {unknown.execution_id} not found"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"outer": [{"deep": {"_internal_data": 1}}]}, "payload may not contain '_internal_data'"),
        ({"result": {"status": "ok", "surprise": 1}}, "payload.result must be an object"),
        ({"result": "not an object"}, "payload.result must be an object"),
    ],
    ids=["internal-data", "unknown-result-key", "result-not-object"],
)
async def test_invalid_worker_payloads_are_unprocessable_and_not_stored(
    mesh: Mesh, db: asyncpg.Connection, started: Started, payload: dict[str, Any], message: str
) -> None:
    before = await count_events(db, started.execution_id)
    failure = await failure_of(mesh.events.Emit(worker_event(started, "call.done", payload), timeout=10))

    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.kind == "Unprocessable"
    assert failure.message.startswith(message), failure.message
    assert await count_events(db, started.execution_id) == before
