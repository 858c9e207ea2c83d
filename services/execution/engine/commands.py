"""Building a command: its context and meta (dsl.md §9.2, http-api.md §13.4).

The command context is `{tool_config, input, render_context, spec}` (+ `args` when the step
has a legacy `args` map). `tool_config` is the rendered tool map with its `kind` and without
its input map, which travels rendered as `input`; for a pipeline it is the list of tasks in
flat form (`name` = label). Templates the worker must render are left verbatim: tool `spec`
and `eval` (policy rules see the tool's `output`), anything referencing `keychain`, and in
pipeline tasks also `set`, `input`/`args`, `command` and any template whose path is missing
from the build-time context (§8.6, §9.11).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from language.templating import Renderer
from services.execution.engine.model import Pipeline, Step, Tool

DEFAULT_MAX_ATTEMPTS = 3
_WORKER_RENDERED = frozenset({"spec", "eval"})
_WORKER_RENDERED_IN_TASKS = frozenset({"spec", "eval", "set", "input", "args", "command"})


@dataclass(frozen=True, slots=True)
class Iteration:
    """One loop iteration being dispatched."""

    index: int
    total: int
    item: Any
    iterator: str

    def variables(self) -> dict[str, Any]:
        """What an iteration adds to the render context and the tool input (§5)."""
        own = {self.iterator: self.item, "_index": self.index, "_total": self.total}
        return {**own, "iter": dict(own)}

    def input_variables(self) -> dict[str, Any]:
        return {self.iterator: self.item, "_index": self.index, "_total": self.total}


@dataclass(frozen=True, slots=True)
class CommandIdentity:
    command_id: int
    execution_id: int
    catalog_id: int


def build_command_context(
    renderer: Renderer,
    step: Step,
    context: Mapping[str, Any],
    render_context: dict[str, Any],
    iteration: Iteration | None,
) -> dict[str, Any]:
    """Render the command context of one dispatch of `step` against `context` (context A).

    Raises:
        TemplateError: a server-rendered template fails.
    """
    # Step-level `input` sits under the tool's own (tool-level wins key by key), iteration
    # variables over both (dsl.md §3.1, §5). A single tool's config also sees the input's keys
    # (`params: {page: "{{ page }}"}` beside `input: {page: ...}`, docs/decisions.md); a
    # pipeline's tasks see it as the command input, on the worker.
    input_map: dict[str, Any] = renderer.render_value(dict(step.input or {}), context)
    if isinstance(step.tool, Pipeline):
        tool_config: Any = [_render_task(renderer, task.config, context) for task in step.tool.tasks]
    else:
        input_map.update(renderer.render_value(dict(step.tool.input or {}), context))
        tool_config = _render_tool(renderer, step.tool, {**context, **input_map})
    if iteration is not None:
        input_map.update(iteration.input_variables())
    command: dict[str, Any] = {
        "tool_config": tool_config,
        "input": input_map,
        "render_context": render_context,
        "spec": dict(step.spec.raw) if step.spec.raw is not None else None,
    }
    if step.args is not None:
        command["args"] = dict(step.args)
    return command


def build_command_meta(
    step: Step,
    identity: CommandIdentity,
    iteration: Iteration | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "command_id": identity.command_id,
        "step": step.name,
        "tool_kind": step.tool_kind,
        "max_attempts": max_attempts(step),
        "attempt": 1,
        "execution_id": str(identity.execution_id),
        "catalog_id": str(identity.catalog_id),
        "actionable": True,
    }
    if iteration is not None:
        meta.update(
            iteration_index=iteration.index,
            iteration_total=iteration.total,
            iterator_step=step.name,
            item_var=iteration.iterator,
        )
    meta.update(extra)
    return meta


def max_attempts(step: Step) -> int:
    """`attempts` of the tool's first `do: retry` policy rule, else the default (§17.7)."""
    if not isinstance(step.tool, Tool):
        return DEFAULT_MAX_ATTEMPTS
    return retry_attempts(step.tool.config) or DEFAULT_MAX_ATTEMPTS


def retry_attempts(tool_config: Mapping[str, Any]) -> int | None:
    """Total attempts the first `do: retry` policy rule of a tool allows; None without such a rule.

    The reaper reads it from a command's stored `tool_config` to decide between re-running a
    command whose worker died and failing it (dsl.md §17.7).
    """
    spec = tool_config.get("spec")
    policy = spec.get("policy") if isinstance(spec, Mapping) else None
    rules = policy.get("rules") if isinstance(policy, Mapping) else None
    for rule in rules if isinstance(rules, list) else ():
        then = _then(rule)
        if then.get("do") == "retry":
            attempts = then.get("attempts")
            valid = isinstance(attempts, int) and not isinstance(attempts, bool) and attempts > 0
            return attempts if valid else DEFAULT_MAX_ATTEMPTS
    return None


def _then(rule: Any) -> Mapping[str, Any]:
    if not isinstance(rule, Mapping):
        return {}
    body = rule.get("else", rule)
    then = body.get("then") if isinstance(body, Mapping) else None
    return then if isinstance(then, Mapping) else {}


def _render_tool(renderer: Renderer, tool: Tool, context: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"kind": tool.kind}
    for key, value in tool.config.items():
        config[key] = value if key in _WORKER_RENDERED else renderer.render_value(value, context)
    return config


def _render_task(renderer: Renderer, task: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value
        if key in _WORKER_RENDERED_IN_TASKS or key in ("name", "kind")
        else renderer.render_value(value, context, defer_unresolved=True)
        for key, value in task.items()
    }
