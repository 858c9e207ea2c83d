"""Ending and repeating executions from outside the engine: cancel, finalize, rerun (dsl.md §13)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.errors import NotFound
from services.execution.engine.records import EventRecord, EventType, NewEvent, canonical_event_type
from services.execution.engine.status import CANCELLED, COMPLETED, FAILED, RUNNING
from services.execution.orchestration.orchestrator import Orchestrator, StartInput
from services.execution.orchestration.store import ExecutionStore
from services.execution.ports import EventsPort

# The newest event of these means "already over" for cancel and the cancellation check (§4.8).
_ENDED = {
    EventType.PLAYBOOK_COMPLETED: COMPLETED,
    EventType.WORKFLOW_COMPLETED: COMPLETED,
    EventType.PLAYBOOK_FAILED: FAILED,
    EventType.WORKFLOW_FAILED: FAILED,
    EventType.COMMAND_FAILED: FAILED,
    EventType.EXECUTION_CANCELLED: CANCELLED,
}
_TERMINAL = frozenset(
    {
        EventType.PLAYBOOK_COMPLETED,
        EventType.WORKFLOW_COMPLETED,
        EventType.PLAYBOOK_FAILED,
        EventType.WORKFLOW_FAILED,
        EventType.EXECUTION_CANCELLED,
    }
)


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


class Control:
    def __init__(self, orchestrator: Orchestrator, events: EventsPort, store: ExecutionStore) -> None:
        self._orchestrator = orchestrator
        self._events = events
        self._store = store

    async def cancel(self, execution_id: int, reason: str, cascade: bool) -> CancelOutcome:
        """Raises NotFound ("Execution <id> not found") when the execution has no events."""
        log = await self._log(execution_id)
        ended = _ended(log)
        if ended is not None:
            return CancelOutcome("already_completed", [], f"Execution {execution_id} is already {ended}")
        targets = [execution_id, *(await self._store.running_descendants(execution_id) if cascade else [])]
        cancelled = []
        for target in targets:
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
                    "parent_cancel_id": str(execution_id) if target != execution_id else None,
                    "actionable": True,
                },
            )
            if await self._orchestrator.close(target, event, CANCELLED):
                cancelled.append(target)
        return CancelOutcome("cancelled", cancelled, f"Cancelled {len(cancelled)} execution(s)")

    async def cancellation_check(self, execution_id: int) -> CancellationView:
        """Raises NotFound ("Execution <id> not found") when the execution has no events."""
        log = await self._log(execution_id)
        newest = canonical_event_type(log[-1].event_type)
        cancelled = any(canonical_event_type(r.event_type) == EventType.EXECUTION_CANCELLED for r in log)
        status = _ENDED.get(newest) or (CANCELLED if cancelled else RUNNING)
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
        if any(canonical_event_type(r.event_type) in _TERMINAL for r in log):
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
        if kind in _TERMINAL:
            return _ENDED[kind]
    return _ENDED.get(canonical_event_type(log[-1].event_type))
