"""A run driven through HTTP alone, its worker events arriving via `POST /api/events/batch` (http-api.md §5.2).

The run goes to a pool no mesh worker serves, so this test is its worker: it claims each issued
command through the gateway and reports it with one batch per command, as an HTTP worker would.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, events, register
from tests.helpers.playbooks import noop_chain
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

POOL = "batch-e2e"
WORKER = "batch-e2e-worker"
STEPS = ("start", "middle", "end")


def report(command_id: int, step: str) -> list[dict[str, Any]]:
    """A successful command's events, in the order the reference worker sends them."""
    envelope = {"status": "success", "context": {"data": {"step": step}, "status": "success"}}
    meta = {"command_id": command_id}
    return [
        {"step": step, "name": "command.started", "payload": {"command_id": command_id}, "meta": meta},
        {
            "step": step,
            "name": "call.done",
            "payload": {"command_id": command_id, "call_index": 0, "result": envelope},
            "meta": meta,
        },
        {
            "step": step,
            "name": "step.exit",
            "payload": {"command_id": command_id, "status": "COMPLETED", "result": envelope},
            "meta": meta,
        },
        {
            "step": step,
            "name": "command.completed",
            "payload": {"command_id": command_id, "status": "success"},
            "meta": meta,
            "actionable": True,
        },
    ]


async def next_issued(gateway: httpx.AsyncClient, execution_id: str, handled: set[int]) -> int:
    """The id of a `command.issued` event not handled yet, waiting for the orchestrator to write one."""

    async def issued() -> int | None:
        for event in await events(gateway, execution_id):
            if event["event_type"] == "command.issued" and event["event_id"] not in handled:
                return int(event["event_id"])
        return None

    return await wait_for(issued, what=f"a new command of execution {execution_id}")


async def test_a_run_completes_with_its_worker_events_sent_in_batches(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    path = f"tests/batch-e2e/{uuid.uuid4().hex[:10]}"
    await register(gateway, noop_chain(path, STEPS))
    started = await gateway.post("/api/execute", json={"path": path, "execution_pool": POOL})
    assert started.status_code == 200, started.text
    execution_id = started.json()["execution_id"]

    handled: set[int] = set()
    generated: list[int] = []
    for step in STEPS:
        event_id = await next_issued(gateway, execution_id, handled)
        handled.add(event_id)
        claim = await gateway.post(f"/api/commands/{event_id}/claim", json={"worker_id": WORKER})
        assert claim.status_code == 200, claim.text
        command = claim.json()
        assert command["node_name"] == step
        command_id = command["meta"]["command_id"]
        body = {"execution_id": execution_id, "worker_id": WORKER, "events": report(command_id, step)}
        headers = {"Idempotency-Key": f"command-{command_id}"}
        accepted = await gateway.post("/api/events/batch", json=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["duplicate"] is False
        generated.append(accepted.json()["commands_generated"])

        # A worker retrying after a lost answer: nothing stored twice, nothing orchestrated twice.
        again = await gateway.post("/api/events/batch", json=body, headers=headers)
        assert (again.json()["duplicate"], again.json()["event_ids"], again.json()["commands_generated"]) == (
            True,
            accepted.json()["event_ids"],
            0,
        )

    # Ingest never waits on orchestration (docs/decisions.md): the shard reacts after the answer.
    assert generated == [0, 0, 0]
    run = await finish(gateway, process_mesh.pg_dsn, execution_id)
    assert run.status == "COMPLETED"
    assert [name for kind, name in run.types() if kind == "command.completed"] == list(STEPS)
