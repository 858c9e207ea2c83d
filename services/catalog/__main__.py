"""`python -m services.catalog`: the catalog gRPC service."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
from noetl.v1 import catalog_pb2_grpc, events_pb2_grpc

from kernel import db, runner
from kernel.grpc_client import ClientAuth, Sharded
from kernel.grpc_server import Registrar
from kernel.health import WritePathWatch, database_probe
from kernel.ids import Snowflake
from services.catalog.api import CatalogApi
from services.catalog.clients import EventHistory
from services.catalog.service import Catalog
from services.catalog.settings import Settings
from services.catalog.store import CatalogStore


@asynccontextmanager
async def assemble(settings: Settings) -> AsyncIterator[list[Registrar]]:
    """A failed start closes, in reverse order, what was already open."""
    async with AsyncExitStack() as stack:
        pool = await db.create_pool(settings.basics.pg_dsn)
        stack.push_async_callback(pool.close)
        events = Sharded(
            settings.events_addrs, events_pb2_grpc.EventServiceStub, ClientAuth(settings.basics.mesh)
        )
        stack.push_async_callback(events.close)
        catalog = Catalog(CatalogStore(pool), Snowflake(settings.basics.machine_id), EventHistory(events))
        api = CatalogApi(catalog)

        def register(server: grpc.aio.Server) -> None:
            catalog_pb2_grpc.add_CatalogServiceServicer_to_server(api, server)

        # The write path is watched: a database gone or stuck reads NOT_SERVING on gRPC health.
        yield [register, WritePathWatch(database_probe(pool))]


def main() -> int:
    return runner.run("catalog", Settings.load, assemble)


if __name__ == "__main__":
    sys.exit(main())
