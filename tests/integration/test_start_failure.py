"""A failure during start closes what was already open, and the process exits with the error.

Every process is assembled on one `AsyncExitStack` (kernel/lifecycle.py): what start
opened before the failure is closed in reverse order, so nothing is left holding a database
connection or a task, and the process ends promptly instead of hanging.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator

import asyncpg
import pytest

from kernel.config import ServiceBasics
from kernel.errors import Unavailable
from kernel.mesh_auth import MeshAuth
from services.execution.__main__ import assemble
from services.execution.orchestration.reaper import ReaperSettings
from services.execution.settings import Settings
from tests.helpers.bus import isolated_bus, unique_bus
from tests.helpers.infra import NatsServer
from tests.helpers.nowhere import NOWHERE, NOWHERE_ENV
from tests.helpers.waiting import wait_for

# Nothing listens on the discard port: a connection there is refused at once.
UNREACHABLE_DSN = "postgresql://noetl@127.0.0.1:9/noetl"


async def others_connected(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return count
    finally:
        await conn.close()


async def test_a_failed_start_closes_the_database_pool_it_had_opened(
    module_dsn: str, nats_server: NatsServer
) -> None:
    # The shard's pool opens first; the cluster registry's pool (a second database) then fails.
    settings = Settings(
        basics=ServiceBasics(
            listen="127.0.0.1:0",
            metrics_port=0,
            pg_dsn=module_dsn,
            machine_id=1,
            mesh=MeshAuth.off("execution"),
        ),
        cluster_pg_dsn=UNREACHABLE_DSN,
        catalog_addr=NOWHERE,
        events_addrs=(NOWHERE,),
        execution_addrs=(),
        server_url=f"http://{NOWHERE}",
        secrets_addr=NOWHERE,
        lease_seconds=120,
        retry_after_seconds=2,
        shard_index=0,
        shard_count=1,
        bus=unique_bus(nats_server.url, "startfail"),
        reaper=ReaperSettings(enabled=False),
    )
    tasks_before = asyncio.all_tasks()
    with pytest.raises(Unavailable, match="cannot connect to Postgres"):
        async with assemble(settings):
            pytest.fail("started without its cluster database")

    async def nobody_connected() -> bool:
        return await others_connected(module_dsn) == 0

    await wait_for(nobody_connected, what="the shard's pool closed", within=5.0)
    assert asyncio.all_tasks() <= tasks_before | {asyncio.current_task()}


@pytest.fixture
def port_in_use() -> Iterator[int]:
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        yield held.getsockname()[1]
    finally:
        held.close()


async def start_execution(module_dsn: str, nats_server: NatsServer, **ports: str) -> tuple[int, str]:
    """Runs `python -m services.execution` with these listen settings; its exit code and stderr."""
    bus = unique_bus(nats_server.url, "bindfail")
    env = {
        **os.environ,
        **NOWHERE_ENV,
        "NOETL_PG_DSN": module_dsn,
        "NOETL_NATS_URL": nats_server.url,
        "NATS_STREAM": bus.command_stream,
        "NOETL_EVENT_NATS_STREAM": bus.event_stream,
        **ports,
    }
    # Everything before the bind is opened: the pool, NATS, the event feed, the reaper, the sweeper.
    async with isolated_bus(bus):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.execution",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_service_that_cannot_bind_exits_promptly_with_the_error(
    module_dsn: str, nats_server: NatsServer, port_in_use: int
) -> None:
    code, stderr = await start_execution(
        module_dsn, nats_server, NOETL_GRPC_LISTEN=f"127.0.0.1:{port_in_use}", NOETL_METRICS_PORT="0"
    )
    assert code == 1, stderr
    # One line says why (grpc's own message for a port in use).
    assert f"stopped: RuntimeError: Failed to bind to address 127.0.0.1:{port_in_use}" in stderr


async def test_a_metrics_port_in_use_is_named_in_the_error(
    module_dsn: str, nats_server: NatsServer, port_in_use: int
) -> None:
    code, stderr = await start_execution(
        module_dsn, nats_server, NOETL_GRPC_LISTEN="127.0.0.1:0", NOETL_METRICS_PORT=str(port_in_use)
    )
    assert code == 1, stderr
    assert f"the metrics endpoint cannot bind 127.0.0.1:{port_in_use}: Address already in use" in stderr
