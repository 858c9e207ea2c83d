"""(b) Latency of a 10-step linear chain (start → s1 … s8 → end) from execute to COMPLETED.

One run at a time. The clock starts before `POST /api/execute` is sent and stops when the
terminal event arrives on the events service's `Subscribe` stream (opened right after execute
answers; it replays the log from the beginning, then follows live, so nothing is missed). Without
the events address the status route is polled every 5 ms instead.

From the events' server timestamps each run is also split into phases, summed over the 10 steps:
- dispatch:     command.issued → command.claimed (outbox relay → NATS → worker pull → Claim)
- claim→start:  command.claimed → command.started (claim answer → worker's first event stored)
- run:          command.started → command.completed (the events service finishes the started
                message, the tool runs, and the worker's closing batch
                call.done + step.exit + command.completed is stored in one transaction)
- orchestrate:  command.completed → next command.issued (the shard's event feed: fold, evaluate,
                append, notify)
- start/finish: playbook.initialized → first command.issued, last command.completed → playbook.completed
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

import grpc
from noetl.v1 import events_pb2, events_pb2_grpc

from bench.cpu import CpuMeter, CpuReport
from bench.http import Poster, RawPoster
from bench.playbooks import CHAIN_STEPS, call, chain, execute, register
from bench.stats import per_unit_lines, percentile
from bench.target import Snapshot, Target
from kernel.mesh_policy import LAUNCHER
from language.event_types import WRITTEN_TERMINAL

RUN_TIMEOUT = 60.0
POLL_SECONDS = 0.005
PHASES = ("start", "dispatch", "claim→start", "run", "orchestrate", "finish")

Event = tuple[str, str, float]  # (event_type, node_name, server timestamp in seconds)


@dataclass
class ChainResult:
    kind: str
    method: str
    walls_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    phases_ms: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    failures: list[str] = field(default_factory=list)
    cpu: CpuReport | None = None
    cost: list[str] = field(default_factory=list)

    def median(self) -> float:
        return percentile(self.walls_ms, 50)

    def p90(self) -> float:
        return percentile(self.walls_ms, 90)


def _phases(events: list[Event]) -> dict[str, float] | None:
    """Per-phase milliseconds summed over the chain's steps; None when an event is missing."""
    first: dict[tuple[str, str], float] = {}
    for kind, node, ts in events:
        first.setdefault((kind, node), ts)
    init = next((ts for kind, _, ts in events if kind == "playbook.initialized"), None)
    done = next((ts for kind, _, ts in events if kind in WRITTEN_TERMINAL), None)
    if init is None or done is None:
        return None
    try:
        out = {p: 0.0 for p in PHASES}
        out["start"] = first[("command.issued", CHAIN_STEPS[0])] - init
        for index, step in enumerate(CHAIN_STEPS):
            issued = first[("command.issued", step)]
            claimed = first[("command.claimed", step)]
            started = first[("command.started", step)]
            completed = first[("command.completed", step)]
            out["dispatch"] += claimed - issued
            out["claim→start"] += started - claimed
            out["run"] += completed - started
            if index + 1 < len(CHAIN_STEPS):
                out["orchestrate"] += first[("command.issued", CHAIN_STEPS[index + 1])] - completed
            else:
                out["finish"] = done - completed
    except KeyError:
        return None
    return {p: v * 1000.0 for p, v in out.items()}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def follow_run(
    stub: events_pb2_grpc.EventServiceStub, execution_id: str, *, within: float = RUN_TIMEOUT
) -> tuple[str, list[Event]]:
    """The run's events from the Subscribe stream until its terminal event (type, events)."""
    events: list[Event] = []
    stream = stub.Subscribe(events_pb2.SubscribeRequest(execution_id=int(execution_id)), timeout=within)
    async for message in stream:
        e = message.event
        events.append((e.event_type, e.node_name, e.created_at.seconds + e.created_at.nanos / 1e9))
        if e.event_type in WRITTEN_TERMINAL:
            stream.cancel()
            return e.event_type, events
    return "stream ended without a terminal event", events


