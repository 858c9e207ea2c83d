"""Execution status as the HTTP API reports it (dsl.md §15.1, §15.2; http-api.md §13.2).

Every function takes the execution's events in any order: they are ordered by `event_id`
(event ids increase with the log, data-model.md §4.3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

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


@dataclass(slots=True)
class StatusFold:
    """What the status routes read of a log, folded one event at a time in id order. The
    orchestrator keeps one per cached execution (`Tracked.status`), so a status read is not a
    log read; the functions below fold a whole log into one."""

    first: EventRecord | None = None
    newest: EventRecord | None = None
    final: EventRecord | None = None  # the first written terminal event: nothing after it counts
    ended: EventRecord | None = None  # the newest event of the terminal set (`command.failed` too)
    current_step: str | None = None
    completed_steps: dict[str, None] = field(default_factory=dict)

    def add(self, event: EventRecord) -> None:
        kind = canonical_event_type(event.event_type)
        self.first = self.first or event
        self.newest = event
        if kind in WRITTEN_TERMINAL and self.final is None:
            self.final = event
        if kind in ENDED_STATUS:
            self.ended = event
        if kind in _STEP_SCOPED and event.node_name:
            self.current_step = event.node_name
        name = event.node_name
        if (
            kind in (EventType.STEP_EXIT, EventType.LOOP_DONE)
            and event.status == COMPLETED
            and name
            and not name.endswith(_SEQUENCE_SUFFIX)
        ):
            self.completed_steps.setdefault(name, None)

    @property
    def terminal(self) -> EventRecord | None:
        """The run's final event when it has one, else the newest event of the terminal set."""
        return self.final or self.ended

    def status(self) -> str:
        """`RUNNING`, `COMPLETED`, `FAILED` or `CANCELLED` for lists and details (dsl.md §15.1)."""
        terminal = self.terminal
        if terminal is not None:
            return ENDED_STATUS[canonical_event_type(terminal.event_type)]
        newest = self.newest
        if (
            newest is not None
            and canonical_event_type(newest.event_type) in _COMPLETION_ARM
            and newest.node_name == "end"
            and newest.status == COMPLETED
        ):
            return COMPLETED
        return RUNNING

    @property
    def completion_inferable(self) -> bool:
        """No terminal event, and the newest one completed some work: the run reads as complete
        unless a command is still open. The only case the open-command count decides."""
        newest = self.newest
        return (
            self.terminal is None
            and newest is not None
            and canonical_event_type(newest.event_type) in _COMPLETION_ARM
            and newest.status == COMPLETED
        )

    def flags(self, *, has_open_commands: bool) -> StatusFlags:
        """The `/status` flags; `has_open_commands`: a command is pending or in flight."""
        completed = failed = inferred = False
        terminal = self.terminal
        if terminal is not None:
            status = ENDED_STATUS[canonical_event_type(terminal.event_type)]
            completed = status in (COMPLETED, CANCELLED)
            failed = status == FAILED
        elif self.completion_inferable and not has_open_commands:
            completed = inferred = True
        return StatusFlags(
            completed=completed,
            failed=failed,
            completion_inferred=inferred,
            current_step=self.current_step,
            completed_steps=tuple(self.completed_steps),
        )


def fold(events: Iterable[EventRecord]) -> StatusFold:
    folded = StatusFold()
    for event in sorted(events, key=lambda event: event.event_id):
        folded.add(event)
    return folded


def duration_human(seconds: float) -> str:
    """`"1d 2h 3m 4s"`: non-zero units only, `"0s"` when everything is zero (http-api.md §13.2)."""
    remaining = max(int(seconds), 0)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"
