"""Golden bodies of the execution read routes and cleanup (http-api.md §4.4, §4.5, §4.12, §13.2, §13.3)."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.golden import GoldenFiles
from tests.contract.support import LINEAR_PATH, expect
from tests.helpers.invariants import FinishedRun
from tests.helpers.mesh import ProcessMesh, database

pytestmark = pytest.mark.e2e


async def test_detail(gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun) -> None:
    response = await gateway.get(f"/api/executions/{linear_run.execution_id}")
    golden.check("execution_detail", expect(response, 200))


async def test_detail_is_the_same_under_the_gateway_prefix(
    gateway: httpx.AsyncClient, linear_run: FinishedRun
) -> None:
    api = expect(await gateway.get(f"/api/executions/{linear_run.execution_id}"), 200)
    prefixed = expect(await gateway.get(f"/noetl/executions/{linear_run.execution_id}"), 200)
    assert prefixed == api


async def test_detail_second_page(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.get(
        f"/api/executions/{linear_run.execution_id}", params={"page": 2, "page_size": 10}
    )
    golden.check("execution_detail_page_2", expect(response, 200))


async def test_detail_without_events(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.get(
        f"/api/executions/{linear_run.execution_id}", params={"include_events": "false"}
    )
    golden.check("execution_detail_without_events", expect(response, 200))


async def test_detail_filtered_by_event_type(
    gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    response = await gateway.get(
        f"/api/executions/{linear_run.execution_id}", params={"event_type": "playbook.completed"}
    )
    golden.check("execution_detail_terminal_event", expect(response, 200))


@pytest.mark.parametrize(
    ("name", "url", "status"),
    [
        ("execution_detail_not_found", "/api/executions/123456789", 404),
        ("execution_detail_non_numeric", "/api/executions/abc", 422),
        ("execution_detail_page_size_too_small", "/api/executions/123456789?page_size=5", 422),
        ("execution_detail_page_not_a_number", "/api/executions/123456789?page=x", 422),
    ],
)
async def test_detail_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, url: str, status: int
) -> None:
    golden.check(name, expect(await gateway.get(url), status))


async def test_status(gateway: httpx.AsyncClient, golden: GoldenFiles, linear_run: FinishedRun) -> None:
    response = await gateway.get(f"/api/executions/{linear_run.execution_id}/status")
    golden.check("execution_status", expect(response, 200))

    prefixed = await gateway.get(f"/noetl/executions/{linear_run.execution_id}/status")
    assert expect(prefixed, 200) == response.content


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("execution_status_not_found", "/api/executions/123456789/status"),
        ("execution_status_non_numeric", "/api/executions/abc/status"),
    ],
)
async def test_status_errors(gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, url: str) -> None:
    golden.check(name, expect(await gateway.get(url), 404))


# About 19 years: the session's other runs are all younger, so only the run moved back qualifies.
ANCIENT_MINUTES = 10_000_000


async def test_cleanup(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, golden: GoldenFiles, linear_run: FinishedRun
) -> None:
    """§4.12: dry run, then the cancel, then nothing left. The run is parked on a pool no worker
    serves (so it stays RUNNING) and its start moved back 20 years in the projection."""
    parked = await gateway.post(
        "/api/execute", json={"path": LINEAR_PATH, "execution_pool": "contract-parked"}
    )
    expect(parked, 200)
    execution_id = parked.json()["execution_id"]
    async with database(process_mesh.pg_dsn) as conn:
        await conn.execute(
            "UPDATE noetl.execution SET start_time = now() - interval '20 years' WHERE execution_id = $1",
            int(execution_id),
        )
    body = {"older_than_minutes": ANCIENT_MINUTES}

    dry = await gateway.post("/api/executions/cleanup", json={**body, "dry_run": True})
    golden.check("executions_cleanup_dry_run", expect(dry, 200))
    assert dry.json()["execution_ids"] == [execution_id]
    assert (await gateway.get(f"/api/executions/{execution_id}")).json()["status"] == "RUNNING"

    done = await gateway.post("/api/executions/cleanup", json=body)
    golden.check("executions_cleanup_cancelled", expect(done, 200))
    assert done.json()["execution_ids"] == [execution_id]
    detail = (
        await gateway.get(f"/api/executions/{execution_id}", params={"event_type": "execution.cancelled"})
    ).json()
    assert detail["status"] == "CANCELLED"
    (cancelled,) = detail["events"]
    assert cancelled["node_name"] == "cleanup"
    assert cancelled["context"]["auto_cancelled"] is True and cancelled["context"]["cleanup_api"] is True

    none_left = await gateway.post("/noetl/executions/cleanup", json=body)
    golden.check("executions_cleanup_none_found", expect(none_left, 200))


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("executions_cleanup_too_recent", {"older_than_minutes": 0}),
        ("executions_cleanup_not_a_number", {"older_than_minutes": "soon", "dry_run": "maybe"}),
    ],
)
async def test_cleanup_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, body: dict[str, object]
) -> None:
    golden.check(name, expect(await gateway.post("/api/executions/cleanup", json=body), 422))
