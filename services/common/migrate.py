"""Applies every context's schema, idempotently, in dependency order.

Each context owns its DDL (`services/<context>/schema.sql`). `noetl-mesh up`, the test
fixtures and the Helm pre-install job run this once; services themselves never run DDL.
Usage: `python -m services.common.migrate [DSN]` (default `NOETL_PG_DSN`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from services.common.db import apply_schema

CONTEXTS = ("catalog", "events", "outbox", "execution", "secrets")
SERVICES_DIR = Path(__file__).resolve().parent.parent


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


def main() -> int:
    dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NOETL_PG_DSN", "")
    if not dsn:
        print("usage: python -m services.common.migrate DSN (or set NOETL_PG_DSN)", file=sys.stderr)
        return 2
    asyncio.run(migrate(dsn))
    return 0


if __name__ == "__main__":
    sys.exit(main())
