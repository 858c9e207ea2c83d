"""ResultService on the execution service, on real Postgres (data-model.md §3.8, http-api.md §10)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import results_pb2, results_pb2_grpc

from kernel import db as dbpool
from kernel.grpc_client import ClientAuth, Sharded
from kernel.ids import Snowflake
from services.execution.results.service import Results
from services.execution.results.store import ResultStore
from tests.helpers.nowhere import NOWHERE
from tests.helpers.rpc import failure_of
from tests.helpers.services import Mesh
from worker.credentials import CommandSecrets
from worker.results import ResultOffload
from worker.tools.base import ToolCall

EXECUTION_ID = 612400000000000001


@pytest.fixture(scope="module")
async def results(mesh: Mesh) -> AsyncIterator[results_pb2_grpc.ResultServiceStub]:
    async with grpc.aio.insecure_channel(mesh.addresses["execution"]) as channel:
        yield results_pb2_grpc.ResultServiceStub(channel)


async def put(
    results: results_pb2_grpc.ResultServiceStub, data: Any, **fields: Any
) -> results_pb2.ResultServicePutResponse:
    request = results_pb2.ResultServicePutRequest(
        execution_id=fields.pop("execution_id", EXECUTION_ID),
        name=fields.pop("name", "fetch"),
        data_json=orjson.dumps(data),
        **fields,
    )
    response: results_pb2.ResultServicePutResponse = await results.Put(request, timeout=10)
    return response


async def resolve(results: results_pb2_grpc.ResultServiceStub, ref: str) -> Any:
    found = await results.Resolve(results_pb2.ResultServiceResolveRequest(ref=ref), timeout=10)
    return orjson.loads(found.data_json)


async def test_a_value_put_resolves_to_itself(
    results: results_pb2_grpc.ResultServiceStub, db: asyncpg.Connection
) -> None:
    data = {"rows": [{"id": i, "name": f"row-{i}"} for i in range(50)], "total": 50, "note": "ünïcode"}
    stored = await put(results, data, source_step="fetch_step", extracted_json=orjson.dumps({"total": 50}))

    assert stored.ref == f"noetl://execution/{EXECUTION_ID}/result/fetch/{stored.result_id}"
    assert (stored.store, stored.scope, stored.HasField("expires_at")) == ("db", "execution", False)
    compact = orjson.dumps(data)
    assert (stored.bytes, stored.sha256) == (len(compact), hashlib.sha256(compact).hexdigest())
    assert await resolve(results, stored.ref) == data
    row = await db.fetchrow(
        "SELECT execution_id, name, scope, source_step, bytes, sha256, media_type, extracted::text, expires_at "
        "FROM noetl.result_store WHERE result_id = $1",
        stored.result_id,
    )
    assert row is not None
    assert dict(row) == {
        "execution_id": EXECUTION_ID,
        "name": "fetch",
        "scope": "execution",
        "source_step": "fetch_step",
        "bytes": len(compact),
        "sha256": stored.sha256,
        "media_type": "application/json",
        "extracted": '{"total": 50}',
        "expires_at": None,
    }


@pytest.mark.parametrize("data", [[1, "two", None], "text", 42, None, True])
async def test_any_json_value_can_be_stored(results: results_pb2_grpc.ResultServiceStub, data: Any) -> None:
    stored = await put(results, data)
    assert await resolve(results, stored.ref) == data


async def test_every_tier_name_lands_in_postgres(results: results_pb2_grpc.ResultServiceStub) -> None:
    for tier in ("memory", "kv", "disk", "object", "s3", "gcs", "db", "duckdb", "eventlog"):
        stored = await put(results, {"tier": tier}, store=tier, scope="step")
        assert (stored.store, stored.scope) == ("db", "step")
        assert await resolve(results, stored.ref) == {"tier": tier}


async def test_a_value_that_only_looks_secret_is_stored_unchanged(
    results: results_pb2_grpc.ResultServiceStub, db: asyncpg.Connection
) -> None:
    """Pattern rules are a display filter, never applied to storage (data-model.md §9.10)."""
    data = {
        "blob": "QUJD" * 40,
        "token_count": 5,
        "nested": {"secret_santa": ["ann", "bob"], "big": 2**63 - 1, "low": -(2**63)},
    }
    correlation = {"trace": "t-1", "Authorization": "Bearer abc.def"}
    stored = await put(results, data, correlation_json=orjson.dumps(correlation))

    assert await resolve(results, stored.ref) == data
    assert stored.sha256 == hashlib.sha256(orjson.dumps(data)).hexdigest()
    assert (
        orjson.loads(
            await db.fetchval(
                "SELECT correlation::text FROM noetl.result_store WHERE result_id = $1", stored.result_id
            )
        )
        == correlation
    )


async def test_a_ttl_sets_the_expiry_and_an_expired_value_is_gone(
    results: results_pb2_grpc.ResultServiceStub, db: asyncpg.Connection
) -> None:
    before = datetime.now(UTC)
    stored = await put(results, {"short": "lived"}, ttl="2h")
    expires_at = stored.expires_at.ToDatetime(tzinfo=UTC)
    assert (
        before + timedelta(hours=2) - timedelta(seconds=5)
        < expires_at
        < before + timedelta(hours=2, seconds=5)
    )
    assert await resolve(results, stored.ref) == {"short": "lived"}

    await db.execute(
        "UPDATE noetl.result_store SET expires_at = now() - interval '1 second' WHERE result_id = $1",
        stored.result_id,
    )
    failure = await failure_of(results.Resolve(results_pb2.ResultServiceResolveRequest(ref=stored.ref)))
    assert (failure.code, failure.detail) == (grpc.StatusCode.NOT_FOUND, f"Result expired: {stored.ref}")

    forever = await put(results, {"long": "lived"}, ttl="forever")
    assert not forever.HasField("expires_at")


async def test_unknown_references_are_not_found(results: results_pb2_grpc.ResultServiceStub) -> None:
    stored = await put(results, {"a": 1}, name="known")
    for ref in (
        f"noetl://execution/{EXECUTION_ID}/result/known/1",
        f"noetl://execution/{EXECUTION_ID}/result/other/{stored.result_id}",
        f"noetl://execution/{EXECUTION_ID + 1}/result/known/{stored.result_id}",
    ):
        failure = await failure_of(results.Resolve(results_pb2.ResultServiceResolveRequest(ref=ref)))
        assert (failure.code, failure.detail) == (grpc.StatusCode.NOT_FOUND, f"Result not found: {ref}")


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"scope": "global"}, "Invalid scope: global. Use: step, execution, workflow, permanent"),
        ({"store": "ftp"}, "Invalid store tier: ftp"),
        (
            {"ttl": "soon"},
            "Invalid ttl: soon. Use a number of seconds, or a count with s, m, h, d, w or y "
            "(30m, 1h, 2d, 1y), or forever",
        ),
        ({"name": "  "}, "name is required"),
        ({"execution_id": 0}, "execution_id must be a positive id, got 0"),
    ],
)
async def test_a_bad_put_is_refused_naming_the_field(
    results: results_pb2_grpc.ResultServiceStub, db: asyncpg.Connection, fields: dict[str, Any], detail: str
) -> None:
    before = await db.fetchval("SELECT count(*) FROM noetl.result_store")
    failure = await failure_of(put(results, {"a": 1}, **fields))
    assert (failure.code, failure.kind, failure.detail) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidArgument",
        detail,
    )
    assert await db.fetchval("SELECT count(*) FROM noetl.result_store") == before


async def test_a_value_postgres_cannot_hold_is_refused(results: results_pb2_grpc.ResultServiceStub) -> None:
    failure = await failure_of(put(results, {"text": "nul\u0000char"}))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.detail.startswith("data cannot be stored: ")


async def test_a_malformed_reference_is_refused_naming_ref(
    results: results_pb2_grpc.ResultServiceStub,
) -> None:
    failure = await failure_of(
        results.Resolve(results_pb2.ResultServiceResolveRequest(ref="s3://bucket/key"))
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.detail.startswith("Invalid ref: 's3://bucket/key'")


async def test_the_sweep_deletes_expired_values_only(
    mesh: Mesh, results: results_pb2_grpc.ResultServiceStub, db: asyncpg.Connection
) -> None:
    kept = [await put(results, {"n": n}, ttl="1h") for n in range(2)] + [await put(results, {"n": 9})]
    gone = [await put(results, {"n": n}, ttl="1h") for n in range(3)]
    await db.execute(
        "UPDATE noetl.result_store SET expires_at = now() - interval '1 second' WHERE result_id = ANY($1)",
        [stored.result_id for stored in gone],
    )
    pool = await dbpool.create_pool(mesh.dsn, max_size=2)
    try:
        assert await Results(ResultStore(pool), Snowflake(999)).sweep_expired() >= len(gone)
    finally:
        await pool.close()
    left = await db.fetch(
        "SELECT result_id FROM noetl.result_store WHERE result_id = ANY($1)",
        [stored.result_id for stored in kept + gone],
    )
    assert {row[0] for row in left} == {stored.result_id for stored in kept}


def tool_call(secrets: CommandSecrets | None = None) -> ToolCall:
    return ToolCall(
        execution_id=EXECUTION_ID,
        command_id=77,
        step="big_step",
        kind="python",
        config={},
        input={},
        render_context={},
        timeout=None,
        server_url=f"http://{NOWHERE}",
        secrets=secrets or CommandSecrets(),
    )


async def test_the_worker_stores_a_result_over_its_budget_without_the_commands_secrets(
    mesh: Mesh, results: results_pb2_grpc.ResultServiceStub
) -> None:
    secrets = CommandSecrets()
    secrets.remember({"password": "pw-resolved-123"})
    data = {"rows": [{"n": n, "dsn": "postgres://svc:pw-resolved-123@db"} for n in range(20)]}
    stub = Sharded((mesh.addresses["execution"],), results_pb2_grpc.ResultServiceStub, ClientAuth.off())
    try:
        offload = ResultOffload(stub, inline_bytes=512)
        assert await offload.reference(tool_call(secrets), {"small": True}) is None
        assert await offload.reference(tool_call(secrets), None) is None
        reference = await offload.reference(tool_call(secrets), data)
    finally:
        await stub.close()

    assert reference is not None
    assert reference["ref"].startswith(f"noetl://execution/{EXECUTION_ID}/result/big_step/")
    assert (reference["store"], reference["scope"]) == ("db", "execution")
    assert reference["preview"] == {
        "rows": [{"n": n, "dsn": "postgres://svc:[REDACTED]@db"} for n in range(5)]
    }
    stored = await resolve(results, reference["ref"])
    assert "pw-resolved-123" not in orjson.dumps(stored).decode()
    assert stored["rows"][19] == {"n": 19, "dsn": "postgres://svc:[REDACTED]@db"}
    compact = orjson.dumps(stored)
    assert (reference["bytes"], reference["sha256"]) == (
        len(compact),
        f"sha256:{hashlib.sha256(compact).hexdigest()}",
    )


async def test_the_worker_sends_a_result_inline_when_the_store_is_unreachable() -> None:
    stub = Sharded(("127.0.0.1:9",), results_pb2_grpc.ResultServiceStub, ClientAuth.off())
    try:
        offload = ResultOffload(stub, inline_bytes=16)
        assert await offload.reference(tool_call(), {"rows": list(range(100))}) is None
    finally:
        await stub.close()
