"""The `postgres` tool (dsl.md §9.5).

`auth` (alias `credential`) names a credential (type `postgres`) that the worker resolves through the secrets service
right before it connects: `host|db_host`, `port|db_port`, `user|db_user`, `password|db_password`,
`database|db_name`, optional `schema` (the search path) and `sslmode`, or a `connection_string`.
A `connection` DSN in the tool config is used when there is no `auth`.

A statement's result is `{columns, rows, row_count}` for a query, else `{affected_rows}`. Several
statements run one by one, in one transaction unless the script has its own `BEGIN`/`COMMIT`; the
result is the last statement's, plus each statement's own under `command_<index>` (0-based, the
Python reference's keys) and `statement_count`. Values are JSON-safe (timestamps as ISO text,
numerics as numbers, json parsed). A SQL error is a tool error naming its class, message and
SQLSTATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from typing import Any

import asyncpg

from language.sql import PgTarget, connect, credential_target, split_statements, strip_comments
from worker.credentials import SecretError, credential_alias
from worker.tools.base import ToolCall, ToolResult
from worker.tools.sql_common import returns_rows, rows_result

_TRANSACTION_CONTROL = re.compile(r"\s*(begin|start|commit|end|rollback|abort)\b", re.IGNORECASE)


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


async def _target(call: ToolCall) -> PgTarget:
    """Raises SecretError: no credential named, or it cannot be resolved or used."""
    alias = credential_alias(call.config)
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
    if len(statements) == 1:
        return await _statement(connection, statements[0])
    # One transaction, as the script would be in one simple query, unless it runs its own.
    transaction: contextlib.AbstractAsyncContextManager[Any] = (
        contextlib.nullcontext() if _controls_transactions(statements) else connection.transaction()
    )
    async with transaction:
        results = [await _statement(connection, statement) for statement in statements]
    per_statement = {f"command_{index}": result for index, result in enumerate(results)}
    return {**results[-1], **per_statement, "statement_count": len(results)}


async def _statement(connection: asyncpg.Connection, statement: str) -> dict[str, Any]:
    if returns_rows(statement):
        prepared = await connection.prepare(statement)
        records = await prepared.fetch()
        columns = [attribute.name for attribute in prepared.get_attributes()]
        return rows_result(columns, [tuple(record) for record in records])
    # No arguments: the simple protocol, which takes any statement (DO blocks, dollar quotes).
    status = await connection.execute(statement)
    return {"affected_rows": _affected(status)}


def _controls_transactions(statements: list[str]) -> bool:
    return any(_TRANSACTION_CONTROL.match(strip_comments(statement)) for statement in statements)


def _affected(status: str) -> int:
    """The row count of a command tag (`INSERT 0 3`, `UPDATE 2`, `CREATE TABLE` → 0)."""
    last = status.rsplit(" ", 1)[-1] if status else ""
    return int(last) if last.isdigit() else 0


def _sql_error(exc: asyncpg.PostgresError) -> str:
    message = getattr(exc, "message", None) or str(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    text = f"{type(exc).__name__}: {message}"
    return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text
