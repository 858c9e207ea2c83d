"""Command-row projection of worker lifecycle events (data-model.md §5, §6.3) written in groups:
`fold_lifecycle` + `CommandStore.write_lifecycle` leave every row as the per-event statements
would, and `LifecycleWriter` lets concurrent feed batches share one write. Real Postgres.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from kernel import db as common_db
from kernel.errors import Internal
from services.execution.commands.lifecycle import LifecycleUpdate, LifecycleWriter, fold_lifecycle
from services.execution.commands.status import CommandStatus, can_move
from services.execution.commands.store import CommandStore, LifecycleWrite
from tests.helpers.services import Mesh

LEASE = 120.0
PAST = datetime(2020, 1, 1, tzinfo=UTC)
# The reference projection, one statement per event (as the execution service wrote it before
# lifecycle writes were grouped): what a folded write must reproduce.
PER_EVENT = """
UPDATE noetl.command SET
    status = CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN status ELSE COALESCE($3, status) END,
    started_at = CASE WHEN $4 THEN COALESCE(started_at, now()) ELSE started_at END,
    heartbeat_at = CASE WHEN $5 THEN now() ELSE heartbeat_at END,
    lease_until = CASE WHEN $5 AND worker_id IS NOT DISTINCT FROM $6
                       THEN now() + make_interval(secs => $7) ELSE lease_until END,
    completed_at = CASE WHEN $3 IN ('COMPLETED', 'FAILED') THEN now() ELSE completed_at END,
    error = COALESCE($8, error),
    latest_event_id = $9,
    updated_at = now()
WHERE execution_id = $1 AND command_id = $2
"""
# What a row looks like afterwards, with the timestamps as "set since the start" flags.
OBSERVED = (
    "SELECT status, error, latest_event_id, started_at IS DISTINCT FROM $3 AS started, "
    "heartbeat_at IS NOT NULL AS beat, lease_until > $3 AS leased, completed_at IS NOT NULL AS completed "
    "FROM noetl.command WHERE execution_id = $1 AND command_id = $2"
)
# (status, started, extends_lease, worker_id, error) of the events a worker reports (commands/lifecycle.py).
KINDS = [
    ("RUNNING", True, True, "w1"),
    ("RUNNING", True, True, "w2"),
    (None, False, True, "w1"),
    (None, False, True, "w2"),
    (None, False, True, None),
    ("COMPLETED", False, False, "w1"),
    ("FAILED", False, False, "w2"),
]
INITIAL = [
    (status, worker, started)
    for status in ("PENDING", "CLAIMED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
    for worker in (None, "w1")
    for started in (None, PAST)
]

_ids = itertools.count(1)


@pytest.fixture(scope="module")
async def pool(mesh: Mesh) -> AsyncIterator[asyncpg.Pool]:
    created = await common_db.create_pool(mesh.dsn, max_size=4)
    yield created
    await created.close()


async def command(db: asyncpg.Connection, status: str, worker: str | None, started: datetime | None) -> int:
    """A command row of an execution of its own, with a lease that ran out long ago; its execution id."""
    execution_id = 900_000_000 + next(_ids)
    await db.execute(
        "INSERT INTO noetl.command (command_id, event_id, execution_id, catalog_id, step_name, status, worker_id, "
        "started_at, lease_until, error, latest_event_id) VALUES ($1, $1, $2, 1, 'start', $3, $4, $5, $6, 'old', 1)",
        1,
        execution_id,
        status,
        worker,
        started,
        PAST,
    )
    return execution_id


def update(kind: tuple[str | None, bool, bool, str | None], event_id: int) -> LifecycleUpdate:
    status, started, extends, worker = kind
    error = "boom" if status == "FAILED" else None
    return LifecycleUpdate(
        1, event_id, None if status is None else CommandStatus(status), started, extends, worker, error
    )


async def test_a_folded_write_leaves_each_row_as_the_per_event_updates_would(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    store = CommandStore(pool)
    rng = random.Random(20261122)
    writes: list[LifecycleWrite] = []
    pairs: list[tuple[int, int, Sequence[LifecycleUpdate]]] = []
    for status, worker, started in INITIAL * 4:
        updates = [update(rng.choice(KINDS), event_id) for event_id in range(10, 10 + rng.randint(1, 5))]
        one_by_one = await command(db, status, worker, started)
        folded = await command(db, status, worker, started)
        async with db.transaction():
            for u in updates:
                await db.execute(
                    PER_EVENT,
                    one_by_one,
                    u.command_id,
                    u.status,
                    u.started,
                    u.extends_lease,
                    u.worker_id,
                    LEASE,
                    u.error,
                    u.event_id,
                )
        writes += fold_lifecycle((folded, u) for u in updates)
        pairs.append((one_by_one, folded, updates))
    await store.write_lifecycle(writes, LEASE)  # every row of every case in one round trip

    for one_by_one, folded, sent in pairs:
        expected = dict(await db.fetchrow(OBSERVED, one_by_one, 1, PAST) or {})
        actual = dict(await db.fetchrow(OBSERVED, folded, 1, PAST) or {})
        assert actual == expected, [(u.status, u.started, u.extends_lease, u.worker_id) for u in sent]


def test_a_terminal_status_is_never_downgraded_and_only_the_holder_extends_the_lease() -> None:
    updates = [update(KINDS[5], 10), update(KINDS[1], 11), update(KINDS[3], 12)]
    (write,) = fold_lifecycle((1, u) for u in updates)
    assert write.status == "COMPLETED"  # a late start after the completion does not reopen it
    assert (write.started, write.heartbeat, write.completes) == (True, True, True)
    assert (write.lease_holders, write.lease_unowned) == (("w2",), False)
    assert write.latest_event_id == 12


class CountingStore(CommandStore):
    """The real store, counting the statements it was asked for."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.calls: list[int] = []

    async def write_lifecycle(self, writes: Sequence[LifecycleWrite], lease_seconds: float) -> None:
        self.calls.append(len(writes))
        await super().write_lifecycle(writes, lease_seconds)


