"""The `postgres` tool (dsl.md §9.5).

`auth` names a credential (type `postgres`) that the worker resolves through the secrets service
right before it connects: `host|db_host`, `port|db_port`, `user|db_user`, `password|db_password`,
`database|db_name`, optional `schema` (the search path) and `sslmode`, or a `connection_string`.
A `connection` DSN in the tool config is used when there is no `auth`.

All statements but the last run as one script (simple protocol, so any number of them, dollar
quotes included); the last decides the result: `{columns, rows, row_count}` for a query, else
`{affected_rows}`. Values are JSON-safe (timestamps as ISO text, numerics as numbers, json parsed).
A SQL error is a tool error naming its class, message and SQLSTATE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.common.sql import PgTarget, connect, credential_target, split_statements
from worker.credentials import SecretError
from worker.tools.base import ToolCall, ToolResult
from worker.tools.sql_common import returns_rows, rows_result


class PostgresTool:
    async def run(self, call: ToolCall) -> ToolResult:
        sql = _sql(call.config)
        if sql is None:
            return ToolResult(
                ok=False,
                data=None,
                error="postgres tool needs 'command' or 'query' (no SQL command provided)",
            )
        statements = split_statements(sql)
        if not statements:
            return ToolResult(ok=False, data=None, error="postgres tool: no SQL command provided")
        try:
            target = await _target(call)
        except SecretError as exc:
            return ToolResult(ok=False, data=None, error=f"postgres: {exc}")
        try:
            async with asyncio.timeout(call.timeout):
                connection = await connect(target)
                try:
                    data = await _execute(connection, statements)
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), timeout=5)
        except TimeoutError:
            return ToolResult(
                ok=False,
                data=None,
                error=f"timeout: postgres command exceeded {call.timeout:g}s",
                error_kind="timeout",
            )
        except asyncpg.PostgresError as exc:
            return ToolResult(ok=False, data=None, error=_sql_error(exc))
        except (OSError, asyncpg.InterfaceError) as exc:
            return ToolResult(
                ok=False,
                data=None,
                error=f"connection error: postgres {target.describe()}: {type(exc).__name__}: {exc}",
                error_kind="connection",
            )
        return ToolResult(ok=True, data=data)


def _sql(config: Mapping[str, Any]) -> str | None:
    for key in ("command", "query", "sql", "commands"):
        value = config.get(key)
        if isinstance(value, list) and value:
            return ";\n".join(str(v) for v in value)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _alias(raw: Any) -> str | None:
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    if isinstance(raw, Mapping):
        for key in ("credential", "key", "name"):
            value = raw.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


async def _target(call: ToolCall) -> PgTarget:
    """Raises SecretError: no credential named, or it cannot be resolved or used."""
    alias = _alias(call.config.get("auth"))
    if alias is None:
        dsn = call.config.get("connection") or call.config.get("connection_string")
        if isinstance(dsn, str) and dsn.strip():
            call.secrets.remember(dsn)
            return PgTarget(dsn.strip())
        raise SecretError("no credential: set 'auth' to the name of a postgres credential")
    data = await call.secrets.credential(alias)
    if not isinstance(data, Mapping):
        raise SecretError(f"credential '{alias}' holds no connection fields")
    try:
        return credential_target(data)
    except ValueError as exc:
        raise SecretError(f"credential '{alias}': {exc}") from None


async def _execute(connection: asyncpg.Connection, statements: list[str]) -> dict[str, Any]:
    *script, last = statements
    if script:
        await connection.execute(";\n".join(script))
    if returns_rows(last):
        prepared = await connection.prepare(last)
        records = await prepared.fetch()
        columns = [attribute.name for attribute in prepared.get_attributes()]
        return rows_result(columns, [tuple(record) for record in records])
    status = await connection.execute(last)
    return {"affected_rows": _affected(status)}


def _affected(status: str) -> int:
    """The row count of a command tag (`INSERT 0 3`, `UPDATE 2`, `CREATE TABLE` → 0)."""
    last = status.rsplit(" ", 1)[-1] if status else ""
    return int(last) if last.isdigit() else 0


def _sql_error(exc: asyncpg.PostgresError) -> str:
    message = getattr(exc, "message", None) or str(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    text = f"{type(exc).__name__}: {message}"
    return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text
