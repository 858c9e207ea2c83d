"""Cancellation, finalize and rerun through the gateway (dsl.md §13, http-api.md §4.8 to §4.11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.helpers.invariants import check_run, finish
from tests.helpers.mesh import ProcessMesh, events, execute, register, wait_claimed, wait_terminal
from tests.helpers.waiting import wait_for

TWO_STEPS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: {name}, path: {path}}}
workload: {{gate: "", who: "first"}}
workflow:
  - step: start
    tool:
      kind: python
      input: {{gate: "{{{{ gate }}}}", who: "{{{{ who }}}}"}}
      code: |
        import os, time
        deadline = time.monotonic() + 30
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        result = {{"who": who}}
    next: {{spec: {{mode: exclusive}}, arcs: [{{step: second}}]}}
  - step: second
    tool: {{kind: noop}}
"""


async def _playbook(http: httpx.AsyncClient, path: str) -> str:
    await register(http, TWO_STEPS.format(name=path.rpartition("/")[2], path=path))
    return path


async def test_cancel_stops_dispatch_and_refuses_later_claims(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    path = await _playbook(gateway, "tests/cancel/two_steps")
    gate = tmp_path / "gate"
    execution_id = await execute(gateway, path, {"gate": str(gate)})
    await wait_claimed(gateway, execution_id, "start")

    response = await gateway.post(f"/api/executions/{execution_id}/cancel", json={"reason": "stop it"})
    assert response.status_code == 200
    assert response.json() == {
        "status": "cancelled",
        "execution_id": execution_id,
        "cancelled_executions": [execution_id],
        "message": "Cancelled 1 execution(s)",
    }
    gate.touch()  # the running command finishes; its events are stored but drive nothing

    async def start_finished() -> bool:
        return any(e["event_type"] == "command.completed" for e in await events(gateway, execution_id))

    await wait_for(start_finished, within=30, what="the cancelled run's running command to finish")
    found = await events(gateway, execution_id)
    cancelled_at = next(e["event_id"] for e in found if e["event_type"] == "execution.cancelled")
    assert not [e for e in found if e["event_type"] == "command.issued" and e["event_id"] > cancelled_at]
    assert not [
        e
        for e in found
        if e["event_type"].startswith("playbook.") and e["event_type"] != "playbook.initialized"
    ]
    detail = (await gateway.get(f"/api/executions/{execution_id}")).json()
    assert detail["status"] == "CANCELLED"
    await check_run(process_mesh.info.pg_dsn, execution_id, found, self_ended=False)

    check = (await gateway.get(f"/api/executions/{execution_id}/cancellation-check")).json()
    assert check["cancelled"] is True and check["status"] == "CANCELLED" and check["completed"] is False
    again = (await gateway.post(f"/api/executions/{execution_id}/cancel", json={})).json()
    assert again["status"] == "already_completed" and again["cancelled_executions"] == []

    issued = next(e for e in found if e["event_type"] == "command.issued")

    async def refused_as_ended() -> bool:
        # Never granted; `active_claim` until the command row has projected the completion the
        # log already holds (a few milliseconds), then `already_terminal`.
        claim = await gateway.post(
            f"/api/commands/{issued['event_id']}/claim", json={"worker_id": "latecomer"}
        )
        assert claim.status_code == 409, claim.text
        return bool(claim.json()["detail"]["code"] == "already_terminal")

    await wait_for(refused_as_ended, within=10, what="a late claim to be refused as already_terminal")


LONG_STEP = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: long_step, path: {path}}}
workload: {{marker: ""}}
workflow:
  - step: start
    tool:
      kind: python
      input: {{marker: "{{{{ marker }}}}"}}
      code: |
        import time
        time.sleep(60)
        open(marker, "w").write("ran to the end")
        result = {{"slept": 60}}
    next: {{spec: {{mode: exclusive}}, arcs: [{{step: second}}]}}
  - step: second
    tool: {{kind: noop}}
"""


async def test_cancel_stops_a_running_tool(gateway: httpx.AsyncClient, tmp_path: Path) -> None:
    """dsl.md §13: the worker checks for its execution's cancellation while a tool runs (every
    `NOETL_WORKER_CANCEL_CHECK_SECONDS`, 10 s), stops the tool and reports `command.failed` with
    error `cancelled`; the step's code never reaches its end."""
    path = "tests/cancel/long_step"
    await register(gateway, LONG_STEP.format(path=path))
    marker = tmp_path / "marker"
    execution_id = await execute(gateway, path, {"marker": str(marker)})
    await wait_claimed(gateway, execution_id, "start")
    response = await gateway.post(f"/api/executions/{execution_id}/cancel", json={"reason": "too slow"})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"

    async def stopped() -> dict[str, Any] | None:
        found = await events(gateway, execution_id)
        return next((e for e in found if e["event_type"] == "command.failed"), None)

    failed = await wait_for(stopped, within=30, what="the running tool to be stopped")
    assert failed["node_name"] == "start" and failed["error"] == "cancelled"
    found = await events(gateway, execution_id)
    assert not [e for e in found if e["event_type"] in ("command.completed", "call.done")]
    assert not [e for e in found if e["event_type"] == "command.issued" and e["node_name"] == "second"]
    assert (await gateway.get(f"/api/executions/{execution_id}")).json()["status"] == "CANCELLED"
    assert not marker.exists(), "the python child should have been killed, not left to finish"


