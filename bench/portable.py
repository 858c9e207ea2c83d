"""The three side-by-side scenarios, over the plain NoETL JSON API so they run against any base URL.

They are the reference peer's `bench_chain.py`, `bench_concurrent.py` and `bench_ingest.py`
(`../shared/peer/`) on this package's raw HTTP client, with the same playbooks, bodies and
clocks, so a figure taken here matches one taken with those scripts:

- sequential chain: `chain10_python_portable` (start, s1..s8, end; python steps), one run at a
  time; the clock runs from before `POST /api/execute` until a poll of
  `GET /api/executions/{id}/events?page_size=10` (every 5 ms, newest first) sees a terminal event.
  `/status` is not used: the reference reports `completed: true` there mid-run.
- concurrent chains: N executions of the same playbook started back to back; the wall time runs
  to the newest terminal event's server timestamp, so the poll's granularity is not in it.
- ingest: 64 clients `POST /api/events` for D seconds into parked executions whose `start` step
  sleeps (a long-running command), alternating `command.heartbeat` for that command and
  `step.enter` with a fresh command id; neither makes either server orchestrate.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from bench.http import HttpError, RawPoster
from bench.playbooks import call, execute, register
from bench.stats import percentile

TERMINAL = frozenset({"playbook.completed", "playbook.failed", "execution.cancelled", "execution.failed"})
CHAIN_PATH = "bench/chain10_python_portable"
CHAIN_STEPS = 10
POLL_SECONDS = 0.005
CONCURRENT_POLL_SECONDS = 0.02
RUN_TIMEOUT = 60.0
CONCURRENT_TIMEOUT = 300.0
FAKE_ID_BASE = 1 << 60  # above any snowflake either server mints now
MAX_REQUESTS_PER_CLIENT = 200_000


def chain_yaml() -> str:
    """The peer's `playbooks/chain10_python_portable.yaml`, step for step."""
    names = ["start", *(f"s{i}" for i in range(1, 9)), "end"]
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        f"metadata: {{name: chain10_python_portable, path: {CHAIN_PATH}}}",
        "workflow:",
    ]
    for index, name in enumerate(names):
        lines += [
            f"  - step: {name}",
            "    tool:",
            "      kind: python",
            f"      code: \"result = {{'i': {index}}}\"",
        ]
        if index + 1 < len(names):
            lines += [
                "    next:",
                "      spec: {mode: exclusive}",
                f"      arcs: [{{step: {names[index + 1]}}}]",
            ]
    return "\n".join(lines) + "\n"


def hold_yaml(hold: int) -> tuple[str, str]:
    """(path, YAML) of the ingest target: `start` sleeps `hold` seconds on the worker, then `end`."""
    path = f"bench/ingest_hold_{hold}s"
    return path, (
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        f"metadata: {{name: ingest_hold_{hold}s, path: {path}}}\n"
        "workflow:\n"
        "  - step: start\n    tool:\n      kind: python\n      code: |\n"
        f'        import time\n        time.sleep({hold})\n        result = {{"held": {hold}}}\n'
        "    next:\n      spec: {mode: exclusive}\n      arcs: [{step: end}]\n"
        "  - step: end\n    tool:\n      kind: python\n      code: \"result = {'done': True}\"\n"
    )


