"""What the execution context needs from other contexts, as small protocols.

Adapters over gRPC live in `clients.py`; tests of pure logic can pass simple objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.execution.engine.records import EventRecord, NewEvent


@dataclass(frozen=True, slots=True)
class PlaybookEntry:
    catalog_id: int
    path: str
    version: int
    kind: str
    document: Any


@dataclass(frozen=True, slots=True)
class Notification:
    subject: str
    payload: dict[str, Any]


class CatalogPort(Protocol):
    async def resolve(
        self, *, path: str | None, catalog_id: int | None, version: int | None
    ) -> PlaybookEntry:
        """Raises NotFound when nothing matches."""
        ...


class EventsPort(Protocol):
    async def append(
        self,
        execution_id: int,
        events: Sequence[NewEvent],
        *,
        catalog_id: int,
        parent_execution_id: int | None,
        notifications: Mapping[int, Notification],
        require_open: bool,
    ) -> list[int]:
        """Event ids in order. Raises FailedPrecondition when `require_open` and the run is closed."""
        ...

    async def since(self, execution_id: int, after_event_id: int | None) -> list[EventRecord]:
        """Every event after the cursor, oldest first."""
        ...
