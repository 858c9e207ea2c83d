"""(d) Loops and a long chain, execute → COMPLETED, and what orchestration costs per step.

Playbooks of `noop` steps, one run at a time, each timed like the 10-step chain (the clock
stops on the terminal event of the events service's `Subscribe` stream, or on `/status` polls):
- `seq200`: a sequential loop of 200 iterations (start → walk[200] → end);
- `par100`: a parallel loop of 100 iterations, all issued at once (start → walk[100] → end);
- `chain50`: a linear chain of 50 steps (start → s1 … s48 → end);
- `seq2000`, `par2000` (not in the default set: minutes each), the scale of one run: a sequential
  loop of 2,000 iterations, and a parallel one of 2,000 with `max_in_flight: 50`.

Orchestration overhead per step, from the events' server timestamps: a step's (iteration's)
`command.completed` → the next one's `command.issued`, i.e. the pass that event caused on the
execution shard's event feed (fold, evaluate, append, notify). A sequential loop also compares an
early stretch of the run with a late one (`Windows`): the gap, and the time from one iteration's
`command.issued` to the next one's; a pass that re-read or re-folded the log would be slower late.
`par2000` compares completions per second over its first and its last hundred completions. The
pure engine pass is timed in this process too (bench/passes.py). The execution service's
`noetl_orchestrate_pass_seconds` histogram gives the mean pass time inside the service.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import grpc
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
SCALE_TIMEOUT = 600.0  # seq2000, par2000
POLL_SECONDS = 0.01
SEQ_ITERATIONS = 200
PAR_ITERATIONS = 100
CHAIN_STEPS = 50
SCALE_ITERATIONS = 2000
SCALE_IN_FLIGHT = 50
HUNDRED = 100  # seq2000 / par2000 compare their first and last hundred iterations
AROUND = 5  # iterations either side of 10 and 190 that make up "the pass at step 10 / 190"
TENTHS = 10  # loops with windows: the whole run's profile, in tenths, tells a trend from a spike

Event = tuple[str, str, float]  # (event_type, node_name, server timestamp in seconds)


def _parallel_loop(iterations: int, max_in_flight: int | None = None) -> str:
    spec = "mode: parallel" if max_in_flight is None else f"mode: parallel, max_in_flight: {max_in_flight}"
    return (
        passes.sequential_loop(iterations).replace("mode: sequential", spec).replace("seq_loop_", "par_loop_")
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
class Windows:
    """An early and a late stretch of one run, as 0-based indices into a sequential loop's gaps
    (gap i: iteration i + 1 → iteration i + 2) or into a parallel loop's completions in time order."""

    early: range
    late: range
    names: tuple[str, str]  # how each stretch is called in the report

    @property
    def label(self) -> str:
        return " / ".join(self.names)


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    path: str
    content: str
    units: int  # iterations or steps
    step: str | None  # the loop step; None for the chain
    parallel: bool = False
    max_in_flight: int | None = None
    windows: Windows | None = None
    timeout: float = RUN_TIMEOUT


SCENARIOS = {
    "seq200": Scenario(
        "seq200",
        "200-iteration sequential loop",
        f"bench/seq_loop_{SEQ_ITERATIONS}",
        passes.sequential_loop(SEQ_ITERATIONS),
        SEQ_ITERATIONS,
        "walk",
        windows=Windows(
            range(10 - AROUND, 10 + AROUND + 1),
            range(190 - AROUND, 190 + AROUND + 1),
            ("near iteration 10", "near 190"),
        ),
    ),
    "par100": Scenario(
        "par100",
        "100-wide parallel loop",
        f"bench/par_loop_{PAR_ITERATIONS}",
        _parallel_loop(PAR_ITERATIONS),
        PAR_ITERATIONS,
        "walk",
        parallel=True,
    ),
    "chain50": Scenario(
        "chain50", "50-step chain", f"bench/chain_{CHAIN_STEPS}", _chain(CHAIN_STEPS), CHAIN_STEPS, None
    ),
    "seq2000": Scenario(
        "seq2000",
        "2,000-iteration sequential loop",
        f"bench/seq_loop_{SCALE_ITERATIONS}",
        passes.sequential_loop(SCALE_ITERATIONS),
        SCALE_ITERATIONS,
        "walk",
        # 1,999 gaps; the last hundred are those of iterations 1900-1999 (2000 has no next).
        windows=Windows(
            range(HUNDRED),
            range(SCALE_ITERATIONS - HUNDRED - 1, SCALE_ITERATIONS - 1),
            ("iterations 1-100", "1900-1999"),
        ),
        timeout=SCALE_TIMEOUT,
    ),
    "par2000": Scenario(
        "par2000",
        f"2,000-wide parallel loop, {SCALE_IN_FLIGHT} in flight",
        f"bench/par_loop_{SCALE_ITERATIONS}",
        _parallel_loop(SCALE_ITERATIONS, SCALE_IN_FLIGHT),
        SCALE_ITERATIONS,
        "walk",
        parallel=True,
        max_in_flight=SCALE_IN_FLIGHT,
        windows=Windows(
            range(HUNDRED),
            range(SCALE_ITERATIONS - HUNDRED, SCALE_ITERATIONS),
            ("1-100", "1901-2000"),
        ),
        timeout=SCALE_TIMEOUT,
    ),
}


