"""The outbox state machine over its RPCs (data-model.md §8): claims, backoff, DEAD, dead letters, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.js.api import StreamConfig
from noetl.v1 import outbox_pb2
from prometheus_client import REGISTRY

from kernel.bus import event_subject
from kernel.config import ConfigError
from services.outbox.metrics import GaugeRefresher
from services.outbox.publisher import Publisher, check_duplicate_windows
from services.outbox.store import Failure
from tests.helpers.infra import NatsServer
from tests.helpers.outbox import (
    LEASE_SECONDS,
    MAX_ATTEMPTS,
    OutboxHarness,
    insert_rows,
    outbox_harness,
    statuses,
)
from tests.helpers.rpc import failure_of
from tests.helpers.waiting import wait_for

EXECUTION_ID = 331000000000000001


@pytest.fixture(scope="module")
async def outbox(module_dsn: str, nats_server: NatsServer) -> AsyncIterator[OutboxHarness]:
    async with outbox_harness(module_dsn, nats_server.url, "rows") as harness:
        yield harness


@pytest.fixture(autouse=True)
async def empty_outbox(outbox: OutboxHarness) -> None:
    await outbox.db.execute("DELETE FROM noetl.outbox")


async def rows(
    outbox: OutboxHarness,
    event_ids: list[int],
    *,
    status: str,
    attempts: int,
    locked_ago_seconds: float | None,
) -> list[int]:
    subject = event_subject(EXECUTION_ID, outbox.bus.event_shard_count)
    return await insert_rows(
        outbox.db,
        EXECUTION_ID,
        subject,
        event_ids,
        status=status,
        attempts=attempts,
        locked_ago_seconds=locked_ago_seconds,
    )


def sample(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    return 0.0 if value is None else value


async def test_an_expired_lease_with_no_attempts_left_is_dead_lettered(outbox: OutboxHarness) -> None:
    (exhausted,) = await rows(
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


@pytest.mark.parametrize("attempts", range(1, MAX_ATTEMPTS + 2))
async def test_mark_failed_backs_off_exponentially_then_dead_letters(
    outbox: OutboxHarness, attempts: int
) -> None:
    (outbox_id,) = await rows(
        outbox, [600000000000000000], status="IN_FLIGHT", attempts=attempts, locked_ago_seconds=0
    )
    answer = await outbox.stub.MarkFailed(
        outbox_pb2.MarkFailedRequest(outbox_id=outbox_id, error="x" * 5000, attempts=attempts), timeout=10
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
    # data-model.md §8.4: 1, 1, 2, 4, 8, 16, 32, 64, 128, 256 (max 300).
    expected = [1, 1, 2, 4, 8, 16, 32, 64, 128, 256][attempts]
    assert (row["status"], answer.available_at_in) == ("FAILED", expected)
    assert row["delay"] == pytest.approx(expected)


async def test_mark_failed_honours_a_smaller_maximum_delay_and_answers_unknown_rows(
    outbox: OutboxHarness,
) -> None:
    (outbox_id,) = await rows(
        outbox, [700000000000000000], status="IN_FLIGHT", attempts=9, locked_ago_seconds=0
    )
    answer = await outbox.stub.MarkFailed(
        outbox_pb2.MarkFailedRequest(outbox_id=outbox_id, error="boom", attempts=9, max_delay_seconds=100),
        timeout=10,
    )
    unknown = await outbox.stub.MarkFailed(
        outbox_pb2.MarkFailedRequest(outbox_id=1, error="boom", attempts=3), timeout=10
    )
    assert answer.available_at_in == 100
    assert (unknown.marked, unknown.available_at_in) == (True, 4)


async def test_a_late_failure_report_leaves_a_published_row_alone(outbox: OutboxHarness) -> None:
    (outbox_id,) = await rows(
        outbox, [710000000000000000], status="PUBLISHED", attempts=1, locked_ago_seconds=5
    )
    await outbox.stub.MarkFailed(
        outbox_pb2.MarkFailedRequest(outbox_id=outbox_id, error="late", attempts=1), timeout=10
    )
    assert await statuses(outbox.db, [outbox_id]) == {outbox_id: ("PUBLISHED", 1)}


async def test_empty_inputs_are_refused(outbox: OutboxHarness) -> None:
    published = await failure_of(outbox.stub.MarkPublished(outbox_pb2.MarkPublishedRequest(), timeout=10))
    failed = await failure_of(
        outbox.stub.MarkFailed(outbox_pb2.MarkFailedRequest(outbox_id=1, error=" "), timeout=10)
    )
    requeue = await failure_of(outbox.stub.Requeue(outbox_pb2.RequeueRequest(), timeout=10))
    assert [f.kind for f in (published, failed, requeue)] == ["InvalidArgument"] * 3


async def test_concurrent_claimers_never_get_the_same_row(outbox: OutboxHarness) -> None:
    total = 300
    inserted = await rows(
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
    assert await statuses(outbox.db, inserted) == {i: ("IN_FLIGHT", 1) for i in inserted}


async def test_dead_letters_are_listed_by_cursor_and_requeued(outbox: OutboxHarness) -> None:
    dead = await rows(
        outbox,
        [900000000000000000 + i for i in range(5)],
        status="DEAD",
        attempts=MAX_ATTEMPTS,
        locked_ago_seconds=90,
    )
    await outbox.db.execute(
        "UPDATE noetl.outbox SET last_error = 'gone' WHERE outbox_id = ANY($1::bigint[])", dead
    )
    (alive,) = await rows(outbox, [900000000000000100], status="PENDING", attempts=0, locked_ago_seconds=None)

    first = await outbox.stub.ListDead(outbox_pb2.ListDeadRequest(limit=3), timeout=10)
    second = await outbox.stub.ListDead(
        outbox_pb2.ListDeadRequest(limit=3, after_outbox_id=first.next_after), timeout=10
    )
    assert [r.outbox_id for r in first.rows] == dead[:3]
    assert first.next_after == dead[2]
    assert [r.outbox_id for r in second.rows] == dead[3:]
    assert not second.HasField("next_after")
    assert (first.dead, second.dead) == (5, 5)
    assert {(r.attempts, r.last_error, r.event_id) for r in first.rows} == {
        (MAX_ATTEMPTS, "gone", 900000000000000000 + i) for i in range(3)
    }
    assert all(r.HasField("dead_at") and r.HasField("created_at") for r in first.rows)

    some = await outbox.stub.Requeue(
        outbox_pb2.RequeueRequest(outbox_ids=[dead[0], dead[1], alive]), timeout=10
    )
    assert some.requeued == 2
    assert (await outbox.stub.Requeue(outbox_pb2.RequeueRequest(all=True), timeout=10)).requeued == 3
    assert await statuses(outbox.db, dead) == {i: ("PENDING", 0) for i in dead}
    assert (await outbox.stub.ListDead(outbox_pb2.ListDeadRequest(), timeout=10)).dead == 0

    # Requeued rows are ordinary pending rows: the next publisher round publishes them.
    publisher = Publisher(outbox.outbox, outbox.nc, idle_sleep=0.05)
    await publisher.start()
    try:

        async def all_published() -> bool:
            return all(s == "PUBLISHED" for s, _ in (await statuses(outbox.db, [*dead, alive])).values())

        await wait_for(all_published, what="the requeued rows PUBLISHED")
    finally:
        await publisher.shutdown()


async def test_metrics_count_every_transition(outbox: OutboxHarness) -> None:
    names = ("claimed", "published", "failed", "dead", "lease_recovered")
    before = {name: sample(f"noetl_outbox_{name}_total") for name in names}
    attempts_before = sample("noetl_outbox_publish_attempts_count")
    await rows(
        outbox,
        [950000000000000000, 950000000000000001],
        status="PENDING",
        attempts=0,
        locked_ago_seconds=None,
    )
    await rows(
        outbox, [950000000000000002], status="IN_FLIGHT", attempts=1, locked_ago_seconds=LEASE_SECONDS + 1
    )
    await rows(
        outbox,
        [950000000000000003],
        status="IN_FLIGHT",
        attempts=MAX_ATTEMPTS,
        locked_ago_seconds=LEASE_SECONDS + 1,
    )
    (failing,) = await rows(
        outbox, [950000000000000004], status="IN_FLIGHT", attempts=1, locked_ago_seconds=0
    )
    await rows(outbox, [950000000000000005], status="DEAD", attempts=MAX_ATTEMPTS, locked_ago_seconds=0)

    claimed = await outbox.outbox.claim(100)
    assert await Publisher(outbox.outbox, outbox.nc).publish(claimed) == 3
    await outbox.outbox.mark_failed(Failure(failing, "boom", MAX_ATTEMPTS))
    await GaugeRefresher(outbox.store).refresh()

    after = {name: sample(f"noetl_outbox_{name}_total") - before[name] for name in names}
    assert after == {"claimed": 3, "published": 3, "failed": 1, "dead": 2, "lease_recovered": 1}
    assert sample("noetl_outbox_publish_attempts_count") - attempts_before == 3
    assert sample("noetl_outbox_publish_duration_seconds_count") >= 1
    assert (
        sample("noetl_outbox_pending"),
        sample("noetl_outbox_in_flight"),
        sample("noetl_outbox_dead_rows"),
    ) == (
        0,
        0,
        3,
    )


async def test_a_duplicate_window_not_above_lease_plus_timeout_is_refused(outbox: OutboxHarness) -> None:
    name = f"{outbox.bus.event_stream}_SHORT"
    await outbox.js.add_stream(StreamConfig(name=name, subjects=["noetl.test.short.>"], duplicate_window=30))
    try:
        await check_duplicate_windows(outbox.js, [name], lease_seconds=20, publish_timeout=5)
        with pytest.raises(ConfigError, match="duplicate window 30s"):
            await check_duplicate_windows(outbox.js, [name], lease_seconds=25, publish_timeout=5)
        # The defaults against the streams the services create: 60 s + 5 s < 120 s.
        await check_duplicate_windows(
            outbox.js,
            [outbox.bus.command_stream, outbox.bus.event_stream],
            lease_seconds=60,
            publish_timeout=5,
        )
    finally:
        await outbox.js.delete_stream(name)
