"""Render contexts of one orchestrator pass (dsl.md §8.5 A and B).

A `Contexts` is built per pass from the state and caches what it derives (step views, the
dispatch context) until the pass itself changes the flat context with a step-level `set`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from language.templating import RESULT_VIEWS
from services.execution.engine.model import Pipeline, Playbook
from services.execution.engine.results import SequenceView, result_accessors_of, template_view
from services.execution.engine.state import ExecutionState, StepStatus


class Contexts:
    def __init__(self, state: ExecutionState, playbook: Playbook) -> None:
        self._state = state
        self._playbook = playbook
        self._pass_ctx: dict[str, Any] = {}  # step-level sets rendered during this pass
        self._views: dict[str, Any] | None = None
        self._shipped_views: dict[str, dict[str, Any]] = {}  # RESULT_VIEWS of the shipped context
        self._dispatch: dict[str, Any] | None = None

    def add_ctx(self, values: Mapping[str, Any]) -> None:
        """Overlay values of a step-level `set` rendered in this pass (§6.2)."""
        self._pass_ctx.update(values)
        self._dispatch = None

    def dispatch(self) -> dict[str, Any]:
        """Context A: what the server renders tool configs, `set`, `when` and `loop.in` with."""
        if self._dispatch is None:
            self._dispatch = self._build(self._load())
        return self._dispatch

    def shipped(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """The command's `render_context`: context A as the worker needs it for its templates.

        `steps` (raw envelopes) is left out, and `ctx` carries the flat variables without the
        step results, so that no result is shipped more than twice (itself and its `data`
        alias); worker-side templates read results by step name.
        """
        variables = {**self._flat(), **extra}
        context = dict(variables)
        # Plain lists on the wire; `.data` on a list is a server-side template nicety. The names a
        # result answers besides its value go beside it, for the worker to restore.
        context.update((k, list(v) if isinstance(v, SequenceView) else v) for k, v in self._load().items())
        if self._shipped_views:
            context[RESULT_VIEWS] = self._shipped_views
        context.update(self._identity())
        context["workload"] = dict(self._state.workload)
        context["ctx"] = variables
        return context

    def with_output(self, step_name: str, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Context B for a completed step: A plus `output` and, for loop steps, `event`."""
        context = dict(self.dispatch())
        context["output"] = self._load().get(step_name)
        step = self._playbook.step(step_name)
        if step is not None and step.loop is not None:
            context["event"] = {"name": "loop.done"}
        if extra:
            context.update(extra)
        return context

    def overlaid(self, base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        """`base` with `values` written into the flat namespace and its `ctx` alias."""
        context = dict(base)
        context.update(values)
        ctx = base.get("ctx")
        context["ctx"] = {**ctx, **values} if isinstance(ctx, Mapping) else dict(values)
        return context

    def _flat(self) -> dict[str, Any]:
        # Pipelines' `_context_updates` win over step-level sets, this pass's included (§6.4).
        state = self._state
        return {**state.workload, **state.ctx, **self._pass_ctx, **state.context_updates}

    def _identity(self) -> dict[str, Any]:
        return {
            "execution_id": str(self._state.execution_id),
            "catalog_id": str(self._state.catalog_id),
            "path": self._state.path,
        }

    def _load(self) -> dict[str, Any]:
        """Template views of every step with a result, built once per pass."""
        if self._views is None:
            views: dict[str, Any] = {}
            for name, step_state in self._state.steps.items():
                finished_loop = step_state.loop is not None and step_state.status is StepStatus.COMPLETED
                if not (step_state.has_result or finished_loop):
                    continue
                step = self._playbook.step(name)
                pipeline = step is not None and isinstance(step.tool, Pipeline)
                data = step_state.result_data()
                views[name] = template_view(data, pipeline=pipeline, loop=finished_loop)
                accessors = result_accessors_of(data)
                if accessors or finished_loop:
                    self._shipped_views[name] = {"accessors": accessors, "loop": finished_loop}
            self._views = views
        return self._views

    def _build(self, views: Mapping[str, Any]) -> dict[str, Any]:
        flat = self._flat()
        flat.update(views)
        context = dict(flat)
        context["ctx"] = flat
        context["workload"] = dict(self._state.workload)
        context["steps"] = {
            name: self._state.steps[name].result_envelope() for name in views if name in self._state.steps
        }
        context.update(self._identity())
        return context
