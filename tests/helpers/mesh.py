"""The whole mesh as processes, for e2e and contract tests, and the client helpers that drive it.

One mesh per test session (`running_process_mesh`, the `process_mesh` fixture of tests/conftest.py):
a fresh database on the session Postgres, embedded NATS and every port ephemeral under a temp
run dir, so a developer's `noetl-mesh up` stack is never touched. Tests talk to it only the way
clients do: HTTP through the gateway, the real `noetl` CLI, `python -m noetl_mesh`, and SQL reads
of the test database for what the API does not show (the `prev_event_id` chain).
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from kernel.mesh_auth import TOKEN
from kernel.sharding import shard_for
from language.statuses import TERMINAL_STATUSES
from noetl_mesh.config import Ports, StackConfig
from noetl_mesh.credentials import AUTH_DIR, MeshCredentials
from noetl_mesh.errors import StartError
from noetl_mesh.stack import Stack, shard_databases
from noetl_mesh.state import StackInfo
from tests.helpers import infra
from tests.helpers.infra import PgServer
from tests.helpers.shared import REPO
from tests.helpers.waiting import wait_for

NOETL_CLI = REPO / ".venv" / "cli" / "bin" / "noetl"

# Terminal events a finished run ends with (dsl.md §10.1), with the reader aliases of http-api.md §1.7.
TERMINAL_EVENTS = frozenset(
    {
        "playbook.completed",
        "playbook.failed",
        "execution.cancelled",
        "playbook_completed",
        "playbook_failed",
        "playbook_cancelled",
        "playbook.cancelled",
    }
)


@dataclass(frozen=True)
class ProcessMesh:
    """A running session mesh: where to reach it and the database it writes."""

    info: StackInfo
    # The stack that started it: `repair` through it starts what a test stopped, as its child.
    stack: Stack

    @property
    def gateway_url(self) -> str:
        return self.info.gateway_url

    @property
    def pg_dsn(self) -> str:
        """The cluster database; with one shard also the shard's."""
        return self.info.pg_dsn

    @property
    def shard_dsns(self) -> tuple[str, ...]:
        """One database per shard, in shard order."""
        return self.info.shard_dsns

    @property
    def run_dir(self) -> Path:
        return self.info.run_dir

    def mesh_env(self, identity: str) -> dict[str, str]:
        """Variables that let a client in this process call the mesh's services as `identity`,
        with the token `noetl-mesh up` made for it (mesh auth is on in the session mesh)."""
        # The mode too: a test's settings may start from NOWHERE_ENV, which turns mesh auth off.
        return {"NOETL_MESH_AUTH": TOKEN, **MeshCredentials(self.run_dir / AUTH_DIR).for_process(identity)}


@asynccontextmanager
async def running_process_mesh(
    pg_server: PgServer,
    run_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    supervise: bool = False,
    shards: int = 1,
) -> AsyncIterator[ProcessMesh]:
    """Starts the mesh on a fresh database of `pg_server` (and, with `shards` > 1, one fresh
    database per shard beside it); stops it and drops the databases on exit.

    `env` is laid over this process's environment for every mesh process (e.g. short leases).
    Unsupervised unless asked: tests that stop a process on purpose expect it to stay stopped.
    """
    dsn = await infra.fresh_database(pg_server, prefix="mesh_e2e")
    config = StackConfig(
        run_dir=run_dir,
        ports=Ports.ephemeral(),
        pg_dsn=dsn,
        nats_url=None,
        base_env={**os.environ, **(env or {})},
        supervise=supervise,
        shards=shards,
    )
    stack = Stack(config)
    try:
        try:
            info = await asyncio.to_thread(stack.up)
        except StartError as exc:
            # pytest prints the message only; the process's last lines say why it stopped.
            raise AssertionError(f"{exc}\n--- last lines of the {exc.name} log ---\n{exc.log_tail}") from exc
        yield ProcessMesh(info, stack)
    finally:
        await asyncio.to_thread(stack.down)
        for database in {dsn, *shard_databases(dsn, shards)}:
            await infra.drop_database(pg_server, database)


# --------------------------------------------------------------------------------------------------
# Gateway calls


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, (
        f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text}"
    )
    body = response.json()
    assert isinstance(body, dict), body
    return body


async def register(http: httpx.AsyncClient, path_or_text: Path | str) -> dict[str, Any]:
    """Registers a playbook (a file, or YAML text) and returns the 200 body."""
    content = (
        await asyncio.to_thread(path_or_text.read_text) if isinstance(path_or_text, Path) else path_or_text
    )
    return _ok(await http.post("/api/catalog/register", json={"content": content}))


