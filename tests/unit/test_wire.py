"""The wire helpers (kernel/wire.py): presence, not truthiness, decides between a value and None;
one decoding of a request's `*_json` field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from noetl.v1 import events_pb2

from kernel.errors import InvalidArgument
from kernel.wire import json_field, optional, optional_time, timestamp


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


def test_empty_bytes_are_null_and_json_is_parsed() -> None:
    assert json_field(b"", "data_json") is None
    assert json_field(b'{"a": [1, null]}', "data_json") == {"a": [1, None]}


def test_malformed_json_is_invalid_argument_naming_the_field_and_not_quoting_it() -> None:
    with pytest.raises(InvalidArgument) as caught:
        json_field(b'{"password": "hunter2', "data")
    assert str(caught.value).startswith("data is not valid JSON: ")
    assert "hunter2" not in str(caught.value)


def test_a_caller_may_parse_with_the_standard_library_for_exact_big_integers() -> None:
    big = 2**70 + 1
    assert json_field(str(big).encode(), "parameters_json", json.loads) == big
    with pytest.raises(InvalidArgument, match="parameters_json is not valid JSON"):
        json_field(b"[1,", "parameters_json", json.loads)
