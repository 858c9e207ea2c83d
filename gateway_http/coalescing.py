"""Concurrent `POST /api/events` requests coalesced into one `EventService.EmitMany` per shard.

A request's event joins the open batch of its execution's shard. The batch goes out on the next
turn of the event loop, after every request that arrived in the same turn has joined it, or at
once when it reaches its size cap: a lone request waits one loop turn, never a timer. While
`MAX_IN_FLIGHT` calls to the shard are out, the batch goes when one of them ends. The service
answers each event on its own, with its result or the error `Emit` would have raised for it
alone, which is rebuilt here as the same `MeshError`; so one bad event never fails its neighbours
and every HTTP answer is the one a single `Emit` would have given.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NamedTuple

from noetl.v1 import events_pb2, events_pb2_grpc

from kernel import rpc_errors
from kernel.errors import Internal, MeshError, Unavailable
from kernel.grpc_client import Sharded
from kernel.wire import optional

MAX_EVENTS = 128
# Payload bytes per call, well under the services' gRPC message limit.
MAX_BYTES = 4 * 1024 * 1024
# Calls in flight per shard before the next batch waits for one to end: under load, requests
# gather while calls are out, so batches grow with the load instead of going out a few at a time.
MAX_IN_FLIGHT = 2


class Emitted(NamedTuple):
    event_id: int
    commands_generated: int


@dataclass(slots=True)
class _Batch:
    events: list[events_pb2.WorkerEvent] = field(default_factory=list)
    waiters: list[asyncio.Future[events_pb2.EmitItemResult]] = field(default_factory=list)
    size: int = 0


@dataclass(slots=True)
class _Shard:
    stub: events_pb2_grpc.EventServiceStub
    open: _Batch | None = None
    flush_scheduled: bool = False
    in_flight: int = 0


class EmitCoalescer:
    def __init__(self, events: Sharded[events_pb2_grpc.EventServiceStub], rpc_timeout: float) -> None:
        self._events = events
        self._timeout = rpc_timeout
        self._shards: dict[events_pb2_grpc.EventServiceStub, _Shard] = {}
        self._sending: set[asyncio.Task[None]] = set()  # strong references until each call ends

    async def emit(self, event: events_pb2.WorkerEvent) -> Emitted:
        """Raises the `MeshError` this event's `Emit` would have raised."""
        loop = asyncio.get_running_loop()
        stub = self._events.for_execution(event.execution_id)
        shard = self._shards.get(stub)
        if shard is None:
            shard = self._shards[stub] = _Shard(stub)
        batch = shard.open
        if batch is None:
            batch = shard.open = _Batch()
        waiter: asyncio.Future[events_pb2.EmitItemResult] = loop.create_future()
        batch.events.append(event)
        batch.waiters.append(waiter)
        batch.size += len(event.payload_json) + len(event.meta_json)
        if len(batch.events) >= MAX_EVENTS or batch.size >= MAX_BYTES:
            self._send(shard)
        elif not shard.flush_scheduled and shard.in_flight < MAX_IN_FLIGHT:
            shard.flush_scheduled = True
            loop.call_soon(self._flush, shard)
        result = await waiter
        if result.HasField("error"):
            error = result.error
            raise rpc_errors.rebuild(
                rpc_errors.status_code(error.code),
                error.message,
                error.kind,
                error.detail_json.decode() or None,
                optional(error, "retry_after"),
            )
        return Emitted(result.event_id, result.commands_generated)

    def _flush(self, shard: _Shard) -> None:
        shard.flush_scheduled = False
        # Sent already (at its cap), or every slot is taken: the next call's end sends it.
        if shard.open is not None and shard.in_flight < MAX_IN_FLIGHT:
            self._send(shard)

    def _send(self, shard: _Shard) -> None:
        batch, shard.open = shard.open, None
        if batch is None:
            return
        shard.in_flight += 1
        task = asyncio.create_task(self._call(shard, batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _call(self, shard: _Shard, batch: _Batch) -> None:
        error: MeshError = Unavailable("the events call was cancelled", retry_after=1)
        try:
            request = events_pb2.EmitManyRequest(events=batch.events)
            response = await shard.stub.EmitMany(request, timeout=self._timeout)
            if len(response.results) != len(batch.waiters):
                raise Internal(
                    f"EmitMany answered {len(response.results)} results to {len(batch.waiters)} events"
                )
            for waiter, result in zip(batch.waiters, response.results, strict=True):
                if not waiter.done():  # else its request went away meanwhile
                    waiter.set_result(result)
        except MeshError as exc:
            error = exc
        except Exception as exc:  # what a lone call would have let through: the handler's 500
            error = Internal(str(exc) or type(exc).__name__)
        finally:
            # Whatever ended the call, no request is left waiting. Each gets a copy of the shared
            # error: one exception object raised in many tasks would pile up their tracebacks.
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(type(error)(error.detail, retry_after=error.retry_after))
            shard.in_flight -= 1
            if not shard.flush_scheduled:
                self._flush(shard)  # what gathered while this call was out
