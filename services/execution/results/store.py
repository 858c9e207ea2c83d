"""SQL of `noetl.result_store` (data-model.md §3.8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kernel.db import connection_errors
from kernel.errors import InvalidArgument
from kernel.jsonutil import dumps_text
from kernel.timeutil import as_utc


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
