"""The processes of a local mesh, in start order, and the environment they share."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from noetl_mesh.config import Ports
from noetl_mesh.probes import GrpcHealth, HttpHealth, LogLine, Readiness

HOST = "127.0.0.1"


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


def mesh_processes(ports: Ports, python: str = sys.executable) -> list[ProcessSpec]:
    """The mesh in dependency order: each process may call those started before it."""

    def service(name: str, port: int, metrics_port: int) -> ProcessSpec:
        address = f"{HOST}:{port}"
        env = {"NOETL_GRPC_LISTEN": address, "NOETL_METRICS_PORT": str(metrics_port)}
        return ProcessSpec(name, (python, "-m", f"services.{name}"), GrpcHealth(address), address, env)

    gateway_url = f"http://{HOST}:{ports.gateway}"
    return [
        service("catalog", ports.catalog, ports.catalog_metrics),
        service("events", ports.events, ports.events_metrics),
        dataclasses.replace(service("execution", ports.execution, ports.execution_metrics), runs_sql=True),
        service("outbox", ports.outbox, ports.outbox_metrics),
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
    """The variables every mesh process reads, beyond its own listen and metrics ports."""
    return {
        "NOETL_PG_DSN": pg_dsn,
        "NOETL_NATS_URL": nats_url,
        "NOETL_CATALOG_ADDR": f"{HOST}:{ports.catalog}",
        # Comma lists with one address per shard; a local mesh runs one shard of each.
        "NOETL_EXECUTION_ADDRS": f"{HOST}:{ports.execution}",
        "NOETL_EVENTS_ADDRS": f"{HOST}:{ports.events}",
        "NOETL_OUTBOX_ADDR": f"{HOST}:{ports.outbox}",
        "NOETL_SECRETS_ADDR": f"{HOST}:{ports.secrets}",
        "NOETL_HOST": HOST,
        "NOETL_PORT": str(ports.gateway),
        "NOETL_PUBLIC_SERVER_URL": f"http://{HOST}:{ports.gateway}",
        "NOETL_RUN_DIR": str(run_dir),
        # Logs are files; unbuffered output makes a crash's last lines land in them.
        "PYTHONUNBUFFERED": "1",
        # gRPC core logs an INFO line on every fork (the worker forks python children).
        "GRPC_VERBOSITY": "ERROR",
    }
