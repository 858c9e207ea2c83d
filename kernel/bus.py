"""NATS JetStream: stream definitions, subjects and message ids (data-model.md §11)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from kernel.config import EnvReader
from kernel.sharding import shard_for

_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class BusSettings:
    url: str
    command_stream: str = "NOETL_COMMANDS"
    event_stream: str = "NOETL_EVENTS"
    event_retention_seconds: int = 86400
    event_dedup_seconds: int = 120
    event_shard_count: int = 1


async def connect(settings: BusSettings, name: str) -> NatsClient:
    """Reconnects forever in the background once connected (nats-py default behaviour)."""
    return await nats.connect(
        settings.url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=5
    )


async def ensure_streams(js: JetStreamContext, settings: BusSettings) -> None:
    """Creates both streams when missing; an existing stream is left as configured."""
    streams = (
        StreamConfig(
            name=settings.command_stream,
            subjects=["noetl.commands", "noetl.commands.>"],
            # On disk: command notifications survive a NATS restart (nothing waits for the reaper).
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            max_age=3600,
            duplicate_window=120,
        ),
        StreamConfig(
            name=settings.event_stream,
            subjects=["noetl.events.>"],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            max_age=settings.event_retention_seconds,
            duplicate_window=settings.event_dedup_seconds,
        ),
    )
    for config in streams:
        try:
            await js.add_stream(config)
        except BadRequestError:
            # An existing stream of that name keeps the operator's settings; anything else (its
            # subjects overlap another stream, say) would silently misroute messages.
            assert config.name is not None
            await js.stream_info(config.name)


def pool_for(path: str, requested: str | None) -> str:
    """Command pool: the execute request's pool, else by playbook path prefix."""
    if requested:
        return _token(requested)
    if path.startswith("system/"):
        return "system"
    if path.startswith("subscription/"):
        return "subscription"
    return "shared"


def command_subject(pool: str, execution_id: int) -> str:
    return f"noetl.commands.{_token(pool)}.{execution_id}"


def event_subject(execution_id: int, shard_count: int, tenant: str = "default", org: str = "default") -> str:
    return (
        f"noetl.events.{_token(tenant)}.{_token(org)}.{execution_id}.{shard_for(execution_id, shard_count)}"
    )


def shard_events_filter(shard_index: int, shard_count: int) -> str:
    """Every event subject of one execution shard (the last token is the shard, §11.2)."""
    return "noetl.events.>" if shard_count == 1 else f"noetl.events.*.*.*.{shard_index}"


def execution_events_filter(execution_id: int) -> str:
    return f"noetl.events.*.*.{execution_id}.*"


def message_id(subject: str, event_id: int) -> str:
    """Event mirrors dedupe on the event id (§11.2); a command notification on its
    `command.issued` event id. Never on the outbox row id: that is a per-database sequence, and
    two shards' databases hand out the same numbers (one shard's rows would be dropped as
    duplicates of another's)."""
    if subject.startswith("noetl.events."):
        return str(event_id)
    return f"command-{event_id}"


def _token(value: str) -> str:
    return _TOKEN_UNSAFE.sub("-", value) or "-"


def read_bus_settings(env: EnvReader) -> BusSettings:
    url = env.first(("NOETL_NATS_URL", "NATS_URL"))
    if not url:
        env.text("NOETL_NATS_URL", required=True)
    return BusSettings(
        url=url,
        command_stream=env.text("NATS_STREAM", "NOETL_COMMANDS"),
        event_stream=env.text("NOETL_EVENT_NATS_STREAM", "NOETL_EVENTS"),
        event_retention_seconds=env.integer("NOETL_EVENT_STREAM_RETENTION_SECS", 86400, minimum=60),
        event_dedup_seconds=env.integer("NOETL_EVENT_STREAM_DEDUP_SECS", 120, minimum=1),
        event_shard_count=env.integer("NOETL_EVENT_SHARD_COUNT", 1, minimum=1, maximum=1024),
    )
