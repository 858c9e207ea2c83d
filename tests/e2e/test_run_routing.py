"""Routing on the whole mesh (dsl.md §4, §12.4 to §12.6, §12.9, §17.1), with playbooks of this suite.

Each test reads the stored log and checks the exact events the rule promises.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.eventlog import entered, of, one, position, server_types, terminal_context
from tests.helpers.invariants import run_playbook
from tests.helpers.mesh import ProcessMesh, step_result

pytestmark = pytest.mark.e2e


def worker_cycle(step: str) -> list[tuple[str, str | None]]:
    """What a claimed command that succeeds adds to the log (claim with start, then the batch)."""
    kinds = ("command.claimed", "command.started", "call.done", "step.exit", "command.completed")
    return [(kind, step) for kind in kinds]


def dispatch(step: str) -> list[tuple[str, str | None]]:
    return [("step.enter", step), ("command.issued", step)]


SKIP_CHAIN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: skip_chain, path: tests/engine/skip_chain}
workload: {mode: fast}
workflow:
  - step: start
    tool: {kind: noop}
    next: prepare
  - step: prepare
    when: "{{ mode == 'slow' }}"
    tool: {kind: python, code: "result = {'prepared': True}"}
    next: [polish]
  - step: polish
    when: "{{ mode in ['slow', 'polish'] }}"
    tool: {kind: python, code: "result = {'polished': True}"}
    next: [end]
  - step: end
    tool: {kind: python, code: "result = {'ended': True}"}
"""


async def test_a_skip_chain_reaches_end_without_running_it(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, SKIP_CHAIN)
    path = "tests/engine/skip_chain"

    assert run.status == "COMPLETED"
    assert server_types(run) == [
        ("playbook.initialized", path),
        ("workflow.initialized", "workflow"),
        ("command.issued", "start"),
        *worker_cycle("start"),
        ("step.skipped", "prepare"),
        ("step.skipped", "polish"),
        ("playbook.completed", path),
    ]
    assert [e.meta.get("trigger_step") for e in of(run.log, "step.skipped")] == ["start", "prepare"]


async def test_a_skip_chain_stops_at_the_first_step_whose_guard_passes(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, SKIP_CHAIN, {"mode": "polish"})
    path = "tests/engine/skip_chain"

    assert run.status == "COMPLETED"
    assert server_types(run) == [
        ("playbook.initialized", path),
        ("workflow.initialized", "workflow"),
        ("command.issued", "start"),
        *worker_cycle("start"),
        ("step.skipped", "prepare"),
        *dispatch("polish"),
        *worker_cycle("polish"),
        *dispatch("end"),
        *worker_cycle("end"),
        ("playbook.completed", path),
    ]
    assert step_result(run.events, "polish") == {"polished": True}
    assert step_result(run.events, "end") == {"ended": True}


NAME_LIST_FANOUT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: name_list_fanout, path: tests/engine/name_list_fanout}
workflow:
  - step: start
    tool: {kind: noop}
    next: [left, right]
  - step: left
    tool: {kind: python, code: "result = {'side': 'left'}"}
    next: end
  - step: right
    tool: {kind: python, code: "result = {'side': 'right'}"}
    next: end
  - step: end
    tool:
      kind: python
      input: {l: "{{ left.side }}", r: "{{ right.side }}"}
      code: "result = {'sides': [l, r]}"
"""


async def test_a_name_list_fans_out_in_one_pass(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, NAME_LIST_FANOUT)

    assert run.status == "COMPLETED"
    types = server_types(run)
    after_start = position(run.log, one(run.log, "command.completed", "start")) + 1
    # Both branches are entered by the pass of start's completion, before anything else happens.
    assert types[after_start : after_start + 4] == [*dispatch("left"), *dispatch("right")]
    assert not of(run.log, "step.skipped")
    assert entered(run.log, "end") == 1
    enter_end = position(run.log, one(run.log, "step.enter", "end"))
    assert enter_end > max(
        position(run.log, one(run.log, "command.completed", side)) for side in ("left", "right")
    )
    assert step_result(run.events, "end") == {"sides": ["left", "right"]}


FAN_IN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: fan_in_{variant}, path: tests/engine/fan_in_{variant}}}
workload: {{include_c: false}}
workflow:
  - step: start
    tool: {{kind: noop}}
    next:
      spec: {{mode: inclusive}}
      arcs:
        - step: a
        - step: b
        - step: c
          {arc_guard}
  - step: a
    tool: {{kind: python, code: "import time\\ntime.sleep(0.3)\\nresult = {{'a': 1}}"}}
    next: [join]
  - step: b
    tool: {{kind: python, code: "result = {{'b': 2}}"}}
    next: [join]
  - step: c
    {step_guard}
    tool: {{kind: python, code: "result = {{'c': 3}}"}}
    next: [join]
  - step: join
    tool:
      kind: python
      input: {{a: "{{{{ a.a }}}}", b: "{{{{ b.b }}}}", c: "{{{{ c.c | default('skipped') }}}}"}}
      code: "result = {{'seen': [a, b, c]}}"
"""


