"""Read models of an execution: summary (lists, detail) and `/status` (dsl.md §15)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kernel.errors import NotFound
from language.statuses import RUNNING
from services.execution.commands.store import CommandStore
from services.execution.engine.records import EventRecord
from services.execution.engine.status import fold
from services.execution.orchestration.orchestrator import Orchestrator
from services.execution.orchestration.store import ExecutionStore
from services.execution.ports import CatalogPort, EventsPort


@dataclass(frozen=True, slots=True)
class Summary:
    execution_id: int
    catalog_id: int
    path: str
    version: int
    status: str
    start_time: datetime
    end_time: datetime | None
    error: str | None
    parent_execution_id: int | None


@dataclass(frozen=True, slots=True)
class StatusView:
    execution_id: int
    current_step: str | None
    completed_steps: list[str]
    completed: bool
    failed: bool
    completion_inferred: bool
    variables: dict[str, Any]
    start_time: datetime
    end_time: datetime | None
    error: str | None


class Queries:
    def __init__(
        self,
        store: ExecutionStore,
        commands: CommandStore,
        events: EventsPort,
        catalog: CatalogPort,
        orchestrator: Orchestrator,
    ) -> None:
        self._store = store
        self._commands = commands
        self._events = events
        self._catalog = catalog
        self._orchestrator = orchestrator

    async def _log(self, execution_id: int, missing: str) -> list[EventRecord]:
        records = await self._events.since(execution_id, None)
        if not records:
            raise NotFound(missing)
        return records

    async def summary(self, execution_id: int, *, seen_event_id: int | None = None) -> Summary:
        """Raises NotFound ("Execution <id> not found") when the execution has no events. Read
        from the orchestrator's synced state like `status`: a detail view polled while the run
        goes on costs an incremental log read, not the whole log and a catalog look-up — and no
        read at all when the caller has seen the log's newest event and the state has folded it."""
        tracked = await self._orchestrator.state_of(execution_id, seen_event_id=seen_event_id)
        if tracked is not None and tracked.state is not None:
            entry = tracked.entry
            facts = tracked.status
            catalog_id, path, version = entry.catalog_id, entry.path, entry.version
            parent_execution_id = tracked.parent_execution_id
        else:
            records = await self._log(execution_id, f"Execution {execution_id} not found")
            context = records[0].context if isinstance(records[0].context, dict) else {}
            catalog_id = int(context.get("catalog_id") or 0)
            path, version = str(context.get("path") or "unknown"), 0
            try:
                resolved = await self._catalog.resolve(path=None, catalog_id=catalog_id, version=None)
                path, version = resolved.path, resolved.version
            except NotFound:
                path = "unknown"
            facts = fold(records)
            parent_execution_id = await self._store.parent_of(execution_id)
        terminal, status, first, newest = facts.terminal, facts.status(), facts.first, facts.newest
        assert first is not None and newest is not None  # a tracked state or a log has a root
        return Summary(
            execution_id=execution_id,
            catalog_id=catalog_id,
            path=path,
            version=version,
            status=status,
            start_time=first.created_at,
            end_time=terminal.created_at if terminal is not None and status != RUNNING else None,
            error=terminal.error if terminal is not None else newest.error,
            parent_execution_id=parent_execution_id,
        )

    async def recent(self, limit: int, offset: int) -> list[Summary]:
        """Executions newest first, from the status projection (kept by the orchestrator, so a
        failed command shows as FAILED only once the run ends; the detail route reads the log)."""
        paths: dict[int, tuple[str, int]] = {}
        summaries = []
        for row in await self._store.recent(limit, offset):
            if row.catalog_id not in paths:
                try:
                    entry = await self._catalog.resolve(path=None, catalog_id=row.catalog_id, version=None)
                    paths[row.catalog_id] = (entry.path, entry.version)
                except NotFound:
                    paths[row.catalog_id] = ("unknown", 0)
            path, version = paths[row.catalog_id]
            summaries.append(
                Summary(
                    execution_id=row.execution_id,
                    catalog_id=row.catalog_id,
                    path=path,
                    version=version,
                    status=row.status,
                    start_time=row.start_time or datetime.now(tz=UTC),
                    end_time=row.end_time,
                    error=row.error,
                    parent_execution_id=row.parent_execution_id,
                )
            )
        return summaries

    async def status(self, execution_id: int) -> StatusView:
        """Raises NotFound ("Execution not found") for an unknown execution. Read from the
        orchestrator's synced state (its fold of the log); the log itself only for an execution
        the orchestrator cannot track (no root event)."""
        tracked = await self._orchestrator.state_of(execution_id)
        if tracked is not None and tracked.state is not None:
            facts = tracked.status
            variables = tracked.state.flat_context()
        else:
            facts = fold(await self._log(execution_id, "Execution not found"))
            variables = {}
        # Read after the state: the open count is never older than the events it is judged with.
        # A status poll of a running step (the common one) needs no count and costs no query.
        open_commands = await self._commands.open_commands(execution_id) if facts.completion_inferable else 0
        flags = facts.flags(has_open_commands=open_commands > 0)
        terminal, newest, first = facts.terminal, facts.newest, facts.first
        assert first is not None and newest is not None  # a tracked state or a log has a root
        ended = flags.completed or flags.failed
        return StatusView(
            execution_id=execution_id,
            current_step=flags.current_step,
            completed_steps=list(flags.completed_steps),
            completed=flags.completed,
            failed=flags.failed,
            completion_inferred=flags.completion_inferred,
            variables=variables,
            start_time=first.created_at,
            end_time=(terminal.created_at if terminal is not None else newest.created_at) if ended else None,
            error=terminal.error if terminal is not None else None,
        )
