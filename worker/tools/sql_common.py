"""What the SQL tools share (dsl.md §9.5, §9.6): splitting scripts, JSON-safe values, result shapes."""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

# A final statement starting with one of these returns rows; any other returns `affected_rows`.
_ROW_KEYWORDS = ("select", "with", "values", "table", "show", "explain", "describe", "pragma", "from")


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


def returns_rows(statement: str) -> bool:
    head = strip_comments(statement).lstrip("(").split(None, 1)
    return bool(head) and head[0].lower().rstrip(";") in _ROW_KEYWORDS


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


def rows_result(columns: list[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    return {
        "columns": columns,
        "rows": [dict(zip(columns, (json_safe(v) for v in row), strict=False)) for row in rows],
        "row_count": len(rows),
    }
