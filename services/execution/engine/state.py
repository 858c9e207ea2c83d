"""Execution state as an incremental fold over the event log (dsl.md §12.1, §12.2).

Build one with `ExecutionState.from_root(<playbook.initialized record>)` (or the constructor
when the ids and the merged workload are at hand), then `apply` every later row in
`event_id` order, including the rows the engine itself decided (`step.enter`,
`command.issued`, `ctx.updated`, ...) once they are persisted. Each `apply` costs O(1) in
the size of the log; rows at or below `last_event_id` are ignored, so replaying an overlap
is harmless. `evaluate.advance` only reads the state.

Every step status change goes through `_transition`, which keeps the running set exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from language.event_types import TERMINAL
from services.execution.engine.loops import LoopProgress
from services.execution.engine.records import (
    TERMINAL_COMPLETED,
    TERMINAL_FAILED,
    EventRecord,
    EventType,
    canonical_event_type,
)
from services.execution.engine.results import (
    call_result_is_error,
    command_id_of,
    context_updates,
    extract_user_data,
    failure_message,
    payload_status_is_error,
)


class StepStatus(StrEnum):
    PENDING = "pending"
    ENTERED = "entered"
    COMMAND_ISSUED = "command_issued"
    COMMAND_CLAIMED = "command_claimed"
    COMMAND_STARTED = "command_started"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


RUNNING = frozenset(
    {StepStatus.ENTERED, StepStatus.COMMAND_ISSUED, StepStatus.COMMAND_CLAIMED, StepStatus.COMMAND_STARTED}
)
DONE = frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED})


class ExecutionStatus(StrEnum):
    INITIAL = "initial"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CommandStatus(StrEnum):
    ISSUED = "issued"
    CLAIMED = "claimed"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"


_MISSING: Any = object()


@dataclass(slots=True)
class CommandState:
    command_id: int
    step: str
    iteration: int | None
    status: CommandStatus = CommandStatus.ISSUED
    # A `call.error` or an error `call.done` turns the command's completion into a failure (§17.2).
    errored: bool = False
    error: str | None = None
    data: Any = _MISSING  # user data of its `call.done`

    @property
    def terminal(self) -> bool:
        return self.status in (CommandStatus.COMPLETED, CommandStatus.FAILED)


@dataclass(slots=True)
class StepState:
    name: str
    status: StepStatus = StepStatus.PENDING
    enter_count: int = 0
    envelope: Any = None  # the raw stored result envelope (`steps.<name>`)
    data: Any = _MISSING  # the user data (§11.1)
    error: str | None = None
    error_data: Any = None  # the error result's user data, when the failure carried one
    failure_reason: str | None = None
    failure_handled: bool = False
    entered_event_id: int | None = None  # the latest `step.enter` (or `command.issued` of a plain step)
    completed_event_id: int | None = None  # the latest completion: `gen` of its `ctx.updated`
    done_event_id: int | None = None  # the latest transition to a done status
    set_applied_gen: int | None = None
    loop: LoopProgress | None = None

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def has_result(self) -> bool:
        return self.data is not _MISSING

    @property
    def needs_set(self) -> bool:
        """Completed, and its step-level `set` not yet persisted for this completion."""
        return self.status is StepStatus.COMPLETED and self.set_applied_gen != self.completed_event_id

    def result_data(self) -> Any:
        """The user data templates see; a loop step's is the aggregate list (§12.7)."""
        if self.loop is not None and self.status is StepStatus.COMPLETED:
            return self.loop.aggregate()
        return None if self.data is _MISSING else self.data

    def result_envelope(self) -> Any:
        if self.loop is not None and self.status is StepStatus.COMPLETED:
            return list(self.loop.envelopes)
        return self.envelope