@pytest.mark.parametrize("guard", ["arc", "step"])
async def test_a_three_way_join_with_a_skipped_branch_runs_once(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, guard: str
) -> None:
    """c is skipped by a false arc `when`, or by its own false `step.when` whose skip chain
    then reaches the join early: either way the join waits for a and b, and runs once."""
    text = FAN_IN.format(
        variant=guard,
        arc_guard='when: "{{ include_c }}"' if guard == "arc" else "",
        step_guard='when: "{{ include_c }}"' if guard == "step" else "",
    )
    run = await run_playbook(gateway, process_mesh.pg_dsn, text)

    assert run.status == "COMPLETED"
    skipped = one(run.log, "step.skipped", "c")
    assert skipped.meta["trigger_step"] == "start"
    assert not of(run.log, "command.issued", "c")
    assert entered(run.log, "join") == 1 and len(of(run.log, "command.issued", "join")) == 1
    enter_join = position(run.log, one(run.log, "step.enter", "join"))
    assert enter_join > max(position(run.log, one(run.log, "command.completed", s)) for s in ("a", "b"))
    assert step_result(run.events, "join") == {"seen": [1, 2, "skipped"]}
    assert terminal_context(run)["final_step"] == "join"


NO_MATCH = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: no_match_{variant}, path: tests/engine/no_match_{variant}}}
workload: {{flag: c}}
workflow:
  - step: start
    tool: {{kind: noop}}
    next: route
  - step: route
    tool: {{kind: python, code: "result = {{'routed': True}}"}}
    next:
      spec: {{mode: exclusive{on_no_match}}}
      arcs:
        - {{step: a, when: "{{{{ flag == 'a' }}}}"}}
        - {{step: b, when: "{{{{ flag == 'b' }}}}"}}
  - step: a
    tool: {{kind: noop}}
  - step: b
    tool: {{kind: noop}}
"""


async def test_a_router_without_a_match_fails_the_run(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, NO_MATCH.format(variant="fail", on_no_match=""))

    assert run.status == "FAILED"
    error = "no_next_match: step 'route' completed but none of its next arcs matched"
    failed = one(run.log, "playbook.failed")
    assert failed.error == error and failed.meta == {"reason": "no_next_match"}
    assert failed.context == {"status": "FAILED", "error": error, "final_step": "route"}
    # The losers of the exclusive router were skipped; nothing else was dispatched.
    assert [e.node_name for e in of(run.log, "step.skipped")] == ["a", "b"]
    assert [e.node_name for e in of(run.log, "step.enter")] == ["route"]


async def test_on_no_match_complete_ends_the_branch(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    text = NO_MATCH.format(variant="complete", on_no_match=", on_no_match: complete")
    run = await run_playbook(gateway, process_mesh.pg_dsn, text)

    assert run.status == "COMPLETED"
    assert [e.node_name for e in of(run.log, "step.skipped")] == ["a", "b"]
    assert terminal_context(run) == {"status": "COMPLETED", "final_step": "route"}
    assert server_types(run)[-1] == ("playbook.completed", "tests/engine/no_match_complete")


BACK_EDGE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: back_edge, path: tests/engine/back_edge}
workload: {count: 0, limit: 3}
workflow:
  - step: start
    tool: {kind: noop}
    next: bump
  - step: bump
    tool:
      kind: python
      input: {count: "{{ count }}"}
      code: "result = {'n': count + 1}"
    set:
      ctx.count: "{{ output.n }}"
    next: check
  - step: check
    tool: {kind: noop}
    next:
      spec: {mode: exclusive}
      arcs:
        - {step: bump, when: "{{ count < limit }}"}
        - {step: done, when: "{{ count >= limit }}"}
  - step: done
    tool:
      kind: python
      input: {final: "{{ count }}", last: "{{ bump.n }}", original: "{{ workload.count }}"}
      code: "result = {'final': final, 'last': last, 'original': original}"
"""


async def test_a_back_edge_re_enters_a_step_until_its_guard_flips(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, BACK_EDGE)

    assert run.status == "COMPLETED"
    assert entered(run.log, "bump") == 3 and entered(run.log, "check") == 3 and entered(run.log, "done") == 1
    assert [e.context["values"] for e in of(run.log, "ctx.updated", "bump")] == [
        {"count": 1},
        {"count": 2},
        {"count": 3},
    ]
    # Each bump sees the count its previous round persisted.
    inputs = [e.context["input"]["count"] for e in of(run.log, "command.issued", "bump")]
    assert inputs == [0, 1, 2]
    # The loop branch point never skips its exit while it loops.
    assert not of(run.log, "step.skipped")
    assert step_result(run.events, "done") == {"final": 3, "last": 3, "original": 0}


TARGETS_LIST = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: targets_list_{mode}, path: tests/engine/targets_list_{mode}}}
workflow:
  - step: start
    tool: {{kind: noop}}
    spec: {{next_mode: {mode}}}
    next:
      - {{step: first, args: {{origin: "via the list"}}}}
      - {{step: second}}
  - step: first
    tool: {{kind: python, input: {{origin: "{{{{ origin }}}}"}}, code: "result = {{'origin': origin}}"}}
  - step: second
    tool: {{kind: python, input: {{origin: "{{{{ origin | default('none') }}}}"}}, code: "result = {{'origin': origin}}"}}
"""


@pytest.mark.parametrize("mode", ["exclusive", "inclusive"])
async def test_a_targets_list_follows_next_mode_and_passes_args(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mode: str
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, TARGETS_LIST.format(mode=mode))

    assert run.status == "COMPLETED"
    assert step_result(run.events, "first") == {"origin": "via the list"}
    if mode == "exclusive":
        assert [e.node_name for e in of(run.log, "step.skipped")] == ["second"]
        assert not entered(run.log, "second")
    else:
        assert not of(run.log, "step.skipped")
        assert step_result(run.events, "second") == {"origin": "none"}
