"""`python -m services.execution`: executions, orchestration and the claim protocol."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
from noetl.v1 import (
    admin_pb2_grpc,
    binding_pb2_grpc,
    catalog_pb2_grpc,
    events_pb2_grpc,
    execution_pb2_grpc,
    pools_pb2_grpc,
    results_pb2_grpc,
    secrets_pb2_grpc,
    vars_pb2_grpc,
)

from kernel import bus, db, runner
from kernel.grpc_client import ClientAuth, Sharded, open_channel
from kernel.grpc_server import Registrar
from kernel.health import WritePathWatch, database_probe
from kernel.ids import Snowflake
from services.execution.admin.api import AdminApi
from services.execution.admin.clients import SecretsCredentials
from services.execution.admin.service import Admin
from services.execution.clients import BusPublisher, CatalogClient, EventsClient, ShardFamily
from services.execution.commands.api import CommandApi
from services.execution.commands.binding import WorkBinding, WorkBindingApi
from services.execution.commands.claims import Claims, ClaimSettings
from services.execution.commands.lifecycle import LifecycleWriter
from services.execution.commands.store import CommandStore
from services.execution.orchestration.api import ExecutionApi
from services.execution.orchestration.cleanup import Cleanup
from services.execution.orchestration.control import Control
from services.execution.orchestration.feed import EventFeed, FeedSettings
from services.execution.orchestration.orchestrator import Orchestrator, OrchestratorSettings
from services.execution.orchestration.projector import Projector
from services.execution.orchestration.queries import Queries
from services.execution.orchestration.reaper import Reaper
from services.execution.orchestration.store import ExecutionStore
from services.execution.pools.api import PoolApi
from services.execution.pools.service import Pools
from services.execution.pools.store import PoolStore
from services.execution.results.api import ResultApi
from services.execution.results.service import ExpirySweeper, Results
from services.execution.results.store import ResultStore
from services.execution.settings import Settings
from services.execution.variables.api import VarsApi
from services.execution.variables.service import Variables
from services.execution.variables.store import VariableStore


@asynccontextmanager
async def assemble(settings: Settings) -> AsyncIterator[list[Registrar]]:
    """Each resource is closed by the stack as soon as it is open: a failed start closes, in
    reverse order, what was already open."""
    async with AsyncExitStack() as stack:
        yield await _assemble(settings, stack)


async def _assemble(settings: Settings, stack: AsyncExitStack) -> list[Registrar]:
    pool = await db.create_pool(settings.basics.pg_dsn, max_size=20)
    stack.push_async_callback(pool.close)
    mesh = ClientAuth(settings.basics.mesh)
    # Worker pools are one registry for the cluster; with one database it is the shard's own pool.
    cluster_pool = pool
    if settings.cluster_pg_dsn != settings.basics.pg_dsn:
        cluster_pool = await db.create_pool(settings.cluster_pg_dsn, max_size=5)
        stack.push_async_callback(cluster_pool.close)
    registry = PoolStore(cluster_pool)
    catalog_channel = open_channel(settings.catalog_addr, mesh)
    stack.push_async_callback(catalog_channel.close)
    secrets_channel = open_channel(settings.secrets_addr, mesh)
    stack.push_async_callback(secrets_channel.close)
    events = Sharded(settings.events_addrs, events_pb2_grpc.EventServiceStub, mesh)
    stack.push_async_callback(events.close)
    # Other shards' execution services, for cascades whose family spans shards.
    peers = None
    if settings.shard_count > 1:
        peers = Sharded(settings.execution_addrs, execution_pb2_grpc.ExecutionServiceStub, mesh)
        stack.push_async_callback(peers.close)
    store = ExecutionStore(pool)
    commands = CommandStore(pool)
    events_port = EventsClient(events)
    catalog_port = CatalogClient(catalog_pb2_grpc.CatalogServiceStub(catalog_channel))
    # One generator per process: two with the same machine id could mint the same id.
    ids = Snowflake(settings.basics.machine_id)
    results = Results(ResultStore(pool), ids)
    lifecycle = LifecycleWriter(commands, settings.lease_seconds)
    projector = Projector(store, commands, events_port, lifecycle)
    orchestrator = Orchestrator(
        store=store,
        commands=commands,
        events=events_port,
        catalog=catalog_port,
        results=results,
        ids=ids,
        settings=OrchestratorSettings(
            server_url=settings.server_url,
            shard_index=settings.shard_index,
            shard_count=settings.shard_count,
        ),
        projector=projector,
    )
    claims = Claims(
        commands,
        events_port,
        orchestrator,
        projector,
        registry=registry,
        settings=ClaimSettings(
            lease_seconds=settings.lease_seconds,
            retry_after_seconds=settings.retry_after_seconds,
            worker_heartbeat_stale_seconds=settings.worker_heartbeat_stale_seconds,
        ),
    )
    queries = Queries(store, commands, events_port, catalog_port, orchestrator)
    nc = await bus.connect(settings.bus, "noetl-execution")
    stack.push_async_callback(nc.drain)
    js = nc.jetstream()
    await bus.ensure_streams(js, settings.bus)
    await stack.enter_async_context(
        EventFeed(
            js,
            projector,
            orchestrator,
            FeedSettings(
                stream=settings.bus.event_stream,
                durable=f"noetl_execution_{settings.shard_index}",
                subject=bus.shard_events_filter(settings.shard_index, settings.shard_count),
                batch=settings.feed_batch,
            ),
            prepare=lambda: bus.ensure_streams(js, settings.bus),
        )
    )
    reaper = Reaper(
        store=store,
        commands=commands,
        events=events_port,
        orchestrator=orchestrator,
        projector=projector,
        publisher=BusPublisher(js),
        settings=settings.reaper,
    )
    await stack.enter_async_context(reaper)
    await stack.enter_async_context(ExpirySweeper(results))
    control = Control(
        orchestrator,
        events_port,
        store,
        ShardFamily(store, peers, settings.shard_index),
        shard_index=settings.shard_index,
        shard_count=settings.shard_count,
    )
    cleanup = Cleanup(orchestrator, store, settings.shard_index, settings.shard_count)
    execution_api = ExecutionApi(orchestrator, queries, control, cleanup=cleanup)
    command_api = CommandApi(claims)
    pool_api = PoolApi(Pools(registry, ids))
    credentials = SecretsCredentials(secrets_pb2_grpc.SecretsServiceStub(secrets_channel))
    admin = Admin(pool, settings.sql_dsn or None, credentials, settings.sql_timeout_seconds)

    def register(server: grpc.aio.Server) -> None:
        execution_pb2_grpc.add_ExecutionServiceServicer_to_server(execution_api, server)
        execution_pb2_grpc.add_CommandServiceServicer_to_server(command_api, server)
        pools_pb2_grpc.add_PoolServiceServicer_to_server(pool_api, server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminApi(admin), server)
        vars_pb2_grpc.add_VarsServiceServicer_to_server(VarsApi(Variables(VariableStore(pool))), server)
        results_pb2_grpc.add_ResultServiceServicer_to_server(ResultApi(results), server)
        binding_pb2_grpc.add_WorkBindingServiceServicer_to_server(
            WorkBindingApi(WorkBinding(commands)), server
        )

    # The write path is watched: a database gone or stuck reads NOT_SERVING on gRPC health.
    return [register, WritePathWatch(database_probe(pool))]


def main() -> int:
    return runner.run("execution", Settings.load, assemble)


if __name__ == "__main__":
    sys.exit(main())
