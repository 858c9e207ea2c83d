"""The claim protocol (data-model.md §6) on a command issued by ExecutionService.Start."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import events_pb2, execution_pb2

from kernel import failpoints
from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import CLAIM_RETRY_AFTER_SECONDS, Mesh
from tests.helpers.waiting import wait_for


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "claims")


@pytest.fixture
async def started(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> Started:
    return await start_noop(mesh, db, playbook)


async def claim(mesh: Mesh, event_id: int, worker_id: str) -> execution_pb2.ClaimResponse:
    response: execution_pb2.ClaimResponse = await mesh.commands.Claim(
        execution_pb2.ClaimRequest(event_id=event_id, worker_id=worker_id), timeout=20
    )
    return response


async def command_row(db: asyncpg.Connection, started: Started, columns: str) -> asyncpg.Record:
    row = await db.fetchrow(
        f"SELECT {columns} FROM noetl.command WHERE execution_id = $1 AND command_id = $2",
        started.execution_id,
        started.command_id,
    )
    assert row is not None
    return row


async def claimed_events(db: asyncpg.Connection, started: Started) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT event_id, worker_id, meta::text AS meta FROM noetl.event "
        "WHERE execution_id = $1 AND event_type = 'command.claimed' ORDER BY event_id",
        started.execution_id,
    )


async def test_the_same_worker_claiming_twice_is_idempotent(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    first = await claim(mesh, started.event_id, "worker-a")
    second = await claim(mesh, started.event_id, "worker-a")

    assert first.claim_event_id != 0
    assert second.claim_event_id == 0
    assert first.command.command_id == second.command.command_id == started.command_id
    assert [r["event_id"] for r in await claimed_events(db, started)] == [first.claim_event_id]
    row = await command_row(db, started, "status, worker_id, lease_until > now() AS leased, latest_event_id")
    assert dict(row) == {
        "status": "CLAIMED",
        "worker_id": "worker-a",
        "leased": True,
        "latest_event_id": first.claim_event_id,
    }


async def test_another_worker_gets_an_active_claim_conflict(mesh: Mesh, started: Started) -> None:
    await claim(mesh, started.event_id, "worker-a")
    failure = await failure_of(claim(mesh, started.event_id, "worker-b"))

    assert failure.code is grpc.StatusCode.ABORTED
    assert failure.kind == "Conflict"
    assert failure.detail == {"code": "active_claim", "worker_id": "worker-a"}
    assert failure.retry_after == str(CLAIM_RETRY_AFTER_SECONDS)


async def test_an_unknown_command_is_not_found(mesh: Mesh) -> None:
    failure = await failure_of(claim(mesh, 4242, "worker-a"))
    assert failure.code is grpc.StatusCode.NOT_FOUND
    assert failure.message == "command not found: 4242"


async def test_a_completed_command_cannot_be_claimed(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    await db.execute(
        "UPDATE noetl.command SET status = 'COMPLETED', completed_at = now() "
        "WHERE execution_id = $1 AND command_id = $2",
        started.execution_id,
        started.command_id,
    )
    failure = await failure_of(claim(mesh, started.event_id, "worker-a"))

    assert failure.code is grpc.StatusCode.ABORTED
    assert failure.detail == {"code": "already_terminal", "message": "Command already reached terminal state"}
    assert await claimed_events(db, started) == []


async def test_a_command_of_a_finished_execution_cannot_be_claimed(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    # The terminal event is the fact, whatever the execution projection says yet.
    await mesh.events.Append(
        events_pb2.AppendRequest(
            execution_id=started.execution_id,
            catalog_id=started.catalog_id,
            events=[
                events_pb2.NewEvent(event_type="execution.cancelled", node_name="cancel", status="CANCELLED")
            ],
        ),
        timeout=10,
    )
    failure = await failure_of(claim(mesh, started.event_id, "worker-a"))

    assert failure.code is grpc.StatusCode.ABORTED
    assert failure.detail == {
        "code": "already_terminal",
        "message": "Execution already reached terminal state",
    }
    assert await claimed_events(db, started) == []


async def test_an_expired_lease_lets_another_worker_reclaim(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    first = await claim(mesh, started.event_id, "worker-a")
    await db.execute(
        "UPDATE noetl.command SET lease_until = now() - interval '1 second' "
        "WHERE execution_id = $1 AND command_id = $2",
        started.execution_id,
        started.command_id,
    )
    second = await claim(mesh, started.event_id, "worker-b")

    assert second.claim_event_id not in (0, first.claim_event_id)
    events = await claimed_events(db, started)
    assert [r["event_id"] for r in events] == [first.claim_event_id, second.claim_event_id]
    meta = orjson.loads(events[1]["meta"])
    assert meta["reclaimed"] is True
    assert meta["reclaimed_from_worker"] == "worker-a"
    assert meta["reclaimed_reason"] == "lease_expired"
    assert meta["worker_id"] == "worker-b"
    row = await command_row(db, started, "worker_id, lease_until > now() AS leased")
    assert (row["worker_id"], row["leased"]) == ("worker-b", True)
    # The previous holder is now the one refused.
    failure = await failure_of(claim(mesh, started.event_id, "worker-a"))
    assert failure.detail == {"code": "active_claim", "worker_id": "worker-b"}


async def claim_named(
    mesh: Mesh, started: Started, command_id: int, worker_id: str
) -> execution_pb2.ClaimResponse:
    """A claim as the mesh's worker makes it: naming the execution and the command it was told of."""
    response: execution_pb2.ClaimResponse = await mesh.commands.Claim(
        execution_pb2.ClaimRequest(
            event_id=started.event_id,
            execution_id=started.execution_id,
            command_id=command_id,
            worker_id=worker_id,
            start=True,
        ),
        timeout=20,
    )
    return response


