"""(e) The worker's tools: a parallel loop of http calls, and the python tool's start overhead.

http loop: a playbook whose `fetch` step loops in parallel (no `max_in_flight`) over 100 items, one
`GET /api/v1/users` of the project's mock API (tests/helpers/mock_api.py, on 127.0.0.1) per
iteration, run by 4 worker processes with `NOETL_WORKER_CONCURRENCY=8` each (the mesh's own worker
plus 3 started here). Wall time is execute → terminal event (polled every 20 ms); the loop span is
the first iteration's `command.issued` → the last iteration's `command.completed` (server
timestamps), and commands/s = 100 / loop span.

python start overhead: the pool of warm interpreters (worker/tools/python_runner.py) running empty
code, in this process: the median and p90 of one call, and the cold start of a fresh child.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from bench.stats import percentile
from language.event_types import WRITTEN_TERMINAL
from noetl_mesh.config import REPO_ROOT, Ports, StackConfig
from noetl_mesh.credentials import AUTH_DIR, add_worker
from noetl_mesh.mesh import mesh_environment
from noetl_mesh.stack import Stack
from noetl_mesh.state import StackInfo
from tests.helpers.mock_api import running_mock_api
from worker.consumer import READY_MARKER
from worker.tools.python_runner import PythonRunner

ITERATIONS = 100
WORKERS = 4
CONCURRENCY = 8
LOOP_PATH = "bench/http_loop"

LOOP_PLAYBOOK = f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: http_loop, path: {LOOP_PATH}}}
workload:
  api_url: ""
  items: []
workflow:
  - step: start
    tool: {{kind: noop}}
    next: [{{step: fetch}}]
  - step: fetch
    loop:
      in: "{{{{ items }}}}"
      iterator: item
      spec: {{mode: parallel}}
    tool:
      kind: http
      url: "{{{{ api_url }}}}/api/v1/users"
      params: {{offset: "{{{{ iter.item }}}}", limit: 1}}
    next:
      arcs: [{{step: end, when: '{{{{ event.name == "loop.done" }}}}'}}]
  - step: end
    tool: {{kind: noop}}
"""


@dataclass
class ToolsResult:
    walls_s: list[float] = field(default_factory=list)
    spans_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    python_ms: list[float] = field(default_factory=list)
    python_cold_ms: float = 0.0

    def rate(self) -> float:
        span = percentile(self.spans_s, 50) if self.spans_s else 0.0
        return ITERATIONS / span if span else 0.0


@contextlib.contextmanager
def _mesh(verbose: bool) -> Iterator[StackInfo]:
    """A fresh mesh whose workers take 8 commands each, plus 3 more such worker processes."""
    os.environ["NOETL_WORKER_CONCURRENCY"] = str(CONCURRENCY)
    with tempfile.TemporaryDirectory(prefix="noetl-bench-tools-") as tmp:
        stack = Stack(StackConfig(run_dir=Path(tmp) / "mesh", ports=Ports.ephemeral()))
        print("starting a mesh in a temp run dir ...", file=sys.stderr, flush=True)
        info = stack.up()
        extra: list[subprocess.Popen[bytes]] = []
        try:
            env = {
                **os.environ,
                **mesh_environment(
                    info.ports, pg_dsn=info.pg_dsn, nats_url=info.nats_url, run_dir=info.run_dir
                ),
                "NOETL_WORKER_CONCURRENCY": str(CONCURRENCY),
                "NOETL_METRICS_PORT": "0",
            }
            logs = [info.run_dir / f"bench-worker-{index}.log" for index in range(WORKERS - 1)]
            for index, path in enumerate(logs):
                with path.open("wb") as log:
                    extra.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "worker"],
                            cwd=REPO_ROOT,
                            # A mesh token of its own, proving `worker:bench-worker-<index>`.
                            env={**env, **add_worker(info.run_dir / AUTH_DIR, f"bench-worker-{index}")},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
                if verbose:
                    print(f"bench-worker-{index} logs to {path}", file=sys.stderr)
            _await_ready(extra, logs)
            yield info
        finally:
            for proc in extra:
                proc.send_signal(signal.SIGTERM)
            for proc in extra:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            stack.down()


def _await_ready(workers: list[subprocess.Popen[bytes]], logs: list[Path], within: float = 60.0) -> None:
    """Until every worker has logged that it consumes its pools (its durable consumers exist).

    Raises:
        RuntimeError: a worker exited, or `within` seconds passed first.
    """
    deadline = time.monotonic() + within
    waiting = dict(zip(logs, workers, strict=True))
    while waiting:
        for path, worker in list(waiting.items()):
            if worker.poll() is not None:
                raise RuntimeError(f"{path.stem} exited ({worker.returncode}); see {path}")
            if READY_MARKER in path.read_text(errors="replace"):
                del waiting[path]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready within {within:g}s: {', '.join(p.stem for p in waiting)}")
        time.sleep(0.05)


