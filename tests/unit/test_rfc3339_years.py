"""Timestamps of early years stay RFC 3339 (a fuzzed keychain `expires_at` in the year 542 did not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from kernel.timeutil import rfc3339


def test_years_before_1000_keep_four_digits() -> None:
    assert rfc3339(datetime(542, 7, 5, 21, 41, 26, tzinfo=UTC)) == "0542-07-05T21:41:26Z"
    assert rfc3339(datetime(99, 1, 1, 0, 0, 0, 5, tzinfo=UTC)) == "0099-01-01T00:00:00.000005Z"


def test_offsets_and_naive_values_become_utc_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2026, 8, 19, 17, 2, 20, 123456, tzinfo=plus_two)) == "2026-08-19T15:02:20.123456Z"
    assert rfc3339(datetime(2026, 8, 19, 15, 2, 20)) == "2026-08-19T15:02:20Z"
