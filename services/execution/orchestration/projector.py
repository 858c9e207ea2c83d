"""The execution context's projections, rebuilt from the event log (data-model.md §5, dsl.md §18).

The log is the source of truth; `noetl.execution` and `noetl.command` are projections of it.
The orchestrator writes them right after its own appends (the fast path), but a crash, a lost
connection or a cancelled call between the append and that write must not strand a run. So
every projection is also derived here from the events themselves, idempotently:

- `playbook.initialized` → the execution row (inserted if missing);
- `command.issued` → the command row (inserted if missing);
- worker lifecycle events → the command row's status and lease (never downgraded);
- the terminal event → the execution's final status (written once, never changed).

`observe` takes events as the event feed delivers them (at least once, any order); `heal`
repairs one execution from its log, in pages, and is what the reconciler and a claim that finds
no row call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence

from prometheus_client import Counter

from language.event_types import TERMINAL_STATUS, WRITTEN_TERMINAL, EventType
from services.execution.commands.lifecycle import LifecycleEvent, LifecycleWriter, updates_for
from services.execution.commands.store import CommandStore, NewCommandRow
from services.execution.orchestration.store import ExecutionStore
from services.execution.ports import EventsPort, LogEvent

log = logging.getLogger(__name__)

HEALED = Counter("noetl_projection_healed_total", "Projection rows repaired from the log", ["kind"])
for _kind in ("execution", "command", "status"):
    HEALED.labels(_kind)

LIFECYCLE = frozenset(
    {
        EventType.COMMAND_STARTED,
        EventType.COMMAND_HEARTBEAT,
        EventType.COMMAND_COMPLETED,
        EventType.COMMAND_FAILED,
    }
)
_REMEMBERED = 50_000


class Projector:
    def __init__(
        self, store: ExecutionStore, commands: CommandStore, events: EventsPort, lifecycle: LifecycleWriter
    ) -> None:
        self._store = store
        self._commands = commands
        self._events = events
        self._lifecycle = lifecycle
        # Event ids whose projection this process has written already (the orchestrator's fast
        # path says so through `written`): their copies from the feed cost no database write.
        # Lost with the process, which is exactly when the feed's copy must be projected.
        self._written: OrderedDict[int, None] = OrderedDict()
        # Commands whose claim transaction is open: the claim writes their row itself, and the
        # feed often brings the claim's events before it commits.
        self._claiming: dict[int, asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def claiming(self, command_id: int) -> AsyncIterator[None]:
        """Held around a claim's transaction; the claim reports its events through `written`
        once committed, and `observe` waits for that before projecting them a second time."""
        done = asyncio.Event()
        self._claiming[command_id] = done
        try:
            yield
        finally:
            if self._claiming.get(command_id) is done:
                del self._claiming[command_id]
            done.set()

    def written(self, event_ids: Iterable[int]) -> None:
        for event_id in event_ids:
            self._written[event_id] = None
        while len(self._written) > _REMEMBERED:
            self._written.popitem(last=False)

    async def observe(self, execution_id: int, events: Sequence[LogEvent]) -> None:
        """Projects one execution's events (any order, possibly seen before)."""
        claims = {self._claiming[e.command_id] for e in events if e.command_id in self._claiming}
        for claim in claims:
            await claim.wait()
        fresh = [e for e in sorted(events, key=lambda e: e.event_id) if e.event_id not in self._written]
        root = next((e for e in fresh if e.kind == EventType.PLAYBOOK_INITIALIZED), None)
        if root is not None:
            await self._ensure_execution(root)
        issued = [e for e in fresh if e.kind == EventType.COMMAND_ISSUED and e.command_id is not None]
        if issued:
            await self._ensure_commands(execution_id, issued)
        await self._lifecycle.apply(execution_id, updates_for(_lifecycle(fresh)))
        final = next((e for e in fresh if e.kind in WRITTEN_TERMINAL), None)
        if final is not None:
            await self._finish(final)
        self.written(e.event_id for e in fresh)

    async def heal(self, execution_id: int) -> None:
        """Repairs one execution's command rows from its log when they disagree (the final status
        follows from the feed, which holds the terminal event until it is projected).

        Cheap when nothing is wrong: two counts. Otherwise the issued commands are read in pages.
        """
        issued = await self._events.count(execution_id, EventType.COMMAND_ISSUED)
        if issued != await self._commands.command_count(execution_id):
            async for page in self._events.pages(execution_id, EventType.COMMAND_ISSUED):
                await self._ensure_commands(execution_id, page)

    async def read(self, execution_id: int, event: LogEvent) -> LogEvent:
        """The whole event from the log (its stream copy was a reference); as given if gone."""
        return await self._events.one(execution_id, event.event_id) or event

    async def heal_command(self, execution_id: int, event_id: int) -> bool:
        """Projects one `command.issued` event by id; False when the log has no such command."""
        found = await self._events.one(execution_id, event_id)
        if found is None or found.kind != EventType.COMMAND_ISSUED or found.command_id is None:
            return False
        await self._ensure_commands(execution_id, [found])
        return True

    async def _ensure_execution(self, root: LogEvent) -> None:
        if await self._store.ensure_execution(
            execution_id=root.execution_id,
            catalog_id=root.catalog_id,
            parent_execution_id=root.parent_execution_id,
            start_time=root.created_at,
        ):
            HEALED.labels("execution").inc()
            log.info("execution %s: row projected from its log", root.execution_id)

    async def _ensure_commands(self, execution_id: int, issued: Sequence[LogEvent]) -> None:
        first = issued[0]
        inserted = await self._commands.ensure_commands(
            execution_id,
            first.catalog_id,
            first.parent_execution_id,
            [_command_row(event, event.command_id) for event in issued if event.command_id is not None],
        )
        if inserted:
            HEALED.labels("command").inc(inserted)
            log.info("execution %s: %d command rows projected from its log", execution_id, inserted)

    async def _finish(self, terminal: LogEvent) -> None:
        if await self._store.finish(
            terminal.execution_id,
            TERMINAL_STATUS[terminal.kind],
            terminal.error,
            terminal.event_id,
            terminal.event_type,
        ):
            HEALED.labels("status").inc()


def _lifecycle(events: Iterable[LogEvent]) -> list[LifecycleEvent]:
    return [
        LifecycleEvent(e.event_id, e.kind, e.command_id, e.worker_id, e.error)
        for e in events
        if e.kind in LIFECYCLE
    ]


def _command_row(event: LogEvent, command_id: int) -> NewCommandRow:
    meta = event.meta if isinstance(event.meta, dict) else {}
    index = meta.get("iteration_index")
    return NewCommandRow(
        command_id=command_id,
        event_id=event.event_id,
        step=event.node_name or "",
        tool_kind=event.node_type or str(meta.get("tool_kind") or ""),
        context=event.context if isinstance(event.context, dict) else {},
        meta=meta,
        iter_index=index if isinstance(index, int) else None,
        prev_event_id=event.prev_event_id,
    )
