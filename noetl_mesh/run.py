"""`noetl-mesh run FILE`: register, execute, show live per-step progress, report the result.

Exit codes: 0 COMPLETED, 1 FAILED or CANCELLED, 2 invalid playbook or bad arguments,
124 `--timeout` passed first (the run goes on; `noetl-mesh show ID --follow` picks it up).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from language.statuses import COMPLETED
from noetl_mesh.credentials import GATEWAY_TOKEN_ENV
from noetl_mesh.progress import Progress, report, watch
from noetl_mesh.state import StackInfo

EXIT_TIMEOUT = 124  # as GNU timeout(1)


class UsageError(Exception):
    """Bad command-line input; exit code 2."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    as_json: bool = False
    timeout: float | None = None
    detach: bool = False
    token: str | None = None


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


def run_playbook(args: argparse.Namespace, info: StackInfo) -> int:
    """Reads the inputs, then drives the run on an event loop."""
    console = Console(stderr=True)
    path: Path = args.file
    try:
        workload = build_workload(args.payload, list(args.set or []))
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")
        content = path.read_bytes()
    except UsageError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot read {path}: {exc.strerror}")
        return 2
    options = RunOptions(as_json=args.json, timeout=args.timeout, detach=args.detach, token=args.token)
    return asyncio.run(_run(console, content, workload, info, options))


def gateway_headers(token: str | None) -> dict[str, str]:
    """What a gateway with HTTP auth on needs (docs/security.md); nothing without a token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _run(
    console: Console, content: bytes, workload: dict[str, Any], info: StackInfo, options: RunOptions
) -> int:
    async with httpx.AsyncClient(
        base_url=info.gateway_url, timeout=60, headers=gateway_headers(options.token)
    ) as http:
        registered = await http.post(
            "/api/catalog/register",
            json={"content": base64.b64encode(content).decode(), "resource_type": "Playbook"},
        )
        if registered.status_code != 200:
            console.print(f"[red]registration failed ({registered.status_code}):[/red] {detail(registered)}")
            return 2
        entry = registered.json()
        console.print(f"registered [bold]{entry['path']}[/bold] v{entry['version']}")
        started = await http.post(
            "/api/execute",
            json={"catalog_id": entry["catalog_id"], "workload": workload, "resource_kind": "playbook"},
        )
        if started.status_code != 200:
            console.print(f"[red]invalid playbook ({started.status_code}):[/red] {detail(started)}")
            return 2
        execution_id = int(started.json()["execution_id"])
        if options.detach:
            sys.stdout.write(f"{execution_id}\n")
            return 0
        console.print(f"execution [bold]{execution_id}[/bold]")
        progress = Progress()
        try:
            async with asyncio.timeout(options.timeout):
                await watch(console, info, execution_id, progress, quiet=options.as_json)
        except TimeoutError:
            console.print(
                f"[yellow]timed out after {options.timeout:g}s[/yellow]; execution {execution_id} goes on "
                f"(noetl-mesh show {execution_id} --follow)"
            )
            if options.as_json:
                _print_json(progress.document(execution_id, entry["path"], entry["version"]))
            return EXIT_TIMEOUT
        if options.as_json:
            await _resolve_references(http, progress)
            _print_json(progress.document(execution_id, entry["path"], entry["version"]))
            return 0 if progress.status == COMPLETED else 1
        report(console, progress)
        if progress.status != COMPLETED:
            return 1
        last = progress.steps.get(progress.last_step or "")
        if last is None:
            _print_json(None)
            return 0
        if last.reference is not None:
            stored = await http.get("/api/result/resolve", params={"ref": last.reference})
            if stored.status_code != 200:
                console.print(f"[red]result {last.reference} unreadable:[/red] {detail(stored)}")
                return 1
            _print_json(stored.json())
            return 0
        _print_json([last.iterations[i] for i in sorted(last.iterations)] if last.loop else last.result)
        return 0


async def _resolve_references(http: httpx.AsyncClient, progress: Progress) -> None:
    """Step results kept in the result store are read back, so the JSON document carries data."""
    for view in progress.steps.values():
        if view.reference is None:
            continue
        stored = await http.get("/api/result/resolve", params={"ref": view.reference})
        if stored.status_code == 200:
            view.result = stored.json()


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def detail(response: httpx.Response) -> str:
    """The gateway's `detail` of an error answer, as text; for a refused token, what to do."""
    try:
        body = response.json()
    except ValueError:
        text = response.text
    else:
        found = body.get("detail", body) if isinstance(body, dict) else body
        text = found if isinstance(found, str) else json.dumps(found)
    if response.status_code == 401:
        return f"{text} (the gateway's HTTP auth is on: give a token with --token or {GATEWAY_TOKEN_ENV})"
    return text
