"""SQL of `noetl.command`, the command queue (data-model.md §3.5, §5, §6).

Every command status in these statements comes from the state machine (`status.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from kernel.db import Connection, with_retry
from kernel.timeutil import as_utc
from services.execution.commands.status import (
    CLAIMED,
    HELD,
    INITIAL,
    OPEN,
    RUNNING,
    TERMINAL,
    CommandStatus,
    sources,
    sql_list,
)


@dataclass(frozen=True, slots=True)
class CommandRow:
    command_id: int
    event_id: int
    execution_id: int
    catalog_id: int
    step: str
    tool_kind: str
    status: CommandStatus
    worker_id: str | None
    claimed_at: datetime | None
    lease_until: datetime | None
    attempt: int
    context: str | None  # JSON text
    meta: str | None


@dataclass(frozen=True, slots=True)
class NewCommandRow:
    command_id: int
    event_id: int
    step: str
    tool_kind: str
    context: dict[str, Any]
    meta: dict[str, Any]
    iter_index: int | None
    prev_event_id: int | None


@dataclass(frozen=True, slots=True)
class Overdue:
    """A command the reaper must look at (data-model.md §6.4)."""

    row: CommandRow
    case: str  # "pending" | "stale" | "timeout"


@dataclass(frozen=True, slots=True)
class LifecycleWrite:
    """What a series of lifecycle updates does to one command row, as one row of one statement."""

    execution_id: int
    command_id: int
    status: CommandStatus | None  # the status to set unless the row is terminal already
    started: bool
    heartbeat: bool
    lease_holders: tuple[str, ...]  # the lease is extended when the row's worker_id is one of them
    lease_unowned: bool  # ... or when the row has none and an extending update had none either
    completes: bool
    error: str | None
    latest_event_id: int


_INSERT_COMMANDS = f"""
INSERT INTO noetl.command (command_id, event_id, execution_id, catalog_id, parent_execution_id,
    step_name, tool_kind, status, context, meta, iter_index, prev_event_id, attempt)
SELECT c.command_id, c.event_id, $1, $2, $3, c.step, c.tool_kind, '{INITIAL.value}', c.context::jsonb,
    c.meta::jsonb, c.iter_index, c.prev_event_id, 1
FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[],
    $11::bigint[]) AS c(command_id, event_id, step, tool_kind, context, meta, iter_index, prev_event_id)
ON CONFLICT DO NOTHING
"""
_COMMAND_COLUMNS = (
    "command_id, event_id, execution_id, catalog_id, step_name, tool_kind, status, worker_id, claimed_at, "
    "lease_until, attempt, context::text, meta::text"
)
# A claim writes only over a status the state machine lets it leave (a row that went terminal
# while the claim was appending its event stays terminal).
_MARK_CLAIMED = f"""
UPDATE noetl.command SET status = CASE WHEN $6 THEN '{RUNNING.value}' ELSE '{CLAIMED.value}' END, worker_id = $3,
    claimed_at = now(), started_at = CASE WHEN $6 THEN now() ELSE started_at END,
    lease_until = now() + make_interval(secs => $4), latest_event_id = $5, updated_at = now()
WHERE execution_id = $1 AND command_id = $2
  AND CASE WHEN $6 THEN status IN ({sql_list(sources(RUNNING))}) ELSE status IN ({sql_list(sources(CLAIMED))}) END
"""
# `noetl.claim_lock` (schema.sql): the lock, then the row read after it was granted (the
# columns of `_COMMAND_COLUMNS`, in order, after `locked`).
_CLAIM_LOCK = """
SELECT locked, (found).command_id, (found).event_id, (found).execution_id, (found).catalog_id, (found).step_name,
    (found).tool_kind, (found).status, (found).worker_id, (found).claimed_at, (found).lease_until, (found).attempt,
    (found).context::text, (found).meta::text
