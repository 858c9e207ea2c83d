"""PoolService, the worker-pool registry (data-model.md §3.13), over gRPC on a real database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import pools_pb2, pools_pb2_grpc

from kernel.ids import id_time
from kernel.timeutil import utcnow
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh


@pytest.fixture(scope="module")
async def registry(mesh: Mesh) -> AsyncIterator[pools_pb2_grpc.PoolServiceStub]:
    async with grpc.aio.insecure_channel(mesh.addresses["execution"]) as channel:
        yield pools_pb2_grpc.PoolServiceStub(channel)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def registration(name: str, **fields: object) -> pools_pb2.PoolRegistration:
    runtime = fields.pop("runtime", {"type": "python", "pid": 4242, "hostname": "w0"})
    message = pools_pb2.PoolRegistration(
        name=name,
        kind=str(fields.pop("kind", "worker_pool")),
        status=str(fields.pop("status", "")),
        runtime_json=orjson.dumps(runtime),
    )
    for key, value in fields.items():
        setattr(message, key, value)
    return message


async def register(
    registry: pools_pb2_grpc.PoolServiceStub, message: pools_pb2.PoolRegistration
) -> pools_pb2.PoolServiceRegisterResponse:
    answer: pools_pb2.PoolServiceRegisterResponse = await registry.Register(
        pools_pb2.PoolServiceRegisterRequest(registration=message), timeout=10
    )
    return answer


async def row(db: asyncpg.Connection, name: str) -> asyncpg.Record:
    found = await db.fetchrow(
        "SELECT runtime_id, kind, uri, status, capacity, labels::text AS labels, runtime::text AS runtime, "
        "heartbeat, created_at, updated_at FROM noetl.runtime WHERE name = $1",
        name,
    )
    assert found is not None, f"no runtime row named {name}"
    return found


async def test_register_stores_the_pool_with_a_snowflake_id(
    registry: pools_pb2_grpc.PoolServiceStub, db: asyncpg.Connection
) -> None:
    name = unique("w")
    before = utcnow()
    answer = await register(
        registry,
        registration(
            f"  {name} ", status="READY", capacity=8, uri="http://w0:9000", labels_json=b'{"zone":"a"}'
        ),
    )

    stored = await row(db, name)
    assert stored["runtime_id"] == answer.runtime_id
    # A snowflake minted now (data-model.md §2.1), not a sequence.
    assert abs((id_time(answer.runtime_id) - before).total_seconds()) < 5
    assert (stored["kind"], stored["uri"], stored["status"], stored["capacity"]) == (
        "worker_pool",
        "http://w0:9000",
        "ready",
        8,
    )
    assert orjson.loads(stored["labels"]) == {"zone": "a"}
    assert orjson.loads(stored["runtime"]) == {"type": "python", "pid": 4242, "hostname": "w0"}
    assert stored["heartbeat"] >= before


async def test_registering_again_updates_the_same_pool(
    registry: pools_pb2_grpc.PoolServiceStub, db: asyncpg.Connection
) -> None:
    name = unique("w")
    first = await register(registry, registration(name, capacity=2))
    created = (await row(db, name))["created_at"]
    again = await register(registry, registration(name, capacity=6, runtime={"type": "python", "pid": 7}))

    assert again.runtime_id == first.runtime_id
    stored = await row(db, name)
    assert stored["capacity"] == 6
    assert orjson.loads(stored["runtime"]) == {"type": "python", "pid": 7}
    assert stored["created_at"] == created
    assert stored["updated_at"] > created
    # The same name under another kind is another runtime.
    other = await register(registry, registration(name, kind="scheduler"))
    assert other.runtime_id != first.runtime_id


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "   "}, "name is required"),
        (
            {"kind": "cluster"},
            "kind must be one of worker_pool, server_api, broker, scheduler, monitor, got 'cluster'",
        ),
        ({"capacity": -1}, "capacity must be >= 0, got -1"),
    ],
)
async def test_an_invalid_registration_is_refused(
    registry: pools_pb2_grpc.PoolServiceStub, fields: dict[str, object], message: str
) -> None:
    name = str(fields.pop("name", unique("w")))
    failure = await failure_of(register(registry, registration(name, **fields)))
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.message == message


async def test_heartbeat_refreshes_a_known_pool_and_makes_it_ready(
    registry: pools_pb2_grpc.PoolServiceStub, db: asyncpg.Connection
) -> None:
    name = unique("w")
    registered = await register(registry, registration(name))
    await registry.Deregister(pools_pb2.PoolServiceDeregisterRequest(name=name), timeout=10)
    await db.execute("UPDATE noetl.runtime SET heartbeat = now() - interval '1 hour' WHERE name = $1", name)

    beat = await registry.Heartbeat(pools_pb2.PoolServiceHeartbeatRequest(name=name), timeout=10)

    assert (beat.runtime_id, beat.recreated) == (registered.runtime_id, False)
    stored = await row(db, name)
    assert stored["status"] == "ready"
    assert (utcnow() - stored["heartbeat"]).total_seconds() < 5


async def test_heartbeat_of_an_unknown_pool_is_not_found_with_retry_after(
    registry: pools_pb2_grpc.PoolServiceStub, db: asyncpg.Connection
) -> None:
    name = unique("ghost")
    failure = await failure_of(
        registry.Heartbeat(pools_pb2.PoolServiceHeartbeatRequest(name=name), timeout=10)
    )
    assert failure.code is grpc.StatusCode.NOT_FOUND
    assert failure.detail == {"status": "unknown", "name": name}
    assert failure.retry_after == "5"
    assert await db.fetchval("SELECT count(*) FROM noetl.runtime WHERE name = $1", name) == 0


async def test_heartbeat_with_a_registration_recreates_an_unknown_pool(
    registry: pools_pb2_grpc.PoolServiceStub, db: asyncpg.Connection
) -> None:
    name = unique("lost")
    # The registration's own name and status do not count: the heartbeat names the pool.
    carried = registration("someone-else", status="busy", capacity=3)
    beat = await registry.Heartbeat(
        pools_pb2.PoolServiceHeartbeatRequest(name=name, registration=carried), timeout=10
    )

    assert beat.recreated
    stored = await row(db, name)
    assert (stored["runtime_id"], stored["status"], stored["capacity"]) == (beat.runtime_id, "ready", 3)
    assert await db.fetchval("SELECT count(*) FROM noetl.runtime WHERE name = 'someone-else'") == 0
    # Known now: the next heartbeat is a plain one.
    again = await registry.Heartbeat(
        pools_pb2.PoolServiceHeartbeatRequest(name=name, registration=carried), timeout=10
    )
    assert (again.runtime_id, again.recreated) == (beat.runtime_id, False)


async def test_deregister_marks_the_pool_offline_and_ignores_unknown_names(
    registry: pools_pb2_grpc.PoolServiceStub, db: asyncpg.Connection
) -> None:
    name = unique("w")
    await register(registry, registration(name))

    gone = await registry.Deregister(pools_pb2.PoolServiceDeregisterRequest(name=name), timeout=10)
    unknown = await registry.Deregister(
        pools_pb2.PoolServiceDeregisterRequest(name=unique("never")), timeout=10
    )

    assert (gone.found, unknown.found) == (True, False)
    assert (await row(db, name))["status"] == "offline"
    blank = await failure_of(
        registry.Deregister(pools_pb2.PoolServiceDeregisterRequest(name=" "), timeout=10)
    )
    assert (blank.code, blank.message) == (grpc.StatusCode.INVALID_ARGUMENT, "name is required")


async def test_list_filters_by_runtime_type_and_status(registry: pools_pb2_grpc.PoolServiceStub) -> None:
    kind_of_runtime = unique("rt")
    names = sorted(unique("w") for _ in range(3))
    for name in names:
        await register(registry, registration(name, runtime={"type": kind_of_runtime}, capacity=1))
    await registry.Deregister(pools_pb2.PoolServiceDeregisterRequest(name=names[1]), timeout=10)
    await register(
        registry, registration(unique("sched"), kind="scheduler", runtime={"type": kind_of_runtime})
    )

    async def listed(**filters: str) -> list[tuple[str, str]]:
        answer = await registry.List(
            pools_pb2.PoolServiceListRequest(kind="worker_pool", runtime_type=kind_of_runtime, **filters),
            timeout=10,
        )
        return [(entry.name, entry.status) for entry in answer.entries]

    assert await listed() == [(names[0], "ready"), (names[1], "offline"), (names[2], "ready")]
    assert await listed(status="offline") == [(names[1], "offline")]
    answer = await registry.List(
        pools_pb2.PoolServiceListRequest(kind="worker_pool", runtime_type=kind_of_runtime, status="ready"),
        timeout=10,
    )
    entry = answer.entries[0]
    assert orjson.loads(entry.runtime_json) == {"type": kind_of_runtime}
    assert entry.capacity == 1
    assert entry.labels_json == b""
    assert entry.heartbeat.ToDatetime() >= entry.created_at.ToDatetime()
