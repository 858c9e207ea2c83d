"""(a) Event ingest: `POST /api/events` throughput and latency under N concurrent clients.

Setup: `bench/ingest_target` (start noop → end noop) is started E times with an execution pool
that no worker consumes, so each execution stays RUNNING with its `start` command issued and
unclaimed, as while a worker runs a long step. Its command id is read back through
`GET /api/commands/{event_id}`.

Load: every client alternates two worker events that do not complete a command, so no
orchestration pass follows (the execution service still folds each event, as it does for any):
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
from bench.playbooks import INGEST_TARGET, call, execute, register
from bench.stats import histogram_mean, percentile
from bench.target import Target, scrape

PARKED_POOL = "bench-parked"
# Fake command ids for call.done: far above any snowflake the mesh mints in this era (< 2^59).
_FAKE_COMMAND_BASE = 7 << 60
MAX_REQUESTS_PER_CLIENT = 1_000_000


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
    server: dict[str, tuple[float, int] | None] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.completed / self.window if self.window > 0 else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def _targets(poster: Poster, count: int) -> list[tuple[str, int]]:
    """(execution id, start command id) of `count` parked executions."""
    await register(poster, INGEST_TARGET)
    targets = []
    for _ in range(count):
        execution_id = await execute(poster, "bench/ingest_target", execution_pool=PARKED_POOL)
        command_id = None
        for _attempt in range(200):  # the command.issued event is written by execute itself
            detail = await call(poster, "GET", f"/api/executions/{execution_id}?event_type=command.issued")
            if detail["events"]:
                issued = detail["events"][0]["event_id"]
                command_id = int((await call(poster, "GET", f"/api/commands/{issued}"))["meta"]["command_id"])
                break
            await asyncio.sleep(0.01)
        if command_id is None:
            raise RuntimeError(f"execution {execution_id} never issued its start command")
        targets.append((execution_id, command_id))
    return targets


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
        targets = await _targets(setup, executions)
    finally:
        await setup.close()

    shared = HttpxPoster(target.gateway_url, clients) if client_kind == "httpx" else None
    result = IngestResult(clients=clients, executions=executions, client_kind=client_kind, window=duration)
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    t_measure = t_start + warmup
    t_end = t_measure + duration
    fake_ids = itertools.count(_FAKE_COMMAND_BASE)

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
    before = {name: scrape(url) for name, url in target.metrics.items()}
    meter.start()
    await asyncio.sleep(max(0.0, t_end - loop.time()))
    result.cpu = meter.stop()
    after = {name: scrape(url) for name, url in target.metrics.items()}
    # Bounded: a request still in flight at the deadline gets the client's 30 s timeout at most.
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    if shared is not None:
        await shared.close()
    if after.get("events"):
        ev_b, ev_a = before["events"], after["events"]
        result.server["Emit (events svc, incl. Advance)"] = histogram_mean(
            ev_b, ev_a, "noetl_grpc_server_duration_seconds", 'method="Emit"'
        )
        result.server["append txn (events svc)"] = histogram_mean(
            ev_b, ev_a, "noetl_event_ingest_duration_seconds", 'event_type="command.heartbeat"'
        )
    if after.get("execution"):
        result.server["Advance (execution svc)"] = histogram_mean(
            before["execution"], after["execution"], "noetl_grpc_server_duration_seconds", 'method="Advance"'
        )
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
    server = [f"{name} {v[0] * 1000:.1f} ms" for name, v in result.server.items() if v is not None]
    if server:
        lines.append("  server-side means: " + ", ".join(server))
    if result.cpu is not None:
        lines += ["  " + line for line in result.cpu.lines()]
        if result.completed:
            lines.append(
                f"  client CPU per request {1e6 * result.cpu.bench / result.completed:.0f} us, "
                f"mesh CPU per request {1e3 * result.cpu.mesh_total / result.completed:.2f} ms"
            )
    return lines

