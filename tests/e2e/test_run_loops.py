"""Loops on the whole mesh (dsl.md §5, §12.7, §12.8, §17.3), with playbooks of this suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.eventlog import commands, entered, in_flight_series, meta, of, one, position
from tests.helpers.invariants import finish, run_playbook
from tests.helpers.mesh import ProcessMesh, events, execute, register, step_result, wait_claimed
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

LOOP = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: {name}, path: tests/engine/{name}}}
workload: {{things: []}}
workflow:
  - step: start
    tool: {{kind: noop}}
    next: walk
  - step: walk
    loop:
      in: "{in_}"
      iterator: thing
      spec: {{mode: {mode}}}
    tool:
      kind: python
      input: {{thing: "{{{{ thing }}}}", i: "{{{{ _index }}}}", ii: "{{{{ iter._index }}}}", it: "{{{{ iter.thing }}}}"}}
      code: |
        {code}
        result = {{'thing': thing, 'i': i, 'n': _total, 'iter_agrees': ii == i and it == thing}}
    next:
      spec: {{mode: exclusive}}
      arcs:
        - {{step: collect, when: '{{{{ event.name == "loop.done" }}}}'}}
  - step: collect
    tool:
      kind: python
      input: {{rows: "{{{{ walk }}}}", n: "{{{{ walk | length }}}}", raw: "{{{{ steps.walk | length }}}}"}}
      code: "result = {{'rows': rows, 'n': n, 'raw': raw}}"
"""


def loop_playbook(
    name: str, *, in_: str = "{{ things }}", mode: str = "sequential", code: str = "pass"
) -> str:
    return LOOP.format(name=name, in_=in_, mode=mode, code=code)


async def test_an_empty_loop_completes_at_once(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, loop_playbook("empty_loop"))

    assert run.status == "COMPLETED"
    enter = one(run.log, "step.enter", "walk")
    assert enter.context == {"iterations_expected": 0, "iterator_var": "thing"}
    assert not of(run.log, "command.issued", "walk")
    exit_ = one(run.log, "step.exit", "walk")
    assert exit_.context == {"status": "COMPLETED", "result": []}
    assert one(run.log, "loop.done", "walk").context == {"iterations": 0, "completed": 0, "failed": 0}
    assert step_result(run.events, "collect") == {"rows": [], "n": 0, "raw": 0}
    # The successor is issued by a follow-up pass, not by the reconciler seconds later.
    issued = one(run.log, "command.issued", "collect")
    assert enter.created_at is not None and issued.created_at is not None
    assert (issued.created_at - enter.created_at).total_seconds() < 1.0


@pytest.mark.parametrize(
    ("payload", "got"),
    [({}, "null"), ({"things": None}, "null"), ({"things": True}, "boolean")],
    ids=["undefined", "null", "boolean"],
)
async def test_a_loop_over_nothing_iterable_fails_the_run(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, payload: dict[str, Any], got: str
) -> None:
    text = loop_playbook("null_loop", in_="{{ things }}").replace("workload: {things: []}\n", "")
    run = await run_playbook(gateway, process_mesh.pg_dsn, text, payload)

    assert run.status == "FAILED"
    message = (
        f"loop step 'walk': Loop expression '{{{{ things }}}}' did not evaluate to an iterable (got {got})"
    )
    failed = one(run.log, "playbook.failed")
    assert failed.error == f"Orchestrator evaluate failed: {message}"
    assert failed.meta == {"reason": "evaluate_error"}
    assert not of(run.log, "step.enter", "walk") and not of(run.log, "command.issued", "walk")


@pytest.mark.parametrize(
    ("things", "items"),
    [
        ({"a": 1, "b": [2]}, [{"key": "a", "value": 1}, {"key": "b", "value": [2]}]),
        ("x, y\nz,, ", ["x", "y", "z"]),
        ('["p", "q"]', ["p", "q"]),
        (3, [0, 1, 2]),
    ],
    ids=["object", "string", "json-string", "number"],
)
async def test_loop_collections_are_coerced(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, things: Any, items: list[Any]
) -> None:
    run = await run_playbook(
        gateway, process_mesh.pg_dsn, loop_playbook("coerced_loop", mode="parallel"), {"things": things}
    )

    assert run.status == "COMPLETED"
    total = len(items)
    assert one(run.log, "step.enter", "walk").context == {
        "iterations_expected": total,
        "iterator_var": "thing",
    }
    assert len(set(commands(run.log, "walk"))) == total
    assert step_result(run.events, "collect") == {
        "rows": [{"thing": item, "i": i, "n": total, "iter_agrees": True} for i, item in enumerate(items)],
        "n": total,
        "raw": total,
    }
    assert one(run.log, "loop.done", "walk").context == {"iterations": total, "completed": total, "failed": 0}


