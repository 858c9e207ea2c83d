"""SQL of the execution context: noetl.execution (status projection), noetl.command (queue),
noetl.runtime (worker pools), noetl.transient (variables) and noetl.result_store (results)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.common.db import Connection, connection_errors, with_retry
from services.common.errors import Internal, InvalidArgument
from services.common.jsonutil import dumps_text
from services.common.timeutil import as_utc

TERMINAL_COMMAND = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass(frozen=True, slots=True)
class CommandRow:
    command_id: int
    event_id: int
    execution_id: int
    catalog_id: int
    step: str
    tool_kind: str
    status: str
    worker_id: str | None
    claimed_at: datetime | None
    lease_until: datetime | None
    attempt: int
    context: str | None  # JSON text
    meta: str | None


@dataclass(frozen=True, slots=True)
class NewCommandRow:
    command_id: int
    event_id: int
    step: str
    tool_kind: str
    context: dict[str, Any]
    meta: dict[str, Any]
    iter_index: int | None
    prev_event_id: int | None


_INSERT_COMMANDS = """
INSERT INTO noetl.command (command_id, event_id, execution_id, catalog_id, parent_execution_id,
    step_name, tool_kind, status, context, meta, iter_index, prev_event_id, attempt)
SELECT c.command_id, c.event_id, $1, $2, $3, c.step, c.tool_kind, 'PENDING', c.context::jsonb,
    c.meta::jsonb, c.iter_index, c.prev_event_id, 1
FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[],
    $11::bigint[]) AS c(command_id, event_id, step, tool_kind, context, meta, iter_index, prev_event_id)