@dataclass
class LoopResult:
    scenario: Scenario
    method: str
    walls_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    # Per run: the median completed → next issued gap, ms (sequential loops, chain50).
    overhead_ms: list[float] = field(default_factory=list)
    # Sequential loops, all runs pooled, over the scenario's early / late windows, ms: the gaps
    # (completed → next issued), and the iteration's whole cost (issued → next issued).
    early_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)
    early_cadence_ms: list[float] = field(default_factory=list)
    late_cadence_ms: list[float] = field(default_factory=list)
    # Parallel loops with windows, per run: completions per second over the early / late window.
    early_rate: list[float] = field(default_factory=list)
    late_rate: list[float] = field(default_factory=list)
    # Loops with windows: figure → per run, the figure over each tenth of the run (sequential:
    # median gap and median issued → next issued; parallel: completions per second).
    tenths: dict[str, list[list[float]]] = field(default_factory=dict)
    # Parallel loops, per run: the most iterations issued and not yet completed at one time.
    in_flight: list[int] = field(default_factory=list)
    # par100 only: start completed → the last iteration issued (one pass issues all 100), and the
    # last iteration completed → loop.done (every parallel loop).
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


def _times(events: list[Event], kind: str, node: str) -> list[float]:
    """Server timestamps of every `kind` event of `node`, in time order."""
    return sorted(ts for k, n, ts in events if k == kind and n == node)


def _first(events: list[Event], kind: str, node: str | None = None) -> float | None:
    return next((ts for k, n, ts in events if k == kind and (node is None or n == node)), None)


def _last(events: list[Event], kind: str, node: str) -> float | None:
    return next((ts for k, n, ts in reversed(events) if k == kind and n == node), None)


def _most_in_flight(events: list[Event], node: str) -> int:
    """The most `node` commands issued and not yet completed at once, in log order."""
    open_now = most = 0
    for kind, n, _ in events:
        if n != node:
            continue
        if kind == "command.issued":
            open_now += 1
            most = max(most, open_now)
        elif kind in ("command.completed", "command.failed"):
            open_now -= 1
    return most


def _tenths(values: list[float]) -> list[range]:
    size = len(values) // TENTHS
    return [range(i * size, (i + 1) * size) for i in range(TENTHS)] if size else []


def _rate(times: list[float], window: range) -> float | None:
    """Events per second over `times[window]`: (count - 1) intervals over the window's span."""
    stretch = times[window.start : window.stop]
    if len(stretch) < 2 or stretch[-1] <= stretch[0]:
        return None
    return (len(stretch) - 1) / (stretch[-1] - stretch[0])


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


def _measure_parallel(result: LoopResult, events: list[Event], step: str) -> None:
    scenario = result.scenario
    result.in_flight.append(_most_in_flight(events, step))
    completions = _times(events, "command.completed", step)
    last_done, loop_done = _last(events, "command.completed", step), _first(events, "loop.done", step)
    if last_done is not None and loop_done is not None:
        result.drain_ms.append((loop_done - last_done) * 1000.0)
    if scenario.max_in_flight is None:
        entered, last_issued = (
            _first(events, "command.completed", "start"),
            _last(events, "command.issued", step),
        )
        if entered is not None and last_issued is not None:
            result.burst_ms.append((last_issued - entered) * 1000.0)
    if scenario.windows is not None:
        early, late = _rate(completions, scenario.windows.early), _rate(completions, scenario.windows.late)
        if early is not None and late is not None:
            result.early_rate.append(early)
            result.late_rate.append(late)
        rates = [_rate(completions, tenth) for tenth in _tenths(completions)]
        by_tenth = [rate if rate is not None else float("nan") for rate in rates]
        result.tenths.setdefault("completions/s", []).append(by_tenth)


