"""What the SQL tools share (dsl.md §9.5, §9.6): whether a statement returns rows, and the result shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from language.sql import json_safe, strip_comments

# A final statement starting with one of these returns rows; any other returns `affected_rows`.
_ROW_KEYWORDS = ("select", "with", "values", "table", "show", "explain", "describe", "pragma", "from")


def returns_rows(statement: str) -> bool:
    head = strip_comments(statement).lstrip("(").split(None, 1)
    return bool(head) and head[0].lower().rstrip(";") in _ROW_KEYWORDS


def rows_result(columns: list[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    return {
        "columns": columns,
        "rows": [dict(zip(columns, (json_safe(v) for v in row), strict=False)) for row in rows],
        "row_count": len(rows),
    }
