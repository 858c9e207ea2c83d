"""More workers for a running mesh, and stopping one the hard way (dsl.md §17.7 tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from kernel.mesh_auth import instance_of
from noetl_mesh import procs
from noetl_mesh.credentials import AUTH_DIR, add_worker, identity_of
from noetl_mesh.mesh import mesh_environment
from noetl_mesh.state import StackInfo
from tests.helpers.waiting import wait_for

# Above the machine ids the supervisor hands out (one per mesh process, from 1).
EXTRA_MACHINE_ID = 900


@dataclass(frozen=True)
class ExtraWorker:
    worker_id: str
    process: subprocess.Popen[bytes]
    log: Path


@asynccontextmanager
async def extra_worker(
    info: StackInfo, worker_id: str, *, base_env: Mapping[str, str] | None = None
) -> AsyncIterator[ExtraWorker]:
    """A second `python -m worker` on the stack's bus and services, with the environment the
    supervisor gives its own worker (noetl_mesh/mesh.py). Its whole process group is stopped on exit.
    """
    log = info.run_dir / "logs" / f"{worker_id}.log"
    env = {
        **(base_env if base_env is not None else os.environ),
        **mesh_environment(info.ports, pg_dsn=info.pg_dsn, nats_url=info.nats_url, run_dir=info.run_dir),
        # A mesh token of its own, proving `worker:<worker_id>` (the worker takes its id from it).
        **add_worker(info.run_dir / AUTH_DIR, worker_id),
        "NOETL_METRICS_PORT": str(procs.free_ports(1)[0]),
        "NOETL_SERVER_MACHINE_ID": str(EXTRA_MACHINE_ID),
    }
    process = _spawn(info.run_dir, env, log)
    try:

        async def started() -> bool:
            assert process.poll() is None, f"{worker_id} exited:\n{procs.tail(log)}"
            return f"worker {worker_id} starting" in log.read_text(errors="replace")

        await wait_for(started, within=30, what=f"{worker_id} to start", interval=0.05)
        yield ExtraWorker(worker_id, process, log)
    finally:
        await asyncio.to_thread(procs.terminate, process.pid, None, 10.0)
        process.wait()


def _spawn(cwd: Path, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stack_worker_id() -> str:
    """The id the stack's worker claims under: the one its mesh identity proves."""
    return instance_of(identity_of("worker"))


def stack_worker_pid(info: StackInfo) -> int:
    return next(p.pid for p in info.processes if p.name == "worker")


def kill_now(pid: int) -> None:
    """SIGKILL one process (not its group): a worker that dies mid-command, children left behind."""
    os.kill(pid, signal.SIGKILL)
