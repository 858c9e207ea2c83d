"""Outbox use cases: every caller (RPCs, the publisher) goes through here, so metrics see all of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kernel.errors import InvalidArgument
from services.outbox import metrics
from services.outbox.store import Counts, DeadRow, Failure, OutboxStore, Pruned, Row

MAX_CLAIM = 1000
DEFAULT_LIMIT = 100
DEFAULT_MAX_DELAY = 300


@dataclass(frozen=True, slots=True)
class DeadPage:
    rows: list[DeadRow]
    dead: int
    next_after: int | None


class Outbox:
    def __init__(self, store: OutboxStore) -> None:
        self._store = store

    async def claim(self, limit: int) -> list[Row]:
        """Up to `limit` (clamped 1..1000) due rows, leased to the caller."""
        claimed = await self._store.claim(max(1, min(MAX_CLAIM, limit)))
        metrics.CLAIMED.inc(len(claimed.rows))
        metrics.LEASE_RECOVERED.inc(claimed.recovered)
        metrics.DEAD.inc(claimed.dead_lettered)
        return claimed.rows

    async def mark_published(self, outbox_ids: Sequence[int]) -> int:
        """Raises InvalidArgument for an empty list."""
        if not outbox_ids:
            raise InvalidArgument("outbox_ids must not be empty")
        marked = await self._store.mark_published(outbox_ids)
        metrics.PUBLISHED.inc(marked)
        return marked

    async def mark_failed(self, failure: Failure, max_delay: int = DEFAULT_MAX_DELAY) -> int:
        """The row's backoff in seconds, 0 when it reached the attempt limit and is now DEAD.

        Raises:
            InvalidArgument: an empty error, or attempts or max_delay below 1.
        """
        if not failure.error.strip():
            raise InvalidArgument("error must not be empty")
        if failure.attempts < 1 or max_delay < 1:
            raise InvalidArgument("attempts and max_delay_seconds must be at least 1")
        marked = await self.fail_many([failure], max_delay)
        return marked.get(failure.outbox_id, 0)

    async def fail_many(
        self, failures: Sequence[Failure], max_delay: int = DEFAULT_MAX_DELAY
    ) -> dict[int, int]:
        """Records every failure in one statement; returns the backoff of each row not dead-lettered."""
        if not failures:
            return {}
        marked = await self._store.mark_failed(failures, max_delay)
        metrics.FAILED.inc(len(failures))
        metrics.DEAD.inc(len(marked.dead))
        return marked.delays

    async def prune_published(self, *, after: int, limit: int, retention_seconds: float) -> Pruned:
        """One page of the published-row retention (services/outbox/pruner.py)."""
        pruned = await self._store.prune_published(
            after=after, limit=limit, retention_seconds=retention_seconds
        )
        metrics.PRUNED.inc(pruned.deleted)
        return pruned

    async def pending(self) -> int:
        return await self._store.pending()

    async def counts(self) -> Counts:
        return await self._store.counts()

    async def list_dead(self, *, after: int, limit: int) -> DeadPage:
        """One page of dead letters in outbox_id order; `limit` clamped 1..1000 (0 = 100)."""
        limit = max(1, min(MAX_CLAIM, limit or DEFAULT_LIMIT))
        rows, dead = await self._store.list_dead(after=after, limit=limit)
        return DeadPage(rows, dead, rows[-1].outbox_id if len(rows) == limit else None)

    async def requeue(self, outbox_ids: Sequence[int], *, every: bool) -> int:
        """Dead rows back to PENDING with attempts 0; the publisher takes them on its next claim.

        Raises:
            InvalidArgument: neither ids nor `every`, or both.
        """
        if every == bool(outbox_ids):
            raise InvalidArgument("give either outbox_ids or all, not both or neither")
        return await self._store.requeue(None if every else outbox_ids)
