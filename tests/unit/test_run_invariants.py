"""The e2e invariant checker (tests/helpers/invariants.py) catches what it claims to catch."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.helpers.invariants import LoggedEvent, violations


def linear_log() -> list[LoggedEvent]:
    """A sound `start → end` log: ids 1.., each linked to the one before."""
    rows: list[tuple[str, str | None, int | None, Any]] = [
        ("playbook.initialized", "p", None, None),
        ("workflow.initialized", "workflow", None, None),
        ("command.issued", "start", 100, None),
        ("command.claimed", "start", 100, None),
        ("call.done", "start", 100, None),
        ("command.completed", "start", 100, None),
        ("step.enter", "end", None, None),
        ("command.issued", "end", 101, None),
        ("command.completed", "end", 101, None),
        ("playbook.completed", "p", None, {"status": "COMPLETED", "final_step": "end"}),
    ]
    return [
        LoggedEvent(i, i - 1 if i > 1 else None, kind, node, command_id, context)
        for i, (kind, node, command_id, context) in enumerate(rows, start=1)
    ]


def relinked(log: list[LoggedEvent]) -> list[LoggedEvent]:
    return [
        dataclasses.replace(e, event_id=i, prev_event_id=i - 1 if i > 1 else None)
        for i, e in enumerate(log, 1)
    ]


def test_a_sound_log_has_no_violations() -> None:
    assert violations(linear_log()) == []


def test_a_broken_chain_is_reported() -> None:
    log = linear_log()
    log[4] = dataclasses.replace(log[4], prev_event_id=2)
    assert any("prev_event_id 2, expected 4" in p for p in violations(log))


def test_a_second_root_is_reported() -> None:
    log = linear_log()
    log[1] = dataclasses.replace(log[1], event_type="playbook.initialized")
    assert "expected exactly one playbook.initialized, found 2" in violations(log)


def test_a_missing_or_extra_terminal_event_is_reported() -> None:
    assert any("exactly one terminal" in p for p in violations(linear_log()[:-1]))
    doubled = relinked([*linear_log(), linear_log()[-1]])
    assert any("exactly one terminal" in p for p in violations(doubled))


def test_an_event_after_the_terminal_one_is_reported_unless_ended_from_outside() -> None:
    late = relinked([*linear_log(), LoggedEvent(0, None, "command.heartbeat", "end", 101, None)])
    assert any("followed by command.heartbeat" in p for p in violations(late))
    assert violations(late, self_ended=False) == []


def test_a_command_without_its_end_is_reported() -> None:
    log = relinked(
        [e for e in linear_log() if not (e.event_type == "command.completed" and e.node_name == "end")]
    )
    assert any("command 101 (end) has 0" in p for p in violations(log))


def test_a_failed_run_must_name_its_failed_step() -> None:
    log = linear_log()
    log[8] = dataclasses.replace(log[8], event_type="command.failed")
    log[9] = dataclasses.replace(log[9], event_type="playbook.failed", context={"status": "FAILED"})
    assert any("does not name its failed steps" in p for p in violations(log))

    log[9] = dataclasses.replace(log[9], context={"status": "FAILED", "failed_steps": ["end"]})
    assert violations(log) == []


def test_completing_despite_a_failed_command_needs_a_handler() -> None:
    log = linear_log()
    log[8] = dataclasses.replace(log[8], event_type="command.failed")
    assert any("playbook.completed although ['end'] failed" in p for p in violations(log))
    assert violations(log, handled_failures=True) == []


def loop_log(issued: int, done: int, expected: int = 2) -> list[LoggedEvent]:
    """start → a loop step `each` over `expected` items with `issued` commands and `done` loop.done."""
    rows: list[tuple[str, str | None, int | None, Any]] = [
        ("playbook.initialized", "p", None, None),
        ("workflow.initialized", "workflow", None, None),
        ("step.enter", "each", None, {"iterations_expected": expected, "iterator_var": "x"}),
    ]
    for n in range(issued):
        rows += [("command.issued", "each", 200 + n, None), ("command.completed", "each", 200 + n, None)]
    rows += [("loop.done", "each", None, None)] * done
    rows.append(("playbook.completed", "p", None, {"status": "COMPLETED", "final_step": "each"}))
    return [
        LoggedEvent(i, i - 1 if i > 1 else None, kind, node, command_id, context)
        for i, (kind, node, command_id, context) in enumerate(rows, start=1)
    ]


def test_a_completed_loop_has_one_command_per_item_and_one_loop_done() -> None:
    assert violations(loop_log(2, 1)) == []
    assert any("issued 1 distinct commands and wrote 1 loop.done" in p for p in violations(loop_log(1, 1)))
    assert any("issued 3 distinct commands" in p for p in violations(loop_log(3, 1)))
    assert any("wrote 0 loop.done" in p for p in violations(loop_log(2, 0)))
    assert violations(loop_log(0, 1, expected=0)) == []
