"""SQL of `noetl.execution`: each execution's status projection (data-model.md §3.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kernel.timeutil import as_utc


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    execution_id: int
    catalog_id: int
    parent_execution_id: int | None
    status: str
    start_time: datetime | None
    end_time: datetime | None
    error: str | None


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

    async def recorded_status(self, execution_id: int) -> tuple[str, str | None] | None:
        """(status, terminal event type) of the execution row; None when it has no row yet."""
        row = await self.pool.fetchrow(
            "SELECT status, last_event_type FROM noetl.execution WHERE execution_id = $1", execution_id
        )
        return None if row is None else (str(row[0]), row[1])
