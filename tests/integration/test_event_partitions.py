"""The event service creates the log's future quarters ahead of time (data-model.md §3.3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from kernel import db as common_db
from kernel.migrate import migrate
from services.events.partitions import PartitionKeeper, quarters
from services.events.store import EventStore

FUTURE = datetime(2028, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def store(module_dsn: str) -> AsyncIterator[EventStore]:
    await migrate(module_dsn)
    pool = await common_db.create_pool(module_dsn)
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


BOUNDS = (
    "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'noetl' AND c.relname = $1"
)
INDEX_COUNT = "SELECT count(*) FROM pg_indexes WHERE schemaname = 'noetl' AND tablename = $1"


async def catalog_value(dsn: str, query: str, name: str) -> object:
    """One value of the system catalog about table `name`."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, name)
    finally:
        await conn.close()


async def test_future_quarters_are_created_once_with_the_logs_indexes(
    store: EventStore, module_dsn: str
) -> None:
    wanted = quarters(FUTURE.date())
    assert not {q.name for q in wanted} & await store.partitions()
    # Two replicas starting together: each quarter is created once, and neither fails.
    keepers = [PartitionKeeper(store, clock=lambda: FUTURE) for _ in range(2)]
    created = await asyncio.gather(*(keeper.ensure() for keeper in keepers))
    assert sorted(created[0] + created[1]) == sorted(q.name for q in wanted)
    assert {q.name for q in wanted} <= await store.partitions()
    for quarter in wanted:
        assert (
            await catalog_value(module_dsn, BOUNDS, quarter.name)
            == f"FOR VALUES FROM ('{quarter.lower}') TO ('{quarter.upper}')"
        )
        # Inherited from the partitioned parent: every look-up plan finds its index here too.
        assert await catalog_value(module_dsn, INDEX_COUNT, quarter.name) == await catalog_value(
            module_dsn, INDEX_COUNT, "event_2026_q4"
        )
    assert await PartitionKeeper(store, clock=lambda: FUTURE).ensure() == []


async def test_the_current_quarters_exist_from_the_schema(store: EventStore) -> None:
    assert await PartitionKeeper(store, clock=lambda: datetime(2026, 12, 7, tzinfo=UTC)).ensure() == []