ON CONFLICT DO NOTHING
"""
_COMMAND_COLUMNS = (
    "command_id, event_id, execution_id, catalog_id, step_name, tool_kind, status, worker_id, claimed_at, "
    "lease_until, attempt, context::text, meta::text"
)


def _command(row: asyncpg.Record) -> CommandRow:
    return CommandRow(
        command_id=row[0],
        event_id=row[1],
        execution_id=row[2],
        catalog_id=row[3],
        step=row[4],
        tool_kind=row[5] or "",
        status=row[6],
        worker_id=row[7],
        claimed_at=as_utc(row[8]) if row[8] else None,
        lease_until=as_utc(row[9]) if row[9] else None,
        attempt=row[10] or 1,
        context=row[11],
        meta=row[12],
    )


class ExecutionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ensure_execution(
        self,
        *,
        execution_id: int,
        catalog_id: int,
        parent_execution_id: int | None,
        start_time: datetime | None,
    ) -> bool:
        """The execution's row, inserted once (its log's root event is written first); True when new."""
        status = await self.pool.execute(
            "INSERT INTO noetl.execution (execution_id, catalog_id, parent_execution_id, status, start_time) "
            "VALUES ($1, $2, $3, 'RUNNING', COALESCE($4, now())) ON CONFLICT (execution_id) DO NOTHING",
            execution_id,
            catalog_id,
            parent_execution_id,
            start_time,
        )
        return bool(status.endswith(" 1"))

    async def ensure_commands(
        self,
        execution_id: int,
        catalog_id: int,
        parent_execution_id: int | None,
        commands: Sequence[NewCommandRow],
    ) -> int:
        """Inserts the rows that do not exist yet; returns how many were new."""
        if not commands:
            return 0
        status = await self.pool.execute(
            _INSERT_COMMANDS,
            execution_id,
            catalog_id,
            parent_execution_id,
            [c.command_id for c in commands],
            [c.event_id for c in commands],
            [c.step for c in commands],
            [c.tool_kind for c in commands],
            [orjson.dumps(c.context).decode() for c in commands],
            [orjson.dumps(c.meta).decode() for c in commands],
            [c.iter_index for c in commands],
            [c.prev_event_id for c in commands],
        )
        return int(status.rpartition(" ")[2] or 0)

    async def command_count(self, execution_id: int) -> int:
        value = await self.pool.fetchval(
            "SELECT count(*) FROM noetl.command WHERE execution_id = $1", execution_id
        )
        return int(value)

    async def finish(
        self, execution_id: int, status: str, error: str | None, last_event_id: int, last_event_type: str
    ) -> bool:
        """The final status, written once: it never changes afterwards (dsl.md §15.1 rule 0).
        True when this call wrote it."""
        written = await self.pool.execute(
            "UPDATE noetl.execution SET status = $2, error = $3, end_time = now(), last_event_id = $4, "
            "last_event_type = $5, updated_at = now() WHERE execution_id = $1 AND status = 'RUNNING'",
            execution_id,
            status,
            error,
            last_event_id,
            last_event_type,
        )
        return bool(written.endswith(" 1"))

    async def overdue(self, *, pending_after: float, lease_seconds: float, limit: int) -> list[Overdue]:
        """Commands whose notification may be lost, whose holder stopped heartbeating, or that ran
        past their step timeout plus one lease; only of running executions."""
        rows = await self.pool.fetch(_OVERDUE, pending_after, lease_seconds, limit)
        seen: set[int] = set()
        found = []
        for row in rows:
            command = _command(row)
            if command.command_id not in seen:  # a timed-out command is also stale: report it once
                seen.add(command.command_id)
                found.append(Overdue(command, row[13]))
        return found

    async def touch(self, execution_id: int, command_id: int) -> None:
        """Marks a PENDING command as just re-announced, so the next reaper run leaves it alone."""
        await self.pool.execute(
            "UPDATE noetl.command SET updated_at = now() WHERE execution_id = $1 AND command_id = $2",
            execution_id,
            command_id,
        )

    async def next_attempt(self, execution_id: int, command_id: int) -> int:
        """Counts one more attempt of a command whose worker died (row and meta, which claims return)."""
        value = await self.pool.fetchval(
            "UPDATE noetl.command SET attempt = attempt + 1, "
            "meta = jsonb_set(COALESCE(meta, '{}'::jsonb), '{attempt}', to_jsonb(attempt + 1)), updated_at = now() "
            "WHERE execution_id = $1 AND command_id = $2 RETURNING attempt",
            execution_id,
            command_id,
        )
        return int(value)

    async def recent(self, limit: int, offset: int) -> list[ExecutionRow]:
        """Newest start first (the projection's index serves the order)."""
        rows = await self.pool.fetch(
            "SELECT execution_id, catalog_id, parent_execution_id, status, start_time, end_time, error "
            "FROM noetl.execution ORDER BY COALESCE(start_time, created_at) DESC NULLS LAST, execution_id DESC "
            "LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
        return [
            ExecutionRow(
                execution_id=row[0],
                catalog_id=row[1],
                parent_execution_id=row[2],
                status=row[3],
                start_time=as_utc(row[4]) if row[4] else None,
                end_time=as_utc(row[5]) if row[5] else None,
                error=row[6],
            )
            for row in rows
        ]

    async def running_executions(self, limit: int) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT execution_id FROM noetl.execution WHERE status = 'RUNNING' ORDER BY execution_id LIMIT $1",
            limit,
        )
        return [row[0] for row in rows]

    async def running_started_before(self, minutes: int) -> list[int]:
        """RUNNING executions that started more than `minutes` (at most 2**31 - 1) ago, in id order."""
        rows = await self.pool.fetch(
            "SELECT execution_id FROM noetl.execution WHERE status = 'RUNNING' "
            "AND start_time < now() - make_interval(mins => $1) ORDER BY execution_id",
            minutes,
        )
        return [row[0] for row in rows]

    async def children(self, parent_ids: Sequence[int]) -> list[tuple[int, bool]]:
        """(execution_id, running) of this database's direct children of `parent_ids`, in id order."""
        rows = await self.pool.fetch(
            "SELECT execution_id, status = 'RUNNING' FROM noetl.execution"
            " WHERE parent_execution_id = ANY($1::bigint[]) ORDER BY execution_id",
            list(parent_ids),
        )
        return [(int(row[0]), bool(row[1])) for row in rows]

    async def parent_of(self, execution_id: int) -> int | None:
        value = await self.pool.fetchval(
            "SELECT parent_execution_id FROM noetl.execution WHERE execution_id = $1", execution_id
        )
        return int(value) if value is not None else None

    async def command_by_event(self, event_id: int, execution_id: int | None = None) -> CommandRow | None:
        if execution_id is not None:
            row = await self.pool.fetchrow(
                f"SELECT {_COMMAND_COLUMNS} FROM noetl.command WHERE execution_id = $1 AND event_id = $2",
                execution_id,
                event_id,
            )
        else:
            row = await self.pool.fetchrow(
                f"SELECT {_COMMAND_COLUMNS} FROM noetl.command WHERE event_id = $1", event_id
            )
        return _command(row) if row else None

    async def lock_command(self, conn: Connection, row: CommandRow) -> CommandRow | None:
        """Inside a transaction: takes the claim lock; None when another claim holds it."""
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", row.command_id):
            return None
        fresh = await conn.fetchrow(
            f"SELECT {_COMMAND_COLUMNS} FROM noetl.command WHERE execution_id = $1 AND command_id = $2",
            row.execution_id,
            row.command_id,
        )
        return _command(fresh) if fresh else None

    @staticmethod
    async def mark_claimed(
        conn: Connection,
        row: CommandRow,
        worker_id: str,
        lease_seconds: float,
        latest_event_id: int,
        *,
        started: bool,
    ) -> None:
        await conn.execute(
            "UPDATE noetl.command SET status = CASE WHEN $6 THEN 'RUNNING' ELSE 'CLAIMED' END, worker_id = $3, "
            "claimed_at = now(), started_at = CASE WHEN $6 THEN now() ELSE started_at END, "
            "lease_until = now() + make_interval(secs => $4), latest_event_id = $5, updated_at = now() "
            "WHERE execution_id = $1 AND command_id = $2",
            row.execution_id,
            row.command_id,
            worker_id,
            lease_seconds,
            latest_event_id,
            started,
        )

    async def apply_lifecycle(
        self, execution_id: int, updates: Sequence[LifecycleUpdate], lease_seconds: float
    ) -> None:
        """Projects worker lifecycle events onto command rows; terminal rows are never downgraded."""
        await self.write_lifecycle(
            fold_lifecycle((execution_id, update) for update in updates), lease_seconds
        )

    async def write_lifecycle(self, writes: Sequence[LifecycleWrite], lease_seconds: float) -> None:
        """Every write in one pipelined round trip, atomically, without an explicit transaction.

        One statement per row keeps each an index probe of one partition, whatever the plan cache
        holds; rows go in key order, so concurrent writers lock them in the same order.
        """
        if not writes:
            return
        rows = [
            (
                w.execution_id,
                w.command_id,
                w.status,
                w.started,
                w.heartbeat,
                list(w.lease_holders),
                w.lease_unowned,
                w.completes,
                w.error,
                w.latest_event_id,
                lease_seconds,
            )
            for w in sorted(writes, key=lambda w: (w.execution_id, w.command_id))
        ]
        await with_retry(lambda: self.pool.executemany(_WRITE_LIFECYCLE, rows))

    async def open_commands(self, execution_id: int) -> int:
        value = await self.pool.fetchval(
            "SELECT count(*) FROM noetl.command WHERE execution_id = $1 AND status IN ('PENDING', 'CLAIMED', 'RUNNING')",
            execution_id,
        )
        return int(value)


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    execution_id: int
    catalog_id: int
    parent_execution_id: int | None
    status: str
    start_time: datetime | None
    end_time: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Overdue:
    """A command the reaper must look at (data-model.md §6.4)."""

    row: CommandRow
    case: str  # "pending" | "stale" | "timeout"


_OVERDUE = f"""
SELECT {", ".join("o." + column.strip() for column in _COMMAND_COLUMNS.split(","))}, o.case_name FROM (
    SELECT c.*, 'pending' AS case_name FROM noetl.command c
     WHERE c.status = 'PENDING' AND c.created_at < now() - make_interval(secs => $1)
       AND COALESCE(c.updated_at, c.created_at) < now() - make_interval(secs => $1)
    UNION ALL
    SELECT c.*, 'timeout' FROM noetl.command c
     WHERE c.status = 'RUNNING' AND jsonb_typeof(c.context -> 'spec' -> 'timeout') = 'number'
       AND c.started_at + make_interval(secs => (c.context -> 'spec' ->> 'timeout')::float8 + $2) < now()
    UNION ALL
    SELECT c.*, 'stale' FROM noetl.command c
     WHERE c.status IN ('CLAIMED', 'RUNNING') AND c.lease_until < now()
       -- a command just re-announced gets one lease period for another worker to reclaim it
       AND c.updated_at < now() - make_interval(secs => $2)
) o
JOIN noetl.execution e ON e.execution_id = o.execution_id AND e.status = 'RUNNING'
ORDER BY o.created_at
LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class LifecycleUpdate:
    command_id: int
    event_id: int
    status: str | None
    started: bool
    extends_lease: bool
    worker_id: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class LifecycleWrite:
    """What a series of lifecycle updates does to one command row, as one row of one statement."""

    execution_id: int
    command_id: int
    status: str | None  # the status to set unless the row is terminal already
    started: bool
    heartbeat: bool
    lease_holders: tuple[str, ...]  # the lease is extended when the row's worker_id is one of them
    lease_unowned: bool  # ... or when the row has none and an extending update had none either
    completes: bool
    error: str | None
    latest_event_id: int


# One folded write per command row: a terminal status is never downgraded (data-model.md §5), and
# only the holder's events extend the lease (§6.3).
_WRITE_LIFECYCLE = """
UPDATE noetl.command SET
    status = CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN status ELSE COALESCE($3, status) END,
    started_at = CASE WHEN $4 THEN COALESCE(started_at, now()) ELSE started_at END,
    heartbeat_at = CASE WHEN $5 THEN now() ELSE heartbeat_at END,
    lease_until = CASE WHEN worker_id = ANY($6::text[]) OR (worker_id IS NULL AND $7)
                       THEN now() + make_interval(secs => $11) ELSE lease_until END,
    completed_at = CASE WHEN $8 THEN now() ELSE completed_at END,
    error = COALESCE($9, error),
    latest_event_id = $10,
    updated_at = now()
WHERE execution_id = $1 AND command_id = $2
"""
_TERMINAL_STATUS = frozenset(TERMINAL_COMMAND)
_COMPLETING = frozenset({"COMPLETED", "FAILED"})


def fold_lifecycle(updates: Iterable[tuple[int, LifecycleUpdate]]) -> list[LifecycleWrite]:
    """(execution_id, update) pairs, in the order they happened, folded into one write per command.

    Applying the write leaves a row as applying the updates one by one would: the first terminal
    status wins over later ones, started/heartbeat/completion happen if any update does them, the
    lease is extended if any extending update came from the row's holder, the last error and the
    last event id stay.
    """
    folded: dict[tuple[int, int], LifecycleWrite] = {}
    for execution_id, update in updates:
        key = (execution_id, update.command_id)
        holders: tuple[str, ...] = (
            (update.worker_id,) if update.extends_lease and update.worker_id is not None else ()
        )
        unowned = update.extends_lease and update.worker_id is None
        before = folded.get(key)
        if before is None:
            status = update.status
        else:
            status = before.status if before.status in _TERMINAL_STATUS else update.status or before.status
            holders = before.lease_holders + tuple(h for h in holders if h not in before.lease_holders)
        folded[key] = LifecycleWrite(
            execution_id=execution_id,
            command_id=update.command_id,
            status=status,
            started=update.started or (before is not None and before.started),
            heartbeat=update.extends_lease or (before is not None and before.heartbeat),
            lease_holders=holders,
            lease_unowned=unowned or (before is not None and before.lease_unowned),
            completes=update.status in _COMPLETING or (before is not None and before.completes),
            error=update.error if update.error is not None or before is None else before.error,
            latest_event_id=update.event_id,
        )
    return list(folded.values())


@dataclass(frozen=True, slots=True)
class RuntimeRow:
    """One registered runtime (data-model.md §3.13); JSON columns as text."""

    runtime_id: int
    name: str
    kind: str
    uri: str | None
    status: str
    labels: str | None
    capabilities: str | None
    capacity: int | None
    runtime: str | None
    heartbeat: datetime
    created_at: datetime
    updated_at: datetime


class PoolStore:
    """SQL of `noetl.runtime`, the cluster-wide registry of worker pools."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert(
        self,
        *,
        runtime_id: int,
        name: str,
        kind: str,
        uri: str | None,
        status: str,
        capacity: int | None,
        labels: dict[str, Any] | None,
        runtime: dict[str, Any] | None,
    ) -> int:
        """Registers or re-registers by (kind, name); answers the pool's runtime id (the first one minted)."""
        async with connection_errors("worker pool registration"):
            value = await self.pool.fetchval(
                """
                INSERT INTO noetl.runtime (runtime_id, name, kind, uri, status, capacity, labels, runtime)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)
                ON CONFLICT (kind, name) DO UPDATE SET uri = EXCLUDED.uri, status = EXCLUDED.status,
                    capacity = EXCLUDED.capacity, labels = EXCLUDED.labels, runtime = EXCLUDED.runtime,
                    heartbeat = now(), updated_at = now()
                RETURNING runtime_id
                """,
                runtime_id,
                name,
                kind,
                uri,
                status,
                capacity,
                dumps_text(labels),
                dumps_text(runtime),
            )
        return int(value)

    async def set_offline(self, kind: str, name: str) -> bool:
        """False when no such pool is registered."""
        async with connection_errors("worker pool deregistration"):
            found = await self.pool.fetchval(
                "UPDATE noetl.runtime SET status = 'offline', updated_at = now() "
                "WHERE kind = $1 AND name = $2 RETURNING runtime_id",
                kind,
                name,
            )
        return found is not None

    async def beat(self, kind: str, name: str) -> int | None:
        """The pool's runtime id after recording its heartbeat; None when it is not registered."""
        async with connection_errors("worker pool heartbeat"):
            value = await self.pool.fetchval(
                "UPDATE noetl.runtime SET heartbeat = now(), status = 'ready', updated_at = now() "
                "WHERE kind = $1 AND name = $2 RETURNING runtime_id",
                kind,
                name,
            )
        return None if value is None else int(value)

    async def entries(self, kind: str, runtime_type: str | None, status: str | None) -> list[RuntimeRow]:
        """By name. Raises Internal (naming the cause) when the database refuses the read."""
        try:
            async with connection_errors("worker pool listing"):
                rows = await self.pool.fetch(
                    "SELECT runtime_id, name, kind, uri, status, labels::text, capabilities::text, capacity, "
                    "runtime::text, heartbeat, created_at, updated_at FROM noetl.runtime "
                    "WHERE kind = $1 AND ($2::text IS NULL OR runtime ->> 'type' = $2) "
                    "AND ($3::text IS NULL OR status = $3) ORDER BY name",
                    kind,
                    runtime_type,
                    status,
                )
        except asyncpg.PostgresError as exc:
            raise Internal(f"worker pool listing failed: {exc}") from exc
        return [
            RuntimeRow(
                runtime_id=row[0],
                name=row[1],
                kind=row[2],
                uri=row[3],
                status=row[4],
                labels=row[5],
                capabilities=row[6],
                capacity=row[7],
                runtime=row[8],
                heartbeat=as_utc(row[9]),
                created_at=as_utc(row[10]),
                updated_at=as_utc(row[11]),
            )
            for row in rows
        ]

    async def worker_standing(self, name: str) -> tuple[str, datetime] | None:
        """Status and last heartbeat of the worker pool `name` (one unique-index probe), if registered."""
        row = await self.pool.fetchrow(
            "SELECT status, heartbeat FROM noetl.runtime WHERE kind = 'worker_pool' AND name = $1", name
        )
        return None if row is None else (row[0], as_utc(row[1]))


