"""Starting many executions in one call (http-api.md §4.2): every item on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from kernel import jsonutil
from kernel.errors import MeshError
from services.execution.orchestration.orchestrator import Orchestrator, StartInput

# Items start this many at a time: a full batch of 1000 then takes a fraction of the caller's
# deadline (one at a time it came close to it), without taking every pooled connection at once.
CONCURRENT_STARTS = 8


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """An item's execution, or the error detail the single `Start` would have answered."""

    execution_id: int | None
    commands_generated: int
    error: str | None


async def start_each(orchestrator: Orchestrator, items: Sequence[StartInput]) -> list[ItemOutcome]:
    """One outcome per item, in item order. An item that fails does not stop the others; an
    unexpected error (not a `MeshError`) fails the call, as it would fail a single start."""
    slots = asyncio.Semaphore(CONCURRENT_STARTS)

    async def start(item: StartInput) -> ItemOutcome:
        async with slots:
            try:
                execution_id, issued = await orchestrator.start(item)
            except MeshError as exc:
                detail = exc.detail if isinstance(exc.detail, str) else jsonutil.dumps(exc.detail).decode()
                return ItemOutcome(None, 0, detail)
            return ItemOutcome(execution_id, issued, None)

    return list(await asyncio.gather(*(start(item) for item in items)))
