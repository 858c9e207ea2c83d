"""Emitting the events of one pass: arcs firing, skips, step entries, commands, loops.

A `Dispatcher` accumulates the pass's events and commands, and what the pass itself has
changed (steps dispatched or skipped), so later decisions of the same pass see them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kernel.errors import Unprocessable
from language.templating import Renderer, TemplateError, scoped_key
from services.execution.engine.commands import (
    CommandIdentity,
    Iteration,
    build_command_context,
    build_command_meta,
)
from services.execution.engine.context import Contexts
from services.execution.engine.loops import NotIterable, coerce_items
from services.execution.engine.model import END_STEP, START_STEP, Arc, Loop, LoopMode, Playbook, Step
from services.execution.engine.records import Decision, EventType, NewCommand, NewEvent
from services.execution.engine.state import ExecutionState, StepState, StepStatus

_RENDERER = Renderer()


class EvaluateError(Exception):
    """A pass cannot go on: the run ends with `playbook.failed`, reason `evaluate_error`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Dispatcher:
    def __init__(
        self,
        state: ExecutionState,
        playbook: Playbook,
        new_id: Callable[[], int],
        events: list[NewEvent],
        *,
        trigger_step: str | None = None,
    ) -> None:
        self._state = state
        self._playbook = playbook
        self._new_id = new_id
        self._events = events
        self._commands: list[NewCommand] = []
        self._trigger_step = trigger_step
        self.contexts = Contexts(state, playbook)
        self.dispatched: set[str] = set()
        self.skipped: set[str] = set()
        self.reached_end = False

    # --- results ---------------------------------------------------------------------------

    def decision(self) -> Decision:
        return Decision(events=list(self._events), commands=list(self._commands), terminal=None)

    def terminal(
        self,
        event_type: str,
        status: str,
        context: dict[str, Any],
        *,
        cause: int | None,
        error: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Decision:
        self._events.append(
            NewEvent(
                event_type=event_type,
                node_name=self._state.path,
                status=status,
                context=context,
                result={"status": status},
                meta=meta,
                error=error,
                parent_event_id=cause,
                idempotency_key="terminal",
            )
        )
        return Decision(events=list(self._events), commands=list(self._commands), terminal=status)

    def discard(self, keep: int) -> None:
        del self._events[keep:]
        self._commands.clear()
        self.dispatched.clear()

    # --- queries ---------------------------------------------------------------------------

    def anything_running(self) -> bool:
        """A step runs, the pass dispatched one, or a command is still out.

        Open commands matter on their own once a loop step has failed: its iterations still in
        flight no longer keep the step running (it is not refilled), but the run ends only after
        they report, so its terminal event is its last and every command has its end (§12.11, §18).
        """
        return bool(self._state.running) or bool(self.dispatched) or self._state.has_open_commands

    def _done(self, name: str) -> bool:
        return name in self.skipped or self._state.step(name).done

    def _running(self, name: str) -> bool:
        return name in self.dispatched or self._state.step(name).running

    def matches(self, arc: Arc, context: Mapping[str, Any]) -> bool:
        """Does an arc fire against `context`? A render error ends the run (§8.4).

        Raises:
            EvaluateError: the condition fails to render.
        """
        return arc.when is None or self._condition(arc.when, context)

    def _condition(self, expr: str, context: Mapping[str, Any]) -> bool:
        try:
            return _RENDERER.render_condition(expr, context)
        except TemplateError as exc:
            raise EvaluateError(exc.message) from exc

    # --- set -------------------------------------------------------------------------------

    def apply_step_set(self, step: Step, step_state: StepState) -> None:
        """Render a completed step's `set` against A + `output` and persist it (§6.2)."""
        values, errors = _render_set(step.set or {}, self.contexts.with_output(step.name))
        gen = step_state.completed_event_id
        self._events.append(
            NewEvent(
                event_type=EventType.CTX_UPDATED,
                node_name=step.name,
                status="CONTEXT",
                context={"step": step.name, "gen": gen, "values": values},
                meta={"render_errors": errors} if errors else None,
                parent_event_id=gen,
                idempotency_key=f"ctx:{step.name}:{gen}",
            )
        )
        self.contexts.add_ctx(values)

    # --- skips -----------------------------------------------------------------------------

    def skip_unmatched(self, src: str, target: str) -> None:
        """`step.skipped` for an unmatched arc target that is not done, running or dispatched."""
        if self._done(target) or self._running(target):
            return
        self._skip(target, src, cause=self._state.step(src).completed_event_id, reached_end=False)

    def _skip(self, target: str, src: str, *, cause: int | None, reached_end: bool) -> None:
        meta: dict[str, Any] = {"emitted_by": "orchestrator", "trigger_step": src}
        if reached_end:
            meta["reached_end"] = True
        self._events.append(
            NewEvent(
                event_type=EventType.STEP_SKIPPED,
                node_name=target,
                status="SKIPPED",
                meta=meta,
                parent_event_id=cause,
                idempotency_key=f"skip:{target}:{cause}",
            )
        )
        self.skipped.add(target)

    # --- arcs (§12.3 step 7, §12.5, §12.6, §12.9) -------------------------------------------

    def dispatch_arc(self, src: str, arc: Arc, *, cause: int | None, on_error_of: str | None = None) -> bool:
        """Fire `src -> arc.step`; True when the target (or a step down its skip chain) is entered.

        Raises:
            EvaluateError: a guard, `loop.in` or a server-rendered template fails.
        """
        target = arc.step
        if target == END_STEP:
            self.reached_end = True
        step = self._playbook.step(target)
        if step is None:
            raise EvaluateError(f"command for an unknown step '{target}'")
        if not self._may_enter(src, target) or not self._barrier_open(target):
            return False
        base = self.contexts.dispatch()
        values, _ = _render_set(arc.set or {}, base)
        extra = {**values, **(arc.args or {})}
        context = self.contexts.overlaid(base, extra) if extra else base
        if step.when is not None and target != START_STEP and not self._condition(step.when, context):
            return self._follow_skip_chain(src, step, context, cause=cause, on_error_of=on_error_of)
        self._enter(step, context, extra, cause=cause, trigger_step=src, on_error_of=on_error_of)
        return True

    def _may_enter(self, src: str, target: str) -> bool:
        if self._running(target) or target in self.skipped:
            return False
        target_state = self._state.step(target)
        if not target_state.done:
            return True
        # A back-edge re-enters a done step that the source completed after (§12.9).
        if not self._playbook.graph.is_back_edge(src, target):
            return False
        src_done = self._state.step(src).done_event_id or 0
        return src == target or src_done > (target_state.done_event_id or 0)

    def _barrier_open(self, target: str) -> bool:
        """Fan-in: every live upstream of a join must be done (§12.6)."""
        upstreams = self._playbook.graph.upstreams.get(target, ())
        if len(upstreams) < 2:
            return True
        roots = set(self._state.running) | self.dispatched
        if self._trigger_step is not None:
            roots.add(self._trigger_step)
        graph = self._playbook.graph
        for upstream in upstreams:
            if self._done(upstream):
                continue
            if any(graph.reaches(root, upstream) for root in roots):
                return False
        return True

    def _follow_skip_chain(
        self, src: str, step: Step, context: Mapping[str, Any], *, cause: int | None, on_error_of: str | None
    ) -> bool:
        """A false `step.when`: skip it and follow its first matching arc (§12.5)."""
        chosen = None
        if step.next is not None:
            chosen = next((arc for arc in step.next.arcs if self.matches(arc, context)), None)
        to_end = chosen is not None and chosen.step == END_STEP
        self._skip(step.name, src, cause=cause, reached_end=to_end)
        if to_end:
            # The branch completes without running `end`'s tool.
            self.reached_end = True
            return False
        if chosen is None:
            return False
        return self.dispatch_arc(step.name, chosen, cause=cause, on_error_of=on_error_of)

    # --- entering a step -------------------------------------------------------------------

    def dispatch_start(self, step: Step) -> None:
        """Dispatch `start` at execute time: no `step.enter` unless it loops (§10.1).

        Raises:
            Unprocessable: `start.loop.in` does not render to a list (dsl.md §2 #6).
            EvaluateError: a server-rendered template of `start` fails.
        """
        context = self.contexts.dispatch()
        if step.loop is not None:
            try:
                rendered = _RENDERER.render_value(step.loop.in_, context)
            except TemplateError as exc:
                raise Unprocessable(f"loop step 'start': {exc.message}") from exc
            if not isinstance(rendered, list):
                raise Unprocessable(
                    f"loop step 'start': loop.in must evaluate to a list (got {_json_type(rendered)})"
                )
            self._enter(step, context, {}, cause=None, trigger_step=None, on_error_of=None)
            return
        self._issue(step, context, {}, None, cause=None, meta_extra={})
        self.dispatched.add(step.name)

    def _enter(
        self,
        step: Step,
        context: Mapping[str, Any],
        extra: Mapping[str, Any],
        *,
        cause: int | None,
        trigger_step: str | None,
        on_error_of: str | None,
    ) -> None:
        meta_extra: dict[str, Any] = {}
        if trigger_step is not None:
            meta_extra.update(trigger_step=trigger_step, triggered_by=cause)
        if on_error_of is not None:
            meta_extra["on_error_of"] = on_error_of
        self.dispatched.add(step.name)
        if step.loop is not None:
            self._enter_loop(step, step.loop, context, extra, cause=cause, meta_extra=meta_extra)
            return
        self._emit_enter(step, None, cause=cause, meta_extra=meta_extra)
        self._issue(step, context, extra, None, cause=cause, meta_extra=meta_extra)

    def _emit_enter(
        self, step: Step, context: dict[str, Any] | None, *, cause: int | None, meta_extra: Mapping[str, Any]
    ) -> None:
        generation = self._state.step(step.name).enter_count + 1
        self._events.append(
            NewEvent(
                event_type=EventType.STEP_ENTER,
                node_name=step.name,
                status="ENTERED",
                context=context,
                meta={"emitted_by": "orchestrator", **meta_extra},
                node_type=step.tool_kind,
                parent_event_id=cause,
                idempotency_key=f"enter:{step.name}:{generation}",
            )
        )

    def _issue(
        self,
        step: Step,
        context: Mapping[str, Any],
        extra: Mapping[str, Any],
        iteration: Iteration | None,
        *,
        cause: int | None,
        meta_extra: Mapping[str, Any],
    ) -> None:
        command_id = self._new_id()
        loop_vars = iteration.variables() if iteration is not None else {}
        if loop_vars:
            context = self.contexts.overlaid(context, loop_vars)
        shipped = self.contexts.shipped({**extra, **loop_vars})
        try:
            command_context = build_command_context(_RENDERER, step, context, shipped, iteration)
        except TemplateError as exc:
            raise EvaluateError(f"step '{step.name}': {exc.message}") from exc
        state = self._state
        identity = CommandIdentity(command_id, state.execution_id, state.catalog_id)
        meta_extra = {**meta_extra, "trace": state.trace} if state.trace is not None else meta_extra
        meta = build_command_meta(step, identity, iteration, meta_extra)
        self._events.append(
            NewEvent(
                event_type=EventType.COMMAND_ISSUED,
                node_name=step.name,
                status="PENDING",
                context=command_context,
                meta=meta,
                node_type=step.tool_kind,
                command_id=command_id,
                parent_event_id=cause,
                idempotency_key=f"issue:{command_id}",
            )
        )
        self._commands.append(
            NewCommand(
                command_id=command_id,
                step=step.name,
                tool_kind=step.tool_kind,
                context=command_context,
                meta=meta,
                event_index=len(self._events) - 1,
                iter_index=iteration.index if iteration is not None else None,
            )
        )

    # --- loops (§5, §12.7, §12.8) -----------------------------------------------------------

    def _enter_loop(
        self,
        step: Step,
        loop: Loop,
        context: Mapping[str, Any],
        extra: Mapping[str, Any],
        *,
        cause: int | None,
        meta_extra: Mapping[str, Any],
    ) -> None:
        if loop.mode is LoopMode.CURSOR:
            raise EvaluateError(f"loop step '{step.name}': cursor loops are not supported by this engine")
        items = self._items(step.name, loop, context)
        total = len(items)
        enter_context = {"iterations_expected": total, "iterator_var": loop.iterator}
        self._emit_enter(step, enter_context, cause=cause, meta_extra=meta_extra)
        if total == 0:
            self._empty_loop_exit(step)
            return
        first = 1 if loop.mode is LoopMode.SEQUENTIAL else min(total, loop.max_in_flight or total)
        for index in range(first):
            iteration = Iteration(index, total, items[index], loop.iterator)
            self._issue(step, context, extra, iteration, cause=cause, meta_extra=meta_extra)

    def _empty_loop_exit(self, step: Step) -> None:
        # No command will ever complete this activation, so the server exits it (§12.7).
        payload = {"status": "COMPLETED", "result": []}
        generation = self._state.step(step.name).enter_count + 1
        self._events.append(
            NewEvent(
                event_type=EventType.STEP_EXIT,
                node_name=step.name,
                status="COMPLETED",
                context=payload,
                result={"status": "COMPLETED", "context": payload},
                meta={"emitted_by": "orchestrator"},
                idempotency_key=f"exit:{step.name}:{generation}",
            )
        )

    def finish_loops(self) -> None:
        """`loop.done` for every loop step whose last iteration has been counted."""
        for step_state in self._state.steps.values():
            loop = step_state.loop
            if loop is None or step_state.status is not StepStatus.COMPLETED or loop.done_written:
                continue
            self._events.append(
                NewEvent(
                    event_type=EventType.LOOP_DONE,
                    node_name=step_state.name,
                    status="COMPLETED",
                    context={"iterations": loop.expected, "completed": loop.completed, "failed": loop.failed},
                    parent_event_id=step_state.completed_event_id,
                    idempotency_key=f"loop.done:{step_state.name}:{step_state.enter_count}",
                )
            )

    def advance_loops(self, cause: int | None) -> None:
        """Issue the next sequential iteration, or refill a parallel loop (§12.3 step 2)."""
        for name in sorted(self._state.running):
            progress = self._state.steps[name].loop
            step = self._playbook.step(name)
            if (
                progress is None
                or step is None
                or step.loop is None
                or progress.next_index >= progress.expected
            ):
                continue
            if step.loop.mode is LoopMode.SEQUENTIAL:
                wanted = 0 if progress.in_flight else 1
            else:
                limit = step.loop.max_in_flight or progress.expected
                wanted = limit - len(progress.in_flight)
            if wanted <= 0:
                continue
            context = self.contexts.dispatch()
            items = self._items(name, step.loop, context)
            first = progress.next_index
            for index in range(first, min(first + wanted, progress.expected)):
                item = items[index] if index < len(items) else None
                iteration = Iteration(index, progress.expected, item, step.loop.iterator)
                self._issue(step, context, {}, iteration, cause=cause, meta_extra={})

    def _items(self, name: str, loop: Loop, context: Mapping[str, Any]) -> list[Any]:
        try:
            return coerce_items(_RENDERER.render_value(loop.in_, context))
        except TemplateError as exc:
            raise EvaluateError(exc.message) from exc
        except NotIterable as exc:
            raise EvaluateError(
                f"loop step '{name}': Loop expression '{loop.in_}' did not evaluate to an "
                f"iterable (got {exc.got})"
            ) from exc


def _render_set(
    values: Mapping[str, Any], context: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Render a `set` block under its scoped keys (§6.1); a failing value keeps its template."""
    rendered: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, raw in values.items():
        try:
            value = _RENDERER.render_value(raw, context)
        except TemplateError as exc:
            value = raw
            errors[str(key)] = exc.message
        rendered[scoped_key(str(key))] = value
    return rendered, errors


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, Mapping) else "array"