async def test_a_sequential_loop_runs_one_iteration_at_a_time(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    text = loop_playbook("sequential_loop", code="import time; time.sleep(0.05)")
    run = await run_playbook(gateway, process_mesh.pg_dsn, text, {"things": ["a", "b", "c", "d", "e"]})

    assert run.status == "COMPLETED"
    assert in_flight_series(run.log, "walk") == [1, 1, 1, 1, 1]
    issued = of(run.log, "command.issued", "walk")
    assert [meta(e)["iteration_index"] for e in issued] == [0, 1, 2, 3, 4]
    ends = of(run.log, "command.completed", "walk")
    for previous_end, nxt in zip(ends, issued[1:], strict=False):
        assert previous_end.event_id < nxt.event_id
    rows = step_result(run.events, "collect")["rows"]
    assert [row["thing"] for row in rows] == ["a", "b", "c", "d", "e"]


RERENDERED = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: rerendered_loop, path: tests/engine/rerendered_loop}
workload: {items: [a, b], gate: ""}
workflow:
  - step: start
    tool: {kind: noop}
    next: [producer, walk]
  - step: producer
    tool: {kind: python, code: "result = {'items': ['w', 'x', 'y', 'z']}"}
    set:
      ctx.items: "{{ output.items }}"
    next: end
  - step: walk
    loop: {in: "{{ items }}", iterator: item, spec: {mode: sequential}}
    tool:
      kind: python
      input: {item: "{{ item }}", gate: "{{ gate }}"}
      code: |
        import os, time
        deadline = time.monotonic() + 30
        while _index == 0 and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        result = {'item': item, 'index': _index}
    next:
      arcs:
        - {step: end, when: '{{ event.name == "loop.done" }}'}
  - step: end
    tool: {kind: python, input: {walked: "{{ walk }}"}, code: "result = {'walked': walked}"}
"""


async def test_a_sequential_loop_re_renders_its_collection_before_each_iteration(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    """The collection changes (a parallel branch's step `set`) while iteration 0 runs: iteration 1
    takes its item from the new collection; the count stays the one fixed on entry."""
    await register(gateway, RERENDERED)
    gate = tmp_path / "gate"
    execution_id = await execute(gateway, "tests/engine/rerendered_loop", {"gate": str(gate)})
    await wait_claimed(gateway, execution_id, "walk")

    async def producer_set() -> bool:
        found = await events(gateway, execution_id)
        return any(e["event_type"] == "ctx.updated" and e["node_name"] == "producer" for e in found)

    await wait_for(producer_set, within=30, what="the producer's ctx.updated")
    gate.touch()
    run = await finish(gateway, process_mesh.pg_dsn, execution_id)

    assert run.status == "COMPLETED"
    assert one(run.log, "step.enter", "walk").context == {"iterations_expected": 2, "iterator_var": "item"}
    inputs = [e.context["input"]["item"] for e in of(run.log, "command.issued", "walk")]
    assert inputs == ["a", "x"]
    walked = [{"item": "a", "index": 0}, {"item": "x", "index": 1}]
    assert step_result(run.events, "end") == {"walked": walked}
    assert entered(run.log, "end") == 1


PARALLEL_50 = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: parallel_50, path: tests/engine/parallel_50}
workload: {n: 50}
workflow:
  - step: start
    tool: {kind: noop}
    next: fan
  - step: fan
    loop:
      in: "{{ n }}"
      iterator: k
      spec: {mode: parallel, max_in_flight: 5}
    tool:
      kind: python
      input: {k: "{{ k }}"}
      code: |
        import time
        time.sleep(0.02)
        result = {'sq': k * k}
    next:
      arcs:
        - {step: total, when: '{{ event.name == "loop.done" }}'}
  - step: total
    tool:
      kind: python
      input: {rows: "{{ fan }}"}
      code: "result = {'count': len(rows), 'sum': sum(row['sq'] for row in rows), 'first': rows[:3]}"
"""


async def test_a_parallel_loop_never_exceeds_max_in_flight(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, PARALLEL_50, seconds=60)

    assert run.status == "COMPLETED"
    series = in_flight_series(run.log, "fan")
    assert len(series) == 50
    # Counted over the whole log: commands issued and not yet completed, at every issue.
    assert max(series) == 5, series
    assert series[:5] == [1, 2, 3, 4, 5]
    issued = of(run.log, "command.issued", "fan")
    assert sorted(meta(e)["iteration_index"] for e in issued) == list(range(50))
    assert len(set(commands(run.log, "fan"))) == 50
    assert len(of(run.log, "command.completed", "fan")) == 50
    assert one(run.log, "loop.done", "fan").context == {"iterations": 50, "completed": 50, "failed": 0}
    assert position(run.log, one(run.log, "loop.done", "fan")) < position(
        run.log, one(run.log, "step.enter", "total")
    )
    assert step_result(run.events, "total") == {
        "count": 50,
        "sum": sum(k * k for k in range(50)),
        "first": [{"sq": 0}, {"sq": 1}, {"sq": 4}],
    }
