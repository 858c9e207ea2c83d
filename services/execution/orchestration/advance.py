"""What `ExecutionService.Advance` does with the lifecycle events it is handed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from services.execution.commands.lifecycle import LifecycleEvent, LifecycleWriter, updates_for
from services.execution.orchestration.orchestrator import TRIGGERS, Orchestrator
from services.execution.ports import Appended


@dataclass(frozen=True, slots=True)
class AdvanceInput:
    execution_id: int
    events: Sequence[LifecycleEvent]
    committed: Appended  # the same events as stored, so a pass folds them without a log read


async def advance(orchestrator: Orchestrator, lifecycle: LifecycleWriter, request: AdvanceInput) -> int:
    """Projects the events onto command rows and, for a command's completion, runs one pass;
    returns how many commands the pass issued."""
    updates = updates_for(request.events)
    trigger_types = [event.event_type for event in request.events]
    if not any(kind in TRIGGERS for kind in trigger_types):
        # Heartbeats and starts change command rows only: no pass, nothing to fold.
        await lifecycle.apply(request.execution_id, updates)
        return 0
    # The command rows' projection and the pass do not depend on each other: the pass folds
    # the events themselves, and a new command's claim reads only its own row. Side by side,
    # the projection's round trip is off the path from a completion to the next command.
    _, issued = await asyncio.gather(
        lifecycle.apply(request.execution_id, updates),
        orchestrator.advance(request.execution_id, trigger_types, request.committed),
    )
    return issued
