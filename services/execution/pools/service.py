"""The worker-pool registry (data-model.md §3.13, http-api.md §7.1-§7.4).

`noetl.runtime` is cluster-wide, so one execution service answers for it: the gateway and the
workers call shard 0. Claims on every shard read it to tell a dead holder from a slow one (§6.2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from kernel.errors import InvalidArgument, NotFound
from kernel.ids import Snowflake
from language.runtime_kinds import KINDS, WORKER_POOL
from services.execution.pools.store import PoolStore, RuntimeRow

READY = "ready"
# An unknown pool is told to come back after registering; a heartbeat period is plenty.
UNKNOWN_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    kind: str = WORKER_POOL
    uri: str | None = None
    status: str = READY
    capacity: int | None = None
    labels: dict[str, Any] | None = None
    runtime: dict[str, Any] | None = None

    def checked(self) -> Registration:
        """Trimmed name, lower-case status (empty = ready).

        Raises:
            InvalidArgument: naming the field that is blank, unknown or negative.
        """
        name = _checked_name(self.name)
        kind = _checked_kind(self.kind)
        status = self.status.strip().lower() or READY
        if self.capacity is not None and self.capacity < 0:
            raise InvalidArgument(f"capacity must be >= 0, got {self.capacity}")
        return replace(self, name=name, kind=kind, status=status)


@dataclass(frozen=True, slots=True)
class Beat:
    runtime_id: int
    recreated: bool


def unknown_pool(name: str) -> NotFound:
    return NotFound({"status": "unknown", "name": name}, retry_after=UNKNOWN_RETRY_AFTER_SECONDS)


class Pools:
    def __init__(self, store: PoolStore, ids: Snowflake) -> None:
        self._store = store
        self._ids = ids

    async def register(self, registration: Registration) -> int:
        """Upserts by (kind, name) and answers the pool's runtime id.

        Raises:
            InvalidArgument: see `Registration.checked`.
        """
        pool = registration.checked()
        return await self._store.upsert(
            runtime_id=self._ids.next_id(),
            name=pool.name,
            kind=pool.kind,
            uri=pool.uri,
            status=pool.status,
            capacity=pool.capacity,
            labels=pool.labels,
            runtime=pool.runtime,
        )

    async def deregister(self, kind: str, name: str) -> bool:
        """Marks the pool offline; False when it was never registered (not an error).

        Raises:
            InvalidArgument: a blank name or an unknown kind.
        """
        return await self._store.set_offline(_checked_kind(kind), _checked_name(name))

    async def heartbeat(self, kind: str, name: str, registration: Registration | None) -> Beat:
        """Records the heartbeat (status back to ready). An unknown pool is registered from
        `registration` under this kind and name when one is given.

        Raises:
            InvalidArgument: a blank name, an unknown kind, an invalid registration.
            NotFound: the pool is unknown and there is no registration; detail
                `{"status": "unknown", "name": ...}` with a Retry-After.
        """
        kind = _checked_kind(kind)
        name = _checked_name(name)
        runtime_id = await self._store.beat(kind, name)
        if runtime_id is not None:
            return Beat(runtime_id, recreated=False)
        if registration is None:
            raise unknown_pool(name)
        recreated = await self.register(replace(registration, kind=kind, name=name, status=READY))
        return Beat(recreated, recreated=True)

    async def entries(self, kind: str, runtime_type: str | None, status: str | None) -> list[RuntimeRow]:
        """Raises InvalidArgument for an unknown kind; Internal when the database refuses the read."""
        return await self._store.entries(_checked_kind(kind), runtime_type, status)


def _checked_name(name: str) -> str:
    trimmed = name.strip()
    if not trimmed:
        raise InvalidArgument("name is required")
    return trimmed


def _checked_kind(kind: str) -> str:
    if not kind:
        return WORKER_POOL
    if kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind
