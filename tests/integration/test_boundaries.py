"""Each service's SQL touches only the tables it owns (data-model.md §3, STYLE.md practice 2).

A static check: every string literal of a service's modules that reads as SQL is scanned for
`noetl.<table>` references. Docstrings are skipped; f-strings are read with their holes blanked.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"

# Table → the statements allowed on it ("*" = any).
OWNED: dict[str, dict[str, str]] = {
    "catalog": {"resource": "*", "catalog": "*"},
    "events": {"event": "*", "event_log": "*", "event_batch": "*", "outbox": "INSERT"},
    "execution": {"execution": "*", "command": "*", "runtime": "*", "transient": "*", "result_store": "*"},
    "outbox": {"outbox": "*"},
    "secrets": {"credential": "*", "keychain": "*", "secret_audit": "*"},
}

_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|JOIN|INTO|TRUNCATE|MERGE)\b", re.IGNORECASE)
_TABLE = re.compile(r"\bnoetl\.([A-Za-z_][A-Za-z0-9_]*)")
_INSERT_BEFORE = re.compile(r"INSERT\s+INTO\s+$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Violation:
    file: str
    line: int
    table: str
    statement: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} uses noetl.{self.table} ({self.statement.strip()[:80]!r})"


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal as (line, text); an f-string's placeholders become `{}`."""
    skip = _docstrings(tree)
    inside_fstrings: set[int] = set()
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                inside_fstrings.add(id(value))
                parts.append(value.value if isinstance(value, ast.Constant) else "{}")
            found.append((node.lineno, "".join(str(p) for p in parts)))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and id(node) not in inside_fstrings
        ):
            found.append((node.lineno, node.value))
    return found


def violations(service: str, relative: str, source: str) -> list[Violation]:
    owned = OWNED[service]
    found: list[Violation] = []
    for line, text in _strings(ast.parse(source)):
        if not _SQL.search(text):
            continue
        for match in _TABLE.finditer(text):
            table = match.group(1)
            allowed = owned.get(table)
            if allowed == "*":
                continue
            if allowed == "INSERT" and _INSERT_BEFORE.search(text[: match.start()]):
                continue
            found.append(Violation(relative, line, table, text))
    return found


def service_modules(service: str) -> list[Path]:
    return sorted((SERVICES / service).rglob("*.py"))


@pytest.mark.parametrize("service", sorted(OWNED))
def test_a_service_queries_only_its_own_tables(service: str) -> None:
    modules = service_modules(service)
    assert any(path.name == "store.py" for path in modules), f"services/{service} has no store.py"
    found = [
        violation
        for path in modules
        for violation in violations(service, str(path.relative_to(SERVICES.parent)), path.read_text())
    ]
    assert not found, f"services/{service} reaches into tables it does not own:\n" + "\n".join(
        map(str, found)
    )


@pytest.mark.parametrize(
    ("service", "source", "table"),
    [
        ("events", "SQL = \"UPDATE noetl.outbox SET status = 'PUBLISHED'\"", "outbox"),
        ("events", 'SQL = "SELECT count(*) FROM noetl.outbox"', "outbox"),
        ("execution", 'SQL = f"SELECT {cols} FROM noetl.event WHERE execution_id = $1"', "event"),
        (
            "catalog",
            'SQL = ("SELECT 1 FROM noetl.catalog c "\n       "JOIN noetl.execution e USING (catalog_id)")',
            "execution",
        ),
        ("outbox", 'async def f(c):\n    await c.execute("DELETE FROM noetl.command")', "command"),
    ],
)
def test_the_check_catches_a_foreign_table(service: str, source: str, table: str) -> None:
    assert [v.table for v in violations(service, "example.py", source)] == [table]


def test_the_check_ignores_docstrings_and_non_sql_text() -> None:
    source = (
        '"""SELECT what we need FROM noetl.command? Never: this is a docstring."""\n'
        'API = "noetl.io/v2"\n'
        'SUBJECT = "noetl.commands.x"\n'
    )
    assert violations("events", "example.py", source) == []
    assert violations("events", "example.py", 'SQL = "INSERT INTO noetl.outbox (x) VALUES (1)"') == []
