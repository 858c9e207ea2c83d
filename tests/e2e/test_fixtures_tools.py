"""Public fixtures that need the real tools: http against the mock API, duckdb, postgres, sub-playbooks.

Exact values from shared/fixtures/README.md §1 and §2. The mock HTTP API (§5) is this project's
own (`tests/helpers/mock_api.py`), served on 127.0.0.1 for the module. The Postgres fixtures use
a credential `pg_local` registered through the gateway, pointing at the mesh's test database
(whose role owns it, so it has CREATE on `public`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import ProcessMesh, database, execute, pg_credential, register, step_result
from tests.helpers.mock_api import MockApi, running_mock_api
from tests.helpers.shared import fixture_file

pytestmark = pytest.mark.e2e

COMPOSITION = "fixtures/playbooks/playbook_composition/playbook_composition"
SCORER = "fixtures/playbooks/playbook_composition/user_profile_scorer"


@pytest.fixture(scope="module")
def mock_api() -> Iterator[tuple[str, MockApi]]:
    with running_mock_api() as served:
        yield served


@pytest.fixture
async def pg_local(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> str:
    response = await gateway.post("/api/credentials", json=pg_credential("pg_local", process_mesh.pg_dsn))
    assert response.status_code in (200, 201), response.text
    return "pg_local"


async def _run(
    gateway: httpx.AsyncClient,
    mesh: ProcessMesh,
    relative: str,
    path: str,
    payload: dict[str, Any] | None = None,
    *,
    seconds: float = 60.0,
) -> FinishedRun:
    registered = await register(gateway, fixture_file(relative))
    assert registered["path"] == path
    return await finish(gateway, mesh.pg_dsn, await execute(gateway, path, payload), seconds=seconds)


def _results(run: FinishedRun, step: str) -> list[Any]:
    """The data of every `call.done` of `step`, oldest first."""
    return [
        e["result"]["context"]["result"]["context"]["data"]
        for e in run.events
        if e["event_type"] == "call.done" and e["node_name"] == step
    ]


async def test_pagination_basic(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mock_api: tuple[str, MockApi]
) -> None:
    url, api = mock_api
    run = await _run(
        gateway,
        process_mesh,
        "playbooks/pagination/basic/test_pagination_basic.yaml",
        "tests/pagination/basic/basic",
        {"api_url": url},
    )

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "reset_probe_stats") == {
        "status": "reset",
        "started": 0,
        "completed": 0,
        "max_active": 0,
    }
    assert step_result(run.events, "build_probe_plan") == {
        "probe_delays": [4.0, 0.0, 0.0, 0.0, 0.0],
        "expected_total": 5,
    }
    probes = _results(run, "run_probes")
    assert len(probes) == 5
    assert sorted(p["data"]["delay_seconds"] for p in probes) == [0.0, 0.0, 0.0, 0.0, 4.0]
    assert all(p["status_code"] == 200 and p["body"] == p["data"] for p in probes)
    validate = step_result(run.events, "validate_results")
    max_active = validate.pop("max_active")
    assert 2 <= max_active <= 5
    assert validate == {
        "status": "success",
        "started": 5,
        "completed": 5,
        "active": 0,
        "expected_total": 5,
        "expected_min_overlap": 2,
    }
    assert step_result(run.events, "end") == {"status": "complete"}
    assert api.probes.counters()["started"] == 5


async def test_pagination_offset(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mock_api: tuple[str, MockApi]
) -> None:
    url, _ = mock_api
    run = await _run(
        gateway,
        process_mesh,
        "playbooks/pagination/offset/test_pagination_offset.yaml",
        "tests/pagination/offset/offset",
        {"api_url": url},
    )

    assert run.status == "COMPLETED", run.failures
    pages = _results(run, "fetch_page")
    assert [p["body"]["offset"] for p in pages] == [0, 10, 20, 30]
    assert [p["body"]["limit"] for p in pages] == [10, 10, 10, 10]
    assert [len(p["body"]["users"]) for p in pages] == [10, 10, 10, 5]
    assert [p["body"]["has_more"] for p in pages] == [True, True, True, False]
    assert all(p["data"] == p["body"] for p in pages)
    checks = _results(run, "check_pagination")
    assert len(checks) == 4
    assert checks[-1]["next_offset"] == 40
    assert checks[-1]["total_collected"] == 35
    assert [u["id"] for u in checks[-1]["collected_users"]] == list(range(1, 36))
    assert step_result(run.events, "validate_results") == {
        "status": "success",
        "total_users": 35,
        "first_id": 1,
        "last_id": 35,
    }


async def test_pipeline_simple(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mock_api: tuple[str, MockApi]
) -> None:
    url, _ = mock_api
    run = await _run(
        gateway,
        process_mesh,
        "playbooks/pagination/pipeline/test_pipeline_simple.yaml",
        "tests/pagination/pipeline/simple",
        {"api_url": url},
    )

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "start") == {"status": "starting task sequence test"}
    pipeline = step_result(run.events, "run_pipeline")
    assert pipeline["fetch"]["status_code"] == 200
    assert [item["id"] for item in pipeline["fetch"]["data"]["data"]] == [1, 2, 3, 4, 5]
    assert pipeline["transform"] == {"count": 5, "ids": [1, 2, 3, 4, 5], "has_more": True}
    assert pipeline["validate"] == {
        "status": "passed",
        "message": "Task sequence executed successfully",
        "items_processed": 5,
    }
    report = step_result(run.events, "report_result")
    assert report["test"] == "pipeline_simple"
    assert report["status"] == "passed"
    assert report["pipeline_result"]["validate"] == pipeline["validate"]
    assert step_result(run.events, "end") == {"status": "complete"}


DUCKDB_ROWS = [{"name": "Alice", "age": 30}, {"name": "Charlie", "age": 35}]


async def test_duckdb(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    """The tool's part: 3 statements in one in-memory database, the last SELECT's rows (§9.6)."""
    run = await _run(gateway, process_mesh, "playbooks/duckdb_test.yaml", "test/duckdb")

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "start") == {
        "run_query": {"columns": ["name", "age"], "rows": DUCKDB_ROWS, "row_count": 2}
    }


async def test_duckdb_rows_handed_on_as_in_c6(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    run = await _run(gateway, process_mesh, "playbooks/duckdb_test.yaml", "test/duckdb")

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "process") == {
        "process_results": {"status": "success", "total_users": 2, "average_age": 32.5, "users": DUCKDB_ROWS}
    }
    assert step_result(run.events, "verify") == {
        "verify_results": {"verified": True, "avg_age": 32.5, "status": "passed"}
    }
    assert step_result(run.events, "end") == {"complete": {"status": "completed", "test_passed": True}}


async def test_user_profile_scorer_standalone(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    run = await _run(gateway, process_mesh, "playbooks/playbook_composition/user_profile_scorer.yaml", SCORER)

    assert run.status == "COMPLETED", run.failures
    assert step_result(run.events, "finalize_result") == {
        "user_name": "TestUser",
        "profile_score": 15.8,
        "score_category": "Junior",
        "score_breakdown": {"experience": 6.0, "performance": 6.58, "department": 2.25, "age": 1.0},
        "execution_id": "standalone_execution",
        "processing_status": "completed",
    }


async def test_playbook_composition(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, pg_local: str
) -> None:
    await register(gateway, fixture_file("playbooks/playbook_composition/user_profile_scorer.yaml"))
    run = await _run(
        gateway,
        process_mesh,
        "playbooks/playbook_composition/playbook_composition.yaml",
        COMPOSITION,
        seconds=180.0,
    )

    assert run.status == "COMPLETED", run.failures
    parent = int(run.execution_id)
    async with database(process_mesh.pg_dsn) as conn:
        rows = await conn.fetch(
            "SELECT id, execution_id, user_name, profile_score, score_category"
            " FROM public.user_profile_results WHERE execution_id = $1 ORDER BY user_name",
            str(parent),
        )
    children = []
    for shard_dsn in process_mesh.shard_dsns:  # a child runs on whichever shard started it
        async with database(shard_dsn) as conn:
            children += await conn.fetch(
                "SELECT DISTINCT execution_id FROM noetl.event WHERE parent_execution_id = $1"
                " AND event_type = 'playbook.initialized'",
                parent,
            )
    assert [(r["user_name"], r["profile_score"], r["score_category"]) for r in rows] == [
        ("Alice", 16.2, "Junior"),
        ("Bob", 16.7, "Junior"),
        ("Charlie", 15.6, "Junior"),
        ("Diana", 21.2, "Junior"),
    ]
    assert [r["id"] for r in rows] == [f"{parent}:{name}" for name in ("Alice", "Bob", "Charlie", "Diana")]
    assert len(children) == 4
    saved = [r["save_profile"] for r in _results(run, "process_users")]
    assert [(s["user_name"], s["profile_score"]) for s in saved] == [
        ("Alice", 16.2),
        ("Bob", 16.7),
        ("Charlie", 15.6),
        ("Diana", 21.2),
    ]
    assert all(str(s["execution_id"]) == str(parent) for s in saved)
    end = step_result(run.events, "end")
    assert end["pipeline_status"] == "completed"
    assert end["users_processed"] == 4
    assert end["message"] == "Playbook composition test completed successfully"


async def test_broken_sql(gateway: httpx.AsyncClient, process_mesh: ProcessMesh, pg_local: str) -> None:
    run = await _run(gateway, process_mesh, "playbooks/broken_sql.yaml", "fixtures/playbooks/broken_sql")

    assert run.status == "FAILED"
    assert step_result(run.events, "start") == {"status": "initialized"}
    failed = [e for e in run.events if e["event_type"] == "command.failed"]
    assert [e["node_name"] for e in failed] == ["verify_pg_data"]
    assert 'syntax error at or near "FROM"' in failed[0]["error"]
    assert "42601" in failed[0]["error"]
    assert ("step.enter", "end") not in run.types()
    terminal = [e for e in run.log if e.event_type == "playbook.failed"]
    assert terminal and terminal[0].context["failed_steps"] == ["verify_pg_data"]
