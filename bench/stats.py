"""Percentiles, histogram deltas from two Prometheus scrapes, and a plain text table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; `q` in 0..100. NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def histogram_mean(
    before: Mapping[str, float], after: Mapping[str, float], name: str, *labels: str
) -> tuple[float, int] | None:
    """(mean seconds, count) of a histogram between two scrapes, over the series whose label text
    contains every one of `labels`; None when nothing was observed."""
    total = 0.0
    count = 0.0
    for key, value in after.items():
        if not all(label in key for label in labels):
            continue
        if key.startswith(f"{name}_sum"):
            total += value - before.get(key, 0.0)
        elif key.startswith(f"{name}_count"):
            count += value - before.get(key, 0.0)
    return (total / count, int(count)) if count > 0 else None


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join([str(first).ljust(widths[0]), *(str(c).rjust(w) for c, w in zip(rest, widths[1:], strict=True))])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
