"""The command reaper (data-model.md §6.4, dsl.md §17.4, §17.7): nothing waits forever.

No worker runs in this mesh: a test claims commands itself (as a worker that then "dies"), and
moves lease and start times into the past with SQL instead of waiting minutes for them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from noetl.v1 import catalog_pb2, execution_pb2

from services.execution.orchestration.reaper import ReaperSettings
from tests.helpers.bus import read_stream, unique_bus
from tests.helpers.infra import NatsServer
from tests.helpers.playbooks import Started, start_noop
from tests.helpers.services import Mesh, running_mesh
from tests.helpers.waiting import wait_for

REAPER = ReaperSettings(
    enabled=True, interval_seconds=0.1, pending_retry_seconds=0.5, lease_seconds=1.0, reconcile_seconds=60.0
)


@pytest.fixture(scope="module")
async def mesh(module_dsn: str, nats_server: NatsServer) -> AsyncIterator[Mesh]:
    async with running_mesh(module_dsn, unique_bus(nats_server.url, "reaper"), reaper=REAPER) as running:
        yield running


@pytest.fixture(scope="module")
async def db(mesh: Mesh) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(mesh.dsn)
    yield conn
    await conn.close()


async def _start(mesh: Mesh, db: asyncpg.Connection, tool: str) -> Started:
    path = f"tests/reaper/{uuid.uuid4().hex[:10]}"
    document = f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: "reaped", path: "{path}"}}
workflow:
  - step: start
{tool}
"""
    await mesh.catalog.Register(catalog_pb2.RegisterRequest(content=document), timeout=10)
    return await start_noop(mesh, db, path)


async def _claim(mesh: Mesh, started: Started, worker: str) -> execution_pb2.ClaimResponse:
    response: execution_pb2.ClaimResponse = await mesh.commands.Claim(
        execution_pb2.ClaimRequest(
            event_id=started.event_id, execution_id=started.execution_id, worker_id=worker
        ),
        timeout=10,
    )
    return response


async def _terminal(db: asyncpg.Connection, execution_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT event_type, error, context FROM noetl.event WHERE execution_id = $1 "
        "AND event_type IN ('playbook.completed', 'playbook.failed')",
        execution_id,
    )


async def test_a_dead_workers_command_fails_the_run(mesh: Mesh, db: asyncpg.Connection) -> None:
    started = await _start(mesh, db, "    tool: {kind: noop}")
    await _claim(mesh, started, "ghost")
    await db.execute(
        "UPDATE noetl.command SET lease_until = now() - interval '1 second' WHERE command_id = $1",
        started.command_id,
    )
    terminal = await wait_for(
        lambda: _terminal(db, started.execution_id), what="playbook.failed after the lease"
    )
    assert terminal["event_type"] == "playbook.failed"
    failed = await db.fetchrow(
        "SELECT error, meta->>'reason' AS reason FROM noetl.event WHERE execution_id = $1 AND event_type = 'command.failed'",
        started.execution_id,
    )
    assert failed is not None
    assert failed["error"] == "lease_expired: worker ghost stopped heartbeating"
    assert failed["reason"] == "lease_expired"

    async def projected_status() -> str | None:
        status: str | None = await db.fetchval(
            "SELECT status FROM noetl.execution WHERE execution_id = $1", started.execution_id
        )
        return status if status != "RUNNING" else None

    # The execution row is a projection, written once the append that ended the run has answered.
    assert await wait_for(projected_status, what="the execution row's final status") == "FAILED"


async def test_a_retry_rule_announces_the_command_again_for_another_worker(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    tool = """    tool:
      kind: noop
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' }}"
              then: {do: retry, attempts: 3}"""
    started = await _start(mesh, db, tool)
    await _claim(mesh, started, "ghost")
    await db.execute(
        "UPDATE noetl.command SET lease_until = now() - interval '1 second' WHERE command_id = $1",
        started.command_id,
    )

    async def second_attempt() -> bool:
        attempt: int = await db.fetchval(
            "SELECT attempt FROM noetl.command WHERE command_id = $1", started.command_id
        )
        return attempt == 2

    await wait_for(second_attempt, what="the reaper to count a second attempt")
    messages = await read_stream(
        mesh.js, mesh.bus.command_stream, f"noetl.commands.*.{started.execution_id}", at_least=2
    )
    assert f"reaper-{started.command_id}-2" in {m.msg_id for m in messages}
    rescued = await _claim(mesh, started, "rescuer")
    assert rescued.command.worker_id == "rescuer"
    meta = await db.fetchval(
        "SELECT meta FROM noetl.event WHERE execution_id = $1 AND event_type = 'command.claimed' "
        "ORDER BY event_id DESC LIMIT 1",
        started.execution_id,
    )
    assert '"reclaimed": true' in meta and '"reclaimed_from_worker": "ghost"' in meta
    assert await _terminal(db, started.execution_id) is None  # retried, not failed


async def test_a_lost_notification_is_announced_again(mesh: Mesh, db: asyncpg.Connection) -> None:
    started = await _start(mesh, db, "    tool: {kind: noop}")
    messages = await read_stream(
        mesh.js, mesh.bus.command_stream, f"noetl.commands.*.{started.execution_id}", at_least=2, within=10
    )
    assert f"reaper-{started.command_id}-1-pending" in {m.msg_id for m in messages}


async def test_a_command_past_its_step_timeout_fails(mesh: Mesh, db: asyncpg.Connection) -> None:
    started = await _start(mesh, db, "    spec: {timeout: 2}\n    tool: {kind: noop}")
    await _claim(mesh, started, "slowpoke")
    await db.execute(
        "UPDATE noetl.command SET status = 'RUNNING', started_at = now() - interval '10 seconds', "
        "lease_until = now() + interval '1 hour' WHERE command_id = $1",
        started.command_id,
    )
    await wait_for(lambda: _terminal(db, started.execution_id), what="playbook.failed after the timeout")
    error = await db.fetchval(
        "SELECT error FROM noetl.event WHERE execution_id = $1 AND event_type = 'command.failed'",
        started.execution_id,
    )
    assert error == "timeout: step 'start' exceeded 2s"
