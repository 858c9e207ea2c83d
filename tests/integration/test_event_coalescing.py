"""`POST /api/events` under concurrency: the gateway coalesces requests into EventService.EmitMany
(gateway_http/coalescing.py) and still answers each one as a lone `Emit` would. The real gateway
app in this process, over real gRPC, in front of the events and execution services.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from gateway_http.encoding import dumps
from gateway_http.settings import GatewaySettings
from kernel.ids import MAX_MACHINE_ID, Snowflake
from tests.helpers.gateway import in_process_gateway
from tests.helpers.nowhere import NOWHERE, NOWHERE_ENV
from tests.helpers.playbooks import Started, register_noop, start_noop
from tests.helpers.services import Mesh

CONCURRENT = 50
FAKE_COMMAND = 7 << 60


@asynccontextmanager
async def gateway(events_addr: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings.load(
        {
            **NOWHERE_ENV,
            "NOETL_EVENTS_ADDRS": events_addr,
            "NOETL_GATEWAY_RPC_TIMEOUT": "10",
        }
    )
    async with in_process_gateway(settings, http_timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
async def playbook(mesh: Mesh) -> str:
    return await register_noop(mesh, "coalescing")


@pytest.fixture
async def started(mesh: Mesh, db: asyncpg.Connection, playbook: str) -> Started:
    return await start_noop(mesh, db, playbook)


def emit_many_calls() -> float:
    value = REGISTRY.get_sample_value(
        "noetl_grpc_server_requests_total", {"service": "EventService", "method": "EmitMany", "code": "OK"}
    )
    return value or 0.0


def body(execution_id: int | str, event_type: str, command_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "execution_id": str(execution_id),
        "step": "start",
        "event_type": event_type,
        "payload": {"command_id": command_id},
        "meta": {"command_id": command_id},
        "worker_id": "coalesced",
        **extra,
    }


async def test_concurrent_posts_are_each_answered_as_alone_and_stored_once(
    mesh: Mesh, db: asyncpg.Connection, started: Started
) -> None:
    execution = started.execution_id
    unknown = Snowflake(MAX_MACHINE_ID).next_id()
    fake = itertools.count(FAKE_COMMAND)
    # (request body, expected status); each `call.done` id twice: its repeat is a duplicate.
    repeated = [next(fake) for _ in range(8)]
    cases: list[tuple[dict[str, Any], int]] = []
    for i in range(CONCURRENT):
        kind = i % 5
        if kind == 0:
            cases.append((body(execution, "command.heartbeat", started.command_id), 200))
        elif kind == 1:
            cases.append((body(execution, "call.done", repeated[(i // 5) % len(repeated)]), 200))
        elif kind == 2:
            cases.append((body(unknown, "call.done", next(fake)), 404))
        elif kind == 3:
            bad = body(execution, "call.done", next(fake))
            bad["payload"]["_internal_data"] = {"x": 1}
            cases.append((bad, 422))
        else:
            cases.append(({"execution_id": str(execution), "payload": {}}, 422))  # no step, no type
    before = emit_many_calls()
    async with gateway(mesh.addresses["events"]) as http:
        responses = await asyncio.gather(*(http.post("/api/events", json=case) for case, _ in cases))
    calls = emit_many_calls() - before

    event_ids: dict[int, set[int]] = {}
    for (case, status), response in zip(cases, responses, strict=True):
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == "application/json"
        if status == 200:
            answer = response.json()
            assert response.content == dumps(
                {"status": "ok", "event_id": answer["event_id"], "commands_generated": 0}
            )
            if case["event_type"] == "call.done":
                event_ids.setdefault(case["meta"]["command_id"], set()).add(answer["event_id"])
        elif status == 404:
            assert response.content == dumps({"detail": f"Execution {unknown} not found"})
        elif "step" in case:
            assert response.content == dumps({"detail": "payload may not contain '_internal_data'"})
        else:
            problems = response.json()["detail"]
            assert [p["loc"] for p in problems] == [["body", "step"], ["body", "name"]]

    # Fewer calls than requests: they were coalesced (the service saw no other EmitMany meanwhile).
    assert 1 <= calls < CONCURRENT * 3 / 5
    # A repeated call.done answered the same event both times, and each is stored exactly once.
    assert all(len(ids) == 1 for ids in event_ids.values())
    stored = await db.fetch(
        "SELECT command_id, count(*) AS n FROM noetl.event WHERE execution_id = $1 AND event_type = 'call.done' "
        "GROUP BY command_id",
        execution,
    )
    assert {row["command_id"]: row["n"] for row in stored} == dict.fromkeys(event_ids, 1)
    heartbeats = await db.fetchval(
        "SELECT count(*) FROM noetl.event WHERE execution_id = $1 AND event_type = 'command.heartbeat'",
        execution,
    )
    assert heartbeats == sum(1 for case, _ in cases if case.get("event_type") == "command.heartbeat")
    assert await db.fetchval("SELECT count(*) FROM noetl.event WHERE execution_id = $1", unknown) == 0
    assert (
        await db.fetchval(
            "SELECT count(*) FROM noetl.event WHERE execution_id = $1 AND context ? '_internal_data'",
            execution,
        )
        == 0
    )


async def test_a_lone_post_is_answered(mesh: Mesh, db: asyncpg.Connection, started: Started) -> None:
    async with gateway(mesh.addresses["events"]) as http:
        response = await http.post(
            "/noetl/events", json=body(started.execution_id, "command.heartbeat", started.command_id)
        )
    assert response.status_code == 200, response.text
    event_id = response.json()["event_id"]
    assert response.content == dumps({"status": "ok", "event_id": event_id, "commands_generated": 0})
    stored = await db.fetchval(
        "SELECT event_type FROM noetl.event WHERE execution_id = $1 AND event_id = $2",
        started.execution_id,
        event_id,
    )
    assert stored == "command.heartbeat"


async def test_an_unreachable_events_service_fails_every_waiting_request_alike() -> None:
    async with gateway(NOWHERE) as http:
        responses = await asyncio.gather(
            *(http.post("/api/events", json=body(12345, "call.done", FAKE_COMMAND + i)) for i in range(10))
        )
    assert {r.status_code for r in responses} == {503}
    assert {r.headers.get("retry-after") for r in responses} == {"1"}
    details = {r.json()["detail"] for r in responses}
    assert len(details) == 1 and isinstance(details.pop(), str)
