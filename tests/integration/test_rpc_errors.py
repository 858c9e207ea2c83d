"""What a caller of any service hears when a handler fails, over real gRPC on loopback.

A database that is restarting (its socket gone, a refused or ended session, a pooled connection
that read the shutdown's FATAL) is 503 `db_unavailable` with `Retry-After: 2`, which callers
retry, not a 500; a wait that ran out is 503 `timeout`; anything else unexpected stays
`Internal`. The servicer here is test scaffolding; the host, its interceptor chain and the
client's error mapping are the real ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from kernel.errors import Internal, MeshError, Unavailable
from kernel.grpc_client import ClientAuth, open_channel
from kernel.grpc_server import GrpcHost
from kernel.mesh_guard import ServerAuth

SERVICE = "noetl.test.Failing"
FAILURES: dict[str, BaseException] = {
    "socket_gone": FileNotFoundError(2, "No such file or directory"),
    "shutting_down": asyncpg.CannotConnectNowError("the database system is shutting down"),
    "admin_shutdown": asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    "stale_connection": asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    ),
    "closed_mid_operation": asyncpg.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    ),
    "timed_out": TimeoutError(),
    "bug": RuntimeError("a bug"),
}


def _registrar(server: grpc.aio.Server) -> None:
    def failing(name: str) -> grpc.RpcMethodHandler:
        async def behavior(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            raise FAILURES[name]

        return grpc.unary_unary_rpc_method_handler(behavior)

    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {name: failing(name) for name in FAILURES}),)
    )


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    host = GrpcHost("failing", "127.0.0.1:0", [_registrar], auth=ServerAuth.off())
    port = await host.start()
    channel = open_channel(f"127.0.0.1:{port}", ClientAuth.off())
    try:
        yield channel
    finally:
        await channel.close()
        await host.stop()


async def _failure(channel: grpc.aio.Channel, name: str) -> MeshError:
    with pytest.raises(MeshError) as raised:
        await channel.unary_unary(f"/{SERVICE}/{name}")(b"", timeout=10)
    return raised.value


@pytest.mark.parametrize(
    "name", ["socket_gone", "shutting_down", "admin_shutdown", "stale_connection", "closed_mid_operation"]
)
async def test_a_lost_database_connection_is_unavailable_with_retry_after(
    channel: grpc.aio.Channel, name: str
) -> None:
    failure = await _failure(channel, name)
    assert isinstance(failure, Unavailable)
    assert failure.retry_after == 2
    assert isinstance(failure.detail, dict) and failure.detail["code"] == "db_unavailable"


async def test_a_timeout_is_unavailable_named_as_a_timeout(channel: grpc.aio.Channel) -> None:
    """A `TimeoutError` is an `OSError`, but a wait that ran out is not a lost database."""
    failure = await _failure(channel, "timed_out")
    assert isinstance(failure, Unavailable)
    assert failure.retry_after == 1
    assert isinstance(failure.detail, dict) and failure.detail["code"] == "timeout"
    assert "timed out" in failure.detail["message"]


async def test_any_other_error_is_internal(channel: grpc.aio.Channel) -> None:
    failure = await _failure(channel, "bug")
    assert isinstance(failure, Internal) and failure.detail == "a bug"
