"""The outbox publisher: drains what the fast relay missed to JetStream, with backoff.

A batch is claimed, published with every acknowledgement outstanding at once (JetStream async
publish), then marked in two statements: the acknowledged rows published, the others failed with
their backoff. Each message carries `Nats-Msg-Id`, so a row sent again after a crash or a lost
acknowledgement is dropped by the stream as long as the second copy arrives within its duplicate
window (see `check_duplicate_windows`).

While the NATS connection is down nothing is claimed: an outage must not spend rows' attempts
and push them towards DEAD. Publishing resumes as soon as the client has reconnected.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from kernel.bus import message_id
from kernel.config import ConfigError
from kernel.lifecycle import Background
from services.outbox import metrics
from services.outbox.service import Outbox
from services.outbox.store import Failure, Row

log = logging.getLogger(__name__)

# How often a publisher waiting for NATS to come back looks at the connection.
_RECONNECT_POLL_SECONDS = 0.2
_MAX_ERROR_SLEEP_SECONDS = 60.0
# While a backlog lasts: batches with acknowledgements outstanding at once, and rows in them.
# Rows must stay below the 4000 unacknowledged messages nats-py's async publish admits: past it
# a publish would wait for an acknowledgement that only settling (which comes later) can give up on.
_MAX_BATCHES_ON_WIRE = 4
_MAX_ROWS_ON_WIRE = 3000


async def check_duplicate_windows(
    js: JetStreamContext, streams: Iterable[str], *, lease_seconds: float, publish_timeout: float
) -> None:
    """Refuses to run when a stream could forget a message id before its re-send arrives.

    A row is sent again at the earliest when its lease expires (or its failure is recorded),
    and that copy must land inside the stream's duplicate window to be dropped.

    Raises:
        ConfigError: lease plus publish timeout is not below a stream's duplicate window.
    """
    problems = []
    for name in streams:
        info = await js.stream_info(name)
        window = float(info.config.duplicate_window or 0.0)
        if lease_seconds + publish_timeout >= window:
            problems.append(
                f"stream {name}: duplicate window {window:g}s is not above the outbox lease "
                f"({lease_seconds:g}s) plus the publish timeout ({publish_timeout:g}s)"
            )
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class OnWire:
    """A batch whose messages are out and whose acknowledgements may still be coming."""

    rows: list[Row]
    acks: list[tuple[Row, asyncio.Future[object]]]
    failures: list[Failure]  # rows that could not even be sent
    started: float


@dataclass(frozen=True, slots=True)
class Sent:
    """One batch after publishing: what JetStream acknowledged and what failed, with why."""

    published: list[Row]
    failures: list[Failure]


class Publisher(Background):
    """Runs from `start()` until `shutdown()` (batches already claimed are published and marked first).

    While a backlog lasts, several batches are on the wire at once (up to 4, at most 3000 rows):
    the next batch is claimed while earlier ones wait for their acknowledgements, and a batch is
    marked while later ones are out. Batches are sent one after the other, so messages leave in
    outbox_id order.

    A failing bus or database only slows it down: `error_sleep` doubles with each failed round
    up to 60 s and is reset by the first batch that publishes anything.
    """

    def __init__(
        self,
        outbox: Outbox,
        nc: NatsClient,
        *,
        batch_size: int = 100,
        idle_sleep: float = 1.0,
        error_sleep: float = 5.0,
        publish_timeout: float = 5.0,
    ) -> None:
        super().__init__("outbox-publisher")
        self._outbox = outbox
        self._nc = nc
        self._js = nc.jetstream()
        self._batch = batch_size
        self._depth = max(1, min(_MAX_BATCHES_ON_WIRE, _MAX_ROWS_ON_WIRE // batch_size))
        self._idle = idle_sleep
        self._error_sleep = error_sleep
        self._timeout = publish_timeout
        self._failed_rounds = 0

    async def run(self) -> None:
        on_wire: collections.deque[OnWire] = collections.deque()
        ahead: asyncio.Task[list[Row]] | None = None
        recording: asyncio.Task[None] | None = None
        try:
            while True:
                if ahead is None and self._may_claim(len(on_wire)):
                    ahead = asyncio.create_task(self._outbox.claim(self._batch))
                # Batches on the wire are settled while a claim runs; with none, wait for the claim.
                if ahead is not None and (not on_wire or ahead.done()):
                    claim, ahead = ahead, None
                    try:
                        rows = await claim
                    except Exception:
                        log.exception("outbox claim failed")
                        rows = None
                    if rows:
                        if len(rows) == self._batch and self._may_claim(len(on_wire) + 1):
                            # A backlog: the next claim runs while this batch goes out.
                            ahead = asyncio.create_task(self._outbox.claim(self._batch))
                        on_wire.append(await self._put_on_wire(rows))
                        if ahead is not None:
                            continue  # settle only once the next batch is on the wire too
                    elif not on_wire:
                        await (self._failed() if rows is None else self.pause(self._idle))
                        continue
                if not on_wire:
                    if self.stopping.is_set():
                        return
                    if not self._nc.is_connected:
                        await self.pause(_RECONNECT_POLL_SECONDS)
                    continue
                sent = await self._settle(on_wire.popleft())
                if recording is not None:
                    await recording  # at most one batch's marks outstanding
                recording = asyncio.create_task(self._record(sent))
                if sent.published:
                    self._failed_rounds = 0
                elif not on_wire and ahead is None:
                    await self._failed()
                else:
                    self._failed_rounds += 1  # claimed rows are not left waiting out a backoff
        finally:
            if ahead is not None:
                ahead.cancel()  # only on cancellation: the loop never leaves a claim behind otherwise
            if recording is not None:
                await recording

    def _may_claim(self, batches_on_wire: int) -> bool:
        """Another claim now? Not when stopping or disconnected, nor past the first batch after a failure."""
        if self.stopping.is_set() or not self._nc.is_connected:
            return False
        return batches_on_wire < (1 if self._failed_rounds else self._depth)

    async def publish(self, rows: list[Row]) -> int:
        """Publishes one claimed batch and records the outcome of every row; returns the published count."""
        sent = await self._settle(await self._put_on_wire(rows))
        await self._record(sent)
        return len(sent.published)

    async def _put_on_wire(self, rows: list[Row]) -> OnWire:
        started = time.perf_counter()
        acks: list[tuple[Row, asyncio.Future[object]]] = []
        failures: list[Failure] = []
        for row in rows:
            if not self._nc.is_connected:
                # nats-py would buffer the message until a reconnect and send it then, at an
                # unknown time; the row is retried after its backoff instead.
                failures.append(Failure(row.outbox_id, "publish failed: not connected to NATS", row.attempts))
                continue
            try:
                future = await self._js.publish_async(
                    row.subject,
                    row.payload.encode(),
                    headers={"Nats-Msg-Id": message_id(row.subject, row.event_id)},
                )
            except Exception as exc:
                failures.append(Failure(row.outbox_id, f"publish failed: {_describe(exc)}", row.attempts))
                continue
            acks.append((row, future))
        return OnWire(rows, acks, failures, started)

    async def _settle(self, batch: OnWire) -> Sent:
        """Waits for the batch's acknowledgements until the publish timeout, counted from its send."""
        if batch.acks:
            remaining = max(0.0, self._timeout - (time.perf_counter() - batch.started))
            _, late = await asyncio.wait([future for _, future in batch.acks], timeout=remaining)
            for future in late:
                future.cancel()
        published: list[Row] = []
        failures = list(batch.failures)
        for row, future in batch.acks:
            if future.cancelled():
                error = f"publish failed: no acknowledgement within {self._timeout:g}s"
                failures.append(Failure(row.outbox_id, error, row.attempts))
            elif (problem := future.exception()) is not None:
                failures.append(Failure(row.outbox_id, f"publish failed: {_describe(problem)}", row.attempts))
            else:
                published.append(row)
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - batch.started)
        if failures:
            log.warning(
                "outbox: %d of %d rows not published (%s)", len(failures), len(batch.rows), failures[0].error
            )
        return Sent(published, failures)

    async def _record(self, sent: Sent) -> None:
        """Marks the batch. On a database failure the rows stay IN_FLIGHT and come back after their lease."""
        try:
            if sent.published:
                await self._outbox.mark_published([row.outbox_id for row in sent.published])
                for row in sent.published:
                    metrics.ATTEMPTS.observe(row.attempts)
            if sent.failures:
                await self._outbox.fail_many(sent.failures)
        except Exception:
            log.exception("could not mark %d outbox rows", len(sent.published) + len(sent.failures))

    async def _failed(self) -> None:
        """A round published nothing: back off, unless the bus is away (then the loop waits for it)."""
        self._failed_rounds += 1
        if self._nc.is_connected:
            await self.pause(self._backoff())

    def _backoff(self) -> float:
        return float(min(_MAX_ERROR_SLEEP_SECONDS, self._error_sleep * 2 ** min(self._failed_rounds - 1, 6)))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
