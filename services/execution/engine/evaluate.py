"""The orchestrator: `start` an execution, `advance` it one pass at a time (dsl.md §10, §12).

Both functions are pure: they read a parsed playbook and an `ExecutionState` and return a
`Decision` (events to append, commands to create, whether the run ended). The caller
persists the decision in one transaction and folds the persisted rows back into the state.
When `needs_follow_up(decision)` is true (an empty loop exited at once), the caller runs
`advance(..., trigger=None)` right away so successors do not wait for the reconciler; running
passes until one decides nothing is always safe too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kernel.errors import Unprocessable
from services.execution.engine.dispatch import Dispatcher, EvaluateError
from services.execution.engine.model import END_STEP, START_STEP, Arc, NextMode, OnNoMatch, Playbook
from services.execution.engine.records import Decision, EventRecord, EventType, NewEvent
from services.execution.engine.state import ExecutionState, StepStatus


def start(
    playbook: Playbook,
    *,
    execution_id: int,
    catalog_id: int,
    path: str,
    workload: Mapping[str, Any],
    parent_execution_id: int | None,
    new_id: Callable[[], int],
    meta: Mapping[str, Any] | None = None,
) -> Decision:
    """The events of an execute: `playbook.initialized`, `workflow.initialized`, the start dispatch.

    `workload` is the request's; it is merged over the playbook's (shallow, request wins,
    never rendered). `meta` is added to the root event's meta (`execution_pool`, `trace`).

    Raises:
        Unprocessable: `start` has a `loop` whose `in` does not render to a list (dsl.md §2 #6).
    """
    merged = {**playbook.workload, **workload}
    root_context: dict[str, Any] = {
        "catalog_id": str(catalog_id),
        "execution_id": str(execution_id),
        "path": path,
        "workload": merged,
    }
    if parent_execution_id is not None:
        root_context["parent_execution_id"] = str(parent_execution_id)
    events = [
        NewEvent(
            event_type=EventType.PLAYBOOK_INITIALIZED,
            node_name=path,
            status="STARTED",
            context=root_context,
            meta={"emitter": "orchestrator", **(meta or {})},
            idempotency_key="playbook.initialized",
        ),
        NewEvent(
            event_type=EventType.WORKFLOW_INITIALIZED,
            node_name="workflow",
            status="STARTED",
            context={"first_step": START_STEP, "playbook_path": path, "workload": merged},
            idempotency_key="workflow.initialized",
        ),
    ]
    state = ExecutionState(execution_id=execution_id, catalog_id=catalog_id, path=path, workload=merged)
    state.trace = (meta or {}).get("trace")
    dispatcher = Dispatcher(state, playbook, new_id, events)
    step = playbook.step(START_STEP)
    if step is None:
        raise Unprocessable("Workflow must have a step named 'start'")
    try:
        dispatcher.dispatch_start(step)
    except EvaluateError as exc:
        return _failed(dispatcher, state, _evaluate_error(exc), reason="evaluate_error", keep=len(events))
    return dispatcher.decision()


def advance(
    state: ExecutionState,
    playbook: Playbook,
    *,
    trigger: EventRecord | None,
    new_id: Callable[[], int],
) -> Decision:
    """One orchestrator pass over a state that has applied every event up to now (§12.3).

    `trigger` is the row that caused the pass (None for a reconciler or follow-up pass); its
    step keeps its downstream alive for fan-in barriers and its id becomes the terminal
    event's parent. A terminal or cancelled state yields an empty decision.
    """
    if state.is_terminal:
        return Decision.nothing()
    trigger_step = (
        trigger.node_name if trigger is not None and trigger.node_name in playbook.by_name else None
    )
    dispatcher = Dispatcher(state, playbook, new_id, [], trigger_step=trigger_step)
    cause = trigger.event_id if trigger is not None else None
    try:
        return _Pass(state, playbook, dispatcher, cause).run()
    except EvaluateError as exc:
        return _failed(dispatcher, state, _evaluate_error(exc), reason="evaluate_error", cause=cause)


def needs_follow_up(decision: Decision) -> bool:
    """True when the decision completed a step itself (a server `step.exit`, dsl.md §12.7)."""
    return decision.terminal is None and any(
        event.event_type == EventType.STEP_EXIT for event in decision.events
    )


class _Pass:
    def __init__(
        self, state: ExecutionState, playbook: Playbook, dispatcher: Dispatcher, cause: int | None
    ) -> None:
        self._state = state
        self._playbook = playbook
        self._d = dispatcher
        self._cause = cause
        self._handled: set[str] = set()
        self._no_match: list[str] = []
        self._ended: set[str] = set()  # routers with `on_no_match: complete` that matched nothing

    def run(self) -> Decision:
        self._handle_failures()
        unhandled = self._unhandled()
        if unhandled and not self._d.anything_running():
            return self._fail_steps(unhandled)
        self._d.finish_loops()
        self._d.advance_loops(self._cause)
        self._route()
        return self._conclude()

    # --- §12.3 step 1 ----------------------------------------------------------------------

    def _handle_failures(self) -> None:
        for name in self._state.unhandled_failures():
            step = self._playbook.step(name)
            if step is None or not step.spec.on_error:
                continue
            step_state = self._state.step(name)
            output = {"status": "error", "error": step_state.error, "data": step_state.error_data}
            context = self._d.contexts.with_output(name, extra={"output": output})
            for arc in step.spec.on_error:
                if self._d.matches(arc, context):
                    if self._d.dispatch_arc(name, arc, cause=step_state.done_event_id, on_error_of=name):
                        self._handled.add(name)
                    break

    def _unhandled(self) -> list[str]:
        return [name for name in self._state.unhandled_failures() if name not in self._handled]

    # --- §12.3 steps 4-7 -------------------------------------------------------------------

    def _route(self) -> None:
        completed = sorted(
            (s for s in self._state.steps.values() if s.status is StepStatus.COMPLETED),
            key=lambda s: s.completed_event_id or 0,
        )
        fired: list[tuple[str, Arc]] = []
        losers: list[tuple[str, str]] = []
        for step_state in completed:
            step = self._playbook.step(step_state.name)
            if step is None:
                continue
            if step_state.needs_set and step.set:
                self._d.apply_step_set(step, step_state)
            if step.next is None:
                continue
            context = self._d.contexts.with_output(step.name)
            matched: list[Arc] = []
            for arc in step.next.arcs:
                if self._d.matches(arc, context):
                    matched.append(arc)
                    if step.next.mode is NextMode.EXCLUSIVE:
                        break
            if not matched:
                if step.next.on_no_match is OnNoMatch.COMPLETE:
                    self._ended.add(step.name)
                elif not self._was_routed(step.name, [arc.step for arc in step.next.arcs]):
                    self._no_match.append(step.name)
            fired.extend((step.name, arc) for arc in matched)
            if step.name not in self._playbook.graph.branch_points:
                winners = {arc.step for arc in matched}
                losers.extend((step.name, arc.step) for arc in step.next.arcs if arc.step not in winners)
        fired_targets = {arc.step for _, arc in fired}
        for src, target in losers:
            # A target another arc fires in this same pass is not a loser.
            if target not in fired_targets:
                self._d.skip_unmatched(src, target)
        for src, arc in fired:
            self._d.dispatch_arc(src, arc, cause=self._state.step(src).completed_event_id)

    def _was_routed(self, name: str, targets: list[str]) -> bool:
        """True when a target was entered after `name` last completed (its arcs fired then)."""
        completed = self._state.step(name).completed_event_id or 0
        return any((self._state.step(t).entered_event_id or 0) > completed for t in targets)

    # --- §12.3 steps 8-9, §12.10, §12.11, §17.1 --------------------------------------------

    def _conclude(self) -> Decision:
        if self._d.anything_running():
            return self._d.decision()
        unhandled = self._unhandled()
        if unhandled:
            return self._fail_steps(unhandled)
        if self._completion_holds():
            return self._d.terminal(
                EventType.PLAYBOOK_COMPLETED,
                "COMPLETED",
                {"status": "COMPLETED", "final_step": self._state.last_step},
                cause=self._cause,
            )
        if self._no_match:
            name = self._no_match[0]
            error = f"no_next_match: step '{name}' completed but none of its next arcs matched"
            return _failed(self._d, self._state, error, reason="no_next_match", cause=self._cause)
        return self._d.decision()

    def _completion_holds(self) -> bool:
        if self._ended or self._state.reached_end or self._d.reached_end:
            return True
        for step_state in self._state.steps.values():
            if step_state.status is not StepStatus.COMPLETED:
                continue
            step = self._playbook.step(step_state.name)
            if step_state.name == END_STEP or (step is not None and step.is_terminal):
                return True
        return False

    def _fail_steps(self, names: list[str]) -> Decision:
        reasons = {self._state.step(name).failure_reason for name in names}
        error = f"Failed steps: {', '.join(names)}"
        return _failed(
            self._d,
            self._state,
            error,
            reason="lease_expired" if "lease_expired" in reasons else None,
            failed_steps=names,
            cause=self._cause,
        )


def _evaluate_error(exc: EvaluateError) -> str:
    return f"Orchestrator evaluate failed: {exc.message}"


def _failed(
    dispatcher: Dispatcher,
    state: ExecutionState,
    error: str,
    *,
    reason: str | None,
    failed_steps: list[str] | None = None,
    cause: int | None = None,
    keep: int | None = None,
) -> Decision:
    """End the run with `playbook.failed`.

    An evaluate error drops whatever the pass decided before it (only `keep` leading
    events survive), so no command is issued for a run that is ending.
    """
    if reason == "evaluate_error":
        dispatcher.discard(keep or 0)
    context: dict[str, Any] = {"status": "FAILED", "error": error}
    if failed_steps:
        context["failed_steps"] = failed_steps
    context["final_step"] = state.last_step
    return dispatcher.terminal(
        EventType.PLAYBOOK_FAILED,
        "FAILED",
        context,
        cause=cause,
        error=error,
        meta={"reason": reason} if reason else None,
    )
