"""Request decoding shared by the execution context's servicers."""

from __future__ import annotations

from typing import Any

from kernel import jsonutil
from kernel.errors import InvalidArgument


def json_object(raw: bytes, field: str) -> dict[str, Any] | None:
    """Raises InvalidArgument naming `field` when `raw` is not JSON or not an object (or null)."""
    try:
        value = jsonutil.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from exc
    if value is not None and not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object")
    return value
