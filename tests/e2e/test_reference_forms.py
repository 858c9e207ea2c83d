"""Playbook forms of the reference's regression set, on the whole mesh (issue #13), with playbooks
of this suite: step-level `input`, `iter.X` set by a rule, `ctx` aggregated through a loop's
policy rules, an externalised result's accessors in worker-side templates, and a loop step's
result as an object (`results`, `count`). docs/compatibility.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.helpers.eventlog import one
from tests.helpers.infra import PgServer
from tests.helpers.invariants import run_playbook
from tests.helpers.mesh import ProcessMesh, running_process_mesh, step_result
from tests.helpers.mock_api import MockApi, running_mock_api

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mock_api() -> Iterator[tuple[str, MockApi]]:
    with running_mock_api() as served:
        yield served


STEP_INPUT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: step_input, path: tests/forms/step_input}
workload: {api_url: "", greeting: hello, numbers: [2, 3]}
workflow:
  - step: start
    input: {who: step, greeting: "{{ greeting }}"}
    tool:
      kind: python
      input: {who: tool}
      code: "result = {'who': who, 'greeting': greeting}"
    next: scale
  - step: scale
    loop: {in: "{{ numbers }}", iterator: n}
    input: {factor: 10, n: 0}
    tool: {kind: python, code: "result = {'v': n * factor}"}
    next:
      - {step: fetch, when: '{{ event.name == "loop.done" }}'}
  - step: fetch
    input: {tag: "{{ start.who }}-{{ scale | length }}"}
    tool:
      kind: http
      url: "{{ api_url }}/api/v1/echo"
      params: {tag: "{{ tag }}"}
    next: pipeline
  - step: pipeline
    input: {base: 5}
    tool:
      - name: add
        kind: python
        input: {plus: 1}
        code: "result = {'sum': base + plus}"
"""


async def test_a_step_level_input_is_the_tools_input_under_its_own(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mock_api: tuple[str, MockApi]
) -> None:
    url, _ = mock_api
    run = await run_playbook(gateway, process_mesh.pg_dsn, STEP_INPUT, {"api_url": url})

    assert run.status == "COMPLETED", run.detail
    # The tool-level `who` wins; `greeting` comes from the step level.
    assert step_result(run.events, "start") == {"who": "tool", "greeting": "hello"}
    # In a loop the iteration variable wins over a step-level key of the same name.
    assert [step_result([e], "scale") for e in _call_done(run.events, "scale")] == [{"v": 20}, {"v": 30}]
    # An http step's config sees its input (the tag), a pipeline's tasks see it as theirs.
    assert step_result(run.events, "fetch")["data"]["query"] == {"tag": "tool-2"}
    assert step_result(run.events, "pipeline") == {"add": {"sum": 6}}


ITER_SET = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: iter_set, path: tests/forms/iter_set}
workload: {items: [1, 4]}
workflow:
  - step: start
    loop: {in: "{{ items }}", iterator: item}
    tool:
      - name: shape
        kind: python
        code: "result = {'value': item * 2}"
        spec:
          policy:
            rules:
              - else:
                  then: {do: continue, set: {iter.processed_item: "{{ output.data }}"}}
      - name: read
        kind: python
        input:
          dotted: "{{ iter.processed_item.value }}"
          bare: "{{ processed_item.value }}"
          own: "{{ iter.item }}"
        code: "result = {'dotted': dotted, 'bare': bare, 'own': own}"
"""


async def test_iter_values_set_by_a_rule_read_back_as_iter_and_bare(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, ITER_SET)

    assert run.status == "COMPLETED", run.detail
    reads = [step_result([e], "start")["read"] for e in _call_done(run.events, "start")]
    assert reads == [{"dotted": 2, "bare": 2, "own": 1}, {"dotted": 8, "bare": 8, "own": 4}]


LOOP_CTX = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: {name}, path: tests/forms/{name}}}
workload: {{letters: [a, b, c]}}
workflow:
  - step: start
    tool: {{kind: noop}}
    set: {{ctx.seen: []}}
    next: collect
  - step: collect
    loop: {{in: "{{{{ letters }}}}", iterator: letter, spec: {{mode: {mode}}}}}
    tool:
      kind: python
      input: {{letter: "{{{{ letter }}}}"}}
      code: "result = {{'letter': letter}}"
      spec:
        policy:
          rules:
            - else:
                then:
                  do: continue
                  set: {{ctx.seen: "{{{{ seen + [output.data.letter] }}}}", ctx.last: "{{{{ letter }}}}"}}
    next:
      - {{step: summary, when: '{{{{ event.name == "loop.done" }}}}'}}
  - step: summary
    tool:
      kind: python
      input: {{seen: "{{{{ seen }}}}", via_ctx: "{{{{ ctx.seen }}}}", last: "{{{{ last }}}}"}}
      code: "result = {{'seen': seen, 'via_ctx': via_ctx, 'last': last}}"
"""


