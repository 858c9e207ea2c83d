"""The worker's intake: a durable JetStream pull consumer per pool, shared by every worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from kernel.lifecycle import Background
from worker.executor import Executor, Notification, Outcome

log = logging.getLogger(__name__)

# The launcher waits for this line in the worker's log (noetl_mesh/mesh.py).
READY_MARKER = "worker ready: consuming pools"


class Consumer(Background):
    """Runs from `start()`; `stop()` (or `shutdown()`) stops the intake at once; commands in flight
    then get `grace` seconds to finish. Those still running after it are handed back: cancelled
    without closing events, their notifications returned to the stream, and their claim lease left
    to run out so that the server can give the command to another worker (dsl.md §17.7).
    """

    def __init__(
        self,
        js: JetStreamContext,
        executor: Executor,
        *,
        stream: str,
        consumer: str,
        pools: tuple[str, ...],
        concurrency: int,
        ack_wait: float,
        grace: float = 30.0,
    ) -> None:
        super().__init__("intake")
        self._js = js
        self._executor = executor
        self._stream = stream
        self._consumer = consumer
        self._pools = pools
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._ack_wait = ack_wait
        self._grace = grace
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        # Every durable consumer exists before the worker says it is ready: consumers deliver
        # only messages published after their creation, so a launcher that waited less could
        # issue commands nobody would ever see (until the reaper re-announced them).
        subscriptions = [await self._subscribe(pool) for pool in self._pools]
        log.info("%s %s", READY_MARKER, ",".join(self._pools))
        async with asyncio.TaskGroup() as group:
            for durable, subscription in subscriptions:
                group.create_task(self._pull(durable, subscription))
        if not self._running:
            return
        log.info("intake stopped; waiting up to %gs for %d running commands", self._grace, len(self._running))
        _done, pending = await asyncio.wait(set(self._running), timeout=self._grace)
        if pending:
            log.warning("handing back %d commands still running after %gs", len(pending), self._grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _subscribe(self, pool: str) -> tuple[str, JetStreamContext.PullSubscription]:
        durable = self._consumer if pool == "shared" else f"{self._consumer}_{pool}"
        subscription = await self._js.pull_subscribe(
            f"noetl.commands.{pool}.>",
            durable=durable,
            stream=self._stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
                max_deliver=1000,
                ack_wait=self._ack_wait,
                max_ack_pending=64,
            ),
        )
        return durable, subscription

    async def _pull(self, durable: str, subscription: JetStreamContext.PullSubscription) -> None:
        while await self._slot():
            try:
                messages = await subscription.fetch(1, timeout=1.0)
            except NatsTimeout:
                self._slots.release()
                continue
            except Exception:
                self._slots.release()
                log.exception("fetch from %s failed", durable)
                await self.pause(1.0)
                continue
            task = asyncio.create_task(self._handle(messages[0]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    async def _slot(self) -> bool:
        """Wait for a free slot; False (and no slot held) once the consumer is stopping."""
        if self.stopping.is_set():
            return False
        acquire = asyncio.ensure_future(self._slots.acquire())
        stopping = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait((acquire, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not acquire.done():
            acquire.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquire
        if acquire.done() and not acquire.cancelled():
            if not self.stopping.is_set():
                return True
            self._slots.release()
        return False

    async def _handle(self, message: Msg) -> None:
        try:
            note = _parse(message.data)
            if note is None:
                await message.term()
                return
            outcome = await self._executor.handle(note)
            if outcome == Outcome.RETRY:
                await message.nak(delay=2)
            else:
                await message.ack()
        except asyncio.CancelledError:
            # Handed back at shutdown: redelivered, and claimable once the lease has run out.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(message.nak(delay=2), timeout=2)
            raise
        except Exception:
            log.exception("command notification failed")
            with contextlib.suppress(Exception):
                await message.nak(delay=2)
        finally:
            self._slots.release()


def _parse(data: bytes) -> Notification | None:
    try:
        body = orjson.loads(data)
        return Notification(
            execution_id=int(body["execution_id"]),
            event_id=int(body["event_id"]),
            command_id=int(body["command_id"]),
            step=str(body.get("step", "")),
        )
    except (ValueError, KeyError, TypeError):
        log.error("dropping malformed command notification: %r", data[:200])
        return None
