"""Projection of worker lifecycle events onto command rows (data-model.md §5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.common.errors import Internal, MeshError, Unavailable
from services.execution.engine.records import EventType
from services.execution.store import ExecutionStore, LifecycleUpdate, fold_lifecycle

log = logging.getLogger(__name__)

_Queued = tuple[int, Sequence[LifecycleUpdate], "asyncio.Future[None]"]


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    event_id: int
    event_type: str
    command_id: int | None
    worker_id: str | None
    error: str | None


def updates_for(events: Iterable[LifecycleEvent]) -> list[LifecycleUpdate]:
    updates: list[LifecycleUpdate] = []
    for event in events:
        if event.command_id is None:
            continue
        kind = event.event_type
        if kind == EventType.COMMAND_STARTED:
            status, started, lease = "RUNNING", True, True
        elif kind == EventType.COMMAND_HEARTBEAT:
            status, started, lease = None, False, True
        elif kind == EventType.COMMAND_COMPLETED:
            status, started, lease = "COMPLETED", False, False
        elif kind == EventType.COMMAND_FAILED:
            status, started, lease = "FAILED", False, False
        else:
            continue
        updates.append(
            LifecycleUpdate(
                command_id=event.command_id,
                event_id=event.event_id,
                status=status,
                started=started,
                extends_lease=lease,
                worker_id=event.worker_id,
                error=event.error if kind == EventType.COMMAND_FAILED else None,
            )
        )
    return updates


class LifecycleWriter:
    """Group commit of command-row projections: concurrent `Advance` calls share one write.

    One write (one round trip, `ExecutionStore.write_lifecycle`) runs at a time; what arrives
    meanwhile goes into the next one, so a lone call is written at once and, under load, one write
    carries many calls' updates, folded per command in arrival order (`fold_lifecycle`). No task
    runs while nothing is queued.
    """

    def __init__(self, store: ExecutionStore, lease_seconds: float) -> None:
        self._store = store
        self._lease = lease_seconds
        self._queue: list[_Queued] = []
        self._writing: asyncio.Task[None] | None = None

    async def apply(self, execution_id: int, updates: Sequence[LifecycleUpdate]) -> None:
        """Returns once the rows are written; raises the write's error (Internal for a database one)."""
        if not updates:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((execution_id, updates, done))
        if self._writing is None:
            self._writing = asyncio.create_task(self._drain(), name="command-lifecycle-writer")
        await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                error: MeshError | None = None
                try:
                    writes = fold_lifecycle(
                        (execution_id, update) for execution_id, updates, _ in batch for update in updates
                    )
                    await self._store.write_lifecycle(writes, self._lease)
                except MeshError as exc:
                    error = exc
                except asyncio.CancelledError:
                    # Every queued caller has been answered: nothing of theirs may be written later.
                    abandoned, self._queue = batch + self._queue, []
                    for _, _, done in abandoned:
                        if not done.done():
                            done.set_exception(
                                Unavailable("the execution service is stopping", retry_after=1)
                            )
                    raise
                except Exception as exc:
                    log.exception("command lifecycle write failed")
                    error = Internal(str(exc) or type(exc).__name__)
                for _, _, done in batch:
                    if done.done():  # the caller went away
                        continue
                    if error is None:
                        done.set_result(None)
                    else:  # a copy each: one exception object raised in many tasks piles up tracebacks
                        done.set_exception(type(error)(error.detail, retry_after=error.retry_after))
        finally:
            self._writing = None
