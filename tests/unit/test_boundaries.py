"""Each service's SQL touches only the tables it owns (data-model.md §3, STYLE.md practice 2).

A static check: every string literal of a service's modules that reads as SQL is scanned for
table references — `noetl.<table>` anywhere, and a bare `<table>` (one of the tables the
services' schema.sql files create) after FROM, JOIN, INTO, UPDATE, TABLE or USING. Docstrings are
skipped; f-strings are read with their holes blanked. Inside the execution service the same
holds per sub-context (`services/execution/<sub>/`), each with its own `store.py`; its shared
modules and the pure `engine/` touch no table at all.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from kernel.migrate import CONTEXTS

SERVICES = Path(__file__).resolve().parents[2] / "services"

# Table → the statements allowed on it ("*" = any).
OWNED: dict[str, dict[str, str]] = {
    "catalog": {"resource": "*", "catalog": "*"},
    "events": {"event": "*", "event_log": "*", "event_batch": "*", "append_lookup": "*", "outbox": "INSERT"},
    "execution": {
        "execution": "*",
        "command": "*",
        "claim_lock": "*",
        "runtime": "*",
        "transient": "*",
        "result_store": "*",
    },
    "outbox": {"outbox": "*"},
    "secrets": {"credential": "*", "keychain": "*", "secret_audit": "*"},
}
# The execution service's sub-contexts, by folder. "JOIN" = read only, as a joined table.
EXECUTION_OWNED: dict[str, dict[str, str]] = {
    "orchestration": {"execution": "*"},
    # The reaper's overdue query looks only at commands of running executions.
    "commands": {"command": "*", "claim_lock": "*", "execution": "JOIN"},
    "pools": {"runtime": "*"},
    "variables": {"transient": "*"},
    "results": {"result_store": "*"},
    "admin": {},  # pg_catalog and ad-hoc SQL, no table of its own
}

_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|JOIN|INTO|TRUNCATE|MERGE)\b", re.IGNORECASE)
_TABLE = re.compile(r"\bnoetl\.([A-Za-z_][A-Za-z0-9_]*)")
# A name where SQL expects a table; not followed by "." (then it is a schema) or "(" (a function).
# The tree writes SQL keywords in capitals and prose does not ("resolved from keychain ..."), so
# keywords in any case count only in a string that starts as a statement.
_BARE = r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|USING)\s+(?:ONLY\s+)?([A-Za-z_][A-Za-z0-9_]*)\b(?![.(])"
_BARE_CAPITALS = re.compile(_BARE)
_BARE_ANY_CASE = re.compile(_BARE, re.IGNORECASE)
_STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|MERGE|TRUNCATE)\b", re.IGNORECASE)
# A table, view or function a schema.sql creates; a partition (`PARTITION OF` on the same line) is
# its parent's. A function counts as a table: only its context may call it.
_CREATED = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|FUNCTION)\s+(?:IF\s+NOT\s+EXISTS\s+)?noetl\.(\w+)(?![^\n]*PARTITION\s+OF)",
    re.IGNORECASE,
)
_INSERT_BEFORE = re.compile(r"INSERT\s+INTO\s+$", re.IGNORECASE)
_JOIN_BEFORE = re.compile(r"\bJOIN\s+$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Violation:
    file: str
    line: int
    table: str
    statement: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} uses table {self.table} ({self.statement.strip()[:80]!r})"


def schema_tables(context: str) -> set[str]:
    """The tables, views and functions `services/<context>/schema.sql` creates."""
    return set(_CREATED.findall((SERVICES / context / "schema.sql").read_text()))


# Every table of the schema: a bare name is a table reference only if it is one of these.
TABLES = frozenset(table for context in CONTEXTS for table in schema_tables(context))


def _references(text: str) -> list[tuple[int, str]]:
    """(offset, table) of every table the SQL text names, qualified or bare."""
    qualified = [(match.start(), match.group(1)) for match in _TABLE.finditer(text)]
    keyword = _BARE_ANY_CASE if _STATEMENT.match(text) else _BARE_CAPITALS
    bare = [(match.start(1), match.group(1)) for match in keyword.finditer(text) if match.group(1) in TABLES]
    return qualified + bare


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


def violations(
    service: str, relative: str, source: str, owned: dict[str, str] | None = None
) -> list[Violation]:
    """`owned` narrows the service's tables (a sub-context's)."""
    owned = OWNED[service] if owned is None else owned
    found: list[Violation] = []
    for line, text in _strings(ast.parse(source)):
        if not _SQL.search(text):
            continue
        for start, table in _references(text):
            allowed = owned.get(table)
            if allowed == "*":
                continue
            if allowed == "INSERT" and _INSERT_BEFORE.search(text[:start]):
                continue
            if allowed == "JOIN" and _JOIN_BEFORE.search(text[:start]):
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


@pytest.mark.parametrize("service", sorted(OWNED))
def test_a_service_owns_exactly_the_tables_its_schema_creates(service: str) -> None:
    owned = {table for table, allowed in OWNED[service].items() if allowed == "*"}
    assert owned == schema_tables(service)


def test_every_table_has_an_owner() -> None:
    assert set(OWNED) == set(CONTEXTS)
    assert {"event", "execution", "command", "outbox", "credential"} <= TABLES


def test_every_execution_sub_context_is_listed() -> None:
    found = {path.name for path in (SERVICES / "execution").iterdir() if (path / "__init__.py").exists()}
    assert found - {"engine"} == set(EXECUTION_OWNED)


@pytest.mark.parametrize("sub", sorted(EXECUTION_OWNED))
def test_an_execution_sub_context_queries_only_its_own_tables(sub: str) -> None:
    modules = sorted((SERVICES / "execution" / sub).rglob("*.py"))
    assert any(path.name == "store.py" for path in modules), f"services/execution/{sub} has no store.py"
    found = [
        violation
        for path in modules
        for violation in violations(
            "execution", str(path.relative_to(SERVICES.parent)), path.read_text(), EXECUTION_OWNED[sub]
        )
    ]
    assert not found, f"services/execution/{sub} reaches into tables of another sub-context:\n" + "\n".join(
        map(str, found)
    )


def test_the_execution_services_shared_modules_and_engine_query_no_table() -> None:
    root = SERVICES / "execution"
    shared = [*root.glob("*.py"), *(root / "engine").rglob("*.py")]
    found = [
        violation
        for path in shared
        for violation in violations("execution", str(path.relative_to(SERVICES.parent)), path.read_text(), {})
    ]
    assert not found, "\n".join(map(str, found))


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
        # Unqualified names: the search_path would find them just the same.
        ("execution", 'SQL = "SELECT event_id FROM event WHERE execution_id = $1"', "event"),
        ("execution", 'SQL = f"SELECT {cols} FROM ONLY event_log"', "event_log"),
        ("events", "SQL = \"UPDATE outbox SET status = 'PUBLISHED'\"", "outbox"),
        ("events", 'SQL = "DELETE FROM outbox WHERE id = $1"', "outbox"),
        ("catalog", 'SQL = "SELECT 1 FROM catalog c JOIN execution e USING (catalog_id)"', "execution"),
        ("secrets", 'SQL = "INSERT INTO command (command_id) VALUES ($1)"', "command"),
        ("outbox", 'SQL = "TRUNCATE TABLE keychain"', "keychain"),
        ("catalog", 'SQL = "DELETE FROM resource r USING credential c WHERE r.x = c.x"', "credential"),
        ("execution", 'SQL = "select * from event where execution_id = $1"', "event"),
    ],
)
def test_the_check_catches_a_foreign_table(service: str, source: str, table: str) -> None:
    assert [v.table for v in violations(service, "example.py", source)] == [table]


def test_a_join_only_table_may_be_read_through_a_join_only() -> None:
    owned = EXECUTION_OWNED["commands"]
    joined = 'SQL = "SELECT c.* FROM noetl.command c JOIN noetl.execution e USING (execution_id)"'
    assert violations("execution", "example.py", joined, owned) == []
    written = "SQL = \"UPDATE noetl.execution SET status = 'FAILED'\""
    assert [v.table for v in violations("execution", "example.py", written, owned)] == ["execution"]


def test_the_check_ignores_docstrings_and_non_sql_text() -> None:
    source = (
        '"""SELECT what we need FROM noetl.command? Never: this is a docstring."""\n'
        'API = "noetl.io/v2"\n'
        'SUBJECT = "noetl.commands.x"\n'
    )
    assert violations("events", "example.py", source) == []
    assert violations("events", "example.py", 'SQL = "INSERT INTO noetl.outbox (x) VALUES (1)"') == []
    assert violations("events", "example.py", 'SQL = "INSERT INTO outbox (x) VALUES (1)"') == []


def test_a_bare_name_counts_only_where_sql_expects_a_table() -> None:
    harmless = [
        'SQL = "SELECT EXTRACT(EPOCH FROM created_at) FROM noetl.event"',  # a column
        'SQL = "SELECT x FROM unnest($1::bigint[]) AS command"',  # a function, aliased
        'SQL = "SELECT 1 FROM pg_catalog.execution"',  # another schema
        'SQL = "SELECT * FROM noetl.event WHERE x IN (SELECT y FROM events_seen)"',  # not a table
        # Prose: lower-case keywords count only in a string that starts as a statement.
        'NOTE = "a command resolved from keychain, SELECT-free"',
        'LOG = f"claimed from execution {execution_id}; SELECT nothing"',
    ]
    for source in harmless:
        assert violations("events", "example.py", source) == [], source
