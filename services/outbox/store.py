"""SQL of the outbox context: every state transition of noetl.outbox (data-model.md §8).

A lost database connection raises `Unavailable` naming the operation (`connection_errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kernel.db import connection_errors
from kernel.timeutil import as_utc

ERROR_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class Row:
    outbox_id: int
    event_id: int
    execution_id: int
    subject: str
    payload: str
    payload_codec: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Claimed:
    rows: list[Row]
    # Of `rows`, those taken over from an IN_FLIGHT holder whose lease expired.
    recovered: int
    # Expired IN_FLIGHT rows with no attempts left, moved to DEAD instead of being claimed.
    dead_lettered: int


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed publish to record: the caller's attempt count decides the backoff or DEAD."""

    outbox_id: int
    error: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Marked:
    """What `mark_failed` did: rows now FAILED (with their backoff) and rows now DEAD."""

    delays: dict[int, int]
    dead: list[int]


@dataclass(frozen=True, slots=True)
class DeadRow:
    outbox_id: int
    event_id: int
    execution_id: int
    subject: str
    attempts: int
    last_error: str
    created_at: datetime | None
    dead_at: datetime | None


@dataclass(frozen=True, slots=True)
class Pruned:
    """One page of `prune_published`: rows deleted, the page's last outbox id (None when the page
    was empty) and whether the walk should go on (a full page, all of it older than the cutoff)."""

    deleted: int
    last_id: int | None
    more: bool


@dataclass(frozen=True, slots=True)
class Counts:
    pending: int
    in_flight: int
    dead: int


# An IN_FLIGHT row whose lease expired is claimable again, unless it used all its attempts:
# those go to DEAD instead. The claim itself never takes them (`attempts < max`), so the two
# statements need no common transaction.
_DEAD_EXPIRED = """
UPDATE noetl.outbox SET status = 'DEAD', last_error = 'lease expired after ' || attempts || ' attempts',
       updated_at = now()
 WHERE status = 'IN_FLIGHT' AND locked_at <= now() - make_interval(secs => $1) AND attempts >= $2
"""
# data-model.md §8.3, split in two so each half walks an index in outbox_id order and stops at
# the limit: one `WHERE a OR b ORDER BY outbox_id` reads every ready row (or every published row
# before them) on each claim, which made draining a backlog quadratic. Rows a half locks but the
# final LIMIT drops stay locked (and are skipped by other claimers) only until the statement ends.
# `was` = the status before the claim: IN_FLIGHT means a lease was recovered.
_CLAIM = """
WITH due AS (
  SELECT outbox_id, status AS was FROM noetl.outbox
   WHERE status IN ('PENDING', 'FAILED') AND available_at <= now()
   ORDER BY outbox_id LIMIT $2
   FOR UPDATE SKIP LOCKED),
expired AS (
  SELECT outbox_id, status AS was FROM noetl.outbox
   WHERE status = 'IN_FLIGHT' AND locked_at <= now() - make_interval(secs => $1) AND attempts < $3
   ORDER BY outbox_id LIMIT $2
   FOR UPDATE SKIP LOCKED),
ready AS (
  SELECT outbox_id, was FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) AS both_kinds
   ORDER BY outbox_id LIMIT $2)
UPDATE noetl.outbox o
   SET status = 'IN_FLIGHT', attempts = attempts + 1, locked_at = now(), updated_at = now()
  FROM ready WHERE o.outbox_id = ready.outbox_id
RETURNING o.outbox_id, o.event_id, o.execution_id, o.subject, o.payload::text, o.payload_codec, o.attempts,
          ready.was = 'IN_FLIGHT'
"""
_MARK_PUBLISHED = """
UPDATE noetl.outbox SET status = 'PUBLISHED', published_at = now(), updated_at = now(), last_error = NULL
 WHERE outbox_id = ANY($1::bigint[])
"""
# A published or dead row stays as it is: a late failure report must not resurrect it.
_MARK_FAILED = """
UPDATE noetl.outbox o
   SET status = CASE WHEN f.dead THEN 'DEAD' ELSE 'FAILED' END,
       available_at = CASE WHEN f.dead THEN o.available_at ELSE now() + make_interval(secs => f.delay) END,
       last_error = f.error, updated_at = now()
  FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::bool[]) AS f(outbox_id, error, delay, dead)
 WHERE o.outbox_id = f.outbox_id AND o.status NOT IN ('PUBLISHED', 'DEAD')
RETURNING o.outbox_id, f.dead
"""
# One page of the oldest rows by primary key (ids grow with insertion time, so the walk needs no
# index of its own and no extra index write per publish), deleting those published before the
# cutoff. Other statuses stay (DEAD rows are the operator's); the target row's own status is
# checked again, so a concurrent pruner or a repeated mark-published never races it.
_PRUNE = """
WITH page AS (
  SELECT outbox_id, created_at FROM noetl.outbox WHERE outbox_id > $1 ORDER BY outbox_id LIMIT $2),
gone AS (
  DELETE FROM noetl.outbox o USING page
   WHERE o.outbox_id = page.outbox_id AND o.status = 'PUBLISHED'
     AND o.published_at < now() - make_interval(secs => $3)
  RETURNING o.outbox_id)
SELECT (SELECT count(*) FROM gone), (SELECT max(outbox_id) FROM page), (SELECT count(*) FROM page),
       (SELECT bool_and(created_at < now() - make_interval(secs => $3)) FROM page)
"""
_PENDING = "SELECT count(*) FROM noetl.outbox WHERE status IN ('PENDING', 'FAILED') AND available_at <= now()"
# Three probes of the partial indexes rather than one scan that would read every PUBLISHED row.
_COUNTS = f"""
SELECT ({_PENDING}),
       (SELECT count(*) FROM noetl.outbox WHERE status = 'IN_FLIGHT'),
       (SELECT count(*) FROM noetl.outbox WHERE status = 'DEAD')
"""
_LIST_DEAD = """
SELECT outbox_id, event_id, execution_id, subject, attempts, last_error, created_at, updated_at
  FROM noetl.outbox WHERE status = 'DEAD' AND outbox_id > $1 ORDER BY outbox_id LIMIT $2
"""
_COUNT_DEAD = "SELECT count(*) FROM noetl.outbox WHERE status = 'DEAD'"
_REQUEUE = """
UPDATE noetl.outbox SET status = 'PENDING', attempts = 0, available_at = now(), locked_at = NULL, updated_at = now()
 WHERE status = 'DEAD' AND ($1::bigint[] IS NULL OR outbox_id = ANY($1::bigint[]))
"""


