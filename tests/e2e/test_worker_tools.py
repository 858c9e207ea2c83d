"""The worker's tools and run-time secrets on the session mesh, with playbooks of their own.

http retried on a 500 by its policy, a missing postgres credential, a failing or fire-and-forget
child playbook, a shell step, a wallet secret echoed by user code (redacted in the events), and
user code that kills its interpreter (the worker lives on).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, execute, register, step_result, step_stdout
from tests.helpers.mock_api import MockApi, running_mock_api

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mock_api() -> Iterator[tuple[str, MockApi]]:
    with running_mock_api() as served:
        yield served


def playbook(path: str, workflow: str, workload: str = "") -> str:
    name = path.rpartition("/")[2]
    head = f"apiVersion: noetl.io/v2\nkind: Playbook\nmetadata:\n  name: {name}\n  path: {path}\n"
    return head + (f"workload:\n{workload}" if workload else "") + f"workflow:\n{workflow}"


HTTP_RETRY = playbook(
    "tests/worker/http_retry",
    """\
  - step: start
    tool:
      kind: http
      url: "{{ api_url }}/api/v1/flaky"
      params: {key: "{{ key }}", failures: 2}
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' and output.error.retryable }}"
              then: {do: retry, attempts: 3, delay: 0.1}
""",
    '  api_url: ""\n  key: ""\n',
)


async def test_http_is_retried_on_500_until_it_succeeds(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mock_api: tuple[str, MockApi]
) -> None:
    url, api = mock_api
    key = uuid.uuid4().hex
    await register(gateway, HTTP_RETRY)
    run = await finish(
        gateway,
        process_mesh.pg_dsn,
        await execute(gateway, "tests/worker/http_retry", {"api_url": url, "key": key}),
    )

    assert run.status == "COMPLETED"
    result = step_result(run.events, "start")
    assert result["status_code"] == 200
    assert result["data"] == result["body"] == {"key": key, "calls": 3, "status": "ok"}
    assert api.flaky_calls(key) == 3


async def test_http_500_without_a_retry_rule_fails_the_step(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mock_api: tuple[str, MockApi]
) -> None:
    url, _ = mock_api
    await register(
        gateway,
        playbook(
            "tests/worker/http_500",
            '  - step: start\n    tool: {kind: http, url: "{{ api_url }}/api/v1/status/503"}\n',
            '  api_url: ""\n',
        ),
    )
    run = await finish(
        gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/http_500", {"api_url": url})
    )

    assert run.status == "FAILED"
    (failed,) = [e for e in run.events if e["event_type"] == "command.failed"]
    assert failed["error"].startswith("HTTP 503")


async def test_postgres_with_a_missing_credential_fails_clearly(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(
        gateway,
        playbook(
            "tests/worker/pg_missing_credential",
            "  - step: start\n    tool: {kind: postgres, auth: no_such_credential, command: SELECT 1}\n",
        ),
    )
    run = await finish(
        gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/pg_missing_credential")
    )

    assert run.status == "FAILED"
    (failed,) = [e for e in run.events if e["event_type"] == "command.failed"]
    assert failed["node_name"] == "start"
    assert "credential 'no_such_credential' not found" in failed["error"]


FAILING_CHILD = playbook(
    "tests/worker/failing_child",
    """\
  - step: start
    tool:
      kind: python
      code: |
        raise ValueError("the child gives up")
""",
)

PARENT = playbook(
    "tests/worker/parent_of_failing_child",
    """\
  - step: start
    tool:
      kind: playbook
      path: tests/worker/failing_child
      return_step: start
      input: {note: from the parent}
    next: [{step: end}]
  - step: end
    tool: {kind: noop}
