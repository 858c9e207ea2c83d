"""Channels to other services and routing of per-execution calls by `shard_for`."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

import grpc

from services.common import telemetry
from services.common.rpc_errors import ClientErrorInterceptor
from services.common.sharding import shard_for

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


def open_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address, options=_OPTIONS, interceptors=[*telemetry.client_interceptors(), ClientErrorInterceptor()]
    )


class Sharded(Generic[StubT]):
    """One stub per shard; `for_execution` picks the owner, `for_new_execution` the shard a new
    run starts on, `all` serves fan-out lookups.

    With one address (the default) every call goes to it through the same code path.
    """

    def __init__(self, addresses: tuple[str, ...], make_stub: Callable[[grpc.aio.Channel], StubT]) -> None:
        if not addresses:
            raise ValueError("at least one address is required")
        self._channels = [open_channel(address) for address in addresses]
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
