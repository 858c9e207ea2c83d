"""Small conversions between Python values and what protobuf messages carry (adapters only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from kernel import jsonutil
from kernel.errors import InvalidArgument


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def json_field(raw: bytes, field: str, loads: Callable[[bytes], Any] = jsonutil.loads) -> Any:
    """The JSON value of a request's `*_json` field, None for empty bytes; `loads` parses it
    (the standard library's where integers beyond 64 bits must come back exact).

    Raises InvalidArgument naming `field` when `raw` is not JSON (the parser's message gives only
    a position, never the text).
    """
    if not raw:
        return None
    try:
        return loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from exc
