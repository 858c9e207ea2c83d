"""A saturated backend answers "retry later" instead of queueing without bound (http-api.md §1.3).

- A database pool whose caller waited its acquire timeout raises `Unavailable` `pool_saturated`
  with the `Retry-After` of http-api.md §1.3 (the gateway turns it into 503 + `Retry-After`, tests/unit/test_gateway_errors.py).
- A gRPC service past its concurrent-call limit refuses new calls; the client side rebuilds that as
  `Unavailable` with Retry-After, as for a service that is down. (The health `Watch` stream that
  holds the slot is written with `context.write`, which the server interceptors pass through.)
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kernel import db
from kernel.errors import Unavailable
from kernel.grpc_client import ClientAuth, open_channel
from kernel.grpc_server import GrpcHost
from kernel.ids import Snowflake
from kernel.mesh_guard import ServerAuth
from kernel.migrate import migrate
from kernel.rpc_errors import rebuild
from services.events.batcher import AppendBatcher
from services.events.chain import AppendJob, Draft
from services.events.store import EventStore
from tests.helpers.waiting import wait_for


async def test_a_caller_that_waits_out_the_acquire_timeout_meets_pool_saturated(module_dsn: str) -> None:
    pool = await db.create_pool(module_dsn, min_size=1, max_size=1, acquire_timeout=0.3)
    try:
        async with pool.acquire() as held:
            began = time.monotonic()
            with pytest.raises(Unavailable) as refused:
                async with pool.acquire():
                    pass
            waited = time.monotonic() - began
            assert await held.fetchval("SELECT 1") == 1  # the holder is untouched
        # §1.3: the bare code; nobody else waited and no slot was free: 1 + 0.5·1 + 1 = 2.5 → 2.
        assert refused.value.detail == {"code": "pool_saturated"}
        assert refused.value.retry_after == 2
        assert 0.25 <= waited < 5.0
        assert pool.waiting == 0
        # Once the connection is back, the next caller is served.
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 2") == 2
    finally:
        await pool.close()


async def test_a_service_past_its_call_limit_refuses_with_retry_after() -> None:
    host = GrpcHost("saturation", "127.0.0.1:0", [], auth=ServerAuth.off(), max_concurrent_rpcs=1)
    port = await host.start()
    channel = open_channel(f"127.0.0.1:{port}", ClientAuth.off())
    health = health_pb2_grpc.HealthStub(channel)
    try:
        # An open Watch stream is a call in progress: it takes the only slot.
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await asyncio.wait_for(watch.read(), timeout=10)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(Unavailable) as refused:
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert refused.value.retry_after == 1
        watch.cancel()

        async def served() -> health_pb2.HealthCheckResponse | None:
            try:
                answer: health_pb2.HealthCheckResponse = await health.Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=10
                )
            except Unavailable:
                return None
            return answer

        # With the slot free again the same call succeeds.
        answer = await wait_for(served, what="the service to serve once the stream ended", interval=0.05)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
        await host.stop()


def test_grpc_status_of_a_refused_call_is_resource_exhausted() -> None:
    """The code grpc uses for a call over `maximum_concurrent_rpcs` (what the mapping relies on)."""
    rebuilt = rebuild(grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!", "", None, None)
    assert isinstance(rebuilt, Unavailable) and rebuilt.retry_after == 1


async def test_the_event_log_answers_a_saturated_pool_and_keeps_appending(module_dsn: str) -> None:
    """The group commit's loops survive a refused connection: the waiting appends hear 503, and
    the next append once a connection is free is stored."""
    await migrate(module_dsn)
    pool = await db.create_pool(module_dsn, min_size=1, max_size=1, acquire_timeout=0.3)
    ids = Snowflake(7)
    batcher = AppendBatcher(EventStore(pool), ids.next_id, loops=1)
    await batcher.start()
    execution_id = ids.next_id()

    def job() -> AppendJob:
        draft = Draft(event_type="playbook.initialized", node_name="saturation", status="RUNNING")
        return AppendJob(execution_id, [draft], catalog_id=1, parent_execution_id=None,
                         require_open=False, mirror_subject=None)  # fmt: skip

    try:
        async with pool.acquire():
            with pytest.raises(Unavailable) as refused:
                await asyncio.wait_for(batcher.append(job()), timeout=10)
        detail = refused.value.detail
        assert isinstance(detail, dict) and detail["code"] == "pool_saturated"
        appended = await asyncio.wait_for(batcher.append(job()), timeout=10)
        assert len(appended.stored) == 1
        async with pool.acquire() as conn:
            assert (
                await conn.fetchval("SELECT count(*) FROM noetl.event WHERE execution_id = $1", execution_id)
                == 1
            )
    finally:
        await batcher.shutdown()
        await pool.close()


@pytest.mark.parametrize(
    ("waiting", "free_slots", "seconds"),
    [(0, 3, 1), (0, 0, 2), (1, 2, 2), (4, 0, 4), (40, 0, 15)],
)
def test_retry_after_of_a_saturated_pool_follows_the_queue(
    waiting: int, free_slots: int, seconds: int
) -> None:
    assert db.pool_saturated(waiting, free_slots).retry_after == seconds
