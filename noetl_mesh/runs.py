"""`noetl-mesh list` (recent runs) and `noetl-mesh show ID [--follow]` (one run's steps).

Both read a running mesh and never start one. `list` asks the gateway's console list
(`/ui/api/executions`: the public list has no filters); `show` reads the run's events from the
event service, as `run` does, live with `--follow`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from language.statuses import CANCELLED, COMPLETED, FAILED, RUNNING
from noetl_mesh.progress import Progress, report, watch
from noetl_mesh.run import EXIT_TIMEOUT, detail, gateway_headers
from noetl_mesh.state import StackInfo

STATUS_COLOURS = {COMPLETED: "green", FAILED: "red", CANCELLED: "yellow", RUNNING: "cyan"}


def list_runs(args: argparse.Namespace, info: StackInfo) -> int:
    """Newest first; exit 1 when the gateway refuses (its `detail` is printed)."""
    query: dict[str, str | int] = {"page_size": args.limit}
    if args.status:
        query["status"] = args.status.upper()
    if args.path:
        query["path"] = args.path
    answer = httpx.get(
        f"{info.gateway_url}/ui/api/executions", params=query, headers=gateway_headers(args.token), timeout=30
    )
    if answer.status_code != 200:
        print(f"noetl-mesh: cannot list executions ({answer.status_code}): {detail(answer)}", file=sys.stderr)
        return 1
    items: list[dict[str, Any]] = answer.json()["items"]
    if args.json:
        sys.stdout.write(json.dumps(items, indent=2, ensure_ascii=False) + "\n")
        return 0
    console = Console()
    if not console.is_terminal:
        for item in items:
            print(
                "\t".join(
                    (
                        item["execution_id"],
                        item["status"],
                        f"{item['path']} v{item['version']}",
                        item["start_time"] or "-",
                        item["duration_human"] or "-",
                    )
                )
            )
        return 0
    table = Table(box=None, header_style="bold")
    # Ids and times must never be cut: a narrow terminal squeezes the error column instead.
    for title, width in (("execution", 19), ("status", 9), ("playbook", 0), ("started", 19), ("duration", 0)):
        table.add_column(title, no_wrap=True, min_width=width or None)
    table.add_column("error", overflow="ellipsis", no_wrap=True, max_width=40)
    for item in items:
        colour = STATUS_COLOURS.get(item["status"], "white")
        table.add_row(
            item["execution_id"],
            f"[{colour}]{item['status']}[/{colour}]",
            f"{item['path']} [dim]v{item['version']}[/dim]",
            (item["start_time"] or "-").replace("T", " ").rstrip("Z")[:19],
            item["duration_human"] or "-",
            (item["error"] or "")[:60],
        )
    console.print(table)
    return 0


def show_run(args: argparse.Namespace, info: StackInfo) -> int:
    """Exit 0 when the run completed or is still running, 1 when it failed or was cancelled."""
    return asyncio.run(_show(args, info))


async def _show(args: argparse.Namespace, info: StackInfo) -> int:
    console = Console(stderr=True)
    try:
        execution_id = int(args.execution_id)
    except ValueError:
        console.print(f"[red]error:[/red] not an execution id: {args.execution_id!r}")
        return 2
    async with httpx.AsyncClient(
        base_url=info.gateway_url, timeout=30, headers=gateway_headers(args.token)
    ) as http:
        found = await http.get(f"/api/executions/{execution_id}", params={"page_size": 10})
    if found.status_code != 200:
        console.print(f"[red]error:[/red] {detail(found)}")
        return 1
    summary = found.json()
    if not args.json:
        console.print(
            f"execution [bold]{execution_id}[/bold] · {summary['path']} v{summary['version']}",
            highlight=False,
        )
    progress = Progress()
    # Without --follow, read what the log holds now: the stream replays it, then would wait.
    limit = None if args.follow else summary["pagination"]["total_events"]
    live = args.follow and not args.json
    try:
        async with asyncio.timeout(args.timeout):
            await watch(console, info, execution_id, progress, quiet=not live, limit=limit)
    except TimeoutError:
        console.print(f"[yellow]timed out after {args.timeout:g}s[/yellow]; the run goes on")
        return EXIT_TIMEOUT
    if args.json:
        sys.stdout.write(
            json.dumps(progress.document(execution_id, summary["path"], summary["version"]), indent=2) + "\n"
        )
    else:
        if not live:
            _steps(console, progress)
        report(console, progress)
    return 1 if progress.status in (FAILED, CANCELLED) else 0


def _steps(console: Console, progress: Progress) -> None:
    if console.is_terminal:
        console.print(progress.table())
        return
    for name in progress.steps:
        console.print(progress.line(name), markup=False, highlight=False)
