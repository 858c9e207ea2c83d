"""The real `noetl` CLI's bulk load against the gateway: `noetl catalog load` (cli-wire.md §4.2).

The CLI walks files and directories for `.yaml`/`.yml`, skips credential YAML itself, sends
batches to `POST /api/catalog/register/batch` (http-api.md §3.2) and prints one line per file
from the response's `results`, then `registered R, failed F, skipped S`; any failed item → rc 1.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.helpers.cli import noetl
from tests.helpers.mesh import ProcessMesh, request_count
from tests.helpers.playbooks import noop_playbook

pytestmark = pytest.mark.e2e

BATCH_ROUTE = "/api/catalog/register/batch"

CREDENTIAL = """\
kind: Credential
name: cli_load_pg
type: postgres
data:
  db_host: localhost
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def versions(gateway: httpx.AsyncClient, path: str) -> list[int]:
    response = await gateway.post("/api/catalog/list", json={"path": path})
    assert response.status_code == 200, response.text
    return [entry["version"] for entry in response.json()["entries"]]


async def test_load_a_directory_tree(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Recursive walk, one request for the batch, credential YAML skipped by the CLI."""
    prefix = f"tests/cli_load/{uuid.uuid4().hex[:8]}"
    tree = tmp_path / "playbooks"
    first = write(tree / "first.yaml", noop_playbook(f"{prefix}/first"))
    second = write(tree / "nested" / "second.yml", noop_playbook(f"{prefix}/second"))
    write(tree / "nested" / "pg.yaml", CREDENTIAL)
    write(tree / "README.txt", "not a playbook")
    before = await request_count(gateway, BATCH_ROUTE, "POST")

    loaded = await noetl(cli_env, process_mesh, "catalog", "load", str(tree))

    assert loaded.returncode == 0, loaded.describe()
    assert f"ok   {first} -> {prefix}/first v1" in loaded.stdout, loaded.describe()
    assert f"ok   {second} -> {prefix}/second v1" in loaded.stdout, loaded.describe()
    assert "registered 2, failed 0, skipped 1" in loaded.stdout, loaded.describe()
    assert await request_count(gateway, BATCH_ROUTE, "POST") == before + 1
    assert await versions(gateway, f"{prefix}/first") == [1]
    assert await versions(gateway, f"{prefix}/second") == [1]
    assert (await gateway.get("/api/credentials/cli_load_pg")).status_code == 404


async def test_a_failed_file_is_reported_and_exits_1(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """One file per batch: the good file still registers, the bad one fails with the register detail."""
    path = f"tests/cli_load/{uuid.uuid4().hex[:8]}/good"
    good = write(tmp_path / "good.yaml", noop_playbook(path))
    bad = write(tmp_path / "bad.yaml", "key: [unclosed\n")
    before = await request_count(gateway, BATCH_ROUTE, "POST")

    loaded = await noetl(cli_env, process_mesh, "catalog", "load", str(good), str(bad), "--batch-size", "1")

    assert loaded.returncode == 1, loaded.describe()
    output = loaded.stdout + loaded.stderr
    assert f"ok   {good} -> {path} v1" in output, loaded.describe()
    assert f"FAIL {bad}: Error registering resource: while parsing a flow sequence" in output, (
        loaded.describe()
    )
    assert "registered 1, failed 1, skipped 0" in output, loaded.describe()
    assert await request_count(gateway, BATCH_ROUTE, "POST") == before + 2
    assert await versions(gateway, path) == [1]


async def test_json_output_is_the_response(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = f"tests/cli_load/{uuid.uuid4().hex[:8]}/json"
    file = write(tmp_path / "json.yaml", noop_playbook(path))
    await noetl(cli_env, process_mesh, "catalog", "load", str(file))

    loaded = await noetl(cli_env, process_mesh, "catalog", "load", str(file), "--json")

    assert loaded.returncode == 0, loaded.describe()
    shown = json.loads(loaded.stdout)
    assert (shown["registered"], shown["failed"]) == (1, 0), shown
    assert [(r["index"], r["status"], r["path"], r["version"]) for r in shown["results"]] == [
        (0, "registered", path, 2)
    ]
    assert await versions(gateway, path) == [2, 1]


async def test_gateway_mode_uses_the_noetl_prefix(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = f"tests/cli_load/{uuid.uuid4().hex[:8]}/gateway"
    file = write(tmp_path / "gateway.yaml", noop_playbook(path))
    before = await request_count(gateway, "/noetl/catalog/register/batch", "POST")

    loaded = await noetl(cli_env, process_mesh, "catalog", "load", str(file), gateway=True)

    assert loaded.returncode == 0, loaded.describe()
    assert "registered 1, failed 0, skipped 0" in loaded.stdout, loaded.describe()
    assert await request_count(gateway, "/noetl/catalog/register/batch", "POST") == before + 1
    assert await versions(gateway, path) == [1]
