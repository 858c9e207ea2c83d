"""`shard_for` test vectors (data-model.md §10.1, normative)."""

from __future__ import annotations

import pytest
import xxhash

from kernel.grpc_client import ClientAuth, Sharded
from kernel.ids import Snowflake
from kernel.sharding import owns, shard_for


@pytest.mark.parametrize(
    ("execution_id", "n", "shard"),
    [
        (320816801799737344, 16, 14),
        (1, 1024, 405),
        (1, 2, 1),
        (1, 4, 1),
        (1, 16, 5),
        (1, 64, 21),
        (42, 4, 3),
        (325, 4, 0),
        (325, 8, 4),
        (9223372036854775807, 4, 0),
    ],
)
def test_vectors(execution_id: int, n: int, shard: int) -> None:
    assert shard_for(execution_id, n) == shard


def test_one_shard_or_fewer_is_always_zero() -> None:
    assert shard_for(320816801799737344, 1) == 0
    assert shard_for(320816801799737344, 0) == 0


def test_hash_sanity_values() -> None:
    assert xxhash.xxh64_intdigest(b"", seed=0) == 0xEF46DB3751D8E999
    assert xxhash.xxh64_intdigest((1).to_bytes(8, "little", signed=True), seed=0) == 0x9F29CB17A2A49995
    assert shard_for(-1, 7) == xxhash.xxh64_intdigest(b"\xff" * 8, seed=0) % 7


def test_ownership() -> None:
    assert owns(42, 0, 1)
    assert owns(42, 3, 4)
    assert not owns(42, 2, 4)


@pytest.mark.parametrize("count", [1, 3, 8])
def test_a_shard_mints_only_ids_it_owns_and_they_still_ascend(count: int) -> None:
    ids = Snowflake(7)
    for index in range(count):
        minted = [ids.next_owned_id(index, count) for _ in range(200)]
        assert all(shard_for(i, count) == index for i in minted)
        assert minted == sorted(set(minted))


async def test_new_executions_are_dealt_to_the_shards_in_turn() -> None:
    sharded = Sharded(
        ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"), lambda channel: channel, ClientAuth.off()
    )
    stubs = sharded.all()
    dealt = [sharded.for_new_execution() for _ in range(9)]
    await sharded.close()
    assert [stubs.index(stub) for stub in dealt] == [0, 1, 2] * 3
