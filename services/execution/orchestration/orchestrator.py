"""Drives executions on the owning shard: start, and one serialized pass per trigger.

State is cached per execution and advanced from new events only (`EventsPort.since` after the
last folded id), so the cost of a pass does not grow with the length of the log. After a
restart the state is rebuilt from the log on first use.

A worker result kept in the result store is read back from this shard's store before its event
is folded, once per reference and cached state, so the engine sees it as if it were inline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from prometheus_client import Counter, Histogram

from kernel import failpoints
from kernel.bus import command_subject, pool_for
from kernel.errors import FailedPrecondition, InvalidArgument, NotFound, Unprocessable
from kernel.ids import Snowflake
from language.result_refs import parse_ref, result_reference
from services.execution.commands.store import CommandStore, NewCommandRow
from services.execution.engine import evaluate
from services.execution.engine.dsl import parse_playbook
from services.execution.engine.model import Playbook
from services.execution.engine.records import (
    Decision,
    EventRecord,
    EventType,
    NewEvent,
    canonical_event_type,
)
from services.execution.engine.results import hydrated, result_accessors
from services.execution.engine.state import ExecutionState
from services.execution.engine.status import StatusFold
from services.execution.orchestration.projector import Projector
from services.execution.orchestration.store import ExecutionStore
from services.execution.ports import Appended, CatalogPort, EventsPort, Notification, PlaybookEntry
from services.execution.results.service import Results

log = logging.getLogger(__name__)

DRIVES = Counter("noetl_orchestrate_drive_total", "Orchestrator passes", ["stage"])
for _stage in ("dispatched", "applied", "drive_error", "cold_rebuild", "closed"):
    DRIVES.labels(_stage)

# One pass for a trigger: `evaluate` is the pure decision (engine), `total` adds folding the new
# events, persisting the decision and any follow-up pass. Neither may grow with the log's length.
PASS_SECONDS = Histogram(
    "noetl_orchestrate_pass_seconds",
    "Orchestrator pass time",
    ["part"],
    buckets=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024),
)
for _part in ("evaluate", "total"):
    PASS_SECONDS.labels(_part)

_T = TypeVar("_T")
EXECUTABLE = frozenset({"playbook", "agent"})
TRIGGERS = frozenset({EventType.COMMAND_COMPLETED, EventType.COMMAND_FAILED})
# Worker events that carry a step result, which may be a result-store reference (dsl.md §9.12).
RESULT_CARRIERS = frozenset({EventType.CALL_DONE, EventType.STEP_EXIT})


@dataclass(frozen=True, slots=True)
class StartInput:
    path: str | None
    catalog_id: int | None
    version: int | None
    resource_kind: str | None
    workload: dict[str, Any]
    parent_execution_id: int | None
    trace: dict[str, Any] | None
    execution_pool: str | None


@dataclass(frozen=True, slots=True)
class OrchestratorSettings:
    server_url: str
    max_cached: int = 10_000
    # This shard of `shard_count`: a start mints an id this shard owns (docs/sharding.md).
    shard_index: int = 0
    shard_count: int = 1


@dataclass(slots=True)
class Tracked:
    """One execution's cached engine state on this shard."""

    execution_id: int
    entry: PlaybookEntry
    playbook: Playbook
    parent_execution_id: int | None
    pool: str
    trace: Any
    state: ExecutionState | None = None
    last_trigger: EventRecord | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Values read back from the result store, by reference: call.done and step.exit share one.
    results: dict[str, Any] = field(default_factory=dict)
    # What `/status` reads, folded with the state: a status read is then not a log read.
    status: StatusFold = field(default_factory=StatusFold)
    # An append of this state's pass failed without a definite answer (the events service died
    # between its commit and its reply): the log may hold events the state lacks, and a pass
    # deciding without them would issue their commands again under new ids. The next pass reads
    # the log first.
    unsure: bool = False
    # Done once the pass persisting now has written its command rows (or given up): a claim that
    # arrived ahead of its row waits for this, not for the rest of the pass and what queues after
    # it on `lock`; otherwise the first command of a fan-out would start after its siblings.
    rows: asyncio.Future[None] | None = None

    @property
    def last_event_id(self) -> int | None:
        return self.state.last_event_id if self.state is not None else None

    @property
    def finished(self) -> bool:
        return self.state is not None and self.state.is_terminal


