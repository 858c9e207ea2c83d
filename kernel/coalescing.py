"""Concurrent calls to one shard sent as one batched RPC, each still answered on its own.

An item joins the open batch of its shard. The batch goes out on the next turn of the event
loop, after every item that arrived in the same turn has joined it, or at once when it reaches a
size cap: a lone item waits one loop turn, never a timer. While `in_flight` calls to the shard
are out, the batch goes when one of them ends, so under load items gather while calls are out
and batches grow with the load instead of going out a few at a time. A gRPC call costs each side
a few hundred microseconds of CPU whatever it carries; that is what this saves.

The service answers item by item; a call that fails as a whole fails each of its items with a
copy of the same `MeshError` (one exception object raised in many tasks piles up tracebacks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kernel.errors import Internal, MeshError, Unavailable

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
StubT = TypeVar("StubT", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Limits:
    items: int  # per call
    size: int  # bytes per call, well under the services' gRPC message limit
    in_flight: int  # calls out per shard before the next batch waits for one to end


@dataclass(slots=True)
class _Batch(Generic[ItemT, ResultT]):
    items: list[ItemT] = field(default_factory=list)
    waiters: list[asyncio.Future[ResultT]] = field(default_factory=list)
    size: int = 0


@dataclass(slots=True)
class _Shard(Generic[StubT, ItemT, ResultT]):
    stub: StubT
    open: _Batch[ItemT, ResultT] | None = None
    flush_scheduled: bool = False
    in_flight: int = 0


class Coalescer(Generic[StubT, ItemT, ResultT]):
    """`send(stub, items)` makes the batched call and returns one result per item, in order."""

    def __init__(
        self,
        send: Callable[[StubT, list[ItemT]], Awaitable[Sequence[ResultT]]],
        size: Callable[[ItemT], int],
        limits: Limits,
    ) -> None:
        self._send_call = send
        self._size = size
        self._limits = limits
        self._shards: dict[StubT, _Shard[StubT, ItemT, ResultT]] = {}
        self._sending: set[asyncio.Task[None]] = set()  # strong references until each call ends

    async def submit(self, stub: StubT, item: ItemT) -> ResultT:
        """The item's result; raises the `MeshError` of a call that failed as a whole."""
        shard = self._shards.get(stub)
        if shard is None:
            shard = self._shards[stub] = _Shard(stub)
        batch = shard.open
        if batch is None:
            batch = shard.open = _Batch()
        waiter: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        batch.items.append(item)
        batch.waiters.append(waiter)
        batch.size += self._size(item)
        if len(batch.items) >= self._limits.items or batch.size >= self._limits.size:
            self._send(shard)
        elif not shard.flush_scheduled and shard.in_flight < self._limits.in_flight:
            shard.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, shard)
        return await waiter

    def _flush(self, shard: _Shard[StubT, ItemT, ResultT]) -> None:
        shard.flush_scheduled = False
        # Sent already (at its cap), or every slot is taken: the next call's end sends it.
        if shard.open is not None and shard.in_flight < self._limits.in_flight:
            self._send(shard)

    def _send(self, shard: _Shard[StubT, ItemT, ResultT]) -> None:
        batch, shard.open = shard.open, None
        if batch is None:
            return
        shard.in_flight += 1
        task = asyncio.create_task(self._call(shard, batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _call(self, shard: _Shard[StubT, ItemT, ResultT], batch: _Batch[ItemT, ResultT]) -> None:
        error: MeshError = Unavailable("the batched call was cancelled", retry_after=1)
        try:
            results = await self._send_call(shard.stub, batch.items)
            if len(results) != len(batch.waiters):
                raise Internal(f"the service answered {len(results)} results to {len(batch.waiters)} items")
            for waiter, result in zip(batch.waiters, results, strict=True):
                if not waiter.done():  # else its caller went away meanwhile
                    waiter.set_result(result)
        except MeshError as exc:
            error = exc
        except Exception as exc:  # what a lone call would have let through: an internal error
            error = Internal(str(exc) or type(exc).__name__)
        finally:
            # Whatever ended the call, no caller is left waiting.
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(type(error)(error.detail, retry_after=error.retry_after))
            shard.in_flight -= 1
            if not shard.flush_scheduled:
                self._flush(shard)  # what gathered while this call was out
