"""Sub-playbooks across shards: a child runs on whichever shard the worker's start reached, so a
family spans shards. Its data comes back, its failure fails the parent, and a cascade cancel
reaches every running descendant on every shard.

Which shard a start reaches is each client's turn (`Sharded.for_new_execution`): the gateway
deals the parents, the one worker of the mesh deals the children, so the offsets below are
known without reading any clock.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kernel.sharding import shard_for
from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, database, execute, register, step_result, wait_terminal
from tests.helpers.waiting import wait_for
from tests.sharded.conftest import SHARDS

pytestmark = pytest.mark.e2e


def playbook(path: str, workflow: str, workload: str = "") -> str:
    name = path.rpartition("/")[2]
    head = f"apiVersion: noetl.io/v2\nkind: Playbook\nmetadata:\n  name: {name}\n  path: {path}\n"
    return head + (f"workload:\n{workload}" if workload else "") + f"workflow:\n{workflow}"


CHILD = playbook(
    "tests/families/child",
    """\
  - step: start
    tool:
      kind: python
      input: {x: "{{ x }}"}
      code: |
        if x == "fail":
            raise ValueError("the child gives up")
        result = {"doubled": x * 2}
""",
    "  x: ab\n",
)

# A good child first, then a failing one: two worker turns per parent against one gateway turn,
# so over three parents the failing child's offset from its parent takes every value mod 3.
PARENT = playbook(
    "tests/families/parent",
    """\
  - step: start
    tool: {kind: playbook, path: tests/families/child, return_step: start, input: {x: ab}}
    next: [{step: bad}]
  - step: bad
    tool: {kind: playbook, path: tests/families/child, return_step: start, input: {x: fail}}
""",
)

WAITING = playbook(
    "tests/families/waiting",
    """\
  - step: start
    tool:
      kind: python
      input: {gate: "{{ gate }}"}
      code: |
        import os, time
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.05)
        result = {"waited": True}
""",
    '  gate: ""\n',
)

MIDDLE = playbook(
    "tests/families/middle",
    """\
  - step: start
    tool: {kind: playbook, path: tests/families/waiting, return_step: start, input: {gate: "{{ gate }}"}}
""",
    '  gate: ""\n',
)

TOP = playbook(
    "tests/families/top",
    """\
  - step: start
    tool: {kind: playbook, path: tests/families/middle, return_step: start, input: {gate: "{{ gate }}"}}
""",
    '  gate: ""\n',
)


def _child_of(error: str) -> int:
    """The child id a failed playbook step names: `child playbook <path> (<id>): ...`."""
    return int(error.split("(", 1)[1].split(")", 1)[0])


async def test_child_data_and_failure_cross_shards(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, CHILD)
    await register(gateway, PARENT)
    offsets = set()
    for _ in range(SHARDS):
        run = await finish(
            gateway, process_mesh.pg_dsn, await execute(gateway, "tests/families/parent"), seconds=60
        )
        assert run.status == "FAILED"
        assert step_result(run.events, "start") == {"doubled": "abab"}
        (failed,) = [e for e in run.events if e["event_type"] == "command.failed"]
        assert failed["node_name"] == "bad" and "ValueError: the child gives up" in failed["error"]
        child = _child_of(failed["error"])
        assert (await wait_terminal(gateway, str(child)))["status"] == "FAILED"
        offsets.add((shard_for(child, SHARDS) - shard_for(int(run.execution_id), SHARDS)) % SHARDS)
    # The failing child ran on another shard than its parent in at least two of the three runs.
    assert offsets == set(range(SHARDS))


async def _children(mesh: ProcessMesh, parent: int) -> list[int]:
    found: list[int] = []
    for dsn in mesh.shard_dsns:
        async with database(dsn) as conn:
            rows = await conn.fetch(
                "SELECT execution_id FROM noetl.execution WHERE parent_execution_id = $1", parent
            )
        found += [int(row[0]) for row in rows]
    return found


async def test_a_cascade_cancels_descendants_on_other_shards(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    for text in (WAITING, MIDDLE, TOP):
        await register(gateway, text)
    gate = tmp_path / "gate"
    top = int(await execute(gateway, "tests/families/top", {"gate": str(gate)}))

    async def one_child(parent: int) -> int | None:
        children = await _children(process_mesh, parent)
        return children[0] if children else None

    middle = await wait_for(lambda: one_child(top), what="the middle child", within=30)
    bottom = await wait_for(lambda: one_child(middle), what="the grandchild", within=30)
    # Two consecutive starts by the one worker: middle and bottom are on different shards.
    assert shard_for(middle, SHARDS) != shard_for(bottom, SHARDS)

    cancelled = (await gateway.post(f"/api/executions/{top}/cancel", json={"cascade": True})).json()
    assert cancelled["cancelled_executions"] == [str(top), str(middle), str(bottom)]
    gate.touch()
    for execution_id in (top, middle, bottom):
        assert (await wait_terminal(gateway, str(execution_id)))["status"] == "CANCELLED"
