"""(f) Throughput: many 10-step chains in flight at once, on one shard or several.

`python -m bench throughput --in-flight 50 --shards 3` starts 50 chains at once (each start its
own connection), polls each run's status route until it ends and reports steps per second over
the whole batch, with the mesh's CPU per step (every mesh process plus Postgres and NATS): the
measured cost the sizing estimate in bench/README.md is built on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.chain import poll_terminal
from bench.cpu import CpuMeter, CpuReport
from bench.http import RawPoster
from bench.playbooks import CHAIN_STEPS, chain, execute, register
from bench.stats import percentile
from bench.target import Target

# Each run polls its status route this often: 50 runs at 50 ms were 1000 req/s of polling,
# which cost more CPU than the chains themselves.
POLL_SECONDS = 1.0
BATCH_TIMEOUT = 300.0


@dataclass
class ThroughputResult:
    kind: str
    in_flight: int
    shards: int
    wall_s: float = 0.0
    ends_s: list[float] = field(default_factory=list)  # each run's end, from the batch's start
    failures: list[str] = field(default_factory=list)
    cpu: CpuReport | None = None

    @property
    def steps(self) -> int:
        return len(self.ends_s) * len(CHAIN_STEPS)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_step(self) -> float | None:
        if self.cpu is None or not self.cpu.by_component or not self.steps:
            return None
        return 1000.0 * self.cpu.mesh_total / self.steps


async def _one_batch(target: Target, path: str, count: int) -> tuple[float, list[float], list[str]]:
    posters = [RawPoster(target.gateway_url, timeout=BATCH_TIMEOUT) for _ in range(count)]
    began = time.perf_counter()

    async def run(poster: RawPoster) -> tuple[str, str, float]:
        execution_id = await execute(poster, path)
        outcome = await poll_terminal(poster, execution_id, within=BATCH_TIMEOUT, every=POLL_SECONDS)
        return execution_id, outcome, time.perf_counter() - began

    try:
        finished = await asyncio.gather(*(run(poster) for poster in posters))
    finally:
        for poster in posters:
            await poster.close()
    wall = time.perf_counter() - began
    ends = [end for _, outcome, end in finished if outcome == "playbook.completed"]
    failures = [f"{i}: {outcome}" for i, outcome, _ in finished if outcome != "playbook.completed"]
    return wall, ends, failures


async def run_throughput(
    target: Target, *, kind: str, in_flight: int, shards: int, warmup: int
) -> ThroughputResult:
    result = ThroughputResult(kind=kind, in_flight=in_flight, shards=shards)
    poster = RawPoster(target.gateway_url)
    try:
        path, content = chain(kind)
        await register(poster, content)
    finally:
        await poster.close()
    if warmup:
        await _one_batch(target, path, warmup)
    meter = CpuMeter(target.cpu_roots)
    meter.start()
    result.wall_s, result.ends_s, result.failures = await _one_batch(target, path, in_flight)
    result.cpu = meter.stop()
    return result


def rows(result: ThroughputResult) -> list[list[str]]:
    name = f"{result.in_flight} x 10-step {result.kind} chains, {result.shards} shard(s)"
    per_step = result.cpu_ms_per_step
    return [
        [name, "steps/s", f"{result.steps_per_s:.0f}", ""],
        [name, "batch wall s", f"{result.wall_s:.1f}", ""],
        [
            name,
            "run end p50 / max s",
            f"{percentile(result.ends_s, 50):.1f} / {max(result.ends_s, default=0.0):.1f}",
            "",
        ],
        [name, "mesh CPU ms/step", "-" if per_step is None else f"{per_step:.1f}", ""],
        [name, "failed runs", str(len(result.failures)), ""],
    ]


def describe(result: ThroughputResult) -> list[str]:
    lines = [
        f"(f) {result.in_flight} {result.kind} chains of {len(CHAIN_STEPS)} steps started at once on "
        f"{result.shards} shard(s); each run's status route polled every {POLL_SECONDS * 1000:.0f} ms.",
    ]
    if result.cpu is not None:
        lines += result.cpu.lines()
    lines += [f"  failed: {failure}" for failure in result.failures[:5]]
    return lines
