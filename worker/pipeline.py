"""Runs a command's tool under its policy rules: a single tool, or a pipeline of tasks (dsl.md §9.11).

A pipeline (`task_sequence`) runs its tasks in order against a running context: the command's
`render_context` plus its `input`, earlier task results under their labels, `_prev`, and the
values of earlier task `set:` blocks and policy `then.set`. The server leaves a task's `input`,
`set`, `spec`, `command` and unresolved templates for the worker, so each task is rendered here
just before it runs, and again before each retry (a `then.set` may have changed the context).

The whole command, retries and their delays included, is bounded by `call.timeout` (§17.4).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from language.templating import Renderer, TemplateError, scoped_key
from worker.credentials import SecretError
from worker.keychain import resolve_keychain
from worker.policy import Do, PolicyError, Rule, Verdict, attempt_output, decide, jump_index, parse_rules
from worker.tools.base import Tool, ToolCall, ToolResult

log = logging.getLogger(__name__)

PIPELINE_KIND = "task_sequence"
CONTEXT_UPDATES = "_context_updates"
TASKS = "tasks"
# Keys of a task that are not tool config. `name` stays: it is the label, and for a kind that reads
# a `name` (secrets) also the tool's own field, as the flat task form cannot tell them apart.
_TASK_ONLY = frozenset({"input", "args", "set"})
# Rendered only after an attempt, with `output` (policy rules) or not at all (`name`, `kind`).
_NOT_RENDERED_BEFORE = frozenset({"name", "kind", "set", "spec"})
# A tool is expected to stop itself at its timeout; this margin only catches one that does not.
_BACKSTOP_GRACE_S = 1.0


def tool_config(raw: Any) -> dict[str, Any]:
    """A command's `tool_config` as a `ToolCall.config`: a pipeline's task list goes under `tasks`."""
    if isinstance(raw, list):
        return {TASKS: raw}
    return dict(raw) if isinstance(raw, Mapping) else {}


class ToolRunner:
    """Runs every command's tool: pipelines task by task, and any tool under its policy rules."""

    def __init__(self, tools: Mapping[str, Tool], *, renderer: Renderer | None = None) -> None:
        self._tools = tools
        self._renderer = renderer or Renderer()

    async def run(self, call: ToolCall) -> ToolResult:
        """Run the command's tool; every failure, the policy's included, comes back as `ok=False`."""
        deadline = _Deadline(call.timeout)
        if call.kind == PIPELINE_KIND:
            return await self._pipeline(call, deadline)
        return await self._single(call, deadline)

    # --- a single tool -------------------------------------------------------------------------

    async def _single(self, call: ToolCall, deadline: _Deadline) -> ToolResult:
        try:
            rules = parse_rules(call.config.get("spec"))
        except PolicyError as exc:
            return ToolResult(ok=False, data=None, error=exc.message)
        if not rules:
            return await self._invoke(call)
        updates: dict[str, Any] = {}
        attempt = 1
        while True:
            result = await self._invoke(replace(call, timeout=deadline.budget(None)))
            if deadline.expired():
                return _timed_out(call, result)
            output = attempt_output(call.kind, result)
            context = {**call.render_context, **call.input, "_attempt": attempt, "output": output}
            try:
                verdict = decide(
                    rules, ok=result.ok, attempt=attempt, context=context, renderer=self._renderer
                )
            except PolicyError as exc:
                return _failed(result, exc.message)
            updates.update(verdict.context_updates)
            if verdict.do is Do.RETRY:
                await deadline.sleep(verdict.delay)
                attempt += 1
                continue
            if verdict.do is Do.JUMP:
                return _failed(result, "policy jump: a single tool has no task to jump to")
            if verdict.do is Do.FAIL:
                return _failed(result, _fail_message(result, verdict, call.step))
            return _with_updates(_accepted(result), updates)

    # --- a pipeline ----------------------------------------------------------------------------

    async def _pipeline(self, call: ToolCall, deadline: _Deadline) -> ToolResult:
        try:
            tasks = parse_tasks(call.config.get(TASKS))
        except PolicyError as exc:
            # Malformed rules fail the command before any task has had a side effect.
            return ToolResult(ok=False, data=None, error=exc.message)
        labels = [task.label for task in tasks]
        run = PipelineRun.start(call.render_context, call.input)
        index = 0
        while index < len(tasks):
            task = tasks[index]
            result, verdict = await self._task(call, task, run, deadline)
            if verdict is None:
                return run.failure(result.error or "tool failed", result)
            if verdict.do is Do.FAIL:
                return run.failure(_fail_message(result, verdict, task.label), result)
            try:
                run.record(task.label, result, self._task_set(task, result, run))
                if verdict.do is Do.BREAK:
                    break
                index = jump_index(verdict.to or "", labels, index) if verdict.do is Do.JUMP else index + 1
            except (TemplateError, PolicyError) as exc:
                return run.failure(f"task '{task.label}': {exc.message}", result)
        return run.success()

    async def _task(
        self, call: ToolCall, task: Task, run: PipelineRun, deadline: _Deadline
    ) -> tuple[ToolResult, Verdict | None]:
        """Attempt one task until its policy lets go; no verdict when the pipeline must stop."""
        attempt = 1
        while True:
            prepared = self._prepare(call, task, run, deadline)
            if isinstance(prepared, ToolResult):
                kind, result = "", prepared
            else:
                kind, result = prepared.kind, await self._invoke(prepared)
            if deadline.expired():
                return _timed_out(call, result), None
            context = {**run.context, "_attempt": attempt, "output": attempt_output(kind, result)}
            try:
                verdict = decide(
                    task.rules, ok=result.ok, attempt=attempt, context=context, renderer=self._renderer
                )
            except PolicyError as exc:
                return _failed(result, f"task '{task.label}': {exc.message}"), None
            # `then.set` is applied before the action (§9.11), so a retry renders against it.
            run.write(verdict.values, verdict.context_updates)
            if verdict.do is not Do.RETRY:
                return result, verdict
            log.info(
                "step %s task %s: attempt %d in %.3gs", call.step, task.label, attempt + 1, verdict.delay
            )
            await deadline.sleep(verdict.delay)
            attempt += 1

    def _prepare(
        self, call: ToolCall, task: Task, run: PipelineRun, deadline: _Deadline
    ) -> ToolCall | ToolResult:
        """The task's call, rendered against the running context; a failed result when it cannot be."""
        try:
            rendered = {
                key: value if key in _NOT_RENDERED_BEFORE else self._renderer.render_value(value, run.context)
                for key, value in task.raw.items()
            }
        except TemplateError as exc:
            return ToolResult(ok=False, data=None, error=f"task '{task.label}': {exc.message}")
        # `input` is an alias of `args` (§9.2); were both given, `input` wins key by key.
        task_input = {**_mapping(rendered.get("args")), **_mapping(rendered.get("input"))}
        config = {key: value for key, value in rendered.items() if key not in _TASK_ONLY}
        return replace(
            call,
            kind=task.kind,
            config=config,
            input={**call.input, **task_input},
            render_context=run.context,
            timeout=deadline.budget(config.get("timeout")),
            variables=dict(run.variables),
        )

    def _task_set(self, task: Task, result: ToolResult, run: PipelineRun) -> dict[str, Any]:
        """The task's `set:` rendered with `output` = this task's result data.

        Raises:
            TemplateError: a value fails to render.
        """
        values = task.raw.get("set")
        if not isinstance(values, Mapping):
            return {}
        context = {**run.context, "output": result.data}
        rendered: dict[str, Any] = {}
        for key, raw in values.items():
            try:
                rendered[str(key)] = self._renderer.render_value(raw, context)
            except TemplateError as exc:
                raise TemplateError(f"set {key}: {exc.message}") from None
        return rendered

    # --- one tool call -------------------------------------------------------------------------

    async def _invoke(self, call: ToolCall) -> ToolResult:
        tool = self._tools.get(call.kind)
        if tool is None:
            return ToolResult(
                ok=False, data=None, error=f"tool kind '{call.kind}' is not supported by this worker"
            )
        backstop = None if call.timeout is None else call.timeout + _BACKSTOP_GRACE_S
        try:
            async with asyncio.timeout(backstop):
                return await tool.run(await resolve_keychain(call))
        except SecretError as exc:
            return ToolResult(ok=False, data=None, error=str(exc))
        except TemplateError as exc:
            return ToolResult(ok=False, data=None, error=exc.message)
        except TimeoutError:
            return ToolResult(ok=False, data=None, error=_timeout_message(call), error_kind="timeout")
        except Exception as exc:
            log.error("tool %s of step %s crashed: %s", call.kind, call.step, call.secrets.crash_text(exc))
            return ToolResult(ok=False, data=None, error=f"{type(exc).__name__}: {exc}")


