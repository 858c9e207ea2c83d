"""`GET /api/executions` and `GET /api/executions/{id}/events` (http-api.md §4.3, §4.6)."""

from __future__ import annotations

import httpx

from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, execute, register
from tests.helpers.shared import fixture_file


async def test_list_is_newest_first_with_the_entry_shape(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, fixture_file("playbooks/simple_python.yaml"))
    older = await execute(gateway, "test/simple_python")
    newer = await execute(gateway, "test/simple_python")
    for execution_id in (older, newer):
        await finish(gateway, process_mesh.info.pg_dsn, execution_id)

    listed = (await gateway.get("/api/executions", params={"page_size": 200})).json()
    assert isinstance(listed, list)
    ids = [entry["execution_id"] for entry in listed]
    assert ids.index(newer) < ids.index(older)
    entry = listed[ids.index(newer)]
    assert list(entry) == [
        "execution_id", "catalog_id", "path", "version", "status", "start_time", "end_time",
        "duration_seconds", "duration_human", "progress", "result", "error", "parent_execution_id",
    ]  # fmt: skip
    assert (
        entry["path"] == "test/simple_python" and entry["status"] == "COMPLETED" and entry["progress"] == 100
    )

    second_page = (await gateway.get("/api/executions", params={"page": 2, "page_size": 1})).json()
    assert [e["execution_id"] for e in second_page] == [listed[1]["execution_id"]]
    too_deep = await gateway.get("/api/executions", params={"page": 5002, "page_size": 1})
    assert too_deep.status_code == 422
    assert too_deep.json() == {"detail": "Requested page is too deep. Max supported offset is 5000."}


async def test_raw_events_carry_numeric_ids_newest_first(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, fixture_file("playbooks/simple_python.yaml"))
    execution_id = await execute(gateway, "test/simple_python")
    run = await finish(gateway, process_mesh.info.pg_dsn, execution_id)

    body = (await gateway.get(f"/api/executions/{execution_id}/events", params={"page_size": 10})).json()
    assert list(body) == ["execution_id", "path", "status", "events", "pagination"]
    assert body["execution_id"] == execution_id and body["status"] == "COMPLETED"
    rows = body["events"]
    assert [row["event_id"] for row in rows] == sorted(
        (int(e["event_id"]) for e in run.events), reverse=True
    )[:10]
    row = rows[0]
    assert list(row) == [
        "event_id", "event_type", "node_id", "node_name", "status", "created_at", "context", "result", "error",
        "catalog_id", "parent_execution_id", "parent_event_id", "duration", "execution_id", "timestamp",
    ]  # fmt: skip
    assert isinstance(row["catalog_id"], int) and isinstance(row["parent_event_id"], int)
    assert row["execution_id"] == execution_id and row["timestamp"] == row["created_at"]
    assert body["pagination"]["total_events"] == len(run.events)
    missing = await gateway.get("/api/executions/1234/events")
    assert missing.status_code == 404
