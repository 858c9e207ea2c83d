"""SQL of the database utilities: the database catalog, and ad-hoc statements on a connection of their own.

Reading `pg_catalog` to see which tables schema `noetl` holds reads no other context's tables:
the catalog is the database's, and no row of those tables is touched.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from kernel.db import Connection
from language.sql import json_safe

CLOSE_TIMEOUT_SECONDS = 5.0

# Ordinary and partitioned tables; partitions are parts of their parent, not tables of their own.
_NOETL_TABLES = """
SELECT c.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'noetl' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""


async def noetl_tables(conn: Connection) -> list[str]:
    """Every table of schema `noetl`, unordered."""
    return [row[0] for row in await conn.fetch(_NOETL_TABLES)]


async def is_superuser(connection: asyncpg.Connection) -> bool:
    """Whether the session's login is a superuser (the ad-hoc SQL login must not be)."""
    value: str | None = await connection.fetchval("SELECT current_setting('is_superuser')")
    return value == "on"


async def close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), timeout=CLOSE_TIMEOUT_SECONDS)
    except Exception:
        # A connection that does not close in time is dropped: it must not outlive the request.
        connection.terminate()


async def run_statements(
    connection: asyncpg.Connection, statements: Sequence[str], parameters: Sequence[Any]
) -> list[dict[str, Any]] | None:
    """Runs the statements in order; the last one decides the answer.

    All but the last run as one script (simple protocol, no parameters); the last is prepared,
    so `parameters` bind to its `$1..$n`. Its rows come back as objects of JSON-safe values, or
    None when it returns no rows at all (not a query, or a command without `RETURNING`).
    """
    *script, last = statements
    if script:
        await connection.execute(";\n".join(script))
    prepared = await connection.prepare(last)
    types = prepared.get_parameters()
    # Extra values are passed on unconverted, so asyncpg reports the count mismatch.
    args = [_bind(value, types[i]) if i < len(types) else value for i, value in enumerate(parameters)]
    records = await prepared.fetch(*args)
    columns = [attribute.name for attribute in prepared.get_attributes()]
    if not columns:
        return None
    return [dict(zip(columns, (json_safe(v) for v in record), strict=False)) for record in records]


_INTEGERS = frozenset({"int2", "int4", "int8", "oid"})
_FLOATS = frozenset({"float4", "float8"})
_TEXTS = frozenset({"text", "varchar", "bpchar", "char", "name", "unknown", "citext"})
_TIMES: dict[str, Callable[[str], Any]] = {
    "timestamp": datetime.datetime.fromisoformat,
    "timestamptz": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
}


def _bind(value: Any, type_: Any) -> Any:
    """A JSON value as the Python value asyncpg's codec of the parameter's type accepts.

    JSON carries only strings, numbers, booleans, lists and objects, and asyncpg checks Python
    types strictly (`"5"` for an `int4` is refused). A value that does not convert is passed
    as is, and asyncpg's error names the argument.
    """
    name = type_.name
    if value is None or (isinstance(value, bool) and name not in _TEXTS):
        return value
    try:
        if name in _INTEGERS and (
            isinstance(value, str) or (isinstance(value, float) and value.is_integer())
        ):
            return int(value)
        if name in _FLOATS and isinstance(value, int | str):
            return float(value)
        if name == "numeric" and isinstance(value, int | float | str):
            return decimal.Decimal(str(value))
        if name == "bool" and isinstance(value, str):
            return {"true": True, "t": True, "false": False, "f": False}.get(value.strip().lower(), value)
        if name in _TEXTS and not isinstance(value, str):
            return json.dumps(value, ensure_ascii=False)
        if name in _TIMES and isinstance(value, str):
            return _TIMES[name](value)
        if name == "uuid" and isinstance(value, str):
            return uuid.UUID(value)
    except (ValueError, ArithmeticError):
        pass
    return value
