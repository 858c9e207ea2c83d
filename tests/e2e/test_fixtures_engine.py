"""Public fixtures that need neither Postgres nor the mock HTTP API, through the gateway.

Exact values from the fixtures README §1 and §2: pipelines and their per-task results (C4),
arc-level `set`, policy `then.set` into the next step (C2), `input_data` (C1), workbook
routing, inclusive fan-out and fan-in barriers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import ProcessMesh, execute, register, step_result, step_stdout
from tests.helpers.shared import fixture_file

pytestmark = pytest.mark.e2e


async def _run(
    gateway: httpx.AsyncClient,
    mesh: ProcessMesh,
    relative: str,
    path: str,
    payload: dict[str, Any] | None = None,
) -> FinishedRun:
    registered = await register(gateway, fixture_file(relative))
    assert registered["path"] == path
    return await finish(gateway, mesh.pg_dsn, await execute(gateway, path, payload))


def _entered(run: FinishedRun, step: str) -> int:
    return sum(1 for kind, name in run.types() if kind == "step.enter" and name == step)


def _ran(run: FinishedRun) -> set[str]:
    return {name for kind, name in run.types() if kind == "call.done" and name is not None}


def _index(run: FinishedRun, kind: str, step: str) -> int:
    return run.types().index((kind, step))


async def test_args_passing(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    run = await _run(gateway, process_mesh, "playbooks/test_args_passing.yaml", "tests/test_args_passing")

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "start") == {"init": {"status": "initialized"}}
    assert step_result(run.events, "use_vars") == {"compute": {"status": "success", "result": 300}}
    assert step_stdout(run.events, "use_vars") == "test_var=100, computed=200, result=300\n"
    assert step_result(run.events, "end") == {"complete": {"status": "complete"}}


async def test_end_with_action(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    run = await _run(
        gateway, process_mesh, "playbooks/test_end_with_action.yaml", "tests/control-flow/end_with_action"
    )

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "process_data") == {
        "process": {
            "status": "success",
            "data": {"records_processed": 100, "temp_table": "temp_session_12345"},
        }
    }
    assert step_result(run.events, "end") == {
        "cleanup": {
            "status": "completed",
            "message": "Cleanup performed on temp_session_12345",
            "data": {"cleaned_up": True, "table": "temp_session_12345"},
        }
    }


CONTROL_FLOW = "playbooks/control_flow_workbook/control_flow_workbook.yaml"
CONTROL_FLOW_PATH = "fixtures/playbooks/control_flow_workbook"


async def test_control_flow_workbook_hot_route(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    run = await _run(gateway, process_mesh, CONTROL_FLOW, CONTROL_FLOW_PATH)

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "eval_flag") == {"is_hot": True, "message": "hot"}
    assert step_result(run.events, "hot_path") == {"status": "routing_to_parallel"}
    assert step_result(run.events, "hot_task_a") == {"who": "A"}
    assert step_result(run.events, "hot_task_b") == {"who": "B"}
    assert step_result(run.events, "end") == {"status": "complete"}
    assert not _ran(run) & {"cold_path", "cold_task"}
    assert ("step.skipped", "cold_path") in run.types()
    assert _entered(run, "end") == 1
    assert _index(run, "step.enter", "end") > max(
        _index(run, "command.completed", "hot_task_a"), _index(run, "command.completed", "hot_task_b")
    )


async def test_control_flow_workbook_cold_route(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await _run(gateway, process_mesh, CONTROL_FLOW, CONTROL_FLOW_PATH, {"temperature_c": 10})

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "eval_flag") == {"is_hot": False, "message": "cold"}
    assert step_result(run.events, "cold_path") == {"status": "routing_to_cold"}
    assert step_result(run.events, "cold_task") == {"who": "C"}
    assert step_result(run.events, "end") == {"status": "complete"}
    assert not _ran(run) & {"hot_path", "hot_task_a", "hot_task_b"}
    assert _entered(run, "end") == 1


async def test_fanout_reduce_phase6(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    run = await _run(
        gateway,
        process_mesh,
        "playbooks/fanout_reduce/fanout_reduce_phase6.yaml",
        "tests/fixtures/fanout_reduce_phase6",
    )

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "start") == {"status": "ok"}
    assert step_result(run.events, "normalize_customer") == {"normalized": True}
    assert step_result(run.events, "enrich_customer") == {"enriched": True}
    assert step_result(run.events, "reduce_customer") == {"reduced": True}
    assert _entered(run, "reduce_customer") == 1
    assert _index(run, "step.enter", "reduce_customer") > max(
        _index(run, "command.completed", "normalize_customer"),
        _index(run, "command.completed", "enrich_customer"),
    )


async def test_vars_simple(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    run = await _run(gateway, process_mesh, "playbooks/vars_test/test_vars_simple.yaml", "test/vars_simple")

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "start") == {"start_task": {"status": "initialized"}}
    set_var = step_result(run.events, "set_var")
    assert set_var["set_vars"] == {
        "status": "success",
        "test_counter": 42,
        "message": "Variable set successfully",
    }
    assert set_var["_context_updates"] == {"test_counter": 42, "set_message": "Variable set successfully"}
    assert step_result(run.events, "get_var") == {
        "get_vars": {
            "status": "success",
            "value": 42,
            "message": "Variable set successfully",
            "verification": True,
        }
    }
    assert step_stdout(run.events, "get_var") == (
        "Retrieved test_counter: 42\nMessage: Variable set successfully\n"
    )
    assert step_result(run.events, "end") == {"end_task": {"status": "complete"}}
