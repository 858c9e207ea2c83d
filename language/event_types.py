"""The event vocabulary of NoETL (dsl.md §10.1): canonical names and the aliases readers accept.

The one definition of each event-type set: the event log normalises what workers send with it,
the engine folds it, and the worker, the gateway and the launcher read runs' ends by it.
"""

from __future__ import annotations

from collections.abc import Mapping

from language.statuses import CANCELLED, COMPLETED, FAILED


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


# Every canonical event type, in the order of the class above.
EVENT_TYPES = tuple(value for name, value in vars(EventType).items() if name.isupper())


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


# The status each terminal event ends an execution with (dsl.md §15.1).
TERMINAL_STATUS: Mapping[str, str] = {
    EventType.PLAYBOOK_COMPLETED: COMPLETED,
    EventType.WORKFLOW_COMPLETED: COMPLETED,
    EventType.PLAYBOOK_FAILED: FAILED,
    EventType.WORKFLOW_FAILED: FAILED,
    EventType.EXECUTION_CANCELLED: CANCELLED,
}
TERMINAL = frozenset(TERMINAL_STATUS)
TERMINAL_COMPLETED = frozenset(kind for kind, status in TERMINAL_STATUS.items() if status == COMPLETED)
TERMINAL_FAILED = frozenset(kind for kind, status in TERMINAL_STATUS.items() if status == FAILED)
# What the status reports read as "over" (§15.1): a terminal event, or a newest `command.failed`.
ENDED_STATUS: Mapping[str, str] = {**TERMINAL_STATUS, EventType.COMMAND_FAILED: FAILED}
# The single terminal event an execution ends with (data-model.md §4.1 #5).
WRITTEN_TERMINAL = frozenset(
    {EventType.PLAYBOOK_COMPLETED, EventType.PLAYBOOK_FAILED, EventType.EXECUTION_CANCELLED}
)
# Worker lifecycle events: at most one per (execution, type, step, command) (§4.1 #3).
WORKER_IDEMPOTENT = frozenset(
    {
        EventType.CALL_DONE,
        EventType.CALL_ERROR,
        EventType.STEP_EXIT,
        EventType.COMMAND_STARTED,
        EventType.COMMAND_COMPLETED,
        EventType.COMMAND_FAILED,
    }
)
