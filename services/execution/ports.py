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


@dataclass(frozen=True, slots=True)
class Appended:
    """What an append wrote: ids of every requested event, and the rows actually stored."""

    event_ids: list[int]
    stored: list[EventRecord]
    # The chain head the first stored event was linked to: equal to the caller's last folded id
    # when nobody else wrote in between, so `stored` can be folded without reading the log.
    linked_to: int | None


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
    ) -> Appended:
        """Raises FailedPrecondition when `require_open` and the execution is closed."""
        ...

    async def since(self, execution_id: int, after_event_id: int | None) -> list[EventRecord]:
        """Every event after the cursor, oldest first."""
        ...
