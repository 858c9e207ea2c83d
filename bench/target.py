"""The mesh under test: one this benchmark starts (and stops), or one already running."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.cpu import mesh_roots
from kernel.grpc_client import bearer_interceptors
from noetl_mesh import state
from noetl_mesh.config import REPO_ROOT, Ports, StackConfig
from noetl_mesh.credentials import AUTH_DIR, token_file
from noetl_mesh.stack import Stack
from noetl_mesh.state import StackInfo


@dataclass(frozen=True)
class Target:
    gateway_url: str
    description: str
    # Known only when the mesh's run dir is: the events service (for Subscribe), metrics, CPU roots.
    events_addr: str | None = None
    execution_addr: str | None = None
    catalog_addr: str | None = None
    metrics: dict[str, str] = field(default_factory=dict)  # component → metrics URL
    cpu_roots: dict[str, int] = field(default_factory=dict)
    pg_dsn: str | None = None
    nats_url: str | None = None
    run_dir: Path | None = None

    def channel(self, address: str, identity: str) -> grpc.aio.Channel:
        """A plain channel that calls as `identity` with the token the stack made for it (mesh auth
        is on: docs/security.md); without the stack's tokens, one without credentials."""
        token = token_file(self.run_dir / AUTH_DIR, identity) if self.run_dir is not None else None
        if token is None or not token.is_file():
            return grpc.aio.insecure_channel(address)
        return grpc.aio.insecure_channel(address, interceptors=bearer_interceptors(str(token)))


def _from_info(info: StackInfo, description: str) -> Target:
    p = info.ports
    # Subscribe, and the direct gRPC calls of the gateway benchmark, go to one shard: with several,
    # runs are timed by polling the gateway instead, which routes to the owner.
    one_shard = p.shard_count == 1
    return Target(
        gateway_url=info.gateway_url,
        description=description,
        events_addr=info.events_addrs[0] if one_shard else None,
        execution_addr=info.execution_addrs[0] if one_shard else None,
        catalog_addr=info.catalog_addr,
        metrics={
            "events": f"http://127.0.0.1:{p.events_metrics}/metrics",
            "execution": f"http://127.0.0.1:{p.execution_metrics}/metrics",
            "outbox": f"http://127.0.0.1:{p.outbox_metrics}/metrics",
            "catalog": f"http://127.0.0.1:{p.catalog_metrics}/metrics",
            "gateway": f"{info.gateway_url}/metrics",
        },
        cpu_roots=mesh_roots(info.run_dir, {proc.name: proc.pid for proc in info.processes}),
        pg_dsn=info.pg_dsn,
        nats_url=info.nats_url,
        run_dir=info.run_dir,
    )


@contextlib.contextmanager
def own_mesh(verbose: bool, shards: int = 1) -> Iterator[Target]:
    """A fresh mesh of `shards` shards (embedded Postgres and NATS, ephemeral ports) in a temp run
    dir, stopped on exit."""
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="  %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as tmp:
        stack = Stack(StackConfig(run_dir=Path(tmp) / "mesh", ports=Ports.ephemeral(), shards=shards))
        started = time.monotonic()
        print("starting a mesh in a temp run dir ...", file=sys.stderr, flush=True)
        try:
            info = stack.up()
            print(
                f"mesh up in {time.monotonic() - started:.1f}s at {info.gateway_url}",
                file=sys.stderr,
                flush=True,
            )
            yield _from_info(info, f"own mesh ({shards} shard(s), ephemeral ports, {info.run_dir})")
        finally:
            print("stopping the mesh ...", file=sys.stderr, flush=True)
            stack.down()


def external(gateway_url: str, run_dir: Path | None) -> Target:
    """A running mesh. Its run dir (given, or NOETL_MESH_HOME / .mesh when its gateway matches) adds
    the Subscribe address, metrics and CPU accounting; without it chains are timed by polling."""
    gateway_url = gateway_url.rstrip("/")
    candidates = [run_dir] if run_dir else [Path(os.environ.get("NOETL_MESH_HOME") or REPO_ROOT / ".mesh")]
    for candidate in candidates:
        info = state.load(candidate.resolve())
        if info is not None and (run_dir is not None or info.gateway_url == gateway_url):
            return _from_info(info, f"running mesh at {gateway_url} (run dir {info.run_dir})")
    return Target(gateway_url=gateway_url, description=f"running mesh at {gateway_url} (run dir unknown)")


def scrape(url: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value}; empty when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            samples[key] = float(value)
    return samples


_PG_STATS = (
    "SELECT xact_commit, tup_inserted, tup_updated, tup_returned + tup_fetched FROM pg_stat_database "
    "WHERE datname = current_database()"
)
PG_FIELDS = ("commits", "rows inserted", "rows updated", "rows read")


async def pg_stats(dsn: str | None) -> dict[str, float]:
    """Cumulative counters of the mesh's database (flushed by Postgres about once a second)."""
    if dsn is None:
        return {}
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return {}
    try:
        # Counters of other backends reach the shared view at most ~1 s late; force ours out.
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(_PG_STATS)
    finally:
        await conn.close()
    return dict(zip(PG_FIELDS, (float(v) for v in row), strict=True)) if row else {}


class Snapshot:
    """Metrics of every component plus the database counters, taken at one moment."""

    def __init__(self, metrics: dict[str, dict[str, float]], pg: dict[str, float]) -> None:
        self.metrics = metrics
        self.pg = pg

    @classmethod
    async def take(cls, target: Target) -> Snapshot:
        import asyncio

        names = list(target.metrics)
        scraped = await asyncio.gather(*(asyncio.to_thread(scrape, target.metrics[n]) for n in names))
        return cls(dict(zip(names, scraped, strict=True)), await pg_stats(target.pg_dsn))
