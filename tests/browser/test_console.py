"""The web console in a real browser, against the session mesh: start a run from the form and
watch it go live to COMPLETED, read a failed step's error, cancel a running execution (alone, and
with its children) and rerun it, follow a loop into its sub-playbook runs, filter the list and see
the worker pools.

Each test saves screenshots (see the `screenshots` fixture) so a reviewer can look at the pages.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.helpers.browser import Page
from tests.helpers.mesh import ProcessMesh, events, execute, register, step_result, wait_terminal
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

GREET = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: greet, path: tests/console/greet, description: Greets someone after a pause}
workload: {who: world, pause: 1.5}
workflow:
  - step: start
    tool: {kind: python, input: {who: "{{ workload.who }}"}, code: "print('hello', who); result = {'greeting': 'hello ' + who}"}
    next: [{step: wait}]
  - step: wait
    tool: {kind: python, input: {pause: "{{ workload.pause }}"}, code: "import time; time.sleep(float(pause)); result = {'slept': pause}"}
    next:
      spec: {mode: exclusive}
      arcs:
        - {step: loud, when: "{{ workload.who == 'nobody' }}"}
        - {step: end}
  - step: loud
    tool: {kind: noop}
    next: [end]
  - step: end
    tool: {kind: python, input: {g: "{{ start.greeting }}"}, code: "result = {'final': g}"}
"""

RAISES = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: raises, path: tests/console/raises}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'ok': True}"}
    next: [explode]
  - step: explode
    tool:
      kind: python
      code: |
        import sys
        sys.stderr.write("about to fail\\n")
        raise ValueError("kaboom from explode")
"""

SLEEPY = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sleepy, path: tests/console/sleepy}
workflow:
  - step: start
    tool: {kind: python, code: "import time; time.sleep(10); result = {'woke': True}"}
    next: [end]
  - step: end
    tool: {kind: noop}
"""

LONG = 300
LONG_LOOP = f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: long_loop, path: tests/console/long_loop}}
workload: {{n: {LONG}}}
workflow:
  - step: start
    tool: {{kind: noop}}
    next: [each]
  - step: each
    loop: {{in: "{{{{ workload.n }}}}", iterator: i, spec: {{mode: parallel, max_in_flight: 20}}}}
    tool: {{kind: noop}}
    next: [{{step: end, when: '{{{{ event.name == "loop.done" }}}}'}}]
  - step: end
    tool: {{kind: noop}}
"""

WAITS_FOR_SLEEPY = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: waits, path: tests/console/waits}
workflow:
  - step: start
    tool: {kind: playbook, path: tests/console/sleepy, return_step: start}
"""

CHILD = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: child, path: tests/console/child}
workload: {x: 1}
workflow:
  - step: start
    tool: {kind: python, input: {x: "{{ workload.x }}"}, code: "result = {'twice': x * 2}"}
"""

PARENT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: parent, path: tests/console/parent}
workload: {items: [1, 2, 3]}
workflow:
  - step: start
    tool: {kind: noop}
    next: [calls]
  - step: calls
    loop: {in: "{{ workload.items }}", iterator: item}
    tool: {kind: playbook, path: tests/console/child, return_step: start, input: {x: "{{ item }}"}}
    next: [{step: end, when: '{{ event.name == "loop.done" }}'}]
  - step: end
    tool: {kind: noop}
"""


async def open_console(page: Page, process_mesh: ProcessMesh, fragment: str) -> None:
    await page.goto(f"{process_mesh.gateway_url}/ui/{fragment}")
    await page.wait("document.getElementById('view').dataset.readyMs", what=f"{fragment} to be drawn")


def state_of(selector: str) -> str:
    return f"(document.querySelector({json.dumps(selector)}) || {{dataset: {{}}}}).dataset.state"


async def run_status(page: Page, status: str, within: float = 30.0) -> None:
    await page.wait(
        f"document.querySelector('.execution') && document.querySelector('.execution').dataset.status === '{status}'",
        what=f"the page to show {status}",
        within=within,
    )


