"""Which Advance calls a group of independently stored worker events needs (services/events/runs.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.events.chain import StoredEvent
from services.events.runs import advance_runs
from services.events.service import ADVANCE_TYPES

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def event(execution_id: int, event_id: int, prev: int, event_type: str) -> StoredEvent:
    return StoredEvent(
        event_id=event_id,
        execution_id=execution_id,
        catalog_id=1,
        parent_event_id=None,
        prev_event_id=prev,
        parent_execution_id=None,
        event_type=event_type,
        node_id="start",
        node_name="start",
        node_type=None,
        status="RUNNING",
        created_at=NOW,
        context=None,
        result=None,
        meta=None,
        error=None,
        worker_id="w",
        command_id=7,
        duration=None,
    )


def test_each_execution_gets_one_run_of_its_events_in_chain_order() -> None:
    stored = [
        [event(1, 12, 11, "command.heartbeat")],
        [event(2, 21, 20, "command.heartbeat")],
        [event(1, 11, 10, "call.done")],  # stored before item 0's event: the chain decides the order
        [],  # a duplicate or an error: nothing stored
    ]
    runs = advance_runs(stored, ADVANCE_TYPES)

    assert [(r.execution_id, [e.event_id for e in r.events]) for r in runs] == [(1, [11, 12]), (2, [21])]
    assert [r.acting for r in runs] == [[0], [1]]


def test_a_run_breaks_where_another_writers_event_sits_between() -> None:
    # Event 31 (someone else's) sits between 30 and 32: folding 30 then 32 would skip it.
    stored = [[event(3, 30, 29, "command.heartbeat")], [event(3, 32, 31, "command.heartbeat")]]
    runs = advance_runs(stored, ADVANCE_TYPES)

    assert [[e.event_id for e in r.events] for r in runs] == [[30], [32]]
    assert [r.acting for r in runs] == [[0], [1]]


def test_runs_the_orchestrator_does_not_act_on_are_left_out() -> None:
    stored = [[event(4, 41, 40, "call.done")], [event(4, 42, 41, "step.exit")]]
    assert advance_runs(stored, ADVANCE_TYPES) == []


def test_a_run_with_an_actor_carries_its_other_events_along() -> None:
    stored = [[event(5, 51, 50, "call.done")], [event(5, 52, 51, "command.heartbeat")]]
    (run,) = advance_runs(stored, ADVANCE_TYPES)

    assert [e.event_id for e in run.events] == [51, 52]
    assert run.acting == [1]  # only the heartbeat's item shares an Advance failure


def test_the_commands_a_run_generates_are_credited_to_its_last_completion() -> None:
    stored = [
        [event(6, 61, 60, "command.started")],
        [event(6, 62, 61, "command.completed")],
        [event(6, 63, 62, "command.heartbeat")],
    ]
    (run,) = advance_runs(stored, ADVANCE_TYPES)
    assert run.credited == 1

    (started_only,) = advance_runs(stored[:1], ADVANCE_TYPES)
    assert started_only.credited == 0
