"""EventService.EmitMany: independent worker events in one call (what the gateway coalesces
concurrent `POST /api/events` into), through the real events and execution services and Postgres.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import catalog_pb2, events_pb2, execution_pb2
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from kernel.ids import MAX_MACHINE_ID, Snowflake
from tests.helpers.playbooks import Started, noop_chain, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh
from tests.helpers.waiting import wait_for

# Fake command ids for call.done events that must never collapse with real ones.
FAKE_COMMAND = 7 << 60


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "emit-many")


@pytest.fixture
async def started(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> Started:
    return await start_noop(mesh, db, playbook)


def worker_event(
    execution_id: int, event_type: str, payload: dict[str, Any], *, command_id: int, step: str = "start"
) -> events_pb2.WorkerEvent:
    return events_pb2.WorkerEvent(
        execution_id=execution_id,
        step=step,
        event_type=event_type,
        payload_json=orjson.dumps(payload),
        meta_json=orjson.dumps({"command_id": command_id}),
        worker_id="worker-many",
        actionable=True,
        informative=True,
    )


async def emit_many(mesh: Mesh, *events: events_pb2.WorkerEvent) -> list[events_pb2.EmitItemResult]:
    response = await mesh.events.EmitMany(events_pb2.EmitManyRequest(events=list(events)), timeout=30)
    assert len(response.results) == len(events)
    return list(response.results)


async def count_events(db: asyncpg.Connection, execution_id: int) -> int:
    return int(await db.fetchval("SELECT count(*) FROM noetl.event WHERE execution_id = $1", execution_id))


async def test_each_event_gets_its_own_outcome_and_only_good_ones_are_stored(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    execution = started.execution_id
    done = worker_event(
        execution, "call.done", {"command_id": started.command_id}, command_id=started.command_id
    )
    first = await mesh.events.Emit(events_pb2.EmitRequest(event=done), timeout=20)
    unknown_execution = Snowflake(MAX_MACHINE_ID).next_id()
    before = await count_events(db, execution)

    heartbeat = worker_event(execution, "command.heartbeat", {}, command_id=started.command_id)
    unknown = worker_event(unknown_execution, "call.done", {}, command_id=1)
    bad = worker_event(execution, "call.done", {"deep": [{"_internal_data": 1}]}, command_id=FAKE_COMMAND)
    other = worker_event(execution, "call.done", {"n": 2}, command_id=FAKE_COMMAND + 1)
    results = await emit_many(mesh, heartbeat, unknown, bad, done, other)

    stored_heartbeat, not_found, unprocessable, duplicate, stored_other = results
    assert not stored_heartbeat.HasField("error") and not stored_heartbeat.duplicate
    assert not stored_other.HasField("error") and not stored_other.duplicate
    assert (duplicate.event_id, duplicate.duplicate, duplicate.HasField("error")) == (
        first.event_id,
        True,
        False,
    )
    assert (not_found.error.code, not_found.error.kind) == (grpc.StatusCode.NOT_FOUND.value[0], "NotFound")
    assert not_found.error.message == f"Execution {unknown_execution} not found"
    assert (unprocessable.error.code, unprocessable.error.kind) == (
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        "Unprocessable",
    )
    assert unprocessable.error.message == "payload may not contain '_internal_data'"
    assert orjson.loads(unprocessable.error.detail_json) == unprocessable.error.message
    assert not_found.event_id == unprocessable.event_id == 0

    # Exactly the two good events are new; the unknown execution got nothing.
    assert await count_events(db, execution) == before + 2
    assert await count_events(db, unknown_execution) == 0
    kinds = await db.fetch(
        "SELECT event_id, event_type FROM noetl.event WHERE execution_id = $1 AND event_id = ANY($2::bigint[])",
        execution,
        [stored_heartbeat.event_id, stored_other.event_id],
    )
    assert sorted(row["event_type"] for row in kinds) == ["call.done", "command.heartbeat"]
    # The heartbeat reached the execution shard through its event feed: projected onto the command row.
    projected = await db.fetchrow(
        "SELECT heartbeat_at IS NOT NULL AS beat, latest_event_id FROM noetl.command "
        "WHERE execution_id = $1 AND command_id = $2",
        execution,
        started.command_id,
    )
    assert projected is not None
    assert (projected["beat"], projected["latest_event_id"]) == (True, stored_heartbeat.event_id)


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("call.done", {"result": {"status": "ok", "surprise": 1}}),
        ("command.started", {"_internal_data": True}),
    ],
    ids=["result-keys", "internal-data"],
)
async def test_an_item_error_is_the_error_emit_gives_the_same_event(
    mesh: Mesh, started: Started, event_type: str, payload: dict[str, Any]
) -> None:
    event = worker_event(started.execution_id, event_type, payload, command_id=started.command_id)
    alone = await failure_of(mesh.events.Emit(events_pb2.EmitRequest(event=event), timeout=10))
    (item,) = await emit_many(mesh, event)

    assert grpc.StatusCode.INVALID_ARGUMENT.value[0] == item.error.code
    assert alone.code is grpc.StatusCode.INVALID_ARGUMENT
    assert (item.error.message, item.error.kind) == (alone.message, alone.kind)
    assert orjson.loads(item.error.detail_json) == alone.detail
    assert not item.error.HasField("retry_after")


async def test_a_command_reported_in_one_call_advances_the_run_once(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    path = f"tests/emit-many/{uuid.uuid4().hex[:10]}"
    await mesh.catalog.Register(
        catalog_pb2.RegisterRequest(content=noop_chain(path, ("start", "end"))), timeout=10
    )
    start = await mesh.execution.Start(execution_pb2.StartRequest(path=path), timeout=20)
    execution = start.execution_id
    command_id = int(
        await db.fetchval(
            "SELECT command_id FROM noetl.command WHERE execution_id = $1 AND step_name = 'start'", execution
        )
    )
    envelope = {"status": "success", "context": {"data": {}, "status": "success"}}
    results = await emit_many(
        mesh,
        worker_event(execution, "command.started", {"command_id": command_id}, command_id=command_id),
        worker_event(execution, "call.done", {"call_index": 0, "result": envelope}, command_id=command_id),
        worker_event(
            execution, "step.exit", {"status": "COMPLETED", "result": envelope}, command_id=command_id
        ),
        worker_event(execution, "command.completed", {"status": "success"}, command_id=command_id),
    )

    assert [r.HasField("error") for r in results] == [False] * 4
    # Ingest answers before orchestration, which follows from the event stream.
    assert [r.commands_generated for r in results] == [0, 0, 0, 0]

    async def rows() -> list[tuple[str, str, bool]] | None:
        found = await db.fetch(
            "SELECT step_name, status, started_at IS NOT NULL AS began FROM noetl.command "
            "WHERE execution_id = $1 ORDER BY step_name",
            execution,
        )
        commands = [(r["step_name"], r["status"], r["began"]) for r in found]
        return commands if len(commands) == 2 and commands[1][1] == "COMPLETED" else None

    assert await wait_for(rows, what="the next command") == [
        ("end", "PENDING", False),
        ("start", "COMPLETED", True),
    ]
    chain = await db.fetch(
        "SELECT event_id, prev_event_id FROM noetl.event WHERE execution_id = $1 ORDER BY event_id", execution
    )
    for previous, row in itertools.pairwise(chain):
        assert row["prev_event_id"] == previous["event_id"]


async def test_events_of_several_executions_each_reach_their_own_command(
    mesh: Mesh, db: asyncpg.Connection, playbook: str
) -> None:
    runs = [await start_noop(mesh, db, playbook) for _ in range(3)]
    results = await emit_many(
        mesh,
        *(worker_event(r.execution_id, "command.heartbeat", {}, command_id=r.command_id) for r in runs),
        *(worker_event(r.execution_id, "command.started", {}, command_id=r.command_id) for r in runs),
    )

    assert not any(r.HasField("error") for r in results)
    for run, beat, began in zip(runs, results[:3], results[3:], strict=True):

        async def projected(run: Started = run) -> asyncpg.Record | None:
            row: asyncpg.Record | None = await db.fetchrow(
                "SELECT status, heartbeat_at IS NOT NULL AS beat, latest_event_id FROM noetl.command "
                "WHERE execution_id = $1 AND command_id = $2 AND status = 'RUNNING' AND heartbeat_at IS NOT NULL",
                run.execution_id,
                run.command_id,
            )
            return row

        row = await wait_for(projected, what="the lifecycle projection")
        assert (row["status"], row["beat"]) == ("RUNNING", True)
        assert row["latest_event_id"] == max(beat.event_id, began.event_id)


async def test_an_empty_call_answers_nothing(mesh: Mesh) -> None:
    assert await emit_many(mesh) == []


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished in this process during the test (one SDK provider per process, shared)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def test_every_call_is_traced_and_counted_with_the_executions_it_carried(
    mesh: Mesh, db: asyncpg.Connection, playbook: str, spans: InMemorySpanExporter
) -> None:
    runs = [await start_noop(mesh, db, playbook) for _ in range(2)]
    labels = {"service": "EventService", "method": "EmitMany", "code": "OK"}
    before = REGISTRY.get_sample_value("noetl_grpc_server_requests_total", labels) or 0.0
    for run in runs:  # the second call reuses the handler the interceptors built for the first
        await emit_many(
            mesh,
            worker_event(run.execution_id, "command.heartbeat", {}, command_id=run.command_id),
            worker_event(
                runs[0].execution_id, "call.done", {}, command_id=FAKE_COMMAND + 10 + run.command_id
            ),
        )

    async def finished() -> list[Any] | None:
        found = [
            s
            for s in spans.get_finished_spans()
            if s.kind is SpanKind.SERVER and s.name == "/noetl.v1.EventService/EmitMany"
        ]
        return found if len(found) == 2 else None

    traced = await wait_for(finished, what="two EmitMany server spans")
    tagged = sorted(tuple(span.attributes.get("execution_id")) for span in traced if span.attributes)
    assert tagged == sorted(
        [(str(runs[0].execution_id),), tuple(sorted({str(runs[0].execution_id), str(runs[1].execution_id)}))]
    )
    assert (REGISTRY.get_sample_value("noetl_grpc_server_requests_total", labels) or 0.0) == before + 2