async def _wait_terminal(
    http: httpx.AsyncClient, execution_id: str, within: float
) -> list[dict[str, object]]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answer = await http.get(f"/api/executions/{execution_id}", params={"page_size": 10})
        if answer.status_code == 200 and any(
            e["event_type"] in WRITTEN_TERMINAL for e in answer.json()["events"]
        ):
            return await _events(http, execution_id)
        await asyncio.sleep(0.02)
    raise TimeoutError(f"execution {execution_id} did not end within {within:g}s")


async def _events(http: httpx.AsyncClient, execution_id: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    page = 1
    while True:
        body = (
            await http.get(f"/api/executions/{execution_id}", params={"page": page, "page_size": 500})
        ).json()
        found += body["events"]
        if not body["pagination"]["has_next"]:
            return found
        page += 1


def _stamp(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["created_at"]).replace("Z", "+00:00")).timestamp()


async def _loop_runs(gateway: str, api_url: str, runs: int, result: ToolsResult) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        answer = await http.post("/api/catalog/register", json={"content": LOOP_PLAYBOOK})
        answer.raise_for_status()
        for run in range(runs + 1):  # the first run warms up and is not counted
            started = time.perf_counter()
            answer = await http.post(
                "/api/execute",
                json={"path": LOOP_PATH, "payload": {"api_url": api_url, "items": list(range(ITERATIONS))}},
            )
            answer.raise_for_status()
            execution_id = answer.json()["execution_id"]
            events = await _wait_terminal(http, execution_id, 120)
            wall = time.perf_counter() - started
            loop = [e for e in events if e.get("node_name") == "fetch"]
            issued = [_stamp(e) for e in loop if e["event_type"] == "command.issued"]
            done = [e for e in loop if e["event_type"] in ("command.completed", "command.failed")]
            failed = [e for e in done if e["event_type"] == "command.failed"]
            if (
                failed
                or len(done) != ITERATIONS
                or not any(e["event_type"] == "playbook.completed" for e in events)
            ):
                result.failures.append(f"run {run}: {len(done)} commands ended, {len(failed)} failed")
                continue
            if run == 0:
                continue
            result.walls_s.append(wall)
            result.spans_s.append(max(_stamp(e) for e in done) - min(issued))
            print(f"  http loop run {run}: {wall:.2f}s", file=sys.stderr, flush=True)


async def _python_overhead(calls: int, result: ToolsResult) -> None:
    started = time.perf_counter()
    async with PythonRunner(processes=1) as runner:
        result.python_cold_ms = (time.perf_counter() - started) * 1000
        for _ in range(20):
            await runner.run("", {}, context={})
        for _ in range(calls):
            began = time.perf_counter()
            outcome = await runner.run("", {}, context={})
            result.python_ms.append((time.perf_counter() - began) * 1000)
            if not outcome.ok:
                result.failures.append(f"python: {outcome.error}")


def run_tools(*, runs: int = 3, python_calls: int = 200, verbose: bool = False) -> ToolsResult:
    result = ToolsResult()
    with running_mock_api() as (api_url, _api), _mesh(verbose) as info:
        print(
            f"http loop: {WORKERS} workers x {CONCURRENCY}, {runs} runs of {ITERATIONS} ...", file=sys.stderr
        )
        asyncio.run(_loop_runs(info.gateway_url, api_url, runs, result))
    print(f"python: {python_calls} empty calls ...", file=sys.stderr, flush=True)
    asyncio.run(_python_overhead(python_calls, result))
    return result


def rows(result: ToolsResult) -> list[list[str]]:
    name = f"http loop x{ITERATIONS} ({WORKERS}x{CONCURRENCY})"
    table = [
        [name, "wall s (median)", f"{percentile(result.walls_s, 50):.2f}" if result.walls_s else "-", ""],
        [name, "loop commands/s", f"{result.rate():.0f}", ""],
        [name, "failed runs", str(len(result.failures)), ""],
        ["python tool, empty code", "median / p90 ms", _pair(result.python_ms), ""],
        ["python tool, empty code", "cold child start ms", f"{result.python_cold_ms:.0f}", ""],
    ]
    return table


def _pair(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 50):.2f} / {percentile(values, 90):.2f}"


def describe(result: ToolsResult) -> list[str]:
    lines = [
        "http loop: walls " + ", ".join(f"{w:.2f}s" for w in result.walls_s),
        "http loop: loop spans " + ", ".join(f"{s:.2f}s" for s in result.spans_s),
    ]
    lines += [f"failure: {f}" for f in result.failures]
    return lines
