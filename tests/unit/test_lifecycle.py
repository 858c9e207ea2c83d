"""The one lifecycle primitive: `Periodic` and `Background` (kernel/lifecycle.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from kernel.lifecycle import PERIODIC_ERRORS, Background, Crash, Periodic, first_crash
from tests.helpers.waiting import wait_for


class Calls:
    """An action that records its runs, can raise on chosen runs and can take its time."""

    def __init__(self, *, raise_on: frozenset[int] = frozenset(), takes: float = 0.0) -> None:
        self.runs = 0
        self.finished = 0
        self.active = 0
        self.most_active = 0
        self._raise_on = raise_on
        self._takes = takes

    async def __call__(self) -> None:
        self.runs += 1
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            if self._takes:
                await asyncio.sleep(self._takes)
            if self.runs in self._raise_on:
                raise RuntimeError(f"run {self.runs} fails")
        finally:
            self.active -= 1
        self.finished += 1


async def at_least(calls: Calls, runs: int) -> bool:
    return calls.runs >= runs


async def test_shutdown_ends_the_wait_at_once_and_the_first_run_waits_an_interval() -> None:
    calls = Calls()
    periodic = Periodic("test-idle", calls, 60.0)
    await periodic.start()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await periodic.shutdown()
    assert time.monotonic() - started < 0.5
    assert calls.runs == 0


async def test_first_now_runs_at_start() -> None:
    calls = Calls()
    async with Periodic("test-first-now", calls, 60.0, first_now=True):
        await wait_for(lambda: at_least(calls, 1), what="the first run at start", within=2.0)
    assert calls.runs == 1


async def test_a_failing_run_is_logged_and_counted_and_the_loop_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors = PERIODIC_ERRORS.labels("test-failing")
    before = errors._value.get()
    calls = Calls(raise_on=frozenset({1, 2}))
    async with Periodic("test-failing", calls, 0.01):
        await wait_for(lambda: at_least(calls, 4), what="runs after two failures", within=5.0)
    assert errors._value.get() - before == 2
    assert calls.finished >= 2
    assert "test-failing run failed" in caplog.text


async def test_runs_never_overlap_and_shutdown_lets_a_run_finish() -> None:
    calls = Calls(takes=0.1)
    async with Periodic("test-slow", calls, 0.001, first_now=True):
        await wait_for(lambda: at_least(calls, 3), what="three slow runs", within=5.0)
    assert calls.most_active == 1
    # The run under way when the stop came finished; none started after it.
    assert calls.finished == calls.runs


async def test_shutdown_is_idempotent_and_fine_before_start() -> None:
    calls = Calls()
    periodic = Periodic("test-twice", calls, 60.0)
    await periodic.shutdown()
    await periodic.start()  # a stopped component does not start again
    await periodic.shutdown()
    assert calls.runs == 0


class Crashes(Background):
    async def run(self) -> None:
        raise ValueError("broken")


async def test_an_error_out_of_run_is_logged_at_once_and_raised_by_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crashes = Crashes("test-crash")
    await crashes.start()

    async def logged() -> bool:
        return "test-crash stopped on an error" in caplog.text

    await wait_for(logged, what="the crash logged before any shutdown", within=2.0)
    with pytest.raises(ValueError, match="broken"):
        await crashes.shutdown()


async def test_a_crash_is_told_to_the_host_once_and_names_the_component() -> None:
    class Dies(Background):
        async def run(self) -> None:
            raise RuntimeError(f"{self.name} failed")

    async def scenario() -> Crash:
        crash = first_crash()
        first, second = Dies("first-to-die"), Dies("second-to-die")
        await first.start()
        found = await asyncio.wait_for(asyncio.shield(crash), timeout=2)
        await second.start()
        for component in (first, second):
            with contextlib.suppress(RuntimeError):
                await component.shutdown()
        assert crash.result() is found and first_crash() is crash
        return found

    # A loop of its own: each event loop has its own first crash, and this session's may have one.
    found = await asyncio.to_thread(asyncio.run, scenario())
    assert found.component == "first-to-die" and str(found.error) == "first-to-die failed"
