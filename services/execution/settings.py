from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from kernel import addresses
from kernel.bus import BusSettings, read_bus_settings
from kernel.config import EnvReader, ServiceBasics
from kernel.sharding import MAX_SHARD_COUNT
from services.execution.orchestration.reaper import ReaperSettings


@dataclass(frozen=True, slots=True)
class Settings:
    basics: ServiceBasics
    # The cluster database (worker pools); the shard's own (basics.pg_dsn) holds everything else.
    cluster_pg_dsn: str
    catalog_addr: str
    events_addrs: tuple[str, ...]
    # Every execution shard in shard order (this one included): cascades reach across shards.
    execution_addrs: tuple[str, ...]
    server_url: str
    lease_seconds: int
    retry_after_seconds: int
    shard_index: int
    shard_count: int
    bus: BusSettings
    reaper: ReaperSettings
    # data-model.md §6.2: past one lease since the claim, a holder whose pool heartbeat is this old
    # has lost its claim.
    worker_heartbeat_stale_seconds: int = 30
    # Credentials named by `/api/postgres/execute` are read from the secrets service.
    secrets_addr: str = addresses.SECRETS
    # The bound of one `/api/postgres/execute` request's statements.
    sql_timeout_seconds: float = 60.0
    # Where `/api/postgres/execute` without a credential runs: a least-privilege login, never the
    # superuser of `NOETL_PG_DSN` (docs/security.md); empty = such requests are refused.
    sql_dsn: str = ""
    # Events the shard's feed fetches at a time (JetStream pull batch).
    feed_batch: int = 256

    @classmethod
    def load(cls) -> Settings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader()
        shard_count = env.integer("NOETL_SHARD_COUNT", 1, minimum=1, maximum=MAX_SHARD_COUNT)
        shard_index = env.integer("NOETL_SHARD_INDEX", -1, minimum=0, maximum=shard_count - 1)
        if shard_index < 0:
            shard_index = 0
            if env.flag("NOETL_SHARD_INDEX_FROM_HOSTNAME", False):
                ordinal = hostname_ordinal(env.text("HOSTNAME", socket.gethostname()))
                if ordinal is None or ordinal >= shard_count:
                    env.problem(f"cannot take a shard index below {shard_count} from the hostname")
                else:
                    shard_index = ordinal
        basics = ServiceBasics.read(env, addresses.EXECUTION, "execution")
        settings = cls(
            basics=basics,
            cluster_pg_dsn=env.text("NOETL_CLUSTER_PG_DSN", basics.pg_dsn),
            catalog_addr=env.text("NOETL_CATALOG_ADDR", addresses.CATALOG),
            events_addrs=env.addresses("NOETL_EVENTS_ADDRS", addresses.EVENTS),
            execution_addrs=env.addresses("NOETL_EXECUTION_ADDRS"),
            server_url=env.text("NOETL_PUBLIC_SERVER_URL", addresses.PUBLIC_SERVER_URL),
            lease_seconds=env.integer("NOETL_COMMAND_CLAIM_LEASE_SECONDS", 120, minimum=1),
            retry_after_seconds=env.integer("NOETL_COMMAND_CLAIM_RETRY_AFTER_SECONDS", 2, minimum=1),
            shard_index=shard_index,
            shard_count=shard_count,
            bus=read_bus_settings(env),
            reaper=ReaperSettings(
                enabled=env.flag("NOETL_COMMAND_REAPER_ENABLED", True),
                interval_seconds=env.number("NOETL_COMMAND_REAPER_INTERVAL_SECONDS", 60.0, minimum=0.05),
                max_per_run=env.integer("NOETL_COMMAND_REAPER_MAX_PER_RUN", 100, minimum=1),
                pending_retry_seconds=env.number(
                    "NOETL_COMMAND_REAPER_PENDING_RETRY_SECONDS", 60.0, minimum=0.0
                ),
                lease_seconds=env.integer("NOETL_COMMAND_CLAIM_LEASE_SECONDS", 120, minimum=1),
                reconcile_seconds=env.number("NOETL_RECONCILE_INTERVAL_SECONDS", 8.0, minimum=0.05),
            ),
            worker_heartbeat_stale_seconds=env.integer(
                "NOETL_COMMAND_WORKER_HEARTBEAT_STALE_SECONDS", 30, minimum=5
            ),
            secrets_addr=env.text("NOETL_SECRETS_ADDR", addresses.SECRETS),
            sql_timeout_seconds=env.number("NOETL_POSTGRES_EXECUTE_TIMEOUT_SECONDS", 60.0, minimum=1.0),
            sql_dsn=env.text("NOETL_POSTGRES_EXECUTE_DSN"),
            feed_batch=env.integer("NOETL_EXECUTION_FEED_BATCH", 256, minimum=1, maximum=4096),
        )
        if shard_count > 1 and len(settings.execution_addrs) != shard_count:
            env.problem(f"NOETL_EXECUTION_ADDRS must name all {shard_count} execution shards, in shard order")
        if settings.bus.event_shard_count != shard_count:
            # The feed's subject filter names this shard among NOETL_EVENT_SHARD_COUNT: with another
            # count some of this shard's events would go to no consumer at all.
            env.problem(
                f"NOETL_EVENT_SHARD_COUNT ({settings.bus.event_shard_count}) must equal "
                f"NOETL_SHARD_COUNT ({shard_count})"
            )
        env.finish()
        return settings


def hostname_ordinal(hostname: str) -> int | None:
    """The N of a StatefulSet pod name `name-N` (data-model.md §10.3)."""
    match = re.search(r"-(\d+)$", hostname.strip())
    return int(match.group(1)) if match else None