async def test_a_claim_naming_its_command_holds_it_and_starts_it(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    claimed = await claim_named(mesh, started, started.command_id, "worker-a")

    assert claimed.command.command_id == started.command_id
    assert [r["event_id"] for r in await claimed_events(db, started)] == [claimed.claim_event_id]
    row = await command_row(db, started, "status, worker_id")
    assert dict(row) == {"status": "RUNNING", "worker_id": "worker-a"}


async def test_a_command_id_that_is_not_the_events_claims_the_events_command(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    other = await start_noop(mesh, db, await register_noop(mesh, "claims-other"))
    claimed = await claim_named(mesh, started, other.command_id, "worker-a")

    assert claimed.command.command_id == started.command_id
    assert (await command_row(db, started, "status"))["status"] == "RUNNING"
    untouched = await db.fetchval(
        "SELECT status FROM noetl.command WHERE execution_id = $1 AND command_id = $2",
        other.execution_id,
        other.command_id,
    )
    assert untouched == "PENDING"


async def test_a_named_command_without_its_row_yet_is_projected_from_the_log_and_claimed(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    # As if the pass that issued it had appended its event and not written its row yet (or died).
    await db.execute(
        "DELETE FROM noetl.command WHERE execution_id = $1 AND command_id = $2",
        started.execution_id,
        started.command_id,
    )
    claimed = await claim_named(mesh, started, started.command_id, "worker-a")

    assert claimed.command.command_id == started.command_id
    assert (await command_row(db, started, "status"))["status"] == "RUNNING"


async def test_a_claim_meeting_another_in_progress_is_told_to_retry(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    # Another claim's transaction holds the command's claim lock (noetl.claim_lock).
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock($1)", started.command_id)
        failure = await failure_of(claim_named(mesh, started, started.command_id, "worker-b"))
    assert failure.code is grpc.StatusCode.ABORTED
    assert failure.detail == {"code": "active_claim", "message": "Command is being claimed"}
    assert failure.retry_after == str(CLAIM_RETRY_AFTER_SECONDS)
    assert (await command_row(db, started, "status"))["status"] == "PENDING"


async def test_a_claim_ahead_of_its_row_goes_on_once_the_rows_are_written(
    mesh: Mesh, db: asyncpg.Connection, playbook: str
) -> None:
    """The relay publishes a command when its event commits, so a worker can claim it before the
    pass has written its row. The claim waits for the rows, not for the rest of the pass (nor for
    what queues after it on the execution): otherwise the first command of a fan-out, the one most
    likely to be early, would start after its siblings had run."""
    before = await db.fetchval("SELECT coalesce(max(event_id), 0) FROM noetl.event")
    failpoints.arm("orchestrator.after_append=hold,orchestrator.after_rows=hold")
    start = asyncio.ensure_future(mesh.execution.Start(execution_pb2.StartRequest(path=playbook), timeout=30))
    claim: asyncio.Future[execution_pb2.ClaimResponse] | None = None
    try:

        async def rowless_command() -> asyncpg.Record | None:
            row: asyncpg.Record | None = await db.fetchrow(
                "SELECT e.execution_id, e.event_id, e.command_id FROM noetl.event e "
                "WHERE e.event_type = 'command.issued' AND e.event_id > $1 AND NOT EXISTS (SELECT 1 "
                "FROM noetl.command c WHERE c.execution_id = e.execution_id AND c.command_id = e.command_id) "
                "ORDER BY e.event_id DESC LIMIT 1",
                before,
            )
            return row

        issued = await wait_for(rowless_command, what="a command issued, its row not yet written")
        claim = asyncio.ensure_future(
            mesh.commands.Claim(
                execution_pb2.ClaimRequest(
                    event_id=issued["event_id"],
                    execution_id=issued["execution_id"],
                    command_id=issued["command_id"],
                    worker_id="worker-early",
                    start=True,
                ),
                timeout=30,
            )
        )
        await asyncio.sleep(0.3)  # it has looked for the row, found none, and waits
        assert not claim.done()

        failpoints.release("orchestrator.after_append")  # the rows are written; the pass holds on

        async def claimed() -> str | None:
            worker: str | None = await db.fetchval(
                "SELECT worker_id FROM noetl.command WHERE execution_id = $1 AND command_id = $2 "
                "AND status = 'RUNNING'",
                issued["execution_id"],
                issued["command_id"],
            )
            return worker

        assert await wait_for(claimed, what="the claim to take the command while the pass holds") == (
            "worker-early"
        )
        assert not start.done()
        failpoints.release("orchestrator.after_rows")
        answer = await claim
        assert answer.command.command_id == issued["command_id"] and answer.claim_event_id != 0
        assert (await start).execution_id == issued["execution_id"]
    finally:
        failpoints.disarm()
        await asyncio.gather(start, *([claim] if claim else []), return_exceptions=True)
