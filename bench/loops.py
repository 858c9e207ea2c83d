"""(d) Loops and a long chain, execute → COMPLETED, and what orchestration costs per step.

Three playbooks of `noop` steps, one run at a time, each timed like the 10-step chain (the clock
stops on the terminal event of the events service's `Subscribe` stream, or on `/status` polls):
- `seq200`: a sequential loop of 200 iterations (start → walk[200] → end);
- `par100`: a parallel loop of 100 iterations, all issued at once (start → fan[100] → end);
- `chain50`: a linear chain of 50 steps (start → s1 … s48 → end).

Orchestration overhead per step, from the events' server timestamps: a step's (iteration's)
`command.completed` → the next one's `command.issued`, i.e. the pass that event caused on the
execution shard's event feed (fold, evaluate, append, notify). For `seq200` the overhead is also read near iteration 10 and near
iteration 190: a pass that re-read or re-folded the log would be slower at 190. The pure engine
pass is timed in this process too (bench/passes.py). The execution service's
`noetl_orchestrate_pass_seconds` histogram gives the mean pass time inside the service.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from noetl.v1 import events_pb2_grpc

from bench import passes
from bench.chain import follow_run, poll_terminal
from bench.http import RawPoster
from bench.playbooks import call, execute, register
from bench.stats import histogram_mean, percentile
from bench.target import Snapshot, Target
from kernel.mesh_policy import LAUNCHER
from language.event_types import WRITTEN_TERMINAL

RUN_TIMEOUT = 300.0
POLL_SECONDS = 0.01
SEQ_ITERATIONS = 200
PAR_ITERATIONS = 100
CHAIN_STEPS = 50
AROUND = 5  # iterations either side of 10 and 190 that make up "the pass at step 10 / 190"

Event = tuple[str, str, float]  # (event_type, node_name, server timestamp in seconds)


def _parallel_loop(iterations: int) -> str:
    return (
        passes.sequential_loop(iterations)
        .replace("mode: sequential", "mode: parallel")
        .replace("seq_loop_", "par_loop_")
    )


def _chain(steps: int) -> str:
    names = ["start", *(f"s{i}" for i in range(1, steps - 1)), "end"]
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        f"metadata: {{name: chain_{steps}, path: bench/chain_{steps}}}",
        "workflow:",
    ]
    for name, following in zip(names, [*names[1:], None], strict=True):
        lines += [f"  - step: {name}", "    tool: {kind: noop}"]
        if following is not None:
            lines.append(f"    next: {following}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    content: str
    units: int  # iterations or steps
    step: str | None  # the loop step; None for the chain


SCENARIOS = {
    "seq200": Scenario(
        "seq200",
        f"bench/seq_loop_{SEQ_ITERATIONS}",
        passes.sequential_loop(SEQ_ITERATIONS),
        SEQ_ITERATIONS,
        "walk",
    ),
    "par100": Scenario(
        "par100", f"bench/par_loop_{PAR_ITERATIONS}", _parallel_loop(PAR_ITERATIONS), PAR_ITERATIONS, "walk"
    ),
    "chain50": Scenario("chain50", f"bench/chain_{CHAIN_STEPS}", _chain(CHAIN_STEPS), CHAIN_STEPS, None),
}


@dataclass
class LoopResult:
    scenario: Scenario
    method: str
    walls_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    # Per run: the median completed → next issued gap, ms (seq200, chain50).
    overhead_ms: list[float] = field(default_factory=list)
    # seq200 only: gaps around iteration 10 and around iteration 190, ms, all runs pooled.
    early_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)
    # par100 only: start completed → the last iteration issued (one pass issues all 100), and the
    # last iteration completed → loop.done.
    burst_ms: list[float] = field(default_factory=list)
    drain_ms: list[float] = field(default_factory=list)
    pass_mean_ms: dict[str, float] = field(default_factory=dict)  # histogram part → mean ms
    passes: int = 0
    failures: list[str] = field(default_factory=list)

    def median(self) -> float:
        return percentile(self.walls_ms, 50)


def _gaps(events: list[Event], step: str | None) -> list[float]:
    """Seconds from each command.completed to the next command.issued (of the loop step, or of any
    step in a chain), in log order."""
    gaps = []
    completed_at: float | None = None
    for kind, node, ts in events:
        if step is not None and node != step:
            continue
        if kind == "command.completed":
            completed_at = ts
        elif kind == "command.issued" and completed_at is not None:
            gaps.append(ts - completed_at)
            completed_at = None
    return gaps


def _first(events: list[Event], kind: str, node: str | None = None) -> float | None:
    return next((ts for k, n, ts in events if k == kind and (node is None or n == node)), None)


def _last(events: list[Event], kind: str, node: str) -> float | None:
    return next((ts for k, n, ts in reversed(events) if k == kind and n == node), None)


async def _all_events(poster: RawPoster, execution_id: str) -> list[Event]:
    from datetime import datetime

    found: dict[int, Event] = {}
    page = 1
    while True:
        detail = await call(poster, "GET", f"/api/executions/{execution_id}?page={page}&page_size=500")
        for e in detail["events"]:
            ts = datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")).timestamp()
            found[e["event_id"]] = (e["event_type"], e["node_name"], ts)
        if not detail["pagination"]["has_next"]:
            break
        page += 1
    return [found[k] for k in sorted(found)]


def _measure(result: LoopResult, events: list[Event]) -> None:
    scenario = result.scenario
    init = _first(events, "playbook.initialized")
    end = next((ts for k, _, ts in events if k in WRITTEN_TERMINAL), None)
    if init is not None and end is not None:
        result.server_ms.append((end - init) * 1000.0)
    gaps = _gaps(events, scenario.step)
    if scenario.name == "par100":
        step = scenario.step or ""
        entered, last_issued = (
            _first(events, "command.completed", "start"),
            _last(events, "command.issued", step),
        )
        last_done, loop_done = _last(events, "command.completed", step), _first(events, "loop.done", step)
        if entered is not None and last_issued is not None:
            result.burst_ms.append((last_issued - entered) * 1000.0)
        if last_done is not None and loop_done is not None:
            result.drain_ms.append((loop_done - last_done) * 1000.0)
        return
    if gaps:
        result.overhead_ms.append(percentile(gaps, 50) * 1000.0)
    if scenario.name == "seq200" and len(gaps) >= scenario.units - 1:
        # gaps[i]: iteration i completed → iteration i + 1 issued.
        result.early_ms += [g * 1000.0 for g in gaps[10 - AROUND : 10 + AROUND + 1]]
        result.late_ms += [g * 1000.0 for g in gaps[190 - AROUND : 190 + AROUND + 1]]


async def run_loops(target: Target, *, names: list[str], runs: int, warmup: int) -> list[LoopResult]:
    poster = RawPoster(target.gateway_url)
    channel = target.channel(target.events_addr, LAUNCHER) if target.events_addr else None
    stub = events_pb2_grpc.EventServiceStub(channel) if channel is not None else None
    results = []
    try:
        for name in names:
            scenario = SCENARIOS[name]
            result = LoopResult(scenario, "Subscribe stream" if stub else "status poll 10 ms")
            await register(poster, scenario.content)
            before = await Snapshot.take(target)
            for n in range(warmup + runs):
                if n == warmup:
                    before = await Snapshot.take(target)
                began = time.perf_counter()
                execution_id = await execute(poster, scenario.path)
                if stub is not None:
                    outcome, events = await follow_run(stub, execution_id, within=RUN_TIMEOUT)
                else:
                    outcome, events = (
                        await poll_terminal(poster, execution_id, within=RUN_TIMEOUT, every=POLL_SECONDS),
                        [],
                    )
                wall = (time.perf_counter() - began) * 1000.0
                if n < warmup:
                    continue
                if outcome != "playbook.completed":
                    result.failures.append(f"{execution_id}: {outcome}")
                    continue
                result.walls_ms.append(wall)
                _measure(result, events or await _all_events(poster, execution_id))
            after = await Snapshot.take(target)
            execution = (before.metrics.get("execution", {}), after.metrics.get("execution", {}))
            for part in ("evaluate", "total"):
                mean = histogram_mean(*execution, "noetl_orchestrate_pass_seconds", f'part="{part}"')
                if mean is not None:
                    result.pass_mean_ms[part] = mean[0] * 1000.0
                    result.passes = mean[1]
            results.append(result)
    finally:
        await poster.close()
        if channel is not None:
            await channel.close()
    return results


def rows(results: list[LoopResult], engine: passes.PassTimes | None) -> list[list[str]]:
    out: list[list[str]] = []
    for r in results:
        s = r.scenario
        unit = "step" if s.step is None else "iteration"
        label = {"seq200": "200-iteration sequential loop", "par100": "100-wide parallel loop"}.get(
            s.name, "50-step chain"
        )
        out += [
            [label, "median ms (execute → COMPLETED)", f"{r.median():.0f}", ""],
            [label, f"ms per {unit} (median / {s.units})", f"{r.median() / s.units:.1f}", ""],
        ]
        if r.overhead_ms:
            out.append(
                [label, "orchestration ms per step (median)", f"{percentile(r.overhead_ms, 50):.1f}", ""]
            )
        if r.early_ms and r.late_ms:
            out.append(
                [
                    label,
                    "pass ms near iteration 10 / 190",
                    f"{percentile(r.early_ms, 50):.1f} / {percentile(r.late_ms, 50):.1f}",
                    "",
                ]
            )
        if r.burst_ms:
            out.append(
                [
                    label,
                    "start done → 100 issued / last done → loop.done ms",
                    f"{percentile(r.burst_ms, 50):.0f} / {percentile(r.drain_ms, 50):.0f}",
                    "",
                ]
            )
        if r.pass_mean_ms:
            parts = " / ".join(f"{r.pass_mean_ms.get(p, float('nan')):.2f}" for p in ("evaluate", "total"))
            out.append([label, "service pass mean ms (evaluate / total)", parts, ""])
        out.append([label, "failed runs", str(len(r.failures)), ""])
    if engine is not None:
        out.append(
            [
                "engine pass in process (seq200)",
                "µs near iteration 10 / 100 / 190",
                f"{engine.at(10):.0f} / {engine.at(100):.0f} / {engine.at(190):.0f}",
                "",
            ]
        )
    return out


def describe(results: list[LoopResult], engine: passes.PassTimes | None) -> list[str]:
    lines = []
    for r in results:
        s = r.scenario
        lines.append(
            f"{s.name}: {len(r.walls_ms)} runs timed by {r.method}; wall median {r.median():.0f} ms "
            f"(min {min(r.walls_ms, default=float('nan')):.0f}, max {max(r.walls_ms, default=float('nan')):.0f}); "
            f"server-side median {percentile(r.server_ms, 50):.0f} ms; {r.passes} service passes"
        )
        if r.early_ms:
            lines.append(
                f"  completed → next issued near iteration 10: median {percentile(r.early_ms, 50):.1f} ms, "
                f"p90 {percentile(r.early_ms, 90):.1f}; near 190: median {percentile(r.late_ms, 50):.1f} ms, "
                f"p90 {percentile(r.late_ms, 90):.1f}"
            )
        for failure in r.failures[:5]:
            lines.append(f"  FAILED run: {failure}")
    if engine is not None:
        lines.append(
            f"engine pass (evaluate.advance, in process, {engine.repeats} runs of {engine.iterations} "
            f"iterations, median of ±{AROUND} iterations): "
            + ", ".join(f"{i}: {engine.at(i, AROUND):.0f} µs" for i in (10, 50, 100, 150, 190))
        )
    return lines