async def test_a_run_started_from_the_form_goes_live_to_completed(
    page: Page, gateway: httpx.AsyncClient, process_mesh: ProcessMesh, screenshots: Path
) -> None:
    await register(gateway, GREET)
    await open_console(page, process_mesh, "#/catalog/tests/console/greet")
    await page.wait("!!document.getElementById('field-who')", what="the run form")
    await page.screenshot(screenshots / "01-catalog-run-form.png")

    await page.type_into("#field-who", "browser")
    await page.click("#run-submit")
    hash_ = await page.wait(
        "/^#\\/executions\\/\\d+$/.test(location.hash) && location.hash", what="the new execution's page"
    )
    execution_id = hash_.rsplit("/", 1)[1]
    # Live: the slow step is seen running before the run ends.
    await page.wait(f"{state_of('[data-step=wait]')} === 'running'", what="step 'wait' to run")
    await page.screenshot(screenshots / "02-run-live.png")
    await run_status(page, "COMPLETED")

    states = await page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('g.node')].map(n => [n.dataset.step, n.dataset.state]))"
    )
    assert states == {"start": "completed", "wait": "completed", "loud": "skipped", "end": "completed"}
    arcs = await page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-arc]')].map(a => [a.dataset.arc, a.dataset.state]))"
    )
    assert arcs == {
        "start->wait": "taken",
        "wait->loud": "skipped",
        "wait->end": "taken",
        "loud->end": "idle",
    }
    await page.click("g.node[data-step=end]")
    panel = await page.wait("document.getElementById('step-panel').innerText", what="the step panel")
    assert "hello browser" in panel
    await page.screenshot(screenshots / "03-run-completed.png")

    detail = await wait_terminal(gateway, execution_id)
    assert detail["status"] == "COMPLETED"
    assert step_result(await events(gateway, execution_id), "end") == {"final": "hello browser"}


async def test_a_failed_steps_error_and_stderr_are_shown(
    page: Page, gateway: httpx.AsyncClient, process_mesh: ProcessMesh, screenshots: Path
) -> None:
    await register(gateway, RAISES)
    execution_id = await execute(gateway, "tests/console/raises")
    await open_console(page, process_mesh, f"#/executions/{execution_id}")
    await run_status(page, "FAILED")

    assert await page.evaluate(state_of("g.node[data-step=explode]")) == "failed"
    await page.click("g.node[data-step=explode]")
    error = await page.wait(
        "(document.getElementById('step-error') || {}).innerText", what="the step's error"
    )
    assert "ValueError: kaboom from explode" in error
    stderr = await page.evaluate("document.querySelector('#step-panel pre.stderr').innerText")
    assert "about to fail" in stderr and "Traceback" in stderr
    assert "Failed steps: explode" in await page.evaluate("document.getElementById('run-error').innerText")
    await page.screenshot(screenshots / "04-failed-step.png")


async def test_cancel_stops_a_running_execution(
    page: Page, gateway: httpx.AsyncClient, process_mesh: ProcessMesh, screenshots: Path
) -> None:
    await register(gateway, SLEEPY)
    execution_id = await execute(gateway, "tests/console/sleepy")
    await open_console(page, process_mesh, f"#/executions/{execution_id}")
    await page.wait(f"{state_of('g.node[data-step=start]')} === 'running'", what="step 'start' to run")
    assert await page.evaluate("document.getElementById('btn-cancel').disabled") is False

    await page.click("#btn-cancel")
    await run_status(page, "CANCELLED", within=15)
    message = await page.wait("document.getElementById('action-message').innerText", what="the cancel answer")
    assert "Cancelled 1 execution" in message
    assert await page.evaluate("document.getElementById('btn-cancel').disabled") is True
    assert await page.evaluate(state_of("g.node[data-step=start]")) == "cancelled"
    await page.screenshot(screenshots / "05-cancelled.png")
    detail = await wait_terminal(gateway, execution_id)
    assert detail["status"] == "CANCELLED"


async def test_cancel_with_children_then_rerun(
    page: Page, gateway: httpx.AsyncClient, process_mesh: ProcessMesh, screenshots: Path
) -> None:
    await register(gateway, SLEEPY)
    await register(gateway, WAITS_FOR_SLEEPY)
    execution_id = await execute(gateway, "tests/console/waits")
    await open_console(page, process_mesh, f"#/executions/{execution_id}")
    await page.wait(f"{state_of('g.node[data-step=start]')} === 'running'", what="step 'start' to run")

    async def child_running() -> str | None:
        listed = (await gateway.get("/ui/api/executions", params={"parent": execution_id})).json()["items"]
        return listed[0]["execution_id"] if listed and listed[0]["status"] == "RUNNING" else None

    child = await wait_for(child_running, what="the child run", within=15)
    await page.click("#btn-cancel-cascade")
    await run_status(page, "CANCELLED", within=15)
    assert "Cancelled 2 execution" in await page.wait(
        "document.getElementById('action-message').innerText", what="the cancel answer"
    )
    assert (await wait_terminal(gateway, child))["status"] == "CANCELLED"
    await page.screenshot(screenshots / "06-cancelled-with-children.png")

    await page.click("#btn-rerun")
    rerun = await page.wait(
        f"location.hash !== '#/executions/{execution_id}' && /^#\\/executions\\/\\d+$/.test(location.hash) && location.hash",
        what="the rerun's page",
    )
    rerun_id = rerun.rsplit("/", 1)[1]
    await page.wait(f"{state_of('g.node[data-step=start]')} === 'running'", what="the rerun to run")
    cancelled = await gateway.post(f"/api/executions/{rerun_id}/cancel", json={"cascade": True})
    assert cancelled.json()["status"] == "cancelled"