async def test_cascade_cancels_running_children_only_when_asked(
    gateway: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = await _playbook(gateway, "tests/cancel/family")
    gate = tmp_path / "gate"
    parent = await execute(gateway, path, {"gate": str(gate)})
    child = (
        await gateway.post(
            "/api/execute", json={"path": path, "payload": {"gate": str(gate)}, "parent_execution_id": parent}
        )
    ).json()["execution_id"]
    lone_parent = await execute(gateway, path, {"gate": str(gate)})
    lone_child = (
        await gateway.post(
            "/api/execute",
            json={"path": path, "payload": {"gate": str(gate)}, "parent_execution_id": lone_parent},
        )
    ).json()["execution_id"]

    cascaded = (await gateway.post(f"/api/executions/{parent}/cancel", json={"cascade": True})).json()
    assert cascaded["cancelled_executions"] == [parent, child]
    single = (await gateway.post(f"/api/executions/{lone_parent}/cancel", json={"cascade": False})).json()
    assert single["cancelled_executions"] == [lone_parent]
    gate.touch()
    assert (await wait_terminal(gateway, lone_child))["status"] == "COMPLETED"
    assert (await gateway.get(f"/api/executions/{child}")).json()["status"] == "CANCELLED"


async def test_finalize_fails_an_abandoned_run_once(gateway: httpx.AsyncClient, tmp_path: Path) -> None:
    path = await _playbook(gateway, "tests/finalize/two_steps")
    gate = tmp_path / "gate"
    execution_id = await execute(gateway, path, {"gate": str(gate)})
    await wait_claimed(gateway, execution_id, "start")

    done = (
        await gateway.post(f"/api/executions/{execution_id}/finalize", json={"reason": "worker lost"})
    ).json()
    assert done == {
        "status": "finalized",
        "execution_id": execution_id,
        "message": f"Emitted terminal events for execution {execution_id}",
    }
    gate.touch()
    detail = (await gateway.get(f"/api/executions/{execution_id}")).json()
    assert detail["status"] == "FAILED" and detail["error"] == "worker lost"
    again = (await gateway.post(f"/api/executions/{execution_id}/finalize")).json()
    assert again["status"] == "already_completed"
    unknown = (await gateway.post("/api/executions/1234/finalize")).json()
    assert unknown == {
        "status": "not_found",
        "execution_id": "1234",
        "message": "Execution 1234 not found in engine state store",
    }


async def test_rerun_repeats_the_source_run_with_overrides(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    path = await _playbook(gateway, "tests/rerun/two_steps")
    source = await execute(gateway, path, {"who": "original"})
    await finish(gateway, process_mesh.info.pg_dsn, source)

    same = (await gateway.post(f"/api/executions/{source}/rerun", json={})).json()
    assert same["status"] == "started" and same["execution_id"] != source
    changed = (
        await gateway.post(f"/api/executions/{source}/rerun", json={"workload": {"who": "again"}})
    ).json()
    for rerun, who in ((same["execution_id"], "original"), (changed["execution_id"], "again")):
        run = await finish(gateway, process_mesh.info.pg_dsn, rerun)
        assert run.detail["status"] == "COMPLETED"
        done = next(e for e in run.events if e["event_type"] == "call.done" and e["node_name"] == "start")
        assert done["result"]["context"]["result"]["context"]["data"] == {"who": who}
    missing = await gateway.post("/api/executions/1234/rerun", json={})
    assert missing.status_code == 404 and missing.json() == {"detail": "Execution 1234 not found"}


async def test_unknown_executions(gateway: httpx.AsyncClient) -> None:
    for route in ("cancel", "cancellation-check"):
        method = gateway.post if route == "cancel" else gateway.get
        response = await method(f"/api/executions/1234/{route}")
        assert response.status_code == 404
        assert response.json() == {"detail": "Execution 1234 not found"}
    bad = await gateway.post("/api/executions/abc/cancel")
    assert bad.status_code == 422
