"""The real `noetl` CLI against the session mesh: `catalog list`, `catalog get`, `run -r distributed`
with `--payload`, `--set` and a `-V`/`--version` pin, and `status` in its human form (cli-wire.md
§4.3, §4.4, §4.5, §4.7).

What a run received is read back twice: the merged workload the server stored in
`playbook.initialized` (dsl.md §10.1) and what the `start` step was given: `start` returns
`{{ workload }}`, which typed rendering (dsl.md §8.3) turns back into the object itself.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.cli import after_header, noetl, plain
from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import (
    Completed,
    ProcessMesh,
    gated_playbook,
    request_count,
    step_result,
    wait_claimed,
)

pytestmark = pytest.mark.e2e

PREFIX = "Playbook registered successfully: "

# `start` returns the merged workload it was given; `marker` tells registered versions apart.
ECHO = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: echo
  path: @PATH@
workload:
  greeting: hello
  marker: @MARKER@
workflow:
  - step: start
    tool:
      kind: python
      input:
        got: "{{ workload }}"
      code: |
        result = {"got": got}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
"""

FAILS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: fails
  path: @PATH@
workflow:
  - step: start
    tool:
      kind: python
      code: |
        raise RuntimeError("cli status fails on purpose")
"""


def fresh_path(name: str) -> str:
    return f"tests/cli_run/{uuid.uuid4().hex[:8]}/{name}"


def echo(path: str, marker: str = "one") -> str:
    return ECHO.replace("@PATH@", path).replace("@MARKER@", marker)


async def register_file(env: dict[str, str], mesh: ProcessMesh, file: Path, text: str) -> dict[str, Any]:
    """`noetl register playbook -f FILE` with `text`; returns the register response the CLI echoes."""
    await asyncio.to_thread(file.write_text, text)
    registered = await noetl(env, mesh, "register", "playbook", "-f", str(file))
    assert registered.returncode == 0, registered.describe()
    assert registered.stdout.startswith(PREFIX), registered.describe()
    body: dict[str, Any] = json.loads(registered.stdout.removeprefix(PREFIX))
    return body


def response_id(response: str, completed: Completed) -> str:
    """The execution id of the execute response the CLI printed (§4.5), checked for its shape."""
    body = json.loads(response)
    assert body == {"commands_generated": 1, "execution_id": body["execution_id"], "status": "started"}, (
        completed.describe()
    )
    execution_id: str = body["execution_id"]
    assert isinstance(execution_id, str) and execution_id.isdigit(), completed.describe()
    return execution_id


def started(completed: Completed) -> str:
    """The execution id of a `run ... --json`, which prints only the response."""
    assert completed.returncode == 0, completed.describe()
    return response_id(completed.stdout, completed)


def started_human(completed: Completed) -> tuple[list[str], str]:
    """A human `run`: the lines before `Execution started:` and the id of the response printed
    after it, which the closing `noetl status "<id>"` hint must repeat."""
    assert completed.returncode == 0, completed.describe()
    head, _, rest = plain(completed).partition("Execution started:\n")
    response, _, hint = rest.partition("\nTo check status:\n")
    execution_id = response_id(response, completed)
    assert hint.strip() == f'noetl status "{execution_id}"', completed.describe()
    return [line.strip() for line in head.splitlines() if line.strip()], execution_id


async def received(gateway: httpx.AsyncClient, mesh: ProcessMesh, execution_id: str) -> FinishedRun:
    """Finishes the echo run and asserts the step was given exactly the workload the server stored."""
    run = await finish(gateway, mesh.pg_dsn, execution_id)
    assert run.status == "COMPLETED"
    (initialized,) = [e for e in run.events if e["event_type"] == "playbook.initialized"]
    assert step_result(run.events, "start") == {"got": initialized["context"]["workload"]}
    return run


def workload(run: FinishedRun) -> Any:
    return step_result(run.events, "start")["got"]


def status_lines(completed: Completed) -> list[str]:
    """The human `status` output without colours, blank lines and the `====` rules, each stripped."""
    assert completed.returncode == 0, completed.describe()
    lines = (line.strip() for line in plain(completed).splitlines())
    return [line for line in lines if line and set(line) != {"="}]


# --------------------------------------------------------------------------------------------------
# catalog list / catalog get


@pytest.mark.parametrize("kind", ["Playbook", "playbook"])
async def test_catalog_list_shows_every_version_of_a_registered_playbook(
    process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path, kind: str
) -> None:
    """§4.3: `{"resource_type": "<as typed>"}`, the kind compared case-insensitively; human mode
    prints `Catalog (<T>):` and the pretty response, `--json` the same compactly."""
    path = fresh_path("listed")
    first = await register_file(cli_env, process_mesh, tmp_path / "v1.yaml", echo(path, "one"))
    second = await register_file(cli_env, process_mesh, tmp_path / "v2.yaml", echo(path, "two"))

    listed = await noetl(cli_env, process_mesh, "catalog", "list", kind)

    entries = after_header(listed, f"Catalog ({kind}):")["entries"]
    assert {entry["kind"] for entry in entries} == {"playbook"}
    mine = [entry for entry in entries if entry["path"] == path]
    assert [(e["version"], e["catalog_id"]) for e in mine] == [
        (2, second["catalog_id"]),
        (1, first["catalog_id"]),
    ]  # newest first
    assert [e["content"] for e in mine] == [echo(path, "two"), echo(path, "one")]
    assert [e["payload"]["workload"]["marker"] for e in mine] == ["two", "one"]

    compact = await noetl(cli_env, process_mesh, "catalog", "list", kind, "--json")
    assert compact.returncode == 0, compact.describe()
    assert [e for e in json.loads(compact.stdout)["entries"] if e["path"] == path] == mine

    credentials = await noetl(cli_env, process_mesh, "catalog", "list", "Credential")
    assert not [e for e in after_header(credentials, "Catalog (Credential):")["entries"] if e["path"] == path]


async def test_catalog_get_prints_the_latest_entry(
    process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """§4.4: `{"path": "<P>"}` and the one entry pretty-printed: the latest version, as uploaded."""
    path = fresh_path("got")
    await register_file(cli_env, process_mesh, tmp_path / "v1.yaml", echo(path, "one"))
    second = await register_file(cli_env, process_mesh, tmp_path / "v2.yaml", echo(path, "two"))

    got = await noetl(cli_env, process_mesh, "catalog", "get", path)

    assert got.returncode == 0, got.describe()
    entry = json.loads(got.stdout)
    assert (entry["path"], entry["version"], entry["catalog_id"], entry["kind"]) == (
        path,
        2,
        second["catalog_id"],
        "playbook",
    )
    assert entry["content"] == echo(path, "two")  # the file's bytes, base64 on the wire (§4.1)
    assert entry["payload"]["metadata"] == {"name": "echo", "path": path}
    assert entry["payload"]["workload"] == {"greeting": "hello", "marker": "two"}
    assert got.stdout.startswith("{\n  "), got.describe()  # pretty-printed


@pytest.mark.parametrize("ref", ["no/such/playbook", "catalog://@PATH@@1"], ids=["unknown", "reference"])
async def test_catalog_get_of_a_missing_entry_keeps_rc_0(
    process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path, ref: str
) -> None:
    """§2: a 404 is shown on stderr with rc 0. A `catalog://P@N` reference is sent as a literal
    path (§4.4, §6), so it misses even when P version N exists."""
    path = fresh_path("literal")
    await register_file(cli_env, process_mesh, tmp_path / "v1.yaml", echo(path))

    got = await noetl(cli_env, process_mesh, "catalog", "get", ref.replace("@PATH@", path))

    assert got.returncode == 0, got.describe()
    assert got.stdout == "", got.describe()
    assert (
        'Failed to get catalog resource: 404 Not Found - {"detail":"Catalog entry not found"}' in got.stderr
    ), got.describe()


# --------------------------------------------------------------------------------------------------
# run -r distributed: --payload, --set, -V


async def test_run_with_a_payload(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """§4.5: `--payload` is the request's `workload`, merged over the playbook's (request wins);
    human mode prints the path, the server, the response and the `noetl status` hint."""
    path = fresh_path("payload")
    await register_file(cli_env, process_mesh, tmp_path / "echo.yaml", echo(path))
    payload = {"greeting": "hi", "n": 5, "nested": {"list": [1, "two"], "flag": False}}

    ran = await noetl(
        cli_env, process_mesh, "run", path, "-r", "distributed", "--payload", json.dumps(payload)
    )

    head, execution_id = started_human(ran)
    assert head == [
        "Executing playbook on distributed server...",
        f"Path: {path}",
        f"Server: {process_mesh.gateway_url}",
    ], ran.describe()
    assert "runtime: distributed (--runtime flag)" in ran.stderr, ran.describe()

    run = await received(gateway, process_mesh, execution_id)
    assert workload(run) == {"marker": "one", **payload}
    assert (run.detail["path"], run.detail["version"]) == (path, 1)


async def test_run_with_set_values(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """§4.5: `--set` values are JSON-parsed when they parse (else strings), dotted keys nest, and
    they are deep-merged over `--payload`, which they beat."""
    path = fresh_path("set")
    await register_file(cli_env, process_mesh, tmp_path / "echo.yaml", echo(path))

    ran = await noetl(
        cli_env,
        process_mesh,
        "run",
        path,
        "-r",
        "distributed",
        "--payload",
        '{"n": 1, "a": {"d": 3}, "greeting": "from payload"}',
        *("--set", "n=5", "--set", "flag=true", "--set", "zip=05", "--set", "ratio=1.5"),
        *("--set", 'quoted="7"', "--set", "list=[1,2]", "--set", "a.b=1", "--set", "a.c=x"),
        *("--set", "greeting=from set"),
        "--json",
    )

    run = await received(gateway, process_mesh, started(ran))
    assert workload(run) == {
        "marker": "one",
        "greeting": "from set",
        "n": 5,
        "flag": True,
        "zip": "05",
        "ratio": 1.5,
        "quoted": "7",
        "list": [1, 2],
        "a": {"d": 3, "b": 1, "c": "x"},
    }


@pytest.mark.parametrize("flag", ["-V", "--version"])
async def test_run_pins_the_version(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path, flag: str
) -> None:
    """§4.5: the pin is sent as an integer `version` and runs that version, not the latest; human
    mode shows it as `Version: N`. Without it the latest runs."""
    path = fresh_path("pinned")
    first = await register_file(cli_env, process_mesh, tmp_path / "v1.yaml", echo(path, "one"))
    second = await register_file(cli_env, process_mesh, tmp_path / "v2.yaml", echo(path, "two"))

    pinned = await noetl(cli_env, process_mesh, "run", path, "-r", "distributed", flag, "1")
    head, execution_id = started_human(pinned)
    assert head[1:3] == [f"Path: {path}", "Version: 1"], pinned.describe()
    run = await received(gateway, process_mesh, execution_id)
    assert (run.detail["version"], run.detail["catalog_id"]) == (1, first["catalog_id"])
    assert workload(run) == {"greeting": "hello", "marker": "one"}

    latest = await noetl(cli_env, process_mesh, "run", path, "-r", "distributed", "--json")
    run = await received(gateway, process_mesh, started(latest))
    assert (run.detail["version"], run.detail["catalog_id"]) == (2, second["catalog_id"])
    assert workload(run) == {"greeting": "hello", "marker": "two"}


async def test_run_of_a_version_that_does_not_exist_fails(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """§2: rc 1 and the gateway's 404 verbatim; nothing starts (http-api.md §4.1)."""
    path = fresh_path("unpinned")
    await register_file(cli_env, process_mesh, tmp_path / "v1.yaml", echo(path))
    before = [await request_count(gateway, "/api/execute", "POST", code) for code in (200, 404)]

    ran = await noetl(cli_env, process_mesh, "run", path, "-r", "distributed", "-V", "7")

    assert ran.returncode == 1, ran.describe()
    assert (
        f'Failed to execute playbook: 404 Not Found - {{"detail":"Executable catalog entry not found: {path}"}}'
        in ran.stderr
    ), ran.describe()
    after = [await request_count(gateway, "/api/execute", "POST", code) for code in (200, 404)]
    assert after == [before[0], before[1] + 1]


