"""The real `noetl` CLI ending and repeating executions: `cancel --cascade`, `execute rerun`,
`cleanup` (cli-wire.md §4.6, §4.8, §4.9) against the session mesh.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.helpers.cli import noetl, plain
from tests.helpers.invariants import finish, logged_events
from tests.helpers.mesh import (
    ProcessMesh,
    database,
    events,
    execute,
    execution_database,
    gated_playbook,
    register,
    step_result,
    wait_claimed,
    wait_terminal,
)
from tests.helpers.playbooks import noop_playbook
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

PARKED_POOL = "e2e-cli-parked"

PARKED = noop_playbook("tests/cli/parked")

# The child waits for a file (at most 30 s), so it is surely running when the parent is cancelled.
CHILD = gated_playbook("tests/cli/gated_child")

PARENT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: parent, path: tests/cli/parent}
workload: {gate: ""}
workflow:
  - step: start
    tool:
      kind: playbook
      path: tests/cli/gated_child
      return_step: start
      input: {gate: "{{ gate }}"}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""

RERUN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: rerun, path: tests/cli/rerun}
workload: {who: "nobody"}
workflow:
  - step: start
    tool:
      kind: python
      input: {who: "{{ who }}"}
      code: |
        result = {"who": who}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""


async def children_of(http: httpx.AsyncClient, parent: str) -> list[str]:
    listed = (await http.get("/api/executions", params={"page_size": 200})).json()
    return [entry["execution_id"] for entry in listed if entry["parent_execution_id"] == parent]


async def test_cancel_cascade_stops_the_running_child(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await register(gateway, CHILD)
    await register(gateway, PARENT)
    gate = tmp_path / "gate"
    parent = await execute(gateway, "tests/cli/parent", {"gate": str(gate)})

    async def one_child() -> list[str] | None:
        found = await children_of(gateway, parent)
        return found or None

    (child,) = await wait_for(one_child, within=30, what="the parent's child execution")
    await wait_claimed(gateway, child, "start")

    cancelled = await noetl(
        cli_env, process_mesh, "cancel", parent, "--cascade", "--reason", "stop the family"
    )
    assert cancelled.returncode == 0, cancelled.describe()
    lines = plain(cancelled).splitlines()
    for expected in (
        f"Execution: {parent}",
        "Status: CANCELLED",
        "Cancelled: 2 execution(s)",
        "Message: Cancelled 2 execution(s)",
        "Reason: stop the family",
    ):
        assert any(expected in line for line in lines), cancelled.describe()
    assert parent in cancelled.stdout and child in cancelled.stdout, cancelled.describe()
    gate.touch()  # the child's running command finishes; nothing follows it

    assert (await wait_terminal(gateway, child))["status"] == "CANCELLED"

    # The parent's running step sees its child cancelled and fails (worker/tools/playbook.py); that
    # late `command.failed` does not change the parent's final status (dsl.md §15.1 rule 0): list,
    # detail and /status all say CANCELLED, and nothing is dispatched after the cancel.
    async def parent_step_ended() -> bool:
        return any(e["event_type"] == "command.failed" for e in await events(gateway, parent))

    await wait_for(parent_step_ended, within=30, what="the parent's running step to end")
    assert (await gateway.get(f"/api/executions/{parent}")).json()["status"] == "CANCELLED"
    listed = (await gateway.get("/api/executions", params={"page_size": 100})).json()
    assert [e["status"] for e in listed if str(e["execution_id"]) == parent] == ["CANCELLED"]
    flags = (await gateway.get(f"/api/executions/{parent}/status")).json()
    assert (flags["completed"], flags["failed"]) == (True, False)
    check = (await gateway.get(f"/api/executions/{parent}/cancellation-check")).json()
    assert check["cancelled"] is True
    parent_log = {e.event_type: e for e in await logged_events(process_mesh.pg_dsn, parent)}
    child_log = {e.event_type: e for e in await logged_events(process_mesh.pg_dsn, child)}
    assert parent_log["execution.cancelled"].meta == {
        "reason": "stop the family",
        "cancelled_by": "api",
        "cascade": True,
        "parent_cancel_id": None,
        "actionable": True,
    }
    child_meta = child_log["execution.cancelled"].meta
    assert child_meta is not None and child_meta["parent_cancel_id"] == parent
    assert not [e for e in await events(gateway, parent) if e["node_name"] == "end"]  # dispatch stopped

    again = await noetl(cli_env, process_mesh, "cancel", parent)
    assert again.returncode == 0, again.describe()
    assert "Status: ALREADY_COMPLETED" in plain(again), again.describe()


async def test_rerun_starts_a_new_execution_that_completes(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await register(gateway, RERUN)
    source = await execute(gateway, "tests/cli/rerun", {"who": "original"})
    assert (await finish(gateway, process_mesh.pg_dsn, source)).status == "COMPLETED"

    rerun = await noetl(cli_env, process_mesh, "execute", "rerun", source)
    assert rerun.returncode == 0, rerun.describe()
    assert "Rerunning execution on distributed server..." in plain(rerun), rerun.describe()
    assert f"Source Execution: {source}" in plain(rerun)
    match = re.search(r'noetl status "(\d+)"', plain(rerun))
    assert match is not None, rerun.describe()
    repeated = match.group(1)
    assert repeated != source
    run = await finish(gateway, process_mesh.pg_dsn, repeated)
    assert run.status == "COMPLETED"
    assert step_result(run.events, "start") == {"who": "original"}  # the source's workload

    override = tmp_path / "input.json"
    override.write_text(json.dumps({"who": "again"}))
    changed = await noetl(
        cli_env, process_mesh, "execute", "rerun", source, "--input", str(override), "--json"
    )
    assert changed.returncode == 0, changed.describe()
    body = json.loads(changed.stdout)
    assert body["status"] == "started" and body["commands_generated"] == 1
    run = await finish(gateway, process_mesh.pg_dsn, body["execution_id"])
    assert run.status == "COMPLETED"
    assert step_result(run.events, "start") == {"who": "again"}


async def test_cleanup_cancels_a_run_older_than_the_threshold(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str]
) -> None:
    """`cleanup` takes whole minutes (at least 1). A run is parked on a pool no worker serves (it
    stays RUNNING); instead of waiting a minute, its start is moved back in its execution row,
    which is what the cleanup query compares with the database's clock."""
    await register(gateway, PARKED)
    response = await gateway.post(
        "/api/execute", json={"path": "tests/cli/parked", "execution_pool": PARKED_POOL}
    )
    assert response.status_code == 200, response.text
    parked = response.json()["execution_id"]
    assert (await gateway.get(f"/api/executions/{parked}")).json()["status"] == "RUNNING"

    async with database(await execution_database(process_mesh.pg_dsn, parked)) as db:

        async def has_row() -> bool:
            return bool(
                await db.fetchval("SELECT count(*) FROM noetl.execution WHERE execution_id = $1", int(parked))
            )

        await wait_for(has_row, what="the parked run's execution row")
        young = await noetl(
            cli_env, process_mesh, "cleanup", "--older-than-minutes", "1", "--dry-run", "--json"
        )
        assert young.returncode == 0, young.describe()
        assert parked not in json.loads(young.stdout)["execution_ids"]  # not a minute old yet
        await db.execute(
            "UPDATE noetl.execution SET start_time = start_time - interval '2 minutes' WHERE execution_id = $1",
            int(parked),
        )

    dry_json = await noetl(
        cli_env, process_mesh, "cleanup", "--older-than-minutes", "1", "--dry-run", "--json"
    )
    assert dry_json.returncode == 0, dry_json.describe()
    would = json.loads(dry_json.stdout)
    assert parked in would["execution_ids"]
    count = would["cancelled_count"]
    assert would["message"] == f"[DRY RUN] Would cancel {count} stuck executions older than 1 minutes"

    dry = await noetl(cli_env, process_mesh, "cleanup", "--older-than-minutes", "1", "--dry-run")
    assert dry.returncode == 0, dry.describe()
    assert "Older than: 1 minutes" in plain(dry), dry.describe()
    assert re.search(r"Found: [1-9]\d* stuck execution\(s\)", plain(dry)), dry.describe()
    assert "[DRY RUN] Would cancel" in plain(dry)
    assert (await gateway.get(f"/api/executions/{parked}")).json()["status"] == "RUNNING"

    done = await noetl(cli_env, process_mesh, "cleanup", "--older-than-minutes", "1")
    assert done.returncode == 0, done.describe()
    found = re.search(r"Found: (\d+) stuck execution\(s\)", plain(done))
    assert found is not None and int(found.group(1)) >= 1, done.describe()
    assert f"Successfully cancelled {found.group(1)} stuck executions older than 1 minutes" in plain(done)

    detail = await wait_terminal(gateway, parked)
    assert detail["status"] == "CANCELLED"
    found_events = await events(gateway, parked)
    (cancel,) = [e for e in found_events if e["event_type"] == "execution.cancelled"]
    assert cancel["node_name"] == "cleanup" and cancel["status"] == "CANCELLED"
    log = await logged_events(process_mesh.pg_dsn, parked)
    # Nothing ever claimed the parked command, and a cancel does not recall commands (dsl.md §13).
    assert [(e.event_type, e.node_name) for e in log] == [
        ("playbook.initialized", "tests/cli/parked"),
        ("workflow.initialized", "workflow"),
        ("command.issued", "start"),
        ("execution.cancelled", "cleanup"),
    ]
    assert [e.prev_event_id for e in log[1:]] == [e.event_id for e in log[:-1]]
    assert log[-1].meta == {
        "reason": "Stuck execution older than 1 minutes",
        "auto_cancelled": True,
        "cleanup_api": True,
        "actionable": True,
    }
    assert sorted(int(e["event_id"]) for e in found_events) == [e.event_id for e in log]

    none_left = await noetl(cli_env, process_mesh, "cleanup", "--older-than-minutes", "1", "--json")
    assert parked not in json.loads(none_left.stdout)["execution_ids"]
