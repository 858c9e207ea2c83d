"""A shard down on a three-shard mesh: its runs pause while the other shards' runs complete, and
once it is back its runs finish (issue #15).

"Down" is the whole shard, its execution, events and outbox processes, killed together with runs
in flight; its database stays (it is the shared Postgres that would have to fail for that, which
test_crash_recovery.py covers). The mesh is unsupervised, so the shard stays down until the test
starts it again with `Stack.repair`, as the supervisor or Kubernetes would.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kernel.sharding import shard_for
from tests.helpers.infra import PgServer
from tests.helpers.invariants import finish
from tests.helpers.mesh import (
    ProcessMesh,
    database,
    execute,
    execution_database,
    register,
    running_process_mesh,
)
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.fault

SHARDS = 3
DOWN = 1
RUNS = 12
# Short leases: a command whose shard died under its worker is re-run within seconds.
ENV = {
    "NOETL_COMMAND_CLAIM_LEASE_SECONDS": "4",
    "NOETL_COMMAND_REAPER_INTERVAL_SECONDS": "1",
    "NOETL_COMMAND_REAPER_PENDING_RETRY_SECONDS": "6",
    "NOETL_RECONCILE_INTERVAL_SECONDS": "1",
}
PAUSE_SECONDS = 8.0
RECOVERY_SECONDS = 90.0

# A command whose worker lost its shard mid-run is re-run when its policy allows a retry.
RETRY = "{when: \"{{ output.status == 'error' }}\", then: {do: retry, attempts: 3, delay: 0.1}}"
CHAIN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: shard_down_chain, path: tests/fault/shard_down_chain}
workflow:
  - step: start
    tool: {kind: python, code: "import time; time.sleep(0.2); result = {'n': 1}", spec: {policy: {rules: [RETRY]}}}
    next: second
  - step: second
    tool:
      kind: python
      input: {n: "{{ start.n }}"}
      code: "import time; time.sleep(0.5); result = {'n': n + 1}"
      spec: {policy: {rules: [RETRY]}}
    next: third
  - step: third
    tool:
      kind: python
      input: {n: "{{ second.n }}"}
      code: "import time; time.sleep(0.5); result = {'n': n + 1}"
      spec: {policy: {rules: [RETRY]}}
""".replace("RETRY", RETRY)


@pytest.fixture(scope="module")
async def mesh(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProcessMesh]:
    async with running_process_mesh(
        pg_server, tmp_path_factory.mktemp("shard-down"), ENV, shards=SHARDS
    ) as running:
        yield running


async def _terminal_in_log(mesh: ProcessMesh, execution_id: str) -> bool:
    """Read from the shard's database, which stays up: the routes of a down shard answer 503."""
    async with database(await execution_database(mesh.pg_dsn, execution_id)) as conn:
        found = await conn.fetchval(
            "SELECT count(*) FROM noetl.event WHERE execution_id = $1 AND event_type IN "
            "('playbook.completed', 'playbook.failed', 'execution.cancelled')",
            int(execution_id),
        )
    return bool(found)


async def test_a_shard_down_pauses_only_its_runs_and_they_finish_when_it_is_back(
    mesh: ProcessMesh, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=30.0) as http:
        await register(http, CHAIN)
        runs = [await execute(http, "tests/fault/shard_down_chain") for _ in range(RUNS)]
        on_down = [r for r in runs if shard_for(int(r), SHARDS) == DOWN]
        elsewhere = [r for r in runs if r not in on_down]
        assert len(on_down) == RUNS // SHARDS

        for process in mesh.info.processes:
            if process.shard == DOWN:
                os.kill(process.pid, signal.SIGKILL)

        # The other shards keep completing (their runs' logs checked as every e2e run's).
        for execution_id in elsewhere:
            assert (await finish(http, mesh.pg_dsn, execution_id, seconds=60)).status == "COMPLETED"
        # The down shard's runs have paused: no terminal event, and their routes say 503.
        await asyncio.sleep(PAUSE_SECONDS)
        for execution_id in on_down:
            assert not await _terminal_in_log(mesh, execution_id), execution_id
        assert (await http.get(f"/api/executions/{on_down[0]}")).status_code == 503

        await asyncio.to_thread(mesh.stack.repair)

        for execution_id in on_down:
            await wait_for(
                functools.partial(_terminal_in_log, mesh, execution_id),
                what=f"run {execution_id} of the restarted shard to end",
                within=RECOVERY_SECONDS,
                interval=0.2,
            )
            assert (await finish(http, mesh.pg_dsn, execution_id)).status == "COMPLETED"
