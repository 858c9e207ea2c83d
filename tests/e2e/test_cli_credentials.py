"""The real `noetl` CLI against the session mesh: `register credential -f` and `get credential`.

cli-wire.md §4.10, §4.11: the body is the file's JSON with keys sorted; `get` always asks for
`include_data=true`, so each call is an audited secret read (data-model.md §9.7).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import noetl
from tests.helpers.mesh import ProcessMesh, database

pytestmark = pytest.mark.e2e

PASSWORD = "cli-Pa55word-at-rest-never"
CREDENTIAL = {
    "name": "cli_pg",
    "type": "postgres",
    "description": "registered by the CLI",
    "tags": ["e2e", "cli"],
    "data": {"db_host": "localhost", "db_user": "noetl", "db_password": PASSWORD},
}


async def test_register_and_get_a_credential(
    process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cli_pg.json"
    path.write_text(json.dumps(CREDENTIAL))

    registered = await noetl(cli_env, process_mesh, "register", "credential", "-f", str(path))
    assert registered.returncode == 0, registered.describe()
    assert "Credential registered successfully" in registered.stdout, registered.describe()
    assert PASSWORD not in registered.stdout  # the write answers without data

    got = await noetl(cli_env, process_mesh, "get", "credential", "cli_pg")
    assert got.returncode == 0, got.describe()
    assert PASSWORD in got.stdout, got.describe()
    assert "registered by the CLI" in got.stdout

    async with database(process_mesh.pg_dsn) as conn:
        stored = await conn.fetchval("SELECT data_encrypted FROM noetl.credential WHERE name = 'cli_pg'")
        audit = await conn.fetch(
            "SELECT operation, outcome, notes FROM noetl.secret_audit WHERE credential = 'cli_pg'"
        )
    assert PASSWORD not in stored and json.loads(stored)["v"] == 1
    assert [tuple(row) for row in audit] == [("get_credential", "ok", "caller=http")]


async def test_gateway_mode_and_a_missing_credential(
    process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "gw.json"
    path.write_text(json.dumps({**CREDENTIAL, "name": "cli_gateway_mode"}))
    registered = await noetl(cli_env, process_mesh, "register", "credential", "-f", str(path), gateway=True)
    assert registered.returncode == 0, registered.describe()
    got = await noetl(cli_env, process_mesh, "get", "credential", "cli_gateway_mode", gateway=True)
    assert got.returncode == 0 and PASSWORD in got.stdout, got.describe()

    missing = await noetl(cli_env, process_mesh, "get", "credential", "cli_nobody")
    assert missing.returncode == 0, missing.describe()  # cli-wire.md §2: get credential keeps rc 0
    assert '404 Not Found - {"detail":"Credential not found"}' in missing.stderr, missing.describe()


async def test_a_file_that_is_not_a_credential_fails_cleanly(
    process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "array.json"
    path.write_text("[1, 2]")
    result = await noetl(cli_env, process_mesh, "register", "credential", "-f", str(path))
    assert result.returncode == 1, result.describe()
    assert "422" in result.stderr and "model_attributes_type" in result.stderr, result.describe()
