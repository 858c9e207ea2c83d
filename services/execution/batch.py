"""Starting many executions in one call (http-api.md §4.2): every item on its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common import jsonutil
from services.common.errors import MeshError
from services.execution.orchestrator import Orchestrator, StartInput


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """An item's execution, or the error detail the single `Start` would have answered."""

    execution_id: int | None
    commands_generated: int
    error: str | None


async def start_each(orchestrator: Orchestrator, items: Sequence[StartInput]) -> list[ItemOutcome]:
    """One outcome per item, in item order. An item that fails does not stop the others; an
    unexpected error (not a `MeshError`) does, as it would fail a single start."""
    outcomes = []
    for item in items:
        try:
            execution_id, issued = await orchestrator.start(item)
        except MeshError as exc:
            detail = exc.detail if isinstance(exc.detail, str) else jsonutil.dumps(exc.detail).decode()
            outcomes.append(ItemOutcome(None, 0, detail))
        else:
            outcomes.append(ItemOutcome(execution_id, issued, None))
    return outcomes
