"""Live events over Server-Sent Events (http-api.md §4.7): catch-up, live, resume, end, fan-out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.helpers.invariants import finish
from tests.helpers.mesh import ProcessMesh, events, execute, gated_playbook, register, wait_claimed
from tests.helpers.waiting import wait_for

Message = dict[str, str]  # one SSE message: its id, event and data fields


async def _read_stream(
    http: httpx.AsyncClient,
    execution_id: str,
    last_event_id: int | None = None,
    *,
    into: list[Message] | None = None,
) -> list[Message]:
    """Every SSE message until the server closes the stream, appended to `into` (if given) as
    each arrives, so a test can watch the stream's progress."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    messages: list[Message] = [] if into is None else into
    async with http.stream(
        "GET", f"/api/executions/{execution_id}/events/stream", headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        current: Message = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    messages.append(current)
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = value
    return messages


async def _caught_up(http: httpx.AsyncClient, execution_id: str, streams: Sequence[list[Message]]) -> bool:
    """Every stream has delivered every event stored so far: its watcher waits for live ones."""
    stored = {int(e["event_id"]) for e in await events(http, execution_id)}
    return all(stored <= {int(m["id"]) for m in seen} for seen in streams)


async def test_catch_up_then_live_then_the_stream_ends(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    await register(gateway, gated_playbook("tests/sse/gated"))
    gate = tmp_path / "gate"
    execution_id = await execute(gateway, "tests/sse/gated", {"gate": str(gate)})
    await wait_claimed(gateway, execution_id, "start")

    seen: list[Message] = []
    reader = asyncio.create_task(_read_stream(gateway, execution_id, into=seen))
    await wait_for(lambda: _caught_up(gateway, execution_id, [seen]), what="the watcher to catch up")
    assert not reader.done()
    gate.touch()
    messages = await asyncio.wait_for(reader, timeout=30)

    run = await finish(gateway, process_mesh.info.pg_dsn, execution_id)
    stored = sorted(int(e["event_id"]) for e in run.events)
    assert [int(m["id"]) for m in messages] == stored
    assert messages[-1]["event"] == "playbook.completed"
    data = json.loads(messages[0]["data"])
    assert list(data) == [
        "execution_id", "event_id", "event_type", "node_id", "node_name", "status", "created_at", "timestamp",
        "context", "result", "error", "catalog_id", "parent_execution_id", "parent_event_id", "duration",
    ]  # fmt: skip
    assert data["event_type"] == messages[0]["event"] == "playbook.initialized"
    assert data["execution_id"] == execution_id


async def test_last_event_id_resumes_without_gaps_or_repeats(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    await register(gateway, gated_playbook("tests/sse/resume"))
    gate = tmp_path / "open"
    gate.touch()
    execution_id = await execute(gateway, "tests/sse/resume", {"gate": str(gate)})
    run = await finish(gateway, process_mesh.info.pg_dsn, execution_id)
    assert run.detail["status"] == "COMPLETED"
    stored = sorted(int(e["event_id"]) for e in run.events)
    cursor = stored[3]
    resumed = await _read_stream(gateway, execution_id, last_event_id=cursor)
    assert [int(m["id"]) for m in resumed] == stored[4:]


async def test_a_hundred_watchers_share_one_upstream_and_see_every_event_once(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, tmp_path: Path
) -> None:
    await register(gateway, gated_playbook("tests/sse/many"))
    gate = tmp_path / "gate"
    execution_id = await execute(gateway, "tests/sse/many", {"gate": str(gate)})
    await wait_claimed(gateway, execution_id, "start")
    opened_before = await _feeds_opened(gateway)

    limits = httpx.Limits(max_connections=120, max_keepalive_connections=120)
    async with httpx.AsyncClient(base_url=process_mesh.gateway_url, timeout=60, limits=limits) as http:
        seen: list[list[Message]] = [[] for _ in range(100)]
        readers = [asyncio.create_task(_read_stream(http, execution_id, into=s)) for s in seen]
        await wait_for(
            lambda: _caught_up(gateway, execution_id, seen), what="all 100 watchers to catch up", within=30
        )
        gate.touch()
        streams = await asyncio.wait_for(asyncio.gather(*readers), timeout=60)

    stored = sorted(int(e["event_id"]) for e in await events(gateway, execution_id))
    for messages in streams:
        assert [int(m["id"]) for m in messages] == stored
    assert await _feeds_opened(gateway) - opened_before == 1


async def test_an_unknown_execution_is_a_plain_404(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/executions/1234/events/stream")
    assert response.status_code == 404
    assert response.json() == {"detail": "Execution 1234 not found"}


async def _feeds_opened(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("noetl_gateway_event_feeds_opened_total "):
            return float(line.split()[1])
    raise AssertionError("the gateway does not export noetl_gateway_event_feeds_opened_total")
