"""Worker event batches (http-api.md §5.2), event results (§5.3) through the real EventService and Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import catalog_pb2, events_pb2, events_pb2_grpc, execution_pb2

from kernel.grpc_server import GrpcHost
from kernel.ids import MAX_MACHINE_ID, Snowflake
from kernel.mesh_guard import ServerAuth
from services.events.__main__ import assemble as assemble_events
from services.events.settings import Settings as EventsSettings
from tests.helpers.playbooks import Started, noop_chain, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh, basics
from tests.helpers.waiting import wait_for

NOWHERE = "127.0.0.1:9"
CONCURRENT_REPLAYS = 10
_ids = Snowflake(MAX_MACHINE_ID - 1)


@pytest.fixture(scope="module")
async def one_step(mesh: Mesh) -> str:
    return await register_noop(mesh, "event-batch")


@pytest.fixture(scope="module")
async def two_steps(mesh: Mesh) -> str:
    path = f"tests/event-batch/{uuid.uuid4().hex[:10]}"
    content = noop_chain(path, ("start", "end"))
    await mesh.catalog.Register(catalog_pb2.RegisterRequest(content=content), timeout=10)
    return path


@pytest.fixture(scope="module")
async def orphan_events(mesh: Mesh) -> AsyncIterator[events_pb2_grpc.EventServiceStub]:
    """A second event service on the same database whose execution service cannot be reached."""
    settings = EventsSettings(
        basics=basics(mesh.dsn),
        bus=mesh.bus,
        outbox_addr=mesh.addresses["outbox"],
    )
    async with assemble_events(settings) as registrars:
        host = GrpcHost("events-orphan", "127.0.0.1:0", registrars, auth=ServerAuth.off(), grace=2.0)
        port = await host.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield events_pb2_grpc.EventServiceStub(channel)
        finally:
            await host.stop()


def item(
    step: str, event_type: str, payload: dict[str, Any], command_id: int | None = None
) -> events_pb2.WorkerEvent:
    meta = {} if command_id is None else {"command_id": command_id}
    return events_pb2.WorkerEvent(
        step=step,
        event_type=event_type,
        payload_json=orjson.dumps(payload),
        meta_json=orjson.dumps(meta),
        worker_id="batch-worker",
        informative=True,
    )


def completion(started: Started, step: str = "start") -> list[events_pb2.WorkerEvent]:
    """What a worker reports for a command that succeeded, in the reference worker's order."""
    envelope = {"status": "success", "context": {"data": {"x": 1}, "status": "success"}}
    cid = started.command_id
    return [
        item(step, "command.started", {"command_id": cid}, cid),
        item(step, "call.done", {"command_id": cid, "call_index": 0, "result": envelope}, cid),
        item(step, "step.exit", {"command_id": cid, "status": "COMPLETED", "result": envelope}, cid),
        item(step, "command.completed", {"command_id": cid, "status": "success"}, cid),
    ]


def batch(
    execution_id: int, events: list[events_pb2.WorkerEvent], key: str | None = None, **fields: Any
) -> events_pb2.EmitBatchRequest:
    request = events_pb2.EmitBatchRequest(execution_id=execution_id, events=events, **fields)
    if key is not None:
        request.idempotency_key = key
    return request


async def emit(
    stub: events_pb2_grpc.EventServiceStub, request: events_pb2.EmitBatchRequest
) -> events_pb2.EmitBatchResponse:
    response: events_pb2.EmitBatchResponse = await stub.EmitBatch(request, timeout=30)
    return response


async def new_log(mesh: Mesh, result: dict[str, Any] | None = None) -> int:
    """An execution log of one marker event that no orchestrator knows (so nothing else writes to it)."""
    execution_id = _ids.next_id()
    marker = events_pb2.NewEvent(event_type="test.marker", node_name="workflow", status="RUNNING")
    if result is not None:
        marker.result_json = orjson.dumps(result)
    await mesh.events.Append(
        events_pb2.AppendRequest(execution_id=execution_id, catalog_id=1, events=[marker]), timeout=10
    )
    return execution_id


async def count_events(db: asyncpg.Connection, execution_id: int) -> int:
    return int(await db.fetchval("SELECT count(*) FROM noetl.event WHERE execution_id = $1", execution_id))


async def batch_rows(db: asyncpg.Connection, execution_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT request_id, idempotency_key, event_ids, state, commands_generated, error "
        "FROM noetl.event_batch WHERE execution_id = $1 ORDER BY request_id",
        execution_id,
    )


