"""The `duckdb` tool (dsl.md §9.6): multi-statement SQL on an in-memory or file database.

DuckDB calls block, so each command runs on a thread of its own; at the timeout the query is
interrupted. Every statement runs in order on one connection; the last decides the result:
`{columns, rows, row_count}` when it returns rows, else `{affected_rows}`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import duckdb

from worker.tools.base import ToolCall, ToolResult
from worker.tools.sql_common import rows_result

MEMORY = ":memory:"


class DuckDbTool:
    async def run(self, call: ToolCall) -> ToolResult:
        sql = _sql(call.config)
        if sql is None:
            return ToolResult(ok=False, data=None, error="duckdb tool needs 'query', 'command' or 'commands'")
        database = call.config.get("database")
        database = database if isinstance(database, str) and database.strip() else MEMORY
        try:
            connection = await asyncio.to_thread(duckdb.connect, database)
        except duckdb.Error as exc:
            return ToolResult(ok=False, data=None, error=f"duckdb could not open {database!r}: {exc}")
        work = asyncio.ensure_future(asyncio.to_thread(_execute, connection, sql))
        try:
            async with asyncio.timeout(call.timeout):
                data = await asyncio.shield(work)
        except TimeoutError:
            connection.interrupt()
            await _settle(work)
            return ToolResult(
                ok=False,
                data=None,
                error=f"timeout: duckdb query exceeded {call.timeout:g}s",
                error_kind="timeout",
            )
        except duckdb.Error as exc:
            return ToolResult(ok=False, data=None, error=f"{type(exc).__name__}: {exc}")
        except BaseException:
            connection.interrupt()
            await _settle(work)
            raise
        finally:
            if work.done():
                with contextlib.suppress(Exception):
                    connection.close()
        return ToolResult(ok=True, data=data)


async def _settle(work: asyncio.Future[Any]) -> None:
    """Wait for an interrupted query's thread to let go; its outcome no longer matters."""
    await asyncio.wait([work])
    if not work.cancelled():
        work.exception()


def _sql(config: Mapping[str, Any]) -> str | None:
    for key in ("query", "command", "commands", "sql"):
        value = config.get(key)
        if isinstance(value, list) and value:
            return ";\n".join(str(v).strip().rstrip(";") for v in value)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _execute(connection: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    """Run every statement; the result of the last one (runs on a worker thread).

    Raises:
        duckdb.Error: a statement failed.
    """
    statements = duckdb.extract_statements(sql)
    if not statements:
        raise duckdb.InvalidInputException("no SQL statement to run")
    result: dict[str, Any] = {"affected_rows": 0}
    for statement in statements:
        cursor = connection.execute(statement)
        columns = [d[0] for d in connection.description or []]
        rows = cursor.fetchall() if columns else []
        if statement.type == duckdb.StatementType.SELECT or (columns and columns != ["Count"]):
            result = rows_result(columns, rows)
        else:
            result = {"affected_rows": int(rows[0][0]) if rows and rows[0] else 0}
    return result