@dataclass(frozen=True, slots=True)
class VariableRow:
    """One execution-scoped variable (data-model.md §3.7); the value as JSON text."""

    name: str
    value: str
    var_type: str
    source_step: str | None
    created_at: datetime
    accessed_at: datetime
    access_count: int


_VARIABLE_COLUMNS = "var_name, var_value::text, var_type, source_step, created_at, accessed_at, access_count"


def _variable(row: asyncpg.Record) -> VariableRow:
    return VariableRow(
        name=row[0],
        value=row[1],
        var_type=row[2],
        source_step=row[3],
        created_at=as_utc(row[4]),
        accessed_at=as_utc(row[5]),
        access_count=row[6] or 0,
    )


@asynccontextmanager
async def _variables_failure(operation: str) -> AsyncIterator[None]:
    """A lost connection is 503; whatever the database refuses is 500 `Failed to <operation>: <e>`
    (http-api.md §8)."""
    try:
        async with connection_errors(operation):
            yield
    except asyncpg.PostgresError as exc:
        raise Internal(f"Failed to {operation}: {exc}") from exc


class VariableStore:
    """SQL of `noetl.transient`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert(
        self, execution_id: int, values: Sequence[tuple[str, str]], var_type: str, source_step: str | None
    ) -> None:
        """`values` are (name, JSON text) with distinct names; a rewrite keeps `created_at` and the
        access count."""
        async with _variables_failure("set variables"):
            await self.pool.execute(
                """
                INSERT INTO noetl.transient (execution_id, var_name, var_type, var_value, source_step,
                    created_at, accessed_at, access_count)
                SELECT $1, v.name, $2, v.value::jsonb, $3, now(), now(), 0
                FROM unnest($4::text[], $5::text[]) AS v(name, value)
                ON CONFLICT (execution_id, var_name) DO UPDATE SET var_value = EXCLUDED.var_value,
                    var_type = EXCLUDED.var_type, source_step = EXCLUDED.source_step, accessed_at = now()
                """,
                execution_id,
                var_type,
                source_step,
                [name for name, _ in values],
                [value for _, value in values],
            )

    async def all(self, execution_id: int) -> list[VariableRow]:
        """By name."""
        async with _variables_failure("retrieve variables"):
            rows = await self.pool.fetch(
                f"SELECT {_VARIABLE_COLUMNS} FROM noetl.transient WHERE execution_id = $1 ORDER BY var_name",
                execution_id,
            )
        return [_variable(row) for row in rows]

    async def read(self, execution_id: int, name: str) -> VariableRow | None:
        """Counts the read: the row comes back with its access already bumped."""
        async with _variables_failure("retrieve variable"):
            row = await self.pool.fetchrow(
                "UPDATE noetl.transient SET access_count = COALESCE(access_count, 0) + 1, accessed_at = now() "
                f"WHERE execution_id = $1 AND var_name = $2 RETURNING {_VARIABLE_COLUMNS}",
                execution_id,
                name,
            )
        return _variable(row) if row else None

    async def delete(self, execution_id: int, name: str) -> bool:
        async with _variables_failure("delete variable"):
            found = await self.pool.fetchval(
                "DELETE FROM noetl.transient WHERE execution_id = $1 AND var_name = $2 RETURNING true",
                execution_id,
                name,
            )
        return found is not None

    async def delete_all(self, execution_id: int) -> int:
        async with _variables_failure("cleanup execution variables"):
            count = await self.pool.fetchval(
                "WITH gone AS (DELETE FROM noetl.transient WHERE execution_id = $1 RETURNING 1) "
                "SELECT count(*) FROM gone",
                execution_id,
            )
        return int(count)


@dataclass(frozen=True, slots=True)
class NewResultRow:
    result_id: int
    execution_id: int
    name: str
    scope: str
    source_step: str | None
    data: str  # JSON text
    size: int
    sha256: str
    correlation: dict[str, Any] | None
    extracted: dict[str, Any] | None
    ttl_seconds: int | None  # None: never expires


@dataclass(frozen=True, slots=True)
class ResultRow:
    name: str
    data: str  # JSON text
    expired: bool


class ResultStore:
    """SQL of `noetl.result_store` (data-model.md §3.8): values kept outside the event log, per shard."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert_result(self, row: NewResultRow) -> datetime | None:
        """Returns `expires_at` (database time plus the ttl).

        Raises:
            InvalidArgument: a value JSONB cannot hold (a NUL character in a string).
        """
        try:
            async with connection_errors("result store write"):
                expires_at = await self.pool.fetchval(
                    """
                    INSERT INTO noetl.result_store (result_id, execution_id, name, scope, source_step, data,
                        bytes, sha256, correlation, extracted, expires_at)
                    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9::jsonb, $10::jsonb,
                        now() + make_interval(secs => $11::bigint))
                    RETURNING expires_at
                    """,
                    row.result_id,
                    row.execution_id,
                    row.name,
                    row.scope,
                    row.source_step,
                    row.data,
                    row.size,
                    row.sha256,
                    dumps_text(row.correlation),
                    dumps_text(row.extracted),
                    row.ttl_seconds,
                )
        except asyncpg.DataError as exc:
            raise InvalidArgument(f"data cannot be stored: {exc}") from exc
        return as_utc(expires_at) if expires_at is not None else None

    async def result(self, execution_id: int, result_id: int) -> ResultRow | None:
        async with connection_errors("result store read"):
            row = await self.pool.fetchrow(
                "SELECT name, data::text, expires_at IS NOT NULL AND expires_at <= now() "
                "FROM noetl.result_store WHERE result_id = $1 AND execution_id = $2",
                result_id,
                execution_id,
            )
        return ResultRow(name=row[0], data=row[1], expired=row[2]) if row else None

    async def delete_expired_results(self, limit: int) -> int:
        async with connection_errors("result store sweep"):
            count = await self.pool.fetchval(
                "WITH gone AS (DELETE FROM noetl.result_store WHERE result_id IN ("
                "SELECT result_id FROM noetl.result_store WHERE expires_at <= now() LIMIT $1) RETURNING 1) "
                "SELECT count(*) FROM gone",
                limit,
            )
        return int(count)
