"""The outbox service for tests: its servicer on a GrpcHost without the background publisher, plus
rows written with SQL as a crashed relay or an earlier attempt would have left them."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from noetl.v1 import outbox_pb2_grpc

from kernel import db as common_db
from kernel.bus import BusSettings, ensure_streams
from kernel.grpc_server import GrpcHost
from kernel.mesh_guard import ServerAuth
from kernel.migrate import migrate
from services.outbox.api import OutboxApi
from services.outbox.service import Outbox
from services.outbox.store import OutboxStore
from tests.helpers.bus import isolated_bus, read_stream, unique_bus

MAX_ATTEMPTS = 10
LEASE_SECONDS = 60
REPO = Path(__file__).resolve().parents[2]

# A small event in stream form: about the size of a real mirror message.
_PAYLOAD = (
    "jsonb_build_object('event_id', e, 'execution_id', $1::bigint, 'catalog_id', 1, 'event_type', 'call.done', "
    "'status', 'COMPLETED', 'node_name', 'step', 'result', jsonb_build_object('status', 'ok', 'context', "
    "jsonb_build_object('data', repeat('x', 120))))"
)


@dataclass(frozen=True)
class OutboxHarness:
    dsn: str
    address: str  # the servicer's host:port
    outbox: Outbox
    store: OutboxStore
    stub: outbox_pb2_grpc.OutboxServiceStub
    db: asyncpg.Connection
    nc: NatsClient
    js: JetStreamContext
    bus: BusSettings


@asynccontextmanager
async def outbox_harness(
    dsn: str,
    nats_url: str,
    label: str,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    lease_seconds: int = LEASE_SECONDS,
) -> AsyncIterator[OutboxHarness]:
    """A migrated database, streams of `label`'s own, and the outbox servicer on an ephemeral port."""
    await migrate(dsn)
    bus = unique_bus(nats_url, label)
    pool = await common_db.create_pool(dsn)
    conn = await asyncpg.connect(dsn)
    store = OutboxStore(pool, lease_seconds=lease_seconds, max_attempts=max_attempts)
    outbox = Outbox(store)
    api = OutboxApi(outbox)
    host = GrpcHost(
        "outbox",
        "127.0.0.1:0",
        [lambda server: outbox_pb2_grpc.add_OutboxServiceServicer_to_server(api, server)],
        auth=ServerAuth.off(),
    )
    port = await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    nc = await nats.connect(nats_url)
    try:
        async with isolated_bus(bus) as js:
            await ensure_streams(js, bus)
            yield OutboxHarness(
                dsn,
                f"127.0.0.1:{port}",
                outbox,
                store,
                outbox_pb2_grpc.OutboxServiceStub(channel),
                conn,
                nc,
                js,
                bus,
            )
    finally:
        await nc.close()
        await channel.close()
        await host.stop()
        await conn.close()
        await pool.close()


async def insert_rows(
    db: asyncpg.Connection,
    execution_id: int,
    subject: str,
    event_ids: list[int],
    *,
    status: str,
    attempts: int,
    locked_ago_seconds: float | None,
) -> list[int]:
    """Outbox rows for `event_ids` in that order; returns their outbox ids."""
    rows = await db.fetch(
        "INSERT INTO noetl.outbox (execution_id, event_id, subject, payload, payload_codec, status, attempts, "
        f"locked_at) SELECT $1, e, $2, {_PAYLOAD}, 'json', $3, $4, "
        "CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() - make_interval(secs => $5::float8) END "
        "FROM unnest($6::bigint[]) AS e ORDER BY e RETURNING outbox_id",
        execution_id,
        subject,
        status,
        attempts,
        locked_ago_seconds,
        event_ids,
    )
    return [r["outbox_id"] for r in rows]


async def insert_backlog(
    db: asyncpg.Connection, execution_id: int, subject: str, first_event_id: int, count: int
) -> None:
    """`count` PENDING rows with consecutive event ids, in one statement."""
    await db.execute(
        "INSERT INTO noetl.outbox (execution_id, event_id, subject, payload, payload_codec) "
        f"SELECT $1, e, $2, {_PAYLOAD}, 'json' FROM generate_series($3::bigint, $3::bigint + $4 - 1) AS e",
        execution_id,
        subject,
        first_event_id,
        count,
    )


async def statuses(db: asyncpg.Connection, outbox_ids: list[int]) -> dict[int, tuple[str, int]]:
    rows = await db.fetch(
        "SELECT outbox_id, status, attempts FROM noetl.outbox WHERE outbox_id = ANY($1::bigint[])", outbox_ids
    )
    return {r["outbox_id"]: (r["status"], r["attempts"]) for r in rows}


async def status_counts(db: asyncpg.Connection) -> Counter[str]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM noetl.outbox GROUP BY status")
    return Counter({r["status"]: r["n"] for r in rows})


async def stream_ids(
    js: JetStreamContext, stream: str, subject_filter: str, *, at_least: int
) -> Counter[str]:
    """How many messages the stream holds per `Nats-Msg-Id` under `subject_filter`."""
    messages = await read_stream(js, stream, subject_filter, at_least=at_least, within=60.0)
    return Counter(m.msg_id or "" for m in messages)


def service_env(dsn: str, settings: BusSettings, *, lease_seconds: int, **extra: str) -> dict[str, str]:
    """The environment of an outbox service process on `dsn` and the bus of `settings`."""
    return {
        **os.environ,
        "NOETL_PG_DSN": dsn,
        "NOETL_NATS_URL": settings.url,
        "NATS_STREAM": settings.command_stream,
        "NOETL_EVENT_NATS_STREAM": settings.event_stream,
        "NOETL_GRPC_LISTEN": "127.0.0.1:0",
        "NOETL_METRICS_PORT": "0",
        "NOETL_SERVER_MACHINE_ID": "900",
        "NOETL_OUTBOX_LEASE_SECONDS": str(lease_seconds),
        "NOETL_OUTBOX_PUBLISHER_BATCH_SIZE": "1000",
        "NOETL_OUTBOX_PUBLISHER_IDLE_SLEEP_SECONDS": "0.05",
        "NOETL_LOG_LEVEL": "WARNING",
        # The outbox's own behaviour is under test, not who may call it.
        "NOETL_MESH_AUTH": "off",
        **extra,
    }


async def start_service(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """`python -m services.outbox` with `env`, its output appended to `log`."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.outbox", env=env, cwd=REPO, stdin=asyncio.subprocess.DEVNULL,
            stdout=out, stderr=out,
        )  # fmt: skip
