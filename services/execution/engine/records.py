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

from language.event_types import (
    TERMINAL_COMPLETED,
    TERMINAL_FAILED,
    EventType,
    canonical_event_type,
)

__all__ = [
    "TERMINAL_COMPLETED",
    "TERMINAL_FAILED",
    "Decision",
    "EventRecord",
    "EventType",
    "NewCommand",
    "NewEvent",
    "canonical_event_type",
]


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