""",
)


async def test_a_failing_child_fails_the_parent_step(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, FAILING_CHILD)
    await register(gateway, PARENT)
    run = await finish(
        gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/parent_of_failing_child")
    )

    assert run.status == "FAILED"
    (failed,) = [e for e in run.events if e["event_type"] == "command.failed"]
    assert failed["node_name"] == "start"
    assert failed["error"].startswith("child playbook tests/worker/failing_child (")
    assert "ValueError: the child gives up" in failed["error"]
    assert ("step.enter", "end") not in run.types()
    child_id = failed["error"].split("(", 1)[1].split(")", 1)[0]
    child = await gateway.get(f"/api/executions/{child_id}")
    assert child.status_code == 200
    assert child.json()["status"] == "FAILED"
    assert str(child.json().get("parent_execution_id")) == run.execution_id


async def test_fire_and_forget_child(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    await register(
        gateway,
        playbook(
            "tests/worker/forgotten_child",
            "  - step: start\n    tool: {kind: python, code: 'result = {\"seen\": note}', input: {note: '{{ note }}'}}\n",
            '  note: "default"\n',
        ),
    )
    await register(
        gateway,
        playbook(
            "tests/worker/fire_and_forget",
            "  - step: start\n    tool: {kind: playbook, path: tests/worker/forgotten_child, input: {note: given}}\n",
        ),
    )
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/fire_and_forget"))

    assert run.status == "COMPLETED"
    started = step_result(run.events, "start")
    assert started["status"] == "started" and started["async"] is True
    assert started["path"] == "tests/worker/forgotten_child"
    child = await finish(gateway, process_mesh.pg_dsn, started["execution_id"])
    assert child.status == "COMPLETED"
    assert step_result(child.events, "start") == {"seen": "given"}


async def test_shell_step(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    await register(
        gateway,
        playbook(
            "tests/worker/shell",
            """\
  - step: start
    tool: {kind: shell, cmds: ["echo hello", "echo $GREETING >&2"], env: {GREETING: hi}}
    next: [{step: fail}]
  - step: fail
    tool: {kind: shell, command: "echo about to fail; exit 3"}
""",
        ),
    )
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/shell"))

    assert run.status == "FAILED"
    assert step_result(run.events, "start") == {"stdout": "hello\n", "stderr": "hi\n", "exit_code": 0}
    (failed,) = [e for e in run.events if e["event_type"] == "command.failed"]
    assert (failed["node_name"], failed["error"]) == (
        "fail",
        "shell command exited with code 3: about to fail",
    )


SECRET = "s3cr3t-" + uuid.uuid4().hex

ECHOED_SECRET = playbook(
    "tests/worker/echoed_secret",
    """\
  - step: start
    tool:
      kind: python
      input:
        value: "{{ keychain.e2e_echo.password }}"
      code: |
        print(f"the value is {value}")
        result = {"echo": value, "length": len(value)}
    next: [{step: end}]
  - step: end
    tool:
      kind: python
      code: |
        result = {"done": True}
""",
)


async def test_a_wallet_secret_echoed_by_user_code_is_redacted(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    created = await gateway.post(
        "/api/credentials", json={"name": "e2e_echo", "type": "generic", "data": {"password": SECRET}}
    )
    assert created.status_code in (200, 201), created.text
    await register(gateway, ECHOED_SECRET)
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/echoed_secret"))

    assert run.status == "COMPLETED"
    assert step_result(run.events, "start") == {"echo": "[REDACTED]", "length": len(SECRET)}
    assert step_stdout(run.events, "start") == "the value is [REDACTED]\n"
    assert SECRET not in json.dumps(run.events)
    assert SECRET not in json.dumps([e.context for e in run.log])


async def test_user_code_killing_its_interpreter_leaves_the_worker_alive(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(
        gateway,
        playbook(
            "tests/worker/os_exit",
            "  - step: start\n    tool: {kind: python, code: 'import os; os._exit(7)'}\n",
        ),
    )
    worker = next(p for p in process_mesh.info.processes if p.name == "worker")
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/os_exit"))

    assert run.status == "FAILED"
    (failed,) = [e for e in run.events if e["event_type"] == "command.failed"]
    assert failed["error"] == "python process exited unexpectedly (exit code 7)"
    os.kill(worker.pid, 0)  # still there
    await register(
        gateway,
        playbook(
            "tests/worker/after_os_exit", "  - step: start\n    tool: {kind: python, code: 'result = 1'}\n"
        ),
    )
    after = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, "tests/worker/after_os_exit"))
    assert after.status == "COMPLETED"
    assert step_result(after.events, "start") == 1
