"""kernel/failpoints: parsing, which hit fires, and `hold` for in-process tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from kernel import failpoints


@pytest.fixture(autouse=True)
def unarmed() -> Iterator[None]:
    failpoints.disarm()
    yield
    failpoints.disarm()


@pytest.mark.parametrize("spec", ["p=crash", "=raise", "p=raise@x", "p"])
def test_a_malformed_spec_is_refused_by_name(spec: str) -> None:
    with pytest.raises(ValueError, match="malformed failpoint"):
        failpoints.arm(spec)


def test_raise_fires_on_the_named_hit_only() -> None:
    failpoints.arm("p=raise@2")
    failpoints.hit("p")
    with pytest.raises(failpoints.FailpointError, match="failpoint p"):
        failpoints.hit("p")
    failpoints.hit("p")


async def test_hold_waits_at_an_async_point_until_released() -> None:
    failpoints.arm("p=hold")
    failpoints.hit("p")  # a synchronous point cannot hold: it counts and goes on
    failpoints.arm("p=hold")
    held = asyncio.ensure_future(failpoints.pause("p"))
    await asyncio.sleep(0.05)
    assert not held.done()
    failpoints.release("p")
    await asyncio.wait_for(held, 1)


async def test_raise_fires_at_an_async_point_too() -> None:
    failpoints.arm("p=raise")
    with pytest.raises(failpoints.FailpointError):
        await failpoints.pause("p")


async def test_disarm_lets_a_held_task_go() -> None:
    failpoints.arm("p=hold")
    held = asyncio.ensure_future(failpoints.pause("p"))
    await asyncio.sleep(0.05)
    failpoints.disarm()
    await asyncio.wait_for(held, 1)
    await failpoints.pause("p")  # unarmed: passes at once
