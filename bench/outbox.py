"""(c) The outbox: how fast the publisher drains a backlog, and what the fast relay path adds.

Drain: `backlog` PENDING rows (event mirrors of one synthetic execution, about 400 bytes each)
are inserted into `noetl.outbox` in one transaction; the mesh's own outbox service publishes
them. The clock runs from the commit (server clock, read right after it) to the last row's
`published_at`, so the poll that waits for the end costs nothing in the figure. The stream must
then hold exactly `backlog` messages for that execution.

Relay: `events` appends of one event each through `EventService.Append` (one client, one at a
time, as an orchestrator pass writes), while an ordered JetStream consumer watches the
execution's subject. For each event: the time JetStream stored it (message metadata) minus the
moment `Append` answered (the answer leaves right after the commit; the relay publishes in
parallel, so this can be negative) and minus the event's own `created_at` (stamped before the
transaction: an upper bound on commit → stream).

Afterwards the synthetic outbox rows and their stream messages are removed; the appended events
stay in the (append-only) log under their synthetic execution, of type `bench.relay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import nats
import orjson
from nats.js.api import DeliverPolicy
from noetl.v1 import events_pb2, events_pb2_grpc

from bench.cpu import CpuMeter, CpuReport
from bench.stats import histogram_mean, percentile
from bench.target import Snapshot, Target
from kernel.bus import event_subject, execution_events_filter
from kernel.ids import Snowflake
from kernel.mesh_policy import EXECUTION

# Bench ids come from a machine id no mesh process uses, so they never collide with real ones;
# drained rows' event ids (their message ids) lie far above any snowflake of this era (< 2^59).
_IDS = Snowflake(1023)
_FAR_EVENT_IDS = 5 << 60
_PAYLOAD = (
    "jsonb_build_object('event_id', e, 'execution_id', $1::bigint, 'catalog_id', 1, 'event_type', 'call.done', "
    "'status', 'COMPLETED', 'created_at', '2026-11-22T15:00:00.123456Z', 'node_id', 'step', 'node_name', 'step', "
    "'node_type', 'python', 'parent_event_id', NULL, 'prev_event_id', e - 1, 'parent_execution_id', NULL, "
    "'context', NULL, 'result', jsonb_build_object('status', 'ok', 'context', jsonb_build_object('data', "
    "jsonb_build_object('rows', 2, 'name', repeat('x', 80)))), 'meta', NULL, 'error', NULL, 'worker_id', 'w-1')"
)
DRAIN_TIMEOUT = 600.0


class BenchSetupError(RuntimeError):
    pass


@dataclass
class DrainResult:
    rows: int
    seconds: float = float("nan")
    stream_messages: int = 0
    rows_per_batch: float | None = None
    batch_seconds: float | None = None
    cpu: CpuReport | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class RelayResult:
    events: int
    after_answer_ms: list[float] = field(default_factory=list)
    after_stamp_ms: list[float] = field(default_factory=list)
    append_ms: list[float] = field(default_factory=list)
    missing: int = 0


def _require(target: Target) -> tuple[str, str, str]:
    if target.pg_dsn is None or target.nats_url is None or target.events_addr is None:
        raise BenchSetupError(
            "the outbox benchmark needs the mesh's run dir (--run-dir): database, NATS, events"
        )
    return target.pg_dsn, target.nats_url, target.events_addr


async def run_drain(target: Target, *, backlog: int) -> DrainResult:
    dsn, nats_url, _ = _require(target)
    execution_id = _IDS.next_id()
    first_event = _FAR_EVENT_IDS + (execution_id % (1 << 40)) * 1_000_000
    subject = event_subject(execution_id, 1)
    stream = os.environ.get("NOETL_EVENT_NATS_STREAM", "NOETL_EVENTS")
    result = DrainResult(rows=backlog)
    conn = await asyncpg.connect(dsn)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        before = await Snapshot.take(target)
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO noetl.outbox (execution_id, event_id, subject, payload, payload_codec) "
                f"SELECT $1, e, $2, {_PAYLOAD}, 'json' FROM generate_series($3::bigint, $3::bigint + $4 - 1) AS e",
                execution_id,
                subject,
                first_event,
                backlog,
            )
        committed = await conn.fetchval("SELECT clock_timestamp()")
        meter = CpuMeter(target.cpu_roots)
        meter.start()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM noetl.outbox WHERE execution_id = $1 AND status <> 'PUBLISHED')",
            execution_id,
        ):
            if time.monotonic() > deadline:
                raise BenchSetupError(f"the backlog did not drain within {DRAIN_TIMEOUT:.0f}s")
            await asyncio.sleep(0.5)
        result.cpu = meter.stop()  # the window overshoots the drain by one poll interval at most
        last = await conn.fetchval(
            "SELECT max(published_at) FROM noetl.outbox WHERE execution_id = $1", execution_id
        )
        result.seconds = (last - committed).total_seconds()
        after = await Snapshot.take(target)
        info = await js.stream_info(stream, subjects_filter=subject)
        result.stream_messages = sum((info.state.subjects or {}).values())
        outbox_before, outbox_after = before.metrics.get("outbox", {}), after.metrics.get("outbox", {})
        batches = histogram_mean(outbox_before, outbox_after, "noetl_outbox_publish_duration_seconds")
        if batches is not None:
            result.batch_seconds = batches[0]
            result.rows_per_batch = backlog / batches[1]
    finally:
        await conn.execute("DELETE FROM noetl.outbox WHERE execution_id = $1", execution_id)
        await js.purge_stream(stream, subject=subject)
        await conn.close()
        await nc.close()
    return result


async def run_relay(target: Target, *, events: int) -> RelayResult:
    _, nats_url, events_addr = _require(target)
    execution_id = _IDS.next_id()
    result = RelayResult(events=events)
    stored: dict[int, tuple[datetime, datetime]] = {}  # event id → (stored in stream, created_at)
    arrived = asyncio.Event()

    async def on_message(msg: nats.aio.msg.Msg) -> None:
        event = orjson.loads(msg.data)
        created = datetime.fromisoformat(event["created_at"])
        stored[int(event["event_id"])] = (msg.metadata.timestamp, created)
        if len(stored) >= events:
            arrived.set()

    nc = await nats.connect(nats_url)
    # Appends as the execution service does.
    channel = target.channel(events_addr, EXECUTION)
    stub = events_pb2_grpc.EventServiceStub(channel)
    answered: dict[int, datetime] = {}
    try:
        js = nc.jetstream()
        subscription = await js.subscribe(
            execution_events_filter(execution_id),
            cb=on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        try:
            for index in range(events):
                request = events_pb2.AppendRequest(
                    execution_id=execution_id,
                    catalog_id=1 if index == 0 else 0,
                    events=[
                        events_pb2.NewEvent(event_type="bench.relay", node_name="bench", status="RUNNING")
                    ],
                )
                began = time.perf_counter()
                response = await stub.Append(request, timeout=30)
                answered[response.event_ids[0]] = datetime.now(UTC)
                result.append_ms.append((time.perf_counter() - began) * 1000.0)
            with contextlib.suppress(TimeoutError):  # what never arrived is counted as missing
                await asyncio.wait_for(arrived.wait(), timeout=30)
        finally:
            await subscription.unsubscribe()
    finally:
        await channel.close()
        await nc.close()
    for event_id, answer in answered.items():
        if event_id not in stored:
            result.missing += 1
            continue
        in_stream, created = stored[event_id]
        result.after_answer_ms.append((in_stream - answer).total_seconds() * 1000.0)
        result.after_stamp_ms.append((in_stream - created).total_seconds() * 1000.0)
    return result


def drain_rows(r: DrainResult) -> list[list[str]]:
    name = f"outbox drain ({r.rows:,} rows)"
    rows = [
        [name, "rows/s", f"{r.rate:,.0f}", ""],
        [name, "seconds", f"{r.seconds:.2f}", ""],
        [name, "stream messages", f"{r.stream_messages:,}", ""],
    ]
    if r.cpu is not None:
        rows.append([name, "other load (% of 1 core)", f"{r.cpu.pct(r.cpu.other):.0f}", ""])
    return rows


def relay_rows(r: RelayResult) -> list[list[str]]:
    name = f"relay path ({r.events} appends)"

    def pair(values: list[float]) -> str:
        return f"{percentile(values, 50):.1f} / {percentile(values, 99):.1f}"

    return [
        [name, "answered → in stream p50 / p99 ms", pair(r.after_answer_ms), ""],
        [name, "stamped → in stream p50 / p99 ms", pair(r.after_stamp_ms), ""],
        [name, "Append p50 / p99 ms", pair(r.append_ms), ""],
        [name, "missing from stream", str(r.missing), ""],
    ]


def describe(drain: DrainResult | None, relay: RelayResult | None) -> list[str]:
    lines = []
    if drain is not None and drain.rows_per_batch is not None and drain.batch_seconds is not None:
        lines.append(
            f"outbox drain: {drain.rows_per_batch:.0f} rows per publisher batch on average, "
            f"{drain.batch_seconds * 1000:.1f} ms from a batch's first publish to its last acknowledgement"
        )
    if drain is not None and drain.cpu is not None:
        lines += ["outbox drain " + "\n".join(drain.cpu.lines())]
    if relay is not None and relay.after_answer_ms:
        lines.append(
            "relay path: 'answered' is the moment Append returned (just after the commit); "
            "'stamped' is the event's created_at (before the transaction); 'in stream' is JetStream's store time"
        )
    return lines
