"""Snowflake ids (data-model.md §2.1): 41 bits of ms since 2024-01-01, 10 bits machine, 12 bits sequence."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from kernel.sharding import owns

EPOCH_MS = 1704067200000
MACHINE_BITS = 10
SEQUENCE_BITS = 12
MAX_MACHINE_ID = (1 << MACHINE_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def fnv1a_64(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return value


def default_machine_id(environ: Mapping[str, str] | None = None) -> int:
    """`NOETL_SERVER_MACHINE_ID`, else FNV-1a-64 of `$HOSTNAME` masked to 10 bits.

    Raises:
        ValueError: the configured id is not an integer in 0..1023.
    """
    env = os.environ if environ is None else environ
    raw = env.get("NOETL_SERVER_MACHINE_ID", "").strip()
    if raw:
        if not raw.isdigit():
            raise ValueError(
                f"NOETL_SERVER_MACHINE_ID must be an integer in 0..{MAX_MACHINE_ID}, got {raw!r}"
            )
        machine_id = int(raw)
        if not 0 <= machine_id <= MAX_MACHINE_ID:
            raise ValueError(f"NOETL_SERVER_MACHINE_ID must be in 0..{MAX_MACHINE_ID}, got {machine_id}")
        return machine_id
    host = env.get("HOSTNAME") or "noetl-server-local"
    return fnv1a_64(host.encode()) & MAX_MACHINE_ID


class Snowflake:
    """Thread-safe id generator; never emits a smaller id, even when the clock steps back."""

    def __init__(self, machine_id: int, clock_ms: Callable[[], int] | None = None) -> None:
        if not 0 <= machine_id <= MAX_MACHINE_ID:
            raise ValueError(f"machine_id must be in 0..{MAX_MACHINE_ID}, got {machine_id}")
        self._machine = machine_id
        self._clock = clock_ms or _wall_ms
        self._lock = threading.Lock()
        self._last_ms = -1
        self._seq = 0

    def next_id(self) -> int:
        """Raises RuntimeError when the clock is before the epoch."""
        with self._lock:
            now = self._clock()
            if now < EPOCH_MS:
                raise RuntimeError("system clock is before the snowflake epoch (2024-01-01)")
            now = max(now, self._last_ms)  # clock went backwards: reuse the last millisecond
            if now == self._last_ms:
                self._seq = (self._seq + 1) & MAX_SEQUENCE
                if self._seq == 0:
                    while now <= self._last_ms:  # 4096 ids this ms: wait for the next one
                        now = max(self._clock(), self._last_ms)
                        if now == self._last_ms:
                            time.sleep(0.0001)
            else:
                self._seq = 0
            self._last_ms = now
            return (
                ((now - EPOCH_MS) << (MACHINE_BITS + SEQUENCE_BITS))
                | (self._machine << SEQUENCE_BITS)
                | self._seq
            )

    def next_owned_id(self, shard_index: int, shard_count: int) -> int:
        """The next id whose `shard_for` is `shard_index`: how a shard mints the ids of the
        executions it starts, so that a run is born on its owner and never handed over.

        Ids of other shards are skipped (N - 1 of N on average, a few microseconds each); they
        are unique and simply unused.
        """
        while True:
            candidate = self.next_id()
            if owns(candidate, shard_index, shard_count):
                return candidate


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def id_time(snowflake_id: int) -> datetime:
    """The UTC instant encoded in an id."""
    ms = (snowflake_id >> (MACHINE_BITS + SEQUENCE_BITS)) + EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def id_lower_bound(instant: datetime) -> int:
    """The smallest id minted at `instant` (partition bounds, data-model.md §3.3)."""
    ms = int(instant.timestamp() * 1000)
    return (ms - EPOCH_MS) << (MACHINE_BITS + SEQUENCE_BITS)
