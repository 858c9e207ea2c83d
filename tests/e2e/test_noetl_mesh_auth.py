"""`noetl-mesh run` against a gateway with HTTP auth on, and what user code on its worker can see.

A mesh of its own, started by the launcher like the session mesh but with `NOETL_HTTP_AUTH=bearer`
and a static API token (docs/security.md). `run` sends `--token` or `NOETL_SESSION_TOKEN` (the
variable the `noetl` CLI reads) as `Authorization: Bearer`; without one it stops at the first
call with the gateway's 401 and says how to give a token. The stack's worker proves its own
identity (`worker:<host>-worker`) and claims under that id; the python and shell steps it runs
inherit neither its mesh token nor the path to it (nor any other NOETL_MESH_* variable or the
database DSN).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kernel.mesh_auth import token_digest
from tests.helpers.infra import PgServer
from tests.helpers.invariants import finish
from tests.helpers.mesh import Completed, ProcessMesh, database, run_process, running_process_mesh

pytestmark = pytest.mark.e2e

WRITER = "mesh-run-writer-token"

ENV_PROBE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: env_probe
  path: tests/e2e/auth/env_probe
workflow:
  - step: start
    tool:
      kind: python
      code: |
        import os
        result = {"environment": dict(os.environ)}
    next:
      arcs:
        - step: end
  - step: end
    tool:
      kind: shell
      command: env
"""


@pytest.fixture(scope="module")
async def secured_mesh(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProcessMesh]:
    root = tmp_path_factory.mktemp("mesh-run-auth")
    tokens = root / "api-tokens"
    tokens.write_text(f"ci write {token_digest(WRITER)}\n")
    env = {"NOETL_HTTP_AUTH": "bearer", "NOETL_HTTP_API_TOKENS_FILE": str(tokens)}
    async with running_process_mesh(pg_server, root / "mesh", env) as running:
        yield running


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "env_probe.yaml"
    path.write_text(ENV_PROBE)
    return path


async def mesh_run(mesh: ProcessMesh, *args: str, token: str | None = None) -> Completed:
    """`python -m noetl_mesh --home <run dir> ARGS`, with NOETL_SESSION_TOKEN only when given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOETL_MESH_HOME", "NOETL_PG_DSN", "NOETL_NATS_URL", "NOETL_SESSION_TOKEN")
    }
    if token is not None:
        env["NOETL_SESSION_TOKEN"] = token
    return await run_process(
        sys.executable, "-m", "noetl_mesh", "--home", str(mesh.run_dir), *args, env=env, seconds=90
    )


async def test_without_a_token_run_is_refused_clearly(secured_mesh: ProcessMesh, probe: Path) -> None:
    result = await mesh_run(secured_mesh, "run", str(probe))
    assert result.returncode == 2, result.describe()
    said = " ".join(result.stderr.split())  # rich wraps lines
    assert "registration failed (401)" in said, result.describe()
    assert "give a token with --token or NOETL_SESSION_TOKEN" in said, result.describe()

    wrong = await mesh_run(secured_mesh, "--token", "not-a-token", "list")
    assert wrong.returncode == 1, wrong.describe()
    assert "(401)" in wrong.stderr, wrong.describe()


@pytest.mark.parametrize("how", ["option", "environment"])
async def test_with_a_token_run_list_and_show_work(secured_mesh: ProcessMesh, probe: Path, how: str) -> None:
    given: tuple[str, ...] = ("--token", WRITER) if how == "option" else ()
    token = WRITER if how == "environment" else None
    result = await mesh_run(secured_mesh, *given, "run", str(probe), "--detach", token=token)
    assert result.returncode == 0, result.describe()
    execution_id = result.stdout.strip()

    headers = {"authorization": f"Bearer {WRITER}"}
    async with httpx.AsyncClient(base_url=secured_mesh.gateway_url, timeout=30.0, headers=headers) as gateway:
        run = await finish(gateway, secured_mesh.pg_dsn, execution_id)
    assert run.status == "COMPLETED"
    listed = await mesh_run(secured_mesh, *given, "list", "--json", token=token)
    assert listed.returncode == 0, listed.describe()
    assert execution_id in {item["execution_id"] for item in json.loads(listed.stdout)}
    shown = await mesh_run(secured_mesh, *given, "show", execution_id, "--json", token=token)
    assert shown.returncode == 0, shown.describe()


async def test_user_code_sees_no_mesh_credentials_and_the_worker_claims_as_itself(
    secured_mesh: ProcessMesh, probe: Path
) -> None:
    result = await mesh_run(secured_mesh, "--token", WRITER, "run", str(probe), "--json")
    assert result.returncode == 0, result.describe()
    document = json.loads(result.stdout)
    assert document["status"] == "COMPLETED", document
    execution_id = document["execution_id"]
    results = {step["step"]: step["result"] for step in document["steps"]}
    python_env = results["start"]["environment"]
    shell_env = results["end"]
    # Positive controls: the probes did read their environments.
    assert "PATH" in python_env
    assert "PATH=" in json.dumps(shell_env)

    token_path = secured_mesh.run_dir / "mesh-auth" / "worker.token"
    token = token_path.read_text().strip()
    seen = json.dumps([python_env, shell_env])
    assert token not in seen
    assert str(token_path) not in seen and "mesh-auth" not in seen
    private = [name for name in python_env if name.startswith("NOETL_MESH_") or "DSN" in name]
    assert private == []
    assert "NOETL_MESH_" not in json.dumps(shell_env)

    async with database(secured_mesh.pg_dsn) as db:
        holders = await db.fetch(
            "SELECT DISTINCT worker_id FROM noetl.command WHERE execution_id = $1", int(execution_id)
        )
    assert [row["worker_id"] for row in holders] == [f"{socket.gethostname()}-worker"]
