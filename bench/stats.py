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
        return "  ".join(
            [str(first).ljust(widths[0]), *(str(c).rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


_GRPC = "noetl_grpc_server_duration_seconds"


def rpc_deltas(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]]
) -> list[tuple[str, int, float]]:
    """(component.Method, calls, mean ms) of every gRPC method served between two scrapes."""
    out: list[tuple[str, int, float]] = []
    for component, samples in after.items():
        prior = before.get(component, {})
        for key, value in samples.items():
            if not key.startswith(f"{_GRPC}_count{{"):
                continue
            calls = value - prior.get(key, 0.0)
            if calls <= 0 or 'service="Health"' in key:
                continue
            labels = key[len(f"{_GRPC}_count") :]
            method = labels.split('method="', 1)[1].split('"', 1)[0]
            seconds = samples.get(f"{_GRPC}_sum{labels}", 0.0) - prior.get(f"{_GRPC}_sum{labels}", 0.0)
            out.append((f"{component}.{method}", int(calls), 1000.0 * seconds / calls))
    return sorted(out, key=lambda r: -r[1])


def per_unit_lines(
    before_metrics: Mapping[str, Mapping[str, float]],
    after_metrics: Mapping[str, Mapping[str, float]],
    *,
    before_pg: Mapping[str, float],
    after_pg: Mapping[str, float],
    units: float,
    unit: str,
) -> list[str]:
    """What one `unit` (an ingested event, a chain step) cost: RPCs served and database work."""
    lines: list[str] = []
    rpcs = rpc_deltas(before_metrics, after_metrics)
    if rpcs and units > 0:
        lines.append(
            f"gRPC calls per {unit} (mean server time): "
            + ", ".join(f"{name} {calls / units:.2f} ({mean:.1f} ms)" for name, calls, mean in rpcs)
        )
    if before_pg and after_pg and units > 0:
        lines.append(
            f"Postgres per {unit} (mesh database, all clients): "
            + ", ".join(f"{k} {(after_pg[k] - before_pg[k]) / units:.1f}" for k in after_pg)
        )
    return lines