# --------------------------------------------------------------------------------------------------
# status, human form


async def test_status_of_a_completed_run(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """§4.7: green `COMPLETED`, the step count and list, the duration; no `Current:` or `Error:`."""
    path = fresh_path("status_done")
    await register_file(cli_env, process_mesh, tmp_path / "echo.yaml", echo(path))
    execution_id = started(await noetl(cli_env, process_mesh, "run", path, "-r", "distributed", "--json"))
    await received(gateway, process_mesh, execution_id)
    route = (await gateway.get(f"/api/executions/{execution_id}/status")).json()

    status = await noetl(cli_env, process_mesh, "status", execution_id)

    assert status_lines(status) == [
        f"Execution: {execution_id}",
        "Status: COMPLETED",
        "Steps: 2 completed",
        f"Duration: {route['duration_human']}",
        "Completed steps:",
        "- start",
        "- end",
        "Use --json for full execution details",
    ], status.describe()
    assert "\x1b[32mCOMPLETED" in status.stdout, status.describe()  # green


async def test_status_of_a_running_run(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """§4.7: not completed → yellow `RUNNING` and `Current: <current_step>`; no step list yet."""
    path = fresh_path("status_running")
    await register_file(cli_env, process_mesh, tmp_path / "gated.yaml", gated_playbook(path))
    gate = tmp_path / "gate"
    ran = await noetl(
        cli_env, process_mesh, "run", path, "-r", "distributed", "--set", f"gate={gate}", "--json"
    )
    execution_id = started(ran)
    await wait_claimed(gateway, execution_id, "start")

    status = await noetl(cli_env, process_mesh, "status", execution_id)
    gate.touch()

    lines = status_lines(status)
    assert lines[:3] == [f"Execution: {execution_id}", "Status: RUNNING", "Steps: 0 completed"], lines
    assert lines[3].startswith("Duration: ") and lines[4:] == [
        "Current: start",
        "Use --json for full execution details",
    ], lines
    assert "\x1b[33mRUNNING" in status.stdout, status.describe()  # yellow
    run = await finish(gateway, process_mesh.pg_dsn, execution_id)
    assert run.status == "COMPLETED"
    assert step_result(run.events, "start") == {"released": True}


async def failed_run(
    gateway: httpx.AsyncClient, mesh: ProcessMesh, env: dict[str, str], tmp_path: Path
) -> FinishedRun:
    path = fresh_path("status_failed")
    await register_file(env, mesh, tmp_path / "fails.yaml", FAILS.replace("@PATH@", path))
    execution_id = started(await noetl(env, mesh, "run", path, "-r", "distributed", "--json"))
    run = await finish(gateway, mesh.pg_dsn, execution_id)
    assert run.status == "FAILED"
    return run


async def test_status_of_a_failed_run_is_labelled_running(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """§6: the status route reports a failed run `completed:false, failed:true`, which the CLI's
    human mode labels `RUNNING` (only `completed:true` makes it `COMPLETED`/`FAILED`)."""
    run = await failed_run(gateway, process_mesh, cli_env, tmp_path)

    status = await noetl(cli_env, process_mesh, "status", run.execution_id)

    lines = status_lines(status)
    assert lines[:3] == [f"Execution: {run.execution_id}", "Status: RUNNING", "Steps: 0 completed"], lines
    assert f"Duration: {run.detail['duration_human']}" in lines, lines
    assert "Current: start" in lines, lines


async def test_a_failed_run_s_status_keeps_the_spec_keys_so_no_error_line_is_printed(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The CLI prints `Error:` only when the status body has an `error` key; http-api.md §4.5 fixes
    the body's keys without one (docs/decisions.md), so the failure reads from the detail route."""
    run = await failed_run(gateway, process_mesh, cli_env, tmp_path)

    status = await noetl(cli_env, process_mesh, "status", run.execution_id)
    body = (await gateway.get(f"/api/executions/{run.execution_id}/status")).json()

    assert list(body) == [
        "execution_id", "current_step", "completed_steps", "failed", "completed", "completion_inferred",
        "variables", "start_time", "end_time", "duration_seconds", "duration_human",
    ]  # fmt: skip
    assert not any(line.startswith("Error:") for line in status_lines(status)), status.describe()
    assert run.detail["error"] == "Failed steps: start"


async def test_status_of_an_unknown_execution(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, cli_env: dict[str, str]
) -> None:
    """§4.7: a 404 from `/status` makes the CLI try the detail route; both 404 → the combined
    message on stderr, rc 0."""
    routes = ["/api/executions/{execution_id}/status", "/api/executions/{execution_id}"]
    before = [await request_count(gateway, route, "GET", 404) for route in routes]

    status = await noetl(cli_env, process_mesh, "status", "1")

    assert status.returncode == 0, status.describe()
    assert status.stdout == "", status.describe()
    assert status.stderr.strip() == (
        "Failed to get status: 404 Not Found - Execution not found in server state cache;"
        ' fallback failed: 404 Not Found - {"detail":"Execution 1 not found"}'
    ), status.describe()
    assert [await request_count(gateway, route, "GET", 404) for route in routes] == [n + 1 for n in before]
