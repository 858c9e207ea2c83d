"""How the owning shard learns of new events: a durable JetStream consumer of its event subjects.

The events service never calls this service (the step pipeline runs one way). Every committed
event reaches the `NOETL_EVENTS` stream through the outbox — relayed right after its commit,
retried by the outbox publisher otherwise — and this feed, one durable consumer per shard,
turns each delivery into projections (`Projector.observe`) and, for a command's completion, an
orchestration pass. A message is acknowledged only after both are written, so a crash anywhere
in between means a redelivery, and both steps are idempotent. A message that keeps failing is
given up after `max_deliver` attempts (logged); the reconciler still re-drives its execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter

from kernel import failpoints, jsonutil
from kernel.lifecycle import Background
from kernel.timeutil import as_utc, utcnow
from services.execution.engine.records import EventRecord
from services.execution.orchestration.orchestrator import TRIGGERS, Orchestrator
from services.execution.orchestration.projector import Projector
from services.execution.ports import Appended, LogEvent

log = logging.getLogger(__name__)

FED = Counter("noetl_execution_feed_total", "Event feed deliveries", ["outcome"])
for _outcome in ("applied", "retried", "given_up", "malformed"):
    FED.labels(_outcome)


@dataclass(frozen=True, slots=True)
class FeedSettings:
    stream: str
    durable: str
    subject: str
    batch: int = 256
    ack_wait_seconds: float = 30.0
    max_deliver: int = 20


@dataclass(frozen=True, slots=True)
class Delivery:
    message: Msg
    event: LogEvent
    record: EventRecord
    # False for an event mirrored by reference (too large for a NATS message): its JSON fields
    # are not in the message, so it is read from the log instead.
    complete: bool = True


class EventFeed(Background):
    """Runs from `start()` until `shutdown()`. Re-creates its consumer when NATS lost it."""

    def __init__(
        self,
        js: JetStreamContext,
        projector: Projector,
        orchestrator: Orchestrator,
        settings: FeedSettings,
        *,
        prepare: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__("event-feed")
        self._js = js
        self._projector = projector
        self._orchestrator = orchestrator
        self._settings = settings
        self._prepare = prepare

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                await self._prepare()
                subscription = await self._subscribe()
            except Exception as exc:
                log.warning("event feed cannot subscribe yet (%s); retrying", exc)
                await self.pause(1.0)
                continue
            await self._pull(subscription)
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        return await self._js.pull_subscribe(
            self._settings.subject,
            durable=self._settings.durable,
            stream=self._settings.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                # A new consumer starts at the stream's end: older runs are the reconciler's.
                deliver_policy=DeliverPolicy.NEW,
                ack_wait=self._settings.ack_wait_seconds,
                max_deliver=self._settings.max_deliver,
                max_ack_pending=self._settings.batch * 8,
            ),
        )

    async def _pull(self, subscription: JetStreamContext.PullSubscription) -> None:
        """Until stopped, or until the consumer fails (then the caller subscribes again)."""
        while not self.stopping.is_set():
            try:
                messages = await subscription.fetch(self._settings.batch, timeout=1.0)
            except NatsTimeout:
                continue
            except Exception as exc:
                log.warning("event feed fetch failed (%s); re-subscribing", exc)
                await self.pause(0.5)
                return
            await self.apply(messages)

    async def apply(self, messages: Sequence[Msg]) -> None:
        """One fetched batch: each execution's events in id order, executions side by side."""
        failpoints.hit("feed.apply")
        by_execution: dict[int, list[Delivery]] = {}
        for message in messages:
            delivery = _parse(message)
            if delivery is None:
                FED.labels("malformed").inc()
                with contextlib.suppress(Exception):
                    await message.term()
                continue
            by_execution.setdefault(delivery.event.execution_id, []).append(delivery)
        applied = await asyncio.gather(*(self._apply_one(eid, items) for eid, items in by_execution.items()))
        # Acknowledged together, after every execution of the batch is written: one write to
        # the NATS connection per batch instead of one per execution.
        for deliveries in applied:
            for delivery in deliveries:
                with contextlib.suppress(Exception):
                    await delivery.message.ack()

    async def _apply_one(self, execution_id: int, deliveries: list[Delivery]) -> list[Delivery]:
        """The deliveries to acknowledge: all of them once applied, none when they were handed
        back for redelivery."""
        deliveries.sort(key=lambda d: d.event.event_id)
        try:
            # The relay often brings a pass's own events before the pass has written their rows:
            # once it is done, `Projector.written` knows them and their copies here cost nothing.
            await self._orchestrator.barrier(execution_id)
            events = [
                d.event if d.complete else await self._projector.read(execution_id, d.event)
                for d in deliveries
            ]
            await asyncio.gather(
                self._projector.observe(execution_id, events),
                self._drive(execution_id, deliveries),
            )
        except Exception as exc:
            await self._retry(execution_id, deliveries, exc)
            return []
        FED.labels("applied").inc(len(deliveries))
        return deliveries

    async def _drive(self, execution_id: int, deliveries: list[Delivery]) -> None:
        committed = _chain(deliveries)
        kinds = [d.event.kind for d in deliveries]
        if any(kind in TRIGGERS for kind in kinds):
            await self._orchestrator.advance(execution_id, kinds, committed)
        elif committed is not None:
            await self._orchestrator.absorb(execution_id, committed)

    async def _retry(self, execution_id: int, deliveries: list[Delivery], exc: Exception) -> None:
        attempts = max(_delivered(d.message) for d in deliveries)
        if attempts >= self._settings.max_deliver:
            FED.labels("given_up").inc(len(deliveries))
            log.error(
                "execution %s: giving up %d events after %d deliveries (%s); the reconciler re-drives it",
                execution_id,
                len(deliveries),
                attempts,
                exc,
            )
            for delivery in deliveries:
                with contextlib.suppress(Exception):
                    await delivery.message.term()
            return
        FED.labels("retried").inc(len(deliveries))
        log.warning("execution %s: events not applied yet (%s); redelivering", execution_id, exc)
        for delivery in deliveries:
            with contextlib.suppress(Exception):
                await delivery.message.nak(delay=min(0.25 * attempts, 5.0))


