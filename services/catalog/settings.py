from __future__ import annotations

from dataclasses import dataclass

from services.common.config import EnvReader, ServiceBasics


@dataclass(frozen=True, slots=True)
class Settings:
    basics: ServiceBasics

    @classmethod
    def load(cls) -> Settings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader()
        settings = cls(basics=ServiceBasics.read(env, "127.0.0.1:50051"))
        env.finish()
        return settings
