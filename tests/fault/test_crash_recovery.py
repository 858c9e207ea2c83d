"""The fault suite: runs in flight finish through any single crash or restart, with no human.

A mesh of its own (its own embedded Postgres and NATS, so stopping them disturbs no other
test), supervised as `noetl-mesh up` supervises it. Each case starts `RUNS` executions of a
chain-plus-parallel-loop playbook, injects one fault once they are under way, and then only
waits: every run must reach COMPLETED with the right total and a log that keeps the §18
invariants (one root, one terminal, no dangling link, no fork, exact loop counts) within
`RECOVERY_SECONDS`. Crash windows inside a pass are hit deterministically by failpoints
(`kernel/failpoints.py`) rather than by timing.

Short leases and reaper intervals keep the suite bounded (`ENV`); with the defaults the same
recovery takes up to one claim lease (120 s) for a command whose worker was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import grpc
import httpx
import nats
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from noetl_mesh.config import Ports, StackConfig
from noetl_mesh.embedded import EmbeddedNats, EmbeddedPostgres
from noetl_mesh.stack import SUPERVISOR_PID_FILE, Stack
from noetl_mesh.state import StackInfo
from tests.helpers.bus import STREAM, read_stream
from tests.helpers.invariants import finish
from tests.helpers.mesh import TERMINAL_EVENTS, execute, register
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.fault

RUNS = 20
ITEMS = 6
RECOVERY_SECONDS = 90.0
OUTAGE_SECONDS = 10.0
ENV = {
    "NOETL_COMMAND_CLAIM_LEASE_SECONDS": "8",
    "NOETL_COMMAND_REAPER_INTERVAL_SECONDS": "1",
    "NOETL_COMMAND_REAPER_PENDING_RETRY_SECONDS": "6",
    "NOETL_RECONCILE_INTERVAL_SECONDS": "1",
    "NOETL_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
}

PLAYBOOK = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: faults_{tag}, path: tests/fault/{tag}}}
workload: {{items: [1, 2, 3, 4, 5, 6]}}
workflow:
  - step: start
    tool: {{kind: python, code: "result = {{'n': 1}}", spec: {{policy: {{rules: [{retry}]}}}}}}
    next: second
  - step: second
    tool:
      kind: python
      input: {{n: "{{{{ start.n }}}}"}}
      code: "result = {{'n': n + 1}}"
      spec: {{policy: {{rules: [{retry}]}}}}
    next: fan
  - step: fan
    loop:
      in: "{{{{ items }}}}"
      iterator: item
      spec: {{mode: parallel, max_in_flight: 3}}
    tool:
      kind: python
      input: {{item: "{{{{ item }}}}"}}
      code: "result = {{'v': item * 10}}"
      spec: {{policy: {{rules: [{retry}]}}}}
    next:
      spec: {{mode: exclusive}}
      arcs:
        - {{step: total, when: '{{{{ event.name == "loop.done" }}}}'}}
  - step: total
    tool:
      kind: python
      input: {{rows: "{{{{ fan }}}}", n: "{{{{ second.n }}}}"}}
      code: "result = {{'total': sum(r['v'] for r in rows) + n}}"
      spec: {{policy: {{rules: [{retry}]}}}}
"""
# A command whose worker dies is re-run when its policy allows a retry (dsl.md §17.7).
RETRY = "{when: \"{{ output.status == 'error' }}\", then: {do: retry, attempts: 5, delay: 0.1}}"
EXPECTED_TOTAL = sum(i * 10 for i in range(1, ITEMS + 1)) + 2


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    run_dir = tmp_path_factory.mktemp("fault-mesh")
    config = StackConfig(
        run_dir=run_dir,
        ports=Ports.ephemeral(),
        base_env={**os.environ, **ENV},
        supervise=True,
    )
    mesh = Stack(config)
    await asyncio.to_thread(mesh.up)
    try:
        yield mesh
    finally:
        await asyncio.to_thread(mesh.down)


def info_of(stack: Stack) -> StackInfo:
    info = stack.info()
    assert info is not None
    return info


async def start_runs(http: httpx.AsyncClient, tag: str) -> list[str]:
    path = (await register(http, PLAYBOOK.format(tag=tag, retry=RETRY)))["path"]
    return [await execute(http, path) for _ in range(RUNS)]


async def under_way(stack: Stack, execution_ids: list[str]) -> None:
    """Until a few commands of the batch have completed: the fault lands with runs in flight."""

    async def progressed() -> bool:
        conn = await asyncpg.connect(info_of(stack).pg_dsn)
        try:
            done = await conn.fetchval(
                "SELECT count(*) FROM noetl.event WHERE event_type = 'command.completed' "
                "AND execution_id = ANY($1::bigint[])",
                [int(e) for e in execution_ids],
            )
        finally:
            await conn.close()
        return int(done) >= RUNS // 2

    await wait_for(progressed, what="runs to be under way", within=60.0, interval=0.05)


