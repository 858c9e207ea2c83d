"""Planning an append: which drafts are new, their ids and their place in the chain.

Pure: given what the log already holds for an execution (its head, its terminal event, the
events matching the drafts' identities), decide what to write. The store runs this inside the
transaction that holds the execution's lock, for every job of a group commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from kernel.errors import FailedPrecondition, NotFound
from kernel.timeutil import rfc3339
from language.event_types import WRITTEN_TERMINAL

WorkerIdentity = tuple[str, str, int]


# NATS refuses a message over its server's max_payload (1 MiB by default); this leaves room for the
# headers and for a server configured a little lower.
MIRROR_MAX_BYTES = 768 * 1024
MIRROR_TEXT_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Notify:
    subject: str
    payload: dict[str, Any]  # `event_id` is filled in with the minted id


@dataclass(slots=True)
class Draft:
    """An event about to be appended; JSON fields are already-encoded text (or None)."""

    event_type: str
    node_name: str
    status: str
    context: str | None = None
    result: str | None = None
    meta: dict[str, Any] | None = None
    node_type: str | None = None
    error: str | None = None
    command_id: int | None = None
    parent_event_id: int | None = None
    idempotency_key: str | None = None
    worker_id: str | None = None
    explicit_id: int | None = None
    worker_dedupe: bool = False
    stamp_persisted_id: bool = False
    notify: Notify | None = None

    @property
    def identity(self) -> WorkerIdentity | str | None:
        """What makes two drafts the same event: their idempotency key or worker identity."""
        if self.idempotency_key:
            return self.idempotency_key
        if self.worker_dedupe and self.command_id is not None:
            return (self.event_type, self.node_name, self.command_id)
        return None


@dataclass(frozen=True, slots=True)
class BatchIntent:
    """The record of a worker batch (http-api.md §5.2), written in the transaction of its events."""

    request_id: int
    idempotency_key: str | None  # unique per execution: a replay answers the recorded batch
    # `batches.batch_digest`: a replay asking something else is a conflict, not the recorded answer.
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class AppendJob:
    execution_id: int
    drafts: Sequence[Draft]
    catalog_id: int | None  # needed only to start a new execution (its first events)
    parent_execution_id: int | None
    require_open: bool
    mirror_subject: str | None
    batch: BatchIntent | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: int
    execution_id: int
    catalog_id: int
    parent_event_id: int | None
    prev_event_id: int | None
    parent_execution_id: int | None
    event_type: str
    node_id: str | None
    node_name: str | None
    node_type: str | None
    status: str | None
    created_at: datetime
    context: str | None
    result: str | None
    meta: str | None
    error: str | None
    worker_id: str | None
    command_id: int | None
    duration: float | None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    outbox_id: int
    event_id: int
    execution_id: int
    subject: str
    payload: str


@dataclass(slots=True)
class AppendOutcome:
    event_ids: list[int] = field(default_factory=list)
    duplicates: list[bool] = field(default_factory=list)
    stored: list[StoredEvent] = field(default_factory=list)
    outbox: list[OutboxEntry] = field(default_factory=list)
    terminal_suppressed: int = 0
    # A batch whose idempotency key was recorded already: its request_id (event_ids are its ids).
    replay_of: int | None = None


@dataclass(frozen=True, slots=True)
class Head:
    event_id: int
    catalog_id: int
    parent_execution_id: int | None


@dataclass(slots=True)
class Known:
    """What the log already holds for the drafts of one transaction, by identity."""

    ids: set[tuple[int, int]] = field(default_factory=set)
    keys: dict[tuple[int, str], int] = field(default_factory=dict)
    workers: dict[tuple[int, str, str, int], int] = field(default_factory=dict)

    def find(self, execution_id: int, draft: Draft) -> int | None:
        if draft.explicit_id is not None and (execution_id, draft.explicit_id) in self.ids:
            return draft.explicit_id
        if draft.idempotency_key:
            return self.keys.get((execution_id, draft.idempotency_key))
        if draft.worker_dedupe and draft.command_id is not None:
            return self.workers.get((execution_id, draft.event_type, draft.node_name, draft.command_id))
        return None


def plan(
    job: AppendJob,
    *,
    head: Head | None,
    terminal_id: int | None,
    known: Known,
    mint: Callable[[], int],
    now: datetime,
) -> AppendOutcome:
    """The outcome of appending `job`; `outcome.stored` are the rows to insert, linked in order.

    Raises:
        NotFound: the execution has no events and the job brings no catalog_id to start it.
        FailedPrecondition: `require_open` and the execution already has a terminal event.
    """
    if head is None and job.catalog_id is None:
        raise NotFound(f"Execution {job.execution_id} not found")
    if job.require_open and terminal_id is not None:
        raise FailedPrecondition(
            {"code": "already_terminal", "message": "Execution already reached terminal state"}
        )
    catalog_id = head.catalog_id if head is not None else job.catalog_id
    parent = head.parent_execution_id if head is not None else job.parent_execution_id
    assert catalog_id is not None
    head_id = head.event_id if head is not None else None
    outcome = AppendOutcome()
    in_batch: dict[WorkerIdentity | str, int] = {}
    for draft in job.drafts:
        identity = draft.identity
        existing = known.find(job.execution_id, draft)
        if existing is None and identity is not None:
            existing = in_batch.get(identity)
        if existing is None and draft.event_type in WRITTEN_TERMINAL and terminal_id is not None:
            existing = terminal_id  # a second terminal event is dropped (data-model.md §4.1 #5)
            outcome.terminal_suppressed += 1
        if existing is not None:
            outcome.event_ids.append(existing)
            outcome.duplicates.append(True)
            continue
        event_id = draft.explicit_id if draft.explicit_id is not None else _mint_after(mint, head_id)
        meta = dict(draft.meta) if draft.meta is not None else None
        if meta is not None and draft.stamp_persisted_id:
            meta["persisted_event_id"] = event_id
        outcome.stored.append(
            StoredEvent(
                event_id=event_id,
                execution_id=job.execution_id,
                catalog_id=catalog_id,
                parent_event_id=draft.parent_event_id,
                prev_event_id=head_id,
                parent_execution_id=parent,
                event_type=draft.event_type,
                node_id=draft.node_name,
                node_name=draft.node_name,
                node_type=draft.node_type,
                status=draft.status,
                created_at=now,
                context=draft.context,
                result=draft.result,
                meta=orjson.dumps(meta).decode() if meta is not None else None,
                error=draft.error,
                worker_id=draft.worker_id,
                command_id=draft.command_id,
                duration=None,
                idempotency_key=draft.idempotency_key,
            )
        )
        if draft.event_type in WRITTEN_TERMINAL:
            terminal_id = event_id
        if identity is not None:
            in_batch[identity] = event_id
        head_id = event_id
        outcome.event_ids.append(event_id)
        outcome.duplicates.append(False)
    return outcome


def stream_payload(event: StoredEvent) -> str:
    """The stream form of an event (data-model.md §11.2), built around the stored JSON text.

    An event whose stream form passes `MIRROR_MAX_BYTES` is mirrored by reference (docs/decisions.md):
    its `context`, `result` and `meta` are null and `mirror_omitted` says how large the event is and
    where to read it, so the publish never exceeds NATS's payload limit and dead-letters.
    """
    scalars = orjson.dumps(_scalars(event, lambda text: text)).decode()
    tail = orjson.dumps(
        {"error": event.error, "worker_id": event.worker_id, "command_id": event.command_id}
    ).decode()
    whole = (
        f'{scalars[:-1]},"context":{event.context or "null"},"result":{event.result or "null"},'
        f'"meta":{event.meta or "null"},{tail[1:]}'
    )
    # A character is at most 4 bytes in UTF-8: only a large event needs its exact size.
    if len(whole) * 4 <= MIRROR_MAX_BYTES:
        return whole
    size = len(whole.encode())
    if size <= MIRROR_MAX_BYTES:
        return whole
    reference = {
        **_scalars(event, _cut),
        "context": None,
        "result": None,
        "meta": None,
        "error": _cut(event.error),
        "worker_id": _cut(event.worker_id),
        "command_id": event.command_id,
        "mirror_omitted": {
            "bytes": size,
            "limit": MIRROR_MAX_BYTES,
            "read": f"/api/events/{event.event_id}/result",
        },
    }
    return orjson.dumps(reference).decode()


def _scalars(event: StoredEvent, text: Callable[[str | None], str | None]) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "execution_id": event.execution_id,
        "catalog_id": event.catalog_id,
        "event_type": text(event.event_type),
        "status": event.status,
        "created_at": rfc3339(event.created_at),
        "node_id": text(event.node_id),
        "node_name": text(event.node_name),
        "node_type": text(event.node_type),
        "parent_event_id": event.parent_event_id,
        "prev_event_id": event.prev_event_id,
        "parent_execution_id": event.parent_execution_id,
    }


def _cut(text: str | None) -> str | None:
    """The first part of a text in the reference form: any field a caller sets may be large."""
    if text is None or len(text) <= MIRROR_TEXT_CHARS:
        return text
    return text[:MIRROR_TEXT_CHARS] + "..."


def _mint_after(mint: Callable[[], int], head_id: int | None) -> int:
    """Ids grow with the chain: the head is never ahead of a new id (data-model.md §4.3)."""
    event_id = mint()
    while head_id is not None and event_id <= head_id:
        event_id = mint()
    return event_id
