"""JetStream for tests: stream names of their own, and reading messages back with a consumer.

The stream subjects are fixed by the spec (`noetl.events.>`, `noetl.commands.>`), and JetStream
refuses two streams with overlapping subjects, so a unique stream name isolates a module only
while no other module's streams exist: `isolated_bus` deletes its streams on exit and checks on
entry that it owns the subjects.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from kernel.bus import BusSettings, execution_events_filter
from kernel.sharding import shard_for

# The mesh's event stream (the default of kernel/bus.py) and, per execution shard, its
# feed's durable consumer (services/execution/__main__.py names it `noetl_execution_<shard>`).
STREAM = "NOETL_EVENTS"


def unique_bus(url: str, label: str) -> BusSettings:
    """Bus settings whose two streams are named after `label` plus a random suffix."""
    token = re.sub(r"[^A-Z0-9]", "_", label.upper())[:24]
    suffix = uuid.uuid4().hex[:8].upper()
    return BusSettings(
        url=url, command_stream=f"T_{token}_{suffix}_COMMANDS", event_stream=f"T_{token}_{suffix}_EVENTS"
    )


@asynccontextmanager
async def isolated_bus(bus: BusSettings) -> AsyncIterator[JetStreamContext]:
    """A JetStream context for tests; the streams named in `bus` are deleted on exit."""
    client = await nats.connect(bus.url)
    try:
        yield client.jetstream()
    finally:
        js = client.jetstream()
        for name in (bus.command_stream, bus.event_stream):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
        await client.close()


async def assert_streams_exist(js: JetStreamContext, bus: BusSettings) -> None:
    """Fails when a service could not create its streams (e.g. another stream holds the subjects)."""
    for name in (bus.command_stream, bus.event_stream):
        try:
            await js.stream_info(name)
        except NotFoundError:
            raise AssertionError(
                f"stream {name} was not created: another stream probably holds its subjects"
            ) from None


@dataclass(frozen=True, slots=True)
class StreamMessage:
    subject: str
    msg_id: str | None
    data: bytes


async def read_stream(
    js: JetStreamContext, stream: str, subject_filter: str, *, at_least: int, within: float = 10.0
) -> list[StreamMessage]:
    """Everything the stream holds under `subject_filter`, read by an ephemeral pull consumer.

    Waits until at least `at_least` messages arrived, then drains what else is already there.

    Raises:
        AssertionError: fewer than `at_least` messages within `within` seconds.
    """
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0
    )
    subscription = await js.pull_subscribe(subject_filter, stream=stream, config=config)
    messages: list[StreamMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        while True:
            remaining = deadline - loop.time()
            wanted_more = len(messages) < at_least
            if wanted_more and remaining <= 0:
                raise AssertionError(
                    f"{stream} held {len(messages)} messages under {subject_filter}, expected {at_least}"
                )
            try:
                batch = await subscription.fetch(100, timeout=max(0.2, remaining) if wanted_more else 0.2)
            except (TimeoutError, nats.errors.TimeoutError):
                if wanted_more:
                    continue
                return messages
            for msg in batch:
                headers = msg.headers or {}
                messages.append(StreamMessage(msg.subject, headers.get("Nats-Msg-Id"), msg.data))
    finally:
        await subscription.unsubscribe()


async def feed_applied(nats_url: str, execution_id: int, shard_count: int, stored: int) -> bool:
    """Whether the owning execution shard's event feed has acknowledged all `stored` events of
    the execution, as the mesh's `NOETL_EVENTS` stream holds them. The feed acknowledges an event
    only after its projection and the pass it triggers are written (services/execution/
    orchestration/feed.py), so after True nothing more comes of those events."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        info = await js.stream_info(STREAM, subjects_filter=execution_events_filter(execution_id))
        subjects = info.state.subjects or {}
        if sum(subjects.values()) < stored:
            return False  # the outbox has not relayed them all yet
        last = max([(await js.get_last_msg(STREAM, subject)).seq or 0 for subject in subjects], default=0)
        consumer = await js.consumer_info(STREAM, f"noetl_execution_{shard_for(execution_id, shard_count)}")
        return (consumer.ack_floor.stream_seq if consumer.ack_floor else 0) >= last
    finally:
        await client.close()
