"""The outbox publisher: drains what the fast relay missed to JetStream, with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge

from services.common.bus import message_id
from services.outbox.store import OutboxStore, Row

log = logging.getLogger(__name__)

CLAIMED = Counter("noetl_outbox_claimed_total", "Outbox rows claimed by the publisher")
PUBLISHED = Counter("noetl_outbox_published_total", "Outbox rows published by the publisher")
FAILED = Counter("noetl_outbox_failed_total", "Outbox publish failures")
PENDING = Gauge("noetl_outbox_pending", "Outbox rows due for publishing")


class Publisher:
    """Lifecycle: `run()` until `shutdown()`; a failing bus or database only slows it down."""

    def __init__(
        self,
        store: OutboxStore,
        js: JetStreamContext,
        *,
        batch_size: int = 100,
        idle_sleep: float = 1.0,
        error_sleep: float = 5.0,
    ) -> None:
        self._store = store
        self._js = js
        self._batch = batch_size
        self._idle = idle_sleep
        self._error_sleep = error_sleep
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                rows = await self._store.claim(self._batch)
                PENDING.set(await self._store.pending())
            except Exception:
                log.exception("outbox claim failed")
                await self._sleep(self._error_sleep)
                continue
            if not rows:
                await self._sleep(self._idle)
                continue
            CLAIMED.inc(len(rows))
            await self.publish(rows)

    async def publish(self, rows: list[Row]) -> None:
        published: list[int] = []
        for row in rows:
            try:
                await self._js.publish(
                    row.subject,
                    row.payload.encode(),
                    headers={"Nats-Msg-Id": message_id(row.subject, row.outbox_id, row.event_id)},
                    timeout=2.0,
                )
            except Exception as exc:
                FAILED.inc()
                await self._store.mark_failed(row.outbox_id, f"publish failed: {exc}", row.attempts, 300)
                continue
            published.append(row.outbox_id)
        if published:
            await self._store.mark_published(published)
            PUBLISHED.inc(len(published))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def shutdown(self) -> None:
        self._stop.set()