async def test_a_batch_is_stored_in_one_chain_with_its_record(
    mesh: Mesh, db: asyncpg.Connection, one_step: str
) -> None:
    started = await start_noop(mesh, db, one_step)
    head = await db.fetchval(
        "SELECT max(event_id) FROM noetl.event WHERE execution_id = $1", started.execution_id
    )
    sent = completion(started)[:3]
    response = await emit(mesh.events, batch(started.execution_id, sent, key="k-stored"))

    assert not response.duplicate
    assert response.commands_generated == 0
    rows = await db.fetch(
        "SELECT event_id, prev_event_id, event_type, meta FROM noetl.event "
        "WHERE execution_id = $1 AND event_id > $2 ORDER BY event_id",
        started.execution_id,
        head,
    )
    assert [r["event_id"] for r in rows] == list(response.event_ids)
    assert [r["event_type"] for r in rows] == ["command.started", "call.done", "step.exit"]
    assert [r["prev_event_id"] for r in rows] == [head, *list(response.event_ids)[:-1]]
    meta = orjson.loads(rows[0]["meta"])
    assert (meta["idempotency_key"], meta["actionable"], meta["persisted_event_id"]) == (
        "k-stored",
        False,
        rows[0]["event_id"],
    )
    [record] = await batch_rows(db, started.execution_id)
    assert record["request_id"] == response.request_id
    assert list(record["event_ids"]) == list(response.event_ids)
    assert (record["state"], record["commands_generated"], record["error"]) == ("completed", 0, None)


async def test_a_batch_with_an_invalid_item_stores_nothing(mesh: Mesh, db: asyncpg.Connection) -> None:
    execution_id = await new_log(mesh)
    events = [
        item("start", "call.done", {"ok": 1}),
        item("start", "call.done", {"deep": [{"_internal_data": 1}]}),
    ]
    failure = await failure_of(emit(mesh.events, batch(execution_id, events, key="k-invalid")))

    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.kind == "Unprocessable"
    assert failure.message == "events[1]: payload may not contain '_internal_data'"
    assert await count_events(db, execution_id) == 1
    assert await batch_rows(db, execution_id) == []


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (
            [item("s", "call.done", {}) for _ in range(257)],
            "events: 257 events in one batch, the limit is 256",
        ),
        (
            [item("s", "call.done", {"blob": "x" * (2 * 1024 * 1024)})],
            "events[].payload: 2097163 bytes in one batch, the limit is 2097152",
        ),
        ([], "events must not be empty"),
    ],
    ids=["too-many-events", "payloads-too-large", "no-events"],
)
async def test_a_batch_over_the_limits_is_unprocessable_and_stores_nothing(
    mesh: Mesh, db: asyncpg.Connection, events: list[events_pb2.WorkerEvent], message: str
) -> None:
    execution_id = await new_log(mesh)
    failure = await failure_of(emit(mesh.events, batch(execution_id, events)))

    assert (failure.code, failure.kind, failure.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unprocessable",
        message,
    )
    assert await count_events(db, execution_id) == 1


