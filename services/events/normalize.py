"""Worker event normalisation (http-api.md §5.1, data-model.md §4.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.errors import Unprocessable
from language.event_types import WORKER_IDEMPOTENT, canonical_event_type

_RESULT_KEYS = frozenset({"status", "reference", "context", "command_id"})


@dataclass(frozen=True, slots=True)
class WorkerEventDraft:
    """A validated, normalised worker event ready for the log."""

    event_type: str
    step: str
    status: str
    context: dict[str, Any]
    result: dict[str, Any]
    meta: dict[str, Any]
    command_id: int | None
    worker_id: str | None
    error: str | None

    @property
    def idempotent(self) -> bool:
        return self.event_type in WORKER_IDEMPOTENT


def status_from_name(event_type: str) -> str:
    name = event_type.lower()
    if "error" in name or "failed" in name:
        return "FAILED"
    if "done" in name or "exit" in name or "completed" in name:
        return "COMPLETED"
    return "RUNNING"


def normalize(
    *,
    event_type: str,
    step: str,
    payload: Any,
    meta: Any,
    worker_id: str | None,
    actionable: bool,
    informative: bool,
) -> WorkerEventDraft:
    """Raises Unprocessable naming the offending field."""
    if not event_type:
        raise Unprocessable("event_type is required")
    if not step:
        raise Unprocessable("step is required")
    body = {} if payload is None else payload
    if not isinstance(body, dict):
        raise Unprocessable("payload must be a JSON object")
    if meta is not None and not isinstance(meta, dict):
        raise Unprocessable("meta must be a JSON object")
    if _mentions_internal_data(body):
        raise Unprocessable("payload may not contain '_internal_data'")
    nested = body.get("result")
    if nested is not None and (not isinstance(nested, dict) or not set(nested) <= _RESULT_KEYS):
        raise Unprocessable(
            "payload.result must be an object with keys within status, reference, context, command_id"
        )
    kind = canonical_event_type(event_type)
    status = status_from_name(kind)
    command_id = _command_id(body.get("command_id"), (meta or {}).get("command_id"))
    # Stored as sent: the worker has already replaced the secrets it resolved (data-model.md §9.10).
    context = body
    stored_meta = dict(meta or {})
    stored_meta.update(
        {
            "actionable": actionable,
            "informative": informative,
            "worker_id": worker_id,
            "command_id": command_id,
        }
    )
    return WorkerEventDraft(
        event_type=kind,
        step=step,
        status=status,
        context=context,
        result={"status": status, "context": context},
        meta=stored_meta,
        command_id=command_id,
        worker_id=worker_id,
        error=_error_text(body.get("error")) if status == "FAILED" else None,
    )


def _error_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _command_id(*candidates: Any) -> int | None:
    for value in candidates:
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    return None


def _mentions_internal_data(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if isinstance(value, dict):
        return "_internal_data" in value or any(_mentions_internal_data(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_internal_data(v, depth + 1) for v in value)
    return False
