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

from worker.executor import Executor, Notification, Outcome

log = logging.getLogger(__name__)


class Consumer:
    """Lifecycle: `run()` until `shutdown()`; then in-flight commands finish before it returns."""

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
    ) -> None:
        self._js = js
        self._executor = executor
        self._stream = stream
        self._consumer = consumer
        self._pools = pools
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._ack_wait = ack_wait
        self._stop = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for pool in self._pools:
                group.create_task(self._pull(pool))
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def shutdown(self) -> None:
        self._stop.set()

    async def _pull(self, pool: str) -> None:
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
        while not self._stop.is_set():
            await self._slots.acquire()
            try:
                messages = await subscription.fetch(1, timeout=1.0)
            except NatsTimeout:
                self._slots.release()
                continue
            except Exception:
                self._slots.release()
                log.exception("fetch from %s failed", durable)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=1.0)
                continue
            task = asyncio.create_task(self._handle(messages[0]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

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