async def test_a_replay_with_the_same_key_stores_nothing_and_answers_the_same_ids(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    execution_id = await new_log(mesh)
    first = await emit(
        mesh.events, batch(execution_id, [item("a", "call.done", {"n": 1, "k": 2})] * 2, key="k-replay")
    )
    stored = await count_events(db, execution_id)
    # The same events, their JSON keys in another order.
    again = [item("a", "call.done", {"k": 2, "n": 1})] * 2
    replay = await emit(mesh.events, batch(execution_id, again, key="k-replay"))

    assert (replay.duplicate, replay.request_id, list(replay.event_ids)) == (
        True,
        first.request_id,
        list(first.event_ids),
    )
    assert replay.commands_generated == 0
    assert await count_events(db, execution_id) == stored == 3
    assert len(await batch_rows(db, execution_id)) == 1


async def test_a_replay_of_a_key_with_other_events_is_a_conflict_naming_the_key(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    execution_id = await new_log(mesh)
    await emit(mesh.events, batch(execution_id, [item("a", "call.done", {"n": 1})], key="k-reused"))
    failure = await failure_of(
        emit(mesh.events, batch(execution_id, [item("a", "call.done", {"n": 2})], key="k-reused"))
    )

    assert (failure.code, failure.message) == (
        grpc.StatusCode.ABORTED,
        f"Idempotency-Key 'k-reused' was already used in execution {execution_id} for a different "
        "batch of events; use a new key for new events",
    )
    assert await count_events(db, execution_id) == 2
    assert len(await batch_rows(db, execution_id)) == 1


async def test_the_same_key_on_another_execution_is_another_batch(mesh: Mesh, db: asyncpg.Connection) -> None:
    one, other = await new_log(mesh), await new_log(mesh)
    first = await emit(mesh.events, batch(one, [item("a", "call.done", {})], key="k-shared"))
    second = await emit(mesh.events, batch(other, [item("a", "call.done", {})], key="k-shared"))

    assert not second.duplicate
    assert second.request_id != first.request_id
    assert await count_events(db, other) == 2


async def test_concurrent_replays_of_one_key_store_once(mesh: Mesh, db: asyncpg.Connection) -> None:
    execution_id = await new_log(mesh)
    request = batch(execution_id, [item("a", "call.done", {"n": i}) for i in range(3)], key="k-race")
    responses = await asyncio.gather(*(emit(mesh.events, request) for _ in range(CONCURRENT_REPLAYS)))

    assert sorted(r.duplicate for r in responses) == [False] + [True] * (CONCURRENT_REPLAYS - 1)
    assert len({(r.request_id, tuple(r.event_ids)) for r in responses}) == 1
    assert await count_events(db, execution_id) == 1 + 3
    assert len(await batch_rows(db, execution_id)) == 1


async def test_batches_without_a_key_are_recorded_each(mesh: Mesh, db: asyncpg.Connection) -> None:
    execution_id = await new_log(mesh)
    first = await emit(mesh.events, batch(execution_id, [item("a", "ctx.note", {})]))
    second = await emit(mesh.events, batch(execution_id, [item("a", "ctx.note", {})]))

    assert not first.duplicate and not second.duplicate
    assert [r["request_id"] for r in await batch_rows(db, execution_id)] == [
        first.request_id,
        second.request_id,
    ]


async def test_a_command_completed_in_a_batch_issues_the_next_command(
    mesh: Mesh, db: asyncpg.Connection, two_steps: str
) -> None:
    started = await start_noop(mesh, db, two_steps)
    response = await emit(mesh.events, batch(started.execution_id, completion(started), key="k-next"))

    # The answer does not wait for orchestration: the owning shard reacts from the event stream.
    assert response.commands_generated == 0

    async def commands() -> list[tuple[str, str]] | None:
        rows = await db.fetch(
            "SELECT step_name, status FROM noetl.command WHERE execution_id = $1 ORDER BY command_id",
            started.execution_id,
        )
        found = [(r["step_name"], r["status"]) for r in rows]
        return found if len(found) == 2 else None

    assert await wait_for(commands, what="the next command") == [("start", "COMPLETED"), ("end", "PENDING")]
    [record] = await batch_rows(db, started.execution_id)
    assert record["state"] == "completed"

    replay = await emit(mesh.events, batch(started.execution_id, completion(started), key="k-next"))
    assert (replay.duplicate, replay.commands_generated) == (True, 0)
    assert (
        await db.fetchval("SELECT count(*) FROM noetl.command WHERE execution_id = $1", started.execution_id)
        == 2
    )


async def test_a_command_failed_in_a_batch_fails_the_run(
    mesh: Mesh, db: asyncpg.Connection, two_steps: str
) -> None:
    started = await start_noop(mesh, db, two_steps)
    cid = started.command_id
    failed = [
        item("start", "call.error", {"command_id": cid, "call_index": 0, "error": "boom"}, cid),
        item("start", "command.failed", {"command_id": cid, "error": "boom"}, cid),
    ]
    await emit(mesh.events, batch(started.execution_id, failed))

    async def terminal() -> str | None:
        found: str | None = await db.fetchval(
            "SELECT event_type FROM noetl.event WHERE execution_id = $1 AND event_type = 'playbook.failed'",
            started.execution_id,
        )
        return found

    assert await wait_for(terminal, what="the run to fail") == "playbook.failed"
    status = await mesh.execution.Status(
        execution_pb2.StatusRequest(execution_id=started.execution_id), timeout=10
    )
    assert status.failed


async def test_a_batch_for_an_execution_without_events_is_not_found(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    execution_id = _ids.next_id()
    failure = await failure_of(emit(mesh.events, batch(execution_id, [item("a", "call.done", {})])))

    assert (failure.code, failure.message) == (
        grpc.StatusCode.NOT_FOUND,
        f"Execution {execution_id} not found",
    )
    assert await count_events(db, execution_id) == 0


async def test_a_catalog_id_lets_a_batch_start_a_log(mesh: Mesh, db: asyncpg.Connection) -> None:
    execution_id = _ids.next_id()
    response = await emit(mesh.events, batch(execution_id, [item("a", "call.done", {})], catalog_id=7))

    row = await db.fetchrow(
        "SELECT event_id, catalog_id, prev_event_id FROM noetl.event WHERE execution_id = $1", execution_id
    )
    assert row is not None
    assert (row["event_id"], row["catalog_id"], row["prev_event_id"]) == (response.event_ids[0], 7, None)


async def test_a_lost_database_connection_is_db_unavailable_and_stores_nothing(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    execution_id = await new_log(mesh)
    # Hold the execution's lock so the batch's transaction waits for it, then end that session.
    await db.execute("SELECT pg_advisory_lock($1)", execution_id)
    try:
        pending = asyncio.ensure_future(
            failure_of(emit(mesh.events, batch(execution_id, [item("a", "call.done", {})], key="k-lost")))
        )

        async def waiting_pid() -> int | None:
            pid: int | None = await db.fetchval(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1",
                execution_id & 0xFFFFFFFF,
            )
            return pid

        pid = await wait_for(waiting_pid, what="the batch to wait for the execution lock")
        await db.execute("SELECT pg_terminate_backend($1)", pid)
        failure = await pending
    finally:
        await db.execute("SELECT pg_advisory_unlock($1)", execution_id)

    assert failure.code is grpc.StatusCode.UNAVAILABLE
    assert failure.detail == {
        "code": "db_unavailable",
        "message": "Database temporarily unavailable during events/batch; retry shortly",
    }
    assert failure.retry_after == "2"
    assert await count_events(db, execution_id) == 1
    assert await batch_rows(db, execution_id) == []
    # The service recovers: the retry with the same key is stored as a new batch.
    retried = await emit(mesh.events, batch(execution_id, [item("a", "call.done", {})], key="k-lost"))
    assert not retried.duplicate


async def test_ingest_does_not_depend_on_the_execution_service(
    mesh: Mesh, db: asyncpg.Connection, orphan_events: events_pb2_grpc.EventServiceStub, one_step: str
) -> None:
    """An event service that cannot reach any execution service still stores and records batches:
    the step pipeline runs one way, and the owner catches up from the stream."""
    started = await start_noop(mesh, db, one_step)
    request = batch(started.execution_id, completion(started), key="k-orphan")
    response = await emit(orphan_events, request)

    [record] = await batch_rows(db, started.execution_id)
    assert record["state"] == "completed"
    assert list(record["event_ids"]) == list(response.event_ids)
    assert len(record["event_ids"]) == 4
    replay = await emit(orphan_events, request)
    assert (replay.duplicate, list(replay.event_ids)) == (True, list(record["event_ids"]))


async def test_get_batch_answers_the_record(mesh: Mesh) -> None:
    execution_id = await new_log(mesh)
    sent = await emit(mesh.events, batch(execution_id, [item("a", "call.done", {})], key="k-get"))
    found = (
        await mesh.events.GetBatch(events_pb2.GetBatchRequest(request_id=sent.request_id), timeout=10)
    ).batch

    assert (found.request_id, found.execution_id, found.idempotency_key) == (
        sent.request_id,
        execution_id,
        "k-get",
    )
    assert list(found.event_ids) == list(sent.event_ids)
    assert (found.state, found.commands_generated, found.HasField("error")) == ("completed", 0, False)
    assert found.updated_at.ToDatetime() >= found.created_at.ToDatetime()


async def test_get_batch_of_an_unknown_request_is_not_found(mesh: Mesh) -> None:
    request_id = _ids.next_id()
    failure = await failure_of(
        mesh.events.GetBatch(events_pb2.GetBatchRequest(request_id=request_id), timeout=10)
    )
    assert (failure.code, failure.message) == (
        grpc.StatusCode.NOT_FOUND,
        f"Batch request {request_id} not found",
    )


async def test_an_event_result_is_answered_as_stored(mesh: Mesh, db: asyncpg.Connection) -> None:
    """The service answers stored data; only the gateway's display filter may hide parts of it."""
    result = {"status": "COMPLETED", "context": {"password_policy": "min 12", "rows": [1, 2]}}
    execution_id = await new_log(mesh, result=result)
    event_id = await db.fetchval("SELECT event_id FROM noetl.event WHERE execution_id = $1", execution_id)
    found = await mesh.events.GetEventResult(events_pb2.GetEventResultRequest(event_id=event_id), timeout=10)

    assert orjson.loads(found.result_json) == result


async def test_an_event_without_a_result_answers_empty(mesh: Mesh, db: asyncpg.Connection) -> None:
    execution_id = await new_log(mesh)
    event_id = await db.fetchval("SELECT event_id FROM noetl.event WHERE execution_id = $1", execution_id)
    found = await mesh.events.GetEventResult(events_pb2.GetEventResultRequest(event_id=event_id), timeout=10)
    assert found.result_json == b""


async def test_the_result_of_an_unknown_event_is_not_found(mesh: Mesh) -> None:
    event_id = _ids.next_id()
    failure = await failure_of(
        mesh.events.GetEventResult(events_pb2.GetEventResultRequest(event_id=event_id), timeout=10)
    )
    assert (failure.code, failure.message) == (grpc.StatusCode.NOT_FOUND, f"Event {event_id} not found")
