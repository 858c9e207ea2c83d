"""Group commit for appends: concurrent requests share one transaction.

Each request waits on a future; a small number of commit loops take everything queued so far
(up to `max_jobs`) and append it with `EventStore.append_batch`. Under load one transaction
carries many events; when idle, a lone request is committed at once. A transaction that fails
as a whole is retried job by job, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from kernel.db import LOST_CONNECTION, with_retry
from kernel.errors import Internal, MeshError
from kernel.lifecycle import Lifecycle
from services.events.chain import AppendJob, AppendOutcome
from services.events.store import EventStore

log = logging.getLogger(__name__)

_Pending = tuple[AppendJob, "asyncio.Future[AppendOutcome]"]
# A transaction that failed as a whole, refused by Postgres or with its connection lost.
_DATABASE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *LOST_CONNECTION)


class AppendBatcher(Lifecycle):
    """Lifecycle: `start()`, `append()` from any task, idempotent `shutdown()` (drains the queue)."""

    def __init__(
        self, store: EventStore, mint: Callable[[], int], *, loops: int = 2, max_jobs: int = 256
    ) -> None:
        self._store = store
        self._mint = mint
        self._loops = loops
        self._max_jobs = max_jobs
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"append-commit-{i}") for i in range(self._loops)
        ]

    async def append(self, job: AppendJob) -> AppendOutcome:
        """Raises the job's MeshError (NotFound, FailedPrecondition), or Internal on a database failure."""
        if not self._tasks:
            raise Internal("the event log is not accepting appends")
        future: asyncio.Future[AppendOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_jobs and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    self._queue.put_nowait(None)  # let the other loops see the stop too
                    break
                batch.append(item)
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        jobs = [job for job, _ in batch]
        try:
            results = await with_retry(lambda: self._store.append_batch(jobs, self._mint))
        except MeshError as exc:
            # No connection to be had (a saturated pool): the whole batch hears it, and this
            # commit loop lives on. A copy each: one exception raised in many tasks piles up tracebacks.
            results = [type(exc)(exc.detail, retry_after=exc.retry_after) for _ in batch]
        except _DATABASE_ERRORS as exc:
            if len(batch) > 1:
                for item in batch:  # isolate the request that broke the transaction
                    await self._commit([item])
                return
            log.exception("append to execution %s failed", jobs[0].execution_id)
            results = [Internal(f"event append failed: {exc}")]
        except Exception as exc:
            # Whatever else: its callers hear it and this loop lives on. A dead loop would leave
            # every later append queued with nobody to commit it.
            log.exception("append batch of %d failed", len(batch))
            results = [Internal(f"event append failed: {exc}") for _ in batch]
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away
                continue
            if isinstance(result, MeshError):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def shutdown(self) -> None:
        if not self._tasks:
            return
        for _ in self._tasks:
            self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks)
        self._tasks = []
