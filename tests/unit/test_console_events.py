"""The console's compact event view (gateway_http/console/events.py): pure functions of a message."""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from noetl.v1 import common_pb2

from gateway_http.console.events import MAX_STREAM_CHARS, MAX_VALUE_CHARS, clip, console_event
from kernel import jsonutil

COMMAND_ID = 612400000000000901  # beyond 2**53: must reach the browser as text


def event(kind: str, node: str = "step", **fields: Any) -> common_pb2.Event:
    message = common_pb2.Event(
        event_id=612400000000000777,
        execution_id=612400000000000001,
        event_type=kind,
        node_name=node,
        status="RUNNING",
        created_at=Timestamp(seconds=1_780_000_000),
    )
    for name in ("context", "result", "meta"):
        if name in fields:
            setattr(message, f"{name}_json", jsonutil.dumps(fields.pop(name)))
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def test_an_issued_command_carries_its_id_tool_and_loop_position_not_its_render_context() -> None:
    issued = console_event(
        event(
            "command.issued",
            "each",
            context={
                "tool_config": {"kind": "playbook", "path": "tests/child"},
                "input": {"x": 1, "_index": 4, "_total": 9},
                "render_context": {"workload": {"items": list(range(5000))}},
            },
            meta={"command_id": COMMAND_ID, "iteration_index": 4, "iteration_total": 9},
        )
    )
    assert issued == {
        "id": "612400000000000777",
        "type": "command.issued",
        "node": "each",
        "status": "RUNNING",
        "at": "2026-05-28T20:26:40Z",
        "cmd": str(COMMAND_ID),
        "tool": "playbook",
        "child_path": "tests/child",
        "iteration": 4,
        "total": 9,
    }


def test_a_tool_error_keeps_the_error_and_the_tail_of_stderr() -> None:
    stderr = "x" * (MAX_STREAM_CHARS + 10) + "\nValueError: boom\n"
    failed = console_event(
        event(
            "call.error",
            context={
                "command_id": COMMAND_ID,
                "error": "ValueError: boom",
                "result": {
                    "status": "error",
                    "context": {"error": "ValueError: boom", "stderr": stderr, "stdout": ""},
                },
            },
        )
    )
    assert failed["cmd"] == str(COMMAND_ID)
    assert failed["error"] == "ValueError: boom"
    assert failed["out"]["stderr"].endswith("ValueError: boom\n")
    assert failed["out"]["stderr"].startswith("…")
    assert "stdout" not in failed["out"]


def test_a_result_is_unwrapped_and_a_large_one_clipped_to_a_preview() -> None:
    done = console_event(
        event(
            "call.done",
            command_id=COMMAND_ID,
            context={
                "result": {
                    "status": "success",
                    "context": {"data": {"n": 1}, "stdout": "hi\n", "duration_ms": 2.5},
                }
            },
        )
    )
    assert done["out"] == {"status": "success", "data": {"n": 1}, "stdout": "hi\n", "duration_ms": 2.5}
    big = clip({"rows": ["y" * 100] * 200})
    assert big["__clipped__"] > MAX_VALUE_CHARS
    assert len(big["preview"]) == MAX_VALUE_CHARS
    assert clip([1, 2]) == [1, 2]


def test_the_first_event_names_the_catalog_entry_and_the_parent() -> None:
    first = console_event(
        event(
            "playbook.initialized",
            "tests/child",
            context={"catalog_id": "5", "path": "tests/child", "workload": {"x": 1}},
            parent_execution_id=612400000000000002,
        )
    )
    assert first["context"] == {"catalog_id": "5", "path": "tests/child", "workload": {"x": 1}}
    assert first["parent"] == "612400000000000002"
