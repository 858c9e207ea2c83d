"""Reading step results out of stored event rows (dsl.md §11).

A worker's `call.done` is stored with `result = {status, context: <payload>}` and
`payload = {command_id, call_index, result: {status, context: {data, ...}}}`, so the user
data sits at `result.context.result.context.data`. A result the worker kept in the result store
arrives as `result = {status, reference: {ref, store, ...}}`; the orchestrator reads the value back
and hands the engine the event as if it had been inline (`hydrated`), the data answering the
accessors `_ref`, `_store`, `_uri` and `_preview` besides (§9.12).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from language.templating import FieldMap, NamedList, loop_fields, scoped_key
from services.execution.engine.records import EventRecord

_ERROR_STATUSES = frozenset({"error", "failed"})


def extract_user_data(value: Any) -> Any:
    """The first of `context.result.context.data`, `context.data`, `context`, the value (§11.1)."""
    context = _get(value, "context")
    if context is _MISSING:
        return value
    inner = _get(_get(_get(context, "result"), "context"), "data")
    if inner is not _MISSING:
        return inner
    data = _get(context, "data")
    return context if data is _MISSING else data


class SequenceView(NamedList):
    """A list result that also answers `.data` with itself (`{{ loop_step.data }}`, §12.7), and
    the names of `fields` (a loop aggregate's object form, an externalised result's accessors)."""

    def __init__(self, items: list[Any], fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(items, fields or {})

    @property
    def data(self) -> list[Any]:
        return list(self)


class RowsView(NamedList):
    """A query result as later steps see it (fixtures convention C6): the row list itself, so
    `{{ step }}` hands on the rows, while its fields still answer (`step.rows`, `step.columns`,
    `step.row_count`, a pipeline task's label)."""


class ReferencedMap(dict[str, Any]):
    """Map user data read back from the result store, carrying its accessors (`_ref`, ...)."""

    __slots__ = ("accessors",)

    def __init__(self, data: Mapping[str, Any], accessors: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.accessors = dict(accessors)


class ReferencedList(list[Any]):
    """List user data read back from the result store, carrying its accessors."""

    __slots__ = ("accessors",)

    def __init__(self, data: list[Any], accessors: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.accessors = dict(accessors)


def result_accessors(reference: Mapping[str, Any], uri: str) -> dict[str, Any]:
    """What `{{ step._ref }}`, `_store`, `_uri` and `_preview` answer (§9.12); `uri` is where
    the value can be read over HTTP."""
    return {
        "_ref": reference["ref"],
        "_store": reference.get("store"),
        "_uri": uri,
        "_preview": reference.get("preview"),
    }


def hydrated(record: EventRecord, value: Any, accessors: Mapping[str, Any]) -> EventRecord:
    """`record` as if its worker had sent `value` inline (at `result.context.data` of its payload).

    The reference stays beside it; a map or list value also answers `accessors`.
    """
    if isinstance(value, Mapping):
        value = ReferencedMap(value, accessors)
    elif isinstance(value, list):
        value = ReferencedList(value, accessors)
    payload = record.context if isinstance(record.context, Mapping) else {}
    result = payload.get("result")
    inner = result if isinstance(result, Mapping) else {}
    context = inner.get("context")
    own = {**(context if isinstance(context, Mapping) else {}), "data": value}
    new_payload = {**payload, "result": {**inner, "context": own}}
    envelope = record.result if isinstance(record.result, Mapping) else {"status": record.status}
    return dataclasses.replace(record, context=new_payload, result={**envelope, "context": new_payload})


def template_view(data: Any, *, pipeline: bool = False, loop: bool = False) -> Any:
    """How templates see a step's user data (§11.2, §9.11).

    A pipeline result (label → task data) is flattened so that both `step.label.field` and
    `step.field` resolve; a map without its own `data` key gains a `data` alias to itself,
    and so does a list. A loop step's aggregate also answers `results` and `count`. A step whose
    only result is a SQL result set (duckdb, postgres) is seen as its rows (C6), with its fields
    still reachable. A result read back from the result store also answers its accessors (§9.12).
    """
    accessors = result_accessors_of(data)
    if isinstance(data, list):
        return SequenceView(data, {**accessors, **(loop_fields(data) if loop else {})})
    if not isinstance(data, Mapping):
        return data
    view = dict(data)
    if pipeline:
        tasks = [v for k, v in data.items() if k != "_context_updates"]
        if tasks and all(isinstance(v, Mapping) for v in tasks):
            for task in tasks:
                view.update(task)
            # Labels win over task fields of the same name.
            view.update(data)
    if "data" not in view:
        view["data"] = data
    if accessors:
        view = FieldMap(view, accessors)
    query = _query_result(data, pipeline)
    if query is not None:
        return RowsView(query["rows"], view)
    return view


def result_accessors_of(data: Any) -> dict[str, Any]:
    """The accessors of user data read back from the result store; none for inline data."""
    return dict(data.accessors) if isinstance(data, ReferencedMap | ReferencedList) else {}


def _query_result(data: Mapping[str, Any], pipeline: bool) -> Mapping[str, Any] | None:
    """The SQL result set (`columns` + `rows`) a step produced alone, if that is what it produced."""
    candidate: Any = data
    if pipeline:
        tasks = [v for k, v in data.items() if k != "_context_updates"]
        if len(tasks) != 1:
            return None
        candidate = tasks[0]
    if (
        isinstance(candidate, Mapping)
        and isinstance(candidate.get("rows"), list)
        and isinstance(candidate.get("columns"), list)
    ):
        return candidate
    return None


def context_updates(data: Any) -> dict[str, Any]:
    """`ctx.*` values a pipeline's policy rules sent back under `_context_updates` (§6.4)."""
    updates = data.get("_context_updates") if isinstance(data, Mapping) else None
    if not isinstance(updates, Mapping):
        return {}
    return {scoped_key(str(key)): value for key, value in updates.items()}


def call_result_is_error(payload: Any) -> bool:
    """True when a `call.done` payload reports `result.status` error (§17.2)."""
    status = _get(_get(payload, "result"), "status")
    return isinstance(status, str) and status.lower() in _ERROR_STATUSES


def payload_status_is_error(payload: Any) -> bool:
    """True when a completion payload's own `status` is error/failed (§17.2)."""
    status = _get(payload, "status")
    return isinstance(status, str) and status.lower() in _ERROR_STATUSES


def failure_message(result: Any, error: str | None, context: Any) -> str:
    """A failed command's error string: `result.error`, else `result.context.error` (§11.3)."""
    for candidate in (
        _get(result, "error"),
        _get(_get(result, "context"), "error"),
        error,
        _get(context, "error"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
        if candidate not in (_MISSING, None, ""):
            return str(candidate)
    return "unknown error"


def command_id_of(payload: Any, meta: Any, column: int | None) -> int | None:
    """The command an event belongs to: the column, else the payload, else meta."""
    if column is not None:
        return column
    for source in (payload, meta):
        raw = _get(source, "command_id")
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.isdigit():
            return int(raw)
    return None


class _Missing:
    pass


_MISSING: Any = _Missing()


def _get(value: Any, key: str) -> Any:
    if isinstance(value, Mapping) and key in value:
        return value[key]
    return _MISSING
