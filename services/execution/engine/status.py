"""Execution status as the HTTP API reports it (dsl.md §15.1, §15.2; http-api.md §13.2).

Every function takes the execution's events in any order: they are ordered by `event_id`
(event ids increase with the log, data-model.md §4.3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from language.event_types import ENDED_STATUS, WRITTEN_TERMINAL
from language.statuses import CANCELLED, COMPLETED, FAILED, RUNNING
from services.execution.engine.records import EventRecord, EventType, canonical_event_type

_COMPLETION_ARM = frozenset({EventType.COMMAND_COMPLETED, EventType.CALL_DONE, EventType.STEP_EXIT})
_STEP_SCOPED = frozenset(
    {
        EventType.STEP_ENTER, EventType.STEP_SKIPPED, EventType.STEP_EXIT, EventType.COMMAND_ISSUED,
        EventType.COMMAND_CLAIMED, EventType.COMMAND_HEARTBEAT, EventType.COMMAND_STARTED,
        EventType.COMMAND_COMPLETED, EventType.COMMAND_FAILED, EventType.CALL_DONE, EventType.CALL_ERROR,
        EventType.CTX_UPDATED, EventType.LOOP_DONE,
    }
)  # fmt: skip
_SEQUENCE_SUFFIX = ":task_sequence"


@dataclass(frozen=True, slots=True)
class StatusFlags:
    """The flags of `GET /api/executions/{id}/status` (dsl.md §15.2, http-api.md §4.5)."""

    completed: bool
    failed: bool
    completion_inferred: bool
    current_step: str | None
    completed_steps: tuple[str, ...]


def terminal_event(events: Iterable[EventRecord]) -> EventRecord | None:
    """The run's final event when it has one (the first: nothing after it counts), else the
    newest event of the terminal set (`command.failed` included), if any."""
    ordered = _ordered(events)
    final = next((e for e in ordered if canonical_event_type(e.event_type) in WRITTEN_TERMINAL), None)
    if final is not None:
        return final
    newest: EventRecord | None = None
    for event in ordered:
        if canonical_event_type(event.event_type) in ENDED_STATUS and (
            newest is None or event.event_id > newest.event_id
        ):
            newest = event
    return newest


def execution_status(events: Iterable[EventRecord]) -> str:
    """`RUNNING`, `COMPLETED`, `FAILED` or `CANCELLED` for lists and details (dsl.md §15.1)."""
    ordered = _ordered(events)
    terminal = terminal_event(ordered)
    if terminal is not None:
        return ENDED_STATUS[canonical_event_type(terminal.event_type)]
    if ordered:
        newest = ordered[-1]
        if (
            canonical_event_type(newest.event_type) in _COMPLETION_ARM
            and newest.node_name == "end"
            and newest.status == COMPLETED
        ):
            return COMPLETED
    return RUNNING


def status_flags(events: Iterable[EventRecord], *, has_open_commands: bool) -> StatusFlags:
    """The `/status` flags; `has_open_commands`: a command is pending or in flight."""
    ordered = _ordered(events)
    completed = failed = inferred = False
    terminal = terminal_event(ordered)
    if terminal is not None:
        status = ENDED_STATUS[canonical_event_type(terminal.event_type)]
        completed = status in (COMPLETED, CANCELLED)
        failed = status == FAILED
    elif ordered and not has_open_commands:
        newest = ordered[-1]
        if canonical_event_type(newest.event_type) in _COMPLETION_ARM and newest.status == COMPLETED:
            completed = inferred = True
    return StatusFlags(
        completed=completed,
        failed=failed,
        completion_inferred=inferred,
        current_step=_current_step(ordered),
        completed_steps=_completed_steps(ordered),
    )


def duration_human(seconds: float) -> str:
    """`"1d 2h 3m 4s"`: non-zero units only, `"0s"` when everything is zero (http-api.md §13.2)."""
    remaining = max(int(seconds), 0)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"


def _ordered(events: Iterable[EventRecord]) -> list[EventRecord]:
    return sorted(events, key=lambda event: event.event_id)


def _current_step(ordered: list[EventRecord]) -> str | None:
    for event in reversed(ordered):
        if canonical_event_type(event.event_type) in _STEP_SCOPED and event.node_name:
            return event.node_name
    return None


def _completed_steps(ordered: list[EventRecord]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for event in ordered:
        name = event.node_name
        if (
            canonical_event_type(event.event_type) in (EventType.STEP_EXIT, EventType.LOOP_DONE)
            and event.status == COMPLETED
            and name
            and not name.endswith(_SEQUENCE_SUFFIX)
        ):
            names.setdefault(name, None)
    return tuple(names)