@dataclass
class PipelineRun:
    """What a pipeline has produced so far: its context, results, updates and captured output."""

    context: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)  # label → task result data
    variables: dict[str, Any] = field(default_factory=dict)  # what the tasks added to the context
    context_updates: dict[str, Any] = field(default_factory=dict)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, render_context: Mapping[str, Any], command_input: Mapping[str, Any]) -> PipelineRun:
        ctx = render_context.get("ctx")
        context = {**render_context, **command_input}
        context["ctx"] = dict(ctx) if isinstance(ctx, Mapping) else {}
        return cls(context=context)

    def write(self, values: Mapping[str, Any], updates: Mapping[str, Any] | None = None) -> None:
        """Set `set`-block values (keys as written) into the flat namespace and its `ctx` alias
        (§6.1); an `iter.x` key is also readable as `iter.x` for the rest of the iteration."""
        scoped = {scoped_key(key): value for key, value in values.items()}
        self.context.update(scoped)
        self.context["ctx"] = {**self.context["ctx"], **scoped}
        self.variables.update(scoped)
        own = {scoped_key(key): value for key, value in values.items() if key.startswith("iter.")}
        if own:
            iteration = self.context.get("iter")
            self.context["iter"] = {**(iteration if isinstance(iteration, Mapping) else {}), **own}
        if updates:
            self.context_updates.update(updates)

    def record(self, label: str, result: ToolResult, set_values: Mapping[str, Any]) -> None:
        """Keep a finished task's result under its label, as `_prev`, then apply its `set:`."""
        data = _accepted(result).data
        self.results[label] = data
        view = _with_data_alias(data)
        self.context[label] = view
        self.context["_prev"] = view
        self.variables[label] = data
        self.variables["_prev"] = data
        if result.stdout:
            self.stdout.append(result.stdout)
        if result.stderr:
            self.stderr.append(result.stderr)
        self.write(set_values)

    def success(self) -> ToolResult:
        data: dict[str, Any] = dict(self.results)
        if self.context_updates:
            data[CONTEXT_UPDATES] = dict(self.context_updates)
        return ToolResult(
            ok=True, data=data, stdout=self._joined(self.stdout), stderr=self._joined(self.stderr)
        )

    def failure(self, error: str, last: ToolResult | None = None) -> ToolResult:
        stdout, stderr = list(self.stdout), list(self.stderr)
        if last is not None:
            stdout += [last.stdout] if last.stdout else []
            stderr += [last.stderr] if last.stderr else []
        return ToolResult(
            ok=False, data=None, error=error, stdout=self._joined(stdout), stderr=self._joined(stderr)
        )

    @staticmethod
    def _joined(parts: list[str]) -> str | None:
        return "".join(parts) or None


