"""The worker's pool membership (worker/registration.py) against the real PoolService: it
registers, heartbeats, registers again when the registry forgot it, survives an unreachable
registry, and leaves as `offline`."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
import orjson
import pytest
from noetl.v1 import pools_pb2_grpc

from kernel.grpc_client import ClientAuth, open_channel
from tests.helpers.services import Mesh
from tests.helpers.waiting import wait_for
from worker.registration import PoolMembership, worker_registration

NOWHERE = "127.0.0.1:9"


@asynccontextmanager
async def membership(address: str, name: str) -> AsyncIterator[PoolMembership]:
    """A running membership heartbeating every 50 ms; on exit stopped, then deregistered, as the
    worker does after its consumer has drained."""
    channel = open_channel(address, ClientAuth.off())
    member = PoolMembership(
        pools_pb2_grpc.PoolServiceStub(channel), worker_registration(name, ("shared", "system"), 3), 0.05
    )
    try:
        async with member:
            yield member
    finally:
        await channel.close()


async def entry(db: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    found: asyncpg.Record | None = await db.fetchrow(
        "SELECT runtime_id, status, capacity, labels::text AS labels, runtime::text AS runtime, heartbeat "
        "FROM noetl.runtime WHERE kind = 'worker_pool' AND name = $1",
        name,
    )
    return found


async def test_a_worker_registers_heartbeats_and_leaves_offline(mesh: Mesh, db: asyncpg.Connection) -> None:
    name = f"worker-{uuid.uuid4().hex[:8]}"
    async with membership(mesh.addresses["execution"], name):
        first = await wait_for(lambda: entry(db, name), what="the worker's registration")
        assert (first["status"], first["capacity"]) == ("ready", 3)
        assert orjson.loads(first["labels"]) == {"pools": ["shared", "system"]}
        runtime = orjson.loads(first["runtime"])
        assert (runtime["type"], runtime["pid"]) == ("python", os.getpid())

        async def beaten() -> datetime | None:
            now = await entry(db, name)
            return now["heartbeat"] if now is not None and now["heartbeat"] > first["heartbeat"] else None

        await wait_for(beaten, what="a heartbeat")

    left = await entry(db, name)
    assert left is not None
    assert (left["status"], left["runtime_id"]) == ("offline", first["runtime_id"])


async def test_a_worker_the_registry_forgot_registers_again(
    mesh: Mesh, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"worker-{uuid.uuid4().hex[:8]}"
    async with membership(mesh.addresses["execution"], name):
        first = await wait_for(lambda: entry(db, name), what="the worker's registration")
        with caplog.at_level(logging.WARNING, logger="worker.registration"):
            await db.execute("DELETE FROM noetl.runtime WHERE name = $1", name)
            again = await wait_for(lambda: entry(db, name), what="the registration to come back")

    assert again["runtime_id"] != first["runtime_id"]
    assert again["status"] == "ready"
    assert f"pool {name} is unknown to the registry; registering again" in caplog.text


async def test_an_unreachable_registry_is_retried_and_never_stops_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"worker-{uuid.uuid4().hex[:8]}"

    async def failed_twice() -> bool:
        return caplog.text.count(f"pool registry call for {name} failed, will retry") >= 2

    with caplog.at_level(logging.WARNING, logger="worker.registration"):
        async with membership(NOWHERE, name):
            await wait_for(failed_twice, within=15, what="two failed attempts")
        # Leaving failed too: logged, not raised.

    assert f"could not deregister pool {name}" in caplog.text
