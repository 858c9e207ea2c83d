"""SQL of `noetl.runtime`, the cluster-wide registry of worker pools (data-model.md §3.13)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kernel.db import connection_errors
from kernel.errors import Internal
from kernel.jsonutil import dumps_text
from kernel.timeutil import as_utc


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
