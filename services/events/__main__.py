"""`python -m services.events`: the event log gRPC service."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
from noetl.v1 import events_pb2_grpc, outbox_pb2_grpc

from kernel import bus, db, runner
from kernel.grpc_client import ClientAuth, open_channel
from kernel.grpc_server import Registrar
from kernel.health import WritePathWatch, database_probe
from kernel.ids import Snowflake
from services.events.api import EventApi
from services.events.batcher import AppendBatcher
from services.events.clients import OutboxClient
from services.events.partitions import PartitionKeeper
from services.events.relay import Relay
from services.events.service import EventLog, EventLogSettings
from services.events.settings import Settings
from services.events.store import EventStore
from services.events.wakeups import Wakeups


@asynccontextmanager
async def assemble(settings: Settings) -> AsyncIterator[list[Registrar]]:
    """A failed start closes, in reverse order, what was already open."""
    async with AsyncExitStack() as stack:
        # Its look-ups by execution cannot prune the log's partitions at plan time; see `create_pool`.
        pool = await db.create_pool(settings.basics.pg_dsn, max_size=20, generic_plans=True)
        stack.push_async_callback(pool.close)
        nc = await bus.connect(settings.bus, "noetl-events")
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        await bus.ensure_streams(js, settings.bus)
        outbox_channel = open_channel(settings.outbox_addr, ClientAuth(settings.basics.mesh))
        stack.push_async_callback(outbox_channel.close)
        relay = Relay(js, OutboxClient(outbox_pb2_grpc.OutboxServiceStub(outbox_channel)))
        await stack.enter_async_context(relay)
        store = EventStore(pool)
        await stack.enter_async_context(PartitionKeeper(store))
        # One generator per process: two with the same machine id would mint the same ids.
        mint = Snowflake(settings.basics.machine_id).next_id
        batcher = await stack.enter_async_context(AppendBatcher(store, mint))
        log = EventLog(
            store=store,
            batcher=batcher,
            relay=relay,
            wakeups=Wakeups(nc),
            settings=EventLogSettings(event_shard_count=settings.bus.event_shard_count),
            mint=mint,
        )
        api = EventApi(log, settings.batch_limits)

        def register(server: grpc.aio.Server) -> None:
            events_pb2_grpc.add_EventServiceServicer_to_server(api, server)

        # The write path is watched: a database gone or stuck reads NOT_SERVING on gRPC health.
        yield [register, WritePathWatch(database_probe(pool))]


def main() -> int:
    return runner.run("events", Settings.load, assemble)


if __name__ == "__main__":
    sys.exit(main())
