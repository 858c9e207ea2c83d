"""Applies every context's schema, idempotently, in dependency order.

Each context owns its DDL (`services/<context>/schema.sql`). `noetl-mesh up`, the test
fixtures and the Helm pre-install job run this once; services themselves never run DDL.
Usage: `python -m kernel.migrate [--create] [DSN ...]` (default `NOETL_PG_DSN`): every
database named gets every context's schema (a shard's database leaves the cluster tables empty,
and the reverse), so one migration serves any layout. `--create` first creates a database that
does not exist yet, as the launcher does for its per-shard databases.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.parse
from pathlib import Path

import asyncpg

from kernel.db import apply_schema

CONTEXTS = ("catalog", "events", "outbox", "execution", "secrets")
SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def schema_files() -> list[Path]:
    return [SERVICES_DIR / context / "schema.sql" for context in CONTEXTS]


async def migrate(dsn: str) -> None:
    """Raises asyncpg.PostgresError when a statement fails."""
    conn = await asyncpg.connect(dsn)
    try:
        for path in schema_files():
            await apply_schema(conn, path.read_text())
    finally:
        await conn.close()


async def create_database(dsn: str) -> None:
    """Creates the database `dsn` names unless it exists, connected to the server's `postgres`.

    Raises asyncpg.PostgresError when the role may not create databases.
    """
    parts = urllib.parse.urlsplit(dsn)
    name = urllib.parse.unquote(parts.path.lstrip("/"))
    conn = await asyncpg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")))
    try:
        if not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            quoted = name.replace('"', '""')
            await conn.execute(f'CREATE DATABASE "{quoted}"')
    finally:
        await conn.close()


async def _run(dsns: list[str], create: bool) -> None:
    for dsn in dsns:
        if create:
            await create_database(dsn)
        await migrate(dsn)


def main() -> int:
    args = sys.argv[1:]
    create = "--create" in args
    dsns = [arg for arg in args if arg != "--create"] or [os.environ.get("NOETL_PG_DSN", "")]
    if not all(dsns):
        print(
            "usage: python -m kernel.migrate [--create] DSN... (or set NOETL_PG_DSN)",
            file=sys.stderr,
        )
        return 2
    asyncio.run(_run(dsns, create))
    return 0


if __name__ == "__main__":
    sys.exit(main())
