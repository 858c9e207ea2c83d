"""Launcher configuration: where the mesh keeps its files and which ports it uses.

Read from the environment once, at the edge (the CLI); everything else takes a StackConfig.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel import addresses
from noetl_mesh import procs
from noetl_mesh.embedded import DEFAULT_NATS_MONITOR_PORT, DEFAULT_NATS_PORT, DEFAULT_PG_PORT

REPO_ROOT = Path(__file__).resolve().parent.parent

# The infrastructure ports are resolved by the embedded servers themselves (0 = they pick).
_INFRA_PORTS = frozenset({"postgres", "nats", "nats_monitor"})
MAX_SHARDS = 8
# Shard k > 0 listens on shard 0's fixed ports plus k times this.
SHARD_PORT_STRIDE = 100


@dataclass(frozen=True)
class ShardPorts:
    """The ports of one shard's processes: its execution, events and outbox services."""

    execution: int = 0
    events: int = 0
    outbox: int = 0
    execution_metrics: int = 0
    events_metrics: int = 0
    outbox_metrics: int = 0

    def offset(self, by: int) -> ShardPorts:
        """Every fixed port moved by `by`; a free-pick port (0) stays free-pick."""
        return ShardPorts(
            **{name: port + by if port else 0 for name, port in dataclasses.asdict(self).items()}
        )


@dataclass(frozen=True)
class Ports:
    """Every port of a local mesh; 0 means "pick a free one when the stack starts"."""

    postgres: int = DEFAULT_PG_PORT
    nats: int = DEFAULT_NATS_PORT
    nats_monitor: int = DEFAULT_NATS_MONITOR_PORT
    catalog: int = addresses.CATALOG_PORT
    execution: int = addresses.EXECUTION_PORT
    events: int = addresses.EVENTS_PORT
    outbox: int = addresses.OUTBOX_PORT
    secrets: int = addresses.SECRETS_PORT
    gateway: int = addresses.GATEWAY_PORT
    catalog_metrics: int = 9101
    execution_metrics: int = 9102
    events_metrics: int = 9103
    outbox_metrics: int = 9104
    gateway_metrics: int = 9105
    worker_metrics: int = 9106
    secrets_metrics: int = 9107
    # Shards 1.. (shard 0 is the fields above); empty for a one-shard mesh.
    more_shards: tuple[ShardPorts, ...] = ()

    @classmethod
    def ephemeral(cls) -> Ports:
        """All ports free-picked: what tests use, so they never collide with a dev stack."""
        return cls.from_dict({f.name: 0 for f in dataclasses.fields(cls) if f.name != "more_shards"})

    @property
    def shard_count(self) -> int:
        return 1 + len(self.more_shards)

    def shard(self, index: int) -> ShardPorts:
        if index == 0:
            return ShardPorts(
                self.execution,
                self.events,
                self.outbox,
                self.execution_metrics,
                self.events_metrics,
                self.outbox_metrics,
            )
        return self.more_shards[index - 1]

    def with_shards(self, count: int) -> Ports:
        """A copy laid out for `count` shards: shard k > 0 on shard 0's ports plus k * 100.

        Raises:
            ValueError: `count` is outside 1..MAX_SHARDS.
        """
        if not 1 <= count <= MAX_SHARDS:
            raise ValueError(f"the shard count must be from 1 to {MAX_SHARDS}, got {count}")
        first = self.shard(0)
        more = tuple(first.offset(k * SHARD_PORT_STRIDE) for k in range(1, count))
        return dataclasses.replace(self, more_shards=more)

    def resolve_processes(self) -> Ports:
        """A copy with every 0 among the mesh processes' ports replaced by a free port."""
        names = [f.name for f in dataclasses.fields(self) if f.name not in _INFRA_PORTS | {"more_shards"}]
        unset = [name for name in names if not getattr(self, name)]
        unset_shards = sum(1 for shard in self.more_shards for port in dataclasses.astuple(shard) if not port)
        free = iter(procs.free_ports(len(unset) + unset_shards))
        more = tuple(
            ShardPorts(**{name: port or next(free) for name, port in dataclasses.asdict(shard).items()})
            for shard in self.more_shards
        )
        return dataclasses.replace(self, more_shards=more, **{name: next(free) for name in unset})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ports:
        names = {f.name for f in dataclasses.fields(cls)} - {"more_shards"}
        more = tuple(
            ShardPorts(**{k: int(v) for k, v in shard.items()}) for shard in data.get("more_shards", ())
        )
        return cls(more_shards=more, **{k: int(v) for k, v in data.items() if k in names})


@dataclass(frozen=True)
class StackConfig:
    """How to run a local mesh.

    `pg_dsn` / `nats_url` name external servers; None means start embedded ones under
    `run_dir`. `base_env` is the environment every mesh process gets, with the mesh's own
    variables laid over it.
    """

    run_dir: Path
    ports: Ports = field(default_factory=Ports)
    pg_dsn: str | None = None
    nats_url: str | None = None
    # Execution shards, each with its own events and outbox service and its own database; None
    # means "as the running stack has them" (1 for a fresh start).
    shards: int | None = None
    ready_timeout: float = 60.0
    stop_grace: float = 10.0
    # A supervisor process restarts whatever crashes (noetl_mesh/supervisor.py).
    supervise: bool = True
    # Mesh processes inherit the caller's environment, as any command they were started from would.
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, run_dir: Path | None = None, shards: int | None = None
    ) -> StackConfig:
        """The configuration `noetl-mesh` uses: NOETL_MESH_HOME, NOETL_PG_DSN, NOETL_NATS_URL."""
        home = run_dir or Path(environ.get("NOETL_MESH_HOME") or REPO_ROOT / ".mesh")
        return cls(
            run_dir=home.resolve(),
            shards=shards,
            pg_dsn=environ.get("NOETL_PG_DSN") or None,
            nats_url=environ.get("NOETL_NATS_URL") or None,
            base_env=dict(environ),
        )
