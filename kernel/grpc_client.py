"""Channels to other services and routing of per-execution calls by `shard_for`."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import grpc

from kernel import telemetry
from kernel.mesh_auth import AUTHORIZATION, MTLS, TOKEN, MeshAuth, WatchedFile
from kernel.mesh_tls import RotatingChannel, channel_credentials, client_files
from kernel.rpc_errors import ClientErrorInterceptor
from kernel.sharding import shard_for

StubT = TypeVar("StubT")

# Messages carry whole JSON values: a result-store value may be 64 MiB (http-api.md §1.1) and comes
# back in Postgres's spaced JSONB text, so the limit leaves it room on both sides.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.enable_retries", 1),
    # A restarted peer is back within a second or two: retry the connection at most every 2 s
    # (gRPC's default backoff grows to 120 s, which left a healed mesh idle for minutes).
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


# Metadata naming the shard a per-shard channel serves: how Envoy (deploy/envoy/envoy.yaml) routes a
# call to its owner when every shard address is Envoy's. Envoy cannot read the execution id in a
# protobuf body; the client already ran `shard_for` on it to pick the channel.
SHARD_HEADER = "x-noetl-shard"


class _Bearer:
    """Adds `authorization: Bearer <token>` to a call; `token` gives the current token."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata[AUTHORIZATION] = f"Bearer {self._token().strip()}"
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files an interceptor under the first call kind it implements: one class per kind.
class _BearerUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, bearer: _Bearer) -> None:
        self._bearer = bearer

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._bearer.details(client_call_details), request)


class _BearerUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, bearer: _Bearer) -> None:
        self._bearer = bearer

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._bearer.details(client_call_details), request)


class _BearerStreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, bearer: _Bearer) -> None:
        self._bearer = bearer

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._bearer.details(client_call_details), request_iterator)


class _BearerStreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, bearer: _Bearer) -> None:
        self._bearer = bearer

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._bearer.details(client_call_details), request_iterator)


def bearer_interceptors(token_file: str, *, read_once: bool = False) -> list[Any]:
    """Client interceptors that send the token in `token_file` on every kind of call: re-read when
    the file changes, or with `read_once` read now and kept (the file is not needed afterwards).

    Raises:
        OSError: the token file cannot be read.
    """
    watched = WatchedFile(token_file)
    if read_once:
        token = watched.text()
        bearer = _Bearer(lambda: token)
    else:
        bearer = _Bearer(watched.text)
    return [
        kind(bearer)
        for kind in (_BearerUnaryUnary, _BearerUnaryStream, _BearerStreamUnary, _BearerStreamStream)
    ]


class ClientAuth:
    """How this process proves who it is to other services (one per process, from its `MeshAuth`).

    `token_once`: the token is read here and kept (a worker, whose user code must not find it
    through the worker's environment later); otherwise it follows its file (rotation, no restart).
    """

    def __init__(self, settings: MeshAuth, *, token_once: bool = False) -> None:
        self.settings = settings
        self._bearer = (
            bearer_interceptors(settings.token_file, read_once=token_once) if settings.mode == TOKEN else []
        )

    @classmethod
    def off(cls) -> ClientAuth:
        return cls(MeshAuth.off(""))

    def open(self, address: str, shard: int | None = None) -> grpc.aio.Channel:
        """A channel to `address`; with `shard`, every call names that shard (SHARD_HEADER)."""
        interceptors: list[Any] = [*telemetry.client_interceptors(), ClientErrorInterceptor(), *self._bearer]
        if shard is not None:
            # grpc.aio files an interceptor under its first matching kind only: one object per kind.
            tag = (SHARD_HEADER, str(shard))
            interceptors[:0] = [
                _TagUnary(tag),
                _TagUnaryStream(tag),
                _TagStreamUnary(tag),
                _TagStreamStream(tag),
            ]
        if self.settings.mode == MTLS:
            settings = self.settings

            def secure() -> grpc.aio.Channel:
                return grpc.aio.secure_channel(
                    address, channel_credentials(settings), options=_OPTIONS, interceptors=interceptors
                )

            return RotatingChannel(secure, client_files(settings))
        return grpc.aio.insecure_channel(address, options=_OPTIONS, interceptors=interceptors)


def open_channel(address: str, auth: ClientAuth, shard: int | None = None) -> grpc.aio.Channel:
    return auth.open(address, shard)


def _tagged(details: grpc.aio.ClientCallDetails, pair: tuple[str, str]) -> grpc.aio.ClientCallDetails:
    """The call's details with `x-noetl-shard: <index>` added to its metadata."""
    metadata = grpc.aio.Metadata(*(details.metadata or ()), pair)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _TagUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, pair: tuple[str, str]) -> None:
        self._pair = pair

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_tagged(client_call_details, self._pair), request)


class _TagUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, pair: tuple[str, str]) -> None:
        self._pair = pair

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_tagged(client_call_details, self._pair), request)


class _TagStreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, pair: tuple[str, str]) -> None:
        self._pair = pair

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_tagged(client_call_details, self._pair), request_iterator)


class _TagStreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, pair: tuple[str, str]) -> None:
        self._pair = pair

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_tagged(client_call_details, self._pair), request_iterator)


class Sharded(Generic[StubT]):
    """One stub per shard; `for_execution` picks the owner, `for_new_execution` the shard a new
    run starts on, `all` serves fan-out lookups.

    With one address (the default) every call goes to it through the same code path.
    """

    def __init__(
        self, addresses: tuple[str, ...], make_stub: Callable[[grpc.aio.Channel], StubT], auth: ClientAuth
    ) -> None:
        if not addresses:
            raise ValueError("at least one address is required")
        self._channels = [auth.open(address, shard) for shard, address in enumerate(addresses)]
        self._stubs = [make_stub(channel) for channel in self._channels]
        self._turns = itertools.count()

    def for_execution(self, execution_id: int) -> StubT:
        return self._stubs[shard_for(execution_id, len(self._stubs))]

    def for_new_execution(self) -> StubT:
        """The shard that starts the next new execution, in turn. The receiving shard mints an id
        it owns (`Snowflake.next_owned_id`), so the run is born on its owner and turns spread
        runs evenly; no hand-over, no second hop (docs/sharding.md)."""
        return self._stubs[next(self._turns) % len(self._stubs)]

    def all(self) -> list[StubT]:
        return list(self._stubs)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