@dataclass(slots=True)
class ExecutionState:
    """Per-execution state folded from `EventRecord`s; see the module docstring."""

    execution_id: int
    catalog_id: int
    path: str
    workload: dict[str, Any]
    status: ExecutionStatus = ExecutionStatus.INITIAL
    last_event_id: int = 0
    steps: dict[str, StepState] = field(default_factory=dict)
    commands: dict[int, CommandState] = field(default_factory=dict)
    ctx: dict[str, Any] = field(default_factory=dict)  # the `ctx.updated` overlay
    context_updates: dict[str, Any] = field(default_factory=dict)  # pipelines' `_context_updates`
    running: set[str] = field(default_factory=set)
    open_commands: set[int] = field(default_factory=set)
    failed_steps: list[str] = field(default_factory=list)  # in failure order, unique
    reached_end: bool = False
    last_step: str | None = None
    terminal_event_id: int | None = None
    trace: Any = None  # the root event's `meta.trace`, copied into command meta

    @classmethod
    def from_root(cls, record: EventRecord) -> ExecutionState:
        """Build the state from the root `playbook.initialized` row and apply it.

        Raises:
            ValueError: the record is not a `playbook.initialized` with its context.
        """
        context = record.context if isinstance(record.context, Mapping) else {}
        if canonical_event_type(record.event_type) != EventType.PLAYBOOK_INITIALIZED or not context:
            raise ValueError("the root record must be a playbook.initialized event with a context")
        workload = context.get("workload")
        state = cls(
            execution_id=int(context["execution_id"]),
            catalog_id=int(context["catalog_id"]),
            path=str(context.get("path") or record.node_name or ""),
            workload=dict(workload) if isinstance(workload, Mapping) else {},
        )
        state.apply(record)
        return state

    # --- queries ---------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.status in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)

    @property
    def has_open_commands(self) -> bool:
        return bool(self.open_commands)

    def step(self, name: str) -> StepState:
        """The state of step `name` (a pending placeholder if nothing happened to it yet)."""
        return self.steps.get(name) or StepState(name=name)

    def flat_context(self) -> dict[str, Any]:
        """Merged workload, then the `ctx.updated` overlay, then `_context_updates` (§6).

        The execution's variables as `/status` reports them (http-api.md §4.5).
        """
        return {**self.workload, **self.ctx, **self.context_updates}

    def unhandled_failures(self) -> list[str]:
        return [name for name in self.failed_steps if not self.steps[name].failure_handled]

    # --- the fold --------------------------------------------------------------------------

    def apply(self, record: EventRecord) -> None:
        """Fold one event row into the state (rows must arrive in `event_id` order)."""
        if record.event_id <= self.last_event_id:
            return
        self.last_event_id = record.event_id
        if self.is_terminal:
            # Worker events after the end are stored but carry no orchestration effect (§13).
            return
        handler = _HANDLERS.get(canonical_event_type(record.event_type))
        if handler is not None:
            handler(self, record)

    def _own(self, name: str) -> StepState:
        step = self.steps.get(name)
        if step is None:
            step = self.steps[name] = StepState(name=name)
        return step

    def _transition(self, step: StepState, status: StepStatus, event_id: int) -> None:
        step.status = status
        if status in RUNNING:
            self.running.add(step.name)
        else:
            self.running.discard(step.name)
        if status in DONE:
            step.done_event_id = event_id
            if status is not StepStatus.SKIPPED:
                self.last_step = step.name
        if status is StepStatus.COMPLETED:
            step.completed_event_id = event_id

    def _on_initialized(self, record: EventRecord) -> None:
        self.status = ExecutionStatus.IN_PROGRESS
        if isinstance(record.meta, Mapping) and record.meta.get("trace") is not None:
            self.trace = record.meta["trace"]

    def _on_enter(self, record: EventRecord) -> None:
        if record.node_name is None:
            return
        step = self._own(record.node_name)
        step.enter_count += 1
        step.entered_event_id = record.event_id
        context = record.context if isinstance(record.context, Mapping) else {}
        expected = context.get("iterations_expected")
        if isinstance(expected, int):
            step.loop = LoopProgress(expected=expected, iterator=str(context.get("iterator_var") or ""))
        else:
            step.loop = None
        self._mark_handled(record)
        self._transition(step, StepStatus.ENTERED, record.event_id)

    def _on_issued(self, record: EventRecord) -> None:
        meta = record.meta if isinstance(record.meta, Mapping) else {}
        command_id = command_id_of(record.context, meta, record.command_id)
        if record.node_name is None or command_id is None:
            return
        index = meta.get("iteration_index")
        iteration = index if isinstance(index, int) else None
        self.commands[command_id] = CommandState(
            command_id=command_id, step=record.node_name, iteration=iteration
        )
        self.open_commands.add(command_id)
        step = self._own(record.node_name)
        if step.loop is not None and iteration is not None:
            step.loop.issue(iteration, command_id)
        self._mark_handled(record)
        if not step.running:
            # A plain step dispatched without `step.enter` (the execute-time `start`).
            step.entered_event_id = record.event_id
        if step.loop is None or step.status in (StepStatus.ENTERED, StepStatus.PENDING):
            self._transition(step, StepStatus.COMMAND_ISSUED, record.event_id)

    def _command(self, record: EventRecord) -> CommandState | None:
        command_id = command_id_of(record.context, record.meta, record.command_id)
        return self.commands.get(command_id) if command_id is not None else None

    def _on_progress(self, record: EventRecord) -> None:
        command = self._command(record)
        if command is None or command.terminal:
            return
        claimed = canonical_event_type(record.event_type) == EventType.COMMAND_CLAIMED
        command.status = CommandStatus.CLAIMED if claimed else CommandStatus.STARTED
        step = self._own(command.step)
        if step.running:
            status = StepStatus.COMMAND_CLAIMED if claimed else StepStatus.COMMAND_STARTED
            if step.loop is None or step.status is not StepStatus.COMMAND_STARTED:
                self._transition(step, status, record.event_id)

    def _on_call_done(self, record: EventRecord) -> None:
        command = self._command(record)
        if command is None or command.terminal:
            return
        if call_result_is_error(record.context):
            command.errored = True
            command.error = failure_message(_get(record.context, "result"), record.error, record.context)
            command.data = extract_user_data(record.result)
            return
        data = extract_user_data(record.result)
        command.data = data
        step = self._own(command.step)
        if command.iteration is None:
            step.envelope = record.result
            step.data = data
        # A loop iteration's `ctx.*` policy values apply too, in `call.done` order: a sequential
        # loop's order, a parallel loop's completion order (docs/decisions.md).
        updates = context_updates(data)
        if updates:
            self.context_updates.update(updates)

    def _on_call_error(self, record: EventRecord) -> None:
        command = self._command(record)
        if command is None or command.terminal:
            return
        command.errored = True
        command.error = failure_message(record.result, record.error, record.context)
        if isinstance(_get(record.context, "result"), Mapping):
            command.data = extract_user_data(record.result)

    def _on_completion(self, record: EventRecord) -> None:
        command = self._command(record)
        if command is None:
            self._on_synthetic_exit(record)
            return
        if command.terminal:
            return
        if command.errored or payload_status_is_error(record.context):
            error = command.error or failure_message(record.result, record.error, record.context)
            self._fail(command, error, record)
            return
        command.status = CommandStatus.COMPLETED
        self.open_commands.discard(command.command_id)
        step = self._own(command.step)
        if step.loop is not None and command.iteration is not None:
            has_data = command.data is not _MISSING
            step.loop.count(command.command_id, command.iteration, record.result, command.data, has_data)
            if step.loop.finished and step.running:
                self._transition(step, StepStatus.COMPLETED, record.event_id)
            return
        if command.data is _MISSING and isinstance(_get(record.context, "result"), Mapping):
            # No `call.done` for this command: the worker's `step.exit` carries the result.
            step.envelope = record.result
            step.data = extract_user_data(record.result)
        if step.running:
            self._transition(step, StepStatus.COMPLETED, record.event_id)

    def _on_synthetic_exit(self, record: EventRecord) -> None:
        # The server's own `step.exit` for an empty loop or a drained cursor (§12.7).
        if record.node_name is None or canonical_event_type(record.event_type) != EventType.STEP_EXIT:
            return
        step = self._own(record.node_name)
        if not step.running:
            return
        if step.loop is None:
            step.envelope = record.result
            step.data = extract_user_data(record.result)
        self._transition(step, StepStatus.COMPLETED, record.event_id)

    def _on_failed(self, record: EventRecord) -> None:
        command = self._command(record)
        if command is None or command.terminal:
            return
        self._fail(command, failure_message(record.result, record.error, record.context), record)

    def _fail(self, command: CommandState, error: str, record: EventRecord) -> None:
        command.status = CommandStatus.FAILED
        command.error = error
        self.open_commands.discard(command.command_id)
        step = self._own(command.step)
        if step.loop is not None:
            step.loop.in_flight.discard(command.command_id)
            step.loop.failed += 1
        if step.status is StepStatus.FAILED:
            return
        step.error = error
        step.error_data = None if command.data is _MISSING else command.data
        meta = record.meta if isinstance(record.meta, Mapping) else {}
        reason = meta.get("reason")
        step.failure_reason = reason if isinstance(reason, str) else None
        step.failure_handled = False
        if step.name in self.failed_steps:
            self.failed_steps.remove(step.name)
        self.failed_steps.append(step.name)
        self._transition(step, StepStatus.FAILED, record.event_id)

    def _on_skipped(self, record: EventRecord) -> None:
        if record.node_name is None:
            return
        meta = record.meta if isinstance(record.meta, Mapping) else {}
        if meta.get("reached_end") is True:
            self.reached_end = True
        self._transition(self._own(record.node_name), StepStatus.SKIPPED, record.event_id)

    def _on_ctx_updated(self, record: EventRecord) -> None:
        context = record.context if isinstance(record.context, Mapping) else {}
        values = context.get("values")
        if isinstance(values, Mapping):
            self.ctx.update(values)
        name = context.get("step", record.node_name)
        gen = context.get("gen")
        if isinstance(name, str) and isinstance(gen, int):
            self._own(name).set_applied_gen = gen

    def _on_loop_done(self, record: EventRecord) -> None:
        if record.node_name is None:
            return
        step = self._own(record.node_name)
        if step.loop is not None:
            step.loop.done_written = True

    def _on_terminal(self, record: EventRecord) -> None:
        event_type = canonical_event_type(record.event_type)
        if event_type in TERMINAL_COMPLETED:
            self.status = ExecutionStatus.COMPLETED
        elif event_type in TERMINAL_FAILED:
            self.status = ExecutionStatus.FAILED
        else:
            self.status = ExecutionStatus.CANCELLED
        self.terminal_event_id = record.event_id

    def _mark_handled(self, record: EventRecord) -> None:
        # Dispatches through an `on_error` arc name the failure they handle (§17.5).
        meta = record.meta if isinstance(record.meta, Mapping) else {}
        source = meta.get("on_error_of")
        if isinstance(source, str) and source in self.steps:
            self.steps[source].failure_handled = True


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else None


_HANDLERS: dict[str, Callable[[ExecutionState, EventRecord], None]] = {
    EventType.PLAYBOOK_INITIALIZED: ExecutionState._on_initialized,
    EventType.STEP_ENTER: ExecutionState._on_enter,
    EventType.COMMAND_ISSUED: ExecutionState._on_issued,
    EventType.COMMAND_CLAIMED: ExecutionState._on_progress,
    EventType.COMMAND_STARTED: ExecutionState._on_progress,
    EventType.COMMAND_HEARTBEAT: ExecutionState._on_progress,
    EventType.CALL_DONE: ExecutionState._on_call_done,
    EventType.CALL_ERROR: ExecutionState._on_call_error,
    EventType.STEP_EXIT: ExecutionState._on_completion,
    EventType.COMMAND_COMPLETED: ExecutionState._on_completion,
    EventType.COMMAND_FAILED: ExecutionState._on_failed,
    EventType.STEP_SKIPPED: ExecutionState._on_skipped,
    EventType.CTX_UPDATED: ExecutionState._on_ctx_updated,
    EventType.LOOP_DONE: ExecutionState._on_loop_done,
    **dict.fromkeys(TERMINAL, ExecutionState._on_terminal),
}
