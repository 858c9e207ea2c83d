"""`python -m bench.console`: page-load figures of the web console with 10,000 executions in the
database and a 2,000-iteration loop on one page, measured in headless Chromium.

Seeding: N executions are started in batches of 1,000 on an execution pool no worker serves (so
they cost no work), a tenth of them are finalized (FAILED) and the rest cancelled; then one real run with a parallel loop of M iterations completes.
Each page is then opened `--repeat` times in one browser and the medians are printed:
`ready` is the page's own time from route to first data drawn, `load` the wall time from
navigation until then, and for the loop page `all events` is until the last of its events has
been replayed and drawn.

    .venv/bin/python -m bench.console                     # a mesh of its own (≈4 min)
    .venv/bin/python -m bench.console --executions 2000 --iterations 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx

from bench.target import Target, external, own_mesh
from tests.helpers.browser import Page, chromium, chromium_path

IDLE_POOL = "bench-console-nobody"
BATCH = 1000

IDLE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: idle, path: bench/console/idle}
workflow:
  - step: start
    tool: {kind: noop}
"""

LOOP = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: wide_loop, path: bench/console/wide_loop}
workload: {n: 2000}
workflow:
  - step: start
    tool: {kind: noop}
    next: [each]
  - step: each
    loop: {in: "{{ workload.n }}", iterator: i, spec: {mode: parallel, max_in_flight: 16}}
    tool: {kind: python, input: {i: "{{ i }}"}, code: "result = {'i': i, 'square': i * i}"}
    next: [{step: end, when: '{{ event.name == "loop.done" }}'}]
  - step: end
    tool: {kind: noop}
