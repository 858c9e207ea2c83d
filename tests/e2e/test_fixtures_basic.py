"""The public fixtures `hello_world` and `simple_python` through the gateway (fixtures README §1, §2)."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, execute, register, step_result, step_stdout
from tests.helpers.shared import fixture_file

pytestmark = pytest.mark.e2e

HELLO_WORLD = "playbooks/hello_world/hello_world.yaml"
HELLO_PATH = "fixtures/playbooks/hello_world"
SIMPLE_PYTHON = "playbooks/simple_python.yaml"
SIMPLE_PATH = "test/simple_python"


def _command_cycle(step: str) -> list[tuple[str, str]]:
    """Events 3 to 8 of dsl.md §10.2 for one step, from `command.issued` to `command.completed`."""
    return [
        ("command.issued", step),
        ("command.claimed", step),
        ("command.started", step),
        ("call.done", step),
        ("step.exit", step),
        ("command.completed", step),
    ]


async def test_hello_world_completes_with_the_documented_results(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    registered = await register(gateway, fixture_file(HELLO_WORLD))
    assert registered["path"] == HELLO_PATH
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, HELLO_PATH))

    assert run.status == "COMPLETED", run.failures
    assert run.detail["path"] == HELLO_PATH
    assert step_result(run.events, "start") == {"status": "initialized"}
    assert step_result(run.events, "test_step") == {"status": "ok", "data": {"message": "Hello World"}}
    assert step_stdout(run.events, "test_step") == "HELLO_WORLD: Hello World\n"
    assert step_result(run.events, "end") == {"status": "complete"}
    assert run.events[-1]["event_type"] == "playbook.completed"


async def test_hello_world_writes_the_linear_event_order(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    """dsl.md §10.2 extended to three steps: a non-loop `start` gets no `step.enter`, later steps do."""
    await register(gateway, fixture_file(HELLO_WORLD))
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, HELLO_PATH))

    assert run.types() == [
        ("playbook.initialized", HELLO_PATH),
        ("workflow.initialized", "workflow"),
        *_command_cycle("start"),
        ("step.enter", "test_step"),
        *_command_cycle("test_step"),
        ("step.enter", "end"),
        *_command_cycle("end"),
        ("playbook.completed", HELLO_PATH),
    ]


async def test_hello_world_status_route_reports_the_finished_run(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, fixture_file(HELLO_WORLD))
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, HELLO_PATH))

    response = await gateway.get(f"/api/executions/{run.execution_id}/status")
    assert response.status_code == 200
    status = response.json()
    assert status["execution_id"] == run.execution_id
    assert status["completed"] is True
    assert status["failed"] is False
    assert status["completion_inferred"] is False
    assert status["current_step"] == "end"
    assert status["completed_steps"] == ["start", "test_step", "end"]
    assert status["end_time"] is not None


async def test_payload_overrides_the_workload(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    await register(gateway, fixture_file(HELLO_WORLD))
    run = await finish(
        gateway, process_mesh.pg_dsn, await execute(gateway, HELLO_PATH, {"message": "Bonjour"})
    )

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "test_step") == {"status": "ok", "data": {"message": "Bonjour"}}
    assert step_stdout(run.events, "test_step") == "HELLO_WORLD: Bonjour\n"


async def test_simple_python_completes_with_the_documented_results(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    registered = await register(gateway, fixture_file(SIMPLE_PYTHON))
    assert registered["path"] == SIMPLE_PATH
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, SIMPLE_PATH))

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "start") == {
        "status": "ok",
        "message": "Hello from NoETL",
        "timestamp": "2025-12-11",
    }
    assert step_stdout(run.events, "start") == "Processing: Hello from NoETL\n"
    assert step_result(run.events, "end") == {"status": "completed"}
    assert run.types() == [
        ("playbook.initialized", SIMPLE_PATH),
        ("workflow.initialized", "workflow"),
        *_command_cycle("start"),
        ("step.enter", "end"),
        *_command_cycle("end"),
        ("playbook.completed", SIMPLE_PATH),
    ]
