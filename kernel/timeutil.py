"""UTC time helpers: every timestamp the mesh emits is RFC 3339 with a `Z` (http-api.md §1.5)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


def as_utc(value: datetime) -> datetime:
    """Naive values are UTC wall time (TIMESTAMP columns)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    """Microseconds when present, whole seconds without a fraction.

    `isoformat` rather than `strftime`: glibc's `%Y` does not pad years before 1000 to four digits.
    """
    value = as_utc(value).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"
