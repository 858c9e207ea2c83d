"""The processes of a local mesh, in start order, and the environment they share."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kernel.addresses import HOST, local
from noetl_mesh.config import Ports
from noetl_mesh.probes import GrpcHealth, HttpHealth, LogLine, Readiness


@dataclass(frozen=True)
class ProcessSpec:
    """One process the supervisor starts: its command, how to tell it is ready, its own variables."""

    name: str
    argv: tuple[str, ...]
    readiness: Readiness
    address: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    # Gets the stack's key-encryption key (noetl_mesh/kek.py); no other process sees it.
    holds_kek: bool = False
    # Gets the least-privilege DSN of `/api/postgres/execute` (noetl_mesh/query_role.py).
    runs_sql: bool = False
    # The shard it serves, on that shard's database; None for the cluster-wide processes.
    shard: int | None = None


def mesh_processes(ports: Ports, python: str = sys.executable) -> list[ProcessSpec]:
    """The mesh in dependency order: each process may call those started before it."""

    def service(name: str, port: int, metrics_port: int) -> ProcessSpec:
        address = local(port)
        env = {"NOETL_GRPC_LISTEN": address, "NOETL_METRICS_PORT": str(metrics_port)}
        return ProcessSpec(name, (python, "-m", f"services.{name}"), GrpcHealth(address), address, env)

    def sharded(name: str, index: int) -> ProcessSpec:
        shard = ports.shard(index)
        spec = service(name, getattr(shard, name), getattr(shard, f"{name}_metrics"))
        env = {**spec.env, "NOETL_SHARD_INDEX": str(index), "NOETL_OUTBOX_ADDR": local(shard.outbox)}
        label = name if ports.shard_count == 1 else f"{name}-{index}"
        return dataclasses.replace(spec, name=label, env=env, shard=index)

    shards = range(ports.shard_count)
    gateway_url = f"http://{HOST}:{ports.gateway}"
    return [
        service("catalog", ports.catalog, ports.catalog_metrics),
        *(sharded("events", k) for k in shards),
        *(dataclasses.replace(sharded("execution", k), runs_sql=True) for k in shards),
        *(sharded("outbox", k) for k in shards),
        dataclasses.replace(service("secrets", ports.secrets, ports.secrets_metrics), holds_kek=True),
        ProcessSpec(
            "gateway",
            (python, "-m", "gateway_http"),
            HttpHealth(f"{gateway_url}/health"),
            gateway_url,
            {"NOETL_METRICS_PORT": str(ports.gateway_metrics)},
        ),
        ProcessSpec(
            "worker",
            (python, "-m", "worker"),
            # The same text as worker.consumer.READY_MARKER; not imported, so the launcher
            # does not load the worker's dependencies.
            LogLine("worker ready: consuming pools"),
            env={"NOETL_METRICS_PORT": str(ports.worker_metrics)},
        ),
    ]


def mesh_environment(ports: Ports, *, pg_dsn: str, nats_url: str, run_dir: Path) -> dict[str, str]:
    """The variables every mesh process reads, beyond its own listen and metrics ports (and, for a
    shard's process, its index, its outbox and its database, which the stack lays over these)."""
    shards = [ports.shard(k) for k in range(ports.shard_count)]
    return {
        "NOETL_PG_DSN": pg_dsn,
        "NOETL_CLUSTER_PG_DSN": pg_dsn,
        "NOETL_NATS_URL": nats_url,
        "NOETL_CATALOG_ADDR": local(ports.catalog),
        # Comma lists with one address per shard, in shard order.
        "NOETL_EXECUTION_ADDRS": ",".join(local(shard.execution) for shard in shards),
        "NOETL_EVENTS_ADDRS": ",".join(local(shard.events) for shard in shards),
        "NOETL_OUTBOX_ADDRS": ",".join(local(shard.outbox) for shard in shards),
        "NOETL_SHARD_COUNT": str(ports.shard_count),
        # Event subjects end in the owning shard (bus.shard_events_filter): the same count.
        "NOETL_EVENT_SHARD_COUNT": str(ports.shard_count),
        "NOETL_SECRETS_ADDR": local(ports.secrets),
        "NOETL_HOST": HOST,
        "NOETL_PORT": str(ports.gateway),
        "NOETL_PUBLIC_SERVER_URL": f"http://{HOST}:{ports.gateway}",
        "NOETL_RUN_DIR": str(run_dir),
        # Logs are files; unbuffered output makes a crash's last lines land in them.
        "PYTHONUNBUFFERED": "1",
        # gRPC core logs an INFO line on every fork (the worker forks python children).
        "GRPC_VERBOSITY": "ERROR",
    }