"""


async def _ok(response: Awaitable[httpx.Response]) -> dict[str, Any]:
    answer = await response
    if answer.status_code != 200:
        raise SystemExit(
            f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}: {answer.text[:300]}"
        )
    body: dict[str, Any] = answer.json()
    return body


async def seed(http: httpx.AsyncClient, executions: int, iterations: int) -> str:
    """Returns the id of the completed loop run."""
    began = time.monotonic()
    await _ok(http.post("/api/catalog/register", json={"content": IDLE}))
    await _ok(http.post("/api/catalog/register", json={"content": LOOP}))
    ids: list[str] = []
    for start in range(0, executions, BATCH):
        items = [{"path": "bench/console/idle", "execution_pool": IDLE_POOL}] * min(BATCH, executions - start)
        answer = await _ok(http.post("/api/execute/batch", json={"executions": items}, timeout=300))
        ids += [r["execution_id"] for r in answer["results"] if r["status"] == "started"]
    print(f"started {len(ids)} idle executions in {time.monotonic() - began:.1f}s", file=sys.stderr)
    gate = asyncio.Semaphore(16)

    async def end(execution_id: str, index: int) -> None:
        async with gate:
            if index % 10 == 0:
                await _ok(http.post(f"/api/executions/{execution_id}/finalize", json={"reason": "bench"}))
            else:
                await _ok(http.post(f"/api/executions/{execution_id}/cancel", json={"reason": "bench"}))

    ended = time.monotonic()
    await asyncio.gather(*(end(execution_id, index) for index, execution_id in enumerate(ids)))
    print(f"finalized a tenth, cancelled the rest in {time.monotonic() - ended:.0f}s", file=sys.stderr)
    loop_started = time.monotonic()
    started = await _ok(
        http.post("/api/execute", json={"path": "bench/console/wide_loop", "workload": {"n": iterations}})
    )
    loop_id = str(started["execution_id"])
    while True:
        detail = await _ok(http.get(f"/api/executions/{loop_id}", params={"include_events": "false"}))
        if detail["status"] != "RUNNING":
            break
        await asyncio.sleep(2)
    print(
        f"the {iterations}-iteration loop {detail['status']} in {time.monotonic() - loop_started:.0f}s",
        file=sys.stderr,
    )
    return loop_id


async def timed_page(page: Page, url: str, done: str) -> tuple[float, float, float]:
    """(ready ms from the page, wall ms from navigation to ready, wall ms until `done` holds)."""
    await page.goto("about:blank")
    started = time.monotonic()
    await page.send("Page.navigate", url=url)
    ready = await page.wait(
        "document.getElementById('view') && document.getElementById('view').dataset.readyMs",
        what="ready",
        within=120,
    )
    loaded = (time.monotonic() - started) * 1000
    await page.wait(done, what="the page's data", within=180)
    return float(ready), loaded, (time.monotonic() - started) * 1000


async def api_ms(http: httpx.AsyncClient, path: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.monotonic()
        await _ok(http.get(path))
        times.append((time.monotonic() - started) * 1000)
    return statistics.median(times)


async def measure(target: Target, executions: int, iterations: int, repeat: int) -> None:
    async with httpx.AsyncClient(base_url=target.gateway_url, timeout=60) as http:
        loop_id = await seed(http, executions, iterations)
        base = f"{target.gateway_url}/ui/"
        lists = {
            "list, newest 50": ("#/executions", "/ui/api/executions?page_size=50"),
            "list, status FAILED": (
                "#/executions?status=FAILED",
                "/ui/api/executions?page_size=50&status=FAILED",
            ),
            "list, path contains 'idle'": (
                "#/executions?path=idle",
                "/ui/api/executions?page_size=50&path=idle",
            ),
            "list, page 150 (rows 7,451-7,500)": (
                "#/executions?page=150",
                "/ui/api/executions?page_size=50&page=150",
            ),
        }
        rows: list[tuple[str, str, str, str]] = []
        executable = chromium_path()
        if executable is None:
            raise SystemExit("Chromium is not installed (Debian: apt-get install chromium)")
        async with chromium(executable) as browser:
            page = await browser.new_page()
            for name, (fragment, api) in lists.items():
                samples = [
                    await timed_page(
                        page,
                        base + fragment,
                        "document.querySelectorAll('#executions tbody tr[data-id]').length > 0",
                    )
                    for _ in range(repeat)
                ]
                rows.append(
                    (
                        name,
                        _median(samples, 0),
                        _median(samples, 1),
                        f"API {await api_ms(http, api, repeat):.0f} ms",
                    )
                )
            done = "document.querySelector('.execution') && document.querySelector('.execution').dataset.status === 'COMPLETED'"
            samples = [await timed_page(page, f"{base}#/executions/{loop_id}", done) for _ in range(repeat)]
            rows.append(
                (
                    f"execution with a {iterations}-iteration loop",
                    _median(samples, 0),
                    _median(samples, 1),
                    f"all events drawn {_median(samples, 2)}",
                )
            )
            events = await page.evaluate("document.getElementById('event-count').textContent")
            await page.click("[data-toggle=each]")
            started = time.monotonic()
            await page.evaluate(
                "(() => { const l = document.querySelector('.iterations'); l.scrollTop = l.scrollHeight; })()"
            )
            await page.wait(
                f"document.querySelector('.irow[data-iteration=\"{iterations - 1}\"]') !== null",
                what="the last iteration row",
            )
            scrolled = (time.monotonic() - started) * 1000
            drawn = await page.evaluate("document.querySelectorAll('.irow').length")
            heap = await page.evaluate(
                "performance.memory ? Math.round(performance.memory.usedJSHeapSize / 1e6) : null"
            )
        with contextlib.suppress(Exception):
            counted = (
                await _ok(http.get("/ui/api/executions", params={"status": "CANCELLED", "page_size": 1}))
            )["scanned"]
            print(f"\nexecutions in the list's scan: {counted}")
    print(f"{'page':42} {'ready':>10} {'load':>10}  other")
    for name, ready, load, other in rows:
        print(f"{name:42} {ready:>10} {load:>10}  {other}")
    print(
        f"loop page: {events} events; iteration list scrolled to the end in {scrolled:.0f} ms with {drawn} rows in the DOM; JS heap {heap} MB"
    )


def _median(samples: list[tuple[float, float, float]], index: int) -> str:
    return f"{statistics.median(s[index] for s in samples):.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--gateway", help="a running mesh at this URL instead of one of its own (it gets the seed data)"
    )
    parser.add_argument("--run-dir", type=Path, help="run dir of that mesh")
    parser.add_argument(
        "--executions", type=int, default=10_000, help="idle executions to seed (default 10000)"
    )
    parser.add_argument(
        "--iterations", type=int, default=2000, help="iterations of the loop run (default 2000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="page loads per figure; the median is printed (default 3)"
    )
    args = parser.parse_args(argv)
    if (
        not 1 <= args.executions <= 100_000
        or not 1 <= args.iterations <= 10_000
        or not 1 <= args.repeat <= 20
    ):
        parser.error("--executions 1..100000, --iterations 1..10000, --repeat 1..20")
    if args.gateway:
        asyncio.run(
            measure(external(args.gateway, args.run_dir), args.executions, args.iterations, args.repeat)
        )
        return 0
    with own_mesh(verbose=False) as target:
        asyncio.run(measure(target, args.executions, args.iterations, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
