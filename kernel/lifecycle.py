"""The one lifecycle of long-lived components: `async with`, or `start()` then `shutdown()`.

Every component that owns a task, a connection or a child process conforms to `Component`:
`async with component:` starts it and shuts it down on the way out, in reverse order when a
process enters several with one `contextlib.AsyncExitStack`; `shutdown()` is async and
idempotent, so an exit stack may call it after a failed start, or twice.

`Background` is a component whose work is one coroutine, `run()`, on its own task; `Periodic`
is a `Background` that calls one action every `interval` seconds.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from prometheus_client import Counter

log = logging.getLogger(__name__)

PERIODIC_ERRORS = Counter(
    "noetl_periodic_errors_total", "Runs of a periodic task that raised (the loop lives on)", ["task"]
)


class Component(Protocol):
    """Anything a process opens and must close: entered with `async with`, shut down once."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def shutdown(self) -> None: ...


class Lifecycle(abc.ABC):
    """`async with` for a class with `start()` (nothing by default) and an idempotent `shutdown()`."""

    async def start(self) -> None:  # noqa: B027 (a hook: most components have nothing to start)
        """Nothing to start by default: the constructor did all there was."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Releases what `start()` took; a second call does nothing."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()


@dataclass(frozen=True, slots=True)
class Crash:
    component: str
    error: BaseException


# One per event loop: tests run many hosts' components in one process, each loop its own.
_first_crash: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[Crash]] = (
    weakref.WeakKeyDictionary()
)


def first_crash() -> asyncio.Future[Crash]:
    """Resolves with the first `Background` of this event loop whose `run()` raised."""
    loop = asyncio.get_running_loop()
    crash = _first_crash.get(loop)
    if crash is None:
        crash = _first_crash[loop] = loop.create_future()
    return crash


class Background(Lifecycle):
    """Runs `run()` on a task from `start()` until `shutdown()`.

    `run()` returns once `stopping` is set (`stop()` sets it without waiting: what a signal
    handler calls); `shutdown()` sets it and waits for `run()` to return. An exception out of
    `run()` is logged when it happens and raised again by `shutdown()` (and `wait()`).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def run(self) -> None:
        """The component's work; returns soon after `stopping` is set."""

    async def start(self) -> None:
        if self._task is None and not self.stopping.is_set():
            self._task = asyncio.create_task(self.run(), name=self.name)
            self._task.add_done_callback(self._report_crash)

    def stop(self) -> None:
        self.stopping.set()

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        """Said when it happens, and told to the process's host (`first_crash`), which stops: a
        service whose feed or reaper is gone must not look alive to its supervisor."""
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s stopped on an error", self.name, exc_info=error)
            crash = first_crash()
            if not crash.done():
                crash.set_result(Crash(self.name, error))

    async def wait(self) -> None:
        """Until `run()` has returned (at once when it never started)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def shutdown(self) -> None:
        self.stop()
        await self.wait()

    async def pause(self, seconds: float) -> bool:
        """Sleeps up to `seconds`, less when stopped; True when the component is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        return self.stopping.is_set()


class Periodic(Background):
    """Calls `action` every `interval` seconds until shut down: one run at a time, never two.

    The interval counts from the end of one run to the start of the next. With `first_now` the
    first run is at start, otherwise one interval after it. A run that raises is logged and counted
    (`noetl_periodic_errors_total`); the next run comes as usual. `shutdown()` lets a run in
    progress finish and skips the wait for the next.
    """

    def __init__(
        self,
        name: str,
        action: Callable[[], Awaitable[object]],
        interval: float,
        *,
        first_now: bool = False,
    ) -> None:
        super().__init__(name)
        self._action = action
        self._interval = interval
        self._first_now = first_now
        PERIODIC_ERRORS.labels(name)

    async def run(self) -> None:
        if not self._first_now and await self.pause(self._interval):
            return
        while not self.stopping.is_set():
            try:
                await self._action()
            except Exception:
                PERIODIC_ERRORS.labels(self.name).inc()
                log.exception("%s run failed; trying again in %.0fs", self.name, self._interval)
            if await self.pause(self._interval):
                return
