"""`noetl-mesh` / `python -m noetl_mesh`: run the mesh on this machine."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, cast

from noetl_mesh import procs
from noetl_mesh.config import StackConfig
from noetl_mesh.errors import MeshError, StartError
from noetl_mesh.stack import Health, Stack, StackStatus
from noetl_mesh.state import StackInfo

# Exit codes of `status`, after the LSB init-script convention.
EXIT_DEGRADED = 1
EXIT_DOWN = 3

RunPlaybook = Callable[[argparse.Namespace, StackInfo], Coroutine[Any, Any, int]]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    stack = Stack(StackConfig.from_env(os.environ, run_dir=args.home))
    handler = cast(Callable[[Stack, argparse.Namespace], int], args.handler)
    try:
        return handler(stack, args)
    except MeshError as exc:
        print(f"noetl-mesh: {exc}", file=sys.stderr)
        if isinstance(exc, StartError) and exc.log_tail:
            print(f"--- last lines of the {exc.name} log ---\n{exc.log_tail}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noetl-mesh", description="Run the NoETL mesh on this machine.")
    parser.add_argument(
        "--home", type=Path, default=None, metavar="DIR",
        help="run directory for state, logs and embedded data (default: $NOETL_MESH_HOME or <repo>/.mesh)",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("up", help="start the mesh (Postgres, NATS, services, gateway, worker)").set_defaults(
        handler=_up
    )
    commands.add_parser("down", help="stop the mesh").set_defaults(handler=_down)
    commands.add_parser("status", help="show each component; exit 0 up, 1 degraded, 3 down").set_defaults(
        handler=_status
    )

    logs = commands.add_parser("logs", help="print the end of the logs")
    logs.add_argument("name", nargs="?", help="one component, e.g. catalog or postgres (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines per log (default: 40)")
    logs.set_defaults(handler=_logs)

    run = commands.add_parser("run", help="run a playbook on the mesh, starting the mesh if needed")
    run.add_argument("file", type=Path, metavar="FILE", help="playbook YAML")
    run.add_argument(
        "--payload", type=_json_object, default=None, metavar="JSON", help="workload as a JSON object"
    )
    run.add_argument(
        "--set", dest="set", type=_assignment, action="append", default=[], metavar="KEY=VALUE",
        help="set one workload value (repeatable)",
    )  # fmt: skip
    run.set_defaults(handler=_run)
    return parser


def _up(stack: Stack, args: argparse.Namespace) -> int:
    if stack.status().health is Health.UP:
        print("noetl-mesh is already up")
    else:
        started = time.monotonic()
        stack.up()
        print(f"noetl-mesh is up ({time.monotonic() - started:.1f}s)")
    _print_table(stack.status())
    return 0


def _down(stack: Stack, args: argparse.Namespace) -> int:
    stack.down()
    print("noetl-mesh is down")
    return 0


def _status(stack: Stack, args: argparse.Namespace) -> int:
    status = stack.status()
    if status.health is Health.DOWN and not status.rows:
        print("noetl-mesh is down")
        return EXIT_DOWN
    _print_table(status)
    return {Health.UP: 0, Health.DEGRADED: EXIT_DEGRADED, Health.DOWN: EXIT_DOWN}[status.health]


def _logs(stack: Stack, args: argparse.Namespace) -> int:
    logs_dir = stack.run_dir / "logs"
    files = sorted(logs_dir.glob("*.log"))
    if args.name is not None:
        files = [f for f in files if f.stem == args.name]
        if not files:
            print(f"noetl-mesh: no log named {args.name!r} in {logs_dir}", file=sys.stderr)
            return 1
    for file in files:
        print(f"==> {file} <==\n{procs.tail(file, args.lines)}\n")
    return 0


def _run(stack: Stack, args: argparse.Namespace) -> int:
    # Loaded by name: noetl_mesh/run.py is written separately, and `up`/`down` must work without it.
    try:
        module = importlib.import_module("noetl_mesh.run")
    except ModuleNotFoundError as exc:
        if exc.name != "noetl_mesh.run":
            raise
        print("noetl-mesh: `run` is not available in this version", file=sys.stderr)
        return 1
    run_playbook = cast(RunPlaybook, module.run_playbook)
    if stack.status().health is not Health.UP:
        print("noetl-mesh: starting the mesh…", file=sys.stderr)
    info = stack.up()
    return asyncio.run(run_playbook(args, info))


def _print_table(status: StackStatus) -> None:
    header = ("NAME", "PID", "ALIVE", "ADDRESS", "LOG")
    rows = [
        (r.name, str(r.pid or "-"), "yes" if r.alive else "NO", r.address or "-", str(r.log or "-"))
        for r in status.rows
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value