class _Deadline:
    """The command's time budget, shared by every attempt and every delay between them."""

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    def expired(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at

    def budget(self, own: Any) -> float | None:
        """What one tool call may take: its own `timeout`, capped by what is left of the command's."""
        left = self.remaining()
        if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
            return float(own) if left is None else min(float(own), left)
        return left

    async def sleep(self, seconds: float) -> None:
        left = self.remaining()
        await asyncio.sleep(seconds if left is None else min(seconds, left))


@dataclass(frozen=True, slots=True)
class Task:
    """One pipeline task as the server shipped it: flat form, `name` = label (dsl.md §9.11)."""

    label: str
    raw: Mapping[str, Any]
    rules: tuple[Rule, ...]

    @property
    def kind(self) -> str:
        return str(self.raw.get("kind", ""))


def parse_tasks(config: Any) -> list[Task]:
    """The tasks of a `task_sequence` command's `tool_config`; unnamed ones are `task_<index>`.

    Raises:
        PolicyError: the config is not a list of mappings, or a task's policy is malformed.
    """
    if not isinstance(config, list):
        raise PolicyError("a task_sequence command needs a list of tasks in tool_config")
    tasks = []
    for index, raw in enumerate(config):
        if not isinstance(raw, Mapping):
            raise PolicyError(f"task {index} is not a mapping")
        label = str(raw.get("name") or f"task_{index}")
        try:
            rules = parse_rules(raw.get("spec"))
        except PolicyError as exc:
            raise PolicyError(f"task '{label}': {exc.message}") from None
        tasks.append(Task(label, raw, rules))
    return tasks


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _with_data_alias(data: Any) -> Any:
    """How templates see a task result: a map without `data` gains `data` pointing at itself (§9.11)."""
    if isinstance(data, Mapping) and "data" not in data:
        return {**data, "data": data}
    return data


def _accepted(result: ToolResult) -> ToolResult:
    """A result the policy let through (`continue`, `break`, `jump`): an error becomes data.

    An error without data becomes `{"status": "error", "error": <message>}`, so that a pipeline's
    result stays a map of maps, which the engine flattens (§9.11).
    """
    if result.ok:
        return result
    data = result.data if result.data is not None else {"status": "error", "error": result.error}
    return ToolResult(ok=True, data=data, stdout=result.stdout, stderr=result.stderr)


def _fail_message(result: ToolResult, verdict: Verdict, where: str) -> str:
    if not result.ok:
        return result.error or "tool failed"
    return f"'{where}' failed by policy rule {verdict.rule}"


def _failed(result: ToolResult, error: str) -> ToolResult:
    return ToolResult(ok=False, data=None, error=error, stdout=result.stdout, stderr=result.stderr)


def _with_updates(result: ToolResult, updates: Mapping[str, Any]) -> ToolResult:
    """A single tool's `ctx.*` policy values ride in its result data, as a pipeline's do (§6.4)."""
    if not updates or not result.ok:
        return result
    if not isinstance(result.data, Mapping):
        log.warning(
            "policy ctx values dropped: the tool's result is not a map (%s)", type(result.data).__name__
        )
        return result
    return replace(result, data={**result.data, CONTEXT_UPDATES: dict(updates)})


def _timeout_message(call: ToolCall) -> str:
    return f"timeout: step '{call.step}' exceeded {call.timeout:g}s" if call.timeout else "timeout"


def _timed_out(call: ToolCall, result: ToolResult) -> ToolResult:
    """The command's deadline passed: fail with the step's timeout message (§17.4), no policy."""
    return _failed(result, _timeout_message(call))
