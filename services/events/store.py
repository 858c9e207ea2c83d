"""SQL of the event context: appends to noetl.event and enqueues noetl.outbox rows.

Appends run as a group commit: one transaction takes the advisory lock of every execution it
touches (in id order, so concurrent transactions never deadlock) and reads their chain heads,
terminal events and already-stored identities in one round trip (`noetl.append_lookup`), then
inserts every new event and its outbox rows in one statement. The per-execution lock is what
keeps each `prev_event_id` chain gap-free and makes idempotency and the single terminal event
one decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from kernel import failpoints
from kernel.db import Connection
from kernel.errors import Conflict, MeshError
from kernel.timeutil import as_utc, utcnow
from language.event_types import WRITTEN_TERMINAL
from services.events.batches import EventBatch
from services.events.chain import (
    AppendJob,
    AppendOutcome,
    Head,
    Known,
    OutboxEntry,
    StoredEvent,
    plan,
    stream_payload,
)
from services.events.projection import Envelope, link

_COLUMNS = (
    "SELECT event_id, execution_id, catalog_id, parent_event_id, prev_event_id, parent_execution_id, event_type, "
    "node_id, node_name, node_type, status, created_at, context::text, result::text, meta::text, error, worker_id, "
    "command_id, duration"
)
_SELECT = f"{_COLUMNS} FROM noetl.event"
# Locks, chain heads, terminal events and stored identities in one round trip: see the
# function's comment in schema.sql for why the look-ups read after the locks.
_LOOKUP = """
SELECT kind, execution_id, event_id, catalog_id, parent_execution_id, label, node_name, command_id
FROM noetl.append_lookup($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
    $7::text[], $8::bigint[], $9::text[], $10::text[], $11::bigint[])
"""
# `kind` of a `_LOOKUP` row.
_HEAD, _TERMINAL, _KNOWN_ID, _KNOWN_KEY, _KNOWN_WORKER = range(5)
_INSERT_EVENTS = """
INSERT INTO noetl.event (execution_id, event_id, catalog_id, parent_event_id, parent_execution_id, prev_event_id,
    created_at, event_type, node_id, node_name, node_type, status, context, result, meta, error, worker_id,
    command_id, idempotency_key)
SELECT e.execution_id, e.event_id, e.catalog_id, e.parent_event_id, e.parent_execution_id, e.prev_event_id,
    e.created_at, e.event_type, e.node_name, e.node_name, e.node_type, e.status, e.context::jsonb, e.result::jsonb,
    e.meta::jsonb, e.error, e.worker_id, e.command_id, e.idempotency_key
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::timestamp[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
    $16::text[], $17::bigint[], $18::text[])
    AS e(execution_id, event_id, catalog_id, parent_event_id, parent_execution_id, prev_event_id, created_at,
         event_type, node_name, node_type, status, context, result, meta, error, worker_id, command_id,
         idempotency_key)
"""
# The events and their outbox rows in one statement (one round trip of the append transaction).
# Rows are enqueued already IN_FLIGHT with attempts 1: the writer's post-commit relay holds the
# lease, and the outbox publisher only takes them over if that lease expires or a failure is marked.
_INSERT_LOGGED = f"""
WITH logged AS ({_INSERT_EVENTS})
INSERT INTO noetl.outbox (execution_id, event_id, subject, payload, payload_codec, status, attempts, locked_at)
SELECT o.execution_id, o.event_id, o.subject, o.payload::jsonb, 'json', 'IN_FLIGHT', 1, now()
FROM unnest($19::bigint[], $20::bigint[], $21::text[], $22::text[]) AS o(execution_id, event_id, subject, payload)
ON CONFLICT (execution_id, event_id, subject) DO NOTHING
RETURNING outbox_id, execution_id, event_id, subject, payload::text
"""

# Catalog delete asks which versions have execution history; EXISTS stops at the first event.
_CATALOG_USAGE = """
SELECT DISTINCT x.id FROM unnest($1::bigint[]) AS x(id)
WHERE EXISTS (SELECT 1 FROM noetl.event e WHERE e.catalog_id = x.id)
"""

# Worker batches (http-api.md §5.2): the record is written beside the batch's events, under the
# same execution lock, so a replay of its key either finds the whole batch or nothing.
_RECORDED_BATCHES = """
SELECT b.execution_id, b.idempotency_key, b.request_id, b.event_ids, b.request_digest
FROM unnest($1::bigint[], $2::text[]) AS k(execution_id, idempotency_key)
JOIN noetl.event_batch b ON b.execution_id = k.execution_id AND b.idempotency_key = k.idempotency_key
"""
_INSERT_BATCH = """
INSERT INTO noetl.event_batch
    (request_id, execution_id, idempotency_key, event_ids, created_at, updated_at, request_digest)
