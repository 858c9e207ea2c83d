"""Nothing waits forever: the command reaper and the reconciler (data-model.md §6.4, dsl.md §17.7).

The reaper re-announces commands whose notification may have been lost, re-runs or fails
commands whose worker stopped heartbeating, and fails commands that ran past their step timeout
plus one lease. The reconciler re-drives every running execution now and then, so a trigger lost
between "events appended" and "pass run" is repaired. One replica at a time does each run: the
run holds a transaction-scoped advisory lock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter

from kernel import jsonutil
from kernel.errors import FailedPrecondition, MeshError
from kernel.lifecycle import Lifecycle, Periodic
from services.execution.commands.lifecycle import LifecycleUpdate, fold_lifecycle
from services.execution.commands.status import FAILED
from services.execution.commands.store import CommandRow, CommandStore, Overdue
from services.execution.engine.commands import retry_attempts
from services.execution.engine.records import EventType, NewEvent
from services.execution.orchestration.orchestrator import Orchestrator
from services.execution.orchestration.projector import Projector
from services.execution.orchestration.store import ExecutionStore
from services.execution.ports import EventsPort, Notification

log = logging.getLogger(__name__)

REAPER_LOCK_KEY = 0x7265617065  # "reape"
ACTIONS = Counter("noetl_command_reaper_total", "Reaper actions", ["action"])
for _action in ("republished", "retried", "failed_lease", "failed_timeout", "skipped_ended"):
    ACTIONS.labels(_action)
RECONCILE_ERRORS = Counter("noetl_reconcile_errors_total", "Executions a reconciler run had to skip")


class Publisher(Protocol):
    """Publishes one command notification on the bus, de-duplicated by `message_id`."""

    async def publish(self, notification: Notification, message_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ReaperSettings:
    enabled: bool = True
    interval_seconds: float = 60.0
    max_per_run: int = 100
    pending_retry_seconds: float = 60.0
    lease_seconds: float = 120.0
    reconcile_seconds: float = 8.0


class Reaper(Lifecycle):
    """Two periodic tasks, the reaper and the reconciler, started with the component."""

    def __init__(
        self,
        *,
        store: ExecutionStore,
        commands: CommandStore,
        events: EventsPort,
        orchestrator: Orchestrator,
        projector: Projector,
        publisher: Publisher,
        settings: ReaperSettings,
    ) -> None:
        self._store = store
        self._commands = commands
        self._events = events
        self._orchestrator = orchestrator
        self._projector = projector
        self._publisher = publisher
        self._settings = settings
        self._reaping = Periodic("reaper", self.reap_once, settings.interval_seconds)
        self._reconciling = Periodic("reconciler", self.reconcile_once, settings.reconcile_seconds)

    async def start(self) -> None:
        if self._settings.enabled:
            await self._reaping.start()
            await self._reconciling.start()

    async def shutdown(self) -> None:
        await asyncio.gather(self._reaping.shutdown(), self._reconciling.shutdown())

    async def reap_once(self) -> int:
        """One reaper run; returns how many commands it acted on (0 when another replica runs)."""
        async with self._commands.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", REAPER_LOCK_KEY):
                return 0
            overdue = await self._commands.overdue(
                pending_after=self._settings.pending_retry_seconds,
                lease_seconds=self._settings.lease_seconds,
                limit=self._settings.max_per_run,
            )
            for item in overdue:
                try:
                    await self._handle(item)
                except MeshError as exc:
                    log.warning("reaper could not handle command %s: %s", item.row.command_id, exc.detail)
        return len(overdue)

    async def reconcile_once(self) -> int:
        """Heals and re-drives every running execution with one pass (a no-op where nothing is due).

        One by one, each on its own: an execution whose log cannot be read or whose pass fails is
        logged and skipped, never stopping the others."""
        issued = 0
        for execution_id in await self._store.running_executions(limit=10_000):
            if self._reconciling.stopping.is_set():
                break
            try:
                await self._projector.heal(execution_id)
                issued += await self._orchestrator.advance(execution_id, [EventType.COMMAND_COMPLETED])
            except Exception as exc:
                RECONCILE_ERRORS.inc()
                log.warning("reconciler: execution %s skipped this round: %s", execution_id, exc)
        return issued

    async def _handle(self, item: Overdue) -> None:
        row = item.row
        if await self._ended_in_log(row):
            # Its row lags the log (the feed has not projected the end yet, e.g. while the shard
            # restarts): re-running or failing it now would end a command twice.
            ACTIONS.labels("skipped_ended").inc()
            return
        if item.case == "pending":
            await self._announce(row, f"reaper-{row.command_id}-{row.attempt}-pending")
            await self._commands.touch(row.execution_id, row.command_id)
            ACTIONS.labels("republished").inc()
        elif item.case == "timeout":
            spec = _context(row).get("spec")
            timeout = spec.get("timeout") if isinstance(spec, dict) else None
            await self._fail(row, f"timeout: step '{row.step}' exceeded {timeout}s", "timeout")
            ACTIONS.labels("failed_timeout").inc()
        else:
            allowed = retry_attempts(_context(row).get("tool_config") or {})
            if allowed is not None and row.attempt < allowed:
                attempt = await self._commands.next_attempt(row.execution_id, row.command_id)
                await self._announce(row, f"reaper-{row.command_id}-{attempt}")
                ACTIONS.labels("retried").inc()
            else:
                await self._fail(
                    row, f"lease_expired: worker {row.worker_id} stopped heartbeating", "lease_expired"
                )
                ACTIONS.labels("failed_lease").inc()

    async def _ended_in_log(self, row: CommandRow) -> bool:
        tracked = await self._orchestrator.state_of(row.execution_id)
        if tracked is None or tracked.state is None:
            return False
        command = tracked.state.commands.get(row.command_id)
        return command is not None and command.terminal

    async def _announce(self, row: CommandRow, message_id: str) -> None:
        notification = await self._orchestrator.notification(
            row.execution_id, row.command_id, row.step, row.event_id
        )
        if notification is not None:
            await self._publisher.publish(notification, message_id)

    async def _fail(self, row: CommandRow, error: str, reason: str) -> None:
        payload = {"command_id": row.command_id, "error": error}
        event = NewEvent(
            event_type=EventType.COMMAND_FAILED,
            node_name=row.step,
            status="FAILED",
            context=payload,
            result={"status": "FAILED", "context": payload},
            meta={"command_id": row.command_id, "reason": reason, "actionable": True, "emitted_by": "reaper"},
            error=error,
            command_id=row.command_id,
        )
        try:
            appended = await self._events.append(
                row.execution_id,
                [event],
                catalog_id=row.catalog_id,
                parent_execution_id=None,
                notifications={},
                require_open=True,
            )
        except FailedPrecondition:
            return  # the execution ended meanwhile
        update = LifecycleUpdate(row.command_id, appended.event_ids[0], FAILED, False, False, None, error)
        await self._commands.write_lifecycle(
            fold_lifecycle([(row.execution_id, update)]), self._settings.lease_seconds
        )
        await self._orchestrator.advance(row.execution_id, [EventType.COMMAND_FAILED])


def _context(row: CommandRow) -> dict[str, Any]:
    value = jsonutil.loads(row.context)
    return value if isinstance(value, dict) else {}
