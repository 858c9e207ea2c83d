"""Status derivation of dsl.md §15 and `duration_human` of http-api.md §13.2."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from services.execution.engine.records import EventRecord
from services.execution.engine.status import duration_human, fold


def log(*rows: tuple[str, str, str]) -> list[EventRecord]:
    """Events with increasing ids from (event_type, node_name, status) triples."""
    return [
        EventRecord(
            event_id=100 + index,
            event_type=event_type,
            node_name=node,
            status=status,
            context=None,
            result=None,
            meta=None,
            error=None,
            command_id=None,
            created_at=datetime(2026, 8, 19, tzinfo=UTC),
        )
        for index, (event_type, node, status) in enumerate(rows)
    ]


INIT = ("playbook.initialized", "p", "STARTED")
ISSUED_A = ("command.issued", "a", "PENDING")
DONE_A = ("command.completed", "a", "COMPLETED")
EXIT_A = ("step.exit", "a", "COMPLETED")
FAILED_A = ("command.failed", "a", "FAILED")
EXIT_END = ("step.exit", "end", "COMPLETED")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([INIT], "RUNNING"),
        ([INIT, ISSUED_A, EXIT_A, DONE_A], "RUNNING"),
        ([INIT, ISSUED_A, DONE_A, ("playbook.completed", "p", "COMPLETED")], "COMPLETED"),
        ([INIT, ISSUED_A, FAILED_A], "FAILED"),
        ([INIT, ISSUED_A, FAILED_A, ("playbook.completed", "p", "COMPLETED")], "COMPLETED"),
        ([INIT, FAILED_A, ("playbook.failed", "p", "FAILED")], "FAILED"),
        ([INIT, ("execution.cancelled", "cancel", "CANCELLED")], "CANCELLED"),
        (
            [INIT, ("execution.cancelled", "cancel", "CANCELLED"), ("step.exit", "a", "COMPLETED")],
            "CANCELLED",
        ),
        ([INIT, ("playbook_failed", "p", "FAILED")], "FAILED"),
        ([INIT, ("workflow.completed", "workflow", "COMPLETED")], "COMPLETED"),
        ([INIT, EXIT_END], "COMPLETED"),
        ([INIT, ("call.done", "end", "COMPLETED")], "COMPLETED"),
        ([INIT, ("command.completed", "end", "FAILED")], "RUNNING"),
        ([INIT, EXIT_END, ("command.started", "x", "RUNNING")], "RUNNING"),
    ],
)
def test_execution_status(rows: list[tuple[str, str, str]], expected: str) -> None:
    events = log(*rows)
    assert fold(events).status() == expected
    shuffled = list(events)
    random.Random(1).shuffle(shuffled)
    assert fold(shuffled).status() == expected
    assert fold(list(reversed(events))).status() == expected


@pytest.mark.parametrize(
    ("rows", "open_commands", "completed", "failed", "inferred"),
    [
        ([INIT, ("playbook.completed", "p", "COMPLETED")], False, True, False, False),
        ([INIT, ("playbook.failed", "p", "FAILED")], False, False, True, False),
        ([INIT, FAILED_A], True, False, True, False),
        ([INIT, ("execution.cancelled", "cancel", "CANCELLED")], False, True, False, False),
        ([INIT, ISSUED_A, DONE_A], False, True, False, True),
        ([INIT, ISSUED_A, DONE_A], True, False, False, False),
        ([INIT, ISSUED_A], False, False, False, False),
    ],
)
def test_status_flags(
    rows: list[tuple[str, str, str]], open_commands: bool, completed: bool, failed: bool, inferred: bool
) -> None:
    flags = fold(log(*rows)).flags(has_open_commands=open_commands)
    assert (flags.completed, flags.failed, flags.completion_inferred) == (completed, failed, inferred)


def test_completed_steps_and_current_step() -> None:
    events = log(
        INIT,
        ("workflow.initialized", "workflow", "STARTED"),
        ("step.exit", "start", "COMPLETED"),
        ("step.exit", "run:task_sequence", "COMPLETED"),
        ("loop.done", "each", "COMPLETED"),
        ("step.exit", "start", "COMPLETED"),
        ("step.exit", "bad", "FAILED"),
        ("command.issued", "end", "PENDING"),
        ("playbook.completed", "p", "COMPLETED"),
    )
    flags = fold(list(reversed(events))).flags(has_open_commands=False)
    assert flags.completed_steps == ("start", "each")
    assert flags.current_step == "end"
    assert fold(log(INIT)).flags(has_open_commands=False).current_step is None


def test_a_final_event_is_final_whatever_arrives_later() -> None:
    """§15.1 rule 0: a late worker `command.failed` after the cancel never reads FAILED."""
    events = log(INIT, ("execution.cancelled", "p", "CANCELLED"), FAILED_A)
    assert fold(events).status() == "CANCELLED"
    flags = fold(events).flags(has_open_commands=False)
    assert (flags.completed, flags.failed) == (True, False)
    done = log(INIT, ("playbook.completed", "p", "COMPLETED"), FAILED_A)
    assert fold(done).status() == "COMPLETED"


def test_terminal_event_is_the_newest_of_the_terminal_set() -> None:
    events = log(INIT, FAILED_A, ("playbook.completed", "p", "COMPLETED"), EXIT_A)
    found = fold(events).terminal
    assert found is not None and found.event_type == "playbook.completed"
    assert fold(log(INIT, EXIT_A)).terminal is None


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (1.377, "1s"),
        (60, "1m"),
        (61, "1m 1s"),
        (3600, "1h"),
        (93784, "1d 2h 3m 4s"),
        (86400 + 5, "1d 5s"),
        (-3, "0s"),
    ],
)
def test_duration_human(seconds: float, expected: str) -> None:
    assert duration_human(seconds) == expected


@pytest.mark.parametrize(
    "rows",
    [
        [INIT],
        [INIT, ISSUED_A],
        [INIT, ISSUED_A, DONE_A],
        [INIT, ISSUED_A, EXIT_A],
        [INIT, ISSUED_A, ("call.done", "a", "COMPLETED")],
        [INIT, ISSUED_A, ("call.done", "a", "FAILED")],
        [INIT, ISSUED_A, FAILED_A],
        [INIT, ISSUED_A, DONE_A, ("playbook.completed", "p", "COMPLETED")],
        [INIT, ("execution.cancelled", "cancel", "CANCELLED"), DONE_A],
        [INIT, ISSUED_A, DONE_A, ("step.enter", "b", "RUNNING")],
    ],
)
def test_the_open_count_is_read_only_where_it_can_change_the_flags(rows: list[tuple[str, str, str]]) -> None:
    """`Queries.status` skips the open-command query unless `completion_inferable`: that must be
    exactly the logs whose flags the count decides."""
    folded = fold(log(*rows))
    decides = folded.flags(has_open_commands=True) != folded.flags(has_open_commands=False)
    assert folded.completion_inferable == decides
