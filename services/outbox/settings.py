from __future__ import annotations

from dataclasses import dataclass

from kernel import addresses
from kernel.bus import BusSettings, read_bus_settings
from kernel.config import EnvReader, ServiceBasics


@dataclass(frozen=True, slots=True)
class Settings:
    basics: ServiceBasics
    bus: BusSettings
    max_attempts: int
    lease_seconds: int
    batch_size: int
    idle_sleep: float
    error_sleep: float
    publish_timeout: float = 5.0
    published_retention: int = 3600

    @classmethod
    def load(cls) -> Settings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader()
        settings = cls(
            basics=ServiceBasics.read(env, addresses.OUTBOX, "outbox", calls=False),
            bus=read_bus_settings(env),
            max_attempts=env.integer("NOETL_OUTBOX_MAX_ATTEMPTS", 10, minimum=1),
            # Lease plus publish timeout must stay below the streams' duplicate window (120 s),
            # so a re-send after an expired lease is still recognised as a duplicate; the service
            # checks the live streams at start (publisher.check_duplicate_windows).
            lease_seconds=env.integer("NOETL_OUTBOX_LEASE_SECONDS", 60, minimum=5),
            batch_size=env.integer("NOETL_OUTBOX_PUBLISHER_BATCH_SIZE", 100, minimum=1, maximum=1000),
            idle_sleep=env.number("NOETL_OUTBOX_PUBLISHER_IDLE_SLEEP_SECONDS", 1.0, minimum=0.01),
            error_sleep=env.number("NOETL_OUTBOX_PUBLISHER_ERROR_SLEEP_SECONDS", 5.0, minimum=0.01),
            # An unacknowledged publish counts as failed after this long.
            publish_timeout=env.number("NOETL_OUTBOX_PUBLISH_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            # How long a published row is kept (services/outbox/pruner.py); 0 keeps every row.
            published_retention=env.integer("NOETL_OUTBOX_PUBLISHED_RETENTION_SECONDS", 3600, minimum=0),
        )
        env.finish()
        return settings
