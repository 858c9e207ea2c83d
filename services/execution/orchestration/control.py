"""Ending and repeating executions from outside the engine: cancel, finalize, rerun (dsl.md §13)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.errors import NotFound
from kernel.sharding import owns
from language.event_types import ENDED_STATUS, TERMINAL
from language.statuses import CANCELLED, COMPLETED, FAILED, RUNNING
from services.execution.engine.records import EventRecord, EventType, NewEvent, canonical_event_type
from services.execution.orchestration.orchestrator import Orchestrator, StartInput
from services.execution.orchestration.store import ExecutionStore
from services.execution.ports import EventsPort, FamilyPort


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    status: str  # "cancelled" | "already_completed"
    cancelled: list[int]
    message: str


@dataclass(frozen=True, slots=True)
class CancellationView:
    status: str
    event_type: str
    cancelled: bool
    completed: bool
    failed: bool


@dataclass(frozen=True, slots=True)
class FinalizeOutcome:
    status: str  # "finalized" | "already_completed" | "not_found"
    message: str


# A cascade follows parent links this deep at most (a cycle cannot form, but a bound costs nothing).
MAX_CASCADE_DEPTH = 64


class Control:
    def __init__(
        self,
        orchestrator: Orchestrator,
        events: EventsPort,
        store: ExecutionStore,
        family: FamilyPort,
        *,
        shard_index: int,
        shard_count: int,
    ) -> None:
        self._orchestrator = orchestrator
        self._events = events
        self._store = store
        self._family = family
        self._shard_index = shard_index
        self._shard_count = shard_count

    async def cancel(self, execution_id: int, reason: str, cascade: bool) -> CancelOutcome:
        """Cancels the execution and, with `cascade`, every running descendant on any shard
        (nearest first): this shard's directly, another shard's through its owner.

        Raises NotFound ("Execution <id> not found") when the execution has no events.
        """
        log = await self._log(execution_id)
        ended = _ended(log)
        if ended is not None:
            return CancelOutcome("already_completed", [], f"Execution {execution_id} is already {ended}")
        cancelled = [execution_id] if await self._close(execution_id, reason, cascade, None) else []
        for target in await self._running_descendants(execution_id) if cascade else []:
            if owns(target, self._shard_index, self._shard_count):
                closed = await self._close(target, reason, True, execution_id)
            else:
                closed = await self._family.cancel_member(target, reason, execution_id)
            if closed:
                cancelled.append(target)
        return CancelOutcome("cancelled", cancelled, f"Cancelled {len(cancelled)} execution(s)")

    async def cancel_member(self, execution_id: int, reason: str, cascade_from: int) -> CancelOutcome:
        """Cancels one execution of this shard as a member of `cascade_from`'s cascade (the
        ancestor's shard found it); already ended, nothing is written."""
        closed = await self._close(execution_id, reason, True, cascade_from)
        return CancelOutcome("cancelled", [execution_id] if closed else [], "")

    async def own_children(self, parent_ids: list[int]) -> list[tuple[int, bool]]:
        """(execution_id, running) of this shard's direct children of `parent_ids`, in id order."""
        return await self._store.children(parent_ids)

    async def _close(self, execution_id: int, reason: str, cascade: bool, cascade_from: int | None) -> bool:
        event = NewEvent(
            event_type=EventType.EXECUTION_CANCELLED,
            node_name="cancel",
            status=CANCELLED,
            context={"reason": reason, "cascade": cascade},
            result={"status": CANCELLED},
            meta={
                "reason": reason,
                "cancelled_by": "api",
                "cascade": cascade,
                "parent_cancel_id": None if cascade_from is None else str(cascade_from),
                "actionable": True,
            },
        )
        return await self._orchestrator.close(execution_id, event, CANCELLED)

    async def _running_descendants(self, execution_id: int) -> list[int]:
        """Every RUNNING execution below this one on any shard, nearest first, then by id; ended
        ones are walked through (a finished child's running grandchild is still cancelled)."""
        running: list[int] = []
        level = [execution_id]
        for _ in range(MAX_CASCADE_DEPTH):
            if not level:
                break
            children = await self._family.children(level)
            running += [child for child, alive in children if alive]
            level = [child for child, _ in children]
        return running

    async def cancellation_check(
        self, execution_id: int, *, from_projection: bool = False
    ) -> CancellationView:
        """From the log, or with `from_projection` from the execution row when it has one (the
        status a cancel writes before it answers; `event_type` the terminal one it recorded).

        Raises NotFound ("Execution <id> not found") when the execution has no events.
        """
        recorded = await self._store.recorded_status(execution_id) if from_projection else None
        if recorded is not None:
            status, terminal_type = recorded
            return CancellationView(
                status=status,
                event_type=terminal_type or "",
                cancelled=status == CANCELLED,
                completed=status == COMPLETED,
                failed=status == FAILED,
            )
        log = await self._log(execution_id)
        newest = canonical_event_type(log[-1].event_type)
        cancelled = any(canonical_event_type(r.event_type) == EventType.EXECUTION_CANCELLED for r in log)
        status = ENDED_STATUS.get(newest) or (CANCELLED if cancelled else RUNNING)
        return CancellationView(
            status=status,
            event_type=log[-1].event_type,
            cancelled=cancelled,
            completed=newest == EventType.PLAYBOOK_COMPLETED,
            failed=newest in (EventType.PLAYBOOK_FAILED, EventType.COMMAND_FAILED),
        )

    async def finalize(self, execution_id: int, reason: str) -> FinalizeOutcome:
        log = await self._events.since(execution_id, None)
        if not log:
            return FinalizeOutcome("not_found", f"Execution {execution_id} not found in engine state store")
        if any(canonical_event_type(r.event_type) in TERMINAL for r in log):
            return FinalizeOutcome("already_completed", f"Execution {execution_id} is already completed")
        root = log[0]
        event = NewEvent(
            event_type=EventType.PLAYBOOK_FAILED,
            node_name=root.node_name or "",
            status=FAILED,
            context={"status": FAILED, "error": reason},
            result={"status": FAILED},
            meta={"reason": "finalize"},
            error=reason,
        )
        if not await self._orchestrator.close(execution_id, event, FAILED):
            return FinalizeOutcome("already_completed", f"Execution {execution_id} is already completed")
        return FinalizeOutcome("finalized", f"Emitted terminal events for execution {execution_id}")

    async def rerun(
        self, execution_id: int, workload: dict[str, Any], resource_kind: str | None
    ) -> tuple[int, int]:
        """A new execution of the source's catalog entry; its payload is the source's workload
        overlaid with `workload` (so a bare rerun repeats the run as it was).

        Raises:
            NotFound: the source execution has no events.
        """
        root = (await self._log(execution_id))[0]
        context = root.context if isinstance(root.context, dict) else {}
        raw = context.get("workload")
        source: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return await self._orchestrator.start(
            StartInput(
                path=None,
                catalog_id=int(context.get("catalog_id") or 0),
                version=None,
                resource_kind=resource_kind,
                workload={**source, **workload},
                parent_execution_id=None,
                trace=None,
                execution_pool=None,
            )
        )

    async def _log(self, execution_id: int) -> list[EventRecord]:
        log = await self._events.since(execution_id, None)
        if not log:
            raise NotFound(f"Execution {execution_id} not found")
        return log


def _ended(log: list[EventRecord]) -> str | None:
    """How the execution ended, if it did: its terminal event, else a newest `command.failed`.

    The reference looks at the newest event only, so a cancelled run whose worker reported late
    would be "cancelled" again; any terminal event in the log settles it here.
    """
    for record in reversed(log):
        kind = canonical_event_type(record.event_type)
        if kind in TERMINAL:
            return ENDED_STATUS[kind]
    return ENDED_STATUS.get(canonical_event_type(log[-1].event_type))