async def test_a_loop_of_sub_playbooks_links_to_each_child(
    page: Page, gateway: httpx.AsyncClient, process_mesh: ProcessMesh, screenshots: Path
) -> None:
    await register(gateway, CHILD)
    await register(gateway, PARENT)
    execution_id = await execute(gateway, "tests/console/parent")
    await open_console(page, process_mesh, f"#/executions/{execution_id}")
    await run_status(page, "COMPLETED")

    await page.click("[data-toggle=calls]")
    iterations = await page.wait(
        "document.querySelectorAll('.irow.completed').length === 3 && "
        "[...document.querySelectorAll('.irow')].map(r => r.dataset.iteration)",
        what="three completed iterations in the timeline",
    )
    assert iterations == ["0", "1", "2"]
    await page.click("g.node[data-step=calls]")
    children = await page.wait(
        "document.querySelectorAll('#step-panel .child-link').length === 3 && "
        "[...document.querySelectorAll('#step-panel .child-link')].map(a => a.textContent)",
        what="three child runs in the step panel",
    )
    await page.screenshot(screenshots / "07-loop-and-children.png")
    listed = (await gateway.get("/ui/api/executions", params={"parent": execution_id})).json()["items"]
    assert sorted(children) == sorted(item["execution_id"] for item in listed)

    await page.click("#step-panel .child-link")
    await page.wait("!!document.getElementById('parent-link')", what="the child's page")
    assert execution_id in await page.evaluate("document.getElementById('parent-link').innerText")
    await run_status(page, "COMPLETED")


async def test_a_long_loop_draws_only_the_rows_in_view(
    page: Page, gateway: httpx.AsyncClient, process_mesh: ProcessMesh, screenshots: Path
) -> None:
    await register(gateway, LONG_LOOP)
    execution_id = await execute(gateway, "tests/console/long_loop")
    await open_console(page, process_mesh, f"#/executions/{execution_id}")
    await run_status(page, "COMPLETED", within=90)

    assert await page.evaluate("document.querySelector('g.node[data-step=each] .detail').textContent") == (
        f"{LONG}/{LONG} · completed"
    )
    total = (await gateway.get(f"/api/executions/{execution_id}", params={"page_size": 10})).json()
    shown = await page.evaluate("document.getElementById('event-count').textContent")
    assert shown == f"({total['pagination']['total_events']})"
    assert await page.evaluate("document.querySelectorAll('.erow').length") < 40
    await page.click("[data-toggle=each]")
    assert await page.wait("document.querySelectorAll('.irow').length", what="iteration rows") < 40
    await page.evaluate(
        "(() => { const l = document.querySelector('.iterations'); l.scrollTop = l.scrollHeight; })()"
    )
    await page.wait(
        f"!!document.querySelector('.irow[data-iteration=\"{LONG - 1}\"]')", what="the last iteration"
    )
    assert await page.evaluate("document.querySelectorAll('.irow').length") < 40
    await page.screenshot(screenshots / "08-long-loop.png")


async def test_the_list_updates_live_and_filters(
    page: Page, gateway: httpx.AsyncClient, process_mesh: ProcessMesh, screenshots: Path
) -> None:
    await register(gateway, GREET)
    await register(gateway, RAISES)
    await open_console(page, process_mesh, "#/executions")
    execution_id = await execute(gateway, "tests/console/greet", {"pause": 0})
    await page.wait(
        f"!!document.querySelector('tr[data-id=\"{execution_id}\"]')", what="the new run in the list"
    )
    failed = await execute(gateway, "tests/console/raises")
    await wait_terminal(gateway, failed)

    await page.evaluate(
        "(() => { const s = document.getElementById('filter-status'); s.value = 'FAILED';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    await page.type_into("#filter-path", "console/raises")
    rows = await page.wait(
        f"document.querySelector('tr[data-id=\"{failed}\"]') && "
        "[...document.querySelectorAll('#executions tbody tr')].map(r => [r.dataset.status, r.children[1].innerText])",
        what="the failed run under the filters",
    )
    assert rows and all(status == "FAILED" and "tests/console/raises" in path for status, path in rows)
    assert re.search(r"status=FAILED", await page.evaluate("location.hash"))
    await page.screenshot(screenshots / "09-list-filtered.png")

    await open_console(page, process_mesh, "#/pools")
    heartbeat = await page.wait(
        "document.querySelector('#pools tbody tr[data-pool] td[data-age]') && "
        "document.querySelector('#pools tbody tr[data-pool] td[data-age]').innerText",
        what="a worker pool with its heartbeat",
    )
    assert heartbeat.endswith("ago")
    await page.screenshot(screenshots / "10-pools.png")
