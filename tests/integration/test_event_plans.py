"""The event store's look-ups stay index probes under the generic plans its pool caches.

The events service plans each statement once per connection (`create_pool(generic_plans=True)`,
kernel/db.py). A plan is then made for whatever the log looked like at that moment: a fresh,
empty partition, one execution's thousands of events before autovacuum has analysed them, or
an analysed log of many runs. In every one of those states each partition must be reached by
an index whose condition holds every key of the look-up; a scan that keeps only some of them
walks a whole execution's log (or the whole partition) on every append.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from kernel import db, migrate
from services.events import store

# An execution id in the 2026 Q4 partition (data-model.md §3.3); the others stay empty.
EXECUTION = 364_000_000_000_000_001

# (statement, its arguments as SQL literals, the columns every partition's index condition holds)
LOOKUPS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "heads": (store._HEADS, f"'{{{EXECUTION}}}'", ("execution_id",)),
    "terminals": (
        store._TERMINALS,
        f"'{{{EXECUTION}}}', '{{playbook.completed,playbook.failed}}'",
        ("execution_id", "event_type"),
    ),
    "known ids": (store._KNOWN_IDS, f"'{{{EXECUTION}}}', '{{7}}'", ("execution_id", "event_id")),
    "known keys": (
        store._KNOWN_KEYS,
        f"'{{{EXECUTION}}}', '{{batch-1}}'",
        ("execution_id", "idempotency_key"),
    ),
    "known worker events": (
        store._KNOWN_WORKER,
        f"'{{{EXECUTION}}}', '{{call.done}}', '{{start}}', '{{7}}'",
        ("execution_id", "event_type", "node_name", "command_id"),
    ),
}

# One execution's events as a long run leaves them: every event of the same step, three types,
# a command id each (the shape that once drew a cached plan onto the one-column `node_name` index).
_ONE_BUSY_RUN = """
INSERT INTO noetl.event (execution_id, event_id, catalog_id, event_type, node_name, command_id)
SELECT $1::bigint, g, 1, (ARRAY['command.issued', 'call.done', 'command.completed'])[g % 3 + 1], 'start', g
FROM generate_series(1, 3000) AS g
"""
_MANY_RUNS = """
INSERT INTO noetl.event (execution_id, event_id, catalog_id, event_type, node_name, command_id, idempotency_key)
SELECT $1::bigint + g % 300, 10000 + g, 1, (ARRAY['command.issued', 'call.done', 'step.exit'])[g % 3 + 1],
       's' || (g % 7), g, CASE WHEN g % 10 = 0 THEN 'k' || g END
FROM generate_series(1, 6000) AS g
"""


@pytest.fixture(scope="module")
async def dsn(module_dsn: str) -> str:
    await migrate.migrate(module_dsn)
    return module_dsn


async def _plan(dsn: str, sql: str, arguments: str) -> dict[str, Any]:
    """The plan a fresh pool of the events service would cache for `sql` right now."""
    pool = await db.create_pool(dsn, max_size=1, generic_plans=True)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
            await conn.execute(f"PREPARE probe AS {sql}")
            rows = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE probe({arguments})")
            await conn.execute("DEALLOCATE probe")
    finally:
        await pool.close()
    plan: dict[str, Any] = json.loads(rows)[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _event_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in _nodes(plan) if str(node.get("Relation Name", "")).startswith("event")]


async def _assert_index_probes(dsn: str) -> None:
    wrong: list[str] = []
    for name, (sql, arguments, keys) in LOOKUPS.items():
        scans = _event_scans(await _plan(dsn, sql, arguments))
        if not scans:
            wrong.append(f"{name}: no scan of the event log in the plan")
        for scan in scans:
            where = f"{name} on {scan['Relation Name']}"
            condition = scan.get("Index Cond", "")
            missing = [key for key in keys if key not in condition]
            if scan["Node Type"] not in ("Index Scan", "Index Only Scan"):
                wrong.append(f"{where}: {scan['Node Type']}")
            elif missing:
                wrong.append(f"{where}: index {scan['Index Name']} leaves {missing} out of {condition!r}")
    assert not wrong, "\n".join(wrong)


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("TRUNCATE noetl.event")
        yield connection
    finally:
        await connection.close()


async def test_plans_made_on_an_empty_log_probe_every_key(dsn: str, conn: asyncpg.Connection) -> None:
    await _assert_index_probes(dsn)


async def test_plans_made_on_one_busy_unanalysed_run_probe_every_key(
    dsn: str, conn: asyncpg.Connection
) -> None:
    await conn.execute(_ONE_BUSY_RUN, EXECUTION)
    await _assert_index_probes(dsn)


async def test_plans_made_after_analyse_probe_every_key(dsn: str, conn: asyncpg.Connection) -> None:
    await conn.execute(_ONE_BUSY_RUN, EXECUTION)
    await conn.execute(_MANY_RUNS, EXECUTION)
    await conn.execute("ANALYZE noetl.event")
    await _assert_index_probes(dsn)
