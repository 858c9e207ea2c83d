"""Concurrent `POST /api/events` requests coalesced into one `EventService.EmitMany` per shard
(`kernel.coalescing`). The service answers each event on its own, with its result or the error
`Emit` would have raised for it alone, which is rebuilt here as the same `MeshError`; so one bad
event never fails its neighbours and every HTTP answer is the one a single `Emit` would have given.
"""

from __future__ import annotations

from typing import NamedTuple

from noetl.v1 import events_pb2, events_pb2_grpc

from kernel import rpc_errors
from kernel.coalescing import Coalescer, Limits
from kernel.grpc_client import Sharded

# 128 events or 4 MiB of payloads per call; two calls out per shard.
LIMITS = Limits(items=128, size=4 * 1024 * 1024, in_flight=2)


class Emitted(NamedTuple):
    event_id: int
    commands_generated: int


class EmitCoalescer:
    def __init__(self, events: Sharded[events_pb2_grpc.EventServiceStub], rpc_timeout: float) -> None:
        self._events = events
        self._timeout = rpc_timeout
        self._coalescer: Coalescer[
            events_pb2_grpc.EventServiceStub, events_pb2.WorkerEvent, events_pb2.EmitItemResult
        ] = Coalescer(self._emit_many, _size, LIMITS)

    async def emit(self, event: events_pb2.WorkerEvent) -> Emitted:
        """Raises the `MeshError` this event's `Emit` would have raised."""
        result = await self._coalescer.submit(self._events.for_execution(event.execution_id), event)
        if result.HasField("error"):
            raise rpc_errors.from_item_error(result.error)
        return Emitted(result.event_id, result.commands_generated)

    async def _emit_many(
        self, stub: events_pb2_grpc.EventServiceStub, events: list[events_pb2.WorkerEvent]
    ) -> list[events_pb2.EmitItemResult]:
        response = await stub.EmitMany(events_pb2.EmitManyRequest(events=events), timeout=self._timeout)
        return list(response.results)


def _size(event: events_pb2.WorkerEvent) -> int:
    return len(event.payload_json) + len(event.meta_json)
