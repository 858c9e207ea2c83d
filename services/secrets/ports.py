"""What the wallet needs from other contexts: an execution's origin and playbook (to resolve a
keychain alias), and whether a worker's claim binds it to a credential (to allow `Resolve`).

Adapters over gRPC live in `clients.py`; tests can pass simple objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ExecutionOrigin:
    """From the execution's root `playbook.initialized` event."""

    catalog_id: int
    workload: Mapping[str, Any]


class ExecutionsPort(Protocol):
    async def origin(self, execution_id: int) -> ExecutionOrigin | None:
        """None when the execution has no root event."""
        ...


@dataclass(frozen=True, slots=True)
class SecretUse:
    """The execution service's answer: allowed, or the reason it is not."""

    allowed: bool
    reason: str = ""
    command_id: int = 0


class WorkBindingPort(Protocol):
    async def secret_use(self, execution_id: int, worker_id: str, alias: str) -> SecretUse:
        """Whether `worker_id` holds a live claim on a command of the execution that names `alias`."""
        ...


class PlaybooksPort(Protocol):
    async def keychain(self, catalog_id: int) -> list[Mapping[str, Any]]:
        """The playbook's `keychain` definitions; empty when the entry is gone or has none."""
        ...
