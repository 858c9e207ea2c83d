"""SQL of `noetl.transient`: execution-scoped variables (data-model.md §3.7)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kernel.db import connection_errors
from kernel.errors import Internal
from kernel.timeutil import as_utc


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
