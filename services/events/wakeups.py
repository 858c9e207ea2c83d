"""Wake-ups for live subscribers: a core NATS subscription on an execution's event subject.

The event stream carries every committed event (mirrored through the outbox), so any replica of
the event service can wake its watchers, whichever replica wrote the event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from kernel.bus import execution_events_filter


class Wakeups:
    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc

    @contextlib.asynccontextmanager
    async def watch(self, execution_id: int) -> AsyncIterator[asyncio.Event]:
        """Yields an event that is set whenever something was written for the execution."""
        signal = asyncio.Event()

        async def on_message(_: Msg) -> None:
            signal.set()

        subscription = await self._nc.subscribe(execution_events_filter(execution_id), cb=on_message)
        try:
            yield signal
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
