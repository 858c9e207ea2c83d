"""One upstream event subscription per execution, fanned out to every watcher in the gateway.

The first watcher of an execution opens `EventService.Subscribe` from the start of its log; the
feed keeps what it received, so a later watcher — or one resuming with `Last-Event-ID` — replays
from memory and then follows live. When the last watcher leaves, the feed is closed. Each watcher
sees the events in id order, each exactly once, ending after the terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
from noetl.v1 import common_pb2, events_pb2, events_pb2_grpc
from prometheus_client import Counter

from kernel.errors import MeshError
from kernel.grpc_client import Sharded
from kernel.rpc_errors import from_rpc_error

UPSTREAMS = Counter(
    "noetl_gateway_event_feeds_opened_total", "Upstream event subscriptions opened by the gateway"
)


class _Feed:
    def __init__(self, stub: events_pb2_grpc.EventServiceStub, execution_id: int) -> None:
        self.events: list[common_pb2.Event] = []
        self.done = False
        self.error: MeshError | None = None
        self.watchers = 0
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump(stub, execution_id), name=f"event-feed-{execution_id}")

    async def _pump(self, stub: events_pb2_grpc.EventServiceStub, execution_id: int) -> None:
        UPSTREAMS.inc()
        try:
            async for item in stub.Subscribe(events_pb2.SubscribeRequest(execution_id=execution_id)):
                async with self._changed:
                    self.events.append(item.event)
                    self._changed.notify_all()
        except grpc.aio.AioRpcError as exc:
            self.error = from_rpc_error(exc)
        finally:
            async with self._changed:
                self.done = True
                self._changed.notify_all()

    async def wait_beyond(self, seen: int, within: float) -> bool:
        """Waits until there is more than `seen` events or the feed ended; False on timeout."""
        async with self._changed:
            if len(self.events) > seen or self.done:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), within)
                return True
        return False

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class EventFeeds:
    def __init__(self, events: Sharded[events_pb2_grpc.EventServiceStub]) -> None:
        self._events = events
        self._feeds: dict[int, _Feed] = {}

    def join(self, execution_id: int) -> _Feed:
        """The execution's feed, opened if nobody watches it yet; pair with `leave`."""
        feed = self._feeds.get(execution_id)
        if feed is None or feed.error is not None:
            feed = self._feeds[execution_id] = _Feed(self._events.for_execution(execution_id), execution_id)
        feed.watchers += 1
        return feed

    async def leave(self, execution_id: int, feed: _Feed) -> None:
        feed.watchers -= 1
        if feed.watchers == 0:
            if self._feeds.get(execution_id) is feed:
                del self._feeds[execution_id]
            await feed.close()


async def follow(
    feed: _Feed, after_event_id: int | None, keepalive: float
) -> AsyncIterator[list[common_pb2.Event] | None]:
    """The feed's events after the cursor, in order, in lists of what had arrived (a replay of
    thousands of events is written in a few large chunks, not one write per event); `None`
    marks an idle `keepalive` period.

    Raises:
        MeshError: the upstream subscription failed (NotFound for an unknown execution).
    """
    seen = 0
    while True:
        if seen < len(feed.events):
            available = feed.events[seen:]
            seen += len(available)
            batch = [e for e in available if after_event_id is None or e.event_id > after_event_id]
            if batch:
                yield batch
        if feed.done:
            if feed.error is not None:
                raise feed.error
            return
        if not await feed.wait_beyond(seen, keepalive):
            yield None
