"""Parse and validate a playbook document (dsl.md §1-§4, §7, §9).

`parse_playbook` runs the checks of dsl.md §2 in the spec's order: the `case:` ban, then
deserialisation into the typed model (400, `InvalidArgument`), workbook references (400),
then the semantic checks (422, `Unprocessable`). The loop check on `start` (§2 #6) needs the
workload and is made by `evaluate.start`.

Interpretations: `next: []`, `next: null` and a router with no arcs mean "no next" (a
terminal step); a scalar `when` (e.g. `when: true`) is read as its text; `step.spec.timeout`
accepts seconds as a number or a string with an `ms`/`s`/`m`/`h` suffix.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from kernel.errors import InvalidArgument, Unprocessable
from services.execution.engine.graph import build_graph
from services.execution.engine.model import (
    KNOWN_TOOL_KINDS,
    START_STEP,
    Arc,
    Loop,
    LoopMode,
    Next,
    NextMode,
    OnNoMatch,
    Pipeline,
    PipelineTask,
    Playbook,
    Step,
    StepSpec,
    Tool,
)

API_VERSIONS = frozenset({"noetl.io/v2", "noetl.io/v10"})
EVAL_ACTIONS = frozenset({"continue", "retry", "break", "jump", "fail"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_E = TypeVar("_E", NextMode, OnNoMatch, LoopMode)


def parse_playbook(document: Any) -> Playbook:
    """Build the typed model of a parsed YAML document.

    Raises:
        InvalidArgument: the document does not deserialise (dsl.md §2 checks 1-3).
        Unprocessable: the document is semantically invalid (dsl.md §2 checks 4-5).
    """
    doc = _mapping(document, "playbook document")
    raw_steps = doc.get("workflow")
    if isinstance(raw_steps, list) and any(isinstance(s, Mapping) and "case" in s for s in raw_steps):
        raise InvalidArgument("'case' blocks are not allowed in canonical format")
    metadata = _mapping(doc.get("metadata"), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("missing field `name` in `metadata`")
    if not isinstance(raw_steps, list):
        raise InvalidArgument("missing field `workflow` (a list of steps)")
    workbook = _parse_workbook(doc.get("workbook"))
    steps = [_parse_step(raw, index) for index, raw in enumerate(raw_steps)]
    steps = [_resolve_workbook(step, workbook) for step in steps]
    workload = doc.get("workload")
    if workload is None:
        workload = {}
    workload = _mapping(workload, "workload")
    _check_semantics(doc, steps)
    path = metadata.get("path")
    description = metadata.get("description")
    keychain = doc.get("keychain")
    return Playbook(
        api_version=str(doc.get("apiVersion")),
        kind=str(doc.get("kind")),
        name=name,
        path=path if isinstance(path, str) and path else None,
        workload=workload,
        steps=tuple(steps),
        graph=build_graph(steps),
        description=description if isinstance(description, str) else None,
        keychain=tuple(k for k in keychain if isinstance(k, Mapping)) if isinstance(keychain, list) else (),
        by_name={step.name: step for step in steps},
    )


# --- deserialisation (400) -------------------------------------------------------------------


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"invalid type for {what}: expected a map")
    return value


def _optional_mapping(value: Any, what: str) -> Mapping[str, Any] | None:
    return None if value is None else _mapping(value, what)


def _parse_step(raw: Any, index: int) -> Step:
    where = f"workflow[{index}]"
    step = _mapping(raw, where)
    name = step.get("step")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where}: missing field `step` (the step name)")
    where = f"step '{name}'"
    if step.get("tool") is None:
        raise InvalidArgument(f"{where}: missing field `tool` (tool is required on every step)")
    spec = _parse_step_spec(step.get("spec"), where)
    return Step(
        name=name,
        tool=_parse_tool(step["tool"], where),
        desc=step.get("desc") if isinstance(step.get("desc"), str) else None,
        when=_condition(step.get("when"), f"{where}: when"),
        loop=_parse_loop(step.get("loop"), where),
        set=_optional_mapping(step.get("set"), f"{where}: set"),
        next=_parse_next(step.get("next"), spec.next_mode, where),
        spec=spec,
        args=_optional_mapping(step.get("args"), f"{where}: args"),
        input=_optional_mapping(step.get("input"), f"{where}: input"),
    )


def _parse_tool(raw: Any, where: str) -> Tool | Pipeline:
    if isinstance(raw, list):
        return Pipeline(tuple(_parse_task(item, i, where) for i, item in enumerate(raw)))
    return _parse_single_tool(raw, where)


def _parse_single_tool(raw: Any, where: str) -> Tool:
    tool = _mapping(raw, f"{where}: tool")
    kind = _tool_kind(tool, where)
    input_map = tool.get("input")
    args = tool.get("args")
    if input_map is None and isinstance(args, Mapping):
        input_map = args
    config = {k: v for k, v in tool.items() if k not in {"kind", "input"}}
    if input_map is args:
        config.pop("args", None)
    return Tool(kind=kind, config=config, input=_optional_mapping(input_map, f"{where}: tool.input"))


def _tool_kind(tool: Mapping[str, Any], where: str) -> str:
    kind = tool.get("kind")
    if kind is None:
        raise InvalidArgument(f"{where}: missing field `kind` in tool")
    if not isinstance(kind, str) or kind not in KNOWN_TOOL_KINDS:
        raise InvalidArgument(
            f"{where}: unknown tool kind '{kind}', expected one of {', '.join(sorted(KNOWN_TOOL_KINDS))}"
        )
    return kind


def _parse_task(raw: Any, index: int, where: str) -> PipelineTask:
    item = _mapping(raw, f"{where}: tool[{index}]")
    if "kind" not in item and len(item) == 1:
        # Nested form `{<label>: {kind, ...}}`.
        label, body = next(iter(item.items()))
        body = _mapping(body, f"{where}: tool[{index}].{label}")
        config = {"name": str(label), **{k: v for k, v in body.items() if k != "name"}}
    else:
        name = item.get("name")
        label = name if isinstance(name, str) and name else f"task_{index}"
        config = {**item, "name": label}
    kind = _tool_kind(config, f"{where}: tool[{index}]")
    return PipelineTask(label=str(label), kind=kind, config=config)


def _parse_loop(raw: Any, where: str) -> Loop | None:
    if raw is None:
        return None
    loop = _mapping(raw, f"{where}: loop")
    spec = _optional_mapping(loop.get("spec"), f"{where}: loop.spec") or {}
    mode = _enum(LoopMode, spec.get("mode", LoopMode.SEQUENTIAL.value), f"{where}: loop.spec.mode")
    max_in_flight = spec.get("max_in_flight")
    if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int)):
        raise InvalidArgument(f"{where}: loop.spec.max_in_flight must be an integer")
    iterator = loop.get("iterator")
    if iterator is not None and not isinstance(iterator, str):
        raise InvalidArgument(f"{where}: loop.iterator must be a string")
    return Loop(
        in_=loop.get("in"),
        iterator=iterator or "",
        mode=mode,
        max_in_flight=max_in_flight,
        cursor=_optional_mapping(loop.get("cursor"), f"{where}: loop.cursor"),
        frame=_optional_mapping(spec.get("frame"), f"{where}: loop.spec.frame"),
    )


def _parse_step_spec(raw: Any, where: str) -> StepSpec:
    spec = _optional_mapping(raw, f"{where}: spec")
    if spec is None:
        return StepSpec()
    next_mode = _enum(NextMode, spec.get("next_mode", NextMode.EXCLUSIVE.value), f"{where}: spec.next_mode")
    on_error = spec.get("on_error")
    arcs: tuple[Arc, ...] = ()
    if on_error is not None:
        if isinstance(on_error, str | Mapping):
            on_error = [on_error]
        if not isinstance(on_error, list):
            raise InvalidArgument(f"{where}: spec.on_error must be a list of arcs")
        arcs = tuple(_parse_arc(item, f"{where}: spec.on_error") for item in on_error)
    timeout = _timeout(spec.get("timeout"), where)
    return StepSpec(next_mode=next_mode, timeout=timeout, on_error=arcs, raw=spec)


def _timeout(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    match = _DURATION.match(raw) if isinstance(raw, str) else None
    if match is None:
        raise InvalidArgument(f"{where}: spec.timeout must be seconds (a number or e.g. '30s')")
    return float(match.group(1)) * _DURATION_SCALE[match.group(2) or "s"]


def _parse_next(raw: Any, default_mode: NextMode, where: str) -> Next | None:
    where = f"{where}: next"
    if raw is None:
        return None
    if isinstance(raw, str):
        return Next(mode=NextMode.INCLUSIVE, arcs=(Arc(step=raw),))
    if isinstance(raw, Mapping):
        if not isinstance(raw.get("arcs"), list):
            raise InvalidArgument(f"{where}: a router needs an `arcs` list")
        spec = _optional_mapping(raw.get("spec"), f"{where}.spec") or {}
        mode = _enum(NextMode, spec.get("mode", NextMode.EXCLUSIVE.value), f"{where}.spec.mode")
        on_no_match = _enum(
            OnNoMatch, spec.get("on_no_match", OnNoMatch.FAIL.value), f"{where}.spec.on_no_match"
        )
        arcs = tuple(_parse_arc(item, where, router=True) for item in raw["arcs"])
        return Next(mode=mode, arcs=arcs, on_no_match=on_no_match) if arcs else None
    if isinstance(raw, list):
        if not raw:
            return None
        if all(isinstance(item, str) for item in raw):
            return Next(mode=NextMode.INCLUSIVE, arcs=tuple(Arc(step=item) for item in raw))
        if all(isinstance(item, Mapping) for item in raw):
            return Next(mode=default_mode, arcs=tuple(_parse_arc(item, where) for item in raw))
    raise InvalidArgument(
        f"{where}: data did not match any shape (router map, list of targets, list of names, or a name)"
    )


def _parse_arc(raw: Any, where: str, *, router: bool = False) -> Arc:
    if isinstance(raw, str):
        return Arc(step=raw)
    arc = _mapping(raw, f"{where} arc")
    target = arc.get("step")
    if not isinstance(target, str) or not target:
        raise InvalidArgument(f"{where}: missing field `step` in arc")
    # Router arcs ignore `args` (dsl.md §4); targets-list entries merge it into the target's context.
    args = None if router else _optional_mapping(arc.get("args"), f"{where} arc args")
    return Arc(
        step=target,
        when=_condition(arc.get("when"), f"{where} arc when"),
        set=_optional_mapping(arc.get("set"), f"{where} arc set"),
        args=args,
    )


def _condition(raw: Any, where: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str | int | float):
        return str(raw)
    raise InvalidArgument(f"{where}: expected a string")


def _enum(enum: type[_E], raw: Any, where: str) -> _E:
    try:
        return enum(raw)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidArgument(f"{where}: unknown variant '{raw}', expected one of {choices}") from None


# --- workbook (§7) ---------------------------------------------------------------------------


def _parse_workbook(raw: Any) -> dict[str, Tool | Pipeline]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise InvalidArgument("invalid type for workbook: expected a list of tasks")
    tasks: dict[str, Tool | Pipeline] = {}
    for index, item in enumerate(raw):
        task = _mapping(item, f"workbook[{index}]")
        name = task.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"workbook[{index}]: missing field `name`")
        where = f"workbook task '{name}'"
        if "tool" in task:
            tasks[name] = _parse_tool(task["tool"], where)
        elif "kind" in task:
            tasks[name] = _parse_single_tool({k: v for k, v in task.items() if k != "name"}, where)
        else:
            raise InvalidArgument(f"{where}: missing field `tool`")
    return tasks


def _resolve_workbook(step: Step, workbook: Mapping[str, Tool | Pipeline]) -> Step:
    tool = step.tool
    if not isinstance(tool, Tool) or tool.kind != "workbook":
        return step
    name = tool.config.get("name")
    task = workbook.get(name) if isinstance(name, str) else None
    if task is None:
        raise InvalidArgument(f"step '{step.name}': workbook task '{name}' not found")
    if isinstance(task, Tool) and (task.input is not None or tool.input is not None):
        task = Tool(kind=task.kind, config=task.config, input={**(task.input or {}), **(tool.input or {})})
    return dataclasses.replace(step, tool=task)


# --- semantic checks (422) -------------------------------------------------------------------


def _check_semantics(doc: Mapping[str, Any], steps: list[Step]) -> None:
    api_version = doc.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise Unprocessable(f"Unsupported apiVersion '{api_version}': expected 'noetl.io/v2'")
    if doc.get("kind") != "Playbook":
        raise Unprocessable(f"Unsupported kind '{doc.get('kind')}': expected 'Playbook'")
    names = [step.name for step in steps]
    if START_STEP not in names:
        raise Unprocessable("Workflow must have a step named 'start'")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise Unprocessable(f"Duplicate step name: '{name}'")
        seen.add(name)
    for step in steps:
        _check_step(step, seen)


def _check_step(step: Step, names: set[str]) -> None:
    where = f"step '{step.name}'"
    if isinstance(step.tool, Pipeline):
        if not step.tool.tasks:
            raise Unprocessable(f"{where}: a pipeline (tool list) must not be empty")
        configs = [task.config for task in step.tool.tasks]
    else:
        configs = [step.tool.config]
    for config in configs:
        _check_eval(config.get("eval"), where)
    if step.loop is not None:
        _check_loop(step.loop, where)
    _check_when(step.when, f"{where}: when")
    arcs = (step.next.arcs if step.next is not None else ()) + step.spec.on_error
    for arc in arcs:
        _check_when(arc.when, f"{where}: arc to '{arc.step}': when")
        if arc.step not in names:
            raise Unprocessable(f"{where}: next target '{arc.step}' is not a defined step")


def _check_eval(raw: Any, where: str) -> None:
    if raw is None:
        return
    entries = raw if isinstance(raw, list) else [raw]
    for entry in entries:
        body = entry.get("else", entry) if isinstance(entry, Mapping) else None
        action = body.get("do", body.get("action")) if isinstance(body, Mapping) else None
        if action not in EVAL_ACTIONS:
            raise Unprocessable(
                f"{where}: tool.eval action '{action}' is not one of {', '.join(sorted(EVAL_ACTIONS))}"
            )


def _check_loop(loop: Loop, where: str) -> None:
    if not loop.iterator.strip():
        raise Unprocessable(f"{where}: loop.iterator must be a non-empty name")
    if loop.mode is LoopMode.CURSOR:
        if loop.cursor is None:
            raise Unprocessable(f"{where}: loop.spec.mode 'cursor' requires loop.cursor")
    elif loop.in_ is None:
        raise Unprocessable(f"{where}: loop.in is required")


def _check_when(when: str | None, where: str) -> None:
    if when is None:
        return
    if not when.strip():
        raise Unprocessable(f"{where} must not be empty")
    if "{" in when and "{{" not in when:
        raise Unprocessable(f"{where} has a '{{' but no '{{{{ ... }}}}' expression: {when!r}")
