"""The reference worker in the pool registry (dsl.md §16 step 1, http-api.md §7.4): it registers
itself at start, keeps its heartbeat moving and is `offline` after a graceful stop."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.helpers.mesh import ProcessMesh
from tests.helpers.waiting import wait_for
from tests.helpers.workers import extra_worker, stack_worker_id, stack_worker_pid
from worker.settings import DEFAULT_CONCURRENCY

pytestmark = pytest.mark.e2e


async def listed(gateway: httpx.AsyncClient, name: str) -> dict[str, Any] | None:
    response = await gateway.get("/api/worker/pools", params={"runtime": "python"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error"] is None, body
    return next((item for item in body["items"] if item["name"] == name), None)


def when(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["heartbeat"])


async def test_the_stack_worker_is_registered(gateway: httpx.AsyncClient, process_mesh: ProcessMesh) -> None:
    pid = stack_worker_pid(process_mesh.info)

    async def registered() -> dict[str, Any] | None:
        response = await gateway.get("/api/worker/pools", params={"status": "ready"})
        mine = [item for item in response.json()["items"] if (item["runtime"] or {}).get("pid") == pid]
        assert len(mine) <= 1, response.text
        return mine[0] if mine else None

    entry = await wait_for(registered, within=15, what="the stack worker's pool entry")
    assert entry["name"] == stack_worker_id()
    assert entry["runtime"]["type"] == "python"
    assert entry["labels"] == {"pools": ["shared", "system", "subscription"]}
    assert entry["capacity"] == DEFAULT_CONCURRENCY


async def test_a_worker_heartbeats_while_it_runs_and_goes_offline_when_stopped(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    env = {**os.environ, "NOETL_WORKER_POOL_HEARTBEAT_SECONDS": "0.2", "NOETL_WORKER_CONCURRENCY": "2"}
    async with extra_worker(process_mesh.info, "worker-pool-e2e", base_env=env) as worker:
        first = await wait_for(
            lambda: listed(gateway, worker.worker_id), within=15, what="the worker's pool entry"
        )
        assert first["status"] == "ready"
        assert first["capacity"] == 2
        assert first["runtime"]["pid"] == worker.process.pid
        assert list(first["runtime"])[:3] == ["type", "pid", "hostname"]

        async def moved() -> dict[str, Any] | None:
            now = await listed(gateway, worker.worker_id)
            return now if now is not None and when(now) > when(first) else None

        later = await wait_for(moved, within=10, what="the heartbeat to move")
        assert later["status"] == "ready"
        assert later["created_at"] == first["created_at"]
    # extra_worker stopped it with SIGTERM: a graceful stop.
    assert worker.process.returncode == 0
    gone = await listed(gateway, worker.worker_id)
    assert gone is not None
    assert gone["status"] == "offline"
