"""SQL of the event context: appends to noetl.event and enqueues noetl.outbox rows.

Appends run under a per-execution advisory lock, which is what makes the `prev_event_id`
chain gap-free and lets one transaction decide idempotency and the single terminal event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from services.common.db import Connection
from services.common.errors import FailedPrecondition, NotFound
from services.common.timeutil import as_utc, rfc3339, utcnow
from services.events.normalize import TERMINAL_TYPES


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


_SELECT = (
    "SELECT event_id, execution_id, catalog_id, parent_event_id, prev_event_id, parent_execution_id, event_type, "
    "node_id, node_name, node_type, status, created_at, context::text, result::text, meta::text, error, worker_id, "
    "command_id, duration FROM noetl.event"
)
_HEAD = (
    "SELECT event_id, catalog_id, parent_execution_id FROM noetl.event WHERE execution_id = $1 "
    "ORDER BY event_id DESC LIMIT 1"
)
_FIRST_TERMINAL = (
    "SELECT event_id FROM noetl.event WHERE execution_id = $1 AND event_type = ANY($2::text[]) "
    "ORDER BY event_id LIMIT 1"
)
_INSERT_EVENTS = """
INSERT INTO noetl.event (execution_id, event_id, catalog_id, parent_event_id, parent_execution_id, prev_event_id,
    created_at, event_type, node_id, node_name, node_type, status, context, result, meta, error, worker_id,
    command_id, idempotency_key)
SELECT $1, e.event_id, $2, e.parent_event_id, $3, e.prev_event_id, e.created_at, e.event_type, e.node_name,
    e.node_name, e.node_type, e.status, e.context::jsonb, e.result::jsonb, e.meta::jsonb, e.error, e.worker_id,
    e.command_id, e.idempotency_key
FROM unnest($4::bigint[], $5::bigint[], $6::bigint[], $7::timestamp[], $8::text[], $9::text[], $10::text[],
    $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::bigint[], $18::text[])
    AS e(event_id, parent_event_id, prev_event_id, created_at, event_type, node_name, node_type, status, context,
         result, meta, error, worker_id, command_id, idempotency_key)
