"""`noetl-mesh run FILE`: register, execute, show live per-step progress, report the result.

Exit codes: 0 COMPLETED, 1 FAILED or CANCELLED, 2 invalid playbook or bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from noetl.v1 import events_pb2, events_pb2_grpc
from rich.console import Console
from rich.live import Live
from rich.table import Table

from noetl_mesh.state import StackInfo
from services.common import jsonutil
from services.common.result_refs import result_reference
from services.common.sharding import shard_for

TERMINAL = {
    "playbook.completed": "COMPLETED",
    "playbook.failed": "FAILED",
    "execution.cancelled": "CANCELLED",
}
_ICONS = {"queued": "·", "running": "▶", "done": "✓", "failed": "✗", "skipped": "↷"}


class UsageError(Exception):
    """Bad command-line input; exit code 2."""


def build_workload(payload: str | None, sets: list[str]) -> dict[str, Any]:
    """`--payload` JSON object, then `--set k=v` (JSON-parsed values, dotted keys nest).

    Raises:
        UsageError: the payload is not a JSON object or a --set lacks '='.
    """
    workload: dict[str, Any] = {}
    if payload:
        try:
            parsed = json.loads(payload)
        except ValueError as exc:
            raise UsageError(f"--payload is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise UsageError("--payload must be a JSON object")
        workload.update(parsed)
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        target = workload
        *parents, leaf = key.split(".")
        for part in parents:
            nested = target.get(part)
            if not isinstance(nested, dict):
                nested = target[part] = {}
            target = nested
        target[leaf] = value
    return workload


@dataclass(slots=True)
class StepView:
    name: str
    state: str = "queued"
    started: float | None = None
    finished: float | None = None
    error: str | None = None

    def elapsed(self) -> str:
        if self.started is None:
            return ""
        end = self.finished if self.finished is not None else time.monotonic()
        return f"{(end - self.started) * 1000:.0f} ms"


@dataclass(slots=True)
class Progress:
    steps: dict[str, StepView] = field(default_factory=dict)
    status: str = "RUNNING"
    error: str | None = None
    last_result: Any = None
    last_reference: str | None = None  # the last result was kept in the result store (dsl.md §9.12)

    def apply(self, event: dict[str, Any]) -> str | None:
        """Folds one event; returns the step whose display changed, if any."""
        kind = event["event_type"]
        name = event.get("node_name") or ""
        if kind in TERMINAL:
            self.status = TERMINAL[kind]
            self.error = event.get("error")
            return None
        state = {
            "command.issued": "queued",
            "command.claimed": "running",
            "command.started": "running",
            "command.completed": "done",
            "step.exit": "done",
            "call.error": "failed",
            "command.failed": "failed",
            "step.skipped": "skipped",
        }.get(kind)
        if state is None:
            return None
        view = self.steps.setdefault(name, StepView(name))
        now = time.monotonic()
        if state == "queued" and view.state in ("done", "failed"):
            view.started = view.finished = None  # re-entered step
        if state == "running" and view.started is None:
            view.started = now
        if state in ("done", "failed", "skipped"):
            view.finished = now
        if state == "failed":
            view.error = _error_of(event)
        if kind == "step.exit":
            reference = result_reference(event.get("context"))
            self.last_reference = None if reference is None else reference["ref"]
            self.last_result = _user_data(event.get("result"))
        changed = view.state != state
        view.state = state
        return name if changed else None

    def table(self) -> Table:
        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("")
        table.add_column("step")
        table.add_column("state")
        table.add_column("time", justify="right")
        for view in self.steps.values():
            table.add_row(_ICONS[view.state], view.name, view.state, view.elapsed())
        return table


def _user_data(result: Any) -> Any:
    """The data a step produced: result.context.result.context.data (dsl.md §11.1)."""
    node = result
    for key in ("context", "result", "context", "data"):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _error_of(event: dict[str, Any]) -> str | None:
    context = event.get("context")
    if isinstance(context, dict) and context.get("error"):
        return str(context["error"])
    error = event.get("error")
    return str(error) if error else None


def _owner(addresses: tuple[str, ...], execution_id: int) -> str:
    """The events shard that holds the execution's log."""
    return addresses[shard_for(execution_id, len(addresses))]


