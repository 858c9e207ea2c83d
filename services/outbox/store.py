"""SQL of the outbox context: every state transition of noetl.outbox (data-model.md §8)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Row:
    outbox_id: int
    event_id: int
    execution_id: int
    subject: str
    payload: str
    payload_codec: str
    attempts: int


# An IN_FLIGHT row whose lease expired is claimable again, unless it used all its attempts:
# those go to DEAD first (same statement order: dead-letter, then claim).
_DEAD_EXPIRED = """
UPDATE noetl.outbox SET status = 'DEAD', last_error = 'lease expired after ' || attempts || ' attempts',
       updated_at = now()
 WHERE status = 'IN_FLIGHT' AND locked_at <= now() - make_interval(secs => $1) AND attempts >= $2
"""
_CLAIM = """
WITH ready AS (
  SELECT outbox_id FROM noetl.outbox
   WHERE (status IN ('PENDING', 'FAILED') AND available_at <= now())
      OR (status = 'IN_FLIGHT' AND locked_at <= now() - make_interval(secs => $1))
   ORDER BY outbox_id
   LIMIT $2
   FOR UPDATE SKIP LOCKED)
UPDATE noetl.outbox o
   SET status = 'IN_FLIGHT', attempts = attempts + 1, locked_at = now(), updated_at = now()
  FROM ready WHERE o.outbox_id = ready.outbox_id
RETURNING o.outbox_id, o.event_id, o.execution_id, o.subject, o.payload::text, o.payload_codec, o.attempts
"""


def backoff_seconds(attempts: int, max_delay: int = 300) -> int:
    """min(max_delay, 2^clamp(attempts-1, 0, 8))."""
    exponent = min(max(attempts - 1, 0), 8)
    return int(min(max_delay, 2**exponent))


class OutboxStore:
    def __init__(self, pool: asyncpg.Pool, *, lease_seconds: float, max_attempts: int) -> None:
        self._pool = pool
        self._lease = float(lease_seconds)
        self._max_attempts = max_attempts

    async def claim(self, limit: int) -> list[Row]:
        limit = max(1, min(1000, limit))
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_DEAD_EXPIRED, self._lease, self._max_attempts)
            rows = await conn.fetch(_CLAIM, self._lease, limit)
        return [Row(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in sorted(rows, key=lambda r: r[0])]

    async def mark_published(self, outbox_ids: list[int]) -> int:
        status = await self._pool.execute(
            "UPDATE noetl.outbox SET status = 'PUBLISHED', published_at = now(), updated_at = now(), "
            "last_error = NULL WHERE outbox_id = ANY($1::bigint[])",
            outbox_ids,
        )
        return int(status.split()[-1])

    async def mark_failed(self, outbox_id: int, error: str, attempts: int, max_delay: int) -> int:
        """Returns the backoff in seconds; 0 when the row is dead-lettered."""
        if attempts >= self._max_attempts:
            await self._pool.execute(
                "UPDATE noetl.outbox SET status = 'DEAD', last_error = $2, updated_at = now() "
                "WHERE outbox_id = $1 AND status <> 'PUBLISHED'",
                outbox_id,
                error[:2000],
            )
            return 0
        delay = backoff_seconds(attempts, max_delay)
        await self._pool.execute(
            "UPDATE noetl.outbox SET status = 'FAILED', available_at = now() + make_interval(secs => $3), "
            "last_error = $2, updated_at = now() WHERE outbox_id = $1 AND status <> 'PUBLISHED'",
            outbox_id,
            error[:2000],
            float(delay),
        )
        return delay

    async def pending(self) -> int:
        value = await self._pool.fetchval(
            "SELECT count(*) FROM noetl.outbox WHERE status IN ('PENDING', 'FAILED') AND available_at <= now()"
        )
        return int(value)