FROM noetl.claim_lock($1, $2)
"""
_OVERDUE = f"""
SELECT {", ".join("o." + column.strip() for column in _COMMAND_COLUMNS.split(","))}, o.case_name FROM (
    SELECT c.*, 'pending' AS case_name FROM noetl.command c
     WHERE c.status = '{INITIAL.value}' AND c.created_at < now() - make_interval(secs => $1)
       AND COALESCE(c.updated_at, c.created_at) < now() - make_interval(secs => $1)
    UNION ALL
    SELECT c.*, 'timeout' FROM noetl.command c
     WHERE c.status = '{RUNNING.value}' AND jsonb_typeof(c.context -> 'spec' -> 'timeout') = 'number'
       AND c.started_at + make_interval(secs => (c.context -> 'spec' ->> 'timeout')::float8 + $2) < now()
    UNION ALL
    SELECT c.*, 'stale' FROM noetl.command c
     WHERE c.status IN ({sql_list(HELD)}) AND c.lease_until < now()
       -- a command just re-announced gets one lease period for another worker to reclaim it
       AND c.updated_at < now() - make_interval(secs => $2)
) o
JOIN noetl.execution e ON e.execution_id = o.execution_id AND e.status = 'RUNNING'
ORDER BY o.created_at
LIMIT $3
"""
# One folded write per command row: a terminal status is never downgraded (data-model.md §5), and
# only the holder's events extend the lease (§6.3).
_WRITE_LIFECYCLE = f"""
UPDATE noetl.command SET
    status = CASE WHEN status IN ({sql_list(TERMINAL)}) THEN status ELSE COALESCE($3, status) END,
    started_at = CASE WHEN $4 THEN COALESCE(started_at, now()) ELSE started_at END,
    heartbeat_at = CASE WHEN $5 THEN now() ELSE heartbeat_at END,
    lease_until = CASE WHEN worker_id = ANY($6::text[]) OR (worker_id IS NULL AND $7)
                       THEN now() + make_interval(secs => $11) ELSE lease_until END,
    completed_at = CASE WHEN $8 THEN now() ELSE completed_at END,
    error = COALESCE($9, error),
    latest_event_id = $10,
    updated_at = now()
