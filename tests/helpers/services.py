"""The four control-plane services in this process, each on its own ephemeral gRPC port.

Every service is built by its own `assemble(settings)` and hosted by `GrpcHost`, exactly as its
`__main__` does, against a migrated database and the session NATS server. Start order follows
the wiring: outbox needs nobody; catalog and execution need the events address and events needs
the execution address. That cycle is cut by holding a socket on a free port for the events
service until the moment its `GrpcHost` binds it (see `_HeldPort`).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import grpc
from nats.js import JetStreamContext
from noetl.v1 import catalog_pb2_grpc, events_pb2_grpc, execution_pb2_grpc, outbox_pb2_grpc

from kernel.bus import BusSettings
from kernel.config import ServiceBasics
from kernel.grpc_server import GrpcHost, Registrar
from kernel.mesh_auth import MeshAuth
from kernel.mesh_guard import ServerAuth
from kernel.migrate import migrate
from services.catalog.__main__ import assemble as assemble_catalog
from services.catalog.settings import Settings as CatalogSettings
from services.events.__main__ import assemble as assemble_events
from services.events.settings import Settings as EventsSettings
from services.execution.__main__ import assemble as assemble_execution
from services.execution.orchestration.reaper import ReaperSettings
from services.execution.settings import Settings as ExecutionSettings
from services.outbox.__main__ import assemble as assemble_outbox
from services.outbox.settings import Settings as OutboxSettings
from tests.helpers.bus import assert_streams_exist, isolated_bus
from tests.helpers.nowhere import NOWHERE

LOCALHOST = "127.0.0.1"
SERVER_URL = f"http://{NOWHERE}"  # no test worker here calls back to a gateway
CLAIM_LEASE_SECONDS = 120
CLAIM_RETRY_AFTER_SECONDS = 2
OUTBOX_MAX_ATTEMPTS = 10
OUTBOX_LEASE_SECONDS = 60

SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class Mesh:
    """Typed stubs (plain channels: callers see the raw gRPC status) plus what tests inspect."""

    dsn: str
    bus: BusSettings
    js: JetStreamContext
    addresses: dict[str, str]
    catalog: catalog_pb2_grpc.CatalogServiceStub
    execution: execution_pb2_grpc.ExecutionServiceStub
    commands: execution_pb2_grpc.CommandServiceStub
    events: events_pb2_grpc.EventServiceStub
    outbox: outbox_pb2_grpc.OutboxServiceStub


_machine_ids = iter(range(100, 1024))


def basics(dsn: str, listen: str = f"{LOCALHOST}:0", mesh: MeshAuth | None = None) -> ServiceBasics:
    """Each in-process service gets a machine id of its own, as separate processes would.

    Mesh auth is off unless `mesh` says otherwise: these in-process meshes test each service's
    behaviour; who may call what is tested over real gRPC in tests/integration/test_mesh_auth.py,
    and the process mesh of the e2e tests runs with it on, as `noetl-mesh up` does.
    """
    return ServiceBasics(
        listen=listen,
        metrics_port=0,
        pg_dsn=dsn,
        machine_id=next(_machine_ids),
        mesh=mesh or MeshAuth.off("test"),
    )


class _HeldPort:
    """A free port kept bound until the server that will own it binds it.

    Releasing happens synchronously right before `GrpcHost.start()` binds, with no await in
    between, so no other task of this process can take the port in the gap.
    """

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((LOCALHOST, 0))
        self.port: int = self._socket.getsockname()[1]

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def release(self) -> None:
        self._socket.close()


async def _serve(
    stack: AsyncExitStack,
    name: str,
    assemble: Callable[[SettingsT], AbstractAsyncContextManager[list[Registrar]]],
    settings: SettingsT,
    *,
    listen: str,
    auth: ServerAuth,
    before_bind: Callable[[], None] | None = None,
) -> str:
    """Assembles and starts one service; stopping it is pushed onto `stack` (LIFO: dependents first)."""
    registrars = await stack.enter_async_context(assemble(settings))
    host = GrpcHost(name, listen, registrars, auth=auth, grace=2.0)
    if before_bind is not None:
        before_bind()
    port = await host.start()
    stack.push_async_callback(host.stop)
    return f"{LOCALHOST}:{port}"


@asynccontextmanager
async def running_mesh(
    dsn: str,
    bus: BusSettings,
    reaper: ReaperSettings | None = None,
    *,
    mesh_auth: Callable[[str], MeshAuth] | None = None,
) -> AsyncIterator[Mesh]:
    """Migrates `dsn`, starts catalog, outbox, execution and events, yields stubs, stops them all.

    The streams named in `bus` are created by the services and deleted on exit. The execution
    service's reaper and reconciler are off unless `reaper` says otherwise. `mesh_auth` gives a
    service (by its caller name) its mesh auth settings; without it mesh auth is off and the
    yielded stubs need no credentials.
    """

    def auth(name: str) -> MeshAuth:
        return mesh_auth(name) if mesh_auth is not None else MeshAuth.off(name)

    await migrate(dsn)
    async with AsyncExitStack() as stack:
        js = await stack.enter_async_context(isolated_bus(bus))
        events_port = _HeldPort()
        stack.callback(events_port.release)  # in case a start fails before the events host binds
        catalog = await _serve(
            stack,
            "catalog",
            assemble_catalog,
            CatalogSettings(basics(dsn, mesh=auth("catalog")), events_addrs=(events_port.address,)),
            listen=f"{LOCALHOST}:0",
            auth=ServerAuth(auth("catalog")),
        )
        outbox = await _serve(
            stack,
            "outbox",
            assemble_outbox,
            OutboxSettings(
                basics=basics(dsn, mesh=auth("outbox")),
                bus=bus,
                max_attempts=OUTBOX_MAX_ATTEMPTS,
                lease_seconds=OUTBOX_LEASE_SECONDS,
                batch_size=100,
                idle_sleep=1.0,
                error_sleep=5.0,
            ),
            listen=f"{LOCALHOST}:0",
            auth=ServerAuth(auth("outbox")),
        )
        execution = await _serve(
            stack,
            "execution",
            assemble_execution,
            ExecutionSettings(
                basics=basics(dsn, mesh=auth("execution")),
                cluster_pg_dsn=dsn,
                catalog_addr=catalog,
                events_addrs=(events_port.address,),
                execution_addrs=(),
                server_url=SERVER_URL,
                secrets_addr=NOWHERE,
                lease_seconds=CLAIM_LEASE_SECONDS,
                retry_after_seconds=CLAIM_RETRY_AFTER_SECONDS,
                shard_index=0,
                shard_count=1,
                bus=bus,
                reaper=reaper or ReaperSettings(enabled=False),
            ),
            listen=f"{LOCALHOST}:0",
            auth=ServerAuth(auth("execution")),
        )
        events = await _serve(
            stack,
            "events",
            assemble_events,
            EventsSettings(
                basics=basics(dsn, mesh=auth("events")),
                bus=bus,
                outbox_addr=outbox,
            ),
            listen=events_port.address,
            auth=ServerAuth(auth("events")),
            before_bind=events_port.release,
        )
        await assert_streams_exist(js, bus)
        addresses = {"catalog": catalog, "outbox": outbox, "execution": execution, "events": events}
        channels: dict[str, grpc.aio.Channel] = {}
        for name, address in addresses.items():
            channels[name] = grpc.aio.insecure_channel(address)
            stack.push_async_callback(channels[name].close)
        yield Mesh(
            dsn=dsn,
            bus=bus,
            js=js,
            addresses=addresses,
            catalog=catalog_pb2_grpc.CatalogServiceStub(channels["catalog"]),
            execution=execution_pb2_grpc.ExecutionServiceStub(channels["execution"]),
            commands=execution_pb2_grpc.CommandServiceStub(channels["execution"]),
            events=events_pb2_grpc.EventServiceStub(channels["events"]),
            outbox=outbox_pb2_grpc.OutboxServiceStub(channels["outbox"]),
        )
