"""The real `noetl` CLI's `query`, `db init` and `db validate` against the gateway (cli-wire.md §4.12, §4.13).

What the schema answers must say is read independently from the mesh's database catalog, so
these tests hold whichever tables the migration creates.
"""

from __future__ import annotations

import json

import pytest

from services.execution.admin.service import REQUIRED_TABLES
from tests.helpers.cli import after_header, noetl
from tests.helpers.mesh import ProcessMesh, database

pytestmark = pytest.mark.e2e


async def noetl_tables(dsn: str) -> list[str]:
    async with database(dsn) as conn:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'noetl' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        )
    return sorted(row[0] for row in rows)


async def test_query_in_json_mode_shows_rows_as_objects(
    process_mesh: ProcessMesh, cli_env: dict[str, str]
) -> None:
    completed = await noetl(cli_env, process_mesh, "query", "select 1 as x", "--format", "json")
    assert completed.returncode == 0, completed.describe()
    assert json.loads(completed.stdout) == {"status": "ok", "result": [{"x": 1}], "error": None}


async def test_query_in_table_mode_prints_no_rows_for_objects(
    process_mesh: ProcessMesh, cli_env: dict[str, str]
) -> None:
    """cli-wire.md §4.12 and §6: the contract's rows are objects, which table mode does not render."""
    completed = await noetl(cli_env, process_mesh, "query", "select 1 as x")
    assert completed.returncode == 0, completed.describe()
    assert completed.stdout.strip() == "", completed.describe()


async def test_query_sql_error_is_shown_with_rc_0(process_mesh: ProcessMesh, cli_env: dict[str, str]) -> None:
    completed = await noetl(cli_env, process_mesh, "query", "select * from nope", "-f", "json")
    assert completed.returncode == 0, completed.describe()
    assert json.loads(completed.stdout) == {
        "status": "error",
        "result": None,
        "error": 'relation "nope" does not exist',
    }


async def test_query_uses_the_schema_option(process_mesh: ProcessMesh, cli_env: dict[str, str]) -> None:
    completed = await noetl(
        cli_env,
        process_mesh,
        "query",
        "select current_setting('search_path') as p",
        "--schema",
        "public",
        "-f",
        "json",
    )
    assert completed.returncode == 0, completed.describe()
    assert json.loads(completed.stdout)["result"] == [{"p": "public"}]


async def test_db_init_reports_the_required_tables(
    process_mesh: ProcessMesh, cli_env: dict[str, str]
) -> None:
    present = set(await noetl_tables(process_mesh.pg_dsn))
    missing = [t for t in REQUIRED_TABLES if t not in present]
    shown = after_header(await noetl(cli_env, process_mesh, "db", "init"), "Initializing")
    assert shown["tables"] == [t for t in REQUIRED_TABLES if t in present]
    if missing:
        assert shown["status"] == "warning" and shown["missing"] == missing, shown
    else:
        assert shown == {"status": "ok", "message": "Database schema ready", "tables": list(REQUIRED_TABLES)}


async def test_db_validate_lists_every_table(process_mesh: ProcessMesh, cli_env: dict[str, str]) -> None:
    tables = await noetl_tables(process_mesh.pg_dsn)
    shown = after_header(await noetl(cli_env, process_mesh, "db", "validate"), "Validating")
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    assert shown == {
        "status": "error" if missing else "ok",
        "valid": not missing,
        "tables": [t for t in REQUIRED_TABLES if t in tables],
        "missing": missing,
        "all_tables": tables,
    }
    # The migration's partitions are parts of their tables, not tables of their own.
    assert "event" in tables and not any(t.startswith("event_2026") for t in shown["all_tables"])


async def test_db_commands_in_gateway_mode(process_mesh: ProcessMesh, cli_env: dict[str, str]) -> None:
    shown = after_header(await noetl(cli_env, process_mesh, "db", "validate", gateway=True), "Validating")
    assert shown["all_tables"] == await noetl_tables(process_mesh.pg_dsn)
