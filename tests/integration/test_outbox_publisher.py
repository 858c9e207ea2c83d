"""The outbox publisher (data-model.md §8): lease recovery, the relay/publisher hand-over, backoff to DEAD.

The outbox service here is its real servicer and store on a GrpcHost, without the background
publisher its `assemble` starts, so each test decides when a publisher runs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import orjson
import pytest
from nats.aio.msg import Msg

from kernel.bus import event_subject, execution_events_filter
from services.events.chain import OutboxEntry
from services.events.relay import Relay
from services.outbox.publisher import Publisher
from services.outbox.store import backoff_seconds
from tests.helpers.bus import read_stream
from tests.helpers.infra import NatsServer
from tests.helpers.outbox import LEASE_SECONDS, OutboxHarness, insert_rows, outbox_harness, statuses
from tests.helpers.waiting import wait_for

DEAD_AFTER = 3
_execution_ids = iter(range(330000000000000001, 330000000000001000))


@pytest.fixture(scope="module")
async def outbox(module_dsn: str, nats_server: NatsServer) -> AsyncIterator[OutboxHarness]:
    async with outbox_harness(module_dsn, nats_server.url, "publisher", max_attempts=DEAD_AFTER) as harness:
        yield harness


@pytest.fixture(autouse=True)
async def empty_outbox(outbox: OutboxHarness) -> None:
    """Claims take any due row of the table, so each test starts from an empty one."""
    await outbox.db.execute("DELETE FROM noetl.outbox")


@pytest.fixture
def execution_id() -> int:
    """An execution of the test's own: its subjects hold only what this test published."""
    return next(_execution_ids)


def subject(outbox: OutboxHarness, execution_id: int) -> str:
    return event_subject(execution_id, outbox.bus.event_shard_count)


class CoreCounter:
    """Counts every publish on the execution's subjects as a core subscriber sees it, duplicates
    that JetStream drops included."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    async def count(self, msg: Msg) -> None:
        self.seen[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1


async def run_until(publishers: list[Publisher], what: str, condition: Callable[[], Awaitable[bool]]) -> None:
    """Runs the publishers until `condition` holds, then shuts them down (each finishes its batch)."""
    for publisher in publishers:
        await publisher.start()
    try:
        await wait_for(condition, what=what)
    finally:
        await asyncio.gather(*(publisher.shutdown() for publisher in publishers))


async def test_two_racing_publishers_publish_the_rows_of_a_crashed_relay_exactly_once(
    outbox: OutboxHarness, execution_id: int
) -> None:
    base = 400000000000000000
    stranded = await insert_rows(
        outbox.db,
        execution_id,
        subject(outbox, execution_id),
        [base + i for i in range(60)],
        status="IN_FLIGHT",
        attempts=1,
        locked_ago_seconds=LEASE_SECONDS + 5,
    )
    leased = await insert_rows(
        outbox.db,
        execution_id,
        subject(outbox, execution_id),
        [base + 100],
        status="IN_FLIGHT",
        attempts=1,
        locked_ago_seconds=1,
    )
    done = await insert_rows(
        outbox.db,
        execution_id,
        subject(outbox, execution_id),
        [base + 200],
        status="PUBLISHED",
        attempts=1,
        locked_ago_seconds=600,
    )
    counter = CoreCounter()
    client = await nats.connect(outbox.bus.url)
    try:
        await client.subscribe(execution_events_filter(execution_id), cb=counter.count)
        await client.flush()

        async def all_published() -> bool:
            current = await statuses(outbox.db, stranded)
            return all(state == "PUBLISHED" for state, _ in current.values())

        # Two publishers at once, as two replicas of the outbox service would run.
        publishers = [Publisher(outbox.outbox, outbox.nc, batch_size=7, idle_sleep=0.05) for _ in range(2)]
        await run_until(publishers, "the stranded rows to be PUBLISHED", all_published)
        await client.drain()  # runs the callbacks of everything already delivered
    finally:
        if not client.is_closed:
            await client.close()
    stored = await read_stream(
        outbox.js, outbox.bus.event_stream, execution_events_filter(execution_id), at_least=len(stranded)
    )

    expected_ids = [str(base + i) for i in range(60)]
    assert sorted(m.msg_id or "" for m in stored) == sorted(expected_ids)
    assert sorted(orjson.loads(m.data)["event_id"] for m in stored) == [int(i) for i in expected_ids]
    # Not even sent twice: the claims of the two publishers never overlapped.
    assert counter.seen == Counter({msg_id: 1 for msg_id in expected_ids})
    assert await statuses(outbox.db, stranded) == {i: ("PUBLISHED", 2) for i in stranded}
    assert await statuses(outbox.db, leased) == {leased[0]: ("IN_FLIGHT", 1)}
    assert await statuses(outbox.db, done) == {done[0]: ("PUBLISHED", 1)}


class LostMarks:
    """The relay's port to the outbox service, as if the events service died before marking."""

    async def mark_published(self, outbox_ids: list[int]) -> None:
        raise ConnectionError("events service killed before its marks went out")

    async def mark_failed(self, outbox_id: int, error: str, attempts: int) -> None:
        raise ConnectionError("events service killed before its marks went out")


