"""`noetl-mesh` / `python -m noetl_mesh`: run the mesh on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from kernel.mesh_policy import CALLERS, LAUNCHER
from noetl_mesh import procs
from noetl_mesh.config import MAX_SHARDS, StackConfig
from noetl_mesh.credentials import GATEWAY_TOKEN_ENV, write_tokens
from noetl_mesh.errors import LauncherError, StartError
from noetl_mesh.stack import Health, Stack, StackStatus
from noetl_mesh.state import StackInfo

# Exit codes of `status`, after the LSB init-script convention.
EXIT_DEGRADED = 1
EXIT_DOWN = 3
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.token = _gateway_token(args.token)
    _show_progress()
    stack = Stack(StackConfig.from_env(os.environ, run_dir=args.home, shards=getattr(args, "shards", None)))
    handler = cast(Callable[[Stack, argparse.Namespace], int], args.handler)
    try:
        return handler(stack, args)
    except LauncherError as exc:
        print(f"noetl-mesh: {exc}", file=sys.stderr)
        if isinstance(exc, StartError) and exc.log_tail:
            print(f"--- last lines of the {exc.name} log ---\n{exc.log_tail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Stack.up() has already stopped what it started by the time this arrives here.
        print("noetl-mesh: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _gateway_token(option: str | None) -> str | None:
    """`--token`, else $NOETL_SESSION_TOKEN (the `noetl` CLI's variable); None: send none."""
    token = option if option is not None else os.environ.get(GATEWAY_TOKEN_ENV, "")
    return token.strip() or None


def _show_progress() -> None:
    """Launcher progress on stderr. Only our own loggers: libraries' INFO logs would be noise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    launcher = logging.getLogger("noetl_mesh")
    launcher.addHandler(handler)
    launcher.setLevel(logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noetl-mesh", description="Run the NoETL mesh on this machine.")
    parser.add_argument(
        "--home", type=Path, default=None, metavar="DIR",
        help="run directory for state, logs and embedded data (default: $NOETL_MESH_HOME or <repo>/.mesh)",
    )  # fmt: skip
    parser.add_argument(
        "--token", default=None, metavar="TOKEN",
        help="bearer token for a gateway with HTTP auth on (run, list, show; default: $NOETL_SESSION_TOKEN)",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start the mesh (Postgres, NATS, services, gateway, worker)")
    up.add_argument(
        "--shards", type=_shard_count, default=None, metavar="N",
        help=f"execution shards, each with its own events and outbox service and database "
        f"(1..{MAX_SHARDS}; default: 1, or what the running mesh has)",
    )  # fmt: skip
    up.set_defaults(handler=_up)
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
    # Passed to noetl_mesh.run as given; it validates them and owns the messages.
    run.add_argument("--payload", default=None, metavar="JSON", help="workload as a JSON object")
    run.add_argument(
        "--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
        help="set one workload value (repeatable)",
    )  # fmt: skip
    run.add_argument(
        "--json", action="store_true", help="print one JSON document: id, status, each step's result"
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop waiting after this long (exit 124)",
    )
    run.add_argument("--detach", action="store_true", help="print the execution id and return at once")
    run.set_defaults(handler=_run)

    listing = commands.add_parser("list", help="recent runs, newest first")
    listing.add_argument("-n", "--limit", type=int, default=20, help="how many (default: 20, at most 200)")
    listing.add_argument("--status", choices=("running", "completed", "failed", "cancelled"), type=str.lower)
    listing.add_argument("--path", default=None, help="only playbooks whose path contains this")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="one run's steps; --follow watches it live")
    show.add_argument("execution_id", metavar="ID")
    show.add_argument("-f", "--follow", action="store_true", help="follow the run until it ends")
    show.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="stop following after this long"
    )
    show.add_argument(
        "--json", action="store_true", help="print one JSON document: status, each step's result"
    )
    show.set_defaults(handler=_show)

    tokens = commands.add_parser(
        "tokens", help="write fresh mesh tokens for a cluster (a Secret's files; docs/security.md)"
    )
    tokens.add_argument(
        "directory", type=Path, metavar="DIR", help="where to write <caller>.token and tokens"
    )
    tokens.set_defaults(handler=_tokens)
    return parser


def _shard_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_SHARDS}, got {text!r}")
    return count


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
    # Imported here so that `up`, `down` and `status` do not load gRPC, httpx and rich.
    from noetl_mesh.run import run_playbook

    if stack.status().health is not Health.UP:
        print("noetl-mesh: starting the mesh…", file=sys.stderr)
    info = stack.up()
    return run_playbook(args, info)


def _list(stack: Stack, args: argparse.Namespace) -> int:
    from noetl_mesh.runs import list_runs

    if not 1 <= args.limit <= 200:
        print("noetl-mesh: --limit must be between 1 and 200", file=sys.stderr)
        return 2
    return list_runs(args, _running(stack))


def _show(stack: Stack, args: argparse.Namespace) -> int:
    from noetl_mesh.runs import show_run

    return show_run(args, _running(stack))


def _running(stack: Stack) -> StackInfo:
    """The running stack's record; `list` and `show` never start one.

    Raises:
        LauncherError: the mesh is not up.
    """
    if stack.status().health is not Health.UP:
        raise LauncherError("the mesh is not running (start it with `noetl-mesh up` or `noetl-mesh run`)")
    return stack.up()


def _tokens(stack: Stack, args: argparse.Namespace) -> int:
    # Every caller a cluster runs (the launcher's own `run` never runs there), one token each: a
    # cluster's workers (a Deployment's pods) share the `worker` identity (docs/security.md).
    write_tokens(args.directory, {caller: caller for caller in CALLERS if caller != LAUNCHER})
    print(
        f"wrote mesh tokens to {args.directory}; e.g. kubectl create secret generic noetl-mesh-tokens "
        f"--from-file={args.directory}"
    )
    return 0


def _print_table(status: StackStatus) -> None:
    header = ("NAME", "PID", "ALIVE", "RESTARTS", "SHARD", "DATABASE", "ADDRESS", "LOG")
    rows = [
        (
            r.name,
            str(r.pid or "-"),
            "yes" if r.alive else "NO",
            str(r.restarts),
            "-" if r.shard is None else str(r.shard),
            r.database or "-",
            r.address or "-",
            str(r.log or "-"),
        )
        for r in status.rows
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
