"""SQL of the catalog context: noetl.catalog and noetl.resource only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kernel.errors import Unprocessable
from kernel.jsonutil import dumps_text
from kernel.timeutil import as_utc

MAX_VERSION = 32767  # SMALLINT column


@dataclass(frozen=True, slots=True)
class Entry:
    catalog_id: int
    path: str
    version: int
    kind: str
    content: str
    layout: str | None  # raw JSON text, passed through untouched
    payload: str | None
    meta: str | None
    created_at: datetime
    archived: bool


@dataclass(frozen=True, slots=True)
class VersionRef:
    """A version touched by delete or restore; `archived` says delete kept it (it has history)."""

    catalog_id: int
    version: int
    archived: bool = False


_COLUMNS = "catalog_id, path, version, kind, content, layout::text, payload::text, meta::text, created_at, archived_at"


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        catalog_id=row[0],
        path=row[1],
        version=row[2],
        kind=row[3],
        content=row[4] or "",
        layout=row[5],
        payload=row[6],
        meta=row[7],
        created_at=as_utc(row[8]),
        archived=row[9] is not None,
    )


class CatalogStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert_version(
        self, *, catalog_id: int, path: str, kind: str, content: str, payload: Any, meta: dict[str, Any]
    ) -> Entry:
        """Next version of `path` under a per-path lock, so concurrent registrations never collide.

        Raises:
            Unprocessable: the path already has the maximum number of versions.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", path)
            await conn.execute(
                "INSERT INTO noetl.resource (name, meta) VALUES ($1, '{}'::jsonb) "
                "ON CONFLICT (name) DO UPDATE SET meta = COALESCE(noetl.resource.meta, '{}'::jsonb) || EXCLUDED.meta",
                kind,
            )
            version = await conn.fetchval(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM noetl.catalog WHERE path = $1", path
            )
            if version > MAX_VERSION:
                raise Unprocessable(f"path {path!r} already has {MAX_VERSION} versions")
            row = await conn.fetchrow(
                "INSERT INTO noetl.catalog (catalog_id, path, version, kind, content, layout, payload, meta, created_at) "
                "VALUES ($1, $2, $3, $4, $5, NULL, $6::jsonb, $7::jsonb, now() AT TIME ZONE 'utc') "
                f"RETURNING {_COLUMNS}",
                catalog_id,
                path,
                version,
                kind,
                content,
                dumps_text(payload),
                dumps_text(meta),
            )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return _entry(row)

    async def by_id(self, catalog_id: int) -> Entry | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM noetl.catalog WHERE catalog_id = $1", catalog_id
        )
        return _entry(row) if row else None

    async def latest(self, path: str) -> Entry | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM noetl.catalog WHERE path = $1 AND archived_at IS NULL "
            "ORDER BY version DESC LIMIT 1",
            path,
        )
        return _entry(row) if row else None

    async def by_version(self, path: str, version: int) -> Entry | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM noetl.catalog WHERE path = $1 AND version = $2", path, version
        )
        return _entry(row) if row else None

    async def live_versions(self, path: str, version: int | None) -> list[VersionRef]:
        """Non-archived versions of `path` (all, or the one `version`), newest first."""
        rows = await self._pool.fetch(
            "SELECT catalog_id, version FROM noetl.catalog WHERE path = $1 AND archived_at IS NULL "
            "AND ($2::int IS NULL OR version = $2) ORDER BY version DESC",
            path,
            version,
        )
        return [VersionRef(row[0], row[1]) for row in rows]

    async def remove_or_archive(
        self, path: str, *, remove: list[int], archive: list[int]
    ) -> list[VersionRef]:
        """Deletes the `remove` rows and archives the `archive` rows that are still live, newest first.

        Under the path's registration lock, so a concurrent delete or register sees all or none
        of it; rows another delete got to first are simply not returned.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", path)
            removed = await conn.fetch(
                "DELETE FROM noetl.catalog WHERE catalog_id = ANY($1::bigint[]) AND archived_at IS NULL "
                "RETURNING catalog_id, version",
                remove,
            )
            archived = await conn.fetch(
                "UPDATE noetl.catalog SET archived_at = now() "
                "WHERE catalog_id = ANY($1::bigint[]) AND archived_at IS NULL RETURNING catalog_id, version",
                archive,
            )
        refs = [VersionRef(row[0], row[1]) for row in removed]
        refs += [VersionRef(row[0], row[1], archived=True) for row in archived]
        return sorted(refs, key=lambda ref: ref.version, reverse=True)

    async def restore(self, path: str, version: int | None) -> list[VersionRef]:
        """Clears `archived_at` on the archived versions of `path` (all, or `version`), newest first."""
        rows = await self._pool.fetch(
            "UPDATE noetl.catalog SET archived_at = NULL WHERE path = $1 AND archived_at IS NOT NULL "
            "AND ($2::int IS NULL OR version = $2) RETURNING catalog_id, version",
            path,
            version,
        )
        return sorted((VersionRef(row[0], row[1]) for row in rows), key=lambda ref: ref.version, reverse=True)

    async def list(
        self,
        *,
        kind: str | None,
        path: str | None,
        agent_only: bool,
        capabilities: list[str],
        include_archived: bool,
    ) -> list[Entry]:
        clauses: list[str] = []
        args: list[Any] = []
        if kind:
            args.append(kind)
            clauses.append(f"lower(kind) = ${len(args)}")
        if path:
            args.append(path)
            clauses.append(f"path = ${len(args)}")
        if agent_only or capabilities:
            clauses.append("COALESCE((meta->>'agent')::boolean, false)")
        if capabilities:
            args.append(capabilities)
            clauses.append(f"COALESCE(meta->'capabilities', '[]'::jsonb) ?| ${len(args)}::text[]")
        if not include_archived:
            clauses.append("archived_at IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM noetl.catalog {where} ORDER BY created_at DESC, catalog_id DESC", *args
        )
        return [_entry(row) for row in rows]
