"""Small conversions between Python values and what protobuf messages carry (adapters only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from kernel import jsonutil
from kernel.errors import InvalidArgument


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def optional(message: Message, field: str) -> Any:
    """The field's value when it is set on the wire (proto3 `optional` or a message), else None."""
    return getattr(message, field) if message.HasField(field) else None


def optional_time(message: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime when it is set, else None."""
    if not message.HasField(field):
        return None
    value: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return value


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
