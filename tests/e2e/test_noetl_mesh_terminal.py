"""The terminal side of `noetl-mesh` against the session mesh: `run --json/--detach/--timeout`,
the failed step's error and stderr tail, `list` and `show [--follow]`.

Output goes to pipes here, so these are the plain-line forms (a TTY gets colour and a live table).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.helpers.mesh import ProcessMesh, mesh_command, mesh_run, wait_terminal

pytestmark = pytest.mark.e2e

SQUARES = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: squares, path: tests/terminal/squares}
workload: {items: [3, 1, 2]}
workflow:
  - step: start
    tool: {kind: python, code: "print('go'); result = {'ready': True}"}
    next: [square]
  - step: square
    loop: {in: "{{ workload.items }}", iterator: n, spec: {mode: parallel}}
    tool: {kind: python, input: {n: "{{ n }}"}, code: "result = {'sq': n * n}"}
    next: [{step: end, when: '{{ event.name == "loop.done" }}'}]
  - step: end
    tool: {kind: python, code: "result = {'done': True}"}
"""

EXPLODES = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: explodes, path: tests/terminal/explodes}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        import sys
        for i in range(30):
            sys.stderr.write(f"log line {i}\\n")
        raise RuntimeError("the reactor is on fire")
"""

NAPS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: naps, path: tests/terminal/naps}
workflow:
  - step: start
    tool: {kind: python, code: "import time; time.sleep(8); result = {}"}
"""


def playbook(tmp_path: Path, name: str, text: str) -> Path:
    file = tmp_path / f"{name}.yaml"
    file.write_text(text)
    return file


async def test_run_json_prints_one_document_with_every_steps_result(
    process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    result = await mesh_run(process_mesh, playbook(tmp_path, "squares", SQUARES), "--json")

    assert result.returncode == 0, result.describe()
    document = json.loads(result.stdout)
    assert document["status"] == "COMPLETED"
    assert document["path"] == "tests/terminal/squares"
    assert document["execution_id"].isdigit()
    steps = {step["step"]: step for step in document["steps"]}
    assert list(steps) == ["start", "square", "end"]
    assert steps["start"]["result"] == {"ready": True}
    assert steps["start"]["stdout"] == "go\n"
    # A loop's result: one entry per iteration, in iteration order (not completion order).
    assert steps["square"]["result"] == [{"sq": 9}, {"sq": 1}, {"sq": 4}]
    assert steps["square"]["iterations"] == 3
    assert steps["end"]["result"] == {"done": True}
    assert all(step["state"] == "done" and step["duration_ms"] is not None for step in steps.values())


async def test_a_failed_run_shows_the_steps_error_and_the_tail_of_its_stderr(
    process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    result = await mesh_run(process_mesh, playbook(tmp_path, "explodes", EXPLODES))

    assert result.returncode == 1, result.describe()
    assert "✗ start: RuntimeError: the reactor is on fire" in result.stderr
    assert "--- stderr of start (last 20 lines) ---" in result.stderr
    tail = result.stderr.split("--- stderr of start (last 20 lines) ---\n", 1)[1]
    assert "log line 29" in tail and "log line 9\n" not in tail
    assert "RuntimeError: the reactor is on fire" in tail


async def test_detach_prints_the_id_and_show_follows_it_to_the_end(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    detached = await mesh_run(process_mesh, playbook(tmp_path, "squares", SQUARES), "--detach")

    assert detached.returncode == 0, detached.describe()
    execution_id = detached.stdout.strip()
    assert execution_id.isdigit(), detached.describe()
    followed = await mesh_command(process_mesh, "show", execution_id, "--follow")
    assert followed.returncode == 0, followed.describe()
    assert re.search(r"^✓ square done 3/3 \d+ ms$", followed.stderr, re.MULTILINE), followed.describe()
    assert re.search(r"^COMPLETED in [\d.]+s$", followed.stderr, re.MULTILINE), followed.describe()
    assert (await wait_terminal(gateway, execution_id))["status"] == "COMPLETED"

    shown = await mesh_command(process_mesh, "show", execution_id, "--json")
    assert shown.returncode == 0, shown.describe()
    assert json.loads(shown.stdout)["steps"][1]["result"] == [{"sq": 9}, {"sq": 1}, {"sq": 4}]


async def test_timeout_stops_waiting_and_leaves_the_run_going(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    result = await mesh_run(process_mesh, playbook(tmp_path, "naps", NAPS), "--timeout", "1")

    assert result.returncode == 124, result.describe()
    found = re.search(r"execution (\d+) goes on", result.stderr)
    assert found and "timed out after 1s" in result.stderr, result.describe()
    execution_id = found.group(1)
    shown = await mesh_command(process_mesh, "show", execution_id)
    assert shown.returncode == 0, shown.describe()
    assert re.search(r"^▶ start running$", shown.stderr, re.MULTILINE), shown.describe()
    assert "RUNNING" in shown.stderr
    cancelled = await gateway.post(f"/api/executions/{execution_id}/cancel", json={})
    assert cancelled.json()["status"] == "cancelled"


async def test_list_shows_recent_runs_and_filters_them(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    ok = await mesh_run(process_mesh, playbook(tmp_path, "squares", SQUARES), "--json")
    failed = await mesh_run(process_mesh, playbook(tmp_path, "explodes", EXPLODES), "--json")
    ok_id, failed_id = json.loads(ok.stdout)["execution_id"], json.loads(failed.stdout)["execution_id"]
    await wait_terminal(gateway, failed_id)

    recent = await mesh_command(process_mesh, "list", "-n", "50")
    assert recent.returncode == 0, recent.describe()
    lines = {line.split("\t")[0]: line.split("\t") for line in recent.stdout.splitlines()}
    assert lines[ok_id][1] == "COMPLETED"
    assert lines[ok_id][2].startswith("tests/terminal/squares v")
    assert lines[failed_id][1] == "FAILED"

    only_failed = await mesh_command(
        process_mesh, "list", "--status", "failed", "--path", "terminal/explodes", "--json"
    )
    assert only_failed.returncode == 0, only_failed.describe()
    listed = json.loads(only_failed.stdout)
    assert failed_id in [item["execution_id"] for item in listed]
    assert all(item["status"] == "FAILED" and "terminal/explodes" in item["path"] for item in listed)

    shown = await mesh_command(process_mesh, "show", failed_id)
    assert shown.returncode == 1, shown.describe()
    assert re.search(r"^✗ start failed \d+ ms$", shown.stderr, re.MULTILINE), shown.describe()
    assert "error: Failed steps: start" in shown.stderr
