"""What a poll of a run's detail costs: `ExecutionService.Get` with the newest event the caller
has seen answers from the shard's cached state without reading the log again, and reads it
whenever the state has not folded that event (services/execution/orchestration/orchestrator.py,
`state_of`). A start caches the state of the root it wrote without reading it back. The
in-process services over real gRPC; the log reads are counted on the events
service's own request metric.
"""

from __future__ import annotations

import asyncpg
import pytest
from noetl.v1 import events_pb2, execution_pb2
from prometheus_client import REGISTRY

from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.services import Mesh

_LOG_READS = {"service": "EventService", "method": "ListEvents", "code": "OK"}


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "detail")


@pytest.fixture
async def started(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> Started:
    return await start_noop(mesh, db, playbook)


def log_reads() -> float:
    return REGISTRY.get_sample_value("noetl_grpc_server_requests_total", _LOG_READS) or 0.0


async def newest_event(mesh: Mesh, execution_id: int) -> int:
    page = await mesh.events.ListEvents(
        events_pb2.ListEventsRequest(execution_id=execution_id, newest_first=True, page=1, page_size=10),
        timeout=10,
    )
    return int(page.events[0].event_id)


async def detail(mesh: Mesh, execution_id: int, seen: int | None) -> execution_pb2.ExecutionSummary:
    request = execution_pb2.GetRequest(execution_id=execution_id)
    if seen is not None:
        request.seen_event_id = seen
    response: execution_pb2.GetResponse = await mesh.execution.Get(request, timeout=10)
    return response.summary


async def test_a_poller_that_has_seen_the_newest_event_costs_no_log_read(
    mesh: Mesh, started: Started
) -> None:
    head = await newest_event(mesh, started.execution_id)
    before = log_reads()
    summary = await detail(mesh, started.execution_id, head)
    assert log_reads() == before, "the state had folded the newest event: nothing to read"
    assert (summary.execution_id, summary.status) == (started.execution_id, "RUNNING")


@pytest.mark.parametrize("seen", ["beyond the state", "not given"])
async def test_otherwise_the_log_is_read_before_answering(mesh: Mesh, started: Started, seen: str) -> None:
    head = await newest_event(mesh, started.execution_id)
    before = log_reads()
    summary = await detail(mesh, started.execution_id, head + 1 if seen == "beyond the state" else None)
    assert log_reads() == before + 1
    assert (summary.execution_id, summary.status) == (started.execution_id, "RUNNING")


async def test_a_start_folds_the_root_it_wrote_without_reading_the_log(mesh: Mesh, playbook: str) -> None:
    before = log_reads()
    response = await mesh.execution.Start(execution_pb2.StartRequest(path=playbook), timeout=20)
    assert log_reads() == before, "the start's own append continues nothing: it is the log's root"
    # The state it cached is the log's: a poll that has seen the newest event needs no read either.
    head = await newest_event(mesh, response.execution_id)
    reads = log_reads()
    summary = await detail(mesh, response.execution_id, head)
    assert log_reads() == reads
    assert (summary.execution_id, summary.status) == (response.execution_id, "RUNNING")
