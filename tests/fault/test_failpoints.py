"""Crash windows inside an orchestration pass, hit deterministically by failpoints.

The mesh is started with one failpoint armed; the point kills its service (`os._exit`, no
cleanup) the Nth time it is reached, with runs in flight — or, for the feed, makes it raise: a
background component that dies takes its process down with it (kernel/runner.py), rather than
leaving a service that looks alive and advances nothing. The supervisor starts it again
without failpoints, and every run must complete with a sound log: the projections the dead
process never wrote are rebuilt from the event log (services/execution/orchestration/projector.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from noetl_mesh.config import Ports, StackConfig
from noetl_mesh.stack import Stack
from tests.fault.test_crash_recovery import ENV, PLAYBOOK, RETRY, RUNS, all_complete, info_of
from tests.helpers.mesh import execute, register
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.fault

# Failpoint → (its action, the service it takes down).
WINDOWS = {
    # Between the append of a pass's events and the command rows it issues.
    "orchestrator.after_append": ("exit@12", "execution"),
    # Inside Start: the root event is committed, the execution row is not written yet.
    "orchestrator.start.after_append": ("exit@7", "execution"),
    # Around the terminal write: the final event is committed, the execution row still RUNNING.
    "orchestrator.before_terminal_projection": ("exit@2", "execution"),
    # The event feed's batch handling fails: the feed task dies, and with it the process.
    "feed.apply": ("raise@3", "execution"),
    # A pass's issued commands are committed, but the events service dies before relaying them
    # or answering: the pass cannot know they were written, and must not issue them again.
    "events.pass.after_commit": ("exit@4", "events"),
}


@pytest.fixture(params=sorted(WINDOWS))
async def armed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, str]]:
    name: str = request.param
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("failpoint-mesh"),
        ports=Ports.ephemeral(),
        base_env={**os.environ, **ENV, "NOETL_FAILPOINTS": f"{name}={WINDOWS[name][0]}"},
        supervise=True,
    )
    stack = Stack(config)
    await asyncio.to_thread(stack.up)
    try:
        yield stack, WINDOWS[name][1]
    finally:
        await asyncio.to_thread(stack.down)


async def test_a_crash_inside_a_pass_heals_from_the_log(armed: tuple[Stack, str]) -> None:
    stack, service = armed
    async with httpx.AsyncClient(base_url=info_of(stack).gateway_url, timeout=30.0) as http:
        runs = await _start_through_the_crash(http)
    assert len(runs) >= RUNS, runs
    await all_complete(stack, runs)
    [crashed] = [p for p in info_of(stack).processes if p.name == service]
    assert crashed.restarts == 1, f"the failpoint should have killed the {service} service once"


async def _start_through_the_crash(http: httpx.AsyncClient) -> list[str]:
    """Starts `RUNS` runs; when the crash cuts a start short, waits for the supervisor to bring the
    service back and goes on. Returns every run the listing shows: a start cut by the crash either
    left nothing or committed its root, and must then finish like the others."""
    path = (await register(http, PLAYBOOK.format(tag="failpoint", retry=RETRY)))["path"]
    started = 0
    for _ in range(RUNS * 3):
        if started == RUNS:
            break
        try:
            await execute(http, path)
            started += 1
        except (AssertionError, httpx.HTTPError):
            await wait_for(lambda: listed(http), what="the service to be back", within=60.0, interval=0.5)
            # The listing answers while the events service is down: give a restart time to land.
            await asyncio.sleep(0.5)
    found = await wait_for(lambda: listed(http), what="the listing", within=60.0, interval=0.5)
    return found


async def listed(http: httpx.AsyncClient) -> list[str] | None:
    try:
        response = await http.get("/api/executions", params={"page_size": 100})
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    return [str(e["execution_id"]) for e in response.json()]
