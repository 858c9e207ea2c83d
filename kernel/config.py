"""Reading configuration once, reporting every problem at once.

Each service's `settings.py` builds a frozen dataclass with an `EnvReader` and calls
`finish()`; domain code receives the settings object and never reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kernel.ids import default_machine_id
from kernel.mesh_auth import MeshAuth


class ConfigError(Exception):
    """Every missing or invalid setting, one per line."""


class EnvReader:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ
        self._problems: list[str] = []

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self._env.get(name, "").strip()
        if value:
            return value
        if required:
            self._problems.append(f"{name} is required")
        return default or ""

    def first(self, names: tuple[str, ...], default: str = "") -> str:
        """The first of several spellings that is set (e.g. NOETL_NATS_URL, NATS_URL)."""
        for name in names:
            value = self._env.get(name, "").strip()
            if value:
                return value
        return default

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self._problems.append(f"{name} must be an integer, got {raw!r}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self._problems.append(f"{name} must be in {minimum}..{maximum}, got {value}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self._problems.append(f"{name} must be a number, got {raw!r}")
            return default
        if minimum is not None and value < minimum:
            self._problems.append(f"{name} must be >= {minimum}, got {value}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        self._problems.append(f"{name} must be true or false, got {raw!r}")
        return default

    def addresses(self, name: str, default: str = "", *, required: bool = False) -> tuple[str, ...]:
        """A comma-separated list of host:port, position = shard index."""
        raw = self.text(name, default, required=required)
        items = tuple(part.strip() for part in raw.split(",") if part.strip())
        for item in items:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit():
                self._problems.append(f"{name}: {item!r} is not host:port")
        return items

    def machine_id(self) -> int:
        """`NOETL_SERVER_MACHINE_ID` (0..1023), else a hash of `$HOSTNAME` (data-model.md §2.1)."""
        try:
            return default_machine_id(self._env)
        except ValueError as exc:
            self._problems.append(str(exc))
            return 0

    def problem(self, message: str) -> None:
        """Records a problem no single reader sees, such as two variables that must go together."""
        self._problems.append(message)

    def finish(self) -> None:
        """Raises ConfigError listing every problem seen."""
        if self._problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(self._problems))


@dataclass(frozen=True, slots=True)
class ServiceBasics:
    """What every gRPC service process needs."""

    listen: str
    metrics_port: int
    pg_dsn: str
    machine_id: int  # snowflake machine id: distinct per process (data-model.md §2.1)
    # Who this service is to its peers, and how it tells who calls it (on unless turned off).
    mesh: MeshAuth

    @classmethod
    def read(cls, env: EnvReader, default_listen: str, identity: str, *, calls: bool = True) -> ServiceBasics:
        """`identity` is the service's caller name (mesh_policy); `calls`: it calls other services."""
        return cls(
            listen=env.text("NOETL_GRPC_LISTEN", default_listen),
            metrics_port=env.integer("NOETL_METRICS_PORT", 0, minimum=0, maximum=65535),
            pg_dsn=env.text("NOETL_PG_DSN", required=True),
            machine_id=env.machine_id(),
            mesh=MeshAuth.read(env, identity, serves=True, calls=calls),
        )
