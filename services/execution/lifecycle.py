"""Projection of worker lifecycle events onto command rows (data-model.md §5)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.execution.engine.records import EventType
from services.execution.store import LifecycleUpdate


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    event_id: int
    event_type: str
    command_id: int | None
    worker_id: str | None
    error: str | None


def updates_for(events: Iterable[LifecycleEvent]) -> list[LifecycleUpdate]:
    updates: list[LifecycleUpdate] = []
    for event in events:
        if event.command_id is None:
            continue
        kind = event.event_type
        if kind == EventType.COMMAND_STARTED:
            status, started, lease = "RUNNING", True, True
        elif kind == EventType.COMMAND_HEARTBEAT:
            status, started, lease = None, False, True
        elif kind == EventType.COMMAND_COMPLETED:
            status, started, lease = "COMPLETED", False, False
        elif kind == EventType.COMMAND_FAILED:
            status, started, lease = "FAILED", False, False
        else:
            continue
        updates.append(
            LifecycleUpdate(
                command_id=event.command_id,
                event_id=event.event_id,
                status=status,
                started=started,
                extends_lease=lease,
                worker_id=event.worker_id,
                error=event.error if kind == EventType.COMMAND_FAILED else None,
            )
        )
    return updates
