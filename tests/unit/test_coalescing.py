"""kernel/coalescing.py: concurrent items become one call per shard, each answered on its own.

The batched call is the coalescer's injected `send` (here a recorder standing in for the RPC);
what is under test is how items are grouped, answered and failed.
"""

from __future__ import annotations

import asyncio

import pytest

from kernel.coalescing import Coalescer, Limits
from kernel.errors import Internal, MeshError, NotFound, Unavailable

LIMITS = Limits(items=4, size=1_000, in_flight=1)


class Service:
    """Records each batched call; answers `item * 10` per item unless told otherwise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failure: Exception | None = None
        self.short = False

    async def send(self, stub: str, items: list[int]) -> list[int]:
        self.calls.append((stub, list(items)))
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        answers = [item * 10 for item in items]
        return answers[:-1] if self.short else answers


def coalescer(service: Service, limits: Limits = LIMITS) -> Coalescer[str, int, int]:
    return Coalescer(service.send, lambda item: item, limits)


async def test_items_of_one_turn_share_one_call_per_shard_and_are_answered_in_order() -> None:
    service = Service()
    batcher = coalescer(service)
    answers = await asyncio.gather(
        batcher.submit("a", 1), batcher.submit("b", 2), batcher.submit("a", 3), batcher.submit("b", 4)
    )
    assert list(answers) == [10, 20, 30, 40]
    assert sorted(service.calls) == [("a", [1, 3]), ("b", [2, 4])]


async def test_a_lone_item_goes_out_on_the_next_turn() -> None:
    service = Service()
    assert await asyncio.wait_for(coalescer(service).submit("a", 7), timeout=1) == 70
    assert service.calls == [("a", [7])]


async def test_a_full_batch_goes_at_once_by_count_or_by_size() -> None:
    service = Service()
    batcher = coalescer(service)
    counted = [asyncio.ensure_future(batcher.submit("a", n)) for n in range(1, 6)]
    sized = [asyncio.ensure_future(batcher.submit("b", n)) for n in (600, 500, 1)]
    await asyncio.gather(*counted, *sized)
    assert ("a", [1, 2, 3, 4]) in service.calls and ("a", [5]) in service.calls
    assert ("b", [600, 500]) in service.calls and ("b", [1]) in service.calls


async def test_items_gather_while_the_calls_allowed_are_out() -> None:
    service = Service()
    service.release.clear()
    batcher = coalescer(service)
    first = asyncio.ensure_future(batcher.submit("a", 1))
    await asyncio.sleep(0.01)
    assert service.calls == [("a", [1])]
    later = [asyncio.ensure_future(batcher.submit("a", n)) for n in (2, 3)]
    await asyncio.sleep(0.01)
    assert len(service.calls) == 1, "one call out is the limit: the next batch waits for it"
    service.release.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30]
    assert service.calls == [("a", [1]), ("a", [2, 3])]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (NotFound("no such execution"), NotFound),
        (Unavailable("restarting", retry_after=2), Unavailable),
        (RuntimeError("boom"), Internal),
    ],
)
async def test_a_failed_call_fails_each_of_its_items_with_its_own_copy(
    failure: Exception, expected: type[MeshError]
) -> None:
    service = Service()
    service.failure = failure
    batcher = coalescer(service)
    outcomes = await asyncio.gather(batcher.submit("a", 1), batcher.submit("a", 2), return_exceptions=True)
    assert all(isinstance(outcome, expected) for outcome in outcomes)
    assert outcomes[0] is not outcomes[1]
    if isinstance(failure, Unavailable):
        assert all(isinstance(o, MeshError) and o.retry_after == 2 for o in outcomes)
    # The shard is free again: the next item is sent and answered.
    service.failure = None
    assert await batcher.submit("a", 3) == 30


async def test_a_short_answer_is_an_internal_error_for_every_item() -> None:
    service = Service()
    service.short = True
    batcher = coalescer(service)
    outcomes = await asyncio.gather(batcher.submit("a", 1), batcher.submit("a", 2), return_exceptions=True)
    assert all(isinstance(outcome, Internal) for outcome in outcomes)


async def test_a_caller_that_goes_away_leaves_the_others_answered() -> None:
    service = Service()
    service.release.clear()
    batcher = coalescer(service)
    leaving = asyncio.ensure_future(batcher.submit("a", 1))
    staying = asyncio.ensure_future(batcher.submit("a", 2))
    await asyncio.sleep(0.01)
    leaving.cancel()
    service.release.set()
    assert await staying == 20
    assert leaving.cancelled()