VALUES ($1, $2, $3, $4::bigint[], $5, $5, $6)
"""
_FINISH_BATCH = """
UPDATE noetl.event_batch SET state = $2, commands_generated = $3, error = $4, updated_at = now() AT TIME ZONE 'utc'
WHERE request_id = $1
"""
_SELECT_BATCH = """
SELECT request_id, execution_id, idempotency_key, event_ids, state, commands_generated, error, created_at, updated_at
FROM noetl.event_batch WHERE request_id = $1
"""
_EVENT_RESULT = "SELECT result::text FROM noetl.event WHERE event_id = $1 LIMIT 1"
_PARTITIONS = """
SELECT c.relname FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  JOIN pg_class p ON p.oid = i.inhparent
  JOIN pg_namespace n ON n.oid = p.relnamespace
 WHERE n.nspname = 'noetl' AND p.relname = 'event'
"""
# Index idx_event_worker_idem: (execution_id, event_type, ...) narrows it to the execution's claims.
# The claim names its worker in `meta` (services/execution/commands/claims.py).
_HAS_CLAIMED = """
SELECT EXISTS (SELECT 1 FROM noetl.event WHERE execution_id = $1 AND event_type = 'command.claimed'
    AND command_id = $2 AND meta->>'worker_id' = $3)
"""

# Projection: a trusted producer's envelopes as they are (§4.4), no outbox rows (they came from
# the stream). ON CONFLICT stays as the last guard; `link` has already dropped known events.
_INSERT_PROJECTED = """
INSERT INTO noetl.event (execution_id, event_id, catalog_id, parent_event_id, prev_event_id, created_at, event_type,
    node_id, node_name, node_type, status, duration, context, result, meta, error, stack_trace, trace_component)
SELECT e.execution_id, e.event_id, e.catalog_id, e.parent_event_id, e.prev_event_id,
    COALESCE(e.created_at, now() AT TIME ZONE 'utc'), e.event_type, e.node_id, e.node_name, e.node_type, e.status,
    e.duration, e.context::jsonb, e.result::jsonb, e.meta::jsonb, e.error, e.stack_trace, e.trace_component::jsonb
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::timestamp[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::float8[], $13::text[], $14::text[], $15::text[],
    $16::text[], $17::text[], $18::text[])
    AS e(execution_id, event_id, catalog_id, parent_event_id, prev_event_id, created_at, event_type, node_id,
         node_name, node_type, status, duration, context, result, meta, error, stack_trace, trace_component)
ON CONFLICT (execution_id, event_id) DO NOTHING
RETURNING event_id
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


class EventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append_batch(
        self, jobs: Sequence[AppendJob], mint: Callable[[], int]
    ) -> list[AppendOutcome | MeshError]:
        """Appends every job in one transaction; a job refused by the rules gets its error instead.

        Raises:
            asyncpg.PostgresError: the transaction failed as a whole (nothing was written).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            failpoints.hit("events.append.in_transaction")
            heads, terminals, known = await self._lookup(conn, Lookup.of(jobs))
            recorded = await self._recorded_batches(conn, jobs)
            now = utcnow()
            results: list[AppendOutcome | MeshError] = []
            for job in jobs:
                replay = _replay(job, recorded)
                if replay is not None:  # the recorded answer, or the conflict of a different body
                    results.append(replay)
                    continue
                try:
                    outcome = plan(
                        job,
                        head=heads.get(job.execution_id),
                        terminal_id=terminals.get(job.execution_id),
                        known=known,
                        mint=mint,
                        now=now,
                    )
                except MeshError as exc:
                    results.append(exc)
                    continue
                results.append(outcome)
                if job.batch is not None and job.batch.idempotency_key:
                    recorded[(job.execution_id, job.batch.idempotency_key)] = RecordedBatch(
                        job.batch.request_id, outcome.event_ids, job.batch.digest
                    )
                if outcome.stored:
                    # Later jobs of the same execution link to this one's last event.
                    last = outcome.stored[-1]
                    heads[job.execution_id] = Head(last.event_id, last.catalog_id, last.parent_execution_id)
                    if any(e.event_type in WRITTEN_TERMINAL for e in outcome.stored):
                        terminals.setdefault(job.execution_id, last.event_id)
                    _remember(known, job, outcome)
            written = [
                (job, r)
                for job, r in zip(jobs, results, strict=True)
                if isinstance(r, AppendOutcome) and r.replay_of is None
            ]
            stored = [event for _, outcome in written for event in outcome.stored]
            if stored:
                entries = await self._write(conn, stored, written)
                for _, outcome in written:
                    ids = {event.event_id for event in outcome.stored}
                    outcome.outbox = [entry for entry in entries if entry.event_id in ids]
            await self._record_batches(conn, written, now)
        return results

    @staticmethod
    async def _lookup(conn: Connection, wanted: Lookup) -> tuple[dict[int, Head], dict[int, int], Known]:
        """Takes the executions' locks and reads, in one round trip, their chain heads, the first
        terminal event of each open check, and which of the identities are stored already."""
        rows = await conn.fetch(
            _LOOKUP,
            sorted(set(wanted.executions)),
            sorted(set(wanted.open_checks)),
            list(WRITTEN_TERMINAL),
            *_columns(wanted.explicit, 2),
            *_columns(wanted.keys, 2),
            *_columns(wanted.workers, 4),
        )
        heads: dict[int, Head] = {}
        terminals: dict[int, int] = {}
        known = Known()
        for kind, execution_id, event_id, catalog_id, parent, label, node_name, command_id in rows:
            if kind == _HEAD:
                heads[execution_id] = Head(event_id, catalog_id, parent)
            elif kind == _TERMINAL:
                terminals[execution_id] = event_id
            elif kind == _KNOWN_ID:
                known.ids.add((execution_id, event_id))
            elif kind == _KNOWN_KEY:
                known.keys[(execution_id, label)] = event_id
            elif kind == _KNOWN_WORKER:
                known.workers[(execution_id, label, node_name, command_id)] = event_id
        return heads, terminals, known

    @staticmethod
    async def _recorded_batches(
        conn: Connection, jobs: Sequence[AppendJob]
    ) -> dict[tuple[int, str], RecordedBatch]:
        """(execution_id, idempotency_key) → the batches already stored."""
        keys = [
            (job.execution_id, job.batch.idempotency_key)
            for job in jobs
            if job.batch is not None and job.batch.idempotency_key
        ]
        if not keys:
            return {}
        rows = await conn.fetch(_RECORDED_BATCHES, *_columns(keys, 2))
        return {(row[0], row[1]): RecordedBatch(row[2], list(row[3]), row[4]) for row in rows}

    @staticmethod
    async def _record_batches(
        conn: Connection, written: list[tuple[AppendJob, AppendOutcome]], now: datetime
    ) -> None:
        created = now.replace(tzinfo=None)
        rows = [
            (
                job.batch.request_id,
                job.execution_id,
                job.batch.idempotency_key,
                outcome.event_ids,
                created,
                job.batch.digest,
            )
            for job, outcome in written
            if job.batch is not None
        ]
        if rows:
            await conn.executemany(_INSERT_BATCH, rows)

    @staticmethod
    async def _write(
        conn: Connection, stored: list[StoredEvent], written: list[tuple[AppendJob, AppendOutcome]]
    ) -> list[OutboxEntry]:
        """Inserts the events and enqueues their outbox rows (stream mirror, command notice)."""
        rows: list[tuple[int, int, str, str]] = []
        for job, outcome in written:
            drafts = [d for d, duplicate in zip(job.drafts, outcome.duplicates, strict=True) if not duplicate]
            for event, draft in zip(outcome.stored, drafts, strict=True):
                if job.mirror_subject is not None:
                    rows.append(
                        (event.execution_id, event.event_id, job.mirror_subject, stream_payload(event))
                    )
                if draft.notify is not None:
                    payload = orjson.dumps({**draft.notify.payload, "event_id": event.event_id}).decode()
                    rows.append((event.execution_id, event.event_id, draft.notify.subject, payload))
        result = await conn.fetch(
            _INSERT_LOGGED,
            [e.execution_id for e in stored],
            [e.event_id for e in stored],
            [e.catalog_id for e in stored],
            [e.parent_event_id for e in stored],
            [e.parent_execution_id for e in stored],
            [e.prev_event_id for e in stored],
            [e.created_at.replace(tzinfo=None) for e in stored],
            [e.event_type for e in stored],
            [e.node_name for e in stored],
            [e.node_type for e in stored],
            [e.status for e in stored],
            [e.context for e in stored],
            [e.result for e in stored],
            [e.meta for e in stored],
            [e.error for e in stored],
            [e.worker_id for e in stored],
            [e.command_id for e in stored],
            [e.idempotency_key for e in stored],
            *_columns(rows, 4),
        )
        return [OutboxEntry(row[0], row[2], row[1], row[3], row[4]) for row in result]

    async def project(self, envelopes: Sequence[Envelope]) -> tuple[int, int]:
        """Inserts the envelopes not stored yet, in one transaction under their executions' locks.

        Returns (projected, duplicates): rows inserted and envelopes skipped as already stored.

        Raises:
            asyncpg.PostgresError: the batch broke a constraint (nothing was written).
        """
        executions = [e.execution_id for e in envelopes]
        pairs = [(e.execution_id, e.event_id) for e in envelopes]
        async with self._pool.acquire() as conn, conn.transaction():
            heads, _, known = await self._lookup(conn, Lookup(executions, explicit=pairs))
            new = link(envelopes, {eid: head.event_id for eid, head in heads.items()}, known.ids).new
            inserted = await conn.fetch(_INSERT_PROJECTED, *_projected_columns(new)) if new else []
        return len(inserted), len(envelopes) - len(inserted)

    async def catalog_usage(self, catalog_ids: Sequence[int]) -> list[int]:
        """The given catalog ids that at least one event references (one index probe each)."""
        rows = await self._pool.fetch(_CATALOG_USAGE, list(catalog_ids))
        return [row[0] for row in rows]

    async def finish_batch(
        self, request_id: int, state: str, commands_generated: int | None, error: str | None
    ) -> None:
        await self._pool.execute(_FINISH_BATCH, request_id, state, commands_generated, error)

    async def batch(self, request_id: int) -> EventBatch | None:
        row = await self._pool.fetchrow(_SELECT_BATCH, request_id)
        if row is None:
            return None
        return EventBatch(
            request_id=row[0],
            execution_id=row[1],
            idempotency_key=row[2],
            event_ids=list(row[3]),
            state=row[4],
            commands_generated=row[5],
            error=row[6],
            created_at=as_utc(row[7]),
            updated_at=as_utc(row[8]),
        )

    async def partitions(self) -> set[str]:
        """The names of the event log's partitions."""
        return {row[0] for row in await self._pool.fetch(_PARTITIONS)}

    async def create_partition(self, name: str, lower: int, upper: int) -> bool:
        """`noetl.<name>` for execution ids in [lower, upper); False when the name exists.

        Creators queue on one advisory lock, so two replicas never race for a name. The statement
        locks the log for as long as it takes to check that the default partition holds no row of
        the range (an instant when, as intended, nothing has landed there), and gives up after a
        few seconds rather than queue appends behind a long transaction.
        """
        if not name.isidentifier():
            raise ValueError(f"not a partition name: {name!r}")
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('noetl.event partitions'))")
            if name in {row[0] for row in await conn.fetch(_PARTITIONS)}:
                return False
            await conn.execute(
                f"CREATE TABLE noetl.{name} PARTITION OF noetl.event FOR VALUES FROM ({int(lower)}) TO ({int(upper)})"
            )
        return True

    async def has_claimed(self, execution_id: int, command_id: int, worker_id: str) -> bool:
        """Whether `worker_id` ever claimed the command (a former holder's late events still count)."""
        return bool(await self._pool.fetchval(_HAS_CLAIMED, execution_id, command_id, worker_id))

    async def event_result(self, event_id: int) -> tuple[bool, str | None]:
        """(found, the `result` column as JSON text or None when NULL)."""
        row = await self._pool.fetchrow(_EVENT_RESULT, event_id)
        return (False, None) if row is None else (True, row[0])

    async def page(
        self,
        execution_id: int,
        *,
        after_event_id: int | None,
        event_type: str | None,
        newest_first: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[StoredEvent], int | None]:
        """One page and the number of every matching event, in one statement; the number is None
        when the page is empty (it travels on the page's rows)."""
        clauses, args = _filters(execution_id, after_event_id, event_type)
        order = "DESC" if newest_first else "ASC"
        args.extend([limit, offset])
        sql = (
            f"{_COLUMNS}, (SELECT count(*) FROM noetl.event WHERE {clauses}) FROM noetl.event WHERE {clauses} "
            f"ORDER BY event_id {order} LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        )
        rows = await self._pool.fetch(sql, *args)
        return [_stored(row) for row in rows], (int(rows[0][19]) if rows else None)

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
        clauses, args = _filters(execution_id, after_event_id, event_type)
        order = "DESC" if newest_first else "ASC"
        sql = f"{_SELECT} WHERE {clauses} ORDER BY event_id {order}"
        if limit is not None:
            args.extend([limit, offset])
            sql += f" LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        return [_stored(row) for row in await self._pool.fetch(sql, *args)]

    async def count(self, execution_id: int, *, after_event_id: int | None, event_type: str | None) -> int:
        clauses, args = _filters(execution_id, after_event_id, event_type)
        return int(await self._pool.fetchval(f"SELECT count(*) FROM noetl.event WHERE {clauses}", *args))


def _filters(execution_id: int, after_event_id: int | None, event_type: str | None) -> tuple[str, list[Any]]:
    clauses = ["execution_id = $1"]
    args: list[Any] = [execution_id]
    if after_event_id is not None:
        args.append(after_event_id)
        clauses.append(f"event_id > ${len(args)}")
    if event_type:
        args.append(event_type)
        clauses.append(f"event_type = ${len(args)}")
    return " AND ".join(clauses), args


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def _projected_columns(envelopes: Sequence[Envelope]) -> list[list[Any]]:
    return [
        [e.execution_id for e in envelopes],
        [e.event_id for e in envelopes],
        [e.catalog_id for e in envelopes],
        [e.parent_event_id for e in envelopes],
        [e.prev_event_id for e in envelopes],
        [None if e.created_at is None else as_utc(e.created_at).replace(tzinfo=None) for e in envelopes],
        [e.event_type for e in envelopes],
        [e.node_id for e in envelopes],
        [e.node_name for e in envelopes],
        [e.node_type for e in envelopes],
        [e.status for e in envelopes],
        [e.duration for e in envelopes],
        [e.context for e in envelopes],
        [e.result for e in envelopes],
        [e.meta for e in envelopes],
        [e.error for e in envelopes],
        [e.stack_trace for e in envelopes],
        [e.trace_component for e in envelopes],
    ]


def _replay(
    job: AppendJob, recorded: dict[tuple[int, str], RecordedBatch]
) -> AppendOutcome | Conflict | None:
    """The recorded answer of a batch whose idempotency key was seen before, or the conflict of one
    that asks something else under that key; nothing is written either way."""
    if job.batch is None or not job.batch.idempotency_key:
        return None
    found = recorded.get((job.execution_id, job.batch.idempotency_key))
    if found is None:
        return None
    # A batch recorded before digests were kept (NULL) is taken as the same.
    if found.digest is not None and job.batch.digest is not None and found.digest != job.batch.digest:
        return Conflict(
            f"Idempotency-Key '{job.batch.idempotency_key}' was already used in execution "
            f"{job.execution_id} for a different batch of events; use a new key for new events"
        )
    ids = found.event_ids
    return AppendOutcome(event_ids=list(ids), duplicates=[True] * len(ids), replay_of=found.request_id)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one transaction asks `EventStore._lookup`: executions to lock and read the heads of,
    those to check for a terminal event, and identities (event ids, keys, worker events)."""

    executions: Sequence[int]
    open_checks: Sequence[int] = ()
    explicit: Sequence[tuple[int, int]] = ()
    keys: Sequence[tuple[int, str]] = ()
    workers: Sequence[tuple[int, str, str, int]] = ()

    @classmethod
    def of(cls, jobs: Sequence[AppendJob]) -> Lookup:
        return cls(
            executions=[job.execution_id for job in jobs],
            open_checks=[
                job.execution_id
                for job in jobs
                if job.require_open or any(d.event_type in WRITTEN_TERMINAL for d in job.drafts)
            ],
            explicit=[
                (job.execution_id, d.explicit_id)
                for job in jobs
                for d in job.drafts
                if d.explicit_id is not None
            ],
            keys=[
                (job.execution_id, d.idempotency_key) for job in jobs for d in job.drafts if d.idempotency_key
            ],
            workers=[
                (job.execution_id, d.event_type, d.node_name, d.command_id)
                for job in jobs
                for d in job.drafts
                if d.worker_dedupe and d.command_id is not None
            ],
        )


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    request_id: int
    event_ids: list[int]
    digest: str | None


def _remember(known: Known, job: AppendJob, outcome: AppendOutcome) -> None:
    """Makes a later job of the same transaction see this job's events as already stored."""
    for draft, event_id, duplicate in zip(job.drafts, outcome.event_ids, outcome.duplicates, strict=True):
        if duplicate:
            continue
        if draft.idempotency_key:
            known.keys[(job.execution_id, draft.idempotency_key)] = event_id
        elif draft.worker_dedupe and draft.command_id is not None:
            known.workers[(job.execution_id, draft.event_type, draft.node_name, draft.command_id)] = event_id
        if draft.explicit_id is not None:
            known.ids.add((job.execution_id, draft.explicit_id))
