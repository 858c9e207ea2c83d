"""The fast path of the outbox: publish what a transaction enqueued right after it commits.

Rows arrive IN_FLIGHT (the writer holds their lease). Published ids are marked in small batches
through the outbox service; a failed publish is marked failed so the publisher retries it with
backoff. Anything lost here (crash, outbox service down) is recovered by the publisher when the
lease expires, and JetStream's duplicate window drops the second copy.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from nats.js import JetStreamContext

from kernel.bus import message_id
from kernel.lifecycle import Lifecycle, Periodic
from services.events.chain import OutboxEntry

log = logging.getLogger(__name__)


class OutboxMarker(Protocol):
    async def mark_published(self, outbox_ids: list[int]) -> None: ...

    async def mark_failed(self, outbox_id: int, error: str, attempts: int) -> None: ...


class Relay(Lifecycle):
    def __init__(self, js: JetStreamContext, marker: OutboxMarker, *, mark_interval: float = 0.05) -> None:
        self._js = js
        self._marker = marker
        self._published: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._flusher = Periodic("relay-mark-published", self._flush, mark_interval)
        self._closed = False

    async def start(self) -> None:
        await self._flusher.start()

    def submit(self, entries: list[OutboxEntry]) -> None:
        """Publishes in the background; never blocks or fails the caller's request."""
        if not entries or self._closed:
            return
        task = asyncio.create_task(self._publish(entries))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, entries: list[OutboxEntry]) -> None:
        results = await asyncio.gather(
            *(self._publish_one(entry) for entry in entries), return_exceptions=True
        )
        for entry, outcome in zip(entries, results, strict=True):
            if isinstance(outcome, BaseException):
                try:
                    await self._marker.mark_failed(entry.outbox_id, f"relay publish failed: {outcome}", 1)
                except Exception:
                    log.warning(
                        "could not mark outbox row %s failed; the publisher will retry it", entry.outbox_id
                    )
            else:
                self._published.append(entry.outbox_id)

    async def _publish_one(self, entry: OutboxEntry) -> None:
        await self._js.publish(
            entry.subject,
            entry.payload.encode(),
            headers={"Nats-Msg-Id": message_id(entry.subject, entry.event_id)},
            timeout=2.0,
        )

    async def _flush(self) -> None:
        if not self._published:
            return
        batch, self._published = self._published, []
        try:
            await self._marker.mark_published(batch)
        except Exception:
            # The rows stay IN_FLIGHT; the publisher re-sends them after the lease and the
            # stream's duplicate window absorbs the repeat.
            log.warning("could not mark %d outbox rows published", len(batch))

    async def shutdown(self) -> None:
        """Finishes in-flight publishes and marks, then stops. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flusher.shutdown()
        await self._flush()
