"""The console's view of an event: what a browser needs to draw a run, and no more.

The contract's event object (http-api.md §13.3) repeats each payload in `context` and `result`,
and every `command.issued` carries the whole render context — the workload and every earlier
step's result. A 2,000-iteration loop over a 2,000-item list would stream gigabytes that way, so
the console's stream sends this compact form instead: the fields the graph, the timeline and the
step panel read, with any large value clipped to a preview. Pure functions of a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noetl.v1 import common_pb2

from gateway_http.encoding import dumps
from gateway_http.formatting import timestamp
from kernel import jsonutil
from kernel.wire import optional
from language.event_types import WRITTEN_TERMINAL, EventType

# A value whose JSON is longer than this is sent as a preview of that many characters.
MAX_VALUE_CHARS = 8192
# stdout and stderr keep their tails: the end of a log is where a failure shows.
MAX_STREAM_CHARS = 8192

_COMMAND_EVENTS = frozenset(
    {
        EventType.COMMAND_CLAIMED,
        EventType.COMMAND_STARTED,
        EventType.COMMAND_HEARTBEAT,
        EventType.COMMAND_COMPLETED,
        EventType.COMMAND_FAILED,
        EventType.STEP_EXIT,
        EventType.CALL_DONE,
        EventType.CALL_ERROR,
    }
)
_SMALL_CONTEXT = frozenset(
    {EventType.PLAYBOOK_INITIALIZED, EventType.LOOP_DONE, EventType.CTX_UPDATED, *WRITTEN_TERMINAL}
)


def console_event(event: common_pb2.Event) -> dict[str, Any]:
    """`{id, type, node, status, at}` (ids as strings) plus, by event type, the command, iteration, output or error."""
    context = jsonutil.loads(event.context_json)
    body: dict[str, Any] = {
        "id": str(event.event_id),
        "type": event.event_type,
        "node": event.node_name or None,
        "status": event.status or None,
        "at": timestamp(event.created_at) if event.HasField("created_at") else None,
    }
    meta = jsonutil.loads(event.meta_json)
    meta = meta if isinstance(meta, Mapping) else {}
    context_map = context if isinstance(context, Mapping) else {}
    command_id = optional(event, "command_id")
    command_id = command_id or meta.get("command_id") or context_map.get("command_id")
    error = event.error if event.HasField("error") and event.error else None
    kind = event.event_type
    if kind == "command.issued":
        body["cmd"] = _id(command_id)
        body.update(_issued(context_map, meta))
    elif kind in _COMMAND_EVENTS:
        body["cmd"] = _id(command_id)
        worker = event.worker_id if event.HasField("worker_id") else context_map.get("worker_id")
        if worker:
            body["worker"] = worker
        if kind in ("call.done", "call.error", "step.exit"):
            body["out"] = tool_output(context_map.get("result"))
        error = error or _text(context_map.get("error"))
    elif kind == "step.enter" and "iterations_expected" in context_map:
        body["expected"] = context_map["iterations_expected"]
    elif kind in _SMALL_CONTEXT:
        body["context"] = clip(context)
        if event.HasField("parent_execution_id"):
            body["parent"] = str(event.parent_execution_id)
        error = error or _text(context_map.get("error"))
    if error is not None:
        body["error"] = error
    return body


def _issued(context: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The tool kind, the loop position and, for a sub-playbook, the child's path."""
    issued: dict[str, Any] = {}
    tool = context.get("tool_config")
    if isinstance(tool, Mapping):
        issued["tool"] = tool.get("kind")
        if tool.get("kind") == "playbook":
            issued["child_path"] = tool.get("path")
    elif isinstance(tool, list):
        issued["tool"] = "pipeline"
    given = context.get("input")
    index = meta.get("iteration_index")
    if index is None and isinstance(given, Mapping):
        index = given.get("_index")
    if isinstance(index, int):
        issued["iteration"] = index
        total = meta.get("iteration_total")
        issued["total"] = total if total is not None else (given or {}).get("_total")
    return issued


def tool_output(result: Any) -> dict[str, Any] | None:
    """A worker's tool result envelope `{status, context: {data, stdout, stderr, error, ...}}`
    (dsl.md §11.1) as `{status, data, stdout, stderr, error, exit_code, duration_ms}`, clipped."""
    if not isinstance(result, Mapping):
        return None
    inner = result.get("context")
    if not isinstance(inner, Mapping):
        return {"status": result.get("status"), "data": clip(result)}
    output: dict[str, Any] = {"status": result.get("status"), "data": clip(inner.get("data"))}
    for name in ("stdout", "stderr"):
        text = inner.get(name)
        if isinstance(text, str) and text:
            output[name] = text if len(text) <= MAX_STREAM_CHARS else "…" + text[-MAX_STREAM_CHARS:]
    for name in ("error", "exit_code", "duration_ms"):
        if inner.get(name) is not None:
            output[name] = inner[name]
    if "reference" in inner or "reference" in result:
        output["reference"] = clip(inner.get("reference") or result.get("reference"))
    return output


def clip(value: Any) -> Any:
    """The value itself, or `{"__clipped__": <chars>, "preview": <text>}` when its JSON is long."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = dumps(value).decode()
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return {"__clipped__": len(text), "preview": text[:MAX_VALUE_CHARS]}


def _id(value: Any) -> str | None:
    """Ids as text: snowflakes exceed 2**53, past which JavaScript numbers lose digits."""
    return None if value is None else str(value)


def _text(value: Any) -> str | None:
    return str(value) if value else None
