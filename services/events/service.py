"""Event log use cases: append decisions, ingest worker events, read, follow."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter, Histogram

from kernel import failpoints
from kernel.bus import event_subject
from kernel.db import LOST_CONNECTION, connection_errors, db_unavailable, with_retry
from kernel.errors import Internal, InvalidArgument, MeshError, NotFound
from kernel.metrics import INGEST_BUCKETS
from language.event_types import EVENT_TYPES, WRITTEN_TERMINAL, EventType
from services.events.batcher import AppendBatcher
from services.events.batches import COMPLETED, BatchOutcome, EventBatch, batch_digest
from services.events.chain import AppendJob, AppendOutcome, BatchIntent, Draft, StoredEvent
from services.events.normalize import WorkerEventDraft
from services.events.projection import Envelope
from services.events.relay import Relay
from services.events.store import EventStore
from services.events.wakeups import Wakeups

log = logging.getLogger(__name__)

INGESTED = Counter("noetl_events_ingested_total", "Events ingested", ["event_type", "status"])
INGEST_SECONDS = Histogram(
    "noetl_event_ingest_duration_seconds", "Event ingest latency", ["event_type"], buckets=INGEST_BUCKETS
)
TERMINAL_DEDUP = Counter("noetl_terminal_dedup_total", "Second terminal events dropped", ["outcome"])
for _kind in (*EVENT_TYPES, "other"):
    INGESTED.labels(_kind, "ok")
    INGESTED.labels(_kind, "error")
    INGEST_SECONDS.labels(_kind)
TERMINAL_DEDUP.labels("suppressed")

PAGE = 500
# Claims this process has seen committed, so a worker's every event stream skips the log query:
# about 64 bytes of key each, far more than the commands in flight on one shard.
REMEMBERED_CLAIMS = 65_536


@dataclass(frozen=True, slots=True)
class EmitOutcome:
    event_ids: list[int]
    duplicates: list[bool]
    commands_generated: int


@dataclass(frozen=True, slots=True)
class EventLogSettings:
    event_shard_count: int
    follow_poll_seconds: float = 1.0


class EventLog:
    def __init__(
        self,
        *,
        store: EventStore,
        batcher: AppendBatcher,
        relay: Relay,
        wakeups: Wakeups,
        settings: EventLogSettings,
        mint: Callable[[], int],
    ) -> None:
        self._store = store
        self._mint = mint
        self._batcher = batcher
        self._relay = relay
        self._wakeups = wakeups
        self._settings = settings
        # (execution_id, command_id, worker_id) known to be claims in the log. A claim is never
        # taken back out of the log, so a remembered one stays true; a forgotten one is queried.
        self._claims: OrderedDict[tuple[int, int, str], None] = OrderedDict()

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
        if failpoints.armed("events.pass.after_commit"):
            kinds = {event.event_type for event in outcome.stored}
            if EventType.COMMAND_ISSUED in kinds and EventType.PLAYBOOK_INITIALIZED not in kinds:
                # A pass's commands committed, neither relayed nor answered: the orchestrator
                # cannot know they were written (tests/fault/test_failpoints.py).
                failpoints.hit("events.pass.after_commit")
        self._after_commit(outcome, started)
        return outcome

    async def emit(self, execution_id: int, events: Sequence[WorkerEventDraft]) -> EmitOutcome:
        """Stores worker events. The owning shard reacts to them from the event stream, never
        inside this call: ingest does not wait on orchestration (`commands_generated` is 0).

        Raises:
            NotFound: the execution has no events.
        """
        outcome = await self.append(
            execution_id, _drafts(events), catalog_id=None, parent_execution_id=None, require_open=False
        )
        return EmitOutcome(outcome.event_ids, outcome.duplicates, 0)

    async def emit_each(self, items: Sequence[tuple[int, WorkerEventDraft]]) -> list[EmitOutcome | MeshError]:
        """(execution_id, event) items stored independently, as `emit` would one by one (sharing
        group commits); answered in order, each with its outcome or its own error (NotFound,
        Unavailable, ...)."""
        started = time.perf_counter()
        appended = await asyncio.gather(
            *(
                self._batcher.append(
                    AppendJob(
                        execution_id=execution_id,
                        drafts=_drafts([event]),
                        catalog_id=None,
                        parent_execution_id=None,
                        require_open=False,
                        mirror_subject=self._mirror_subject(execution_id),
                    )
                )
                for execution_id, event in items
            ),
            return_exceptions=True,
        )
        results: list[EmitOutcome | MeshError] = []
        for outcome in appended:
            if isinstance(outcome, AppendOutcome):
                self._after_commit(outcome, started)
                results.append(EmitOutcome(outcome.event_ids, outcome.duplicates, 0))
            elif isinstance(outcome, MeshError):
                results.append(outcome)
            else:
                raise outcome
        return results

    async def emit_batch(
        self,
        execution_id: int,
        events: Sequence[WorkerEventDraft],
        *,
        catalog_id: int | None,
        idempotency_key: str | None,
    ) -> BatchOutcome:
        """Stores a worker batch and its record in one transaction (the shard reacts as to `emit`).

        A batch whose idempotency key this execution has recorded answers that batch's request id
        and event ids as a duplicate, storing and orchestrating nothing.

        Raises:
            NotFound: the execution has no events and no catalog_id was given.
            Unavailable: the database connection was lost (`db_unavailable`); nothing was written.
            Internal: the database refused the batch; nothing was written.
        """
        request_id = self._mint()
        drafts = _drafts(events)
        if idempotency_key is not None:
            for draft in drafts:  # data-model.md §4.4: the batch's key in each event's meta
                draft.meta = {**(draft.meta or {}), "idempotency_key": idempotency_key}
        job = AppendJob(
            execution_id=execution_id,
            drafts=drafts,
            catalog_id=catalog_id,
            parent_execution_id=None,
            require_open=False,
            mirror_subject=self._mirror_subject(execution_id),
            batch=BatchIntent(request_id, idempotency_key, batch_digest(events, catalog_id)),
        )
        started = time.perf_counter()
        outcome = await self._append_alone(job)
        if outcome.replay_of is not None:
            return BatchOutcome(outcome.replay_of, outcome.event_ids, 0, duplicate=True)
        self._after_commit(outcome, started)
        await self._finish_batch(request_id, COMPLETED, 0, None)
        return BatchOutcome(request_id, outcome.event_ids, 0, duplicate=False)

    async def batch(self, request_id: int) -> EventBatch:
        """Raises NotFound for a request id this shard has not recorded."""
        found = await self._store.batch(request_id)
        if found is None:
            raise NotFound(f"Batch request {request_id} not found")
        return found

    async def event_result(self, event_id: int) -> Any:
        """The event's stored `result` (None when NULL); raises NotFound for an unknown event."""
        found, result = await self._store.event_result(event_id)
        if not found:
            raise NotFound(f"Event {event_id} not found")
        return None if result is None else orjson.loads(result)

    async def project(self, envelopes: Sequence[Envelope]) -> tuple[int, int]:
        """(projected, duplicates) of a trusted batch; a replayed batch projects nothing.

        Raises:
            InvalidArgument: no envelopes.
            Unavailable: the database connection was lost (503 `db_unavailable`); nothing was written.
            Internal: the database refused the batch ("events/project failed: ..."); nothing was written.
        """
        if not envelopes:
            raise InvalidArgument("events must not be empty")
        try:
            return await self._store.project(envelopes)
        except LOST_CONNECTION as exc:
            raise db_unavailable("events/project") from exc
        except asyncpg.PostgresError as exc:
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
        events, total = await self._store.page(
            execution_id,
            after_event_id=after_event_id,
            event_type=event_type,
            newest_first=newest_first,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        if total is None:  # an empty page carries no count
            total = await self._store.count(
                execution_id, after_event_id=after_event_id, event_type=event_type
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
                    if event.event_type in WRITTEN_TERMINAL:
                        return
                if len(batch) == PAGE:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), timeout=self._settings.follow_poll_seconds)

    async def exists(self, execution_id: int) -> bool:
        return bool(await self._store.list(execution_id, limit=1))

    async def has_claimed(self, execution_id: int, command_id: int, worker_id: str) -> bool:
        """Whether `worker_id` ever claimed the command (a former holder's late events still count)."""
        key = (execution_id, command_id, worker_id)
        if key in self._claims:
            return True
        if not await self._store.has_claimed(execution_id, command_id, worker_id):
            return False
        self._remember_claim(key)
        return True

    def _remember_claim(self, key: tuple[int, int, str]) -> None:
        self._claims[key] = None
        while len(self._claims) > REMEMBERED_CLAIMS:
            self._claims.popitem(last=False)

    async def catalog_usage(self, catalog_ids: Sequence[int]) -> list[int]:
        """The catalog ids referenced by some event of this shard (execution history)."""
        if not catalog_ids:
            return []
        return await self._store.catalog_usage(catalog_ids)

    async def _append_alone(self, job: AppendJob) -> AppendOutcome:
        """One job in a transaction of its own: a batch is a group commit already, and its
        caller must tell a lost database (503, retry) from a refused batch (500)."""
        async with connection_errors("events/batch"):
            try:
                results = await with_retry(lambda: self._store.append_batch([job], self._mint))
            except LOST_CONNECTION:
                raise  # the server ended the session (08xxx, 57P01 admin shutdown) too
            except asyncpg.PostgresError as exc:
                raise Internal(f"events/batch failed: {exc}") from exc
        result = results[0]
        if isinstance(result, MeshError):
            raise result
        return result

    async def _finish_batch(
        self, request_id: int, state: str, commands_generated: int | None, error: str | None
    ) -> None:
        """Best effort: the events are committed and orchestrated whether or not this is noted."""
        try:
            await self._store.finish_batch(request_id, state, commands_generated, error)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, MeshError):
            log.exception("could not mark batch %s %s", request_id, state)

    def _mirror_subject(self, execution_id: int) -> str:
        # Always mirrored: the owning shard learns of every event from the stream.
        return event_subject(execution_id, self._settings.event_shard_count)

    def _after_commit(self, outcome: AppendOutcome, started: float) -> None:
        self._relay.submit(outcome.outbox)
        elapsed = time.perf_counter() - started
        for event in outcome.stored:
            if event.event_type == EventType.COMMAND_CLAIMED and event.command_id is not None:
                holder = _claim_holder(event.meta)
                if holder is not None:
                    self._remember_claim((event.execution_id, event.command_id, holder))
            kind = event.event_type if event.event_type in EVENT_TYPES else "other"
            INGESTED.labels(kind, "ok").inc()
            INGEST_SECONDS.labels(kind).observe(elapsed)
        if outcome.terminal_suppressed:
            TERMINAL_DEDUP.labels("suppressed").inc(outcome.terminal_suppressed)


def _claim_holder(meta: str | None) -> str | None:
    """The claiming worker as the store's `has_claimed` reads it: `meta->>'worker_id'`."""
    decoded = orjson.loads(meta) if meta else None
    found = decoded.get("worker_id") if isinstance(decoded, dict) else None
    return found if isinstance(found, str) else None


def _drafts(events: Sequence[WorkerEventDraft]) -> list[Draft]:
    return [
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
