"""Golden bodies of the event routes: `POST /api/events` (http-api.md §5.1), `/events/batch` and its
status (§5.2), `GET /api/events/{event_id}/result` (§5.3)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway_http.settings import GatewaySettings
from tests.contract.golden import GoldenFiles
from tests.contract.support import LINEAR_PATH, expect
from tests.helpers.gateway import in_process_gateway
from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import ProcessMesh, execute
from tests.helpers.nowhere import NOWHERE_ENV

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


# --------------------------------------------------------------------------------------------------
# POST /api/events/batch (§5.2), its status route, GET /api/events/{event_id}/result (§5.3)


def batch_body(execution_id: str, *notes: str) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "worker_id": "contract-tests",
        "events": [
            {"step": "end", "event_type": "contract.batch", "payload": {"note": note}} for note in notes
        ],
    }


def expect_json(response: httpx.Response) -> dict[str, Any]:
    expect(response, 200)
    found: dict[str, Any] = response.json()
    return found


async def test_batch(gateway: httpx.AsyncClient, golden: GoldenFiles, own_run: FinishedRun) -> None:
    """Accepted with the key echoed; a replay answers the same ids as a duplicate; the status route
    answers the record. Items default to `actionable: false` (unlike §5.1)."""
    body = batch_body(own_run.execution_id, "first", "second")
    headers = {"Idempotency-Key": "contract-batch-1"}
    first = await gateway.post("/api/events/batch", json=body, headers=headers)
    golden.check("event_batch", expect(first, 202))

    replay = await gateway.post(
        "/noetl/events/batch", json=body, headers={"X-Idempotency-Key": "contract-batch-1"}
    )
    golden.check("event_batch_replay", expect(replay, 202))
    accepted = first.json()
    assert (replay.json()["request_id"], replay.json()["event_ids"]) == (
        accepted["request_id"],
        accepted["event_ids"],
    )

    # The same key with another body is refused, naming the key (docs/decisions.md).
    other = await gateway.post(
        "/api/events/batch", json=batch_body(own_run.execution_id, "third"), headers=headers
    )
    assert other.status_code == 409
    assert "Idempotency-Key 'contract-batch-1' was already used" in other.json()["detail"]

    status = await gateway.get(f"/api/events/batch/{accepted['request_id']}/status")
    golden.check("event_batch_status", expect(status, 200))
    assert status.json()["event_ids"] == accepted["event_ids"]

    stored = await gateway.get(
        f"/api/executions/{own_run.execution_id}", params={"event_type": "contract.batch", "page_size": 10}
    )
    notes = [e["context"]["note"] for e in expect_json(stored)["events"]]
    assert sorted(notes) == ["first", "second"]


async def test_batch_without_a_key(
    gateway: httpx.AsyncClient, golden: GoldenFiles, own_run: FinishedRun
) -> None:
    response = await gateway.post("/api/events/batch", json=batch_body(own_run.execution_id, "unkeyed"))
    golden.check("event_batch_no_key", expect(response, 202))


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("event_batch_missing_fields", {"catalog_id": "1"}),
        ("event_batch_item_missing_fields", {"execution_id": "1", "events": [{"payload": {}}]}),
        ("event_batch_item_not_an_object", {"execution_id": "1", "events": ["x"]}),
        ("event_batch_empty", {"execution_id": "1", "events": []}),
    ],
)
async def test_batch_request_invalid(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, body: dict[str, Any]
) -> None:
    golden.check(name, expect(await gateway.post("/api/events/batch", json=body), 422))


async def test_batch_unknown_execution(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post("/api/events/batch", json=batch_body("123456789", "lost"))
    golden.check("event_batch_unknown_execution", expect(response, 404))


@pytest.mark.parametrize(
    ("name", "events"),
    [
        ("event_batch_too_many_events", [{"step": "end", "name": "contract.batch"}] * 257),
        (
            "event_batch_payload_too_large",
            [{"step": "end", "name": "contract.batch", "payload": {"blob": "x" * (2 * 1024 * 1024)}}],
        ),
        (
            "event_batch_invalid_item",
            [
                {"step": "end", "name": "contract.batch"},
                {"step": "end", "name": "call.done", "payload": {"result": {"status": "ok", "data": 1}}},
            ],
        ),
    ],
)
async def test_batch_rules(
    gateway: httpx.AsyncClient,
    golden: GoldenFiles,
    own_run: FinishedRun,
    name: str,
    events: list[dict[str, Any]],
) -> None:
    """The limits and the payload rules of §5.1 per item answer 422 naming the field; nothing is stored."""
    body = {"execution_id": own_run.execution_id, "events": events}
    golden.check(name, expect(await gateway.post("/api/events/batch", json=body), 422))


@pytest.mark.parametrize("request_id", ["123456789", "not-a-snowflake"])
async def test_batch_status_not_found(
    gateway: httpx.AsyncClient, golden: GoldenFiles, request_id: str
) -> None:
    response = await gateway.get(f"/api/events/batch/{request_id}/status")
    golden.check("event_batch_status_not_found", expect(response, 404), {request_id: "<REQUEST>"})


async def test_batch_with_the_event_service_down(golden: GoldenFiles) -> None:
    """503 in the §5.2 shape, with Retry-After, when the event service cannot be reached."""
    config = GatewaySettings.load(NOWHERE_ENV)
    async with in_process_gateway(config) as http:
        response = await http.post("/api/events/batch", json=batch_body("1", "lost"))
    golden.check("event_batch_unavailable", expect(response, 503))
    assert response.headers["retry-after"] == "1"


def event_of(run: FinishedRun, event_type: str, step: str | None) -> int:
    found = [e for e in run.events if e["event_type"] == event_type and e["node_name"] == step]
    assert found, f"no {event_type} of {step} in the run"
    return int(found[0]["event_id"])


async def test_event_result(gateway: httpx.AsyncClient, golden: GoldenFiles, own_run: FinishedRun) -> None:
    event_id = event_of(own_run, "call.done", "start")
    golden.check("event_result", expect(await gateway.get(f"/api/events/{event_id}/result"), 200))


async def test_event_result_null(
    gateway: httpx.AsyncClient, golden: GoldenFiles, own_run: FinishedRun
) -> None:
    """Orchestrator events such as `step.enter` store no result."""
    without = [e for e in own_run.events if e["result"] is None]
    assert without, f"every event of the run has a result: {[e['event_type'] for e in own_run.events]}"
    event_id = int(without[0]["event_id"])
    golden.check("event_result_null", expect(await gateway.get(f"/noetl/events/{event_id}/result"), 200))


@pytest.mark.parametrize(
    ("name", "event_id", "status"),
    [("event_result_not_found", "123456789", 404), ("event_result_bad_id", "abc", 422)],
)
async def test_event_result_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, event_id: str, status: int
) -> None:
    golden.check(name, expect(await gateway.get(f"/api/events/{event_id}/result"), status))


async def test_event_result_display_filter_is_a_view_that_can_be_switched_off(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, own_run: FinishedRun
) -> None:
    """data-model.md §9.10: the pattern rules apply to what this route shows (on by default), never to
    what is stored; `NOETL_DISPLAY_REDACTION=false` shows the result as stored."""
    payload = {"token_count": 5, "blob": "QUJD" * 20, "rows": [1, 2]}
    body = {
        "execution_id": own_run.execution_id,
        "step": "end",
        "event_type": "contract.display",
        "payload": payload,
        "actionable": False,
    }
    event_id = expect_json(await gateway.post("/api/events", json=body))["event_id"]

    shown = expect_json(await gateway.get(f"/api/events/{event_id}/result"))
    assert shown["context"] == {"token_count": "[REDACTED]", "blob": "[REDACTED]", "rows": [1, 2]}
    info = process_mesh.info
    config = GatewaySettings.load(
        {
            **NOWHERE_ENV,
            "NOETL_EVENTS_ADDRS": ",".join(info.events_addrs),
            "NOETL_DISPLAY_REDACTION": "false",
            **process_mesh.mesh_env("gateway"),
        }
    )
    async with in_process_gateway(config) as http:
        unfiltered = expect_json(await http.get(f"/api/events/{event_id}/result"))
    assert unfiltered["context"] == payload
