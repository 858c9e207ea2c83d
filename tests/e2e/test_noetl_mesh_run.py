"""`python -m noetl_mesh --home <run dir> run FILE` against the already running session mesh.

The launcher finds the stack through <run dir>/state.json, which records the ports the stack
resolved (ephemeral ones included); `Stack.up()` returns that record unchanged when every
recorded component is alive, so the command must reuse the session mesh, not start another.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from noetl_mesh.state import StackInfo
from noetl_mesh.state import load as load_state
from tests.helpers.invariants import finish
from tests.helpers.mesh import Completed, ProcessMesh, mesh_run, step_result, step_stdout
from tests.helpers.shared import fixture_file

pytestmark = pytest.mark.e2e

HELLO_WORLD = "playbooks/hello_world/hello_world.yaml"


@pytest.fixture
def recorded(process_mesh: ProcessMesh) -> StackInfo:
    info = load_state(process_mesh.run_dir)
    assert info is not None, f"no state.json in {process_mesh.run_dir}"
    return info


def execution_id_of(result: Completed) -> str:
    found = re.search(r"^execution (\d+)$", result.stderr, re.MULTILINE)
    assert found, result.describe()
    return found.group(1)


def assert_same_stack(process_mesh: ProcessMesh, before: StackInfo, result: Completed) -> None:
    assert "starting the mesh" not in result.stderr, result.describe()
    assert load_state(process_mesh.run_dir) == before, "noetl-mesh run replaced the running stack"


async def test_hello_world_exits_0_and_prints_the_last_result(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, recorded: StackInfo
) -> None:
    result = await mesh_run(process_mesh, fixture_file(HELLO_WORLD))

    assert result.returncode == 0, result.describe()
    assert json.loads(result.stdout) == {"status": "complete"}
    assert_same_stack(process_mesh, recorded, result)
    run = await finish(gateway, process_mesh.pg_dsn, execution_id_of(result))
    assert run.status == "COMPLETED"


async def test_payload_changes_the_message(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, recorded: StackInfo
) -> None:
    result = await mesh_run(process_mesh, fixture_file(HELLO_WORLD), "--payload", '{"message":"Hi"}')

    assert result.returncode == 0, result.describe()
    assert json.loads(result.stdout) == {"status": "complete"}
    run = await finish(gateway, process_mesh.pg_dsn, execution_id_of(result))
    assert step_result(run.events, "test_step") == {"status": "ok", "data": {"message": "Hi"}}
    assert step_stdout(run.events, "test_step") == "HELLO_WORLD: Hi\n"
    assert_same_stack(process_mesh, recorded, result)


async def test_a_raising_python_step_exits_1_and_names_the_step(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, recorded: StackInfo, tmp_path: Path
) -> None:
    playbook = tmp_path / "raises.yaml"
    playbook.write_text(RAISES)
    result = await mesh_run(process_mesh, playbook)

    assert result.returncode == 1, result.describe()
    assert re.search(r"\bexplode failed\b", result.stderr), result.describe()
    assert "FAILED" in result.stderr
    run = await finish(gateway, process_mesh.pg_dsn, execution_id_of(result))
    assert run.status == "FAILED"
    failed = [e for e in run.events if e["event_type"] == "playbook.failed"]
    assert failed[0]["context"]["failed_steps"] == ["explode"]
    assert not any(e["node_name"] == "end" for e in run.events)
    assert_same_stack(process_mesh, recorded, result)


async def test_a_playbook_without_start_exits_2_with_the_validation_message(
    process_mesh: ProcessMesh, recorded: StackInfo, tmp_path: Path
) -> None:
    playbook = tmp_path / "no_start.yaml"
    playbook.write_text(NO_START)
    result = await mesh_run(process_mesh, playbook)

    assert result.returncode == 2, result.describe()
    assert "Workflow must have a step named 'start'" in result.stderr
    assert result.stdout == ""
    assert_same_stack(process_mesh, recorded, result)


RAISES = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: raises
  path: tests/e2e/raises
workflow:
  - step: start
    tool:
      kind: python
      code: |
        result = {"status": "initialized"}
    next:
      arcs:
        - step: explode
  - step: explode
    tool:
      kind: python
      code: |
        raise ValueError("kaboom from explode")
    next:
      arcs:
        - step: end
  - step: end
    tool:
      kind: python
      code: |
        result = {"status": "complete"}
"""

NO_START = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: no_start
  path: tests/e2e/mesh_run_no_start
workflow:
  - step: begin
    tool:
      kind: python
      code: |
        result = {"status": "never"}
"""
