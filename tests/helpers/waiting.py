"""Waiting for a condition instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    condition: Callable[[], Awaitable[T | None]], *, what: str, within: float = 10.0, interval: float = 0.02
) -> T:
    """Polls `condition` until it returns something other than None or False, and returns that.

    Raises:
        AssertionError: naming `what` and the last value seen, when `within` seconds pass first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await condition()
        if value is not None and value is not False:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; last value: {value!r}")
        await asyncio.sleep(interval)


async def wait_until(
    condition: Callable[[], bool], *, what: str, within: float = 10.0, interval: float = 0.02
) -> None:
    """`wait_for` for a condition that needs no await (a flag, a file, a process).

    Raises:
        AssertionError: naming `what`, when `within` seconds pass first.
    """

    async def holds() -> bool:
        return condition()

    await wait_for(holds, what=what, within=within, interval=interval)
