"""What the catalog needs from other contexts, as small protocols.

The gRPC adapter lives in `clients.py`; tests of pure logic can pass simple objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class HistoryPort(Protocol):
    async def used(self, catalog_ids: Sequence[int]) -> set[int]:
        """The catalog ids that some execution's events reference."""
        ...
