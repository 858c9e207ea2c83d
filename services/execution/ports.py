"""What the execution context needs from other contexts, as small protocols.

Adapters over gRPC live in `clients.py`; tests of pure logic can pass simple objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from language.event_types import canonical_event_type
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


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One stored event as projections need it, whichever way it arrived (feed or log read)."""

    event_id: int
    execution_id: int
    catalog_id: int
    parent_execution_id: int | None
    prev_event_id: int | None
    event_type: str
    node_name: str | None
    node_type: str | None
    status: str | None
    context: Any
    meta: Any
    error: str | None
    worker_id: str | None
    command_id: int | None
    created_at: datetime | None

    @property
    def kind(self) -> str:
        return canonical_event_type(self.event_type)


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

    async def count(self, execution_id: int, event_type: str) -> int:
        """How many events of that type the execution's log holds."""
        ...

    def pages(self, execution_id: int, event_type: str) -> AsyncIterator[list[LogEvent]]:
        """The execution's events of that type, oldest first, a bounded page at a time."""
        ...

    async def one(self, execution_id: int, event_id: int) -> LogEvent | None:
        """One event by id; None when the log has no such event."""
        ...


class FamilyPort(Protocol):
    """Parents and children on every shard: a child runs on whichever shard started it."""

    async def children(self, parent_ids: Sequence[int]) -> list[tuple[int, bool]]:
        """(execution_id, running) of every direct child of `parent_ids`, on any shard, in id order."""
        ...

    async def cancel_member(self, execution_id: int, reason: str, cascade_from: int) -> bool:
        """Cancels an execution another shard owns as a member of `cascade_from`'s cascade;
        False when it had already ended."""
        ...
