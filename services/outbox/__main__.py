"""`python -m services.outbox`: the outbox gRPC service and its publisher."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from noetl.v1 import outbox_pb2_grpc

from services.common import bus, db, runner
from services.common.grpc_server import Registrar
from services.outbox.api import OutboxApi
from services.outbox.publisher import Publisher
from services.outbox.settings import Settings
from services.outbox.store import OutboxStore


@asynccontextmanager
async def assemble(settings: Settings) -> AsyncIterator[list[Registrar]]:
    pool = await db.create_pool(settings.basics.pg_dsn)
    nc = await bus.connect(settings.bus, "noetl-outbox")
    js = nc.jetstream()
    await bus.ensure_streams(js, settings.bus)
    store = OutboxStore(pool, lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts)
    publisher = Publisher(
        store,
        js,
        batch_size=settings.batch_size,
        idle_sleep=settings.idle_sleep,
        error_sleep=settings.error_sleep,
    )
    task = asyncio.create_task(publisher.run(), name="outbox-publisher")
    api = OutboxApi(store)

    def register(server: grpc.aio.Server) -> None:
        outbox_pb2_grpc.add_OutboxServiceServicer_to_server(api, server)

    try:
        yield [register]
    finally:
        publisher.shutdown()
        await task
        await nc.drain()
        await pool.close()


def main() -> int:
    return runner.run("outbox", Settings.load, assemble)


if __name__ == "__main__":
    sys.exit(main())
