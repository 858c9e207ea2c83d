"""The execution shard's event feed: reading the stream form of an event, and when a fetched
batch can be folded without reading the log back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg

from services.events.chain import StoredEvent, stream_payload
from services.execution.orchestration.feed import Delivery, _chain, _parse

WHEN = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def stored(event_id: int, prev: int | None, event_type: str = "call.done", **extra: object) -> StoredEvent:
    fields: dict[str, Any] = {
        "event_id": event_id,
        "execution_id": 77,
        "catalog_id": 5,
        "parent_event_id": None,
        "prev_event_id": prev,
        "parent_execution_id": None,
        "event_type": event_type,
        "node_id": None,
        "node_name": "step_a",
        "node_type": "python",
        "status": "COMPLETED",
        "created_at": WHEN,
        "context": '{"command_id": "9"}',
        "result": '{"n": 18446744073709551615}',
        "meta": '{"iteration_index": 2}',
        "error": None,
        "worker_id": "w1",
        "command_id": 9,
        "duration": None,
    }
    fields.update(extra)
    return StoredEvent(**fields)


def delivery(event: StoredEvent) -> Delivery:
    parsed = _parse(Msg(None, subject="noetl.events.x", data=stream_payload(event).encode()))
    assert parsed is not None
    return parsed


def test_the_stream_form_carries_what_projections_need() -> None:
    got = delivery(stored(101, 100, "command.issued")).event
    assert (got.event_id, got.execution_id, got.catalog_id, got.prev_event_id) == (101, 77, 5, 100)
    assert (got.kind, got.node_name, got.node_type, got.command_id, got.worker_id) == (
        "command.issued",
        "step_a",
        "python",
        9,
        "w1",
    )
    assert got.meta == {"iteration_index": 2}
    assert got.created_at == WHEN


def test_a_result_beyond_64_bits_survives_the_stream() -> None:
    assert delivery(stored(101, 100)).record.result == {"n": 18446744073709551615}


def test_a_message_that_is_no_event_is_refused() -> None:
    for data in (b"not json", b"[1, 2]", b'{"event_id": 1}'):
        assert _parse(Msg(None, subject="s", data=data)) is None


def test_an_unbroken_stretch_folds_as_it_is() -> None:
    batch = [delivery(stored(101, 100)), delivery(stored(102, 101)), delivery(stored(103, 102))]
    appended = _chain(batch)
    assert appended is not None
    assert (appended.event_ids, appended.linked_to) == ([101, 102, 103], 100)


def test_a_gap_means_reading_the_log() -> None:
    assert _chain([delivery(stored(101, 100)), delivery(stored(103, 102))]) is None
