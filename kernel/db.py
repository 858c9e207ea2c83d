"""The Postgres pool and schema bootstrap shared by every service's store.

Each service owns its tables and applies its own DDL at start-up; one transaction-scoped
advisory lock serialises those migrations across processes (concurrent `CREATE ... IF NOT
EXISTS` statements otherwise race on the catalog).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from kernel.errors import Unavailable

SCHEMA_LOCK_KEY = 0x6E6F65746C  # "noetl"
# The longest a pooled connection keeps a generic plan before preparing the statement afresh.
GENERIC_PLAN_SECONDS = 60
_GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}

T = TypeVar("T")

# What `pool.acquire()` yields and what `asyncpg.connect()` returns: stores accept either.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """The mesh keeps no session state (locks are transaction-scoped, no LISTEN, no SET), so the
    default reset query on every release — a round trip per pooled query — buys nothing."""


# A caller that waits this long for a connection meets a saturated pool: it is answered 503
# `pool_saturated` with `Retry-After` (http-api.md §1.3) instead of queueing without bound.
ACQUIRE_TIMEOUT_SECONDS = 10.0


def pool_saturated(waiting: int, free_slots: int) -> Unavailable:
    """http-api.md §1.3: the body is the bare code; `Retry-After` grows with the callers waiting
    (1 s when nobody waits and slots are free, else 1 + 0.5·(waiting+1) + 1 if no slot is free,
    within 1..15, truncated)."""
    if waiting == 0 and free_slots > 0:
        seconds = 1
    else:
        seconds = int(min(15.0, max(1.0, 1 + 0.5 * (waiting + 1) + (1 if free_slots == 0 else 0))))
    return Unavailable({"code": "pool_saturated"}, retry_after=seconds)


class Pool(asyncpg.Pool):
    """asyncpg's pool, counting the callers waiting for a connection (`GET /api/pool/status`) and
    refusing one that waited `acquire_timeout` (a saturated pool)."""

    __slots__ = ("acquire_timeout", "waiting")

    def __init__(self, *args: Any, acquire_timeout: float = ACQUIRE_TIMEOUT_SECONDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = 0
        self.acquire_timeout = acquire_timeout

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 (asyncpg's signature)
        # Both `acquire()` forms end here; a caller served at once never yields inside, so only
        # callers still queued (or waiting for a new connection) are ever seen in the count.
        self.waiting += 1
        try:
            return await super()._acquire(  # type: ignore[misc]  # private, so not in the stubs
                self.acquire_timeout if timeout is None else timeout
            )
        except TimeoutError as exc:
            # `waiting` still counts this caller; the others are the queue it gave up in.
            raise pool_saturated(self.waiting - 1, self.get_idle_size()) from exc
        finally:
            self.waiting -= 1


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout: float = ACQUIRE_TIMEOUT_SECONDS,
    generic_plans: bool = False,
) -> Pool:
    """Raises Unavailable when the database cannot be reached.

    `generic_plans` plans each prepared statement once per connection instead of on every
    execution, for a store whose statements are all look-ups by key. Keyed by `unnest()`,
    look-ups into a partitioned table cannot prune partitions at plan time, so a custom plan
    costs more than the statement (≈1.2 ms against ≈0.05 ms on the event log's ten partitions of
    fifteen indexes); Postgres' `auto` keeps custom plans there because it knows the array's
    length. A plan made while a partition is empty must still probe an index once it has grown:
    sequential scans are priced out (`enable_seqscan = off`; a table with no usable index is still
    scanned), ties between indexes are settled by the statement's shape (tests/integration/
    test_event_plans.py), and a cached plan is made afresh at least every `GENERIC_PLAN_SECONDS`
    and whenever autovacuum re-analyses a table it reads.
    """
    # `asyncpg.create_pool` with its defaults, but building our subclass.
    pool = Pool(
        dsn,
        acquire_timeout=acquire_timeout,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=60,
        reset=_no_session_reset,
        server_settings=_GENERIC_PLANS if generic_plans else None,
        max_cached_statement_lifetime=GENERIC_PLAN_SECONDS if generic_plans else 300,
    )
    try:
        await pool
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"cannot connect to Postgres: {exc}") from exc
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


# A database connection lost, or not to be had: the server stopped, restarted or is starting (its
# unix socket gone, a refused or reset connection, 08xxx), an operator ended the session or its
# statement (57xxx: admin shutdown, cannot connect now, query cancelled), or a pooled connection
# read the FATAL of a shutting-down server before the socket's close (asyncpg's
# `InternalClientError`: it is then in no state for a query). Transient: retried, it succeeds once
# Postgres is back.
LOST_CONNECTION: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)


def db_unavailable(operation: str) -> Unavailable:
    """What a caller hears for a lost connection: 503 `db_unavailable`, retry in 2 s."""
    return Unavailable(
        {
            "code": "db_unavailable",
            "message": f"Database temporarily unavailable during {operation}; retry shortly",
        },
        retry_after=2,
    )


@asynccontextmanager
async def connection_errors(operation: str) -> AsyncIterator[None]:
    """Turns lost connections into `Unavailable` naming the operation."""
    try:
        yield
    except LOST_CONNECTION as exc:
        raise db_unavailable(operation) from exc
