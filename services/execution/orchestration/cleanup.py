"""Cancelling executions that never ended (http-api.md §4.12, `noetl cleanup`)."""

from __future__ import annotations

from kernel.errors import NotFound, Unprocessable
from kernel.sharding import owns
from language.statuses import CANCELLED
from services.execution.engine.records import EventType, NewEvent
from services.execution.orchestration.orchestrator import Orchestrator
from services.execution.orchestration.store import ExecutionStore

# make_interval() takes an int4; a start further back than that predates every execution anyway.
_MAX_MINUTES = 2**31 - 1


class Cleanup:
    def __init__(
        self, orchestrator: Orchestrator, store: ExecutionStore, shard_index: int, shard_count: int
    ) -> None:
        self._orchestrator = orchestrator
        self._store = store
        self._shard_index = shard_index
        self._shard_count = shard_count

    async def run(self, older_than_minutes: int, dry_run: bool) -> list[int]:
        """This shard's RUNNING executions started more than `older_than_minutes` ago, in id order:
        those cancelled, or with `dry_run` those that would be.

        Each gets `execution.cancelled` through the same path as an API cancel, so status, event
        stream and claims follow. One that has ended meanwhile (its log holds a terminal event)
        or never reached the log is left out.

        Raises:
            Unprocessable: `older_than_minutes` is below 1.
        """
        if older_than_minutes < 1:
            raise Unprocessable("older_than_minutes must be at least 1")
        found = [
            execution_id
            for execution_id in await self._store.running_started_before(
                min(older_than_minutes, _MAX_MINUTES)
            )
            if owns(execution_id, self._shard_index, self._shard_count)
        ]
        if dry_run:
            return found
        reason = f"Stuck execution older than {older_than_minutes} minutes"
        cancelled = []
        for execution_id in found:
            event = NewEvent(
                event_type=EventType.EXECUTION_CANCELLED,
                node_name="cleanup",
                status=CANCELLED,
                context={"reason": reason, "auto_cancelled": True, "cleanup_api": True},
                result={"status": CANCELLED},
                meta={"reason": reason, "auto_cancelled": True, "cleanup_api": True, "actionable": True},
            )
            try:
                if await self._orchestrator.close(execution_id, event, CANCELLED):
                    cancelled.append(execution_id)
            except NotFound:
                continue  # a projection row whose start never reached the event log
        return cancelled
