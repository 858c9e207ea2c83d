"""What goes into and comes out of the engine: event rows in, decisions out.

The engine never touches storage. A caller reads event rows, folds them into an
`ExecutionState` and asks `evaluate.advance` for a `Decision`; it then persists the
decision's events and commands in one transaction and folds the persisted rows back
into the state before the next pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of the event log, JSON columns already decoded."""

    event_id: int
    event_type: str
    node_name: str | None
    status: str | None
    context: Any
    result: Any
    meta: Any
    error: str | None
    command_id: int | None
    created_at: datetime
    parent_event_id: int | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event the engine decides to append."""

    event_type: str
    node_name: str
    status: str
    context: Any = None
    result: Any = None
    meta: dict[str, Any] | None = None
    error: str | None = None
    node_type: str | None = None
    command_id: int | None = None
    parent_event_id: int | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command row; its `command.issued` event is `Decision.events[event_index]`."""

    command_id: int
    step: str
    tool_kind: str
    context: dict[str, Any]
    meta: dict[str, Any]
    event_index: int
    iter_index: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one orchestrator pass.

    `terminal` is "COMPLETED" or "FAILED" when the last event of `events` ends the execution.
    """

    events: list[NewEvent]
    commands: list[NewCommand]
    terminal: str | None

    @classmethod
    def nothing(cls) -> Decision:
        return cls(events=[], commands=[], terminal=None)


class EventType:
    """Canonical (dotted) event type names; the engine writes only these."""

    PLAYBOOK_INITIALIZED = "playbook.initialized"
    WORKFLOW_INITIALIZED = "workflow.initialized"
    STEP_ENTER = "step.enter"
    STEP_SKIPPED = "step.skipped"
    STEP_EXIT = "step.exit"
    COMMAND_ISSUED = "command.issued"
    COMMAND_CLAIMED = "command.claimed"
    COMMAND_HEARTBEAT = "command.heartbeat"
    COMMAND_STARTED = "command.started"
    COMMAND_COMPLETED = "command.completed"
    COMMAND_FAILED = "command.failed"
    CALL_DONE = "call.done"
    CALL_ERROR = "call.error"
    CTX_UPDATED = "ctx.updated"
    LOOP_DONE = "loop.done"
    PLAYBOOK_COMPLETED = "playbook.completed"
    PLAYBOOK_FAILED = "playbook.failed"
    WORKFLOW_COMPLETED = "workflow.completed"
    WORKFLOW_FAILED = "workflow.failed"
    EXECUTION_CANCELLED = "execution.cancelled"


# Readers accept the reference's other spellings (dsl.md §10.1); they are never written.
_ALIASES: dict[str, str] = {
    "playbook_started": EventType.PLAYBOOK_INITIALIZED,
    "playbook.started": EventType.PLAYBOOK_INITIALIZED,
    "playbook_completed": EventType.PLAYBOOK_COMPLETED,
    "playbook_failed": EventType.PLAYBOOK_FAILED,
    "playbook_cancelled": EventType.EXECUTION_CANCELLED,
    "playbook.cancelled": EventType.EXECUTION_CANCELLED,
    "step_enter": EventType.STEP_ENTER,
    "step_started": EventType.STEP_ENTER,
    "step_skipped": EventType.STEP_SKIPPED,
    "action_started": EventType.COMMAND_STARTED,
    "action_completed": EventType.COMMAND_COMPLETED,
    "step_completed": EventType.STEP_EXIT,
    "action_done": EventType.CALL_DONE,
    "action_failed": EventType.COMMAND_FAILED,
    "step_failed": EventType.COMMAND_FAILED,
}


def canonical_event_type(event_type: str) -> str:
    """The dotted spelling of `event_type` (aliases of dsl.md §10.1 folded in)."""
    return _ALIASES.get(event_type, event_type)


TERMINAL_COMPLETED = frozenset({EventType.PLAYBOOK_COMPLETED, EventType.WORKFLOW_COMPLETED})
TERMINAL_FAILED = frozenset({EventType.PLAYBOOK_FAILED, EventType.WORKFLOW_FAILED})
