from __future__ import annotations

from dataclasses import dataclass

from kernel import addresses
from kernel.config import EnvReader, ServiceBasics

DEFAULT_EVENTS_ADDRS = (addresses.EVENTS,)


@dataclass(frozen=True, slots=True)
class Settings:
    basics: ServiceBasics
    # Every events shard: delete asks each one which versions have execution history.
    events_addrs: tuple[str, ...] = DEFAULT_EVENTS_ADDRS

    @classmethod
    def load(cls) -> Settings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader()
        settings = cls(
            basics=ServiceBasics.read(env, addresses.CATALOG, "catalog"),
            events_addrs=env.addresses("NOETL_EVENTS_ADDRS", ",".join(DEFAULT_EVENTS_ADDRS)),
        )
        env.finish()
        return settings
