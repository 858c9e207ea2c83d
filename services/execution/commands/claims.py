"""The claim protocol (data-model.md §6): who runs a command, and for how long."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from prometheus_client import Counter

from kernel.errors import Conflict, FailedPrecondition, NotFound
from kernel.timeutil import utcnow
from services.execution.commands.status import CLAIMED, HELD, RUNNING, can_move
from services.execution.commands.store import CommandRow, CommandStore
from services.execution.engine.records import EventType, NewEvent
from services.execution.orchestration.orchestrator import Orchestrator
from services.execution.orchestration.projector import Projector
from services.execution.pools.store import PoolStore
from services.execution.ports import Appended, EventsPort

CLAIMS = Counter("noetl_command_claims_total", "Claim outcomes", ["outcome"])
for _outcome in ("claimed", "idempotent", "reclaimed", "conflict", "terminal", "not_found"):
    CLAIMS.labels(_outcome)

_COMMAND_TERMINAL = {"code": "already_terminal", "message": "Command already reached terminal state"}
_EXECUTION_TERMINAL = {"code": "already_terminal", "message": "Execution already reached terminal state"}
# A lookup without the execution id has no pass to wait for: these pauses cover the few
# milliseconds by which a notified worker can be ahead of the command row.
_UNROUTED_LOOKUP_DELAYS = (0.01, 0.03, 0.06)


@dataclass(frozen=True, slots=True)
class ClaimSettings:
    lease_seconds: float = 120.0
    retry_after_seconds: int = 2
    worker_heartbeat_stale_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Claimed:
    command: CommandRow
    claim_event_id: int  # 0 when the same worker re-claims
    appended: Appended | None = None  # the claim's events; None when the same worker re-claims


class Claims:
    def __init__(
        self,
        store: CommandStore,
        events: EventsPort,
        orchestrator: Orchestrator,
        projector: Projector,
        *,
        registry: PoolStore,
        settings: ClaimSettings,
    ) -> None:
        self._store = store
        # The worker-pool registry is cluster-wide: with per-shard databases it is not in `store`'s.
        self._registry = registry
        self._events = events
        self._orchestrator = orchestrator
        self._projector = projector
        self._settings = settings

    async def find(self, event_id: int, execution_id: int | None) -> CommandRow:
        """Raises NotFound for an unknown command event id."""
        row = await self._store.command_by_event(event_id, execution_id)
        if row is None and execution_id is not None:
            # The pass that issued it may still be writing its rows: wait for those once.
            await self._orchestrator.rows_written(execution_id)
            row = await self._store.command_by_event(event_id, execution_id)
            if row is None and await self._projector.heal_command(execution_id, event_id):
                # Issued in the log, but its row was never written (a crash or a lost connection
                # right after the append): projected now, so the command still runs.
                row = await self._store.command_by_event(event_id, execution_id)
        elif row is None:
            # HTTP workers claim by event id alone (http-api.md §6.2).
            for delay in _UNROUTED_LOOKUP_DELAYS:
                await asyncio.sleep(delay)
                row = await self._store.command_by_event(event_id, None)
                if row is not None:
                    break
        if row is None:
            raise NotFound(f"command not found: {event_id}")
        return row

    async def claim(
        self,
        event_id: int,
        execution_id: int | None,
        worker_id: str,
        locality: Any,
        *,
        start: bool = False,
        command_id: int | None = None,
    ) -> Claimed:
        """Claims a command; with `start`, also records its `command.started` in the same append.
        With `command_id` and `execution_id` (what the notification named), the row is locked
        at once and looked up by event id only when it is not there yet.

        Raises:
            NotFound: unknown command event id.
            Conflict: `active_claim` (with Retry-After) or `already_terminal`.
        """
        claimed = None
        if execution_id is not None and command_id is not None:
            claimed = await self._claim_command(
                execution_id, command_id, event_id, worker_id, locality, start=start
            )
        if claimed is None:
            try:
                found = await self.find(event_id, execution_id)
            except NotFound:
                CLAIMS.labels("not_found").inc()
                raise
            claimed = await self._claim_command(
                found.execution_id, found.command_id, event_id, worker_id, locality, start=start
            )
            if claimed is None:  # gone between the look-up and the lock: nothing a claim can hold
                CLAIMS.labels("not_found").inc()
                raise NotFound(f"command not found: {event_id}")
        if claimed.appended is not None:
            # The orchestrator's cached state continues from these events: no log read at the next pass.
            await self._orchestrator.absorb(claimed.command.execution_id, claimed.appended)
        return claimed

    async def _claim_command(
        self, execution_id: int, command_id: int, event_id: int, worker_id: str, locality: Any, *, start: bool
    ) -> Claimed | None:
        """None when the command has no row for `event_id` (yet)."""
        async with self._projector.claiming(command_id):
            claimed = await self._claim(execution_id, command_id, event_id, worker_id, locality, start=start)
            if claimed is not None and claimed.appended is not None:
                # Committed: the row holds what these events project to, so their feed copies
                # cost no write.
                self._projector.written(claimed.appended.event_ids)
        return claimed

    async def _claim(
        self, execution_id: int, command_id: int, event_id: int, worker_id: str, locality: Any, *, start: bool
    ) -> Claimed | None:
        async with self._store.pool.acquire() as conn, conn.transaction():
            locked, row = await self._store.lock_command(conn, execution_id, command_id)
            if not locked:
                CLAIMS.labels("conflict").inc()
                raise Conflict(
                    {"code": "active_claim", "message": "Command is being claimed"},
                    retry_after=self._settings.retry_after_seconds,
                )
            if row is None or row.event_id != event_id:
                return None
            target = RUNNING if start else CLAIMED
            if not can_move(row.status, target):
                CLAIMS.labels("terminal").inc()
                raise Conflict(_COMMAND_TERMINAL)
            reclaim: dict[str, Any] = {}
            if row.status in HELD and row.worker_id:
                if row.worker_id == worker_id:
                    CLAIMS.labels("idempotent").inc()
                    return Claimed(row, 0)
                reason = await self._stale_reason(row, row.worker_id)
                if reason is None:
                    CLAIMS.labels("conflict").inc()
                    raise Conflict(
                        {"code": "active_claim", "worker_id": row.worker_id},
                        retry_after=self._settings.retry_after_seconds,
                    )
                reclaim = {
                    "reclaimed": True,
                    "reclaimed_from_worker": row.worker_id,
                    "reclaimed_reason": reason,
                }
            meta: dict[str, Any] = {
                "command_id": row.command_id,
                "worker_id": worker_id,
                "actionable": False,
                "informative": True,
                **reclaim,
            }
            if isinstance(locality, dict):
                meta.update(locality)
            claimed = NewEvent(
                event_type=EventType.COMMAND_CLAIMED,
                node_name=row.step,
                status="RUNNING",
                context={"command_id": row.command_id, "worker_id": worker_id},
                result={
                    "status": "RUNNING",
                    "context": {"command_id": row.command_id, "worker_id": worker_id},
                },
                meta=meta,
                command_id=row.command_id,
            )
            events = [claimed]
            if start:
                payload = {"command_id": row.command_id}
                events.append(
                    NewEvent(
                        event_type=EventType.COMMAND_STARTED,
                        node_name=row.step,
                        status="RUNNING",
                        context=payload,
                        result={"status": "RUNNING", "context": payload},
                        meta={
                            "command_id": row.command_id,
                            "worker_id": worker_id,
                            "actionable": True,
                            "informative": True,
                        },
                        command_id=row.command_id,
                    )
                )
            try:
                appended = await self._events.append(
                    row.execution_id,
                    events,
                    catalog_id=row.catalog_id,
                    parent_execution_id=None,
                    notifications={},
                    require_open=True,
                )
            except FailedPrecondition:
                CLAIMS.labels("terminal").inc()
                raise Conflict(_EXECUTION_TERMINAL) from None
            claim_event_id = appended.event_ids[0]
            if not await self._store.mark_claimed(
                conn, row, worker_id, self._settings.lease_seconds, appended.event_ids[-1], started=start
            ):
                # The worker's outcome was projected while the claim was being appended.
                CLAIMS.labels("terminal").inc()
                raise Conflict(_COMMAND_TERMINAL)
        CLAIMS.labels("reclaimed" if reclaim else "claimed").inc()
        return Claimed(replace(row, status=target, worker_id=worker_id), claim_event_id, appended)

    async def _stale_reason(self, row: CommandRow, holder: str) -> str | None:
        """Why another worker may take this claim over (data-model.md §6.2); None while it is live."""
        now = utcnow()
        if row.lease_until is None or now >= row.lease_until:
            return "lease_expired"
        lease = timedelta(seconds=self._settings.lease_seconds)
        if row.claimed_at is None or now < row.claimed_at + lease:
            return None
        # Heartbeats have kept the lease alive past its first term: the registry tells a worker
        # that is gone (deregistered, or silent) from one that is busy. An unregistered holder
        # keeps its lease.
        standing = await self._registry.worker_standing(holder)
        if standing is None:
            return None
        status, heartbeat = standing
        if status != "ready":
            return "worker_inactive"
        if now - heartbeat >= timedelta(seconds=self._settings.worker_heartbeat_stale_seconds):
            return "worker_heartbeat_stale"
        return None
