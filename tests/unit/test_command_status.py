"""The command status state machine (services/execution/commands/status.py): its table, the sets
derived from it, and the SQL of the command store, which must take its statuses from it."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from services.execution.commands import store
from services.execution.commands.lifecycle import LifecycleUpdate, fold_lifecycle
from services.execution.commands.status import (
    CLAIMED,
    HELD,
    INITIAL,
    OPEN,
    RUNNING,
    TERMINAL,
    TRANSITIONS,
    CommandStatus,
    can_move,
    sources,
    sql_list,
)

S = CommandStatus
ROOT = Path(__file__).resolve().parents[2]
# Every (from, to) the table allows; every other pair is refused.
ALLOWED = {
    (source, target)
    for source in (S.PENDING, S.CLAIMED, S.RUNNING)
    for target in (S.CLAIMED, S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED)
}
# The statuses worker lifecycle events set (None: a heartbeat).
LIFECYCLE = (None, S.RUNNING, S.COMPLETED, S.FAILED)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_every_transition_is_allowed_or_refused_as_the_table_says(source: S, target: S) -> None:
    assert can_move(source, target) == ((source, target) in ALLOWED)


def test_the_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(S)


def test_the_derived_sets() -> None:
    assert {S.COMPLETED, S.FAILED, S.CANCELLED} == TERMINAL
    assert {S.PENDING, S.CLAIMED, S.RUNNING} == OPEN
    assert INITIAL in OPEN
    assert HELD <= OPEN
    assert all(INITIAL not in moves for moves in TRANSITIONS.values())
    assert sources(CLAIMED) == sources(RUNNING) == OPEN


def test_sql_lists_follow_the_declaration_order() -> None:
    assert sql_list([S.CANCELLED, S.COMPLETED, S.FAILED]) == "'COMPLETED', 'FAILED', 'CANCELLED'"
    assert sql_list(OPEN) == "'PENDING', 'CLAIMED', 'RUNNING'"


def _guarded(row: S, target: S | None) -> S:
    """What the lifecycle statement's guard does to a row with one folded status."""
    return row if row in TERMINAL or target is None else target


def _one_by_one(row: S, statuses: tuple[S | None, ...]) -> S:
    for status in statuses:
        if status is not None and can_move(row, status):
            row = status
    return row


@pytest.mark.parametrize("row", list(S))
def test_one_folded_write_ends_where_the_updates_one_by_one_would(row: S) -> None:
    for length in (1, 2, 3):
        for statuses in itertools.product(LIFECYCLE, repeat=length):
            updates = [
                LifecycleUpdate(1, 10 + i, s, False, False, None, None) for i, s in enumerate(statuses)
            ]
            (write,) = fold_lifecycle((1, u) for u in updates)
            assert _guarded(row, write.status) == _one_by_one(row, statuses), statuses


def test_the_command_store_takes_its_statuses_from_the_table() -> None:
    assert f"status IN ({sql_list(TERMINAL)}) THEN status" in store._WRITE_LIFECYCLE
    assert f"status IN ({sql_list(OPEN)})" in store._OPEN_COMMANDS
    assert f"c.status IN ({sql_list(HELD)})" in store._OVERDUE
    assert f"c.status = '{INITIAL}'" in store._OVERDUE
    assert f"status IN ({sql_list(sources(RUNNING))})" in store._MARK_CLAIMED
    assert f"status IN ({sql_list(sources(CLAIMED))})" in store._MARK_CLAIMED
    assert f"'{INITIAL}', c.context::jsonb" in store._INSERT_COMMANDS


def test_the_command_store_spells_no_command_status_itself() -> None:
    source = (ROOT / "services/execution/commands/store.py").read_text()
    literals = re.findall(r"'(PENDING|CLAIMED|RUNNING|COMPLETED|FAILED|CANCELLED)'", source)
    # The one literal left is the execution's status, in the reaper's join.
    assert literals == ["RUNNING"]
    assert "e.status = 'RUNNING'" in source


def test_the_partial_indexes_cover_the_derived_sets() -> None:
    schema = (ROOT / "services/execution/schema.sql").read_text()
    assert f"(execution_id, status)\n    WHERE status IN ({sql_list(OPEN)})" in schema
    assert f"(lease_until) WHERE status IN ({sql_list(HELD)})" in schema
