"""The Postgres pool and schema bootstrap shared by every service's store.

Each service owns its tables and applies its own DDL at start-up; one transaction-scoped
advisory lock serialises those migrations across processes (concurrent `CREATE ... IF NOT
EXISTS` statements otherwise race on the catalog).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg

from services.common.errors import Unavailable

SCHEMA_LOCK_KEY = 0x6E6F65746C  # "noetl"

T = TypeVar("T")

# What `pool.acquire()` yields and what `asyncpg.connect()` returns: stores accept either.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """The mesh keeps no session state (locks are transaction-scoped, no LISTEN, no SET), so the
    default reset query on every release — a round trip per pooled query — buys nothing."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Raises Unavailable when the database cannot be reached."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, command_timeout=60, reset=_no_session_reset
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"cannot connect to Postgres: {exc}") from exc
    assert pool is not None  # create_pool only returns None when given no init loop
    return pool


async def apply_schema(conn: Connection, ddl: str) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
        await conn.execute("CREATE SCHEMA IF NOT EXISTS noetl")
        await conn.execute(ddl)


_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


async def with_retry(operation: Callable[[], Awaitable[T]], *, attempts: int = 5) -> T:
    """Re-runs a whole transaction on serialization failures and deadlocks (bounded)."""
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except _RETRYABLE:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


@asynccontextmanager
async def connection_errors(operation: str) -> AsyncIterator[None]:
    """Turns lost connections into `Unavailable` naming the operation."""
    try:
        yield
    except (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError) as exc:
        raise Unavailable(
            {
                "code": "db_unavailable",
                "message": f"Database temporarily unavailable during {operation}; retry shortly",
            },
            retry_after=2,
        ) from exc