async def follow(events_addr: str, execution_id: int) -> AsyncIterator[dict[str, Any]]:
    """The execution's events from the event service's live stream, in order, until the end."""
    async with grpc.aio.insecure_channel(events_addr) as channel:
        stub = events_pb2_grpc.EventServiceStub(channel)
        async for item in stub.Subscribe(events_pb2.SubscribeRequest(execution_id=execution_id)):
            event = item.event
            yield {
                "event_type": event.event_type,
                "node_name": event.node_name,
                "context": jsonutil.loads(event.context_json),
                "result": jsonutil.loads(event.result_json),
                "error": event.error if event.HasField("error") else None,
            }


def run_playbook(args: argparse.Namespace, info: StackInfo) -> int:
    """Reads the inputs, then drives the run on an event loop."""
    console = Console(stderr=True)
    path: Path = args.file
    try:
        workload = build_workload(args.payload, list(args.set or []))
        content = path.read_bytes()
    except UsageError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot read {path}: {exc.strerror}")
        return 2
    return asyncio.run(_run(console, content, workload, info))


async def _run(console: Console, content: bytes, workload: dict[str, Any], info: StackInfo) -> int:
    async with httpx.AsyncClient(base_url=info.gateway_url, timeout=60) as http:
        registered = await http.post(
            "/api/catalog/register",
            json={"content": base64.b64encode(content).decode(), "resource_type": "Playbook"},
        )
        if registered.status_code != 200:
            console.print(f"[red]registration failed ({registered.status_code}):[/red] {_detail(registered)}")
            return 2
        entry = registered.json()
        console.print(f"registered [bold]{entry['path']}[/bold] v{entry['version']}")
        started = await http.post(
            "/api/execute",
            json={"catalog_id": entry["catalog_id"], "workload": workload, "resource_kind": "playbook"},
        )
        if started.status_code != 200:
            console.print(f"[red]invalid playbook ({started.status_code}):[/red] {_detail(started)}")
            return 2
        execution_id = int(started.json()["execution_id"])
    console.print(f"execution [bold]{execution_id}[/bold]")
    progress = Progress()
    began = time.monotonic()
    if console.is_terminal:
        with Live(progress.table(), console=console, refresh_per_second=10) as live:
            async for event in follow(_owner(info.events_addrs, execution_id), execution_id):
                progress.apply(event)
                live.update(progress.table())
    else:
        async for event in follow(_owner(info.events_addrs, execution_id), execution_id):
            changed = progress.apply(event)
            if changed is not None:
                view = progress.steps[changed]
                took = view.elapsed() if view.state in ("done", "failed") else ""
                console.print(f"{_ICONS[view.state]} {view.name} {view.state} {took}".rstrip())
                if view.error:
                    console.print(f"  {view.error}")
    elapsed = time.monotonic() - began
    colour = "green" if progress.status == "COMPLETED" else "red"
    console.print(f"[{colour}]{progress.status}[/{colour}] in {elapsed:.2f}s")
    if progress.error:
        console.print(f"error: {progress.error}")
    if progress.status != "COMPLETED":
        return 1
    result = progress.last_result
    if progress.last_reference is not None:
        async with httpx.AsyncClient(base_url=info.gateway_url, timeout=60) as http:
            stored = await http.get("/api/result/resolve", params={"ref": progress.last_reference})
        if stored.status_code != 200:
            console.print(f"[red]result {progress.last_reference} unreadable:[/red] {_detail(stored)}")
            return 1
        result = stored.json()
    sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return detail if isinstance(detail, str) else json.dumps(detail)
