"""(a) Event ingest: `POST /api/events` throughput and latency under N concurrent clients.

Setup: `bench/ingest_target` (start noop → end noop) is started E times with an execution pool
that no worker consumes, so each execution stays RUNNING with its `start` command issued and
unclaimed, as while a worker runs a long step. Its command id is read back through
`GET /api/commands/{event_id}`.

Load: every client alternates two worker events that do not complete a command, so no
orchestration pass follows:
- `command.heartbeat` for the execution's real `start` command (projected onto the command row);
- `call.done` with a distinct command id per request (so idempotency never collapses it) and a
  small tool result, as a worker reports one call of a multi-call step.
Clients are spread round-robin over the executions (each execution's appends serialise on its
advisory lock, so E matters). The first `warmup` seconds are not counted.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field

import orjson

from bench.cpu import CpuMeter, CpuReport
from bench.http import HttpError, HttpxPoster, Poster, RawPoster
from bench.playbooks import INGEST_TARGET, SetupError, call, execute, register
from bench.stats import histogram_mean, per_unit_lines, percentile
from bench.target import Snapshot, Target

PARKED_POOL = "bench-parked"
# Fake command ids for call.done: far above any snowflake the mesh mints in this era (< 2^59).
FAKE_COMMAND_BASE = 7 << 60
MAX_REQUESTS_PER_CLIENT = 1_000_000
# Seconds the closed parked executions get, together, to report completed.
CLOSE_WAIT = 15.0


@dataclass
class IngestResult:
    clients: int
    executions: int
    client_kind: str
    window: float
    completed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    cpu: CpuReport | None = None
    append_txn: tuple[float, int] | None = None  # mean seconds of the events service's append
    cost: list[str] = field(default_factory=list)
    close_problems: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.completed / self.window if self.window > 0 else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def issued_event(poster: Poster, execution_id: str, step: str) -> int:
    """The event id of `step`'s `command.issued` in the execution (what a worker claims), once issued."""
    for _attempt in range(300):
        detail = await call(poster, "GET", f"/api/executions/{execution_id}?event_type=command.issued")
        issued = [e["event_id"] for e in detail["events"] if e["node_name"] == step]
        if issued:
            return int(issued[0])
        await asyncio.sleep(0.01)
    raise SetupError(f"execution {execution_id} never issued a command for {step}")


async def _command_of(poster: Poster, execution_id: str, step: str) -> int:
    """The command id of `step`'s command in the execution, once it has been issued."""
    event_id = await issued_event(poster, execution_id, step)
    return int((await call(poster, "GET", f"/api/commands/{event_id}"))["meta"]["command_id"])


async def parked_targets(poster: Poster, count: int) -> list[tuple[str, int]]:
    """(execution id, start command id) of `count` parked executions."""
    await register(poster, INGEST_TARGET)
    targets = []
    for _ in range(count):
        execution_id = await execute(poster, "bench/ingest_target", execution_pool=PARKED_POOL)
        targets.append((execution_id, await _command_of(poster, execution_id, "start")))
    return targets


async def close_parked(target: Target, targets: list[tuple[str, int]]) -> list[str]:
    """Completes the parked executions as their worker would (so a long-lived mesh is not left
    with RUNNING ones): call.done, step.exit, command.completed for `start`, then for `end`; then
    waits (bounded) until each reports completed: the owning shard ends it after reading the log."""
    poster = RawPoster(target.gateway_url)
    try:
        return await _close(poster, targets)
    finally:
        await poster.close()


def event_costs(
    before: Snapshot, after: Snapshot, units: int, *labels: str
) -> tuple[tuple[float, int] | None, list[str]]:
    """The events service's mean append time (series with every one of `labels`) and the gRPC
    and Postgres work per event between two snapshots."""
    append_txn = histogram_mean(
        before.metrics.get("events", {}),
        after.metrics.get("events", {}),
        "noetl_event_ingest_duration_seconds",
        *labels,
    )
    cost = per_unit_lines(
        before.metrics, after.metrics, before_pg=before.pg, after_pg=after.pg, units=units, unit="event"
    )
    return append_txn, cost