WHERE execution_id = $1 AND command_id = $2
"""
_OPEN_COMMANDS = (
    f"SELECT count(*) FROM noetl.command WHERE execution_id = $1 AND status IN ({sql_list(OPEN)})"
)


def _command(row: asyncpg.Record | tuple[Any, ...]) -> CommandRow:
    return CommandRow(
        command_id=row[0],
        event_id=row[1],
        execution_id=row[2],
        catalog_id=row[3],
        step=row[4],
        tool_kind=row[5] or "",
        status=CommandStatus(row[6]),
        worker_id=row[7],
        claimed_at=as_utc(row[8]) if row[8] else None,
        lease_until=as_utc(row[9]) if row[9] else None,
        attempt=row[10] or 1,
        context=row[11],
        meta=row[12],
    )


class CommandStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def live_claims(self, execution_id: int, worker_id: str) -> list[tuple[int, str | None]]:
        """(command_id, context JSON text) of the worker's live claims in the execution: held
        (claimed or running) with the lease not expired, in id order (the secrets binding check)."""
        rows = await self.pool.fetch(
            "SELECT command_id, context::text FROM noetl.command"
            f" WHERE execution_id = $1 AND worker_id = $2 AND status IN ({sql_list(HELD)})"
            " AND lease_until > now() ORDER BY command_id",
            execution_id,
            worker_id,
        )
        return [(int(row[0]), row[1]) for row in rows]

    async def ensure_commands(
        self,
        execution_id: int,
        catalog_id: int,
        parent_execution_id: int | None,
        commands: Sequence[NewCommandRow],
    ) -> int:
        """Inserts the rows that do not exist yet; returns how many were new."""
        if not commands:
            return 0
        status = await self.pool.execute(
            _INSERT_COMMANDS,
            execution_id,
            catalog_id,
            parent_execution_id,
            [c.command_id for c in commands],
            [c.event_id for c in commands],
            [c.step for c in commands],
            [c.tool_kind for c in commands],
            [orjson.dumps(c.context).decode() for c in commands],
            [orjson.dumps(c.meta).decode() for c in commands],
            [c.iter_index for c in commands],
            [c.prev_event_id for c in commands],
        )
        return int(status.rpartition(" ")[2] or 0)

    async def command_count(self, execution_id: int) -> int:
        value = await self.pool.fetchval(
            "SELECT count(*) FROM noetl.command WHERE execution_id = $1", execution_id
        )
        return int(value)

    async def overdue(self, *, pending_after: float, lease_seconds: float, limit: int) -> list[Overdue]:
        """Commands whose notification may be lost, whose holder stopped heartbeating, or that ran
        past their step timeout plus one lease; only of running executions."""
        rows = await self.pool.fetch(_OVERDUE, pending_after, lease_seconds, limit)
        seen: set[int] = set()
        found = []
        for row in rows:
            command = _command(row)
            if command.command_id not in seen:  # a timed-out command is also stale: report it once
                seen.add(command.command_id)
                found.append(Overdue(command, row[13]))
        return found

    async def touch(self, execution_id: int, command_id: int) -> None:
        """Marks a PENDING command as just re-announced, so the next reaper run leaves it alone."""
        await self.pool.execute(
            "UPDATE noetl.command SET updated_at = now() WHERE execution_id = $1 AND command_id = $2",
            execution_id,
            command_id,
        )

    async def next_attempt(self, execution_id: int, command_id: int) -> int:
        """Counts one more attempt of a command whose worker died (row and meta, which claims return)."""
        value = await self.pool.fetchval(
            "UPDATE noetl.command SET attempt = attempt + 1, "
            "meta = jsonb_set(COALESCE(meta, '{}'::jsonb), '{attempt}', to_jsonb(attempt + 1)), updated_at = now() "
            "WHERE execution_id = $1 AND command_id = $2 RETURNING attempt",
            execution_id,
            command_id,
        )
        return int(value)

    async def command_by_event(self, event_id: int, execution_id: int | None = None) -> CommandRow | None:
        if execution_id is not None:
            row = await self.pool.fetchrow(
                f"SELECT {_COMMAND_COLUMNS} FROM noetl.command WHERE execution_id = $1 AND event_id = $2",
                execution_id,
                event_id,
            )
        else:
            row = await self.pool.fetchrow(
                f"SELECT {_COMMAND_COLUMNS} FROM noetl.command WHERE event_id = $1", event_id
            )
        return _command(row) if row else None

    async def lock_command(
        self, conn: Connection, execution_id: int, command_id: int
    ) -> tuple[bool, CommandRow | None]:
        """Inside a transaction: takes the claim lock and reads the row as it is once the lock is
        held, in one round trip. (False, None) when another claim holds the lock; (True, None)
        when there is no row."""
        row = await conn.fetchrow(_CLAIM_LOCK, execution_id, command_id)
        assert row is not None  # the function answers one row
        if not row[0]:
            return False, None
        return True, (_command(row[1:]) if row[1] is not None else None)

    @staticmethod
    async def mark_claimed(
        conn: Connection,
        row: CommandRow,
        worker_id: str,
        lease_seconds: float,
        latest_event_id: int,
        *,
        started: bool,
    ) -> bool:
        """False when the row's status no longer allows the claim (it went terminal meanwhile)."""
        written = await conn.execute(
            _MARK_CLAIMED,
            row.execution_id,
            row.command_id,
            worker_id,
            lease_seconds,
            latest_event_id,
            started,
        )
        return bool(written.endswith(" 1"))

    async def write_lifecycle(self, writes: Sequence[LifecycleWrite], lease_seconds: float) -> None:
        """Every write in one pipelined round trip, atomically, without an explicit transaction.

        One statement per row keeps each an index probe of one partition, whatever the plan cache
        holds; rows go in key order, so concurrent writers lock them in the same order.
        """
        if not writes:
            return
        rows = [
            (
                w.execution_id,
                w.command_id,
                w.status,
                w.started,
                w.heartbeat,
                list(w.lease_holders),
                w.lease_unowned,
                w.completes,
                w.error,
                w.latest_event_id,
                lease_seconds,
            )
            for w in sorted(writes, key=lambda w: (w.execution_id, w.command_id))
        ]
        await with_retry(lambda: self.pool.executemany(_WRITE_LIFECYCLE, rows))

    async def open_commands(self, execution_id: int) -> int:
        value = await self.pool.fetchval(_OPEN_COMMANDS, execution_id)
        return int(value)
