from __future__ import annotations

from dataclasses import dataclass

from services.common.bus import BusSettings, read_bus_settings
from services.common.config import EnvReader, ServiceBasics


@dataclass(frozen=True, slots=True)
class Settings:
    basics: ServiceBasics
    bus: BusSettings
    execution_addrs: tuple[str, ...]
    outbox_addr: str
    mirror_events: bool

    @classmethod
    def load(cls) -> Settings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader()
        settings = cls(
            basics=ServiceBasics.read(env, "127.0.0.1:50053"),
            bus=read_bus_settings(env),
            execution_addrs=env.addresses("NOETL_EXECUTION_ADDRS", "127.0.0.1:50052"),
            outbox_addr=env.text("NOETL_OUTBOX_ADDR", "127.0.0.1:50054"),
            mirror_events=env.flag("NOETL_EVENT_MIRROR_ENABLED", True),
        )
        env.finish()
        return settings
