"""The real `noetl` CLI (PyPI noetl 5.3.2) against the gateway: register, run, status (cli-wire.md §1 to §4.7).

Gateway mode (`--gateway`, or `NOETL_USE_GATEWAY` truthy) sends every call to `/noetl/...`
instead of `/api/...` (cli-wire.md §1); the gateway's request counters, labelled by route
template, show which prefix was used.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.helpers.cli import noetl
from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, request_count, step_result
from tests.helpers.shared import fixture_file

pytestmark = pytest.mark.e2e

SIMPLE_PYTHON = "playbooks/simple_python.yaml"
SIMPLE_PATH = "test/simple_python"


async def _register_run_status(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, env: dict[str, str], *, gateway_mode: bool = False
) -> dict[str, object]:
    """register → run → (wait) → status through the CLI; returns the parsed `status --json` output."""

    registered = await noetl(
        env,
        process_mesh,
        "register",
        "playbook",
        "-f",
        str(fixture_file(SIMPLE_PYTHON)),
        gateway=gateway_mode,
    )
    assert registered.returncode == 0, registered.describe()
    assert "Playbook registered successfully" in registered.stdout, registered.describe()

    started = await noetl(
        env, process_mesh, "run", SIMPLE_PATH, "-r", "distributed", "--json", gateway=gateway_mode
    )
    assert started.returncode == 0, started.describe()
    body = json.loads(started.stdout)
    assert body["status"] == "started"
    execution_id = body["execution_id"]
    assert isinstance(execution_id, str) and execution_id.isdigit(), body

    run = await finish(gateway, process_mesh.pg_dsn, execution_id)
    assert run.status == "COMPLETED"
    assert step_result(run.events, "end") == {"status": "completed"}

    status = await noetl(env, process_mesh, "status", execution_id, "--json", gateway=gateway_mode)
    assert status.returncode == 0, status.describe()
    shown = json.loads(status.stdout)
    assert isinstance(shown, dict)
    assert shown["execution_id"] == execution_id
    return shown


async def test_register_run_status_on_api_routes(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str]
) -> None:
    before = await request_count(gateway, "/api/execute", "POST")
    status = await _register_run_status(gateway, process_mesh, cli_env)

    assert status["completed"] is True
    assert status["failed"] is False
    assert status["completed_steps"] == ["start", "end"]
    assert await request_count(gateway, "/api/execute", "POST") == before + 1


@pytest.mark.parametrize("mode", ["flag", "env"])
async def test_register_run_status_in_gateway_mode(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], mode: str
) -> None:
    routes = [
        ("/noetl/catalog/register", "POST"),
        ("/noetl/execute", "POST"),
        ("/noetl/executions/{execution_id}/status", "GET"),
    ]
    before = [await request_count(gateway, route, method) for route, method in routes]
    api_execute_before = await request_count(gateway, "/api/execute", "POST")
    if mode == "flag":
        status = await _register_run_status(gateway, process_mesh, cli_env, gateway_mode=True)
    else:
        status = await _register_run_status(gateway, process_mesh, {**cli_env, "NOETL_USE_GATEWAY": "true"})

    assert status["completed"] is True
    assert status["failed"] is False
    after = [await request_count(gateway, route, method) for route, method in routes]
    assert after == [count + 1 for count in before], dict(zip([r for r, _ in routes], after, strict=True))
    assert await request_count(gateway, "/api/execute", "POST") == api_execute_before


async def test_status_of_a_failed_run_reports_failed(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    playbook = tmp_path / "cli_fails.yaml"
    playbook.write_text(CLI_FAILS)
    assert (await noetl(cli_env, process_mesh, "register", "playbook", "-f", str(playbook))).returncode == 0
    started = await noetl(cli_env, process_mesh, "run", "tests/e2e/cli_fails", "-r", "distributed", "--json")
    assert started.returncode == 0, started.describe()
    execution_id = json.loads(started.stdout)["execution_id"]

    run = await finish(gateway, process_mesh.pg_dsn, execution_id)
    assert run.status == "FAILED"

    status = await noetl(cli_env, process_mesh, "status", execution_id, "--json")
    assert status.returncode == 0, status.describe()
    shown = json.loads(status.stdout)
    assert shown["completed"] is False
    assert shown["failed"] is True


async def test_unknown_path_fails_with_the_gateway_error(
    process_mesh: ProcessMesh, cli_env: dict[str, str]
) -> None:
    """cli-wire.md §2: rc 1 and `<prefix>: <code> <reason> - <raw body>` on stderr."""
    started = await noetl(cli_env, process_mesh, "run", "no/such/playbook", "-r", "distributed")
    assert started.returncode == 1, started.describe()
    assert (
        '404 Not Found - {"detail":"Executable catalog entry not found: no/such/playbook"}' in started.stderr
    )


CLI_FAILS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: cli_fails
  path: tests/e2e/cli_fails
workflow:
  - step: start
    tool:
      kind: python
      code: |
        raise RuntimeError("cli run fails on purpose")
"""
