"""The execution service's AdminService hosted in this process, over a database whose tables a test chooses.

Assembled from the same parts as in `services/execution/__main__.py` (the pool, `Admin` and its
secrets client, `AdminApi` under `GrpcHost`), so a test can point it at a database where a
required table is missing — which the mesh's own migrated database never is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
from noetl.v1 import admin_pb2_grpc, secrets_pb2_grpc

from kernel import db
from kernel.grpc_client import ClientAuth, open_channel
from kernel.grpc_server import GrpcHost
from kernel.mesh_guard import ServerAuth
from noetl_mesh.query_role import make_query_role
from services.execution.admin.api import AdminApi
from services.execution.admin.clients import SecretsCredentials
from services.execution.admin.service import REQUIRED_TABLES, Admin
from tests.helpers import infra
from tests.helpers.infra import PgServer
from tests.helpers.nowhere import NOWHERE

LOCALHOST = "127.0.0.1"
# Nothing listens here.


async def bare_database(pg_server: PgServer, prefix: str, *, without: Iterable[str] = ()) -> str:
    """A fresh database whose schema `noetl` holds the required tables but `without`, one more
    table (`extra`), a partitioned table with one partition, and two procedures."""
    dsn = await infra.fresh_database(pg_server, prefix=prefix)
    left_out = set(without)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE SCHEMA noetl")
        for table in REQUIRED_TABLES:
            if table not in left_out:
                await conn.execute(f"CREATE TABLE noetl.{table} (id int)")
        await conn.execute("CREATE TABLE noetl.extra (id int)")
        await conn.execute("CREATE TABLE noetl.parted (k int) PARTITION BY RANGE (k)")
        await conn.execute(
            "CREATE TABLE noetl.parted_p0 PARTITION OF noetl.parted FOR VALUES FROM (0) TO (10)"
        )
        await conn.execute(
            "CREATE PROCEDURE noetl.bump(INOUT n int) LANGUAGE plpgsql AS $$ BEGIN n := n + 1; END $$"
        )
        await conn.execute(
            "CREATE PROCEDURE noetl.mark() LANGUAGE sql AS $$ INSERT INTO noetl.extra VALUES (7) $$"
        )
    finally:
        await conn.close()
    return dsn


@dataclass(frozen=True)
class AdminHost:
    address: str
    # The pool the service reports on, for tests that hold its connections.
    pool: db.Pool


@asynccontextmanager
async def running_admin(
    dsn: str, *, secrets_addr: str = NOWHERE, pool_max: int = 10, timeout_seconds: float = 60.0
) -> AsyncIterator[AdminHost]:
    async with AsyncExitStack() as stack:
        pool = await db.create_pool(dsn, max_size=pool_max)
        stack.push_async_callback(pool.close)
        channel = open_channel(secrets_addr, ClientAuth.off())
        stack.push_async_callback(channel.close)
        credentials = SecretsCredentials(secrets_pb2_grpc.SecretsServiceStub(channel))
        # Ad-hoc SQL runs as the least-privilege role `noetl-mesh up` would make for this database.
        api = AdminApi(Admin(pool, await make_query_role(dsn), credentials, timeout_seconds))
        host = GrpcHost(
            "admin",
            f"{LOCALHOST}:0",
            [lambda server: admin_pb2_grpc.add_AdminServiceServicer_to_server(api, server)],
            auth=ServerAuth.off(),
            grace=2.0,
        )
        port = await host.start()
        stack.push_async_callback(host.stop)
        yield AdminHost(f"{LOCALHOST}:{port}", pool)
