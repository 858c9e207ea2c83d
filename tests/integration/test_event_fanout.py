"""What leaves the event log: outbox mirror rows relayed to JetStream, and Subscribe (§8, §11)."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import events_pb2

from kernel.bus import event_subject, execution_events_filter
from tests.helpers.bus import read_stream
from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh
from tests.helpers.waiting import wait_for


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "fanout")


@pytest.fixture
async def started(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> Started:
    return await start_noop(mesh, db, playbook)


async def append(mesh: Mesh, started: Started, event_type: str, status: str) -> int:
    request = events_pb2.AppendRequest(
        execution_id=started.execution_id,
        catalog_id=started.catalog_id,
        events=[events_pb2.NewEvent(event_type=event_type, node_name="workflow", status=status)],
    )
    response = await mesh.events.Append(request, timeout=10)
    return int(response.event_ids[0])


async def test_every_event_is_mirrored_once_relayed_to_the_stream_and_marked_published(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    await append(mesh, started, "test.marker", "RUNNING")
    event_ids = [
        r["event_id"]
        for r in await db.fetch(
            "SELECT event_id FROM noetl.event WHERE execution_id = $1 ORDER BY event_id", started.execution_id
        )
    ]
    subject = event_subject(started.execution_id, mesh.bus.event_shard_count)

    async def mirrors_published() -> list[asyncpg.Record] | None:
        rows = await db.fetch(
            "SELECT event_id, status, subject, payload::text AS payload, published_at FROM noetl.outbox "
            "WHERE execution_id = $1 AND subject LIKE 'noetl.events.%' ORDER BY event_id",
            started.execution_id,
        )
        done = len(rows) == len(event_ids) and all(r["status"] == "PUBLISHED" for r in rows)
        return rows if done else None

    rows = await wait_for(mirrors_published, what="every mirror row PUBLISHED")
    assert [r["event_id"] for r in rows] == event_ids
    assert {r["subject"] for r in rows} == {subject}
    assert all(r["published_at"] is not None for r in rows)
    assert [orjson.loads(r["payload"])["event_id"] for r in rows] == event_ids

    messages = await read_stream(
        mesh.js, mesh.bus.event_stream, execution_events_filter(started.execution_id), at_least=len(event_ids)
    )
    assert [m.msg_id for m in messages] == [str(e) for e in event_ids]
    assert {m.subject for m in messages} == {subject}
    payloads = [orjson.loads(m.data) for m in messages]
    assert [p["event_id"] for p in payloads] == event_ids
    assert payloads[0]["event_type"] == "playbook.initialized"
    assert [p["prev_event_id"] for p in payloads] == [None, *event_ids[:-1]]


async def test_the_start_command_notification_goes_through_the_outbox_to_the_command_stream(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    async def notification_published() -> asyncpg.Record | None:
        row = await db.fetchrow(
            "SELECT outbox_id, event_id, status, subject FROM noetl.outbox "
            "WHERE execution_id = $1 AND subject LIKE 'noetl.commands.%'",
            started.execution_id,
        )
        return row if row is not None and row["status"] == "PUBLISHED" else None

    row = await wait_for(notification_published, what="the command notification PUBLISHED")
    assert row["event_id"] == started.event_id
    assert row["subject"] == f"noetl.commands.shared.{started.execution_id}"

    (message,) = await read_stream(mesh.js, mesh.bus.command_stream, row["subject"], at_least=1)
    assert message.msg_id == f"command-{row['event_id']}"
    payload = orjson.loads(message.data)
    assert (payload["event_id"], payload["command_id"], payload["step"]) == (
        started.event_id,
        started.command_id,
        "start",
    )


async def test_subscribe_catches_up_then_follows_live_and_ends_after_the_terminal_event(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    logged = [
        r["event_id"]
        for r in await db.fetch(
            "SELECT event_id FROM noetl.event WHERE execution_id = $1 ORDER BY event_id", started.execution_id
        )
    ]
    call = mesh.events.Subscribe(events_pb2.SubscribeRequest(execution_id=started.execution_id), timeout=30)
    async with asyncio.timeout(20):
        caught_up = [(await call.read()).event.event_id for _ in logged]
        assert caught_up == logged

        live = await append(mesh, started, "test.marker", "RUNNING")
        assert (await call.read()).event.event_id == live

        terminal = await append(mesh, started, "playbook.completed", "COMPLETED")
        last = (await call.read()).event
        assert (last.event_id, last.event_type) == (terminal, "playbook.completed")

        assert await call.read() is grpc.aio.EOF
        assert await call.code() is grpc.StatusCode.OK


async def test_subscribe_after_a_cursor_starts_after_it(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    terminal = await append(mesh, started, "playbook.completed", "COMPLETED")
    logged = [
        r["event_id"]
        for r in await db.fetch(
            "SELECT event_id FROM noetl.event WHERE execution_id = $1 ORDER BY event_id", started.execution_id
        )
    ]
    request = events_pb2.SubscribeRequest(execution_id=started.execution_id, after_event_id=logged[0])
    async with asyncio.timeout(20):
        received = [response.event.event_id async for response in mesh.events.Subscribe(request, timeout=30)]
    assert received == logged[1:]
    assert received[-1] == terminal


async def test_subscribe_to_an_unknown_execution_is_not_found(mesh: Mesh) -> None:
    call = mesh.events.Subscribe(events_pb2.SubscribeRequest(execution_id=123456789), timeout=10)
    failure = await failure_of(call.read())
    assert failure.code is grpc.StatusCode.NOT_FOUND
    assert failure.message == "Execution 123456789 not found"


async def test_an_event_too_big_for_nats_is_mirrored_by_reference_not_dead_lettered(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    """NATS refuses payloads over 1 MiB; the mirror carries the event without its data instead."""
    big = {"status": "COMPLETED", "context": {"rows": ["x" * 1000] * 1500}}
    request = events_pb2.AppendRequest(
        execution_id=started.execution_id,
        catalog_id=started.catalog_id,
        events=[
            events_pb2.NewEvent(
                event_type="test.big", node_name="workflow", status="RUNNING", result_json=orjson.dumps(big)
            )
        ],
    )
    event_id = int((await mesh.events.Append(request, timeout=10)).event_ids[0])

    async def published() -> asyncpg.Record | None:
        row = await db.fetchrow(
            "SELECT status, payload::text AS payload FROM noetl.outbox WHERE event_id = $1 AND subject LIKE 'noetl.events.%'",
            event_id,
        )
        return row if row is not None and row["status"] == "PUBLISHED" else None

    await wait_for(published, what="the big event's mirror row PUBLISHED")
    messages = await read_stream(
        mesh.js, mesh.bus.event_stream, execution_events_filter(started.execution_id), at_least=1
    )
    (message,) = [m for m in messages if m.msg_id == str(event_id)]
    payload = orjson.loads(message.data)
    assert len(message.data) < 2048
    assert (payload["event_id"], payload["event_type"], payload["result"]) == (event_id, "test.big", None)
    assert payload["mirror_omitted"]["read"] == f"/api/events/{event_id}/result"
    assert payload["mirror_omitted"]["bytes"] > payload["mirror_omitted"]["limit"] == 768 * 1024
    # The log itself keeps the whole event.
    stored = await db.fetchval("SELECT result::text FROM noetl.event WHERE event_id = $1", event_id)
    assert orjson.loads(stored) == big
