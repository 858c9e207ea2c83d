"""Which `Advance` calls a group of independently stored worker events needs (EmitMany).

Pure: given the events each item of a group stored, find per execution the runs of events that
follow each other in its chain, so each run can go to the orchestrator in one call and be folded
as it is. A run breaks where another writer's event sits between two of the group's events; the
orchestrator folds a call's events only when they continue its chain without a gap.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from services.common.event_types import EventType
from services.events.chain import StoredEvent

# Completions make the orchestrator run a pass: the commands it issues are theirs.
_PASS_TYPES = frozenset({EventType.COMMAND_COMPLETED, EventType.COMMAND_FAILED})


@dataclass(slots=True)
class Run:
    execution_id: int
    events: list[StoredEvent] = field(default_factory=list)  # chain order
    # Items whose event the orchestrator acts on; an Advance failure is theirs.
    acting: list[int] = field(default_factory=list)
    last_completion: int | None = None

    @property
    def credited(self) -> int:
        """The item answered with the commands the run generated: its last completion, else its last actor."""
        return self.last_completion if self.last_completion is not None else self.acting[-1]


def advance_runs(stored: Sequence[Sequence[StoredEvent]], acts_on: Collection[str]) -> list[Run]:
    """Runs holding at least one event of a type in `acts_on`; `stored[i]` is what item i stored.

    Runs of one execution come out in chain order, and must be advanced in that order.
    """
    owner: dict[int, int] = {}
    by_execution: dict[int, list[StoredEvent]] = {}
    for index, events in enumerate(stored):
        for event in events:
            owner[event.event_id] = index
            by_execution.setdefault(event.execution_id, []).append(event)
    runs: list[Run] = []
    for execution_id, events in by_execution.items():
        events.sort(key=lambda e: e.event_id)  # ids grow with the chain (data-model.md §4.3)
        current: Run | None = None
        for event in events:
            if current is None or event.prev_event_id != current.events[-1].event_id:
                current = Run(execution_id)
                runs.append(current)
            current.events.append(event)
            if event.event_type in acts_on:
                current.acting.append(owner[event.event_id])
                if event.event_type in _PASS_TYPES:
                    current.last_completion = owner[event.event_id]
    return [run for run in runs if run.acting]
