"""Request decoding shared by the execution context's servicers."""

from __future__ import annotations

from typing import Any

from kernel.errors import InvalidArgument
from kernel.wire import json_field


def json_object(raw: bytes, field: str) -> dict[str, Any] | None:
    """Raises InvalidArgument naming `field` when `raw` is not JSON or not an object (or null)."""
    value = json_field(raw, field)
    if value is not None and not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object")
    return value
