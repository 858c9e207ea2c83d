"""`python -m bench [ingest|gateway|chain|outbox|loops|tools|emit|all]`: start a mesh (or use a running one), benchmark it, print figures.

Examples:
    .venv/bin/python -m bench                      # everything, on a mesh of its own (~1.5 min)
    .venv/bin/python -m bench ingest --duration 10 --clients 16
    .venv/bin/python -m bench gateway --calls 2000    # HTTP vs direct gRPC for the same calls
    .venv/bin/python -m bench chain --runs 10 --chains python
    .venv/bin/python -m bench outbox --backlog 100000 --outbox-batch 1000
    .venv/bin/python -m bench all --gateway http://127.0.0.1:8082   # a mesh already running
    .venv/bin/python -m bench tools                # the worker's tools, on meshes of its own
    .venv/bin/python -m bench loops --loop-runs 5  # 200-iteration loop, 100-wide loop, 50-step chain
    .venv/bin/python -m bench loops --loops seq2000,par2000 --loop-runs 1  # 2,000 iterations
    .venv/bin/python -m bench --compare http://127.0.0.1:8092  # side by side with another server
    .venv/bin/python -m bench throughput --shards 3  # 50 chains in flight on a three-shard mesh
    .venv/bin/python -m bench emit --streams 16 --duration 10  # workers' StreamEmit (not in `all`)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bench import chain as chain_bench
from bench import compare as compare_bench
from bench import emit as emit_bench
from bench import gateway as gateway_bench
from bench import ingest as ingest_bench
from bench import loops as loops_bench
from bench import outbox as outbox_bench
from bench import passes as passes_bench
from bench import throughput as throughput_bench
from bench import tools as tools_bench
from bench.cpu import share_rows
from bench.stats import table
from bench.target import Target, external, own_mesh

T = TypeVar("T")

# Python reference server (the NoETL server the mesh re-implements), as given to this project.
REFERENCE = {
    "ingest req/s": "≈440",
    "ingest p99 ms": "≈257",
    "chain python median ms": "≈386",
    "chain python ms/step": "≈35",
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "benchmark",
        nargs="?",
        choices=("ingest", "gateway", "chain", "outbox", "tools", "loops", "throughput", "emit", "all"),
        default="all",
    )
    parser.add_argument("--gateway", help="benchmark a running mesh at this URL instead of starting one")
    parser.add_argument(
        "--run-dir", type=Path, help="run dir of the running mesh (Subscribe address, metrics, CPU)"
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="ingest, emit: measured seconds (default 20)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="ingest, emit: unmeasured seconds first (default 2)"
    )
    parser.add_argument("--clients", type=int, default=64, help="ingest: concurrent clients (default 64)")
    parser.add_argument(
        "--calls", type=int, default=1000, help="gateway: timed calls per side and call (default 1000)"
    )
    parser.add_argument(
        "--executions", type=int, default=8, help="ingest: executions posted into (default 8)"
    )
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="ingest: HTTP client (default raw)"
    )
    parser.add_argument("--runs", type=int, default=20, help="chain: timed runs per chain (default 20)")
    parser.add_argument("--warmup-runs", type=int, default=2, help="chain: untimed runs first (default 2)")
    parser.add_argument(
        "--timing",
        choices=("auto", "stream", "poll"),
        default="auto",
        help="chain: stop the clock on the Subscribe stream's terminal event, or by polling "
        "/status every 5 ms (auto: the stream when the events address is known)",
    )
    parser.add_argument("--chains", default="noop,python", help="chain: kinds to run (default noop,python)")
    parser.add_argument(
        "--backlog", type=int, default=100_000, help="outbox: rows the publisher drains (default 100000)"
    )
    parser.add_argument(
        "--relay-events",
        type=int,
        default=1000,
        help="outbox: appends timed on the relay path (default 1000)",
    )
    parser.add_argument(
        "--outbox-batch",
        type=int,
        help="outbox: the publisher's batch size on a mesh of its own (default: the service's, 100)",
    )
    parser.add_argument(
        "--loop-runs", type=int, default=3, help="loops: timed runs per playbook (default 3, 1 warm-up first)"
    )
    parser.add_argument(
        "--loops",
        default="seq200,par100,chain50",
        help="loops: playbooks to run (default seq200,par100,chain50; also seq2000,par2000, minutes each)",
    )
    parser.add_argument(
        "--compare",
        metavar="URL",
        help="run the portable scenarios (sequential chain, concurrent chains, ingest) against the mesh "
        "and this NoETL-compatible base URL, alternating, and print both with the ratio",
    )
    parser.add_argument("--rounds", type=int, default=3, help="compare: alternating rounds (default 3)")
    parser.add_argument(
        "--concurrent", type=int, default=50, help="compare: chains started at once (default 50)"
    )
    parser.add_argument(
        "--shards", type=int, default=1, help="execution shards of a mesh of its own (1..8, default 1)"
    )
    parser.add_argument(
        "--in-flight", type=int, default=50, help="throughput: chains started at once (default 50)"
    )
    parser.add_argument(
        "--streams", type=int, default=16, help="emit: concurrent StreamEmit streams (default 16)"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=1,
        help="emit: messages (transactions) per StreamEmit call, sent at once (default 1)",
    )
    parser.add_argument("--batch", type=int, default=1, help="emit: events per message (default 1)")
    parser.add_argument("--verbose", action="store_true", help="show the mesh's start-up log")
    args = parser.parse_args(argv)
    if not 1 <= args.shards <= 8 or (args.gateway and args.shards != 1):
        parser.error("--shards takes 1..8 and applies only to a mesh of its own")
    if not 1 <= args.in_flight <= 500:
        parser.error("--in-flight must be 1..500")
    if not 1 <= args.clients <= 512 or not 1 <= args.executions <= 1000:
        parser.error("--clients must be 1..512 and --executions 1..1000")
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 600] and --warmup in [0, 60]")
    if not 1 <= args.streams <= 256 or not 1 <= args.messages <= 1000 or not 1 <= args.batch <= 1000:
        parser.error("--streams must be 1..256, --messages 1..1000 and --batch 1..1000")
    if not 10 <= args.calls <= 100_000:
        parser.error("--calls must be 10..100000")
    if not 1 <= args.runs <= 1000 or not 0 <= args.warmup_runs <= 100:
        parser.error("--runs must be 1..1000 and --warmup-runs 0..100")
    if not 1 <= args.backlog <= 1_000_000 or not 1 <= args.relay_events <= 100_000:
        parser.error("--backlog must be 1..1000000 and --relay-events 1..100000")
    if args.outbox_batch is not None and (args.gateway or not 1 <= args.outbox_batch <= 1000):
        parser.error("--outbox-batch takes 1..1000 and applies only to a mesh of its own")
    args.chains = [c.strip() for c in args.chains.split(",") if c.strip()]
    args.loops = [name.strip() for name in args.loops.split(",") if name.strip()]
    if not set(args.loops) <= set(loops_bench.SCENARIOS) or not 1 <= args.loop_runs <= 100:
        parser.error(f"--loops takes {', '.join(loops_bench.SCENARIOS)}; --loop-runs 1..100")
    if not 1 <= args.rounds <= 20 or not 1 <= args.concurrent <= 1000:
        parser.error("--rounds must be 1..20 and --concurrent 1..1000")
    if not set(args.chains) <= {"noop", "python"}:
        parser.error("--chains takes noop and/or python")
    return args


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[Target]:
    if args.gateway:
        yield external(args.gateway, args.run_dir)
    else:
        if args.outbox_batch is not None:
            # The mesh processes inherit this process's environment.
            os.environ["NOETL_OUTBOX_PUBLISHER_BATCH_SIZE"] = str(args.outbox_batch)
        with own_mesh(args.verbose, args.shards) as target:
            yield target


async def _run(args: argparse.Namespace, target: Target) -> tuple[list[list[str]], list[str]]:
    rows: list[list[str]] = []
    details: list[str] = []
    if args.benchmark in ("ingest", "all"):
        print(f"ingest: {args.warmup:g}s warm-up + {args.duration:g}s ...", file=sys.stderr, flush=True)
        r = await ingest_bench.run_ingest(
            target,
            clients=args.clients,
            duration=args.duration,
            warmup=args.warmup,
            executions=args.executions,
            client_kind=args.client,
        )
        details += ingest_bench.describe(r)
        name = f"ingest ({r.clients} clients)"
        rows += [
            [name, "req/s", f"{r.rps:.0f}", REFERENCE["ingest req/s"]],
            [name, "p50 / p95 ms", f"{r.pct(50):.1f} / {r.pct(95):.1f}", ""],
            [name, "p99 ms", f"{r.pct(99):.1f}", REFERENCE["ingest p99 ms"]],
            [name, "errors", str(sum(r.errors.values())), ""],
            *share_rows(name, r.cpu),
        ]
    if args.benchmark == "emit":
        print(f"emit: {args.warmup:g}s warm-up + {args.duration:g}s ...", file=sys.stderr, flush=True)
        emitted = await emit_bench.run_emit(
            target,
            streams=args.streams,
            messages=args.messages,
            batch=args.batch,
            duration=args.duration,
            warmup=args.warmup,
        )
        rows += emit_bench.rows(emitted)
        details += emit_bench.describe(emitted)
    if args.benchmark in ("gateway", "all"):
        print(f"gateway: {args.calls} calls per side, 3 calls ...", file=sys.stderr, flush=True)
        compared = await gateway_bench.run_gateway(target, calls=args.calls, warmup=100)
        rows += gateway_bench.rows(compared)
        details += gateway_bench.describe(compared)
    if args.benchmark in ("chain", "all"):
        for kind in args.chains:
            print(
                f"chain {kind}: {args.warmup_runs} warm-up + {args.runs} runs ...",
                file=sys.stderr,
                flush=True,
            )
            if args.timing == "stream" and target.events_addr is None:
                raise SystemExit(
                    "--timing stream needs the mesh's run dir (--run-dir) to find the events service"
                )
            c = await chain_bench.run_chain(
                target, kind=kind, runs=args.runs, warmup=args.warmup_runs, poll=args.timing == "poll"
            )
            details += chain_bench.describe(c)
            name = f"10-step {kind} chain"
            rows += [
                [name, "median ms", f"{c.median():.0f}", REFERENCE.get(f"chain {kind} median ms", "")],
                [name, "p90 ms", f"{c.p90():.0f}", ""],
                [
                    name,
                    "ms/step (median/10)",
                    f"{c.median() / 10:.1f}",
                    REFERENCE.get(f"chain {kind} ms/step", ""),
                ],
                [name, "failed runs", str(len(c.failures)), ""],
            ]
    if args.benchmark in ("loops", "all"):
        print(f"loops: {', '.join(args.loops)}, 1 warm-up + {args.loop_runs} runs each ...", file=sys.stderr)
        engine = await asyncio.to_thread(passes_bench.pass_times, loops_bench.SEQ_ITERATIONS, 5)
        loops = await loops_bench.run_loops(target, names=args.loops, runs=args.loop_runs, warmup=1)
        rows += loops_bench.rows(loops, engine)
        details += loops_bench.describe(loops, engine)
    if args.benchmark == "throughput":
        kind = args.chains[0]
        print(f"throughput: {args.in_flight} {kind} chains at once ...", file=sys.stderr, flush=True)
        throughput = await throughput_bench.run_throughput(
            target, kind=kind, in_flight=args.in_flight, shards=args.shards, warmup=min(args.in_flight, 10)
        )
        rows += throughput_bench.rows(throughput)
        details += throughput_bench.describe(throughput)
    if args.benchmark in ("outbox", "all"):
        print(f"outbox: drain {args.backlog:,} rows ...", file=sys.stderr, flush=True)
        drain = await outbox_bench.run_drain(target, backlog=args.backlog)
        print(f"outbox: {args.relay_events} appends on the relay path ...", file=sys.stderr, flush=True)
        relay = await outbox_bench.run_relay(target, events=args.relay_events)
        rows += outbox_bench.drain_rows(drain) + outbox_bench.relay_rows(relay)
        details += outbox_bench.describe(drain, relay)
    return rows, details


def _tools(args: argparse.Namespace) -> int:
    """`tools` starts meshes of its own (4 worker processes), so it does not take `--gateway`."""
    if args.gateway:
        raise SystemExit("tools starts a mesh of its own; --gateway does not apply")
    result = tools_bench.run_tools(runs=min(args.runs, 10), verbose=args.verbose)
    print()
    print(f"noetl-mesh tools benchmark, {os.cpu_count()} cores, Python {platform.python_version()}")
    print()
    print(table(["benchmark", "figure", "measured", "Python reference"], tools_bench.rows(result)))
    print()
    print("\n".join(tools_bench.describe(result)))
    return 1 if result.failures else 0


def _banner(target: Target, load_before: float) -> str:
    load = os.getloadavg()
    return (
        f"noetl-mesh benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {target.description}; "
        f"load average {load_before:.2f} before, {load[0]:.2f} after"
    )


def _run_async(work: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a runtime dependency of the mesh
        return asyncio.run(work)
    result: T = uvloop.run(work)
    return result


def _compare(args: argparse.Namespace) -> int:
    options = compare_bench.CompareOptions(
        rounds=args.rounds,
        runs=args.runs,
        warmup_runs=args.warmup_runs,
        executions=args.concurrent,
        clients=args.clients,
        duration=args.duration,
        warmup=args.warmup,
    )
    load_before = os.getloadavg()[0]
    with _target(args) as target:
        mesh, other = _run_async(compare_bench.run_compare(target, args.compare, options))
        text = compare_bench.report(mesh, other, target.cpu_roots)
    print()
    print(_banner(target, load_before))
    print()
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.benchmark == "tools":
        return _tools(args)
    if args.compare:
        return _compare(args)
    load_before = os.getloadavg()[0]
    with _target(args) as target:
        rows, details = _run_async(_run(args, target))
    print()
    print(_banner(target, load_before))
    print()
    print(table(["benchmark", "figure", "measured", "Python reference"], rows))
    print()
    print("\n".join(details))
    return 0


if __name__ == "__main__":
    sys.exit(main())
