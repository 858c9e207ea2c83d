"""Event log use cases: append decisions, ingest worker events, read, follow."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import orjson
from prometheus_client import Counter, Histogram

from services.common.bus import event_subject
from services.common.errors import Internal, InvalidArgument
from services.common.event_types import EventType
from services.common.metrics import INGEST_BUCKETS
from services.events.batcher import AppendBatcher
from services.events.chain import AppendJob, AppendOutcome, Draft, StoredEvent
from services.events.normalize import TERMINAL_TYPES, WorkerEventDraft
from services.events.projection import Envelope
from services.events.relay import Relay
from services.events.store import EventStore
from services.events.wakeups import Wakeups

KNOWN_TYPES = (
    "playbook.initialized",
    "workflow.initialized",
    "step.enter",
    "step.skipped",
    "command.issued",
    "command.claimed",
    "command.heartbeat",
    "command.started",
    "call.done",
    "call.error",
    "step.exit",
    "command.completed",
    "command.failed",
    "ctx.updated",
    "loop.done",
    "playbook.completed",
    "playbook.failed",
    "execution.cancelled",
)
INGESTED = Counter("noetl_events_ingested_total", "Events ingested", ["event_type", "status"])
INGEST_SECONDS = Histogram(
    "noetl_event_ingest_duration_seconds", "Event ingest latency", ["event_type"], buckets=INGEST_BUCKETS
)
TERMINAL_DEDUP = Counter("noetl_terminal_dedup_total", "Second terminal events dropped", ["outcome"])
for _kind in (*KNOWN_TYPES, "other"):
    INGESTED.labels(_kind, "ok")
    INGESTED.labels(_kind, "error")
    INGEST_SECONDS.labels(_kind)
TERMINAL_DEDUP.labels("suppressed")

PAGE = 500
# Worker events the execution service acts on: command rows (status, lease) and, for the two
# completions, an orchestration pass. Others (call.done, step.exit, ...) are folded later from the log.
ADVANCE_TYPES = frozenset(
    {
        EventType.COMMAND_STARTED,
        EventType.COMMAND_HEARTBEAT,
        EventType.COMMAND_COMPLETED,
        EventType.COMMAND_FAILED,
    }
)


class Advancer(Protocol):
    """The execution service's Advance, as the event log needs it."""

    async def advance(self, execution_id: int, events: Sequence[StoredEvent]) -> int: ...


@dataclass(frozen=True, slots=True)
class EmitOutcome:
    event_ids: list[int]
    duplicates: list[bool]
    commands_generated: int


@dataclass(frozen=True, slots=True)
class EventLogSettings:
    mirror_events: bool
    event_shard_count: int
    follow_poll_seconds: float = 1.0


class EventLog:
    def __init__(
        self,
        *,
        store: EventStore,
        batcher: AppendBatcher,
        relay: Relay,
        advancer: Advancer,
        wakeups: Wakeups,
        settings: EventLogSettings,
    ) -> None:
        self._store = store
        self._batcher = batcher
        self._relay = relay
        self._advancer = advancer
        self._wakeups = wakeups
        self._settings = settings

    async def append(
        self,
        execution_id: int,
        drafts: Sequence[Draft],
        *,
        catalog_id: int | None,
        parent_execution_id: int | None,
        require_open: bool,
    ) -> AppendOutcome:
        """Raises NotFound for an unknown execution without catalog_id; FailedPrecondition when closed."""
        started = time.perf_counter()
        outcome = await self._batcher.append(
            AppendJob(
                execution_id=execution_id,
                drafts=drafts,
                catalog_id=catalog_id,
                parent_execution_id=parent_execution_id,
                require_open=require_open,
                mirror_subject=self._mirror_subject(execution_id),
            )
        )
        self._after_commit(outcome, started)
        return outcome

    async def emit(self, execution_id: int, events: Sequence[WorkerEventDraft]) -> EmitOutcome:
        """Stores worker events, then lets the owning orchestrator shard react to them.

        Raises:
            NotFound: the execution has no events.
        """
        drafts = [
            Draft(
                event_type=event.event_type,
                node_name=event.step,
                status=event.status,
                context=orjson.dumps(event.context).decode(),
                result=orjson.dumps(event.result).decode(),
                meta=event.meta,
                command_id=event.command_id,
                worker_id=event.worker_id,
                error=event.error,
                worker_dedupe=event.idempotent,
                stamp_persisted_id=True,
            )
            for event in events
        ]
        outcome = await self.append(
            execution_id, drafts, catalog_id=None, parent_execution_id=None, require_open=False
        )
        # The whole batch goes along, so the orchestrator can fold it without reading it back.
        acts = any(event.event_type in ADVANCE_TYPES for event in outcome.stored)
        generated = await self._advancer.advance(execution_id, outcome.stored) if acts else 0
        return EmitOutcome(outcome.event_ids, outcome.duplicates, generated)

    async def project(self, envelopes: Sequence[Envelope]) -> tuple[int, int]:
        """(projected, duplicates) of a trusted batch; a replayed batch projects nothing.

        Raises:
            InvalidArgument: no envelopes.
            Internal: the database refused the batch ("events/project failed: ..."); nothing was written.
        """
        if not envelopes:
            raise InvalidArgument("events must not be empty")
        try:
            return await self._store.project(envelopes)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise Internal(f"events/project failed: {exc}") from exc

    async def page(
        self,
        execution_id: int,
        *,
        after_event_id: int | None,
        event_type: str | None,
        newest_first: bool,
        page: int,
        page_size: int,
    ) -> tuple[list[StoredEvent], int]:
        """Events plus the total matching count; page 0 returns everything."""
        if page <= 0:
            events = await self._store.list(
                execution_id, after_event_id=after_event_id, event_type=event_type, newest_first=newest_first
            )
            return events, len(events)
        total = await self._store.count(execution_id, after_event_id=after_event_id, event_type=event_type)
        events = await self._store.list(
            execution_id,
            after_event_id=after_event_id,
            event_type=event_type,
            newest_first=newest_first,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        return events, total

    async def follow(self, execution_id: int, after_event_id: int | None) -> AsyncIterator[StoredEvent]:
        """Every event after the cursor in id order, live, ending after the terminal event.

        The log is read again on each wake-up, so no event is skipped or repeated whatever order
        the bus delivers in.
        """
        cursor = after_event_id
        async with self._wakeups.watch(execution_id) as signal:
            while True:
                signal.clear()
                batch = await self._store.list(execution_id, after_event_id=cursor, limit=PAGE)
                for event in batch:
                    yield event
                    cursor = event.event_id
                    if event.event_type in TERMINAL_TYPES:
                        return
                if len(batch) == PAGE:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), timeout=self._settings.follow_poll_seconds)

    async def exists(self, execution_id: int) -> bool:
        return bool(await self._store.list(execution_id, limit=1))

    def _mirror_subject(self, execution_id: int) -> str | None:
        if not self._settings.mirror_events:
            return None
        return event_subject(execution_id, self._settings.event_shard_count)

    def _after_commit(self, outcome: AppendOutcome, started: float) -> None:
        self._relay.submit(outcome.outbox)
        elapsed = time.perf_counter() - started
        for event in outcome.stored:
            kind = event.event_type if event.event_type in KNOWN_TYPES else "other"
            INGESTED.labels(kind, "ok").inc()
            INGEST_SECONDS.labels(kind).observe(elapsed)
        if outcome.terminal_suppressed:
            TERMINAL_DEDUP.labels("suppressed").inc(outcome.terminal_suppressed)