def backoff_seconds(attempts: int, max_delay: int = 300) -> int:
    """min(max_delay, 2^clamp(attempts-1, 0, 8))."""
    exponent = min(max(attempts - 1, 0), 8)
    return int(min(max_delay, 2**exponent))


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _affected(status: str) -> int:
    return int(status.rsplit(maxsplit=1)[-1])


class OutboxStore:
    def __init__(self, pool: asyncpg.Pool, *, lease_seconds: float, max_attempts: int) -> None:
        self._pool = pool
        self._lease = float(lease_seconds)
        self._max_attempts = max_attempts

    async def claim(self, limit: int) -> Claimed:
        """Due rows in outbox_id order, now IN_FLIGHT with `attempts` incremented; limit clamped 1..1000."""
        limit = max(1, min(1000, limit))
        async with connection_errors("outbox claim"), self._pool.acquire() as conn:
            dead = _affected(await conn.execute(_DEAD_EXPIRED, self._lease, self._max_attempts))
            records = await conn.fetch(_CLAIM, self._lease, limit, self._max_attempts)
        records = sorted(records, key=lambda r: r[0])
        # execution_id and subject are nullable columns; a row without a subject fails its publish.
        rows = [Row(r[0], r[1], r[2] or 0, r[3] or "", r[4], r[5], r[6]) for r in records]
        return Claimed(rows, recovered=sum(1 for r in records if r[7]), dead_lettered=dead)

    async def mark_published(self, outbox_ids: Sequence[int]) -> int:
        """Idempotent; returns the rows affected."""
        async with connection_errors("outbox mark-published"):
            return _affected(await self._pool.execute(_MARK_PUBLISHED, list(outbox_ids)))

    async def mark_failed(self, failures: Sequence[Failure], max_delay: int) -> Marked:
        """Backs each row off by its attempts, or dead-letters it at the attempt limit.

        `delays` holds the backoff of every row asked for that is not dead-lettered, found or not
        (an unknown id still answers marked, as the reference does).
        """
        dead_flags = [f.attempts >= self._max_attempts for f in failures]
        delays = [
            0 if dead else backoff_seconds(f.attempts, max_delay)
            for f, dead in zip(failures, dead_flags, strict=True)
        ]
        async with connection_errors("outbox mark-failed"):
            records = await self._pool.fetch(
                _MARK_FAILED,
                [f.outbox_id for f in failures],
                [f.error[:ERROR_LIMIT] for f in failures],
                [float(d) for d in delays],
                dead_flags,
            )
        return Marked(
            delays={
                f.outbox_id: d for f, d, dead in zip(failures, delays, dead_flags, strict=True) if not dead
            },
            dead=[r[0] for r in records if r[1]],
        )

    async def pending(self) -> int:
        async with connection_errors("outbox pending-count"):
            return int(await self._pool.fetchval(_PENDING))

    async def counts(self) -> Counts:
        async with connection_errors("outbox counts"):
            row = await self._pool.fetchrow(_COUNTS)
        assert row is not None  # an aggregate always answers one row
        return Counts(pending=int(row[0]), in_flight=int(row[1]), dead=int(row[2]))

    async def prune_published(self, *, after: int, limit: int, retention_seconds: float) -> Pruned:
        """Deletes, among the `limit` rows after `after` in outbox_id order, those published more
        than `retention_seconds` ago."""
        async with connection_errors("outbox prune"):
            row = await self._pool.fetchrow(_PRUNE, after, limit, retention_seconds)
        assert row is not None  # aggregates always answer one row
        seen = int(row[2])
        return Pruned(deleted=int(row[0]), last_id=row[1], more=seen == limit and bool(row[3]))

    async def list_dead(self, *, after: int, limit: int) -> tuple[list[DeadRow], int]:
        """One page of DEAD rows after the cursor, and the number of DEAD rows in all."""
        async with connection_errors("outbox dead letters"), self._pool.acquire() as conn:
            records = await conn.fetch(_LIST_DEAD, after, limit)
            total = int(await conn.fetchval(_COUNT_DEAD))
        rows = [
            DeadRow(r[0], r[1], r[2], r[3] or "", r[4], r[5] or "", _utc(r[6]), _utc(r[7])) for r in records
        ]
        return rows, total

    async def requeue(self, outbox_ids: Sequence[int] | None) -> int:
        """DEAD → PENDING with attempts reset; None requeues every dead row. Returns the rows moved."""
        async with connection_errors("outbox requeue"):
            return _affected(
                await self._pool.execute(_REQUEUE, None if outbox_ids is None else list(outbox_ids))
            )
