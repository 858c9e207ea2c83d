"""SQL of the execution context: noetl.execution (status projection) and noetl.command (queue)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.common.db import Connection
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

    async def record_start(
        self,
        *,
        execution_id: int,
        catalog_id: int,
        parent_execution_id: int | None,
        commands: Sequence[NewCommandRow],
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO noetl.execution (execution_id, catalog_id, parent_execution_id, status, start_time) "
                "VALUES ($1, $2, $3, 'RUNNING', now()) ON CONFLICT (execution_id) DO NOTHING",
                execution_id,
                catalog_id,
                parent_execution_id,
            )
            await self._insert_commands(conn, execution_id, catalog_id, parent_execution_id, commands)

    async def insert_commands(
        self,
        execution_id: int,
        catalog_id: int,
        parent_execution_id: int | None,
        commands: Sequence[NewCommandRow],
    ) -> None:
        if commands:
            async with self.pool.acquire() as conn:
                await self._insert_commands(conn, execution_id, catalog_id, parent_execution_id, commands)

    @staticmethod
    async def _insert_commands(
        conn: Connection,
        execution_id: int,
        catalog_id: int,
        parent_execution_id: int | None,
        commands: Sequence[NewCommandRow],
    ) -> None:
        if not commands:
            return
        await conn.execute(
            """
            INSERT INTO noetl.command (command_id, event_id, execution_id, catalog_id, parent_execution_id,
                step_name, tool_kind, status, context, meta, iter_index, prev_event_id, attempt)
            SELECT c.command_id, c.event_id, $1, $2, $3, c.step, c.tool_kind, 'PENDING', c.context::jsonb,
                c.meta::jsonb, c.iter_index, c.prev_event_id, 1
            FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[],
                $11::bigint[]) AS c(command_id, event_id, step, tool_kind, context, meta, iter_index, prev_event_id)
            ON CONFLICT DO NOTHING
            """,
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

    async def finish(
        self, execution_id: int, status: str, error: str | None, last_event_id: int, last_event_type: str
    ) -> None:
        """A terminal status never goes back to RUNNING."""
        await self.pool.execute(
            "UPDATE noetl.execution SET status = $2, error = $3, end_time = now(), last_event_id = $4, "
            "last_event_type = $5, updated_at = now() WHERE execution_id = $1 AND status = 'RUNNING'",
            execution_id,
            status,
            error,
            last_event_id,
            last_event_type,
        )

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

    async def running_descendants(self, execution_id: int) -> list[int]:
        """Every RUNNING execution below this one, through `parent_execution_id`, nearest first."""
        rows = await self.pool.fetch(
            """
            WITH RECURSIVE tree(execution_id, depth) AS (
                SELECT execution_id, 1 FROM noetl.execution WHERE parent_execution_id = $1
                UNION ALL
                SELECT e.execution_id, t.depth + 1 FROM noetl.execution e
                JOIN tree t ON e.parent_execution_id = t.execution_id WHERE t.depth < 64
            )
            SELECT t.execution_id FROM tree t JOIN noetl.execution e USING (execution_id)
            WHERE e.status = 'RUNNING' ORDER BY t.depth, t.execution_id
            """,
            execution_id,
        )
        return [row[0] for row in rows]

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
        if not updates:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            for update in updates:
                await conn.execute(
                    """
                    UPDATE noetl.command SET
                        status = CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN status
                                      ELSE COALESCE($3, status) END,
                        started_at = CASE WHEN $4 THEN COALESCE(started_at, now()) ELSE started_at END,
                        heartbeat_at = CASE WHEN $5 THEN now() ELSE heartbeat_at END,
                        lease_until = CASE WHEN $5 AND worker_id IS NOT DISTINCT FROM $6
                                           THEN now() + make_interval(secs => $7) ELSE lease_until END,
                        completed_at = CASE WHEN $3 IN ('COMPLETED', 'FAILED') THEN now() ELSE completed_at END,
                        error = COALESCE($8, error),
                        latest_event_id = $9,
                        updated_at = now()
                    WHERE execution_id = $1 AND command_id = $2
                    """,
                    execution_id,
                    update.command_id,
                    update.status,
                    update.started,
                    update.extends_lease,
                    update.worker_id,
                    lease_seconds,
                    update.error,
                    update.event_id,
                )

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
