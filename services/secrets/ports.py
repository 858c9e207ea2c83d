"""What the wallet needs from other contexts to resolve a keychain alias of an execution.

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


class PlaybooksPort(Protocol):
    async def keychain(self, catalog_id: int) -> list[Mapping[str, Any]]:
        """The playbook's `keychain` definitions; empty when the entry is gone or has none."""
        ...
