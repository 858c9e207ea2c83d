"""Scalars of the response shapes: timestamps, durations, ids (http-api.md §1.4, §1.5, §13.2)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from kernel.timeutil import rfc3339
from language.statuses import TERMINAL_STATUSES


def to_datetime(stamp: Timestamp) -> datetime:
    value: datetime = stamp.ToDatetime(tzinfo=UTC)
    return value


def timestamp(stamp: Timestamp) -> str:
    """RFC 3339 with `Z`; sub-microsecond digits are dropped."""
    return rfc3339(to_datetime(stamp))


def id_text(value: int) -> str | None:
    """Optional ids travel as int64 with 0 meaning "none"; strings on the wire."""
    return str(value) if value else None


def elapsed_seconds(start: datetime, end: datetime | None, now: datetime) -> float:
    """Seconds from start to end, or to now while the run has no end; never negative."""
    return max(0.0, ((end or now) - start).total_seconds())


def duration_human(seconds: float) -> str:
    """`1d 2h 3m 4s` with zero units left out; `0s` when everything rounds to zero.

    Rounding is Python's `round` (half to even), as in the reference.
    """
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{value}{unit}" for value, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if value]
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts)


def progress(status: str) -> int:
    return 100 if status in TERMINAL_STATUSES else 0
