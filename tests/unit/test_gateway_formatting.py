"""Timestamps, durations and the response shapes built from service messages (http-api.md §1.5, §13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from noetl.v1 import catalog_pb2, common_pb2, execution_pb2

from gateway_http.formatting import duration_human, elapsed_seconds, timestamp
from gateway_http.views import (
    catalog_entry,
    command_body,
    event_object,
    execution_entry,
    pagination,
    status_body,
)

START = datetime(2026, 8, 19, 15, 2, 20, 123456, tzinfo=UTC)
END = datetime(2026, 8, 19, 15, 2, 21, 500000, tzinfo=UTC)


def stamp(value: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(value)
    return message


def test_timestamps_are_rfc3339_utc_with_z() -> None:
    assert timestamp(stamp(START)) == "2026-08-19T15:02:20.123456Z"
    assert timestamp(stamp(datetime(2026, 8, 19, 15, 2, 20, tzinfo=UTC))) == "2026-08-19T15:02:20Z"


def test_sub_microsecond_digits_are_dropped() -> None:
    assert timestamp(Timestamp(seconds=1787151740, nanos=123456789)) == "2026-08-19T15:02:20.123456Z"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.4, "0s"),
        (1.377, "1s"),
        (2.5, "2s"),  # half to even, like the reference's round()
        (60.0, "1m"),
        (3600.0, "1h"),
        (3661.0, "1h 1m 1s"),
        (86400.0 + 2 * 3600 + 3 * 60 + 4, "1d 2h 3m 4s"),
        (86400.0 + 5, "1d 5s"),
        (-3.0, "0s"),
    ],
)
def test_duration_human_shows_non_zero_units(seconds: float, text: str) -> None:
    assert duration_human(seconds) == text


def test_elapsed_counts_to_now_without_an_end_and_never_goes_negative() -> None:
    assert elapsed_seconds(START, END, START + timedelta(hours=1)) == pytest.approx(1.376544)
    assert elapsed_seconds(START, None, START + timedelta(seconds=90)) == 90.0
    assert elapsed_seconds(END, START, END) == 0.0


def test_execution_entry_has_the_contract_keys_in_order() -> None:
    completed = execution_pb2.ExecutionSummary(
        execution_id=612400000000000001,
        catalog_id=612345678901234567,
        path="tests/hello_world",
        version=3,
        status="COMPLETED",
        start_time=stamp(START),
        end_time=stamp(END),
    )
    entry = execution_entry(completed, now=END + timedelta(days=1))
    assert entry == {
        "execution_id": "612400000000000001",
        "catalog_id": "612345678901234567",
        "path": "tests/hello_world",
        "version": 3,
        "status": "COMPLETED",
        "start_time": "2026-08-19T15:02:20.123456Z",
        "end_time": "2026-08-19T15:02:21.500000Z",
        "duration_seconds": 1.377,
        "duration_human": "1s",
        "progress": 100,
        "result": None,
        "error": None,
        "parent_execution_id": None,
    }
    assert list(entry) == [
        "execution_id",
        "catalog_id",
        "path",
        "version",
        "status",
        "start_time",
        "end_time",
        "duration_seconds",
        "duration_human",
        "progress",
        "result",
        "error",
        "parent_execution_id",
    ]


def test_a_running_execution_counts_to_now_and_has_no_progress() -> None:
    running = execution_pb2.ExecutionSummary(
        execution_id=1, status="RUNNING", start_time=stamp(START), parent_execution_id=612400000000000000
    )
    entry = execution_entry(running, now=START + timedelta(seconds=125.5))
    assert entry["end_time"] is None
    assert entry["duration_seconds"] == 125.5
    assert entry["duration_human"] == "2m 6s"
    assert entry["progress"] == 0
    assert entry["catalog_id"] == ""
    assert entry["path"] == "unknown"
    assert entry["parent_execution_id"] == "612400000000000000"


def test_event_objects_use_strings_for_ids_except_event_id() -> None:
    event = common_pb2.Event(
        event_id=612400000000000099,
        execution_id=612400000000000001,
        catalog_id=612345678901234567,
        parent_event_id=612400000000000098,
        event_type="playbook.completed",
        node_id="tests/hello_world",
        node_name="tests/hello_world",
        status="COMPLETED",
        created_at=stamp(END),
        result_json=b'{"status":"COMPLETED"}',
    )
    shaped = event_object(event)
    assert list(shaped.items()) == [
        ("execution_id", "612400000000000001"),
        ("event_id", 612400000000000099),
        ("event_type", "playbook.completed"),
        ("node_id", "tests/hello_world"),
        ("node_name", "tests/hello_world"),
        ("status", "COMPLETED"),
        ("created_at", "2026-08-19T15:02:21.500000Z"),
        ("timestamp", "2026-08-19T15:02:21.500000Z"),
        ("context", None),
        ("result", {"status": "COMPLETED"}),
        ("error", None),
        ("catalog_id", "612345678901234567"),
        ("parent_execution_id", None),
        ("parent_event_id", "612400000000000098"),
        ("duration", None),
    ]


@pytest.mark.parametrize(
    ("page", "size", "total", "expected"),
    [
        (1, 100, 0, (1, False, False)),
        (1, 10, 17, (2, True, False)),
        (2, 10, 17, (2, False, True)),
        (3, 10, 17, (2, False, True)),
    ],
)
def test_pagination(page: int, size: int, total: int, expected: tuple[int, bool, bool]) -> None:
    pages, has_next, has_prev = expected
    assert pagination(page, size, total) == {
        "page": page,
        "page_size": size,
        "total_events": total,
        "total_pages": pages,
        "has_next": has_next,
        "has_prev": has_prev,
    }


def test_status_body_matches_the_contract_order_and_defaults_variables_to_an_object() -> None:
    status = execution_pb2.StatusResponse(
        execution_id=612400000000000001,
        current_step="end",
        completed_steps=["start", "test_step", "end"],
        completed=True,
        start_time=stamp(START),
        end_time=stamp(END),
    )
    assert list(status_body(status, now=END).items()) == [
        ("execution_id", "612400000000000001"),
        ("current_step", "end"),
        ("completed_steps", ["start", "test_step", "end"]),
        ("failed", False),
        ("completed", True),
        ("completion_inferred", False),
        ("variables", {}),
        ("start_time", "2026-08-19T15:02:20.123456Z"),
        ("end_time", "2026-08-19T15:02:21.500000Z"),
        ("duration_seconds", 1.377),
        ("duration_human", "1s"),
    ]


def test_status_body_has_no_end_time_until_completed_or_failed() -> None:
    status = execution_pb2.StatusResponse(
        execution_id=1, start_time=stamp(START), end_time=stamp(END), variables_json=b'{"workload":{"n":1}}'
    )
    body = status_body(status, now=START + timedelta(seconds=10))
    assert body["end_time"] is None
    assert body["duration_seconds"] == 10.0
    assert body["current_step"] is None
    assert body["variables"] == {"workload": {"n": 1}}


def test_command_body_carries_numbers_and_the_step_twice() -> None:
    command = common_pb2.Command(
        event_id=5,
        execution_id=612400000000000001,
        step="start",
        tool_kind="python",
        context_json=b'{"tool_config":{},"input":{},"render_context":{},"spec":null}',
        meta_json=b'{"command_id":612400000000000501}',
    )
    assert list(command_body(command).items()) == [
        ("execution_id", 612400000000000001),
        ("node_id", "start"),
        ("node_name", "start"),
        ("action", "python"),
        ("context", {"tool_config": {}, "input": {}, "render_context": {}, "spec": None}),
        ("meta", {"command_id": 612400000000000501}),
    ]


def test_catalog_entry_decodes_json_columns_and_stringifies_the_id() -> None:
    entry = catalog_pb2.CatalogEntry(
        catalog_id=612345678901234567,
        path="tests/hello_world",
        version=3,
        kind="playbook",
        content="apiVersion: noetl.io/v2\n",
        payload_json=b'{"kind":"Playbook"}',
        meta_json=b'{"agent":false}',
        created_at=stamp(START),
    )
    assert list(catalog_entry(entry).items()) == [
        ("catalog_id", "612345678901234567"),
        ("path", "tests/hello_world"),
        ("version", 3),
        ("kind", "playbook"),
        ("content", "apiVersion: noetl.io/v2\n"),
        ("layout", None),
        ("payload", {"kind": "Playbook"}),
        ("meta", {"agent": False}),
        ("created_at", "2026-08-19T15:02:20.123456Z"),
    ]


def test_command_body_restores_the_contract_key_order_lost_in_jsonb() -> None:
    """JSONB keeps keys shorter-first; §13.4 fixes the order of `context` and `meta`."""
    command = common_pb2.Command(
        event_id=5,
        execution_id=1,
        step="start",
        tool_kind="python",
        context_json=b'{"spec":null,"input":{},"tool_config":{},"render_context":{}}',
        meta_json=(
            b'{"step":"start","attempt":1,"tool_kind":"python","actionable":true,"catalog_id":"2",'
            b'"command_id":3,"execution_id":"1","max_attempts":3,"iteration_index":0,"extra":1}'
        ),
    )
    body = command_body(command)
    assert list(body["context"]) == ["tool_config", "input", "render_context", "spec"]
    assert list(body["meta"]) == [
        "command_id",
        "step",
        "tool_kind",
        "max_attempts",
        "attempt",
        "execution_id",
        "catalog_id",
        "actionable",
        "iteration_index",
        "extra",
    ]


def test_catalog_entry_meta_in_registration_order() -> None:
    entry = catalog_pb2.CatalogEntry(
        catalog_id=1,
        path="p",
        version=1,
        kind="playbook",
        meta_json=(
            b'{"agent":false,"terminal":{},"capabilities":[],"registered_at":"2026-08-19T15:02:20Z",'
            b'"terminal_scopes":[],"terminal_visible":false}'
        ),
        created_at=stamp(START),
    )
    assert list(catalog_entry(entry)["meta"]) == [
        "registered_at",
        "agent",
        "capabilities",
        "terminal",
        "terminal_visible",
        "terminal_scopes",
    ]