async def execute(http: httpx.AsyncClient, path: str, payload: dict[str, Any] | None = None) -> str:
    """Starts the latest version of catalog `path` and returns the execution id (a string)."""
    body = _ok(await http.post("/api/execute", json={"path": path, "payload": payload or {}}))
    execution_id = body["execution_id"]
    assert isinstance(execution_id, str) and execution_id.isdigit(), body
    return execution_id


async def wait_terminal(http: httpx.AsyncClient, execution_id: str, seconds: float = 30.0) -> dict[str, Any]:
    """Polls `GET /api/executions/{id}` until the run has ended; returns that detail body.

    Ended = a terminal status *and* a terminal event written: the status alone can read
    COMPLETED (inferred, dsl.md §15.1 rule 2) or FAILED (a `command.failed`) before the
    orchestrator appends `playbook.completed` / `playbook.failed`.
    """

    async def ended() -> dict[str, Any] | None:
        response = await http.get(f"/api/executions/{execution_id}", params={"page_size": 10})
        if response.status_code == 404:
            return None  # no event yet
        body = _ok(response)
        if body["status"] in TERMINAL_STATUSES and any(
            e["event_type"] in TERMINAL_EVENTS for e in body["events"]
        ):
            return body
        return None

    await wait_for(ended, within=seconds, what=f"execution {execution_id} to end")
    # The route reads the status and the events separately: the status of the read that first
    # showed the terminal event may predate it (FAILED from a handled `command.failed`). A read
    # started after it was seen has both from after the end.
    detail = await ended()
    assert detail is not None
    return detail


async def events(http: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    """Every event of the execution, oldest first, paged through the detail route (newest first)."""
    collected: dict[int, dict[str, Any]] = {}
    page = 1
    while True:
        body = _ok(await http.get(f"/api/executions/{execution_id}", params={"page": page, "page_size": 500}))
        for event in body["events"]:
            collected[event["event_id"]] = event
        if not body["pagination"]["has_next"]:
            break
        page += 1
    return [collected[event_id] for event_id in sorted(collected)]


def _call_done(found: Iterable[dict[str, Any]], step: str) -> dict[str, Any]:
    done = [e for e in found if e["event_type"] == "call.done" and e["node_name"] == step]
    if not done:
        raise LookupError(f"step {step!r} has no call.done event")
    return done[-1]


def _tool_context(event: dict[str, Any]) -> dict[str, Any]:
    """`result.context.result.context` of a `call.done` (dsl.md §11.1)."""
    context: dict[str, Any] = event["result"]["context"]["result"]["context"]
    return context


def step_result(found: Iterable[dict[str, Any]], step: str) -> Any:
    """The user data of the step's (latest) `call.done`: `result.context.result.context.data`.

    Raises:
        LookupError: the step has no `call.done`.
    """
    return _tool_context(_call_done(found, step))["data"]


def step_stdout(found: Iterable[dict[str, Any]], step: str) -> str | None:
    """The captured stdout in the step's (latest) `call.done` context, if any."""
    stdout = _tool_context(_call_done(found, step)).get("stdout")
    return None if stdout is None else str(stdout)


async def request_count(http: httpx.AsyncClient, route: str, method: str, status: int = 200) -> float:
    """The gateway's `noetl_request_total` for one route template, method and status (0 when absent)."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    wanted = f'noetl_request_total{{method="{method}",route="{route}",status="{status}"}} '
    for line in response.text.splitlines():
        if line.startswith(wanted):
            return float(line[len(wanted) :])
    return 0.0


# --------------------------------------------------------------------------------------------------
# The test database


@asynccontextmanager
async def database(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def execution_database(cluster_dsn: str, execution_id: str | int) -> str:
    """The database that holds an execution's rows: the cluster database of a one-shard mesh,
    else its owning shard's (`<cluster>_shard_<k>`, the launcher's layout)."""
    name = infra.database_of(cluster_dsn)
    async with database(cluster_dsn) as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            name.replace("_", "\\_") + "\\_shard\\_%",
        )
    if not count:
        return cluster_dsn
    return shard_databases(cluster_dsn, int(count))[shard_for(int(execution_id), int(count))]


@dataclass
@dataclass
class NewRows:
    """Executions and events created inside a `new_rows` block; filled in when the block exits."""

    executions: int = -1
    events: int = -1


@asynccontextmanager
async def new_rows(dsn: str) -> AsyncIterator[NewRows]:
    """Counts `noetl.execution` / `noetl.event` rows of executions started inside the block.

    Execution ids are time-ordered snowflakes minted at start, so a run created during the
    block has an id above every id seen before it, whatever other runs are still writing.
    """
    query_max = (
        "SELECT GREATEST((SELECT max(execution_id) FROM noetl.execution),"
        " (SELECT max(execution_id) FROM noetl.event), 0)"
    )
    async with database(dsn) as conn:
        before = await conn.fetchval(query_max)
    counts = NewRows()
    yield counts
    async with database(dsn) as conn:
        counts.executions = await conn.fetchval(
            "SELECT count(*) FROM noetl.execution WHERE execution_id > $1", before
        )
        counts.events = await conn.fetchval(
            "SELECT count(*) FROM noetl.event WHERE execution_id > $1", before
        )


# --------------------------------------------------------------------------------------------------
# Subprocesses


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"rc={self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


async def mesh_run(process_mesh: ProcessMesh, file: Path, *args: str) -> Completed:
    """`python -m noetl_mesh --home <session run dir> run FILE ARGS` against the running mesh."""
    return await mesh_command(process_mesh, "run", str(file), *args)


async def mesh_command(process_mesh: ProcessMesh, *args: str, seconds: float = 60.0) -> Completed:
    """`python -m noetl_mesh --home <session run dir> ARGS` against the running mesh."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("NOETL_MESH_HOME", "NOETL_PG_DSN", "NOETL_NATS_URL")
    }
    return await run_process(
        sys.executable,
        "-m",
        "noetl_mesh",
        "--home",
        str(process_mesh.run_dir),
        *args,
        env=env,
        seconds=seconds,
    )