class Orchestrator:
    def __init__(
        self,
        *,
        store: ExecutionStore,
        commands: CommandStore,
        events: EventsPort,
        catalog: CatalogPort,
        results: Results,
        ids: Snowflake,
        settings: OrchestratorSettings,
        projector: Projector,
    ) -> None:
        self._store = store
        self._commands = commands
        # Told which rows this fast path wrote, so their copies from the event feed cost nothing.
        self._projector = projector
        self._events = events
        self._catalog = catalog
        self._results = results
        self._ids = ids
        self._settings = settings
        self._tracked: OrderedDict[int, Tracked] = OrderedDict()
        self._playbooks: OrderedDict[int, Playbook] = OrderedDict()
        self._loading: dict[int, asyncio.Lock] = {}
        self._detached: set[asyncio.Task[Any]] = set()

    async def _whole(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Runs a pass to its end even when the caller goes away (a deadline, a dropped stream):
        a pass is never half-applied because of who asked for it."""
        task = asyncio.ensure_future(work)
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)
        return await asyncio.shield(task)

    async def start(self, request: StartInput) -> tuple[int, int]:
        """Validates and starts an execution; returns (execution_id, commands issued).

        Raises:
            NotFound: no executable catalog entry matches.
            Unprocessable: `resource_kind` is not executable, or the playbook is semantically invalid.
            InvalidArgument: the playbook does not deserialize.
        """
        kind = _requested_kind(request.resource_kind)
        entry = await self._resolve(request, kind)
        playbook = self._playbook(entry)
        execution_id = self._ids.next_owned_id(self._settings.shard_index, self._settings.shard_count)
        pool = pool_for(entry.path, request.execution_pool)
        meta: dict[str, Any] = {"emitter": "noetl-mesh"}
        if request.execution_pool:
            meta["execution_pool"] = request.execution_pool
        if request.trace:
            meta["trace"] = request.trace
        decision = evaluate.start(
            playbook,
            execution_id=execution_id,
            catalog_id=entry.catalog_id,
            path=entry.path,
            workload=request.workload,
            parent_execution_id=request.parent_execution_id,
            new_id=self._ids.next_id,
            meta=meta,
        )
        tracked = Tracked(
            execution_id=execution_id,
            entry=entry,
            playbook=playbook,
            parent_execution_id=request.parent_execution_id,
            pool=pool,
            trace=request.trace,
        )
        issued = await self._whole(self._start(tracked, decision))
        DRIVES.labels("dispatched").inc()
        return execution_id, issued

    async def _start(self, tracked: Tracked, decision: Decision) -> int:
        """The log's root first: until it is committed nothing of the run exists anywhere, and
        once it is, every projection follows from it (here, or by the projector after a crash)."""
        async with tracked.lock:
            self._remember(tracked)
            try:
                return await self._persist(tracked, decision, require_open=False)
            except BaseException:
                if tracked.state is None:  # nothing was written: nothing to remember
                    self._tracked.pop(tracked.execution_id, None)
                raise

    async def advance(
        self, execution_id: int, trigger_types: Sequence[str], committed: Appended | None = None
    ) -> int:
        """For a command completion: folds what is new in the log and runs one pass.

        `committed` are the events that caused the call; when they continue the cached chain they
        are folded as they are, otherwise the log is read from the last folded event. Other
        lifecycle events change only command rows, so they cost no read of the log.
        """
        if not any(kind in TRIGGERS for kind in trigger_types):
            return 0
        return await self._whole(self._advance(execution_id, committed))

    async def _advance(self, execution_id: int, committed: Appended | None) -> int:
        tracked = await self._load(execution_id)
        if tracked is None:
            return 0
        async with tracked.lock:
            began = time.perf_counter()
            if committed is not None:
                committed = dataclasses.replace(
                    committed, stored=await self._hydrate(tracked, committed.stored)
                )
            if tracked.unsure or committed is None or not self._continue(tracked, committed):
                await self._sync(tracked)
                tracked.unsure = False
            state = tracked.state
            if state is None or tracked.finished:
                return 0
            try:
                decision = self._evaluate(state, tracked, trigger=tracked.last_trigger)
            except Exception:
                DRIVES.labels("drive_error").inc()
                raise
            DRIVES.labels("applied").inc()
            issued = 0
            while decision.events:
                issued += await self._persist(tracked, decision, require_open=True)
                if tracked.state is None or not evaluate.needs_follow_up(decision):
                    break
                # The pass completed a step itself (an empty loop): route on from it right away.
                decision = self._evaluate(tracked.state, tracked, trigger=None)
            PASS_SECONDS.labels("total").observe(time.perf_counter() - began)
            return issued

    def _evaluate(self, state: ExecutionState, tracked: Tracked, *, trigger: EventRecord | None) -> Decision:
        began = time.perf_counter()
        try:
            return evaluate.advance(state, tracked.playbook, trigger=trigger, new_id=self._ids.next_id)
        finally:
            PASS_SECONDS.labels("evaluate").observe(time.perf_counter() - began)

    async def close(self, execution_id: int, event: NewEvent, status: str) -> bool:
        """Appends a terminal event decided outside a pass (cancel, finalize), under the pass lock.

        Returns False when the execution had already ended (nothing is written).

        Raises:
            NotFound: the execution has no events.
        """
        tracked = await self._load(execution_id)
        if tracked is None:
            raise NotFound(f"Execution {execution_id} not found")
        async with tracked.lock:
            try:
                appended = await self._events.append(
                    execution_id,
                    [event],
                    catalog_id=tracked.entry.catalog_id,
                    parent_execution_id=tracked.parent_execution_id,
                    notifications={},
                    require_open=True,
                )
            except FailedPrecondition:
                await self._sync(tracked)
                return False
            await self._store.finish(
                execution_id, status, event.error, appended.event_ids[0], event.event_type
            )
            self._projector.written(appended.event_ids)
            await self._sync(tracked)
        return True

    async def notification(
        self, execution_id: int, command_id: int, step: str, event_id: int
    ) -> Notification | None:
        """The bus message that announces a command (for re-announcing it); None for an unknown run."""
        tracked = await self._load(execution_id)
        if tracked is None:
            return None
        payload = self._notification(tracked, command_id, step)
        payload["event_id"] = event_id
        return Notification(subject=command_subject(tracked.pool, execution_id), payload=payload)

    async def rows_written(self, execution_id: int) -> None:
        """Waits until the pass persisting now, if any, has written its command rows."""
        tracked = self._tracked.get(execution_id)
        if tracked is not None and tracked.rows is not None:
            await asyncio.shield(tracked.rows)

    async def barrier(self, execution_id: int) -> None:
        """Waits for a pass of the execution that is persisting right now (the event feed uses it)."""
        tracked = self._tracked.get(execution_id)
        if tracked is not None:
            async with tracked.lock:
                return

    async def state_of(self, execution_id: int, *, seen_event_id: int | None = None) -> Tracked | None:
        """The synced state of an execution (rebuilt from the log when not cached); with
        `seen_event_id`, a state that has folded that event already is taken as synced."""
        tracked = await self._load(execution_id)
        if tracked is None:
            return None
        cursor = tracked.last_event_id
        if cursor is not None and seen_event_id is not None and cursor >= seen_event_id:
            return tracked
        if cursor is None:  # still starting: wait for the start's append
            async with tracked.lock:
                await self._sync(tracked)
            return tracked
        # The log is read before taking the pass lock: a status poll, which mostly finds nothing
        # new, never holds up a pass, and waits for one only to fold what it found.
        records = await self._events.since(execution_id, cursor)
        if records:
            async with tracked.lock:
                if tracked.last_event_id == cursor:
                    self._fold(tracked, await self._hydrate(tracked, records))
                else:  # a pass folded meanwhile: continue from where it stopped
                    await self._sync(tracked)
        return tracked

    async def _persist(self, tracked: Tracked, decision: Decision, *, require_open: bool) -> int:
        rows = tracked.rows = asyncio.get_running_loop().create_future()
        try:
            appended = await self._write(tracked, decision, require_open=require_open)
        finally:
            rows.set_result(None)
        if appended is None:
            await self._sync(tracked)
            return 0
        await failpoints.pause("orchestrator.after_rows")
        ids = appended.event_ids
        if decision.terminal is not None:
            failpoints.hit("orchestrator.before_terminal_projection")
            last = decision.events[-1]
            await self._store.finish(
                tracked.execution_id, decision.terminal, last.error, ids[-1], last.event_type
            )
        self._projector.written(ids)
        if not self._continue(tracked, appended):
            await self._sync(tracked)
        return len(decision.commands)

    async def _write(self, tracked: Tracked, decision: Decision, *, require_open: bool) -> Appended | None:
        """The pass's events, then what a claim of its commands needs: the execution row (at the
        start) and the command rows. None when the run closed before the append."""
        notifications = {
            command.event_index: Notification(
                subject=command_subject(tracked.pool, tracked.execution_id),
                payload=self._notification(tracked, command.command_id, command.step),
            )
            for command in decision.commands
        }
        try:
            appended = await self._events.append(
                tracked.execution_id,
                decision.events,
                catalog_id=tracked.entry.catalog_id,
                parent_execution_id=tracked.parent_execution_id,
                notifications=notifications,
                require_open=require_open,
            )
        except FailedPrecondition:
            # Cancelled or finalized between the fold and the append: nothing more to decide.
            DRIVES.labels("closed").inc()
            return None
        except BaseException:
            tracked.unsure = True
            raise
        await failpoints.pause("orchestrator.after_append")
        ids = appended.event_ids
        if tracked.state is None:
            failpoints.hit("orchestrator.start.after_append")
            await self._store.ensure_execution(
                execution_id=tracked.execution_id,
                catalog_id=tracked.entry.catalog_id,
                parent_execution_id=tracked.parent_execution_id,
                start_time=appended.stored[0].created_at if appended.stored else None,
            )
        rows = [
            NewCommandRow(
                command_id=command.command_id,
                event_id=ids[command.event_index],
                step=command.step,
                tool_kind=command.tool_kind,
                context=command.context,
                meta=command.meta,
                iter_index=command.iter_index,
                prev_event_id=ids[command.event_index - 1] if command.event_index else tracked.last_event_id,
            )
            for command in decision.commands
        ]
        await self._commands.ensure_commands(
            tracked.execution_id, tracked.entry.catalog_id, tracked.parent_execution_id, rows
        )
        return appended

    async def absorb(self, execution_id: int, appended: Appended) -> None:
        """Folds events written outside a pass (a claim; a `call.done` the feed brings without its
        `command.completed`) into a cached state they continue, with their stored results read
        back as a pass would: the engine never sees a result as its reference."""
        tracked = self._tracked.get(execution_id)
        if tracked is not None:
            async with tracked.lock:
                hydrated = dataclasses.replace(appended, stored=await self._hydrate(tracked, appended.stored))
                self._continue(tracked, hydrated)

    async def _sync(self, tracked: Tracked) -> None:
        records = await self._events.since(tracked.execution_id, tracked.last_event_id)
        self._fold(tracked, await self._hydrate(tracked, records))

    async def _hydrate(self, tracked: Tracked, records: list[EventRecord]) -> list[EventRecord]:
        """`records` with every result-store reference replaced by the value it names (§9.12)."""
        found = []
        for record in records:
            reference = (
                result_reference(record.context)
                if canonical_event_type(record.event_type) in RESULT_CARRIERS
                else None
            )
            if reference is None:
                found.append(record)
                continue
            ref = reference["ref"]
            value = await self._stored_result(tracked, ref)
            found.append(hydrated(record, value, result_accessors(reference, self._resolve_url(ref))))
        return found

    async def _stored_result(self, tracked: Tracked, ref: str) -> Any:
        """Read once per cached state; a reference that cannot be read gives an empty map (its
        accessors still answer) rather than stopping the execution."""
        if ref not in tracked.results:
            try:
                tracked.results[ref] = await self._results.fetch(parse_ref(ref))
            except (InvalidArgument, NotFound) as exc:
                log.warning("execution %s: result %s cannot be read: %s", tracked.execution_id, ref, exc)
                tracked.results[ref] = {}
        return tracked.results[ref]

    def _resolve_url(self, ref: str) -> str:
        """Where `{{ step._uri }}` points: the gateway's resolve route for the reference."""
        return f"{self._settings.server_url}/api/result/resolve?ref={quote(ref, safe='')}"

    def _continue(self, tracked: Tracked, appended: Appended) -> bool:
        """Folds `appended` (one unbroken stretch of the chain) when it continues the last folded
        event, skipping a prefix folded already, or when it is the log's root and nothing is folded
        yet (a start); False when there is a gap."""
        if not appended.stored:
            return False
        if tracked.state is None:
            if (
                appended.linked_to is not None
                or appended.stored[0].event_type != EventType.PLAYBOOK_INITIALIZED
            ):
                return False
            self._fold(tracked, appended.stored)
            return True
        records = appended.stored
        if appended.linked_to != tracked.last_event_id:
            ids = [record.event_id for record in records]
            if tracked.last_event_id not in ids:
                return False
            records = records[ids.index(tracked.last_event_id) + 1 :]
        self._fold(tracked, records)
        return True

    @staticmethod
    def _fold(tracked: Tracked, records: Sequence[EventRecord]) -> None:
        for record in records:
            if tracked.state is None:
                tracked.state = ExecutionState.from_root(record)
            else:
                tracked.state.apply(record)
            tracked.status.add(record)
            if record.event_type in TRIGGERS:
                tracked.last_trigger = record

    async def _load(self, execution_id: int) -> Tracked | None:
        tracked = self._tracked.get(execution_id)
        if tracked is not None:
            self._tracked.move_to_end(execution_id)
            return tracked
        loading = self._loading.setdefault(execution_id, asyncio.Lock())
        async with loading:
            tracked = self._tracked.get(execution_id)
            if tracked is None:
                tracked = await self._rebuild(execution_id)
        self._loading.pop(execution_id, None)
        return tracked

    async def _rebuild(self, execution_id: int) -> Tracked | None:
        """After a restart (or eviction): the state is folded again from the whole log, once."""
        root = await self._events.since(execution_id, None)
        if not root or root[0].event_type != EventType.PLAYBOOK_INITIALIZED:
            return None
        context = root[0].context if isinstance(root[0].context, dict) else {}
        meta = root[0].meta if isinstance(root[0].meta, dict) else {}
        entry = await self._catalog.resolve(
            path=None, catalog_id=int(context.get("catalog_id", 0)), version=None
        )
        tracked = Tracked(
            execution_id=execution_id,
            entry=entry,
            playbook=self._playbook(entry),
            parent_execution_id=_parent_of(context),
            pool=pool_for(entry.path, meta.get("execution_pool")),
            trace=meta.get("trace"),
        )
        self._fold(tracked, await self._hydrate(tracked, root))
        DRIVES.labels("cold_rebuild").inc()
        self._remember(tracked)
        return tracked

    def _remember(self, tracked: Tracked) -> None:
        self._tracked[tracked.execution_id] = tracked
        while len(self._tracked) > self._settings.max_cached:
            oldest_id, oldest = next(iter(self._tracked.items()))
            if oldest.lock.locked():
                break
            del self._tracked[oldest_id]

    async def _resolve(self, request: StartInput, kind: str | None) -> PlaybookEntry:
        if request.catalog_id is None and not request.path:
            raise Unprocessable("Either 'path' or 'catalog_id' must be provided")
        try:
            entry = await self._catalog.resolve(
                path=request.path if request.catalog_id is None else None,
                catalog_id=request.catalog_id,
                version=request.version,
            )
        except NotFound:
            entry = None
        allowed = {kind} if kind else EXECUTABLE
        if entry is None or entry.kind not in allowed:
            where = request.path if request.catalog_id is None else f"catalog_id={request.catalog_id}"
            raise NotFound(f"Executable catalog entry not found: {where}") from None
        return entry

    def _playbook(self, entry: PlaybookEntry) -> Playbook:
        playbook = self._playbooks.get(entry.catalog_id)
        if playbook is None:
            playbook = parse_playbook(entry.document)
            self._playbooks[entry.catalog_id] = playbook
            if len(self._playbooks) > 1000:
                self._playbooks.popitem(last=False)
        return playbook

    def _notification(self, tracked: Tracked, command_id: int, step: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "execution_id": tracked.execution_id,
            "event_id": 0,
            "command_id": command_id,
            "step": step,
            "server_url": self._settings.server_url,
            "execution_pool": tracked.pool,
        }
        if tracked.trace:
            payload["trace"] = tracked.trace
        return payload


def _requested_kind(resource_kind: str | None) -> str | None:
    """Raises Unprocessable for a kind that cannot be executed."""
    if resource_kind is None:
        return None
    kind = resource_kind.strip().lower().removesuffix("s")
    if kind not in EXECUTABLE:
        raise Unprocessable(f"Catalog kind '{resource_kind}' is not executable")
    return kind


def _parent_of(root_context: dict[str, Any]) -> int | None:
    """The parent named by the root event (a sub-playbook's), as the log recorded it."""
    value = root_context.get("parent_execution_id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
