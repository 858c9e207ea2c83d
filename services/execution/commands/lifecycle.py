"""Projection of worker lifecycle events onto command rows (data-model.md §5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kernel.errors import Internal, MeshError, Unavailable
from services.execution.commands.status import COMPLETED, FAILED, RUNNING, TERMINAL, CommandStatus, can_move
from services.execution.commands.store import CommandStore, LifecycleWrite
from services.execution.engine.records import EventType

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LifecycleUpdate:
    command_id: int
    event_id: int
    status: CommandStatus | None
    started: bool
    extends_lease: bool
    worker_id: str | None
    error: str | None


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
        status: CommandStatus | None
        if kind == EventType.COMMAND_STARTED:
            status, started, lease = RUNNING, True, True
        elif kind == EventType.COMMAND_HEARTBEAT:
            status, started, lease = None, False, True
        elif kind == EventType.COMMAND_COMPLETED:
            status, started, lease = COMPLETED, False, False
        elif kind == EventType.COMMAND_FAILED:
            status, started, lease = FAILED, False, False
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


def fold_lifecycle(updates: Iterable[tuple[int, LifecycleUpdate]]) -> list[LifecycleWrite]:
    """(execution_id, update) pairs, in the order they happened, folded into one write per command.

    Applying the write leaves a row as applying the updates one by one would: each status goes
    through the state machine (so the first terminal status wins over later ones), started/
    heartbeat/completion happen if any update does them, the lease is extended if any extending
    update came from the row's holder, the last error and the last event id stay.
    """
    folded: dict[tuple[int, int], LifecycleWrite] = {}
    for execution_id, update in updates:
        key = (execution_id, update.command_id)
        holders: tuple[str, ...] = (
            (update.worker_id,) if update.extends_lease and update.worker_id is not None else ()
        )
        unowned = update.extends_lease and update.worker_id is None
        before = folded.get(key)
        if before is None:
            status = update.status
        else:
            status = before.status
            if update.status is not None and (status is None or can_move(status, update.status)):
                status = update.status
            holders = before.lease_holders + tuple(h for h in holders if h not in before.lease_holders)
        folded[key] = LifecycleWrite(
            execution_id=execution_id,
            command_id=update.command_id,
            status=status,
            started=update.started or (before is not None and before.started),
            heartbeat=update.extends_lease or (before is not None and before.heartbeat),
            lease_holders=holders,
            lease_unowned=unowned or (before is not None and before.lease_unowned),
            completes=update.status in TERMINAL or (before is not None and before.completes),
            error=update.error if update.error is not None or before is None else before.error,
            latest_event_id=update.event_id,
        )
    return list(folded.values())


_Queued = tuple[int, Sequence[LifecycleUpdate], "asyncio.Future[None]"]


class LifecycleWriter:
    """Group commit of command-row projections: concurrent callers share one write.

    One write (one round trip, `CommandStore.write_lifecycle`) runs at a time; what arrives
    meanwhile goes into the next one, so a lone call is written at once and, under load, one write
    carries many calls' updates, folded per command in arrival order (`fold_lifecycle`). No task
    runs while nothing is queued.
    """

    def __init__(self, store: CommandStore, lease_seconds: float) -> None:
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
