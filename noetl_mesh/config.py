"""Launcher configuration: where the mesh keeps its files and which ports it uses.

Read from the environment once, at the edge (the CLI); everything else takes a StackConfig.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from noetl_mesh import procs
from noetl_mesh.embedded import DEFAULT_NATS_MONITOR_PORT, DEFAULT_NATS_PORT, DEFAULT_PG_PORT

REPO_ROOT = Path(__file__).resolve().parent.parent

# The infrastructure ports are resolved by the embedded servers themselves (0 = they pick).
_INFRA_PORTS = frozenset({"postgres", "nats", "nats_monitor"})


@dataclass(frozen=True)
class Ports:
    """Every port of a local mesh; 0 means "pick a free one when the stack starts"."""

    postgres: int = DEFAULT_PG_PORT
    nats: int = DEFAULT_NATS_PORT
    nats_monitor: int = DEFAULT_NATS_MONITOR_PORT
    catalog: int = 50051
    execution: int = 50052
    events: int = 50053
    outbox: int = 50054
    secrets: int = 50055
    gateway: int = 8082
    catalog_metrics: int = 9101
    execution_metrics: int = 9102
    events_metrics: int = 9103
    outbox_metrics: int = 9104
    gateway_metrics: int = 9105
    worker_metrics: int = 9106
    secrets_metrics: int = 9107

    @classmethod
    def ephemeral(cls) -> Ports:
        """All ports free-picked: what tests use, so they never collide with a dev stack."""
        return cls(**{f.name: 0 for f in dataclasses.fields(cls)})

    def resolve_processes(self) -> Ports:
        """A copy with every 0 among the mesh processes' ports replaced by a free port."""
        names = [f.name for f in dataclasses.fields(self) if f.name not in _INFRA_PORTS]
        unset = [name for name in names if not getattr(self, name)]
        return dataclasses.replace(self, **dict(zip(unset, procs.free_ports(len(unset)), strict=True)))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> Ports:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in data.items() if k in names})


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
    ready_timeout: float = 60.0
    stop_grace: float = 10.0
    # A supervisor process restarts whatever crashes (noetl_mesh/supervisor.py).
    supervise: bool = True
    # Mesh processes inherit the caller's environment, as any command they were started from would.
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, run_dir: Path | None = None) -> StackConfig:
        """The configuration `noetl-mesh` uses: NOETL_MESH_HOME, NOETL_PG_DSN, NOETL_NATS_URL."""
        home = run_dir or Path(environ.get("NOETL_MESH_HOME") or REPO_ROOT / ".mesh")
        return cls(
            run_dir=home.resolve(),
            pg_dsn=environ.get("NOETL_PG_DSN") or None,
            nats_url=environ.get("NOETL_NATS_URL") or None,
            base_env=dict(environ),
        )
