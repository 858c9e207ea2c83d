"""The execution shard's event feed acknowledges every delivery once it is applied: runs started
side by side (one fetched batch holds several executions' events, acknowledged together) leave
its durable consumer with nothing pending, nothing awaiting an acknowledgement and nothing
redelivered. In-process services, real NATS JetStream and Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest
from nats.js.api import ConsumerInfo
from noetl.v1 import execution_pb2

from tests.helpers.playbooks import register_noop
from tests.helpers.services import Mesh
from tests.helpers.waiting import wait_for

RUNS = 12
SETTLE_SECONDS = 15.0


async def _consumer(mesh: Mesh) -> ConsumerInfo:
    return await mesh.js.consumer_info(mesh.bus.event_stream, "noetl_execution_0")


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "feed")


async def test_runs_side_by_side_leave_nothing_unacknowledged(
    mesh: Mesh, db: asyncpg.Connection, playbook: str
) -> None:
    before = await _consumer(mesh)
    started = await asyncio.gather(
        *(mesh.execution.Start(execution_pb2.StartRequest(path=playbook), timeout=20) for _ in range(RUNS))
    )
    assert all(response.commands_generated == 1 for response in started)
    # Every stored event is mirrored to the shard's subject: one delivery each.
    written = await db.fetchval(
        "SELECT count(*) FROM noetl.event WHERE execution_id = ANY($1::bigint[])",
        [response.execution_id for response in started],
    )
    assert written >= RUNS * 3
    expected = before.delivered.stream_seq + written

    async def settled() -> bool:
        info = await _consumer(mesh)
        return info.delivered.stream_seq >= expected and not info.num_ack_pending

    # Unsettled after the wait, the assertions below say what is missing.
    with contextlib.suppress(AssertionError):
        await wait_for(settled, what="the feed to take and acknowledge every event", within=SETTLE_SECONDS)
    info = await _consumer(mesh)
    assert info.delivered.stream_seq >= expected, "the feed did not take every event"
    assert info.num_pending == 0
    assert info.num_ack_pending == 0, "applied deliveries were left unacknowledged"
    assert info.num_redelivered == before.num_redelivered
