"""`python -m services.outbox`: the outbox gRPC service, its publisher and its row gauges."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
from noetl.v1 import outbox_pb2_grpc

from kernel import bus, db, runner
from kernel.grpc_server import Registrar
from kernel.health import WritePathWatch, database_probe
from services.outbox.api import OutboxApi
from services.outbox.metrics import GaugeRefresher
from services.outbox.pruner import Pruner
from services.outbox.publisher import Publisher, check_duplicate_windows
from services.outbox.service import Outbox
from services.outbox.settings import Settings
from services.outbox.store import OutboxStore


@asynccontextmanager
async def assemble(settings: Settings) -> AsyncIterator[list[Registrar]]:
    """A failed start closes, in reverse order, what was already open."""
    async with AsyncExitStack() as stack:
        pool = await db.create_pool(settings.basics.pg_dsn)
        stack.push_async_callback(pool.close)
        nc = await bus.connect(settings.bus, "noetl-outbox")
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        await bus.ensure_streams(js, settings.bus)
        await check_duplicate_windows(
            js,
            (settings.bus.command_stream, settings.bus.event_stream),
            lease_seconds=settings.lease_seconds,
            publish_timeout=settings.publish_timeout,
        )
        store = OutboxStore(pool, lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts)
        outbox = Outbox(store)
        publisher = Publisher(
            outbox,
            nc,
            batch_size=settings.batch_size,
            idle_sleep=settings.idle_sleep,
            error_sleep=settings.error_sleep,
            publish_timeout=settings.publish_timeout,
        )
        await stack.enter_async_context(publisher)
        await stack.enter_async_context(GaugeRefresher(store))
        if settings.published_retention:
            retention = settings.published_retention
            # A run a few times per retention period, at least once a minute when it is long.
            pruner = Pruner(outbox, retention_seconds=retention, interval=min(60.0, max(1.0, retention / 4)))
            await stack.enter_async_context(pruner)
        api = OutboxApi(outbox)

        def register(server: grpc.aio.Server) -> None:
            outbox_pb2_grpc.add_OutboxServiceServicer_to_server(api, server)

        # The write path is watched: a database gone or stuck reads NOT_SERVING on gRPC health.
        yield [register, WritePathWatch(database_probe(pool))]


def main() -> int:
    return runner.run("outbox", Settings.load, assemble)


if __name__ == "__main__":
    sys.exit(main())