async def run_process(
    *argv: str | Path, env: dict[str, str] | None = None, cwd: Path = REPO, seconds: float = 60.0
) -> Completed:
    """Runs a command to completion and returns its exit code and decoded output.

    Raises:
        AssertionError: it did not finish within `seconds` (it is killed first).
    """
    process = await asyncio.create_subprocess_exec(
        *(str(a) for a in argv),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(seconds):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{argv} did not finish within {seconds:g}s") from None
    assert process.returncode is not None
    return Completed(process.returncode, out.decode(), err.decode())


# --------------------------------------------------------------------------------------------------
# A command that stays claimed until the test lets it go


def gated_playbook(path: str) -> str:
    """A one-step playbook whose `start` waits (up to 30 s) until the file named by `gate` exists.

    While it waits, its command is claimed and live: what claim-conflict tests need, without
    guessing how long a sleep must be.
    """
    return f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: {path.rpartition("/")[2]}
  path: {path}
workload:
  gate: ""
workflow:
  - step: start
    tool:
      kind: python
      input:
        gate: "{{{{ gate }}}}"
      code: |
        import os
        import time
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        result = {{"released": os.path.exists(gate)}}
"""


@dataclass(frozen=True)
class LiveClaim:
    """A claimed, still running command: its `command.issued` event id and the claiming worker."""

    event_id: int
    worker_id: str


async def wait_claimed(
    http: httpx.AsyncClient, execution_id: str, step: str, seconds: float = 30.0
) -> LiveClaim:
    """Waits until the worker has claimed the step's command."""

    async def claimed() -> LiveClaim | None:
        response = await http.get(f"/api/executions/{execution_id}", params={"page_size": 100})
        if response.status_code == 404:
            return None
        found = _ok(response)["events"]
        issued = [e for e in found if e["event_type"] == "command.issued" and e["node_name"] == step]
        claims = [e for e in found if e["event_type"] == "command.claimed" and e["node_name"] == step]
        if not issued or not claims:
            return None
        return LiveClaim(issued[0]["event_id"], claims[0]["result"]["context"]["worker_id"])

    live = await wait_for(claimed, within=seconds, what=f"a claim of {step!r} in execution {execution_id}")
    assert live is not None  # wait_for returns only a truthy value
    return live


def pg_credential(name: str, dsn: str) -> dict[str, Any]:
    """The README §4.2 registration body for the database `dsn` names."""
    parts = urllib.parse.urlsplit(dsn)
    return {
        "name": name,
        "type": "postgres",
        "data": {
            "db_host": parts.hostname or "127.0.0.1",
            "db_port": str(parts.port or 5432),
            "db_user": urllib.parse.unquote(parts.username or ""),
            "db_password": urllib.parse.unquote(parts.password or ""),
            "db_name": parts.path.lstrip("/"),
        },
    }
