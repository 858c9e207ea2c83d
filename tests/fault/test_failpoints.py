"""Crash windows inside an orchestration pass, hit deterministically by failpoints.

The execution service is started with one failpoint armed; the point kills it (`os._exit`, no
cleanup) the Nth time it is reached, with runs in flight. The supervisor starts it again
without failpoints, and every run must complete with a sound log: the projections the dead
process never wrote are rebuilt from the event log (services/execution/projector.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from noetl_mesh.config import Ports, StackConfig
from noetl_mesh.stack import Stack
from tests.fault.test_crash_recovery import ENV, all_complete, info_of, start_runs

pytestmark = pytest.mark.fault

WINDOWS = {
    # Between the append of a pass's events and the command rows it issues.
    "orchestrator.after_append": "exit@12",
    # Inside Start: the root event is committed, the execution row is not written yet.
    "orchestrator.start.after_append": "exit@7",
    # Around the terminal write: the final event is committed, the execution row still RUNNING.
    "orchestrator.before_terminal_projection": "exit@2",
}


@pytest.fixture(params=sorted(WINDOWS))
async def armed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    name: str = request.param
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("failpoint-mesh"),
        ports=Ports.ephemeral(),
        base_env={**os.environ, **ENV, "NOETL_FAILPOINTS": f"{name}={WINDOWS[name]}"},
        supervise=True,
    )
    stack = Stack(config)
    await asyncio.to_thread(stack.up)
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.down)


async def test_a_crash_inside_a_pass_heals_from_the_log(armed: Stack) -> None:
    async with httpx.AsyncClient(base_url=info_of(armed).gateway_url, timeout=30.0) as http:
        runs = await _start_tolerating_the_crash(http)
    await all_complete(armed, runs)
    [execution] = [p for p in info_of(armed).processes if p.name == "execution"]
    assert execution.restarts == 1, "the failpoint should have killed the execution service once"


async def _start_tolerating_the_crash(http: httpx.AsyncClient) -> list[str]:
    """Starts the runs; a start cut by the crash answers an error and leaves nothing to wait for,
    or has committed its root and must then finish like the others (found in the listing)."""
    try:
        return await start_runs(http, "failpoint")
    except (AssertionError, httpx.HTTPError):
        pass
    listed = await http.get("/api/executions", params={"page_size": 100})
    return [str(e["execution_id"]) for e in listed.json()] if listed.status_code == 200 else []
