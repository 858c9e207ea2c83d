"""The write-path watch on gRPC health: NOT_SERVING after `failures` failed probes in a row,
SERVING again after the first that succeeds, and no probe once the host stopped."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kernel.grpc_server import GrpcHost
from kernel.health import WritePathWatch
from kernel.mesh_guard import ServerAuth
from tests.helpers.waiting import wait_for


class Probe:
    def __init__(self) -> None:
        self.failing = False
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.failing:
            raise ConnectionError("database gone")


async def test_failed_probes_turn_health_to_not_serving_and_a_good_one_back() -> None:
    probe = Probe()
    host = GrpcHost(
        "watched", "127.0.0.1:0", [WritePathWatch(probe, interval=0.01, failures=3)], auth=ServerAuth.off()
    )
    port = await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)

    async def status_is(wanted: int) -> bool:
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return bool(answer.status == wanted)

    try:
        assert await status_is(health_pb2.HealthCheckResponse.SERVING)
        probe.failing = True
        await wait_for(lambda: status_is(health_pb2.HealthCheckResponse.NOT_SERVING), what="NOT_SERVING")
        probe.failing = False
        await wait_for(lambda: status_is(health_pb2.HealthCheckResponse.SERVING), what="SERVING again")
    finally:
        await channel.close()
        await host.stop()
    calls = probe.calls
    await asyncio.sleep(0.1)  # an absence: ten intervals without a probe
    assert probe.calls == calls
