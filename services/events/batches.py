"""Worker event batches (http-api.md §5.2): request limits and the batch record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kernel.errors import Unprocessable
from services.events.normalize import WorkerEventDraft

DEFAULT_MAX_EVENTS = 256
DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024

COMPLETED = "completed"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """`NOETL_BATCH_MAX_EVENTS_PER_REQUEST` and `NOETL_BATCH_MAX_PAYLOAD_BYTES`."""

    max_events: int = DEFAULT_MAX_EVENTS
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def check(self, payload_sizes: Sequence[int]) -> None:
        """`payload_sizes` are the encoded JSON sizes of the events' payloads, one per event.

        Raises:
            Unprocessable: no events, too many, or payloads larger than allowed together.
        """
        if not payload_sizes:
            raise Unprocessable("events must not be empty")
        if len(payload_sizes) > self.max_events:
            raise Unprocessable(
                f"events: {len(payload_sizes)} events in one batch, the limit is {self.max_events}"
            )
        total = sum(payload_sizes)
        if total > self.max_payload_bytes:
            raise Unprocessable(
                f"events[].payload: {total} bytes in one batch, the limit is {self.max_payload_bytes}"
            )


@dataclass(frozen=True, slots=True)
class EventBatch:
    """A stored batch record (`noetl.event_batch`)."""

    request_id: int
    execution_id: int
    idempotency_key: str | None
    event_ids: list[int]
    state: str
    commands_generated: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    request_id: int
    event_ids: list[int]
    commands_generated: int
    duplicate: bool


def batch_digest(events: Sequence[WorkerEventDraft], catalog_id: int | None) -> str:
    """sha256 of what a batch asks to store: a replay of its idempotency key must ask the same
    (http-api.md §5.2; docs/decisions.md), whatever the order of keys in its JSON."""
    asked = [[e.event_type, e.step, e.context, e.meta, e.command_id, e.worker_id, e.error] for e in events]
    canonical = json.dumps([catalog_id, asked], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
