"""The wire helpers: presence, not truthiness, decides between a value and None."""

from __future__ import annotations

from datetime import UTC, datetime

from noetl.v1 import events_pb2

from services.common.wire import optional, optional_time, timestamp


def test_an_unset_field_is_none_and_a_set_empty_one_is_its_value() -> None:
    event = events_pb2.ProjectedEvent()
    assert optional(event, "error") is None
    assert optional(event, "duration") is None
    event.error = ""
    event.duration = 0.0
    assert optional(event, "error") == ""
    assert optional(event, "duration") == 0.0


def test_a_timestamp_is_an_aware_utc_datetime_when_set() -> None:
    event = events_pb2.ProjectedEvent()
    assert optional_time(event, "created_at") is None
    at = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    event.created_at.CopyFrom(timestamp(at))
    stamp = optional_time(event, "created_at")
    assert stamp == at
    assert stamp is not None and stamp.tzinfo is UTC
