"""Retention of published outbox rows (services/outbox/pruner.py) on a real database."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from kernel.bus import event_subject
from services.outbox.pruner import Pruner
from tests.helpers.infra import NatsServer
from tests.helpers.outbox import (
    LEASE_SECONDS,
    OutboxHarness,
    insert_rows,
    outbox_harness,
    service_env,
    start_service,
)
from tests.helpers.waiting import wait_for

EXECUTION_ID = 331000000000000002
HOUR = 3600.0


@pytest.fixture(scope="module")
async def outbox(module_dsn: str, nats_server: NatsServer) -> AsyncIterator[OutboxHarness]:
    async with outbox_harness(module_dsn, nats_server.url, "prune") as harness:
        yield harness


@pytest.fixture(autouse=True)
async def empty_outbox(outbox: OutboxHarness) -> None:
    await outbox.db.execute("DELETE FROM noetl.outbox")


async def row(
    outbox: OutboxHarness, event_id: int, status: str, *, age: float, published_age: float | None
) -> int:
    """One row of `status`, created `age` seconds ago and published `published_age` seconds ago."""
    subject = event_subject(EXECUTION_ID, outbox.bus.event_shard_count)
    (outbox_id,) = await insert_rows(
        outbox.db, EXECUTION_ID, subject, [event_id], status=status, attempts=1, locked_ago_seconds=None
    )
    await outbox.db.execute(
        "UPDATE noetl.outbox SET created_at = now() - make_interval(secs => $2), "
        "published_at = CASE WHEN $3::float8 IS NULL THEN NULL ELSE now() - make_interval(secs => $3::float8) END "
        "WHERE outbox_id = $1",
        outbox_id,
        age,
        published_age,
    )
    return outbox_id


async def remaining(outbox: OutboxHarness) -> list[int]:
    return [r[0] for r in await outbox.db.fetch("SELECT outbox_id FROM noetl.outbox ORDER BY outbox_id")]


def pruned_total() -> float:
    return REGISTRY.get_sample_value("noetl_outbox_pruned_total") or 0.0


async def test_only_rows_published_before_the_retention_are_deleted(outbox: OutboxHarness) -> None:
    old_published = await row(outbox, 1, "PUBLISHED", age=2 * HOUR, published_age=2 * HOUR)
    # Created long ago, published a minute ago (after retries): kept until its publish ages.
    late_published = await row(outbox, 2, "PUBLISHED", age=2 * HOUR, published_age=60)
    kept_other = [
        await row(outbox, 3 + k, status, age=2 * HOUR, published_age=None)
        for k, status in enumerate(("DEAD", "FAILED", "PENDING", "IN_FLIGHT"))
    ]
    young_published = await row(outbox, 10, "PUBLISHED", age=60, published_age=60)
    before = pruned_total()

    deleted = await Pruner(outbox.outbox, retention_seconds=HOUR, interval=60).prune()

    assert deleted == 1
    assert old_published not in await remaining(outbox)
    assert await remaining(outbox) == [late_published, *kept_other, young_published]
    assert pruned_total() - before == 1
    # Nothing left to delete: a second run deletes nothing and changes nothing.
    assert await Pruner(outbox.outbox, retention_seconds=HOUR, interval=60).prune() == 0
    assert await remaining(outbox) == [late_published, *kept_other, young_published]


async def test_the_walk_pages_past_kept_rows_and_stops_at_younger_ones(outbox: OutboxHarness) -> None:
    dead = [await row(outbox, k, "DEAD", age=3 * HOUR, published_age=None) for k in (1, 2, 3)]
    old = [await row(outbox, 10 + k, "PUBLISHED", age=2 * HOUR, published_age=2 * HOUR) for k in range(5)]
    young = [await row(outbox, 20 + k, "PUBLISHED", age=60, published_age=60) for k in (0, 1)]
    # Behind a page of young rows in id order: the walk has stopped before it, and a later run
    # (once they have aged too) takes it.
    behind = await row(outbox, 22, "PUBLISHED", age=2 * HOUR, published_age=2 * HOUR)

    deleted = await Pruner(outbox.outbox, retention_seconds=HOUR, interval=60, page=2).prune()

    assert deleted == len(old)
    assert await remaining(outbox) == [*dead, *young, behind]


async def test_the_outbox_service_prunes_on_its_own(outbox: OutboxHarness, tmp_path: Path) -> None:
    """The service process runs the retention from its settings: published rows go once they are
    a retention old, a dead letter stays."""
    published = [await row(outbox, k, "PUBLISHED", age=5, published_age=5) for k in (1, 2)]
    dead = await row(outbox, 3, "DEAD", age=5, published_age=None)
    env = service_env(
        outbox.dsn, outbox.bus, lease_seconds=LEASE_SECONDS, NOETL_OUTBOX_PUBLISHED_RETENTION_SECONDS="2"
    )
    log = tmp_path / "outbox.log"
    process = await start_service(env, log)
    try:

        async def pruned() -> bool:
            return await remaining(outbox) == [dead]

        await wait_for(pruned, what="the service to delete the published rows", within=30.0)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await process.wait()
    assert code == 0, log.read_text()
    assert published[0] not in await remaining(outbox)
