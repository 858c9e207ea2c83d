"""The real `noetl` CLI against a gateway with HTTP auth on (docs/security.md).

A mesh of its own, started like the session mesh but with `NOETL_HTTP_AUTH=bearer` and static API
tokens. The CLI sends `NOETL_SESSION_TOKEN` as `Authorization: Bearer` and `x-session-token`
(cli-wire.md §1), so a platform hands it a token and nothing else changes; without one it is
refused. With auth off (the session mesh) the other CLI tests run unchanged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kernel.mesh_auth import token_digest
from tests.helpers.cli import noetl
from tests.helpers.infra import PgServer
from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, running_process_mesh
from tests.helpers.shared import fixture_file

pytestmark = pytest.mark.e2e

WRITER = "cli-writer-token"
ADMIN = "cli-admin-token"
SIMPLE_PYTHON = "playbooks/simple_python.yaml"
SIMPLE_PATH = "test/simple_python"


@pytest.fixture(scope="module")
async def secured_mesh(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProcessMesh]:
    root = tmp_path_factory.mktemp("http-auth")
    tokens = root / "api-tokens"
    tokens.write_text(f"ci write {token_digest(WRITER)}\nops admin {token_digest(ADMIN)}\n")
    env = {"NOETL_HTTP_AUTH": "bearer", "NOETL_HTTP_API_TOKENS_FILE": str(tokens)}
    async with running_process_mesh(pg_server, root / "mesh", env) as running:
        yield running


def with_token(cli_env: dict[str, str], token: str) -> dict[str, str]:
    return {**cli_env, "NOETL_SESSION_TOKEN": token}


async def test_without_a_token_the_cli_is_refused(secured_mesh: ProcessMesh, cli_env: dict[str, str]) -> None:
    registered = await noetl(
        cli_env, secured_mesh, "register", "playbook", "-f", str(fixture_file(SIMPLE_PYTHON))
    )
    assert registered.returncode == 1, registered.describe()
    assert "Authentication required" in registered.stdout + registered.stderr, registered.describe()
    # `catalog list` reports a failed call but exits 0 (cli-wire.md §2): the refusal is still shown.
    listed = await noetl(cli_env, secured_mesh, "catalog", "list", "playbook", "--json")
    assert "401 Unauthorized" in listed.stderr, listed.describe()


@pytest.mark.parametrize("gateway_mode", [False, True])
async def test_with_a_token_register_run_and_status_work(
    secured_mesh: ProcessMesh, cli_env: dict[str, str], gateway_mode: bool
) -> None:
    env = with_token(cli_env, WRITER)
    registered = await noetl(
        env,
        secured_mesh,
        "register",
        "playbook",
        "-f",
        str(fixture_file(SIMPLE_PYTHON)),
        gateway=gateway_mode,
    )
    assert registered.returncode == 0, registered.describe()
    started = await noetl(
        env, secured_mesh, "run", SIMPLE_PATH, "-r", "distributed", "--json", gateway=gateway_mode
    )
    assert started.returncode == 0, started.describe()
    execution_id = json.loads(started.stdout)["execution_id"]

    headers = {"authorization": f"Bearer {WRITER}"}
    async with httpx.AsyncClient(base_url=secured_mesh.gateway_url, timeout=30.0, headers=headers) as gateway:
        run = await finish(gateway, secured_mesh.pg_dsn, execution_id)
    assert run.status == "COMPLETED"
    status = await noetl(env, secured_mesh, "status", execution_id, "--json", gateway=gateway_mode)
    assert status.returncode == 0, status.describe()
    assert json.loads(status.stdout)["execution_id"] == execution_id


async def test_query_needs_the_admin_scope_and_runs_least_privileged(
    secured_mesh: ProcessMesh, cli_env: dict[str, str]
) -> None:
    refused = await noetl(with_token(cli_env, WRITER), secured_mesh, "query", "select 1 as x", "-f", "json")
    assert refused.returncode == 1, refused.describe()
    assert "needs the admin scope" in refused.stdout + refused.stderr, refused.describe()

    query = "select current_setting('is_superuser') as s"
    allowed = await noetl(with_token(cli_env, ADMIN), secured_mesh, "query", query, "-f", "json")
    assert allowed.returncode == 0, allowed.describe()
    assert json.loads(allowed.stdout)["result"] == [{"s": "off"}]


async def test_the_contract_tells_the_cli_a_token_is_needed(secured_mesh: ProcessMesh) -> None:
    async with httpx.AsyncClient(base_url=secured_mesh.gateway_url, timeout=10.0) as gateway:
        contract = (await gateway.get("/api/runtime/contract")).json()
    assert contract["auth"]["mode"] == "bearer"


def test_the_run_dir_keeps_mesh_tokens_private(secured_mesh: ProcessMesh) -> None:
    directory = secured_mesh.run_dir / "mesh-auth"
    assert directory.stat().st_mode & 0o777 == 0o700
    for path in Path(directory).iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
