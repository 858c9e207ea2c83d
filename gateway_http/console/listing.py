"""The console's execution list: pages of `GET /api/executions` entries, filtered by status, path
and parent.

The execution service lists newest first with a limit and offset but no filters (its
`ListExecutions` has none), so a filtered page is cut from the newest `SCAN_LIMIT` executions of
each shard, scanned here. Unfiltered pages ask each shard only for what the page needs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from noetl.v1 import execution_pb2

from gateway_http.clients import ExecutionShard
from gateway_http.routes.executions import newest_first
from gateway_http.views import execution_entry
from kernel.grpc_client import Sharded
from kernel.timeutil import utcnow
from language.statuses import RUNNING, TERMINAL_STATUSES

# The most a shard's ListExecutions answers in one call.
SCAN_LIMIT = 10_000
STATUSES = frozenset({RUNNING, *TERMINAL_STATUSES})


@dataclass(frozen=True, slots=True)
class ListQuery:
    page: int
    page_size: int
    status: str | None = None
    path: str | None = None  # a case-insensitive substring of the playbook path
    parent: int | None = None

    @property
    def filtered(self) -> bool:
        return self.status is not None or bool(self.path) or self.parent is not None


async def list_page(
    execution: Sharded[ExecutionShard], query: ListQuery, rpc_timeout: float
) -> dict[str, Any]:
    """`{items, page, page_size, has_next, matched, scanned}`; `matched` is null when unfiltered
    (the total is not counted then) and `scanned` says how many executions a filter looked at."""
    offset = (query.page - 1) * query.page_size
    limit = SCAN_LIMIT if query.filtered else min(SCAN_LIMIT, offset + query.page_size + 1)
    wanted = execution_pb2.ListExecutionsRequest(limit=limit, offset=0)
    shards = await asyncio.gather(
        *(shard.executions.ListExecutions(wanted, timeout=rpc_timeout) for shard in execution.all())
    )
    summaries = newest_first([summary for shard in shards for summary in shard.summaries])
    scanned = len(summaries)
    if query.filtered:
        summaries = [s for s in summaries if _matches(s, query)]
    now = utcnow()
    page = summaries[offset : offset + query.page_size]
    return {
        "items": [execution_entry(summary, now) for summary in page],
        "page": query.page,
        "page_size": query.page_size,
        "has_next": len(summaries) > offset + query.page_size,
        "matched": len(summaries) if query.filtered else None,
        "scanned": scanned,
    }


def _matches(summary: execution_pb2.ExecutionSummary, query: ListQuery) -> bool:
    if query.status is not None and summary.status != query.status:
        return False
    if query.path and query.path.lower() not in summary.path.lower():
        return False
    if query.parent is not None:
        return bool(summary.HasField("parent_execution_id") and summary.parent_execution_id == query.parent)
    return True
