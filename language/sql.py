"""What every surface that runs user SQL shares: splitting scripts, JSON-safe values, and turning
a postgres credential into connection arguments (the worker's SQL tools, the execution service's
`/api/postgres/execute`)."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg


def split_statements(sql: str) -> list[str]:
    """The statements of a script, split at top-level `;`.

    Quotes ('...', "..."), dollar quotes ($$...$$, $tag$...$tag$), and comments (-- and nested
    /* */) are skipped over, so a `;` inside them does not split. Empty statements are dropped.
    """
    statements: list[str] = []
    start = index = 0
    length = len(sql)
    while index < length:
        char = sql[index]
        if char in "'\"":
            index = _after_quote(sql, index, char)
        elif char == "-" and sql.startswith("--", index):
            newline = sql.find("\n", index)
            index = length if newline < 0 else newline + 1
        elif char == "/" and sql.startswith("/*", index):
            index = _after_block_comment(sql, index)
        elif char == "$":
            index = _after_dollar_quote(sql, index)
        elif char == ";":
            statements.append(sql[start:index])
            index += 1
            start = index
        else:
            index += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if strip_comments(s).strip()]


def _after_quote(sql: str, index: int, quote: str) -> int:
    index += 1
    while index < len(sql):
        if sql[index] == quote:
            if sql.startswith(quote * 2, index):  # an escaped quote
                index += 2
                continue
            return index + 1
        index += 1
    return index


def _after_block_comment(sql: str, index: int) -> int:
    depth = 0
    while index < len(sql):
        if sql.startswith("/*", index):
            depth += 1
            index += 2
        elif sql.startswith("*/", index):
            depth -= 1
            index += 2
            if depth == 0:
                return index
        else:
            index += 1
    return index


def _after_dollar_quote(sql: str, index: int) -> int:
    """Past a `$tag$ ... $tag$` string; a `$` that opens none (a `$1` parameter) is one character."""
    end = index + 1
    while end < len(sql) and (sql[end].isalnum() or sql[end] == "_"):
        end += 1
    if end >= len(sql) or sql[end] != "$" or (end > index + 1 and sql[index + 1].isdigit()):
        return index + 1
    tag = sql[index : end + 1]
    close = sql.find(tag, end + 1)
    return len(sql) if close < 0 else close + len(tag)


def strip_comments(sql: str) -> str:
    """The statement without its leading comments and whitespace."""
    text = sql.lstrip()
    while True:
        if text.startswith("--"):
            newline = text.find("\n")
            text = "" if newline < 0 else text[newline + 1 :].lstrip()
        elif text.startswith("/*"):
            text = text[_after_block_comment(text, 0) :].lstrip()
        else:
            return text


def json_safe(value: Any) -> Any:
    """A database value as JSON: timestamps as ISO text, numerics as numbers, bytes as base64."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


@dataclass(frozen=True, slots=True)
class PgTarget:
    """Where to connect: a DSN and/or keyword arguments of `asyncpg.connect`."""

    dsn: str | None
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """For error messages: never the DSN, which may hold a password."""
        if self.dsn is not None:
            return "(connection string)"
        return (
            f"{self.params.get('host', '')}:{self.params.get('port', '')}/{self.params.get('database', '')}"
        )


def credential_target(data: Mapping[str, Any]) -> PgTarget:
    """The connection a postgres credential describes (dsl.md §9.5).

    `connection_string|dsn`, or `host|db_host`, `port|db_port`, `user|db_user|username`,
    `password|db_password`, `database|db_name|dbname`; optional `schema` (the search path) and
    `sslmode` either way.

    Raises:
        ValueError: the port is not a number.
    """
    dsn = data.get("connection_string") or data.get("dsn")
    if isinstance(dsn, str) and dsn.strip():
        return PgTarget(dsn.strip(), _settings(data))
    params: dict[str, Any] = {
        "host": _first(data, "host", "db_host") or "localhost",
        "user": _first(data, "user", "db_user", "username"),
        "password": _first(data, "password", "db_password"),
        "database": _first(data, "database", "db_name", "dbname"),
        **_settings(data),
    }
    port = _first(data, "port", "db_port")
    if port is not None:
        try:
            params["port"] = int(port)
        except (TypeError, ValueError):
            raise ValueError(f"port {port!r} is not a number") from None
    return PgTarget(None, {k: v for k, v in params.items() if v is not None})


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = data.get(key)
        if value is not None and value != "":
            return value
    return None


def _settings(data: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    schema = data.get("schema")
    if isinstance(schema, str) and schema.strip():
        extra["server_settings"] = {"search_path": schema.strip()}
    sslmode = data.get("sslmode")
    if isinstance(sslmode, str) and sslmode.strip():
        extra["ssl"] = sslmode.strip()
    return extra


CONNECT_TIMEOUT_SECONDS = 15.0


async def connect(target: PgTarget, settings: Mapping[str, str] | None = None) -> asyncpg.Connection:
    """A connection of its own to `target` (never a pooled one: user SQL may change session
    state), json/jsonb decoded to Python values; `settings` are session settings (`search_path`,
    `statement_timeout`) laid over the target's."""
    params = dict(target.params)
    if settings:
        params["server_settings"] = {**params.get("server_settings", {}), **settings}
    connection: asyncpg.Connection = await asyncpg.connect(
        target.dsn, timeout=CONNECT_TIMEOUT_SECONDS, **params
    )
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return connection