async def _close(poster: Poster, targets: list[tuple[str, int]]) -> list[str]:
    problems = []
    closed = []
    envelope = {"status": "success", "context": {"data": {}, "status": "success"}}
    for execution_id, start_command in targets:
        try:
            for step in ("start", "end"):
                command_id = (
                    start_command if step == "start" else await _command_of(poster, execution_id, "end")
                )
                for kind, payload in (
                    ("call.done", {"command_id": command_id, "call_index": 0, "result": envelope}),
                    ("step.exit", {"command_id": command_id, "status": "COMPLETED", "result": envelope}),
                    ("command.completed", {"command_id": command_id, "status": "success"}),
                ):
                    body = {"execution_id": execution_id, "step": step, "event_type": kind, "payload": payload,
                            "meta": {"command_id": command_id}, "worker_id": "bench-closer"}  # fmt: skip
                    await call(poster, "POST", "/api/events", body)
            closed.append(execution_id)
        except (SetupError, HttpError) as exc:
            problems.append(f"{execution_id}: {exc}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_WAIT
    for execution_id in closed:
        try:
            status = await call(poster, "GET", f"/api/executions/{execution_id}/status")
            while not status.get("completed") and loop.time() < deadline:
                await asyncio.sleep(0.1)
                status = await call(poster, "GET", f"/api/executions/{execution_id}/status")
            if not status.get("completed"):
                problems.append(f"{execution_id} not completed {CLOSE_WAIT:g}s after closing: {status}")
        except (SetupError, HttpError) as exc:
            problems.append(f"{execution_id}: {exc}")
    return problems


def _body(kind: str, execution_id: str, command_id: int, worker_id: str) -> bytes:
    if kind == "command.heartbeat":
        payload: dict[str, object] = {"command_id": command_id}
    else:
        envelope = {
            "status": "success",
            "context": {
                "data": {"rows": [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}], "count": 2},
                "status": "success",
                "duration_ms": 1.234,
            },
        }
        payload = {"command_id": command_id, "call_index": 0, "result": envelope}
    return orjson.dumps(
        {
            "execution_id": execution_id,
            "step": "start",
            "event_type": kind,
            "payload": payload,
            "meta": {"command_id": command_id},
            "worker_id": worker_id,
            "actionable": True,
            "informative": True,
        }
    )


async def run_ingest(
    target: Target, *, clients: int, duration: float, warmup: float, executions: int, client_kind: str
) -> IngestResult:
    setup = RawPoster(target.gateway_url)
    try:
        targets = await parked_targets(setup, executions)
    finally:
        await setup.close()

    shared = HttpxPoster(target.gateway_url, clients) if client_kind == "httpx" else None
    result = IngestResult(clients=clients, executions=executions, client_kind=client_kind, window=duration)
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    t_measure = t_start + warmup
    t_end = t_measure + duration
    fake_ids = itertools.count(FAKE_COMMAND_BASE)

    async def client(index: int) -> None:
        poster: Poster = shared if shared is not None else RawPoster(target.gateway_url)
        execution_id, command_id = targets[index % len(targets)]
        worker_id = f"bench-worker-{index}"
        try:
            for n in range(MAX_REQUESTS_PER_CLIENT):
                kind = "command.heartbeat" if n % 2 == 0 else "call.done"
                body = _body(kind, execution_id, command_id if n % 2 == 0 else next(fake_ids), worker_id)
                began = loop.time()
                if began >= t_end:
                    return
                try:
                    status, raw = await poster.post("/api/events", body)
                    error = None if status == 200 else f"HTTP {status}: {raw[:120]!r}"
                except HttpError as exc:
                    error = str(exc)[:160]
                    await asyncio.sleep(0.05)  # do not spin on a dead socket
                done = loop.time()
                if began >= t_measure:
                    if error is None:
                        result.latencies_ms.append((done - began) * 1000.0)
                        result.by_type[kind] += 1
                    else:
                        result.errors[error] += 1
                if t_measure <= done <= t_end and error is None:
                    result.completed += 1
        finally:
            if shared is None:
                await poster.close()

    meter = CpuMeter(target.cpu_roots)
    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(max(0.0, t_measure - loop.time()))
    before = await Snapshot.take(target)
    meter.start()
    await asyncio.sleep(max(0.0, t_end - loop.time()))
    result.cpu = meter.stop()
    after = await Snapshot.take(target)
    # Bounded: a request still in flight at the deadline gets the client's 30 s timeout at most.
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    if shared is not None:
        await shared.close()
    result.append_txn, result.cost = event_costs(before, after, result.completed)
    result.close_problems = await close_parked(target, targets)
    return result


def describe(result: IngestResult) -> list[str]:
    lines = [
        f"ingest: {result.clients} clients ({result.client_kind} keep-alive) over {result.executions} RUNNING "
        f"executions, {result.window:.0f}s window; events: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.by_type.items())),
        f"  {result.rps:.0f} req/s  p50 {result.pct(50):.1f} ms  p95 {result.pct(95):.1f} ms  "
        f"p99 {result.pct(99):.1f} ms  max {max(result.latencies_ms, default=float('nan')):.1f} ms  "
        f"errors {sum(result.errors.values())}",
    ]
    for message, count in result.errors.most_common(5):
        lines.append(f"  error x{count}: {message}")
    if result.append_txn is not None:
        lines.append(f"  events service append transaction: mean {result.append_txn[0] * 1000:.1f} ms")
    lines += ["  " + line for line in result.cost]
    for problem in result.close_problems[:3]:
        lines.append(f"  note: closing a parked execution: {problem}")
    if result.cpu is not None:
        lines += ["  " + line for line in result.cpu.lines()]
        if result.completed:
            lines.append(
                f"  client CPU per request {1e6 * result.cpu.bench / result.completed:.0f} us, "
                f"mesh CPU per request {1e3 * result.cpu.mesh_total / result.completed:.2f} ms"
            )
    return lines
