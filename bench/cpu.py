"""CPU accounting from /proc: the mesh's processes by component, this process, the whole machine.

On a 2-core machine the load generator competes with the mesh for the same cores, so every
benchmark reports where the CPU went while it ran. A process is charged to the component whose
root process it descends from (a Postgres backend to `postgres`, a python runner child to
`worker`). A process that exits during the window loses its share (pooled processes do not).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class _Proc:
    ppid: int
    cpu: float  # user + system seconds


def _read_procs() -> dict[int, _Proc]:
    table: dict[int, _Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        # comm may contain spaces and parentheses: the fields start after the last ')'.
        rest = text[text.rfind(")") + 2 :].split()
        table[int(name)] = _Proc(ppid=int(rest[1]), cpu=(int(rest[11]) + int(rest[12])) / CLK_TCK)
    return table


def _machine_times() -> tuple[float, float, float]:
    """(busy, stolen, total) seconds summed over all cores, from the first line of /proc/stat.

    Stolen time (steal) is time a core of this virtual machine was ready to run but the
    hypervisor ran something else: no process here did that work, so it is not busy time. It is
    reported on its own as one visible reason a sitting runs slower than the last (not the only
    one: a guest whose cores are shared can also run slower while it does run, unseen here)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    stolen = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])  # guest time is already inside user
    return (total - idle - stolen) / CLK_TCK, stolen / CLK_TCK, total / CLK_TCK


async def wait_quiet(busy_below: float, within: float, window: float = 1.0) -> float:
    """Waits until the machine was busy less than `busy_below` (a fraction of all cores) over one
    `window`, for at most `within` seconds; returns the seconds waited."""
    started = time.monotonic()
    while True:
        busy0, stolen0, total0 = _machine_times()
        await asyncio.sleep(window)
        busy1, stolen1, total1 = _machine_times()
        waited = time.monotonic() - started
        # A core the hypervisor keeps taking is no quieter than one another process keeps busy.
        taken = busy1 - busy0 + stolen1 - stolen0
        if total1 <= total0 or taken / (total1 - total0) < busy_below or waited >= within:
            return waited


@dataclass(frozen=True)
class CpuReport:
    wall: float
    by_component: dict[str, float]  # CPU seconds
    bench: float
    machine_busy: float  # CPU seconds some process of this machine ran, summed over cores
    stolen: float  # seconds the hypervisor kept a core of this machine from running (steal)

    @property
    def mesh_total(self) -> float:
        return sum(self.by_component.values())

    @property
    def other(self) -> float:
        """CPU used by anything else on the machine (other sessions, the kernel's own threads)."""
        return max(0.0, self.machine_busy - self.mesh_total - self.bench)

    def pct(self, seconds: float) -> float:
        """Percent of one core (so the machine's capacity is CORES * 100 %)."""
        return 100.0 * seconds / self.wall if self.wall > 0 else 0.0

    def lines(self) -> list[str]:
        parts = [
            f"{name} {self.pct(sec):.0f}%"
            for name, sec in sorted(self.by_component.items(), key=lambda kv: -kv[1])
        ]
        mesh = (
            f"  mesh total {self.pct(self.mesh_total):.0f}%: " + ", ".join(parts)
            if parts
            else "  mesh processes unknown (no run dir): their CPU is inside 'everything else'"
        )
        return [
            f"CPU over {self.wall:.1f}s, % of one core (machine = {CORES * 100}%):",
            mesh,
            f"  load generator (this process) {self.pct(self.bench):.0f}%, "
            f"everything else on the machine {self.pct(self.other):.0f}%, "
            f"machine busy {self.pct(self.machine_busy):.0f}%, hypervisor steal {self.pct(self.stolen):.0f}%",
        ]


class CpuMeter:
    """Charges CPU to mesh components given their root pids; `roots` maps component → pid."""

    def __init__(self, roots: Mapping[str, int]) -> None:
        self._roots = {pid: name for name, pid in roots.items()}
        self._start: dict[int, tuple[str, float]] = {}
        self._t0 = 0.0
        self._self0 = 0.0
        self._busy0 = 0.0
        self._stolen0 = 0.0

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        table = _read_procs()
        owners: dict[int, str | None] = {}

        def owner(pid: int) -> str | None:
            path: list[int] = []
            found: str | None = None
            while pid > 1 and pid in table:
                if pid in owners:
                    found = owners[pid]
                    break
                path.append(pid)
                if pid in self._roots:
                    found = self._roots[pid]
                    break
                pid = table[pid].ppid
            for p in path:
                owners[p] = found
            return found

        snap: dict[int, tuple[str, float]] = {}
        for pid, proc in table.items():
            name = owner(pid)
            if name is not None:
                snap[pid] = (name, proc.cpu)
        return snap

    def start(self) -> None:
        self._start = self._snapshot()
        self._t0 = time.perf_counter()
        self._self0 = time.process_time()
        self._busy0, self._stolen0, _ = _machine_times()

    def stop(self) -> CpuReport:
        end = self._snapshot()
        wall = time.perf_counter() - self._t0
        bench = time.process_time() - self._self0
        busy, stolen, _ = _machine_times()
        by: dict[str, float] = {name: 0.0 for name in self._roots.values()}
        for pid, (name, cpu) in end.items():
            before = self._start.get(pid)
            by[name] += cpu - (before[1] if before is not None and before[0] == name else 0.0)
        return CpuReport(
            wall=wall,
            by_component=by,
            bench=bench,
            machine_busy=busy - self._busy0,
            stolen=stolen - self._stolen0,
        )


def mesh_roots(run_dir: Path, processes: Mapping[str, int]) -> dict[str, int]:
    """Component → root pid: the mesh processes plus the embedded Postgres and NATS of `run_dir`."""
    roots = dict(processes)
    with contextlib.suppress(OSError, ValueError, IndexError):
        roots["postgres"] = int((run_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    with contextlib.suppress(OSError, ValueError):
        roots["nats"] = int((run_dir / "nats" / "nats.pid").read_text().strip())
    return roots


def share_rows(name: str, cpu: CpuReport | None) -> list[list[str]]:
    """The summary table's "mesh / client CPU" row, when the mesh's processes are known."""
    if cpu is None or not cpu.by_component:
        return []
    shares = f"{cpu.pct(cpu.mesh_total):.0f} / {cpu.pct(cpu.bench):.0f}"
    return [[name, "mesh / client CPU (% of 1 core)", shares, ""]]