async def poll_terminal(
    poster: Poster, execution_id: str, *, within: float = RUN_TIMEOUT, every: float = POLL_SECONDS
) -> str:
    """The terminal event type as the status route reports it, polled every `every` seconds."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        status, raw = await poster.get(f"/api/executions/{execution_id}/status")
        # Not an inferred completion: that is also reported, transiently, between a step's
        # command.completed and the next command.issued (dsl.md §15.2).
        if status == 200 and b'"completion_inferred":false' in raw:
            if b'"failed":true' in raw:
                return "playbook.failed"
            if b'"completed":true' in raw:
                return "playbook.completed"
        await asyncio.sleep(every)
    return "timeout"


async def _events_over_http(poster: Poster, execution_id: str) -> list[Event]:
    detail = await call(poster, "GET", f"/api/executions/{execution_id}?page_size=500")
    return [(e["event_type"], e["node_name"], _ts(e["created_at"])) for e in reversed(detail["events"])]


async def run_chain(target: Target, *, kind: str, runs: int, warmup: int, poll: bool = False) -> ChainResult:
    """`poll` times by the status route even when the Subscribe stream is available."""
    poster = RawPoster(target.gateway_url)
    use_stream = target.events_addr is not None and not poll
    channel = target.channel(target.events_addr, LAUNCHER) if use_stream and target.events_addr else None
    stub = events_pb2_grpc.EventServiceStub(channel) if channel is not None else None
    result = ChainResult(kind=kind, method="Subscribe stream" if stub else "status poll 5 ms")
    meter = CpuMeter(target.cpu_roots)
    try:
        path, content = chain(kind)
        await register(poster, content)
        for n in range(warmup + runs):
            if n == warmup:
                before = await Snapshot.take(target)
                meter.start()
            began = time.perf_counter()
            execution_id = await execute(poster, path)
            if stub is not None:
                try:
                    outcome, events = await follow_run(stub, execution_id)
                except grpc.aio.AioRpcError as exc:
                    outcome, events = f"Subscribe failed: {exc.code().name} {exc.details()}", []
            else:
                outcome = await poll_terminal(poster, execution_id)
                events = []
            wall = (time.perf_counter() - began) * 1000.0
            if n < warmup:
                continue
            if outcome != "playbook.completed":
                result.failures.append(f"{execution_id}: {outcome}")
                continue
            result.walls_ms.append(wall)
            if not events:
                events = await _events_over_http(poster, execution_id)
            init = next((ts for k, _, ts in events if k == "playbook.initialized"), None)
            end = next((ts for k, _, ts in events if k in WRITTEN_TERMINAL), None)
            if init is not None and end is not None:
                result.server_ms.append((end - init) * 1000.0)
            phases = _phases(events)
            if phases is not None:
                for name, ms in phases.items():
                    result.phases_ms[name].append(ms)
        result.cpu = meter.stop()
        after = await Snapshot.take(target)
        result.cost = per_unit_lines(
            before.metrics,
            after.metrics,
            before_pg=before.pg,
            after_pg=after.pg,
            units=runs * len(CHAIN_STEPS),
            unit="step",
        )
    finally:
        await poster.close()
        if channel is not None:
            await channel.close()
    return result


def describe(result: ChainResult) -> list[str]:
    steps = len(CHAIN_STEPS)
    lines = [
        f"chain {result.kind}: {steps} steps, {len(result.walls_ms)} runs timed by {result.method}",
        f"  wall median {result.median():.0f} ms  p90 {result.p90():.0f} ms  "
        f"min {min(result.walls_ms, default=float('nan')):.0f} ms  max {max(result.walls_ms, default=float('nan')):.0f} ms"
        f"  → {result.median() / steps:.1f} ms/step;  server-side (initialized→completed) median "
        f"{percentile(result.server_ms, 50):.0f} ms",
    ]
    if result.phases_ms["dispatch"]:
        parts = [f"{p} {percentile(v, 50):.0f}" for p, v in result.phases_ms.items()]
        lines.append("  phase medians, ms summed over the 10 steps: " + ", ".join(parts))
    for failure in result.failures[:5]:
        lines.append(f"  FAILED run: {failure}")
    lines += ["  " + line for line in result.cost]
    if result.cpu is not None:
        lines += ["  " + line for line in result.cpu.lines()]
    return lines