async def test_a_row_the_relay_sent_but_never_marked_reaches_consumers_once_after_the_lease(
    outbox: OutboxHarness, execution_id: int
) -> None:
    """The hand-over argument: the publisher re-sends only after the lease (60 s), inside the
    stream's 120 s duplicate window, so the stream keeps the relay's copy and drops its own."""
    event_ids = [410000000000000000 + i for i in range(5)]
    rows = await insert_rows(
        outbox.db,
        execution_id,
        subject(outbox, execution_id),
        event_ids,
        status="IN_FLIGHT",
        attempts=1,
        locked_ago_seconds=0,
    )
    counter = CoreCounter()
    client = await nats.connect(outbox.bus.url)
    try:
        await client.subscribe(execution_events_filter(execution_id), cb=counter.count)
        await client.flush()
        relay = Relay(outbox.js, LostMarks(), mark_interval=0.01)
        await relay.start()
        payloads = {
            r["outbox_id"]: r["payload"]
            for r in await outbox.db.fetch(
                "SELECT outbox_id, payload::text AS payload FROM noetl.outbox WHERE outbox_id = ANY($1::bigint[])",
                rows,
            )
        }
        relay.submit(
            [
                OutboxEntry(o, e, execution_id, subject(outbox, execution_id), payloads[o])
                for o, e in zip(rows, event_ids, strict=True)
            ]
        )
        await relay.shutdown()

        async def relayed() -> bool:
            return sum(counter.seen.values()) == len(rows)

        await wait_for(relayed, what="the relay's publishes")
        assert await statuses(outbox.db, rows) == {i: ("IN_FLIGHT", 1) for i in rows}

        # The lease runs out (time travel rather than a minute of waiting); the publisher takes over.
        await outbox.db.execute(
            "UPDATE noetl.outbox SET locked_at = now() - make_interval(secs => $1) WHERE outbox_id = ANY($2::bigint[])",
            float(LEASE_SECONDS + 1),
            rows,
        )

        async def all_published() -> bool:
            return all(s == "PUBLISHED" for s, _ in (await statuses(outbox.db, rows)).values())

        await run_until(
            [Publisher(outbox.outbox, outbox.nc, idle_sleep=0.05)],
            "the re-sent rows PUBLISHED",
            all_published,
        )
        await client.drain()
    finally:
        if not client.is_closed:
            await client.close()

    expected = [str(e) for e in event_ids]
    assert counter.seen == Counter({msg_id: 2 for msg_id in expected}), "both paths really sent"
    stored = await read_stream(
        outbox.js, outbox.bus.event_stream, execution_events_filter(execution_id), at_least=5
    )
    assert sorted(m.msg_id or "" for m in stored) == sorted(expected)


async def test_a_failed_publish_backs_off_by_attempts_then_goes_dead(
    outbox: OutboxHarness, execution_id: int
) -> None:
    """A subject no stream takes: every publish fails, each failure is marked with the backoff
    of its attempt, and the attempt at the limit dead-letters the row."""
    (row,) = await insert_rows(
        outbox.db,
        execution_id,
        "noetl.nowhere.x",
        [420000000000000000],
        status="PENDING",
        attempts=0,
        locked_ago_seconds=None,
    )
    publisher = Publisher(outbox.outbox, outbox.nc, publish_timeout=2.0)
    for attempt in range(1, DEAD_AFTER + 1):
        claimed = await outbox.outbox.claim(10)
        assert [(r.outbox_id, r.attempts) for r in claimed] == [(row, attempt)]
        assert await publisher.publish(claimed) == 0
        state = await outbox.db.fetchrow(
            "SELECT status, last_error, extract(epoch FROM available_at - updated_at)::float8 AS delay "
            "FROM noetl.outbox WHERE outbox_id = $1",
            row,
        )
        assert state is not None
        assert state["last_error"].startswith("publish failed: ")
        if attempt < DEAD_AFTER:
            assert state["status"] == "FAILED"
            assert state["delay"] == pytest.approx(backoff_seconds(attempt))
            assert await outbox.outbox.claim(10) == []  # not due before its backoff
            await outbox.db.execute("UPDATE noetl.outbox SET available_at = now() WHERE outbox_id = $1", row)
        else:
            assert state["status"] == "DEAD"
    assert await outbox.outbox.claim(10) == []
