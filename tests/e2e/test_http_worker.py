"""A worker that speaks HTTP only runs a playbook end to end through the gateway (dsl.md §16):
bus notifications for its own pool, everything else over the NoETL HTTP API."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.helpers.http_worker import http_worker
from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, register, step_result

pytestmark = pytest.mark.e2e

PATH = "tests/http_worker/three_steps"
PLAYBOOK = f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: three_steps
  path: {PATH}
workflow:
  - step: start
    tool: {{kind: noop}}
    next:
      arcs:
        - step: compute
  - step: compute
    tool:
      kind: python
      code: |
        result = {{"answer": 42, "words": ["über", "mesh"]}}
    next:
      arcs:
        - step: end
  - step: end
    tool: {{kind: noop}}
"""


async def pool_entry(gateway: httpx.AsyncClient, name: str) -> dict[str, object]:
    response = await gateway.get("/api/worker/pools", params={"runtime": "http"})
    assert response.status_code == 200, response.text
    found = [item for item in response.json()["items"] if item["name"] == name]
    assert len(found) == 1, response.text
    entry: dict[str, object] = found[0]
    return entry


async def test_an_http_only_worker_runs_a_playbook_to_completion(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    # A pool no reference worker consumes: only the HTTP worker can run these commands.
    pool = f"httponly{uuid.uuid4().hex[:6]}"
    name = f"http-worker-{pool}"
    await register(gateway, PLAYBOOK)
    async with http_worker(
        process_mesh.gateway_url, process_mesh.info.nats_url, name=name, pool=pool
    ) as worker:
        assert (await pool_entry(gateway, name))["status"] == "ready"
        started = await gateway.post("/api/execute", json={"path": PATH, "execution_pool": pool})
        assert started.status_code == 200, started.text
        run = await finish(gateway, process_mesh.pg_dsn, started.json()["execution_id"])

    assert worker.failures == []
    assert run.status == "COMPLETED"
    assert len(worker.ran) == 3
    claims = [e for e in run.events if e["event_type"] == "command.claimed"]
    assert [e["node_name"] for e in claims] == ["start", "compute", "end"]
    assert {e["result"]["context"]["worker_id"] for e in claims} == {name}
    # The step results, as GET /api/executions/{id} shows them.
    assert step_result(run.events, "compute") == {"answer": 42, "words": ["über", "mesh"]}
    assert step_result(run.events, "start") == {}
    assert run.types()[-1] == ("playbook.completed", PATH)
    assert (await pool_entry(gateway, name))["status"] == "offline"
