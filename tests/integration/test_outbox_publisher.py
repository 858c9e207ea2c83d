"""The outbox (data-model.md §8): lease recovery by the Publisher, backoff, dead letters, claims.

Rows are written with SQL, as a crashed relay or an earlier attempt would have left them. The
outbox service here is its real servicer and store on a GrpcHost, without the background
publisher its `assemble` starts, so each test decides when a publisher runs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import nats
import orjson
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from noetl.v1 import outbox_pb2, outbox_pb2_grpc

from services.common import db as common_db
from services.common.bus import BusSettings, ensure_streams, event_subject, execution_events_filter
from services.common.grpc_server import GrpcHost
from services.common.migrate import migrate
from services.outbox.api import OutboxApi
from services.outbox.publisher import Publisher
from services.outbox.store import OutboxStore
from tests.helpers.bus import isolated_bus, read_stream, unique_bus
from tests.helpers.infra import NatsServer
from tests.helpers.waiting import wait_for

MAX_ATTEMPTS = 10
LEASE_SECONDS = 60
EXECUTION_ID = 330000000000000001


@dataclass(frozen=True)
class Outbox:
    store: OutboxStore
    stub: outbox_pb2_grpc.OutboxServiceStub
    db: asyncpg.Connection
    js: JetStreamContext
    bus: BusSettings


@pytest.fixture(scope="module")
async def outbox(module_dsn: str, nats_server: NatsServer) -> AsyncIterator[Outbox]:
    await migrate(module_dsn)
    bus = unique_bus(nats_server.url, "outbox")
    pool = await common_db.create_pool(module_dsn)
    conn = await asyncpg.connect(module_dsn)
    store = OutboxStore(pool, lease_seconds=LEASE_SECONDS, max_attempts=MAX_ATTEMPTS)
    api = OutboxApi(store)
    host = GrpcHost(
        "outbox",
        "127.0.0.1:0",
        [lambda server: outbox_pb2_grpc.add_OutboxServiceServicer_to_server(api, server)],
    )
    port = await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        async with isolated_bus(bus) as js:
            await ensure_streams(js, bus)
            yield Outbox(store, outbox_pb2_grpc.OutboxServiceStub(channel), conn, js, bus)
    finally:
        await channel.close()
        await host.stop()
        await conn.close()
        await pool.close()


@pytest.fixture(autouse=True)
async def empty_outbox(outbox: Outbox) -> None:
    """Claims take any due row of the table, so each test starts from an empty one."""
    await outbox.db.execute("DELETE FROM noetl.outbox")


async def insert_rows(
    outbox: Outbox, event_ids: list[int], *, status: str, attempts: int, locked_ago_seconds: float | None
) -> list[int]:
    subject = event_subject(EXECUTION_ID, outbox.bus.event_shard_count)
    rows = await outbox.db.fetch(
        "INSERT INTO noetl.outbox (execution_id, event_id, subject, payload, payload_codec, status, attempts, "
        "locked_at) SELECT $1, e, $2, jsonb_build_object('event_id', e, 'execution_id', $1::bigint), 'json', $3, $4, "
        "CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() - make_interval(secs => $5::float8) END "
        "FROM unnest($6::bigint[]) AS e ORDER BY e RETURNING outbox_id",
        EXECUTION_ID,
        subject,
        status,
        attempts,
        locked_ago_seconds,
        event_ids,
    )
    return [r["outbox_id"] for r in rows]


async def statuses(outbox: Outbox, outbox_ids: list[int]) -> dict[int, tuple[str, int]]:
    rows = await outbox.db.fetch(
        "SELECT outbox_id, status, attempts FROM noetl.outbox WHERE outbox_id = ANY($1::bigint[])", outbox_ids
    )
    return {r["outbox_id"]: (r["status"], r["attempts"]) for r in rows}


async def test_rows_of_a_crashed_relay_are_published_exactly_once_after_their_lease(outbox: Outbox) -> None:
    base = 400000000000000000
    stranded = await insert_rows(
        outbox,
        [base + i for i in range(20)],
        status="IN_FLIGHT",
        attempts=1,
        locked_ago_seconds=LEASE_SECONDS + 5,
    )
    leased = await insert_rows(outbox, [base + 100], status="IN_FLIGHT", attempts=1, locked_ago_seconds=1)
    done = await insert_rows(outbox, [base + 200], status="PUBLISHED", attempts=1, locked_ago_seconds=600)

    # Every publish is seen by a core subscriber, even one JetStream would drop as a duplicate.
    seen: Counter[str] = Counter()

    async def count(msg: Msg) -> None:
        seen[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1

    client = await nats.connect(outbox.bus.url)
    try:
        await client.subscribe(execution_events_filter(EXECUTION_ID), cb=count)
        await client.flush()
        # Two publishers at once, as two replicas of the outbox service would run.
        publishers = [Publisher(outbox.store, outbox.js, batch_size=7, idle_sleep=0.05) for _ in range(2)]
        tasks = [asyncio.create_task(p.run()) for p in publishers]
        try:

            async def all_published() -> bool:
                current = await statuses(outbox, stranded)
                return all(state == "PUBLISHED" for state, _ in current.values())

            await wait_for(all_published, what="the stranded rows to be PUBLISHED")
        finally:
            for publisher in publishers:
                publisher.shutdown()
            await asyncio.gather(*tasks)
        # Nothing publishes any more; draining runs the callbacks of everything already delivered.
        await client.drain()
    finally:
        if not client.is_closed:
            await client.close()
    stored = await read_stream(
        outbox.js, outbox.bus.event_stream, execution_events_filter(EXECUTION_ID), at_least=len(stranded)
    )

    expected_ids = [str(base + i) for i in range(20)]
    assert sorted(m.msg_id or "" for m in stored) == sorted(expected_ids)
    assert sorted(orjson.loads(m.data)["event_id"] for m in stored) == [int(i) for i in expected_ids]
    assert seen == Counter({msg_id: 1 for msg_id in expected_ids})
    # Claimed once each (attempts 1 → 2); the live lease and the published row were left alone.
    assert await statuses(outbox, stranded) == {i: ("PUBLISHED", 2) for i in stranded}
    assert await statuses(outbox, leased) == {leased[0]: ("IN_FLIGHT", 1)}
    assert await statuses(outbox, done) == {done[0]: ("PUBLISHED", 1)}


async def test_an_expired_lease_with_no_attempts_left_is_dead_lettered(outbox: Outbox) -> None:
    (exhausted,) = await insert_rows(
        outbox,
        [500000000000000000],
        status="IN_FLIGHT",
        attempts=MAX_ATTEMPTS,
        locked_ago_seconds=LEASE_SECONDS + 5,
    )
    claimed = await outbox.stub.ClaimRows(outbox_pb2.ClaimRowsRequest(limit=10), timeout=10)

    assert list(claimed.rows) == []
    row = await outbox.db.fetchrow(
        "SELECT status, last_error FROM noetl.outbox WHERE outbox_id = $1", exhausted
    )
    assert row is not None
    assert (row["status"], row["last_error"]) == ("DEAD", f"lease expired after {MAX_ATTEMPTS} attempts")


@pytest.mark.parametrize("attempts", range(0, MAX_ATTEMPTS + 2))
async def test_mark_failed_backs_off_exponentially_then_dead_letters(outbox: Outbox, attempts: int) -> None:
    (outbox_id,) = await insert_rows(
        outbox, [600000000000000000], status="IN_FLIGHT", attempts=attempts, locked_ago_seconds=0
    )
    error = "x" * 5000
    answer = await outbox.stub.MarkFailed(
        outbox_pb2.MarkFailedRequest(outbox_id=outbox_id, error=error, attempts=attempts), timeout=10
    )
    row = await outbox.db.fetchrow(
        "SELECT status, last_error, extract(epoch FROM available_at - updated_at)::float8 AS delay "
        "FROM noetl.outbox WHERE outbox_id = $1",
        outbox_id,
    )

    assert row is not None
    assert answer.marked
    assert len(row["last_error"]) == 2000
    if attempts >= MAX_ATTEMPTS:
        assert (row["status"], answer.available_at_in) == ("DEAD", 0)
        return
    expected = min(300, 2 ** min(max(attempts - 1, 0), 8))
    assert (row["status"], answer.available_at_in) == ("FAILED", expected)
    assert row["delay"] == pytest.approx(expected)


async def test_mark_failed_honours_a_smaller_maximum_delay(outbox: Outbox) -> None:
    (outbox_id,) = await insert_rows(
        outbox, [700000000000000000], status="IN_FLIGHT", attempts=9, locked_ago_seconds=0
    )
    answer = await outbox.stub.MarkFailed(
        outbox_pb2.MarkFailedRequest(outbox_id=outbox_id, error="boom", attempts=9, max_delay_seconds=100),
        timeout=10,
    )
    assert answer.available_at_in == 100


async def test_concurrent_claimers_never_get_the_same_row(outbox: Outbox) -> None:
    total = 300
    inserted = await insert_rows(
        outbox,
        [800000000000000000 + i for i in range(total)],
        status="PENDING",
        attempts=0,
        locked_ago_seconds=None,
    )
    claimed: list[int] = []
    while True:
        answers = await asyncio.gather(
            *(outbox.stub.ClaimRows(outbox_pb2.ClaimRowsRequest(limit=40), timeout=10) for _ in range(2))
        )
        batches = [[row.outbox_id for row in answer.rows] for answer in answers]
        assert not set(batches[0]) & set(batches[1]), "two claimers got the same row"
        assert all(row.attempts == 1 for answer in answers for row in answer.rows)
        if not batches[0] and not batches[1]:
            break
        claimed.extend(batches[0] + batches[1])

    assert sorted(claimed) == sorted(inserted)
    assert await statuses(outbox, inserted) == {i: ("IN_FLIGHT", 1) for i in inserted}
