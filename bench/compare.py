"""`python -m bench --compare URL`: the portable scenarios against this mesh and another server, alternating.

Each round runs every scenario on one side and then on the other (the side that goes first swaps
every round), so a drift in the machine's load hits both. Only one side is under load at a time.
Figures are the median over rounds of each side's figure, and the ratio is mesh / other for
throughput and other / mesh for latency (above 1: the mesh is faster either way).

CPU: the mesh's processes are known (their run dir), so its CPU is split by process. The other
server's processes are not; its CPU is what the machine was busy with beyond this process and the
mesh, which also holds whatever other sessions ran meanwhile (an upper bound, labelled so).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench import portable
from bench.cpu import CpuMeter, CpuReport, wait_quiet
from bench.stats import percentile, table
from bench.target import Target

MESH, OTHER = "mesh", "other"
INGEST_PARKED = 4  # the peer's default: each parked run holds one of the reference worker's 8 slots
HOLD_SLACK_S = 15  # set-up before the load window plus the cancel after it
# Before each scenario: at most this long for the machine to be busy under a tenth of its cores,
# so neither side's leftovers (a server still working off its ingest, Postgres's autovacuum)
# load the other's measurement.
QUIET_BUSY = 0.10
QUIET_WAIT_S = 60.0

T = TypeVar("T")


@dataclass(frozen=True)
class CompareOptions:
    rounds: int
    runs: int
    warmup_runs: int
    executions: int
    clients: int
    duration: float
    warmup: float


@dataclass
class Side:
    name: str
    url: str
    chain_ms: list[float] = field(default_factory=list)
    chain_failures: int = 0
    steps_per_s: list[float] = field(default_factory=list)
    concurrent_failures: int = 0
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    ingest_errors: int = 0
    concurrent_cpu: list[CpuReport] = field(default_factory=list)
    steps: int = 0
    ingest_cpu: list[CpuReport] = field(default_factory=list)
    requests: int = 0


async def _metered(roots: Mapping[str, int], work: Awaitable[T]) -> tuple[T, CpuReport]:
    meter = CpuMeter(roots)
    meter.start()
    result = await work
    return result, meter.stop()


async def _quiet() -> None:
    waited = await wait_quiet(QUIET_BUSY, QUIET_WAIT_S)
    if waited > 2.0:
        print(f"  (waited {waited:.0f} s for a quiet machine)", file=sys.stderr, flush=True)


async def _round(side: Side, roots: Mapping[str, int], options: CompareOptions) -> None:
    await _quiet()
    print(f"  {side.name}: sequential chain, {options.runs} runs ...", file=sys.stderr, flush=True)
    runs = await portable.sequential(side.url, options.runs, options.warmup_runs)
    side.chain_ms.append(runs.median())
    side.chain_failures += runs.failures
    await _quiet()
    print(f"  {side.name}: {options.executions} concurrent chains ...", file=sys.stderr, flush=True)
    found, cpu = await _metered(roots, portable.concurrent(side.url, options.executions))
    side.steps_per_s.append(found.steps_per_s)
    side.concurrent_failures += found.executions - found.completed
    side.concurrent_cpu.append(cpu)
    side.steps += found.completed * portable.CHAIN_STEPS


async def _ingest(side: Side, roots: Mapping[str, int], options: CompareOptions, hold: int) -> None:
    await _quiet()
    print(f"  {side.name}: ingest, {options.clients} clients ...", file=sys.stderr, flush=True)
    work = portable.ingest(
        side.url,
        clients=options.clients,
        duration=options.duration,
        warmup=options.warmup,
        parked=INGEST_PARKED,
        hold=hold,
    )
    found, cpu = await _metered(roots, work)
    side.rps.append(found.rps)
    side.p99_ms.append(found.pct(99))
    side.ingest_errors += found.errors
    side.ingest_cpu.append(cpu)
    side.requests += len(found.latencies_ms)


async def run_compare(target: Target, other_url: str, options: CompareOptions) -> tuple[Side, Side]:
    mesh = Side(MESH, target.gateway_url)
    other = Side(OTHER, other_url.rstrip("/"))
    hold = int(options.warmup + options.duration) + HOLD_SLACK_S
    for index in range(options.rounds):
        order = (mesh, other) if index % 2 == 0 else (other, mesh)
        print(f"round {index + 1}/{options.rounds}: {order[0].name} first", file=sys.stderr, flush=True)
        for side in order:
            await _round(side, target.cpu_roots, options)
        held_until = 0.0
        for side in order:
            await _ingest(side, target.cpu_roots, options, hold)
            held_until = time.monotonic() + HOLD_SLACK_S
        # The parked steps sleep on after the cancel; the next round's chains need the worker slots.
        await asyncio.sleep(max(0.0, held_until - time.monotonic()))
    return mesh, other


def _median(values: list[float]) -> float:
    return percentile(values, 50)


def _ratio(mesh: float, other: float, higher_is_better: bool) -> str:
    if mesh <= 0 or other <= 0:
        return "—"
    return f"{(mesh / other if higher_is_better else other / mesh):.2f}x"


def _cpu_ms(reports: list[CpuReport], units: int, pick: Callable[[CpuReport], float]) -> float:
    return 1000.0 * sum(pick(r) for r in reports) / units if units else float("nan")


def rows(mesh: Side, other: Side) -> list[list[str]]:
    chain_m, chain_o = _median(mesh.chain_ms), _median(other.chain_ms)
    sps_m, sps_o = _median(mesh.steps_per_s), _median(other.steps_per_s)
    rps_m, rps_o = _median(mesh.rps), _median(other.rps)
    p99_m, p99_o = _median(mesh.p99_ms), _median(other.p99_ms)
    return [
        ["sequential chain, median ms", f"{chain_m:.0f}", f"{chain_o:.0f}", _ratio(chain_m, chain_o, False)],
        ["  ms per step", f"{chain_m / 10:.1f}", f"{chain_o / 10:.1f}", ""],
        ["concurrent chains, steps/s", f"{sps_m:.0f}", f"{sps_o:.0f}", _ratio(sps_m, sps_o, True)],
        [
            "  CPU per step ms (other: upper bound)",
            f"{_cpu_ms(mesh.concurrent_cpu, mesh.steps, lambda r: r.mesh_total):.1f}",
            f"{_cpu_ms(other.concurrent_cpu, other.steps, lambda r: r.other):.1f}",
            "",
        ],
        ["ingest, req/s", f"{rps_m:.0f}", f"{rps_o:.0f}", _ratio(rps_m, rps_o, True)],
        ["  p99 ms", f"{p99_m:.0f}", f"{p99_o:.0f}", _ratio(p99_m, p99_o, False)],
        [
            "  CPU per request ms (other: upper bound)",
            f"{_cpu_ms(mesh.ingest_cpu, mesh.requests, lambda r: r.mesh_total):.2f}",
            f"{_cpu_ms(other.ingest_cpu, other.requests, lambda r: r.other):.2f}",
            "",
        ],
        [
            "failures (chains / concurrent / ingest errors)",
            f"{mesh.chain_failures} / {mesh.concurrent_failures} / {mesh.ingest_errors}",
            f"{other.chain_failures} / {other.concurrent_failures} / {other.ingest_errors}",
            "",
        ],
    ]


def _component_seconds(name: str, report: CpuReport) -> float:
    return report.by_component.get(name, 0.0)


def _split(reports: list[CpuReport], units: int) -> str:
    names = sorted(
        {n for r in reports for n in r.by_component},
        key=lambda n: -sum(r.by_component.get(n, 0.0) for r in reports),
    )
    parts = [f"{n} {_cpu_ms(reports, units, functools.partial(_component_seconds, n)):.2f}" for n in names]
    return ", ".join(parts)


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def describe(mesh: Side, other: Side, roots: Mapping[str, int]) -> list[str]:
    lines = [
        f"rounds: {len(mesh.chain_ms)}; per round sequential ms mesh {[round(v) for v in mesh.chain_ms]}"
        f" other {[round(v) for v in other.chain_ms]}; steps/s mesh {[round(v) for v in mesh.steps_per_s]}"
        f" other {[round(v) for v in other.steps_per_s]}; ingest req/s mesh {[round(v) for v in mesh.rps]}"
        f" other {[round(v) for v in other.rps]}",
        f"mesh CPU per step (concurrent chains), ms by process: {_split(mesh.concurrent_cpu, mesh.steps)}",
        f"mesh CPU per ingest request, ms by process: {_split(mesh.ingest_cpu, mesh.requests)}",
    ]
    for label, reports in (("concurrent chains", mesh.concurrent_cpu + other.concurrent_cpu),
                           ("ingest", mesh.ingest_cpu + other.ingest_cpu)):  # fmt: skip
        load = [f"{r.pct(r.machine_busy):.0f}%" for r in reports]
        lines.append(
            f"machine busy during {label} (mesh rounds, then other; of {100 * (os.cpu_count() or 1)}%): {load}"
        )
    # Whatever else ran while the mesh was measured (the other server's leftovers among it).
    others = [f"{r.pct(r.other):.0f}%" for r in mesh.concurrent_cpu + mesh.ingest_cpu]
    lines.append(f"everything else during the mesh's concurrent chains, then its ingest: {others}")
    stolen = [f"{r.pct(r.stolen):.0f}%" for r in mesh.concurrent_cpu + mesh.ingest_cpu]
    lines.append(f"hypervisor steal during the mesh's concurrent chains, then its ingest: {stolen}")
    rss = [f"{name} {_rss_mb(pid):.0f}" for name, pid in sorted(roots.items())]
    lines.append(f"mesh RSS after the runs, MB (each component's main process): {', '.join(rss)}")
    return lines


def report(mesh: Side, other: Side, roots: Mapping[str, int]) -> str:
    header = ["scenario", "noetl-mesh", f"other ({other.url})", "ratio (>1: mesh faster)"]
    return table(header, rows(mesh, other)) + "\n\n" + "\n".join(describe(mesh, other, roots))
