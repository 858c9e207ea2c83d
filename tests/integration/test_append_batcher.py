"""The event log's group commit outlives any failure of one transaction.

Its commit loops are the only way into the log: a loop that died on an error it did not expect
left every later append queued with nobody to commit it, and the whole mesh waiting on the
events service until its deadlines (what a Postgres restart did when a pooled connection had read
the server's FATAL but not yet the socket's close). The `events.append.in_transaction` failpoint
raises inside the transaction, deterministically, an error of no database kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from kernel import db, failpoints
from kernel.errors import Internal
from kernel.ids import Snowflake
from kernel.migrate import migrate
from services.events.batcher import AppendBatcher
from services.events.chain import AppendJob, Draft
from services.events.store import EventStore


@pytest.fixture
async def pool(module_dsn: str) -> AsyncIterator[db.Pool]:
    await migrate(module_dsn)
    pool = await db.create_pool(module_dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def failing_once() -> Iterator[None]:
    failpoints.arm("events.append.in_transaction=raise@1")
    yield
    failpoints.disarm()


def root(execution_id: int) -> AppendJob:
    draft = Draft(event_type="playbook.initialized", node_name="batcher", status="RUNNING")
    return AppendJob(execution_id, [draft], catalog_id=1, parent_execution_id=None,
                     require_open=False, mirror_subject=None)  # fmt: skip


@pytest.mark.usefixtures("failing_once")
async def test_an_unexpected_error_fails_its_batch_and_the_loop_commits_the_next(pool: db.Pool) -> None:
    ids = Snowflake(9)
    batcher = AppendBatcher(EventStore(pool), ids.next_id, loops=1)
    await batcher.start()
    first, second = ids.next_id(), ids.next_id()
    try:
        with pytest.raises(Internal, match=r"failpoint events\.append\.in_transaction"):
            await asyncio.wait_for(batcher.append(root(first)), timeout=10)
        appended = await asyncio.wait_for(batcher.append(root(second)), timeout=10)
        assert len(appended.stored) == 1
        async with pool.acquire() as conn:
            stored = await conn.fetch(
                "SELECT execution_id FROM noetl.event WHERE execution_id = ANY($1::bigint[])", [first, second]
            )
        # The failed transaction rolled back: only the second run's root is in the log.
        assert [row["execution_id"] for row in stored] == [second]
    finally:
        await batcher.shutdown()
