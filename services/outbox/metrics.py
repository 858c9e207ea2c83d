"""Outbox metrics (data-model.md §12.2): no labels, so every series exists at 0 from import."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from kernel.lifecycle import Periodic
from services.outbox.store import OutboxStore

CLAIMED = Counter("noetl_outbox_claimed_total", "Outbox rows claimed (publisher and claim route)")
PUBLISHED = Counter("noetl_outbox_published_total", "Outbox rows marked published (publisher and relay)")
FAILED = Counter("noetl_outbox_failed_total", "Outbox publish failures recorded (FAILED or DEAD)")
DEAD = Counter("noetl_outbox_dead_total", "Outbox rows moved to DEAD")
LEASE_RECOVERED = Counter(
    "noetl_outbox_lease_recovered_total", "IN_FLIGHT outbox rows claimed again after their lease expired"
)
PRUNED = Counter(
    "noetl_outbox_pruned_total",
    "Published outbox rows deleted after NOETL_OUTBOX_PUBLISHED_RETENTION_SECONDS",
)
PENDING = Gauge("noetl_outbox_pending", "Outbox rows due for publishing (PENDING or FAILED, available)")
IN_FLIGHT = Gauge("noetl_outbox_in_flight", "Outbox rows IN_FLIGHT (leased by a relay or publisher)")
DEAD_ROWS = Gauge(
    "noetl_outbox_dead_rows", "Outbox rows in DEAD (the counter of moves to DEAD is _dead_total)"
)
PUBLISH_SECONDS = Histogram(
    "noetl_outbox_publish_duration_seconds",
    "Publisher: one batch from its first JetStream publish to its last acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ATTEMPTS = Histogram(
    "noetl_outbox_publish_attempts",
    "Publisher: the attempt on which an outbox row was published",
    buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20),
)


class GaugeRefresher(Periodic):
    """Sets the row gauges from the table every `interval` s; a failed read keeps their last values."""

    def __init__(self, store: OutboxStore, *, interval: float = 5.0) -> None:
        super().__init__("outbox-gauges", self.refresh, interval, first_now=True)
        self._store = store

    async def refresh(self) -> None:
        counts = await self._store.counts()
        PENDING.set(counts.pending)
        IN_FLIGHT.set(counts.in_flight)
        DEAD_ROWS.set(counts.dead)
