"""Claims read the worker-pool registry (data-model.md §6.2): once a claim is older than one lease,
a holder that deregistered or stopped heartbeating its pool loses it, even while heartbeats of the
command itself keep `lease_until` in the future.

The claim's age and the pool's heartbeat are set in the database, so no test waits for a lease.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import execution_pb2, pools_pb2, pools_pb2_grpc

from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.rpc import failure_of
from tests.helpers.services import CLAIM_LEASE_SECONDS, Mesh

HOLDER = "holder-worker"


@pytest.fixture(scope="module")
async def registry(mesh: Mesh) -> AsyncIterator[pools_pb2_grpc.PoolServiceStub]:
    async with grpc.aio.insecure_channel(mesh.addresses["execution"]) as channel:
        yield pools_pb2_grpc.PoolServiceStub(channel)


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "claims_registry")


@pytest.fixture
async def held(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> AsyncIterator[Started]:
    """A command claimed by HOLDER, whose pool is registered and fresh; cleaned up afterwards."""
    started = await start_noop(mesh, db, playbook)
    await mesh.commands.Claim(
        execution_pb2.ClaimRequest(event_id=started.event_id, worker_id=HOLDER, start=True), timeout=20
    )
    await db.execute(
        "INSERT INTO noetl.runtime (runtime_id, name, kind, status) VALUES ($1, $2, 'worker_pool', 'ready') "
        "ON CONFLICT (kind, name) DO UPDATE SET status = 'ready', heartbeat = now()",
        started.command_id,
        HOLDER,
    )
    yield started
    await db.execute("DELETE FROM noetl.runtime WHERE name = $1", HOLDER)


async def age_claim(db: asyncpg.Connection, started: Started, seconds: float) -> None:
    """The claim was made `seconds` ago; its lease has been extended into the future since."""
    await db.execute(
        "UPDATE noetl.command SET claimed_at = now() - make_interval(secs => $3), "
        "lease_until = now() + interval '60 seconds' WHERE execution_id = $1 AND command_id = $2",
        started.execution_id,
        started.command_id,
        seconds,
    )


async def reclaim_reason(mesh: Mesh, db: asyncpg.Connection, started: Started) -> str:
    """Claims as another worker, which must succeed; answers the recorded `reclaimed_reason`."""
    answer = await mesh.commands.Claim(
        execution_pb2.ClaimRequest(event_id=started.event_id, worker_id="rescuer"), timeout=20
    )
    assert answer.claim_event_id != 0
    meta = await db.fetchval(
        "SELECT meta::text FROM noetl.event WHERE execution_id = $1 AND event_id = $2",
        started.execution_id,
        answer.claim_event_id,
    )
    claimed = orjson.loads(meta)
    assert (claimed["reclaimed"], claimed["reclaimed_from_worker"], claimed["worker_id"]) == (
        True,
        HOLDER,
        "rescuer",
    )
    reason: str = claimed["reclaimed_reason"]
    return reason


async def assert_still_held(mesh: Mesh, started: Started) -> None:
    failure = await failure_of(
        mesh.commands.Claim(
            execution_pb2.ClaimRequest(event_id=started.event_id, worker_id="rescuer"), timeout=20
        )
    )
    assert failure.code is grpc.StatusCode.ABORTED
    assert failure.detail == {"code": "active_claim", "worker_id": HOLDER}


async def test_a_deregistered_holder_loses_an_old_claim(
    mesh: Mesh, db: asyncpg.Connection, registry: pools_pb2_grpc.PoolServiceStub, held: Started
) -> None:
    await registry.Deregister(pools_pb2.PoolServiceDeregisterRequest(name=HOLDER), timeout=10)
    await age_claim(db, held, CLAIM_LEASE_SECONDS + 5)

    assert await reclaim_reason(mesh, db, held) == "worker_inactive"


async def test_a_holder_whose_pool_went_silent_loses_an_old_claim(
    mesh: Mesh, db: asyncpg.Connection, held: Started
) -> None:
    # 30 s is the default staleness (NOETL_COMMAND_WORKER_HEARTBEAT_STALE_SECONDS).
    await db.execute(
        "UPDATE noetl.runtime SET heartbeat = now() - interval '31 seconds' WHERE name = $1", HOLDER
    )
    await age_claim(db, held, CLAIM_LEASE_SECONDS + 5)

    assert await reclaim_reason(mesh, db, held) == "worker_heartbeat_stale"


async def test_a_heartbeating_holder_keeps_an_old_claim(
    mesh: Mesh, db: asyncpg.Connection, held: Started
) -> None:
    await db.execute(
        "UPDATE noetl.runtime SET heartbeat = now() - interval '20 seconds' WHERE name = $1", HOLDER
    )
    await age_claim(db, held, CLAIM_LEASE_SECONDS + 5)

    await assert_still_held(mesh, held)


async def test_an_inactive_holder_keeps_a_claim_younger_than_one_lease(
    mesh: Mesh, db: asyncpg.Connection, registry: pools_pb2_grpc.PoolServiceStub, held: Started
) -> None:
    await registry.Deregister(pools_pb2.PoolServiceDeregisterRequest(name=HOLDER), timeout=10)
    await age_claim(db, held, CLAIM_LEASE_SECONDS - 10)

    await assert_still_held(mesh, held)


async def test_an_unregistered_holder_keeps_its_claim_until_the_lease_ends(
    mesh: Mesh, db: asyncpg.Connection, held: Started
) -> None:
    await db.execute("DELETE FROM noetl.runtime WHERE name = $1", HOLDER)
    await age_claim(db, held, CLAIM_LEASE_SECONDS + 5)
    await assert_still_held(mesh, held)

    await db.execute(
        "UPDATE noetl.command SET lease_until = now() - interval '1 second' "
        "WHERE execution_id = $1 AND command_id = $2",
        held.execution_id,
        held.command_id,
    )
    assert await reclaim_reason(mesh, db, held) == "lease_expired"
