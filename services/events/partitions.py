"""The event log's quarterly partitions, created ahead of time (data-model.md §3.3).

The schema creates the partitions up to the end of 2027; later quarters are created here, by the
same formula (`kernel.ids.id_lower_bound` of the quarter's first instant), at start and every few
hours, for the current quarter and the next four. An event whose execution id falls in no
partition lands in `event_default`, which works but cannot be dropped by retention, and a
quarter whose rows already sit there can no longer get a partition of its own: creating them a
year ahead keeps that from happening while any service runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from kernel.ids import id_lower_bound
from kernel.lifecycle import Periodic
from kernel.timeutil import utcnow
from services.events.store import EventStore

log = logging.getLogger(__name__)

AHEAD = 4  # quarters after the current one
CHECK_SECONDS = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Quarter:
    name: str  # event_<year>_q<n>
    lower: int  # first execution id of the quarter
    upper: int  # first execution id of the next quarter


def quarters(today: date, ahead: int = AHEAD) -> list[Quarter]:
    """The quarter of `today` and the `ahead` quarters after it."""
    year, index = today.year, (today.month - 1) // 3
    found = []
    for _ in range(ahead + 1):
        nxt_year, nxt_index = (year, index + 1) if index < 3 else (year + 1, 0)
        found.append(
            Quarter(
                name=f"event_{year}_q{index + 1}",
                lower=id_lower_bound(datetime(year, 3 * index + 1, 1, tzinfo=UTC)),
                upper=id_lower_bound(datetime(nxt_year, 3 * nxt_index + 1, 1, tzinfo=UTC)),
            )
        )
        year, index = nxt_year, nxt_index
    return found


class PartitionKeeper(Periodic):
    def __init__(
        self,
        store: EventStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        ahead: int = AHEAD,
        interval: float = CHECK_SECONDS,
    ) -> None:
        super().__init__("event-partitions", self.ensure, interval, first_now=True)
        self._store = store
        self._clock = clock
        self._ahead = ahead

    async def ensure(self) -> list[str]:
        """Creates the missing partitions; returns the names this call created. One that cannot be
        created (its range overlaps one made by hand, a lock not granted in time) is logged and
        tried again on the next run."""
        existing = await self._store.partitions()
        created = []
        for quarter in quarters(self._clock().date(), self._ahead):
            if quarter.name in existing:
                continue
            try:
                if not await self._store.create_partition(quarter.name, quarter.lower, quarter.upper):
                    continue  # another replica was first
            except asyncpg.PostgresError as exc:
                log.error("cannot create event log partition %s yet: %s", quarter.name, exc)
                continue
            log.info("created event log partition %s", quarter.name)
            created.append(quarter.name)
        return created
