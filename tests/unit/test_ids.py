"""Snowflake layout (data-model.md §2.1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kernel.ids import EPOCH_MS, Snowflake, default_machine_id, fnv1a_64, id_lower_bound, id_time


def test_layout_packs_time_machine_and_sequence() -> None:
    now = EPOCH_MS + 123_456
    ids = Snowflake(machine_id=5, clock_ms=lambda: now)
    first, second = ids.next_id(), ids.next_id()
    assert first >> 22 == 123_456
    assert (first >> 12) & 0x3FF == 5
    assert first & 0xFFF == 0
    assert second == first + 1


def test_decoding_matches_the_spec_example() -> None:
    assert id_time(330319143314137088).date() == datetime(2026, 6, 30, tzinfo=UTC).date()


def test_partition_bounds_match_the_spec_table() -> None:
    assert id_lower_bound(datetime(2026, 1, 1, tzinfo=UTC)) == 264905529753600000
    assert id_lower_bound(datetime(2027, 1, 1, tzinfo=UTC)) == 397177100697600000


def test_sequence_overflow_waits_for_the_next_millisecond() -> None:
    ticks = iter([EPOCH_MS + 10] * 4097 + [EPOCH_MS + 11] * 10)
    ids = Snowflake(machine_id=1, clock_ms=lambda: next(ticks))
    minted = [ids.next_id() for _ in range(4097)]
    assert len(set(minted)) == 4097
    assert minted[-1] >> 22 == 11
    assert minted == sorted(minted)


def test_clock_going_backwards_never_yields_a_smaller_id() -> None:
    ticks = iter([EPOCH_MS + 100, EPOCH_MS + 50, EPOCH_MS + 50])
    ids = Snowflake(machine_id=1, clock_ms=lambda: next(ticks))
    a, b, c = ids.next_id(), ids.next_id(), ids.next_id()
    assert a < b < c
    assert b >> 22 == 100


def test_clock_before_epoch_is_fatal() -> None:
    with pytest.raises(RuntimeError, match="epoch"):
        Snowflake(machine_id=1, clock_ms=lambda: EPOCH_MS - 1).next_id()


def test_machine_id_from_environment_or_hostname_hash() -> None:
    assert default_machine_id({"NOETL_SERVER_MACHINE_ID": "7"}) == 7
    assert default_machine_id({"HOSTNAME": "pod-a"}) == fnv1a_64(b"pod-a") & 0x3FF
    assert default_machine_id({}) == fnv1a_64(b"noetl-server-local") & 0x3FF
    with pytest.raises(ValueError, match=r"0\.\.1023"):
        default_machine_id({"NOETL_SERVER_MACHINE_ID": "1024"})


def test_fnv1a_known_value() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
