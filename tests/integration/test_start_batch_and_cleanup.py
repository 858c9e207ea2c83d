"""ExecutionService.StartBatch (http-api.md §4.2) and Cleanup (§4.12) on the in-process mesh.

No worker runs here, so a started noop execution stays RUNNING. Cleanup picks executions by the
projection's `start_time`; tests make a run "old" by moving that time back in the database.
"""

from __future__ import annotations

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import catalog_pb2, execution_pb2

from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh

NO_START = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: no_start, path: tests/batch/no_start}
workflow:
  - step: begin
    tool: {kind: noop}
"""


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "batch")


async def start_batch(mesh: Mesh, *items: execution_pb2.StartRequest) -> list[execution_pb2.StartBatchResult]:
    response = await mesh.execution.StartBatch(execution_pb2.StartBatchRequest(items=items), timeout=30)
    return list(response.results)


async def execution_rows(db: asyncpg.Connection, ids: list[int]) -> dict[int, str]:
    rows = await db.fetch(
        "SELECT execution_id, status FROM noetl.execution WHERE execution_id = ANY($1)", ids
    )
    return {row["execution_id"]: row["status"] for row in rows}


async def test_each_item_starts_or_reports_its_own_error(
    mesh: Mesh, db: asyncpg.Connection, playbook: str
) -> None:
    await mesh.catalog.Register(catalog_pb2.RegisterRequest(content=NO_START), timeout=10)
    catalog_id = await db.fetchval("SELECT catalog_id FROM noetl.catalog WHERE path = $1", playbook)
    results = await start_batch(
        mesh,
        execution_pb2.StartRequest(path=playbook, workload_json=orjson.dumps({"n": 1})),
        execution_pb2.StartRequest(path="tests/batch/nothing_here"),
        execution_pb2.StartRequest(path=playbook, resource_kind="credential"),
        execution_pb2.StartRequest(path="tests/batch/no_start"),
        execution_pb2.StartRequest(catalog_id=catalog_id),
    )

    assert [(r.HasField("execution_id"), r.HasField("error")) for r in results] == [
        (True, False),
        (False, True),
        (False, True),
        (False, True),
        (True, False),
    ]
    assert [r.error for r in results[1:4]] == [
        "Executable catalog entry not found: tests/batch/nothing_here",
        "Catalog kind 'credential' is not executable",
        "Workflow must have a step named 'start'",
    ]
    assert [r.commands_generated for r in results] == [1, 0, 0, 0, 1]
    started = [results[0].execution_id, results[4].execution_id]
    assert started[0] != started[1]
    assert await execution_rows(db, started) == dict.fromkeys(started, "RUNNING")
    workload = await db.fetchval(
        "SELECT context -> 'workload' ->> 'n' FROM noetl.event "
        "WHERE execution_id = $1 AND event_type = 'playbook.initialized'",
        started[0],
    )
    assert workload == "1"
    # An item that failed created nothing.
    no_start = await db.fetchval("SELECT catalog_id FROM noetl.catalog WHERE path = 'tests/batch/no_start'")
    assert await db.fetchval("SELECT count(*) FROM noetl.execution WHERE catalog_id = $1", no_start) == 0
    assert await db.fetchval("SELECT count(*) FROM noetl.event WHERE catalog_id = $1", no_start) == 0


async def test_a_malformed_item_fails_the_request(mesh: Mesh, playbook: str) -> None:
    failure = await failure_of(
        start_batch(
            mesh,
            execution_pb2.StartRequest(path=playbook),
            execution_pb2.StartRequest(path=playbook, workload_json=b"[1]"),
        )
    )
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.detail == "workload_json must be a JSON object"


async def backdate(db: asyncpg.Connection, execution_id: int, minutes: int) -> None:
    await db.execute(
        "UPDATE noetl.execution SET start_time = now() - make_interval(mins => $2) WHERE execution_id = $1",
        execution_id,
        minutes,
    )


async def cleanup(mesh: Mesh, older_than_minutes: int, *, dry_run: bool) -> list[int]:
    response = await mesh.execution.Cleanup(
        execution_pb2.CleanupRequest(older_than_minutes=older_than_minutes, dry_run=dry_run), timeout=30
    )
    return list(response.execution_ids)


async def cancellations(db: asyncpg.Connection, execution_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT node_name, status, context::text AS context, meta::text AS meta FROM noetl.event "
        "WHERE execution_id = $1 AND event_type = 'execution.cancelled'",
        execution_id,
    )


async def test_cleanup_cancels_old_running_executions_only(
    mesh: Mesh, db: asyncpg.Connection, playbook: str
) -> None:
    old: list[Started] = [await start_noop(mesh, db, playbook) for _ in range(2)]
    young = await start_noop(mesh, db, playbook)
    for run, minutes in zip(old, (10, 30), strict=True):
        await backdate(db, run.execution_id, minutes)
    old_ids = sorted(run.execution_id for run in old)

    assert await cleanup(mesh, 5, dry_run=True) == old_ids
    assert await cleanup(mesh, 20, dry_run=True) == [old[1].execution_id]
    assert [await cancellations(db, i) for i in old_ids] == [[], []]  # a dry run writes nothing

    assert await cleanup(mesh, 5, dry_run=False) == old_ids
    for run in old:
        (event,) = await cancellations(db, run.execution_id)
        reason = "Stuck execution older than 5 minutes"
        assert (event["node_name"], event["status"]) == ("cleanup", "CANCELLED")
        assert orjson.loads(event["context"]) == {
            "reason": reason,
            "auto_cancelled": True,
            "cleanup_api": True,
        }
        assert orjson.loads(event["meta"]) == {
            "reason": reason,
            "auto_cancelled": True,
            "cleanup_api": True,
            "actionable": True,
        }
    statuses = await execution_rows(db, [*old_ids, young.execution_id])
    assert statuses == {old_ids[0]: "CANCELLED", old_ids[1]: "CANCELLED", young.execution_id: "RUNNING"}

    # The cancelled runs' commands follow, as after an API cancel.
    claim = mesh.commands.Claim(
        execution_pb2.ClaimRequest(event_id=old[0].event_id, worker_id="latecomer"), timeout=20
    )
    refused = await failure_of(claim)
    assert refused.code is grpc.StatusCode.ABORTED
    assert refused.detail["code"] == "already_terminal"

    assert await cleanup(mesh, 5, dry_run=False) == []
    assert await cleanup(mesh, 5, dry_run=True) == []
    cancel = await mesh.execution.Cancel(
        execution_pb2.CancelRequest(execution_id=young.execution_id, reason="done", cascade=False), timeout=20
    )
    assert cancel.status == "cancelled"


async def test_cleanup_leaves_out_what_the_log_shows_ended_or_never_began(
    mesh: Mesh, db: asyncpg.Connection, playbook: str
) -> None:
    ended = await start_noop(mesh, db, playbook)
    await mesh.execution.Cancel(
        execution_pb2.CancelRequest(execution_id=ended.execution_id, reason="by hand", cascade=False),
        timeout=20,
    )
    # A projection that lags its log (as after a crash between the two writes) ...
    await db.execute(
        "UPDATE noetl.execution SET status = 'RUNNING' WHERE execution_id = $1", ended.execution_id
    )
    await backdate(db, ended.execution_id, 10)
    # ... and a row whose start never reached the log.
    ghost = 4_242_424_242
    await db.execute(
        "INSERT INTO noetl.execution (execution_id, catalog_id, status, start_time) "
        "VALUES ($1, $2, 'RUNNING', now() - interval '10 minutes')",
        ghost,
        ended.catalog_id,
    )
    try:
        assert await cleanup(mesh, 5, dry_run=True) == sorted([ended.execution_id, ghost])
        assert await cleanup(mesh, 5, dry_run=False) == []
        assert [record["node_name"] for record in await cancellations(db, ended.execution_id)] == ["cancel"]
    finally:
        await db.execute(
            "DELETE FROM noetl.execution WHERE execution_id = ANY($1)", [ghost, ended.execution_id]
        )


@pytest.mark.parametrize("minutes", [0, -5])
async def test_cleanup_needs_at_least_one_minute(mesh: Mesh, minutes: int) -> None:
    failure = await failure_of(cleanup(mesh, minutes, dry_run=True))
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.kind == "Unprocessable"
    assert failure.detail == "older_than_minutes must be at least 1"


async def test_cleanup_takes_any_age(mesh: Mesh) -> None:
    """An age past make_interval's range means "older than everything", not a database error."""
    assert await cleanup(mesh, 2**62, dry_run=False) == []
