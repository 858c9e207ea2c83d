"""Bad input through the gateway: the documented status and body, and nothing written (http-api.md §3.1,
§4.1, §4.4, §4.5, §6).

Every rejected execute is checked against the database: no `noetl.execution` row and no
`noetl.event` row may appear for a run started during the call (§4.1: "No execution and no
events are created on 400/404/422").
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, gated_playbook, new_rows, register, wait_claimed
from tests.helpers.shared import fixture_file

pytestmark = pytest.mark.e2e

NO_START = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: no_start
  path: tests/e2e/bad/no_start
workflow:
  - step: begin
    tool:
      kind: python
      code: |
        result = {}
"""

NO_TOOL = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: no_tool
  path: tests/e2e/bad/no_tool
workflow:
  - step: start
    desc: a step without a tool
"""


async def rejected_execute(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, body: dict[str, object], status: int
) -> httpx.Response:
    """POST /api/execute that must fail with `status` and create neither an execution nor an event."""
    async with new_rows(process_mesh.pg_dsn) as created:
        response = await gateway.post("/api/execute", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert (created.executions, created.events) == (0, 0), f"a rejected execute wrote rows: {created}"
    return response


@pytest.mark.parametrize("content", ["key: [unclosed", "just a sentence, not a mapping"])
async def test_register_rejects_content_that_is_not_a_yaml_mapping(
    gateway: httpx.AsyncClient, content: str
) -> None:
    """400 by the gateway's documented choice; http-api.md §3.1 gives the reference's 500."""
    response = await gateway.post("/api/catalog/register", json={"content": content})

    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail.startswith("Error registering resource: ")
    assert detail.endswith(".")


async def test_register_without_content_is_a_validation_error(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post("/api/catalog/register", json={"resource_type": "Playbook"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "content"],
                "msg": "Field required",
                "input": {"resource_type": "Playbook"},
            }
        ]
    }


async def test_execute_of_an_unknown_path_is_404(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    response = await rejected_execute(gateway, process_mesh, {"path": "tests/e2e/bad/nowhere"}, 404)

    assert response.content == b'{"detail":"Executable catalog entry not found: tests/e2e/bad/nowhere"}'


async def test_execute_without_start_step_is_422(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, NO_START)
    response = await rejected_execute(gateway, process_mesh, {"path": "tests/e2e/bad/no_start"}, 422)

    assert response.content == b'{"detail":"Workflow must have a step named \'start\'"}'


async def test_execute_of_a_step_without_tool_is_400(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, NO_TOOL)
    response = await rejected_execute(gateway, process_mesh, {"path": "tests/e2e/bad/no_tool"}, 400)

    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "tool" in detail


async def test_public_fixture_without_tool_is_rejected_with_400(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    """fixtures README §1: the reference accepts the registration and answers 400 on execute."""
    registered = await register(
        gateway, fixture_file("playbooks/broken_playbooks/should_error_tool_is_required.yaml")
    )
    response = await rejected_execute(gateway, process_mesh, {"path": registered["path"]}, 400)

    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "tool" in detail


async def test_unknown_execution_status_is_404(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/executions/123456789/status")

    assert response.status_code == 404
    assert response.content == b'{"detail":"Execution not found"}'


async def test_non_numeric_execution_id(gateway: httpx.AsyncClient) -> None:
    """§1.1: 422 validation form on the detail route; §4.5: the status route answers its 404."""
    detail = await gateway.get("/api/executions/abc")
    assert detail.status_code == 422
    assert detail.json() == {
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["path", "execution_id"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "abc",
            }
        ]
    }

    status = await gateway.get("/api/executions/abc/status")
    assert status.status_code == 404
    assert status.content == b'{"detail":"Execution not found"}'


async def test_unknown_command_is_404(gateway: httpx.AsyncClient) -> None:
    expected = b'{"detail":"command not found: 987654321"}'

    found = await gateway.get("/api/commands/987654321")
    assert (found.status_code, found.content) == (404, expected)

    claimed = await gateway.post("/api/commands/987654321/claim", json={"worker_id": "nobody"})
    assert (claimed.status_code, claimed.content) == (404, expected)


async def test_claim_by_another_worker_conflicts(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    """§6.2: a live claim held by another worker → 409 `active_claim` with `Retry-After: 2`; once the
    command has completed → 409 `already_terminal`. The refused claims write nothing."""
    gate = tmp_path / "gate"
    await register(gateway, gated_playbook("tests/e2e/bad/gated"))
    started = await gateway.post(
        "/api/execute", json={"path": "tests/e2e/bad/gated", "payload": {"gate": str(gate)}}
    )
    assert started.status_code == 200, started.text
    execution_id = started.json()["execution_id"]
    try:
        live = await wait_claimed(gateway, execution_id, "start")
        assert live.worker_id != "intruder"

        conflict = await gateway.post(f"/api/commands/{live.event_id}/claim", json={"worker_id": "intruder"})
        assert conflict.status_code == 409, conflict.text
        assert conflict.headers["retry-after"] == "2"
        assert conflict.json() == {"detail": {"code": "active_claim", "worker_id": live.worker_id}}
    finally:
        gate.touch()

    run = await finish(gateway, process_mesh.pg_dsn, execution_id)
    assert run.status == "COMPLETED"
    assert [e["event_type"] for e in run.events].count("command.claimed") == 1

    late = await gateway.post(f"/api/commands/{live.event_id}/claim", json={"worker_id": "intruder"})
    assert late.status_code == 409, late.text
    assert "retry-after" not in late.headers
    assert late.json() == {
        "detail": {"code": "already_terminal", "message": "Command already reached terminal state"}
    }