def _measure(result: LoopResult, events: list[Event]) -> None:
    scenario = result.scenario
    init = _first(events, "playbook.initialized")
    end = next((ts for k, _, ts in events if k in WRITTEN_TERMINAL), None)
    if init is not None and end is not None:
        result.server_ms.append((end - init) * 1000.0)
    if scenario.parallel and scenario.step is not None:
        _measure_parallel(result, events, scenario.step)
        return
    gaps = _gaps(events, scenario.step)
    if gaps:
        result.overhead_ms.append(percentile(gaps, 50) * 1000.0)
    windows = scenario.windows
    if windows is not None and scenario.step is not None and len(gaps) >= scenario.units - 1:
        issued = _times(events, "command.issued", scenario.step)
        cadence = [b - a for a, b in itertools.pairwise(issued)]
        for stretch, gap_ms, cadence_ms in (
            (windows.early, result.early_ms, result.early_cadence_ms),
            (windows.late, result.late_ms, result.late_cadence_ms),
        ):
            gap_ms += [gaps[i] * 1000.0 for i in stretch]
            cadence_ms += [cadence[i] * 1000.0 for i in stretch]
        for figure, values in (("completed → next issued", gaps), ("issued → next issued", cadence)):
            by_tenth = [percentile(values[t.start : t.stop], 50) * 1000.0 for t in _tenths(values)]
            result.tenths.setdefault(f"median {figure} ms", []).append(by_tenth)


def _progress(events: list[Event], step: str | None) -> str:
    """What a run that did not complete got through: its events and completed commands."""
    done = sum(1 for k, n, _ in events if k == "command.completed" and (step is None or n == step))
    last = events[-1][0] if events else "none"
    return f"{len(events)} events seen, {done} {step or 'step'} commands completed, last event {last}"


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
                events: list[Event] = []
                if stub is not None:
                    try:
                        outcome, events = await follow_run(stub, execution_id, within=scenario.timeout)
                    except grpc.aio.AioRpcError as exc:
                        outcome = f"Subscribe failed: {exc.code().name} {exc.details()}"
                else:
                    outcome = await poll_terminal(
                        poster, execution_id, within=scenario.timeout, every=POLL_SECONDS
                    )
                wall = (time.perf_counter() - began) * 1000.0
                if n < warmup:
                    continue
                if outcome != "playbook.completed":
                    seen = events or await _all_events(poster, execution_id)
                    result.failures.append(f"{execution_id}: {outcome}; {_progress(seen, scenario.step)}")
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


def _pair(early: list[float], late: list[float], digits: int = 1) -> str:
    return f"{percentile(early, 50):.{digits}f} / {percentile(late, 50):.{digits}f}"


def rows(results: list[LoopResult], engine: passes.PassTimes | None) -> list[list[str]]:
    out: list[list[str]] = []
    for r in results:
        s, label = r.scenario, r.scenario.label
        unit = "step" if s.step is None else "iteration"
        out += [
            [label, "median ms (execute → COMPLETED)", f"{r.median():.0f}", ""],
            [label, f"ms per {unit} (median / {s.units})", f"{r.median() / s.units:.1f}", ""],
        ]
        if r.overhead_ms:
            out.append(
                [label, "orchestration ms per step (median)", f"{percentile(r.overhead_ms, 50):.1f}", ""]
            )
        if s.windows is not None and r.early_ms and r.late_ms:
            out.append([label, f"pass ms {s.windows.label}", _pair(r.early_ms, r.late_ms), ""])
            out.append(
                [
                    label,
                    f"issued → next issued ms {s.windows.label}",
                    _pair(r.early_cadence_ms, r.late_cadence_ms),
                    "",
                ]
            )
        if s.windows is not None and r.early_rate and r.late_rate:
            out.append(
                [
                    label,
                    f"completions/s over completions {s.windows.label}",
                    _pair(r.early_rate, r.late_rate, 0),
                    "",
                ]
            )
        if r.in_flight:
            out.append([label, "most iterations in flight", str(max(r.in_flight)), ""])
        if r.burst_ms:
            out.append(
                [
                    label,
                    f"start done → {s.units} issued / last done → loop.done ms",
                    _pair(r.burst_ms, r.drain_ms, 0),
                    "",
                ]
            )
        elif r.drain_ms:
            out.append([label, "last done → loop.done ms", f"{percentile(r.drain_ms, 50):.0f}", ""])
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
        if s.windows is not None and r.early_ms:
            early, late = s.windows.names
            lines.append(
                f"  completed → next issued, {early}: median {percentile(r.early_ms, 50):.1f} ms, "
                f"p90 {percentile(r.early_ms, 90):.1f}; {late}: median {percentile(r.late_ms, 50):.1f} ms, "
                f"p90 {percentile(r.late_ms, 90):.1f}"
            )
            lines.append(
                f"  issued → next issued, {early}: median {percentile(r.early_cadence_ms, 50):.1f} ms, "
                f"p90 {percentile(r.early_cadence_ms, 90):.1f}; {late}: median "
                f"{percentile(r.late_cadence_ms, 50):.1f} ms, p90 {percentile(r.late_cadence_ms, 90):.1f}"
            )
        for figure, runs in r.tenths.items():
            lines.append(
                f"  {figure} by tenth of the run (median over runs): "
                + ", ".join(f"{percentile(column, 50):.1f}" for column in zip(*runs, strict=True))
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