async def test_concurrent_calls_share_one_write(db: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    store = CountingStore(pool)
    writer = LifecycleWriter(store, LEASE)
    executions = [await command(db, "CLAIMED", "w1", None) for _ in range(20)]
    # Each execution gets a start and a heartbeat from two separate calls.
    calls = [writer.apply(e, [update(KINDS[0], 10)]) for e in executions]
    calls += [writer.apply(e, [update(KINDS[2], 11)]) for e in executions]
    await asyncio.gather(*calls)

    assert store.calls == [len(executions)]  # 40 calls, one statement, one row per command
    for execution_id in executions:
        row = await db.fetchrow(OBSERVED, execution_id, 1, PAST)
        assert row is not None
        assert (row["status"], row["started"], row["beat"], row["leased"], row["latest_event_id"]) == (
            "RUNNING",
            True,
            True,
            True,
            11,
        )

    await writer.apply(executions[0], [update(KINDS[5], 12)])  # later calls start a new write
    assert store.calls == [len(executions), 1]


async def test_a_failed_write_fails_every_caller(mesh: Mesh, db: asyncpg.Connection) -> None:
    closed = await common_db.create_pool(mesh.dsn, max_size=1)
    await closed.close()
    writer = LifecycleWriter(CommandStore(closed), LEASE)
    execution_id = await command(db, "CLAIMED", "w1", None)

    outcomes = await asyncio.gather(
        *(writer.apply(execution_id, [update(KINDS[2], 10 + i)]) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, Internal) for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == 3  # each caller its own exception
    row = await db.fetchrow(OBSERVED, execution_id, 1, PAST)
    assert row is not None and row["latest_event_id"] == 1  # nothing written


async def test_no_updates_write_nothing(pool: asyncpg.Pool) -> None:
    store = CountingStore(pool)
    await LifecycleWriter(store, LEASE).apply(1, [])
    assert store.calls == []


@pytest.mark.parametrize("start", [False, True])
async def test_a_claim_writes_only_what_the_state_machine_allows(
    db: asyncpg.Connection, pool: asyncpg.Pool, start: bool
) -> None:
    store = CommandStore(pool)
    target = CommandStatus.RUNNING if start else CommandStatus.CLAIMED
    for status in CommandStatus:
        execution_id = await command(db, status, "w1", None)
        row = await store.command_by_event(1, execution_id)
        assert row is not None
        async with pool.acquire() as conn:
            written = await store.mark_claimed(conn, row, "w2", LEASE, 20, started=start)
        assert written == can_move(status, target), status
        after = await store.command_by_event(1, execution_id)
        assert after is not None
        assert (after.status, after.worker_id) == ((target, "w2") if written else (status, "w1"))
