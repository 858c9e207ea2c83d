"""`ExecutionService.Advance`'s domain (services/execution/orchestration/advance.py): command rows
are always projected; a pass runs only for a command's completion or failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from language.event_types import EventType
from services.execution.commands.lifecycle import LifecycleEvent, LifecycleUpdate, LifecycleWriter
from services.execution.commands.status import COMPLETED
from services.execution.orchestration.advance import AdvanceInput, advance
from services.execution.orchestration.orchestrator import Orchestrator
from services.execution.ports import Appended


class Rows:
    def __init__(self) -> None:
        self.applied: list[tuple[int, list[LifecycleUpdate]]] = []

    async def apply(self, execution_id: int, updates: Sequence[LifecycleUpdate]) -> None:
        self.applied.append((execution_id, list(updates)))


class Passes:
    def __init__(self) -> None:
        self.runs: list[tuple[int, list[str], Appended | None]] = []

    async def advance(
        self, execution_id: int, trigger_types: Sequence[str], committed: Appended | None
    ) -> int:
        self.runs.append((execution_id, list(trigger_types), committed))
        return 2


def _request(*kinds: str) -> AdvanceInput:
    events = [LifecycleEvent(10 + i, kind, 7, "w1", None) for i, kind in enumerate(kinds)]
    return AdvanceInput(1, events, Appended(event_ids=[e.event_id for e in events], stored=[], linked_to=9))


async def _advance(request: AdvanceInput) -> tuple[int, Rows, Passes]:
    rows, passes = Rows(), Passes()
    issued = await advance(cast(Orchestrator, passes), cast(LifecycleWriter, rows), request)
    return issued, rows, passes


async def test_heartbeats_and_starts_project_the_rows_and_skip_the_pass() -> None:
    issued, rows, passes = await _advance(_request(EventType.COMMAND_STARTED, EventType.COMMAND_HEARTBEAT))
    assert issued == 0
    assert passes.runs == []
    assert [len(updates) for _, updates in rows.applied] == [2]


async def test_a_completion_projects_the_rows_and_runs_one_pass_over_the_committed_events() -> None:
    request = _request(EventType.COMMAND_HEARTBEAT, EventType.COMMAND_COMPLETED)
    issued, rows, passes = await _advance(request)
    assert issued == 2
    assert passes.runs == [(1, [EventType.COMMAND_HEARTBEAT, EventType.COMMAND_COMPLETED], request.committed)]
    ((execution_id, updates),) = rows.applied
    assert execution_id == 1
    assert [u.status for u in updates] == [None, COMPLETED]
