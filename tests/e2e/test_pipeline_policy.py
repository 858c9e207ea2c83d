"""Policy rules and pipelines on the real worker (dsl.md §9.11, §17.2), with playbooks of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, execute, register, step_result

pytestmark = pytest.mark.e2e

RETRIED_TOOL = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: single_tool_retry
  path: tests/worker/single_tool_retry
workload:
  marker: ""
workflow:
  - step: start
    tool:
      kind: python
      input:
        marker: "{{ marker }}"
      code: |
        import os
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("the first attempt fails")
        result = {"attempts": "two"}
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' and output.error.code == 'RuntimeError' }}"
              then: {do: retry, attempts: 2, delay: 0.1}
"""

FAILING_PIPELINE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: failing_pipeline
  path: tests/worker/failing_pipeline
workflow:
  - step: start
    tool:
      - name: produce
        kind: python
        code: "result = {'count': 4}"
        set:
          count: "{{ output.count }}"
      - name: check
        kind: python
        input:
          count: "{{ count }}"
        code: "assert count == 5, f'Expected 5, got {count}'"
    next:
      - step: end
  - step: end
    tool: {kind: noop}
"""


async def test_a_single_tool_is_retried_by_its_policy(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    await register(gateway, RETRIED_TOOL)
    payload: dict[str, Any] = {"marker": str(tmp_path / "attempted")}
    run = await finish(
        gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/single_tool_retry", payload)
    )

    assert run.status == "COMPLETED"
    assert step_result(run.events, "start") == {"attempts": "two"}
    assert (tmp_path / "attempted").exists()


async def test_a_failing_task_fails_the_step_and_the_run(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, FAILING_PIPELINE)
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/failing_pipeline"))

    assert run.status == "FAILED"
    failed = [e for e in run.events if e["event_type"] == "command.failed"]
    assert [(e["node_name"], e["error"]) for e in failed] == [("start", "AssertionError: Expected 5, got 4")]
    assert ("call.done", "start") not in run.types()
    assert ("step.enter", "end") not in run.types()
