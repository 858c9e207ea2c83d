"""`python -m services.execution`: executions, orchestration and the claim protocol."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from noetl.v1 import catalog_pb2_grpc, events_pb2_grpc, execution_pb2_grpc

from services.common import bus, db, runner
from services.common.grpc_client import Sharded, open_channel
from services.common.grpc_server import Registrar
from services.common.ids import Snowflake
from services.execution.api import CommandApi, ExecutionApi
from services.execution.claims import Claims, ClaimSettings
from services.execution.clients import BusPublisher, CatalogClient, EventsClient
from services.execution.control import Control
from services.execution.orchestrator import Orchestrator, OrchestratorSettings
from services.execution.queries import Queries
from services.execution.reaper import Reaper
from services.execution.settings import Settings
from services.execution.store import ExecutionStore


@asynccontextmanager
async def assemble(settings: Settings) -> AsyncIterator[list[Registrar]]:
    pool = await db.create_pool(settings.basics.pg_dsn, max_size=20)
    catalog_channel = open_channel(settings.catalog_addr)
    events = Sharded(settings.events_addrs, events_pb2_grpc.EventServiceStub)
    store = ExecutionStore(pool)
    events_port = EventsClient(events)
    catalog_port = CatalogClient(catalog_pb2_grpc.CatalogServiceStub(catalog_channel))
    orchestrator = Orchestrator(
        store=store,
        events=events_port,
        catalog=catalog_port,
        ids=Snowflake(settings.basics.machine_id),
        settings=OrchestratorSettings(server_url=settings.server_url),
    )
    claims = Claims(
        store,
        events_port,
        orchestrator,
        ClaimSettings(lease_seconds=settings.lease_seconds, retry_after_seconds=settings.retry_after_seconds),
    )
    queries = Queries(store, events_port, catalog_port, orchestrator)
    nc = await bus.connect(settings.bus, "noetl-execution")
    js = nc.jetstream()
    await bus.ensure_streams(js, settings.bus)
    reaper = Reaper(store, events_port, orchestrator, BusPublisher(js), settings.reaper)
    reaping = asyncio.create_task(reaper.run(), name="command-reaper")
    control = Control(orchestrator, events_port, store)
    execution_api = ExecutionApi(orchestrator, queries, control, store, settings.lease_seconds)
    command_api = CommandApi(claims)

    def register(server: grpc.aio.Server) -> None:
        execution_pb2_grpc.add_ExecutionServiceServicer_to_server(execution_api, server)
        execution_pb2_grpc.add_CommandServiceServicer_to_server(command_api, server)

    try:
        yield [register]
    finally:
        reaper.shutdown()
        await reaping
        await nc.drain()
        await events.close()
        await catalog_channel.close()
        await pool.close()


def main() -> int:
    return runner.run("execution", Settings.load, assemble)


if __name__ == "__main__":
    sys.exit(main())
