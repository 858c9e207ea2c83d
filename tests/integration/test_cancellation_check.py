"""ExecutionService.CancellationCheck, from the log and from the execution row (`from_projection`,
what a worker asks while its tool runs). The real execution and events services over real gRPC,
and Postgres.
"""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from noetl.v1 import execution_pb2

from kernel.ids import MAX_MACHINE_ID, Snowflake
from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "cancellation-check")


@pytest.fixture
async def started(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> Started:
    return await start_noop(mesh, db, playbook)


async def check(
    mesh: Mesh, execution_id: int, *, from_projection: bool
) -> execution_pb2.CancellationCheckResponse:
    request = execution_pb2.CancellationCheckRequest(
        execution_id=execution_id, from_projection=from_projection
    )
    response: execution_pb2.CancellationCheckResponse = await mesh.execution.CancellationCheck(
        request, timeout=10
    )
    return response


async def test_the_row_answers_as_the_log_does_for_a_running_then_cancelled_run(
    mesh: Mesh, started: Started
) -> None:
    running = await check(mesh, started.execution_id, from_projection=True)
    assert (running.status, running.cancelled, running.completed, running.failed) == (
        "RUNNING",
        False,
        False,
        False,
    )
    assert running.event_type == ""  # the row records only a terminal event's type

    await mesh.execution.Cancel(
        execution_pb2.CancelRequest(execution_id=started.execution_id, reason="test"), timeout=10
    )
    from_row = await check(mesh, started.execution_id, from_projection=True)
    from_log = await check(mesh, started.execution_id, from_projection=False)
    assert from_row.cancelled and from_row.status == "CANCELLED"
    assert (
        from_row.status,
        from_row.event_type,
        from_row.cancelled,
        from_row.completed,
        from_row.failed,
    ) == (
        from_log.status,
        from_log.event_type,
        from_log.cancelled,
        from_log.completed,
        from_log.failed,
    )


async def test_the_row_is_what_answers(mesh: Mesh, db: asyncpg.Connection, started: Started) -> None:
    """The projection is read, not the log: a row set to CANCELLED by hand is answered as
    cancelled while the log says the run is running."""
    await db.execute(
        "UPDATE noetl.execution SET status = 'CANCELLED', last_event_type = 'execution.cancelled'"
        " WHERE execution_id = $1",
        started.execution_id,
    )
    assert (await check(mesh, started.execution_id, from_projection=True)).cancelled
    assert not (await check(mesh, started.execution_id, from_projection=False)).cancelled


async def test_a_run_without_a_row_is_answered_from_the_log(mesh: Mesh) -> None:
    unknown = Snowflake(MAX_MACHINE_ID).next_id()
    failure = await failure_of(
        mesh.execution.CancellationCheck(
            execution_pb2.CancellationCheckRequest(execution_id=unknown, from_projection=True), timeout=10
        )
    )
    assert failure.code == grpc.StatusCode.NOT_FOUND