async def ended(http: httpx.AsyncClient, execution_id: str) -> None:
    """Until the run's detail shows its terminal event; a mesh still healing (a 5xx, a refused
    connection) counts as not yet."""

    async def terminal() -> bool:
        try:
            response = await http.get(f"/api/executions/{execution_id}", params={"page_size": 10})
        except httpx.TransportError:
            return False
        if response.status_code >= 500:
            return False
        assert response.status_code == 200, response.text
        return any(e["event_type"] in TERMINAL_EVENTS for e in response.json()["events"])

    await wait_for(terminal, what=f"execution {execution_id} to end", within=RECOVERY_SECONDS, interval=0.2)


async def state_of(pg_dsn: str, execution_id: str) -> str:
    """What a stuck run looks like, for the failure message: its log tail and command rows."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        events = await conn.fetch(
            "SELECT event_id, prev_event_id, event_type, node_name FROM noetl.event WHERE execution_id = $1 "
            "ORDER BY event_id DESC LIMIT 12",
            int(execution_id),
        )
        commands = await conn.fetch(
            "SELECT step_name, status, worker_id, attempt FROM noetl.command WHERE execution_id = $1 "
            "ORDER BY command_id",
            int(execution_id),
        )
        row = await conn.fetchrow(
            "SELECT status FROM noetl.execution WHERE execution_id = $1", int(execution_id)
        )
    finally:
        await conn.close()
    return (
        f"execution row: {dict(row) if row else None}\nlast events (newest first):\n"
        + "\n".join(f"  {dict(e)}" for e in events)
        + "\ncommands:\n"
        + "\n".join(f"  {dict(c)}" for c in commands)
    )


async def all_complete(stack: Stack, execution_ids: list[str]) -> None:
    info = info_of(stack)
    async with httpx.AsyncClient(base_url=info.gateway_url, timeout=30.0) as http:
        for execution_id in execution_ids:
            try:
                await ended(http, execution_id)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{await state_of(info.pg_dsn, execution_id)}") from None
            run = await finish(http, info.pg_dsn, execution_id)
            assert run.status == "COMPLETED", (execution_id, run.detail.get("error"), run.failures)
            total = [e for e in run.log if e.event_type == "call.done" and e.node_name == "total"]
            assert total, execution_id
            data = total[-1].context["result"]["context"]["data"]
            assert data == {"total": EXPECTED_TOTAL}, (execution_id, data)


def kill(stack: Stack, name: str) -> None:
    [process] = [p for p in info_of(stack).processes if p.name == name]
    os.kill(process.pid, signal.SIGKILL)


async def exercise(stack: Stack, tag: str, fault: Callable[[], Awaitable[None]]) -> None:
    async with httpx.AsyncClient(base_url=info_of(stack).gateway_url, timeout=30.0) as http:
        runs = await start_runs(http, tag)
    await under_way(stack, runs)
    await fault()
    healed = time.monotonic()
    await all_complete(stack, runs)
    # For the record (docs/durability.md): how long the in-flight runs took to finish once the
    # fault was over, appended beside the run dirs.
    record = info_of(stack).run_dir.parent / "fault-recovery.txt"
    with record.open("a") as out:
        out.write(f"{tag}: {RUNS} runs completed {time.monotonic() - healed:.1f}s after the fault\n")


@pytest.mark.parametrize(
    "service", ["execution", "events", "worker", "outbox", "gateway", "catalog", "secrets"]
)
async def test_runs_finish_through_a_sigkill(stack: Stack, service: str) -> None:
    async def fault() -> None:
        kill(stack, service)

    await exercise(stack, f"kill_{service}", fault)
    restarted = [p for p in info_of(stack).processes if p.name == service]
    assert restarted[0].restarts >= 1, "the supervisor should have started it again"
    # The runs may finish before the gateway's channel to a restarted service has reconnected
    # (its backoff is at most 2 s, kernel/grpc_client.py); until then such calls answer 503.
    # The case ends when the gateway serves them again, so the next one starts on a whole mesh.
    await wait_for(lambda: gateway_serves(stack), what="the gateway to serve again", within=15.0)


async def gateway_serves(stack: Stack) -> bool:
    """A catalog write and an execution read through the gateway both answer 200."""
    async with httpx.AsyncClient(base_url=info_of(stack).gateway_url, timeout=10.0) as http:
        registered = await http.post(
            "/api/catalog/register", json={"content": PLAYBOOK.format(tag="serving", retry=RETRY)}
        )
        listed = await http.get("/api/executions", params={"page_size": 1})
    return registered.status_code == listed.status_code == 200


@contextlib.contextmanager
def supervisor_paused(stack: Stack) -> Iterator[None]:
    """The supervisor would start Postgres or NATS again within a second; paused, the outage
    lasts as long as the test says (SIGSTOP / SIGCONT)."""
    pid = int((info_of(stack).run_dir / SUPERVISOR_PID_FILE).read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_runs_finish_through_a_postgres_outage(stack: Stack) -> None:
    server = EmbeddedPostgres(info_of(stack).run_dir / "postgres")

    events_addr = info_of(stack).events_addrs[0]

    async def fault() -> None:
        with supervisor_paused(stack):
            await asyncio.to_thread(server.stop)
            # A write path that makes no progress says so, for Kubernetes to act on.
            await wait_for(
                lambda: serving_is(events_addr, health_pb2.HealthCheckResponse.NOT_SERVING),
                what="the events service to report NOT_SERVING",
                within=OUTAGE_SECONDS,
                interval=0.5,
            )
            await asyncio.to_thread(stack.up)  # starts only what is missing: Postgres
        await wait_for(
            lambda: serving_is(events_addr, health_pb2.HealthCheckResponse.SERVING),
            what="the events service to report SERVING again",
            within=30.0,
            interval=0.5,
        )

    await exercise(stack, "postgres", fault)


async def test_runs_finish_through_a_postgres_crash(stack: Stack) -> None:
    """Every process of the server killed at once (SIGKILL: no shutdown checkpoint, as when its
    container or machine dies), started again by the supervisor, which replays the WAL. Besides
    the runs finishing, nothing acknowledged may be lost: the outbox relays an event to the
    stream only after its transaction committed, so every event on the stream must be in the
    recovered log. A commit acknowledged before its WAL reached the disk fails this."""
    info = info_of(stack)
    server = EmbeddedPostgres(info.run_dir / "postgres")

    async def fault() -> None:
        postmaster = server.pid()
        assert postmaster is not None, "the embedded Postgres should be running"
        for pid in (*children_of(postmaster), postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await wait_for(
            lambda: accepts_queries(info.pg_dsn),
            what="the supervisor to start Postgres again",
            within=60.0,
            interval=0.5,
        )

    await exercise(stack, "postgres_crash", fault)
    relayed = await relayed_event_ids(info.nats_url)
    conn = await asyncpg.connect(info.pg_dsn)
    try:
        stored = await conn.fetch(
            "SELECT event_id FROM noetl.event WHERE event_id = ANY($1::bigint[])", relayed
        )
    finally:
        await conn.close()
    lost = set(relayed) - {row["event_id"] for row in stored}
    assert not lost, (
        f"{len(lost)} of {len(relayed)} relayed events are not in the log, e.g. {sorted(lost)[:5]}"
    )


async def accepts_queries(pg_dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(pg_dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        return bool(await conn.fetchval("SELECT true"))
    finally:
        await conn.close()


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a postmaster's backends and auxiliary processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # Fields after the parenthesised command name: state, ppid, ...
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


async def relayed_event_ids(nats_url: str) -> list[int]:
    """The event ids of every message on the mesh's event stream."""
    client = await nats.connect(nats_url)
    try:
        messages = await read_stream(client.jetstream(), STREAM, "noetl.events.>", at_least=1)
    finally:
        await client.close()
    return [int(orjson.loads(message.data)["event_id"]) for message in messages]


async def serving_is(address: str, expected: int) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return bool(response.status == expected)


async def test_runs_finish_through_a_nats_restart(stack: Stack) -> None:
    info = info_of(stack)
    server = EmbeddedNats(Path(info.run_dir) / "nats")

    async def fault() -> None:
        with supervisor_paused(stack):
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(stack.up)

    await exercise(stack, "nats", fault)


async def test_runs_finish_through_a_graceful_down_and_up(stack: Stack) -> None:
    """`noetl-mesh down` then `up` with runs in flight: Postgres data, the on-disk streams and
    the durable consumers carry them over (the new stack listens on new ports)."""

    async def fault() -> None:
        await asyncio.to_thread(stack.down)
        await asyncio.to_thread(stack.up)

    await exercise(stack, "down_up", fault)


async def test_up_on_a_running_stack_leaves_it_alone(stack: Stack) -> None:
    before = {p.name: p.pid for p in info_of(stack).processes}
    await asyncio.to_thread(stack.up)
    assert {p.name: p.pid for p in info_of(stack).processes} == before
