"""What a running stack looks like, persisted as <run dir>/state.json between commands."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.sharding import shard_for
from noetl_mesh.config import Ports

STATE_FILE = "state.json"


@dataclass(frozen=True)
class InfraState:
    """Postgres or NATS: where it is and whether the stack started it (and so must stop it)."""

    name: str
    url: str
    embedded: bool
    log: Path | None


@dataclass(frozen=True)
class ProcessState:
    """A launched mesh process. `start_ticks` tells it apart from a later process reusing its pid."""

    name: str
    pid: int
    start_ticks: int | None
    address: str
    log: Path
    restarts: int = 0  # how often the launcher found it dead and started it again
    shard: int | None = None  # the shard it serves; None for cluster-wide processes


@dataclass(frozen=True)
class StackInfo:
    """Everything a client of a running stack needs; `noetl_mesh.run` receives one."""

    run_dir: Path
    started_at: float
    ports: Ports
    postgres: InfraState
    nats: InfraState
    processes: tuple[ProcessState, ...]
    # One database per shard, in shard order; with one shard it is the cluster database itself.
    shard_dsns: tuple[str, ...] = ()

    @property
    def pg_dsn(self) -> str:
        """The cluster database: catalog, credentials, keychain, worker pools."""
        return self.postgres.url

    @property
    def nats_url(self) -> str:
        return self.nats.url

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    @property
    def catalog_addr(self) -> str:
        return f"127.0.0.1:{self.ports.catalog}"

    @property
    def execution_addrs(self) -> tuple[str, ...]:
        """One address per execution shard, in shard order."""
        return tuple(f"127.0.0.1:{self.ports.shard(k).execution}" for k in range(self.ports.shard_count))

    @property
    def events_addrs(self) -> tuple[str, ...]:
        """One address per events shard, in shard order."""
        return tuple(f"127.0.0.1:{self.ports.shard(k).events}" for k in range(self.ports.shard_count))

    def events_addr_for(self, execution_id: int) -> str:
        """The events shard that holds an execution's log (its `shard_for`)."""
        addresses = self.events_addrs
        return addresses[shard_for(execution_id, len(addresses))]

    @property
    def outbox_addrs(self) -> tuple[str, ...]:
        """One address per outbox service (one per shard), in shard order."""
        return tuple(f"127.0.0.1:{self.ports.shard(k).outbox}" for k in range(self.ports.shard_count))

    def with_process(self, process: ProcessState) -> StackInfo:
        return dataclasses.replace(self, processes=(*self.processes, process))

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_dir": str(self.run_dir),
                "started_at": self.started_at,
                "ports": self.ports.to_dict(),
                "postgres": _infra_to_dict(self.postgres),
                "nats": _infra_to_dict(self.nats),
                "processes": [
                    {"name": p.name, "pid": p.pid, "start_ticks": p.start_ticks, "address": p.address,
                     "log": str(p.log), "restarts": p.restarts, "shard": p.shard}
                    for p in self.processes
                ],
                "shard_dsns": list(self.shard_dsns),
            },
            indent=2,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        """Raises: ValueError / KeyError / TypeError on a malformed document."""
        data = json.loads(text)
        return cls(
            run_dir=Path(data["run_dir"]),
            started_at=float(data["started_at"]),
            ports=Ports.from_dict(data["ports"]),
            postgres=_infra_from_dict(data["postgres"]),
            nats=_infra_from_dict(data["nats"]),
            processes=tuple(
                ProcessState(
                    p["name"],
                    int(p["pid"]),
                    p["start_ticks"],
                    p["address"],
                    Path(p["log"]),
                    int(p.get("restarts", 0)),
                    None if p.get("shard") is None else int(p["shard"]),
                )
                for p in data["processes"]
            ),
            shard_dsns=tuple(str(dsn) for dsn in data.get("shard_dsns", ())),
        )


def load(run_dir: Path) -> StackInfo | None:
    """The recorded stack, or None when there is none (or the record is unreadable)."""
    try:
        return StackInfo.from_json((run_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        # A record from an incompatible version or a torn write: nothing can be trusted in it.
        return None


def save(info: StackInfo) -> None:
    """Write atomically, owner-only: an external DSN in it may carry a password."""
    path = info.run_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(info.to_json())
    tmp.replace(path)


def remove(run_dir: Path) -> None:
    (run_dir / STATE_FILE).unlink(missing_ok=True)


def _infra_to_dict(infra: InfraState) -> dict[str, Any]:
    return {"name": infra.name, "url": infra.url, "embedded": infra.embedded,
            "log": str(infra.log) if infra.log else None}  # fmt: skip


def _infra_from_dict(data: dict[str, Any]) -> InfraState:
    log = data.get("log")
    return InfraState(str(data["name"]), str(data["url"]), bool(data["embedded"]), Path(log) if log else None)
