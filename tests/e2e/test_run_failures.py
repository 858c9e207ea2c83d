"""Failure semantics on the whole mesh (dsl.md §12.11, §13, §17.4, §17.5), with playbooks of this suite."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.bus import feed_applied
from tests.helpers.eventlog import entered, issued_after, of, one, position, terminal_context
from tests.helpers.invariants import check_run, finish, run_playbook
from tests.helpers.mesh import ProcessMesh, events, execute, register, step_result
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

GATED = """\
        import os, time
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
"""

BROKEN_BRANCH = f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: broken_branch, path: tests/engine/broken_branch}}
workload: {{steady_gate: "", slow_gate: ""}}
workflow:
  - step: start
    tool: {{kind: noop}}
    next: [steady, slow, broken]
  - step: steady
    tool:
      kind: python
      input: {{gate: "{{{{ steady_gate }}}}"}}
      code: |
{GATED}        result = {{'steady': True}}
    next: steady_next
  - step: steady_next
    tool: {{kind: python, code: "result = {{'after': 'steady'}}"}}
  - step: slow
    tool:
      kind: python
      input: {{gate: "{{{{ slow_gate }}}}"}}
      code: |
{GATED}        result = {{'slow': True}}
    next: slow_next
  - step: slow_next
    tool: {{kind: python, code: "result = {{'after': 'slow'}}"}}
  - step: broken
    tool: {{kind: python, code: "raise ValueError('broken on purpose')"}}
"""


async def _until(http: httpx.AsyncClient, execution_id: str, event_type: str, step: str) -> None:
    async def seen() -> bool:
        found = await events(http, execution_id)
        return any(e["event_type"] == event_type and e["node_name"] == step for e in found)

    await wait_for(seen, within=30, what=f"{event_type} of {step}")


async def test_a_failing_branch_fails_the_run_after_its_siblings_finish(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    """While `slow` runs, `steady` finishes and its successor runs; once nothing runs the failure
    of `broken` ends the run (§12.3 step 1: before `slow`'s arcs are routed)."""
    await register(gateway, BROKEN_BRANCH)
    steady_gate, slow_gate = tmp_path / "steady", tmp_path / "slow"
    payload = {"steady_gate": str(steady_gate), "slow_gate": str(slow_gate)}
    execution_id = await execute(gateway, "tests/engine/broken_branch", payload)
    await _until(gateway, execution_id, "command.failed", "broken")
    steady_gate.touch()
    await _until(gateway, execution_id, "command.completed", "steady_next")
    assert not [e for e in await events(gateway, execution_id) if e["event_type"] == "playbook.failed"]
    slow_gate.touch()
    run = await finish(gateway, process_mesh.pg_dsn, execution_id)

    assert run.status == "FAILED"
    assert one(run.log, "command.failed", "broken").error == "ValueError: broken on purpose"
    assert step_result(run.events, "steady_next") == {"after": "steady"}
    assert step_result(run.events, "slow") == {"slow": True}
    assert not entered(run.log, "slow_next")
    failed = one(run.log, "playbook.failed")
    assert position(run.log, failed) == position(run.log, one(run.log, "command.completed", "slow")) + 1
    assert failed.error == "Failed steps: broken"
    assert terminal_context(run) == {
        "status": "FAILED",
        "error": "Failed steps: broken",
        "failed_steps": ["broken"],
        "final_step": "slow",
    }


BROKEN_ITERATION = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: broken_iteration, path: tests/engine/broken_iteration}
workload: {items: [1, 2, 3, 4]}
workflow:
  - step: start
    tool: {kind: noop}
    next: each
  - step: each
    loop: {in: "{{ items }}", iterator: item, spec: {mode: parallel}}
    tool:
      kind: python
      input: {item: "{{ item }}"}
      code: |
        import time
        if item == 2:
            raise RuntimeError('item 2 is bad')
        time.sleep(0.5)
        result = {'item': item}
    next:
      arcs:
        - {step: after, when: '{{ event.name == "loop.done" }}'}
  - step: after
    tool: {kind: noop}
"""


async def test_a_failing_iteration_fails_the_run_after_the_running_iterations(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, BROKEN_ITERATION)

    assert run.status == "FAILED"
    assert one(run.log, "command.failed", "each").error == "RuntimeError: item 2 is bad"
    # The three other iterations were running: the run ends after all of them report.
    assert len(of(run.log, "command.completed", "each")) == 3
    last_iteration = max(position(run.log, e) for e in of(run.log, "command.completed", "each"))
    assert position(run.log, one(run.log, "playbook.failed")) > last_iteration
    assert terminal_context(run)["failed_steps"] == ["each"]
    assert not of(run.log, "loop.done") and not entered(run.log, "after")


TIMED = f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: timed_step, path: tests/engine/timed_step}}
workload: {{gate: ""}}
workflow:
  - step: start
    tool: {{kind: noop}}
    next: slow
  - step: slow
    spec: {{timeout: 1}}
    tool:
      kind: python
      input: {{gate: "{{{{ gate }}}}"}}
      code: |
{GATED}        result = {{'finished': True}}
    next: end
  - step: end
    tool: {{kind: noop}}
"""


