"""The stream form of an event, and its reference form past NATS's payload limit (data-model.md §11.2)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.events.chain import MIRROR_MAX_BYTES, MIRROR_TEXT_CHARS, StoredEvent, stream_payload


def event(*, result: object = None, node_name: str = "start", error: str | None = None) -> StoredEvent:
    return StoredEvent(
        event_id=11,
        execution_id=7,
        catalog_id=3,
        parent_event_id=None,
        prev_event_id=10,
        parent_execution_id=None,
        event_type="call.done",
        node_id=node_name,
        node_name=node_name,
        node_type="python",
        status="COMPLETED",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        context=None,
        result=None if result is None else orjson.dumps(result).decode(),
        meta='{"k": 1}',
        error=error,
        worker_id="w-1",
        command_id=None,
        duration=None,
    )


def test_an_event_within_the_limit_is_mirrored_whole() -> None:
    payload = orjson.loads(stream_payload(event(result={"rows": [1, 2]})))
    assert (payload["result"], payload["meta"], payload["worker_id"]) == ({"rows": [1, 2]}, {"k": 1}, "w-1")
    assert "mirror_omitted" not in payload


def test_an_event_over_the_limit_in_bytes_is_mirrored_by_reference() -> None:
    # Fewer characters than the limit, three times as many bytes.
    text = "€" * (MIRROR_MAX_BYTES // 2)
    found = stream_payload(event(result={"text": text}, error="e" * 5000))
    payload = orjson.loads(found)
    assert len(found.encode()) < 4096
    assert (payload["event_id"], payload["node_name"], payload["result"], payload["meta"]) == (
        11,
        "start",
        None,
        None,
    )
    assert payload["error"] == "e" * MIRROR_TEXT_CHARS + "..."
    omitted = payload["mirror_omitted"]
    assert omitted["bytes"] > 3 * len(text) and omitted["limit"] == MIRROR_MAX_BYTES
    assert omitted["read"] == "/api/events/11/result"


def test_a_huge_step_name_is_cut_in_the_reference_form() -> None:
    found = stream_payload(event(node_name="s" * (MIRROR_MAX_BYTES + 1)))
    assert len(found) < 4096
    assert orjson.loads(found)["node_name"] == "s" * MIRROR_TEXT_CHARS + "..."
