"""Golden bodies of `POST /api/events` (http-api.md §5.1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import LINEAR_PATH, expect
from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import ProcessMesh, execute

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def own_run(process_mesh: ProcessMesh, linear_run: FinishedRun) -> FinishedRun:
    """A finished run of this module's own: events posted here must not show in other modules' goldens."""
    async with httpx.AsyncClient(base_url=process_mesh.gateway_url, timeout=30.0) as http:
        return await finish(http, process_mesh.pg_dsn, await execute(http, LINEAR_PATH))


async def test_emit(gateway: httpx.AsyncClient, golden: GoldenFiles, own_run: FinishedRun) -> None:
    """An informative event on a finished run: stored, nothing orchestrated (`commands_generated` 0)."""
    body = {
        "execution_id": own_run.execution_id,
        "step": "end",
        "event_type": "contract.note",
        "payload": {"note": "written by the contract tests"},
        "actionable": False,
        "worker_id": "contract-tests",
    }
    response = await gateway.post("/api/events", json=body)
    golden.check("event_emit", expect(response, 200))

    note = await gateway.get(
        f"/api/executions/{own_run.execution_id}", params={"event_type": "contract.note", "page_size": 10}
    )
    stored = expect(note, 200)
    golden.check("event_emit_stored", stored)


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        (
            "event_emit_unknown_execution",
            {"execution_id": "123456789", "step": "start", "event_type": "call.done"},
            404,
        ),
        ("event_emit_missing_fields", {"payload": {}}, 422),
    ],
)
async def test_request_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, body: dict[str, Any], status: int
) -> None:
    golden.check(name, expect(await gateway.post("/api/events", json=body), status))


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("event_emit_internal_data", {"result": {"status": "ok", "context": {"_internal_data": 1}}}),
        ("event_emit_result_keys", {"result": {"status": "ok", "data": {}}}),
        ("event_emit_result_not_object", {"result": "done"}),
    ],
)
async def test_payload_rules(
    gateway: httpx.AsyncClient, golden: GoldenFiles, own_run: FinishedRun, name: str, payload: dict[str, Any]
) -> None:
    body = {
        "execution_id": own_run.execution_id,
        "step": "end",
        "event_type": "call.done",
        "payload": payload,
    }
    golden.check(name, expect(await gateway.post("/api/events", json=body), 422))