def _chain(deliveries: Sequence[Delivery]) -> Appended | None:
    """The deliveries as an `Appended` the orchestrator can fold without a log read, when they
    form one unbroken stretch of the chain of complete events; None otherwise (the orchestrator
    reads the log)."""
    if not all(d.complete for d in deliveries):
        return None
    for before, after in itertools.pairwise(deliveries):
        if after.event.prev_event_id != before.event.event_id:
            return None
    first = deliveries[0].event
    return Appended(
        event_ids=[d.event.event_id for d in deliveries],
        stored=[d.record for d in deliveries],
        linked_to=first.prev_event_id,
    )


def _delivered(message: Msg) -> int:
    try:
        return int(message.metadata.num_delivered)
    except Exception:
        return 1


def _parse(message: Msg) -> Delivery | None:
    """The stream form of an event (data-model.md §11.2); None when it is not one."""
    try:
        body = jsonutil.loads(message.data)
        created = body.get("created_at")
        created_at = as_utc(datetime.fromisoformat(created)) if isinstance(created, str) else None
        event = LogEvent(
            event_id=int(body["event_id"]),
            execution_id=int(body["execution_id"]),
            catalog_id=int(body.get("catalog_id") or 0),
            parent_execution_id=_int(body.get("parent_execution_id")),
            prev_event_id=_int(body.get("prev_event_id")),
            event_type=str(body["event_type"]),
            node_name=body.get("node_name"),
            node_type=body.get("node_type"),
            status=body.get("status"),
            context=body.get("context"),
            meta=body.get("meta"),
            error=body.get("error"),
            worker_id=body.get("worker_id"),
            command_id=_int(body.get("command_id")),
            created_at=created_at,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        log.error("event feed: dropping a message that is no event: %r", message.data[:200])
        return None
    record = EventRecord(
        event_id=event.event_id,
        event_type=event.event_type,
        node_name=event.node_name,
        status=event.status,
        context=event.context,
        result=body.get("result"),
        meta=event.meta,
        error=event.error,
        command_id=event.command_id,
        created_at=created_at or utcnow(),
        parent_event_id=_int(body.get("parent_event_id")),
    )
    return Delivery(message, event, record, complete="mirror_omitted" not in body)


def _int(value: object) -> int | None:
    if value is None:
        return None
    return int(str(value)) if not isinstance(value, int) else value
