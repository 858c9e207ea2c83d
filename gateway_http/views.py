"""Service messages → the JSON objects of the contract, keys in contract order (http-api.md §13).

Pure functions of a message (and `now` where a running duration is involved), so the shapes
are unit-tested without servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from noetl.v1 import catalog_pb2, common_pb2, execution_pb2

from gateway_http.formatting import duration_human, elapsed_seconds, id_text, progress, timestamp, to_datetime
from kernel import jsonutil
from kernel.wire import optional

# Key orders the contract fixes for objects the services build but store as JSONB, which keeps
# keys in its own order (shorter first): http-api.md §3.1/§13.1 (catalog meta) and §13.4.
CATALOG_META_KEYS = (
    "registered_at",
    "agent",
    "capabilities",
    "terminal",
    "terminal_visible",
    "terminal_scopes",
)
COMMAND_CONTEXT_KEYS = ("tool_config", "input", "render_context", "spec")
COMMAND_META_KEYS = (
    "command_id",
    "step",
    "tool_kind",
    "max_attempts",
    "attempt",
    "execution_id",
    "catalog_id",
    "actionable",
    "iteration_index",
    "iteration_total",
    "iterator_step",
    "item_var",
    "trace",
    "triggered_by",
    "trigger_step",
)


def in_order(value: Any, keys: tuple[str, ...]) -> Any:
    """A mapping with `keys` first, in that order, then any other keys as stored; other values as is."""
    if not isinstance(value, dict):
        return value
    ordered = {key: value[key] for key in keys if key in value}
    ordered.update((key, item) for key, item in value.items() if key not in ordered)
    return ordered


def _optional_id(message: Any, field: str) -> str | None:
    """A proto3 `optional int64` id as its wire string, None when unset."""
    return str(getattr(message, field)) if message.HasField(field) else None


def catalog_entry(entry: catalog_pb2.CatalogEntry) -> dict[str, Any]:
    """§13.1."""
    return {
        "catalog_id": str(entry.catalog_id),
        "path": entry.path,
        "version": entry.version,
        "kind": entry.kind,
        "content": entry.content,
        "layout": jsonutil.loads(entry.layout_json),
        "payload": jsonutil.loads(entry.payload_json),
        "meta": in_order(jsonutil.loads(entry.meta_json), CATALOG_META_KEYS),
        "created_at": timestamp(entry.created_at),
    }


def _batch_item(result: catalog_pb2.RegisterBatchResult) -> dict[str, Any]:
    if not result.HasField("registered"):
        return {"index": result.index, "status": "error", "error": result.error}
    registered = result.registered
    return {
        "index": result.index,
        "status": "registered",
        "path": registered.path,
        "version": registered.version,
        "catalog_id": str(registered.catalog_id),
        "kind": registered.kind,
    }


def register_batch_body(batch: catalog_pb2.RegisterBatchResponse) -> dict[str, Any]:
    """§3.2: one result per item, in item order."""
    results = [_batch_item(result) for result in batch.results]
    registered = sum(1 for result in batch.results if result.HasField("registered"))
    return {
        "count": len(results),
        "registered": registered,
        "failed": len(results) - registered,
        "results": results,
    }


def catalog_versions_body(
    path: str, message: str, versions: Sequence[catalog_pb2.CatalogVersionRef]
) -> dict[str, Any]:
    """§3.5, delete and restore alike: the versions touched are listed under `deleted`."""
    return {
        "status": "success",
        "message": message,
        "path": path,
        "deleted": [{"catalog_id": str(ref.catalog_id), "version": ref.version} for ref in versions],
        "count": len(versions),
    }


def ui_schema_body(form: catalog_pb2.UiSchemaResponse) -> dict[str, Any]:
    """`GET /api/catalog/{path}/ui_schema` (a project shape: docs/decisions.md)."""
    return {
        "path": form.path,
        "version": form.version,
        "catalog_id": str(form.catalog_id),
        "kind": form.kind,
        "workload": jsonutil.loads(form.workload_json),
        "ui_schema": jsonutil.loads(form.ui_schema_json),
    }


def _timing(start: Any, end: Any | None, now: datetime) -> dict[str, Any]:
    """`start_time` … `duration_human` of §13.2 from optional protobuf timestamps."""
    if start is None:
        return {"start_time": None, "end_time": None, "duration_seconds": None, "duration_human": None}
    seconds = elapsed_seconds(to_datetime(start), None if end is None else to_datetime(end), now)
    return {
        "start_time": timestamp(start),
        "end_time": None if end is None else timestamp(end),
        "duration_seconds": round(seconds, 3),
        "duration_human": duration_human(seconds),
    }


def execution_entry(summary: execution_pb2.ExecutionSummary, now: datetime) -> dict[str, Any]:
    """§13.2; the duration counts to `now` while the run has no end."""
    start = optional(summary, "start_time")
    end = optional(summary, "end_time")
    return {
        "execution_id": str(summary.execution_id),
        "catalog_id": id_text(summary.catalog_id) or "",
        "path": summary.path or "unknown",
        "version": summary.version,
        "status": summary.status,
        **_timing(start, end, now),
        "progress": progress(summary.status),
        "result": None,
        "error": optional(summary, "error"),
        "parent_execution_id": _optional_id(summary, "parent_execution_id"),
    }


def event_object(event: common_pb2.Event) -> dict[str, Any]:
    """§13.3 (detail route): `execution_id`, `catalog_id` and parent ids as strings, `event_id` a number."""
    created = timestamp(event.created_at) if event.HasField("created_at") else None
    return {
        "execution_id": str(event.execution_id),
        "event_id": event.event_id,
        "event_type": event.event_type,
        "node_id": event.node_id or None,
        "node_name": event.node_name or None,
        "status": event.status or None,
        "created_at": created,
        "timestamp": created,
        "context": jsonutil.loads(event.context_json),
        "result": jsonutil.loads(event.result_json),
        "error": optional(event, "error"),
        "catalog_id": id_text(event.catalog_id),
        "parent_execution_id": _optional_id(event, "parent_execution_id"),
        "parent_event_id": _optional_id(event, "parent_event_id"),
        "duration": optional(event, "duration"),
    }


def raw_event_row(event: common_pb2.Event) -> dict[str, Any]:
    """§4.6: the raw columns with ids as numbers, then `execution_id` (string) and `timestamp`."""
    row = event_object(event)
    return {
        "event_id": event.event_id,
        "event_type": row["event_type"],
        "node_id": row["node_id"],
        "node_name": row["node_name"],
        "status": row["status"],
        "created_at": row["created_at"],
        "context": row["context"],
        "result": row["result"],
        "error": row["error"],
        "catalog_id": event.catalog_id,
        "parent_execution_id": optional(event, "parent_execution_id"),
        "parent_event_id": optional(event, "parent_event_id"),
        "duration": row["duration"],
        "execution_id": row["execution_id"],
        "timestamp": row["timestamp"],
    }


def pagination(page: int, page_size: int, total: int) -> dict[str, Any]:
    """§4.4: an empty result still has one page."""
    total_pages = (total + page_size - 1) // page_size if total > 0 else 1
    return {
        "page": page,
        "page_size": page_size,
        "total_events": total,
        "total_pages": total_pages,
        "has_next": page < total_pages,
        "has_prev": page > 1,
    }


def status_body(status: execution_pb2.StatusResponse, now: datetime) -> dict[str, Any]:
    """§4.5; `end_time` only once the run completed or failed."""
    start = optional(status, "start_time")
    finished = status.completed or status.failed
    end = status.end_time if finished and status.HasField("end_time") else None
    variables = jsonutil.loads(status.variables_json)
    return {
        "execution_id": str(status.execution_id),
        "current_step": optional(status, "current_step"),
        "completed_steps": list(status.completed_steps),
        "failed": status.failed,
        "completed": status.completed,
        "completion_inferred": status.completion_inferred,
        "variables": {} if variables is None else variables,
        **_timing(start, end, now),
    }


def command_body(command: common_pb2.Command) -> dict[str, Any]:
    """§6.1: `execution_id` a number; the step is both `node_id` and `node_name`; §13.4 key orders."""
    context = jsonutil.loads(command.context_json)
    meta = jsonutil.loads(command.meta_json)
    return {
        "execution_id": command.execution_id,
        "node_id": command.step,
        "node_name": command.step,
        "action": command.tool_kind,
        "context": {} if context is None else in_order(context, COMMAND_CONTEXT_KEYS),
        "meta": {} if meta is None else in_order(meta, COMMAND_META_KEYS),
    }