def _server_ts(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


async def _terminal(poster: RawPoster, execution_id: str) -> tuple[str, float | None] | None:
    """(terminal event type, its server timestamp) once the newest events hold one, else None."""
    status, raw = await poster.get(f"/api/executions/{execution_id}/events?page_size=10")
    if status != 200:
        return None
    for event in orjson.loads(raw).get("events") or []:
        if event.get("event_type") in TERMINAL:
            return str(event["event_type"]), _server_ts(event.get("created_at"))
    return None


async def _run_once(poster: RawPoster, path: str) -> tuple[str, float]:
    started = time.perf_counter()
    execution_id = await execute(poster, path)
    while time.perf_counter() - started < RUN_TIMEOUT:
        found = await _terminal(poster, execution_id)
        if found is not None:
            return found[0], (time.perf_counter() - started) * 1000.0
        await asyncio.sleep(POLL_SECONDS)
    return "timeout", (time.perf_counter() - started) * 1000.0


@dataclass
class ChainRuns:
    walls_ms: list[float] = field(default_factory=list)
    failures: int = 0

    def median(self) -> float:
        return percentile(self.walls_ms, 50)


async def sequential(base_url: str, runs: int, warmup: int) -> ChainRuns:
    poster = RawPoster(base_url)
    out = ChainRuns()
    try:
        await register(poster, chain_yaml())
        for index in range(warmup + runs):
            outcome, ms = await _run_once(poster, CHAIN_PATH)
            if index < warmup:
                continue
            if outcome == "playbook.completed":
                out.walls_ms.append(ms)
            else:
                out.failures += 1
    finally:
        await poster.close()
    return out


@dataclass(frozen=True)
class Concurrent:
    executions: int
    completed: int
    wall_s: float

    @property
    def steps_per_s(self) -> float:
        return self.completed * CHAIN_STEPS / self.wall_s if self.wall_s > 0 else 0.0


async def concurrent(base_url: str, executions: int) -> Concurrent:
    """One warm-up run, then `executions` started back to back from one client and polled to the end."""
    poster = RawPoster(base_url)
    try:
        await register(poster, chain_yaml())
        await _run_once(poster, CHAIN_PATH)
        started = time.time()
        ids = [await execute(poster, CHAIN_PATH) for _ in range(executions)]
        pending = set(ids)
        ends: dict[str, tuple[str, float]] = {}
        while pending and time.time() - started < CONCURRENT_TIMEOUT:
            for execution_id in list(pending):
                found = await _terminal(poster, execution_id)
                if found is not None:
                    ends[execution_id] = (found[0], found[1] if found[1] is not None else time.time())
                    pending.discard(execution_id)
                await asyncio.sleep(CONCURRENT_POLL_SECONDS)
    finally:
        await poster.close()
    last = max((ts for _, ts in ends.values()), default=time.time())
    done = sum(1 for kind, _ in ends.values() if kind == "playbook.completed")
    return Concurrent(executions=executions, completed=done, wall_s=last - started)


@dataclass
class Ingest:
    duration: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.duration

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def _start_command(poster: RawPoster, execution_id: str) -> int:
    for _attempt in range(1000):  # ≈10 s
        found = await call(poster, "GET", f"/api/executions/{execution_id}/events?event_type=command.issued")
        issued = [e["event_id"] for e in found.get("events") or [] if e.get("node_name") == "start"]
        if issued:
            command = await call(poster, "GET", f"/api/commands/{issued[0]}")
            return int((command.get("meta") or {})["command_id"])
        await asyncio.sleep(0.01)
    raise HttpError(f"execution {execution_id} never issued its start command")


def _ingest_body(kind: str, execution_id: str, command_id: int, worker_id: str) -> bytes:
    payload: dict[str, object] = {"command_id": command_id}
    if kind != "command.heartbeat":
        envelope = {"status": "success", "context": {
            "data": {"rows": [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}], "count": 2},
            "status": "success", "duration_ms": 1.234}}  # fmt: skip
        payload = {"command_id": command_id, "call_index": 0, "result": envelope}
    return orjson.dumps({"execution_id": execution_id, "step": "start", "event_type": kind, "payload": payload,
                         "meta": {"command_id": command_id}, "worker_id": worker_id,
                         "actionable": True, "informative": True})  # fmt: skip


async def ingest(
    base_url: str, *, clients: int, duration: float, warmup: float, parked: int, hold: int
) -> Ingest:
    """The load window only; the parked executions are cancelled afterwards (their step sleeps on)."""
    setup = RawPoster(base_url)
    path, text = hold_yaml(hold)
    try:
        await register(setup, text)
        ids = [await execute(setup, path) for _ in range(parked)]
        targets = [(execution_id, await _start_command(setup, execution_id)) for execution_id in ids]
    finally:
        await setup.close()
    out = Ingest(duration=duration)
    fake_ids = itertools.count(FAKE_ID_BASE + int(time.time()) * 1_000_000)
    begin = time.perf_counter()
    measure_from, measure_to = begin + warmup, begin + warmup + duration

    async def client(index: int) -> None:
        execution_id, command_id = targets[index % len(targets)]
        poster = RawPoster(base_url)
        try:
            for n in range(MAX_REQUESTS_PER_CLIENT):
                if time.perf_counter() >= measure_to:
                    break
                kind = "command.heartbeat" if n % 2 == 0 else "step.enter"
                cid = command_id if kind == "command.heartbeat" else next(fake_ids)
                body = _ingest_body(kind, execution_id, cid, f"bench-ingest-{index}")
                t0 = time.perf_counter()
                try:
                    ok = 200 <= (await poster.post("/api/events", body))[0] < 300
                except HttpError:
                    ok = False
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= measure_to:
                    if ok:
                        out.latencies_ms.append((t1 - t0) * 1000.0)
                    else:
                        out.errors += 1
                if not ok:
                    await asyncio.sleep(0.05)
        finally:
            await poster.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    closer = RawPoster(base_url)
    try:
        for execution_id, _ in targets:
            await closer.post(f"/api/executions/{execution_id}/cancel", b'{"reason": "bench ingest done"}')
    finally:
        await closer.close()
    return out
