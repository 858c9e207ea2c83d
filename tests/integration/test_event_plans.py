"""The event store's look-ups (`noetl.append_lookup`) stay index probes under generic plans.

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

# Every look-up of `noetl.append_lookup` (its statements are told apart by the `kind` each
# returns first) and the columns every partition's index condition must hold for it.
LOOKUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "heads": ("SELECT 0::smallint", ("execution_id",)),
    "terminals": ("SELECT 1::smallint", ("execution_id", "event_type")),
    "known ids": ("SELECT 2::smallint", ("execution_id", "event_id")),
    "known keys": ("SELECT 3::smallint", ("execution_id", "idempotency_key")),
    "known worker events": ("SELECT 4::smallint", ("execution_id", "event_type", "node_name", "command_id")),
}
# The function's arguments, every look-up asked once.
_ARGUMENTS = (
    [EXECUTION],
    [EXECUTION],
    ["playbook.completed", "playbook.failed"],
    [EXECUTION],
    [7],
    [EXECUTION],
    ["batch-1"],
    [EXECUTION],
    ["call.done"],
    ["start"],
    [7],
)

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


async def _plans(dsn: str) -> dict[str, dict[str, Any]]:
    """The plan of each look-up as a fresh pool of the events service caches it right now.

    The statements run inside the function, so their plans are read with auto_explain, which
    sends each executed statement's plan to this session as a notice."""
    pool = await db.create_pool(dsn, max_size=1, generic_plans=True)
    notices: list[str] = []
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"

            def listen(_conn: object, message: asyncpg.PostgresLogMessage) -> None:
                notices.append(str(message.message))

            conn.add_log_listener(listen)
            await conn.execute("LOAD 'auto_explain'")
            await conn.execute(
                "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
                " SET auto_explain.log_format = json; SET auto_explain.log_level = notice"
            )
            await conn.fetch(store._LOOKUP, *_ARGUMENTS)
            conn.remove_log_listener(listen)
    finally:
        await pool.close()
    found: dict[str, dict[str, Any]] = {}
    for notice in notices:
        explained = json.loads(notice[notice.index("{") :])
        for name, (marker, _) in LOOKUPS.items():
            if marker in explained["Query Text"]:
                found[name] = explained["Plan"]
    return found


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _event_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in _nodes(plan) if str(node.get("Relation Name", "")).startswith("event")]


async def _assert_index_probes(dsn: str) -> None:
    plans = await _plans(dsn)
    wrong: list[str] = []
    for name, (_, keys) in LOOKUPS.items():
        if name not in plans:
            wrong.append(f"{name}: not run by noetl.append_lookup")
            continue
        scans = _event_scans(plans[name])
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
