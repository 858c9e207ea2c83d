"""`set` scoping and the names a step sees (dsl.md §6, §8.5, §17.6), on the whole mesh."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.eventlog import of, one
from tests.helpers.invariants import run_playbook
from tests.helpers.mesh import ProcessMesh, step_result

pytestmark = pytest.mark.e2e

STEP_SET = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: step_set, path: tests/engine/step_set}
workload: {level: 0}
workflow:
  - step: start
    tool: {kind: noop}
    next: measure
  - step: measure
    tool: {kind: python, code: "result = {'n': 7}"}
    set:
      ctx.level: "{{ output.n * 2 }}"
      step.source: "{{ measure.n }}"
      note: "measured"
    next:
      spec: {mode: exclusive}
      arcs:
        - {step: high, when: "{{ level == 14 and ctx.level == 14 }}"}
        - {step: low}
  - step: high
    tool: {kind: python, code: "result = {'routed': 'high'}"}
    next: report
  - step: low
    tool: {kind: python, code: "result = {'routed': 'low'}"}
  - step: report
    tool:
      kind: python
      input: {level: "{{ level }}", source: "{{ ctx.source }}", note: "{{ note }}", original: "{{ workload.level }}"}
      code: "result = {'level': level, 'source': source, 'note': note, 'original': original}"
"""


async def test_step_set_is_persisted_and_seen_by_arcs_and_later_steps(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, STEP_SET)

    assert run.status == "COMPLETED"
    updated = one(run.log, "ctx.updated", "measure")
    completed = one(run.log, "step.exit", "measure")
    assert updated.context == {
        "step": "measure",
        "gen": completed.event_id,
        "values": {"level": 14, "source": 7, "note": "measured"},
    }
    # Applied before the arcs: the router took `high` and skipped `low`.
    assert [e.node_name for e in of(run.log, "step.skipped")] == ["low"]
    assert updated.event_id < one(run.log, "step.enter", "high").event_id
    assert step_result(run.events, "report") == {"level": 14, "source": 7, "note": "measured", "original": 0}


ARC_SET = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: arc_set, path: tests/engine/arc_set}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'x': 5}"}
    next:
      spec: {mode: exclusive}
      arcs:
        - step: first
          set:
            ctx.tag: "from_start"
            doubled: "{{ start.x * 2 }}"
            from_output: "{{ output.x }}"
  - step: first
    tool:
      kind: python
      input: {tag: "{{ tag }}", ctx_tag: "{{ ctx.tag }}", doubled: "{{ doubled }}", from_output: "{{ from_output }}"}
      code: "result = {'tag': tag, 'ctx_tag': ctx_tag, 'doubled': doubled, 'from_output': from_output}"
    next: second
  - step: second
    tool:
      kind: python
      input: {tag: "{{ tag | default('unset') }}", doubled: "{{ doubled | default('unset') }}"}
      code: "result = {'tag': tag, 'doubled': doubled}"
"""


async def test_arc_set_reaches_only_the_step_it_dispatches(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, ARC_SET)

    assert run.status == "COMPLETED"
    # Rendered without `output` (§6.3): `{{ output.x }}` is null there.
    assert step_result(run.events, "first") == {
        "tag": "from_start",
        "ctx_tag": "from_start",
        "doubled": 10,
        "from_output": None,
    }
    assert step_result(run.events, "second") == {"tag": "unset", "doubled": "unset"}
    # Not persisted.
    assert not of(run.log, "ctx.updated")


IDENTITY = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: identity, path: tests/engine/identity}
workflow:
  - step: start
    tool:
      kind: python
      input: {eid: "{{ execution_id }}", cid: "{{ catalog_id }}", where: "{{ path }}"}
      code: "result = {'eid': str(eid), 'cid': str(cid), 'where': where}"
    next: end
  - step: end
    tool:
      kind: python
      input: {eid: "{{ execution_id }}", where: "{{ path }}"}
      code: "result = {'eid': str(eid), 'where': where}"
"""


async def test_execution_identity_is_available_in_start(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, IDENTITY)

    assert run.status == "COMPLETED"
    catalog_id = one(run.log, "playbook.initialized").context["catalog_id"]
    assert step_result(run.events, "start") == {
        "eid": run.execution_id,
        "cid": catalog_id,
        "where": "tests/engine/identity",
    }
    assert step_result(run.events, "end") == {"eid": run.execution_id, "where": "tests/engine/identity"}