async def test_a_sequential_loop_aggregates_through_ctx(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    text = LOOP_CTX.format(name="loop_ctx_sequential", mode="sequential")
    run = await run_playbook(gateway, process_mesh.pg_dsn, text)

    assert run.status == "COMPLETED", [e.get("error") for e in run.events if e.get("error")]
    # Each iteration saw the list the one before it left; the step after the loop sees it all.
    assert step_result(run.events, "summary") == {
        "seen": ["a", "b", "c"],
        "via_ctx": ["a", "b", "c"],
        "last": "c",
    }


async def test_a_parallel_loops_ctx_values_apply_in_completion_order(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    text = LOOP_CTX.format(name="loop_ctx_parallel", mode="parallel")
    run = await run_playbook(gateway, process_mesh.pg_dsn, text)

    assert run.status == "COMPLETED", run.detail
    # Parallel iterations all rendered against the list at their dispatch (empty); the value
    # that stays is the one of the iteration whose call.done came last.
    finished = [step_result([e], "collect")["letter"] for e in _call_done(run.events, "collect")]
    assert sorted(finished) == ["a", "b", "c"]
    assert step_result(run.events, "summary") == {
        "seen": [finished[-1]],
        "via_ctx": [finished[-1]],
        "last": finished[-1],
    }


EXTERNALISED = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: externalised_accessors, path: tests/forms/externalised_accessors}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'rows': ['row %d' % i for i in range(20000)], 'n': 7}"}
    next: check
  - step: check
    tool:
      - name: look
        kind: python
        input:
          has_ref: "{{ start._ref is defined }}"
          ref: "{{ start._ref }}"
          store: "{{ start._store }}"
          uri: "{{ start._uri }}"
          preview_n: "{{ start._preview.n }}"
          n: "{{ start.n }}"
          size: "{{ start.rows | length }}"
        code: |
          result = {'has_ref': has_ref, 'ref': ref, 'store': store, 'uri': uri,
                    'preview_n': preview_n, 'n': n, 'size': size}
"""


async def test_an_externalised_results_accessors_are_seen_by_worker_side_templates(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, EXTERNALISED, seconds=60.0)

    assert run.status == "COMPLETED", (run.detail.get("error"), run.failures)
    reference = one(run.log, "call.done", "start").context["result"]["reference"]
    look = step_result(run.events, "check")["look"]
    assert look["uri"].endswith(f"/api/result/resolve?ref={quote(reference['ref'], safe='')}")
    assert {k: v for k, v in look.items() if k != "uri"} == {
        "has_ref": True,
        "ref": reference["ref"],
        "store": "db",
        "preview_n": 7,
        "n": 7,
        "size": 20000,
    }


async def test_a_stored_result_is_read_back_when_its_call_done_comes_alone(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """A feed that fetches one event at a time folds a `call.done` before its `command.completed`
    arrives (outside a pass): the stored result must be read back then too, or the next step's
    templates see the reference where the data should be. With the default batch both usually
    come together, so this ran only by chance before."""
    async with (
        running_process_mesh(pg_server, tmp_path / "mesh", {"NOETL_EXECUTION_FEED_BATCH": "1"}) as mesh,
        httpx.AsyncClient(base_url=mesh.gateway_url, timeout=30.0) as http,
    ):
        for _ in range(2):
            run = await run_playbook(http, mesh.pg_dsn, EXTERNALISED, seconds=60.0)
            assert run.status == "COMPLETED", (run.detail.get("error"), run.failures)
            look = step_result(run.events, "check")["look"]
            assert (look["n"], look["size"]) == (7, 20000)


LOOP_OBJECT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: loop_object, path: tests/forms/loop_object}
workflow:
  - step: start
    loop: {in: "{{ [3, 5] }}", iterator: x}
    tool: {kind: python, code: "result = {'sq': x * x}"}
    next:
      - {step: server_side, when: '{{ event.name == "loop.done" }}'}
  - step: server_side
    tool:
      kind: python
      input: {rows: "{{ start.results }}", count: "{{ start.count }}", listed: "{{ start }}"}
      code: "result = {'rows': rows, 'count': count, 'same': rows == listed}"
    next: worker_side
  - step: worker_side
    tool:
      - name: read
        kind: python
        input: {rows: "{{ start.results }}", count: "{{ start.count }}", first: "{{ start[0].sq }}"}
        code: "result = {'rows': rows, 'count': count, 'first': first}"
"""


async def test_a_loop_steps_result_reads_as_an_object_with_results(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    run = await run_playbook(gateway, process_mesh.pg_dsn, LOOP_OBJECT)

    assert run.status == "COMPLETED", run.detail
    rows = [{"sq": 9}, {"sq": 25}]
    assert step_result(run.events, "server_side") == {"rows": rows, "count": 2, "same": True}
    assert step_result(run.events, "worker_side") == {"read": {"rows": rows, "count": 2, "first": 9}}


def _call_done(events: list[dict[str, Any]], step: str) -> list[dict[str, Any]]:
    """The step's `call.done` events in the order they were stored."""
    found = [e for e in events if e["event_type"] == "call.done" and e["node_name"] == step]
    return sorted(found, key=lambda e: e["event_id"])
