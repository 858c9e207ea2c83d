"""A form description of a playbook's `workload` (GET /api/catalog/{path}/ui_schema).

The schema is JSON Schema, as form renderers read it: one property per workload key, its type
inferred from the default value, nested maps as nested objects. Every key has a default, so
nothing is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from kernel import jsonutil


@dataclass(frozen=True, slots=True)
class WorkloadForm:
    workload: dict[str, Any]
    schema: dict[str, Any]


def workload_form(content: str, payload: str | None, path: str) -> WorkloadForm:
    """The workload of a stored entry and its form schema.

    The YAML `content` is read rather than the stored `payload` because JSONB keeps keys in its
    own order, and a form should list fields as the author wrote them.
    """
    document = _document(content, payload)
    raw_workload = document.get("workload")
    workload: dict[str, Any] = raw_workload if isinstance(raw_workload, dict) else {}
    raw_metadata = document.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    name = metadata.get("name")
    schema: dict[str, Any] = {
        "type": "object",
        "title": name if isinstance(name, str) and name.strip() else path,
    }
    description = metadata.get("description")
    if isinstance(description, str) and description.strip():
        schema["description"] = description
    schema["properties"] = {key: _schema(value, default=True) for key, value in workload.items()}
    schema["required"] = []
    return WorkloadForm(workload=workload, schema=schema)


def _document(content: str, payload: str | None) -> dict[str, Any]:
    """The entry as plain JSON values (YAML dates become strings, as in the stored payload).

    Falls back to the stored payload for content that does not parse, which registration
    never stores but an imported row might.
    """
    try:
        parsed = yaml.safe_load(content)
    except yaml.YAMLError:
        parsed = None
    if not isinstance(parsed, dict):
        parsed = jsonutil.loads(payload)
    if not isinstance(parsed, dict):
        return {}
    plain: dict[str, Any] = orjson.loads(orjson.dumps(parsed))
    return plain


def _schema(value: Any, *, default: bool) -> dict[str, Any]:
    """The schema of one JSON value; `default` adds it as the default (array items get none)."""
    schema: dict[str, Any]
    if isinstance(value, dict):
        # Nested values carry their own defaults, so the object itself needs none.
        properties = {key: _schema(item, default=default) for key, item in value.items()}
        return {"type": "object", "properties": properties}
    if isinstance(value, list):
        schema = {"type": "array", "items": _schema(value[0], default=False) if value else {}}
    else:
        schema = {"type": _scalar_type(value)}
    if default:
        schema["default"] = value
    return schema


def _scalar_type(value: Any) -> str | list[str]:
    # bool before int: True is an int to Python.
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        # No default to infer from: a text field that may stay empty.
        return ["string", "null"]
    return "string"
