"""Small conversions between Python values and protobuf well-known types (adapters only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


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
