"""Retention of published outbox rows: a transport record, deleted once nothing can need it.

A `PUBLISHED` row is never read or changed again: the event log holds the event, the stream
holds the message, and no claim, failure report or requeue touches the row. Kept forever, every
event would leave a second full copy of itself in the outbox. So each run walks the table from
its oldest row in primary-key pages and deletes the rows published more than the retention ago,
stopping at the first page that reaches younger rows. Rows in any other status stay; `DEAD`
rows are the operator's to requeue or inspect. Several replicas may prune at once: a row two of
them reach is deleted by one and skipped by the other.
"""

from __future__ import annotations

import logging

from kernel.lifecycle import Periodic
from services.outbox.service import Outbox

log = logging.getLogger(__name__)

PAGE = 5000
# One run deletes at most this many pages; the next run goes on from the oldest row again.
MAX_PAGES = 200


class Pruner(Periodic):
    def __init__(
        self, outbox: Outbox, *, retention_seconds: float, interval: float, page: int = PAGE
    ) -> None:
        super().__init__("outbox-pruner", self.prune, interval)
        self._outbox = outbox
        self._retention = retention_seconds
        self._page = page

    async def prune(self) -> int:
        """One run; returns the rows deleted."""
        after, deleted = 0, 0
        for _ in range(MAX_PAGES):
            page = await self._outbox.prune_published(
                after=after, limit=self._page, retention_seconds=self._retention
            )
            deleted += page.deleted
            if not page.more or page.last_id is None:
                break
            after = page.last_id
        if deleted:
            log.info("outbox: deleted %d rows published more than %.0f s ago", deleted, self._retention)
        return deleted
