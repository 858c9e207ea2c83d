"""JSON on the wire between services: compact UTF-8 bytes, empty bytes = null."""

from __future__ import annotations

import json
from typing import Any

import orjson


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