async def test_a_step_timeout_fails_the_step(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, TIMED, {"gate": str(tmp_path / "never")})

    assert run.status == "FAILED"
    error = "timeout: step 'slow' exceeded 1s"
    assert one(run.log, "call.error", "slow").context["error"] == error
    assert one(run.log, "command.failed", "slow").error == error
    started = one(run.log, "command.started", "slow").created_at
    failed = one(run.log, "command.failed", "slow").created_at
    assert started is not None and failed is not None
    assert 1.0 <= (failed - started).total_seconds() < 5.0
    assert terminal_context(run)["failed_steps"] == ["slow"]
    assert not entered(run.log, "end")


ON_ERROR = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: on_error_route, path: tests/engine/on_error_route}
workflow:
  - step: start
    tool: {kind: noop}
    next: load
  - step: load
    spec:
      on_error:
        - {step: never, when: "{{ output.error == 'something else' }}"}
        - {step: recover, set: {ctx.recovered_from: load}}
    tool: {kind: python, code: "raise KeyError('missing_table')"}
    next: report
  - step: never
    tool: {kind: noop}
  - step: recover
    tool:
      kind: python
      input: {source: "{{ recovered_from }}"}
      code: "result = {'recovered': source}"
    next: report
  - step: report
    tool: {kind: python, input: {fix: "{{ recover.recovered }}"}, code: "result = {'fix': fix}"}
"""


async def test_an_on_error_route_handles_the_failure(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, ON_ERROR, handled_failures=True)

    assert run.status == "COMPLETED"
    assert one(run.log, "command.failed", "load").error == "KeyError: 'missing_table'"
    enter = one(run.log, "step.enter", "recover")
    assert enter.meta["on_error_of"] == "load"
    assert not entered(run.log, "never")
    assert step_result(run.events, "recover") == {"recovered": "load"}
    assert step_result(run.events, "report") == {"fix": "load"}
    assert one(run.log, "playbook.completed").context == {"status": "COMPLETED", "final_step": "report"}


CANCELLED_LOOP = f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: cancelled_loop, path: tests/engine/cancelled_loop}}
workload: {{gate: "", n: 8}}
workflow:
  - step: start
    tool: {{kind: noop}}
    next: each
  - step: each
    loop: {{in: "{{{{ n }}}}", iterator: i, spec: {{mode: parallel, max_in_flight: 2}}}}
    tool:
      kind: python
      input: {{gate: "{{{{ gate }}}}"}}
      code: |
{GATED}        result = {{'i': i}}
    next:
      arcs:
        - {{step: after, when: '{{{{ event.name == "loop.done" }}}}'}}
  - step: after
    tool: {{kind: noop}}
"""


async def test_cancel_mid_loop_stops_every_further_dispatch(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    await register(gateway, CANCELLED_LOOP)
    gate = tmp_path / "gate"
    execution_id = await execute(gateway, "tests/engine/cancelled_loop", {"gate": str(gate)})

    async def both_claimed() -> bool:
        found = await events(gateway, execution_id)
        return sum(1 for e in found if e["event_type"] == "command.claimed" and e["node_name"] == "each") == 2

    await wait_for(both_claimed, within=30, what="two claimed iterations")
    response = await gateway.post(f"/api/executions/{execution_id}/cancel", json={"reason": "mid-loop"})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    gate.touch()  # both running iterations finish; nothing refills the loop

    async def iterations_done() -> bool:
        found = await events(gateway, execution_id)
        return (
            sum(1 for e in found if e["event_type"] == "command.completed" and e["node_name"] == "each") == 2
        )

    await wait_for(iterations_done, within=30, what="the running iterations to finish")

    async def applied() -> bool:
        stored = len(await events(gateway, execution_id))
        shards = len(process_mesh.shard_dsns)
        return await feed_applied(process_mesh.info.nats_url, int(execution_id), shards, stored)

    # Whatever a pass over the completions issued is in the log before the feed acknowledges them.
    await wait_for(applied, within=30, what="the feed to apply every event", interval=0.1)
    found = await events(gateway, execution_id)
    log = await check_run(process_mesh.pg_dsn, execution_id, found, self_ended=False)

    cancelled = one(log, "execution.cancelled")
    assert issued_after(log, cancelled) == []
    assert len(of(log, "command.issued", "each")) == 2
    assert not of(log, "loop.done") and not of(log, "playbook.completed") and not of(log, "playbook.failed")
    detail = (await gateway.get(f"/api/executions/{execution_id}")).json()
    assert detail["status"] == "CANCELLED"
