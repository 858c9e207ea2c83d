"""JSON on the wire between services: compact UTF-8 bytes, empty bytes = null."""

from __future__ import annotations

import json
from typing import Any

import orjson

# How deep a caller's JSON or YAML may nest (the gateway and the catalog refuse deeper with 4xx):
# far more than real playbooks and results use, and well inside orjson's limit of 255 levels,
# which also holds the envelopes the services wrap around a caller's value.
MAX_NESTING_DEPTH = 100


def dumps(value: Any) -> bytes:
    """Raises TypeError for values JSON cannot carry."""
    if value is None:
        return b""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits, which JSON and jsonb carry (a caller's body may
        # hold one); readers parsing with orjson then see a float, as for any other big integer.
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def loads(raw: bytes | str | None) -> Any:
    """Raises ValueError for malformed JSON."""
    if not raw:
        return None
    return orjson.loads(raw)


def dumps_text(value: Any) -> str | None:
    """For jsonb parameters: None stays SQL NULL."""
    if value is None:
        return None
    return orjson.dumps(value).decode()