"""
# Rows are enqueued already IN_FLIGHT with attempts 1: the writer's post-commit relay holds the
# lease, and the outbox publisher only takes them over if that lease expires or a failure is marked.
_INSERT_OUTBOX = """
INSERT INTO noetl.outbox (execution_id, event_id, subject, payload, payload_codec, status, attempts, locked_at)
SELECT $1, o.event_id, o.subject, o.payload::jsonb, 'json', 'IN_FLIGHT', 1, now()
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS o(event_id, subject, payload)
ON CONFLICT (execution_id, event_id, subject) DO NOTHING
RETURNING outbox_id, event_id, subject, payload::text
"""


def _stored(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        event_id=row[0],
        execution_id=row[1],
        catalog_id=row[2],
        parent_event_id=row[3],
        prev_event_id=row[4],
        parent_execution_id=row[5],
        event_type=row[6],
        node_id=row[7],
        node_name=row[8],
        node_type=row[9],
        status=row[10],
        created_at=as_utc(row[11]),
        context=row[12],
        result=row[13],
        meta=row[14],
        error=row[15],
        worker_id=row[16],
        command_id=row[17],
        duration=row[18],
    )


def stream_payload(event: StoredEvent) -> str:
    """The stream form of an event (data-model.md §11.2), built around the stored JSON text."""
    scalars = orjson.dumps(
        {
            "event_id": event.event_id,
            "execution_id": event.execution_id,
            "catalog_id": event.catalog_id,
            "event_type": event.event_type,
            "status": event.status,
            "created_at": rfc3339(event.created_at),
            "node_id": event.node_id,
            "node_name": event.node_name,
            "node_type": event.node_type,
            "parent_event_id": event.parent_event_id,
            "prev_event_id": event.prev_event_id,
            "parent_execution_id": event.parent_execution_id,
        }
    ).decode()
    tail = orjson.dumps({"error": event.error, "worker_id": event.worker_id}).decode()
    return (
        f'{scalars[:-1]},"context":{event.context or "null"},"result":{event.result or "null"},'
        f'"meta":{event.meta or "null"},{tail[1:]}'
    )


def _identity(draft: Draft) -> tuple[str, str, int] | str | None:
    """What makes two drafts the same event: their idempotency key or worker identity."""
    if draft.idempotency_key:
        return draft.idempotency_key
    if draft.worker_dedupe and draft.command_id is not None:
        return (draft.event_type, draft.node_name, draft.command_id)
    return None


class EventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append(
        self,
        execution_id: int,
        drafts: Sequence[Draft],
        *,
        catalog_id: int | None,
        parent_execution_id: int | None,
        require_open: bool,
        mint: Callable[[], int],
        mirror_subject: str | None,
    ) -> AppendOutcome:
        """Appends drafts in order, linking each to the chain head.

        Raises:
            NotFound: the execution has no events and no catalog_id was given to start it.
            FailedPrecondition: `require_open` and the execution already has a terminal event.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", execution_id)
            head = await conn.fetchrow(_HEAD, execution_id)
            if head is None:
                if catalog_id is None:
                    raise NotFound(f"Execution {execution_id} not found")
                head_id: int | None = None
            else:
                head_id, catalog_id, parent_execution_id = head[0], head[1], head[2]
            assert catalog_id is not None
            terminal_id: int | None = None
            if head is not None and (require_open or any(d.event_type in TERMINAL_TYPES for d in drafts)):
                terminal_id = await conn.fetchval(_FIRST_TERMINAL, execution_id, list(TERMINAL_TYPES))
            if require_open and terminal_id is not None:
                raise FailedPrecondition(
                    {"code": "already_terminal", "message": "Execution already reached terminal state"}
                )
            existing = await self._existing(conn, execution_id, drafts)
            outcome = AppendOutcome()
            rows: list[tuple[Any, ...]] = []
            now = utcnow().replace(tzinfo=None)
            in_batch: dict[tuple[str, str, int] | str, int] = {}
            for index, draft in enumerate(drafts):
                ident = _identity(draft)
                known = existing.get(index)
                if known is None and ident is not None:
                    known = in_batch.get(ident)
                if known is None and draft.event_type in TERMINAL_TYPES and terminal_id is not None:
                    known = terminal_id
                    outcome.terminal_suppressed += 1
                if known is not None:
                    outcome.event_ids.append(known)
                    outcome.duplicates.append(True)
                    continue
                event_id = (
                    draft.explicit_id if draft.explicit_id is not None else self._mint_after(mint, head_id)
                )
                meta = dict(draft.meta) if draft.meta is not None else None
                if meta is not None and draft.stamp_persisted_id:
                    meta["persisted_event_id"] = event_id
                meta_text = orjson.dumps(meta).decode() if meta is not None else None
                rows.append((event_id, draft, head_id, now, meta_text))
                if draft.event_type in TERMINAL_TYPES:
                    terminal_id = event_id
                if ident is not None:
                    in_batch[ident] = event_id
                head_id = event_id
                outcome.event_ids.append(event_id)
                outcome.duplicates.append(False)
            if rows:
                await self._insert(conn, execution_id, catalog_id, parent_execution_id, rows)
                outcome.stored = [
                    StoredEvent(
                        event_id=event_id,
                        execution_id=execution_id,
                        catalog_id=catalog_id,
                        parent_event_id=draft.parent_event_id,
                        prev_event_id=prev,
                        parent_execution_id=parent_execution_id,
                        event_type=draft.event_type,
                        node_id=draft.node_name,
                        node_name=draft.node_name,
                        node_type=draft.node_type,
                        status=draft.status,
                        created_at=created.replace(tzinfo=UTC),
                        context=draft.context,
                        result=draft.result,
                        meta=meta_text,
                        error=draft.error,
                        worker_id=draft.worker_id,
                        command_id=draft.command_id,
                        duration=None,
                    )
                    for event_id, draft, prev, created, meta_text in rows
                ]
                outcome.outbox = await self._enqueue(conn, execution_id, outcome.stored, rows, mirror_subject)
        return outcome

    @staticmethod
    def _mint_after(mint: Callable[[], int], head_id: int | None) -> int:
        event_id = mint()
        while head_id is not None and event_id <= head_id:
            event_id = mint()
        return event_id

    @staticmethod
    async def _existing(conn: Connection, execution_id: int, drafts: Sequence[Draft]) -> dict[int, int]:
        """Index of each draft that is already stored → the stored event id."""
        found: dict[int, int] = {}
        explicit = [d.explicit_id for d in drafts if d.explicit_id is not None]
        keys = [d.idempotency_key for d in drafts if d.idempotency_key]
        worker = [d for d in drafts if d.worker_dedupe and d.command_id is not None]
        by_id: set[int] = set()
        by_key: dict[str, int] = {}
        by_worker: dict[tuple[str, str, int], int] = {}
        if explicit:
            rows = await conn.fetch(
                "SELECT event_id FROM noetl.event WHERE execution_id = $1 AND event_id = ANY($2::bigint[])",
                execution_id,
                explicit,
            )
            by_id = {row[0] for row in rows}
        if keys:
            rows = await conn.fetch(
                "SELECT idempotency_key, min(event_id) FROM noetl.event WHERE execution_id = $1 "
                "AND idempotency_key = ANY($2::text[]) GROUP BY 1",
                execution_id,
                keys,
            )
            by_key = {row[0]: row[1] for row in rows}
        if worker:
            rows = await conn.fetch(
                "SELECT event_type, node_name, command_id, min(event_id) FROM noetl.event WHERE execution_id = $1 "
                "AND command_id = ANY($2::bigint[]) AND event_type = ANY($3::text[]) GROUP BY 1, 2, 3",
                execution_id,
                [d.command_id for d in worker],
                list({d.event_type for d in worker}),
            )
            by_worker = {(row[0], row[1], row[2]): row[3] for row in rows}
        for index, draft in enumerate(drafts):
            if draft.explicit_id is not None and draft.explicit_id in by_id:
                found[index] = draft.explicit_id
            elif draft.idempotency_key and draft.idempotency_key in by_key:
                found[index] = by_key[draft.idempotency_key]
            elif draft.worker_dedupe and draft.command_id is not None:
                known = by_worker.get((draft.event_type, draft.node_name, draft.command_id))
                if known is not None:
                    found[index] = known
        return found

    @staticmethod
    async def _insert(
        conn: Connection,
        execution_id: int,
        catalog_id: int,
        parent_execution_id: int | None,
        rows: list[tuple[int, Draft, int | None, datetime, str | None]],
    ) -> None:
        await conn.execute(
            _INSERT_EVENTS,
            execution_id,
            catalog_id,
            parent_execution_id,
            [r[0] for r in rows],
            [r[1].parent_event_id for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[1].event_type for r in rows],
            [r[1].node_name for r in rows],
            [r[1].node_type for r in rows],
            [r[1].status for r in rows],
            [r[1].context for r in rows],
            [r[1].result for r in rows],
            [r[4] for r in rows],
            [r[1].error for r in rows],
            [r[1].worker_id for r in rows],
            [r[1].command_id for r in rows],
            [r[1].idempotency_key for r in rows],
        )

    @staticmethod
    async def _enqueue(
        conn: Connection,
        execution_id: int,
        stored: list[StoredEvent],
        rows: list[tuple[int, Draft, int | None, datetime, str | None]],
        mirror_subject: str | None,
    ) -> list[OutboxEntry]:
        event_ids: list[int] = []
        subjects: list[str] = []
        payloads: list[str] = []
        for event, (_, draft, *_rest) in zip(stored, rows, strict=True):
            if mirror_subject is not None:
                event_ids.append(event.event_id)
                subjects.append(mirror_subject)
                payloads.append(stream_payload(event))
            if draft.notify is not None:
                event_ids.append(event.event_id)
                subjects.append(draft.notify.subject)
                payloads.append(orjson.dumps({**draft.notify.payload, "event_id": event.event_id}).decode())
        if not event_ids:
            return []
        result = await conn.fetch(_INSERT_OUTBOX, execution_id, event_ids, subjects, payloads)
        return [OutboxEntry(row[0], row[1], execution_id, row[2], row[3]) for row in result]

    async def list(
        self,
        execution_id: int,
        *,
        after_event_id: int | None = None,
        event_type: str | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[StoredEvent]:
        clauses = ["execution_id = $1"]
        args: list[Any] = [execution_id]
        if after_event_id is not None:
            args.append(after_event_id)
            clauses.append(f"event_id > ${len(args)}")
        if event_type:
            args.append(event_type)
            clauses.append(f"event_type = ${len(args)}")
        order = "DESC" if newest_first else "ASC"
        sql = f"{_SELECT} WHERE {' AND '.join(clauses)} ORDER BY event_id {order}"
        if limit is not None:
            args.extend([limit, offset])
            sql += f" LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        return [_stored(row) for row in await self._pool.fetch(sql, *args)]

    async def count(self, execution_id: int, *, after_event_id: int | None, event_type: str | None) -> int:
        clauses = ["execution_id = $1"]
        args: list[Any] = [execution_id]
        if after_event_id is not None:
            args.append(after_event_id)
            clauses.append(f"event_id > ${len(args)}")
        if event_type:
            args.append(event_type)
            clauses.append(f"event_type = ${len(args)}")
        value = await self._pool.fetchval(
            f"SELECT count(*) FROM noetl.event WHERE {' AND '.join(clauses)}", *args
        )
        return int(value)
