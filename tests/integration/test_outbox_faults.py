"""Outbox fault tests: a publisher process SIGKILLed mid-batch, and NATS stopped and restarted mid-run.

Both drain a real backlog and then read the stream back: every row must be there exactly once
(one message per `Nats-Msg-Id`), whatever was sent twice on the way.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from kernel import bus
from kernel.bus import BusSettings, event_subject, execution_events_filter
from noetl_mesh import procs
from noetl_mesh.embedded import EmbeddedNats
from services.outbox.publisher import Publisher
from tests.helpers.infra import NatsServer
from tests.helpers.outbox import (
    OutboxHarness,
    insert_backlog,
    outbox_harness,
    service_env,
    start_service,
    status_counts,
    stream_ids,
)
from tests.helpers.waiting import wait_for

LEASE_SECONDS = 5


@pytest.fixture(scope="module")
async def outbox(module_dsn: str, nats_server: NatsServer) -> AsyncIterator[OutboxHarness]:
    async with outbox_harness(module_dsn, nats_server.url, "faults", lease_seconds=LEASE_SECONDS) as harness:
        yield harness


@pytest.fixture(autouse=True)
async def empty_outbox(outbox: OutboxHarness) -> None:
    await outbox.db.execute("DELETE FROM noetl.outbox")


async def published(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM noetl.outbox WHERE status = 'PUBLISHED'"))


async def backends(db: asyncpg.Connection) -> set[int]:
    rows = await db.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return {r["pid"] for r in rows}


async def kill_mid_batch(
    outbox: OutboxHarness, env: dict[str, str], log: Path, ours: set[int], total: int
) -> Counter[str]:
    """Starts a publisher process, SIGKILLs it while a batch is claimed and not yet marked, and
    returns the row counts once its database sessions are gone."""
    process = await start_service(env, log)
    try:

        async def mid_batch() -> bool:
            # Some batches published and one claimed but not marked yet. A 1000-row batch takes
            # tens of milliseconds from claim to mark; this check reads two partial indexes and
            # the kill follows it within a millisecond or two.
            row = await outbox.db.fetchrow(
                "SELECT (SELECT count(*) FROM noetl.outbox WHERE status = 'IN_FLIGHT'), "
                "(SELECT count(*) FROM noetl.outbox WHERE status IN ('PENDING', 'FAILED'))"
            )
            assert row is not None
            in_flight, waiting = int(row[0]), int(row[1])
            return in_flight > 0 and total - in_flight - waiting >= 3000

        await wait_for(mid_batch, what="the publisher to be in the middle of a batch", within=60.0)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async def sessions_ended() -> bool:
        # Statements the dead process sent just before dying still run; then its backends see
        # the closed socket and exit.
        return await backends(outbox.db) <= ours

    await wait_for(sessions_ended, what="the dead publisher's database sessions to end")
    return await status_counts(outbox.db)


async def test_a_publisher_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    outbox: OutboxHarness, tmp_path: Path
) -> None:
    total = 30_000
    execution_id = 340000000000000001
    await insert_backlog(outbox.db, execution_id, event_subject(execution_id, 1), 600000000000000000, total)
    env = service_env(outbox.dsn, outbox.bus, lease_seconds=LEASE_SECONDS)
    ours = await backends(outbox.db)
    # A kill can land just after a batch was marked and before the next claim committed; then it
    # leaves nothing claimed behind, and the next publisher is killed instead.
    for attempt in range(5):
        at_kill = await kill_mid_batch(outbox, env, tmp_path / f"killed-{attempt}.log", ours, total)
        if at_kill["IN_FLIGHT"]:
            break
    assert at_kill["IN_FLIGHT"] > 0, f"no kill left claimed rows behind: {at_kill}"
    assert at_kill["PUBLISHED"] < total

    second = await start_service(env, tmp_path / "second.log")
    try:

        async def drained() -> bool:
            return await published(outbox.db) == total

        # The second publisher drains the rest, then takes over the dead one's rows after their lease.
        await wait_for(drained, what="every row PUBLISHED", within=90.0)
    finally:
        second.send_signal(signal.SIGTERM)
        code = await second.wait()
    assert code == 0, (tmp_path / "second.log").read_text()

    recovered = await outbox.db.fetchval("SELECT count(*) FROM noetl.outbox WHERE attempts = 2")
    assert recovered == at_kill["IN_FLIGHT"]
    ids = await stream_ids(
        outbox.js, outbox.bus.event_stream, execution_events_filter(execution_id), at_least=total
    )
    assert len(ids) == total
    assert set(ids.values()) == {1}, "a row reached the stream twice"
    assert set(ids) == {str(600000000000000000 + i) for i in range(total)}


async def test_nats_stopped_and_restarted_mid_run_loses_no_row(outbox: OutboxHarness, tmp_path: Path) -> None:
    total = 20_000
    execution_id = 340000000000000002
    # A NATS of this test's own on a fixed port, so clients reconnect to the same address.
    server = EmbeddedNats(tmp_path / "nats", port=procs.free_ports(1)[0], monitor_port=0)
    url = await asyncio.to_thread(server.start)
    try:
        settings = BusSettings(url=url, command_stream="FAULT_COMMANDS", event_stream="FAULT_EVENTS")
        nc = await bus.connect(settings, "outbox-fault-test")
        try:
            js = nc.jetstream()
            await bus.ensure_streams(js, settings)
            await insert_backlog(
                outbox.db, execution_id, event_subject(execution_id, 1), 610000000000000000, total
            )
            publisher = Publisher(
                outbox.outbox, nc, batch_size=500, idle_sleep=0.05, error_sleep=0.2, publish_timeout=1.0
            )
            await publisher.start()
            try:

                async def some_published() -> bool:
                    return await published(outbox.db) >= 2000

                await wait_for(some_published, what="a few batches published", within=60.0)
                await asyncio.to_thread(server.stop)

                async def disconnected() -> bool:
                    return not nc.is_connected

                await wait_for(disconnected, what="the publisher's client to notice the outage")
                await asyncio.sleep(2.0)  # an outage several publish timeouts long
                during = await status_counts(outbox.db)
                assert during["DEAD"] == 0
                # Nothing is claimed while the bus is away: attempts are not burnt by the outage.
                assert await outbox.db.fetchval("SELECT max(attempts) FROM noetl.outbox") <= 2
                assert await asyncio.to_thread(server.start) == url

                async def drained() -> bool:
                    return await published(outbox.db) == total

                await wait_for(drained, what="the backlog drained after NATS came back", within=90.0)
            finally:
                await publisher.shutdown()
            ids = await stream_ids(
                js, settings.event_stream, execution_events_filter(execution_id), at_least=total
            )
        finally:
            await nc.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert len(ids) == total
    assert set(ids.values()) == {1}, "a row reached the stream twice"
    assert (await status_counts(outbox.db))["PUBLISHED"] == total
