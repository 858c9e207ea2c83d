"""The projector writes a fact once on the normal path: what the fast path (a pass, a claim)
wrote already costs its feed copy nothing, and a claim that never committed leaves the
projection to the feed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from services.execution.lifecycle import LifecycleWriter
from services.execution.ports import EventsPort, LogEvent
from services.execution.projector import Projector
from services.execution.store import ExecutionStore, LifecycleUpdate, NewCommandRow


class FakeStore:
    def __init__(self) -> None:
        self.commands: list[int] = []

    async def ensure_commands(
        self, execution_id: int, catalog_id: int, parent: int | None, rows: Sequence[NewCommandRow]
    ) -> int:
        self.commands += [row.command_id for row in rows]
        return len(rows)


class FakeLifecycle:
    def __init__(self) -> None:
        self.updates: list[tuple[int, str | None]] = []

    async def apply(self, execution_id: int, updates: Sequence[LifecycleUpdate]) -> None:
        self.updates += [(u.command_id, u.status) for u in updates]


def event(event_id: int, kind: str, command_id: int = 9) -> LogEvent:
    return LogEvent(
        event_id=event_id,
        execution_id=77,
        catalog_id=5,
        parent_execution_id=None,
        prev_event_id=event_id - 1,
        event_type=kind,
        node_name="step_a",
        node_type="python",
        status=None,
        context={},
        meta={},
        error=None,
        worker_id="w1",
        command_id=command_id,
        created_at=None,
    )


def projector() -> tuple[Projector, FakeStore, FakeLifecycle]:
    store, lifecycle = FakeStore(), FakeLifecycle()
    events = cast(EventsPort, object())
    return Projector(cast(ExecutionStore, store), events, cast(LifecycleWriter, lifecycle)), store, lifecycle


async def test_what_the_fast_path_wrote_is_not_written_again() -> None:
    found, store, lifecycle = projector()
    found.written([101, 102])
    await found.observe(77, [event(101, "command.issued"), event(102, "command.started")])
    assert (store.commands, lifecycle.updates) == ([], [])
    await found.observe(77, [event(103, "command.completed")])
    assert lifecycle.updates == [(9, "COMPLETED")]


async def test_the_feed_waits_for_an_open_claim_and_skips_what_it_committed() -> None:
    found, _, lifecycle = projector()
    async with found.claiming(9):
        observed = asyncio.create_task(found.observe(77, [event(102, "command.started")]))
        await asyncio.sleep(0.01)
        assert not observed.done()
        found.written([101, 102])
    await observed
    assert lifecycle.updates == []


async def test_a_claim_that_did_not_commit_leaves_the_projection_to_the_feed() -> None:
    found, _, lifecycle = projector()
    try:
        async with found.claiming(9):
            observed = asyncio.create_task(found.observe(77, [event(102, "command.started")]))
            await asyncio.sleep(0.01)
            raise RuntimeError("the claim transaction failed")
    except RuntimeError:
        pass
    await observed
    assert lifecycle.updates == [(9, "RUNNING")]
