"""`shard_for` (data-model.md §10.1) and replica ownership (§10.3)."""

from __future__ import annotations

import xxhash

# The largest shard count a deployment may declare (`NOETL_SHARD_COUNT`, http-api.md §7.5).
MAX_SHARD_COUNT = 1024


def shard_for(execution_id: int, n: int) -> int:
    """XXH64 (seed 0) of the id's 8 little-endian signed bytes, modulo n; 0 when n <= 1."""
    if n <= 1:
        return 0
    return int(xxhash.xxh64_intdigest(execution_id.to_bytes(8, "little", signed=True), seed=0) % n)


def owns(execution_id: int, shard_index: int, shard_count: int) -> bool:
    return shard_count <= 1 or shard_for(execution_id, shard_count) == shard_index
