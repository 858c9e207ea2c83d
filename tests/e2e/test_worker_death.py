"""A worker killed mid-command: the reaper re-announces the command and another worker runs it
(dsl.md §17.7, data-model.md §6.3, §6.4).

A stack of its own, with a 2 s claim lease, the reaper every 0.5 s and workers heartbeating every
0.5 s, plus a second worker process beside the supervisor's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.eventlog import meta, of, one
from tests.helpers.infra import PgServer
from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, database, execute, register, running_process_mesh, wait_claimed
from tests.helpers.workers import extra_worker, kill_now, stack_worker_id, stack_worker_pid

pytestmark = pytest.mark.e2e

SHORT_LEASES = {
    "NOETL_COMMAND_CLAIM_LEASE_SECONDS": "2",
    "NOETL_COMMAND_REAPER_INTERVAL_SECONDS": "0.5",
    "NOETL_WORKER_HEARTBEAT_SECONDS": "0.5",
}

LONG_COMMAND = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: long_command, path: tests/engine/long_command}
workload: {gate: ""}
workflow:
  - step: start
    tool:
      kind: python
      input: {gate: "{{ gate }}"}
      code: |
        import os, time
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        result = {'released': os.path.exists(gate)}
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' }}"
              then: {do: retry, attempts: 3, delay: 0.1}
    next: end
  - step: end
    tool: {kind: noop}
"""


@pytest.fixture(scope="module")
async def short_lease_mesh(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ProcessMesh]:
    async with running_process_mesh(pg_server, tmp_path_factory.mktemp("lease_mesh"), SHORT_LEASES) as mesh:
        yield mesh


async def _reaper_retries(mesh: ProcessMesh) -> float:
    url = f"http://127.0.0.1:{mesh.info.ports.execution_metrics}/metrics"
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(url)).text
    wanted = 'noetl_command_reaper_total{action="retried"} '
    return next((float(line[len(wanted) :]) for line in text.splitlines() if line.startswith(wanted)), 0.0)


async def test_a_killed_workers_command_is_rerun_by_another_worker(
    short_lease_mesh: ProcessMesh, tmp_path: Path
) -> None:
    mesh = short_lease_mesh
    stack_worker = stack_worker_pid(mesh.info)
    stack_id = stack_worker_id()
    async with (
        extra_worker(mesh.info, "worker-second") as second,
        httpx.AsyncClient(base_url=mesh.gateway_url, timeout=30.0) as gateway,
    ):
        await register(gateway, LONG_COMMAND)
        retried_before = await _reaper_retries(mesh)
        gate = tmp_path / "gate"
        execution_id = await execute(gateway, "tests/engine/long_command", {"gate": str(gate)})
        claim = await wait_claimed(gateway, execution_id, "start")
        assert claim.worker_id in (stack_id, second.worker_id)
        kill_now(second.process.pid if claim.worker_id == second.worker_id else stack_worker)
        survivor = stack_id if claim.worker_id == second.worker_id else second.worker_id
        gate.touch()  # whoever runs the command next finishes it at once
        run = await finish(gateway, mesh.pg_dsn, execution_id, seconds=60)

        assert run.status == "COMPLETED"
        issued = one(run.log, "command.issued", "start")
        claims = of(run.log, "command.claimed", "start")
        assert [e.context["worker_id"] for e in claims] == [claim.worker_id, survivor]
        assert {e.command_id for e in claims} == {issued.command_id}
        assert claims[1].meta["reclaimed"] is True
        assert claims[1].meta["reclaimed_from_worker"] == claim.worker_id
        assert claims[1].meta["reclaimed_reason"] == "lease_expired"
        assert not of(run.log, "command.failed")
        assert one(run.log, "command.completed", "start").meta["worker_id"] == survivor
        assert one(run.log, "call.done", "start").context["result"]["context"]["data"] == {"released": True}
        # The dead worker sent nothing once the survivor had it.
        late = [
            e
            for e in run.log
            if e.event_id > claims[1].event_id and meta(e).get("worker_id") == claim.worker_id
        ]
        assert late == []
        async with database(mesh.pg_dsn) as conn:
            attempt = await conn.fetchval(
                "SELECT attempt FROM noetl.command WHERE command_id = $1", issued.command_id
            )
        assert attempt == 2
        assert await _reaper_retries(mesh) == retried_before + 1
