from __future__ import annotations

from dataclasses import dataclass, field

from kernel import addresses
from kernel.bus import BusSettings, read_bus_settings
from kernel.config import EnvReader, ServiceBasics
from services.events.batches import DEFAULT_MAX_EVENTS, DEFAULT_MAX_PAYLOAD_BYTES, BatchLimits


@dataclass(frozen=True, slots=True)
class Settings:
    basics: ServiceBasics
    bus: BusSettings
    outbox_addr: str
    batch_limits: BatchLimits = field(default_factory=BatchLimits)

    @classmethod
    def load(cls) -> Settings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader()
        settings = cls(
            basics=ServiceBasics.read(env, addresses.EVENTS, "events"),
            bus=read_bus_settings(env),
            outbox_addr=env.text("NOETL_OUTBOX_ADDR", addresses.OUTBOX),
            # http-api.md §1.1: enforced by this service, the only one that sees every batch.
            batch_limits=BatchLimits(
                max_events=env.integer("NOETL_BATCH_MAX_EVENTS_PER_REQUEST", DEFAULT_MAX_EVENTS, minimum=1),
                max_payload_bytes=env.integer(
                    "NOETL_BATCH_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES, minimum=1024
                ),
            ),
        )
        env.finish()
        return settings
