"""AdminService over real gRPC: pool telemetry, the schema check and ad-hoc SQL (http-api.md §2.3, §11).

The servicer is assembled as the execution service assembles it (`tests/helpers/admin.py`), but
over a database whose tables the tests choose (so a required table can be missing), with a real
wallet on a second, migrated database for the credential lookups.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import orjson
import pytest
from noetl.v1 import admin_pb2, admin_pb2_grpc, secrets_pb2

from kernel import db
from kernel.migrate import migrate
from noetl_mesh.query_role import role_name
from services.execution.admin.clients import SecretsCredentials
from services.execution.admin.service import REQUIRED_TABLES, Admin
from tests.helpers import infra
from tests.helpers.admin import bare_database, running_admin
from tests.helpers.infra import PgServer
from tests.helpers.secrets import Wallet, new_key, running_secrets, wallet_settings
from tests.helpers.waiting import wait_until

TIMEOUT_SECONDS = 3.0
POOL_MAX = 2
NOWHERE = "postgresql://nobody@127.0.0.1:9/none"


@dataclass(frozen=True)
class Harness:
    dsn: str  # the admin's own database, tables chosen here
    other_dsn: str  # a second database on the same server
    wallet: Wallet
    pool: db.Pool
    stub: admin_pb2_grpc.AdminServiceStub


@pytest.fixture(scope="module")
async def harness(pg_server: PgServer, module_dsn: str) -> AsyncIterator[Harness]:
    await migrate(module_dsn)
    async with AsyncExitStack() as stack:
        dsn = await bare_database(pg_server, "admin_bare")
        stack.push_async_callback(infra.drop_database, pg_server, dsn)
        other = await infra.fresh_database(pg_server, prefix="admin_other")
        stack.push_async_callback(infra.drop_database, pg_server, other)
        wallet = await stack.enter_async_context(
            running_secrets(wallet_settings(module_dsn, {"NOETL_ENCRYPTION_KEY": new_key()}))
        )
        admin = await stack.enter_async_context(
            running_admin(
                dsn, secrets_addr=wallet.address, pool_max=POOL_MAX, timeout_seconds=TIMEOUT_SECONDS
            )
        )
        # Ad-hoc SQL runs as the stack's least-privilege role (tests/integration/test_sql_role.py),
        # which reads `noetl` only; an operator grants it writes to a table of theirs like this.
        owner = await asyncpg.connect(dsn)
        try:
            await owner.execute(
                f'GRANT INSERT, UPDATE ON noetl.extra TO "{role_name(infra.database_of(dsn))}"'
            )
        finally:
            await owner.close()
        channel = grpc.aio.insecure_channel(admin.address)
        stack.push_async_callback(channel.close)
        yield Harness(dsn, other, wallet, admin.pool, admin_pb2_grpc.AdminServiceStub(channel))


async def sql(harness: Harness, *, deadline: float | None = None, **fields: Any) -> tuple[Any, str | None]:
    """(result, error) of one ExecuteSql; `parameters` is sent as JSON."""
    request = admin_pb2.ExecuteSqlRequest()
    if "parameters" in fields:
        request.parameters_json = orjson.dumps(fields.pop("parameters"))
    for name, value in fields.items():
        setattr(request, name, value)
    answer = await harness.stub.ExecuteSql(request, timeout=deadline)
    return orjson.loads(answer.result_json), (answer.error if answer.HasField("error") else None)


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


# --- pool status ----------------------------------------------------------------------------------


async def test_pool_status_counts_connections_in_use_and_callers_waiting(harness: Harness) -> None:
    idle = await harness.stub.PoolStatus(admin_pb2.PoolStatusRequest())
    assert (idle.pool_min, idle.pool_max, idle.status) == (1, POOL_MAX, "ok")
    assert idle.pool_available == idle.pool_size >= 1
    assert (idle.requests_waiting, idle.utilization, idle.slots_available) == (0, 0.0, POOL_MAX)

    async def take() -> Any:
        return await harness.pool.acquire()

    held = [await take() for _ in range(POOL_MAX)]
    waiter = asyncio.create_task(take())
    try:
        await wait_until(lambda: harness.pool.waiting == 1, what="a caller waiting for a connection")
        busy = await harness.stub.PoolStatus(admin_pb2.PoolStatusRequest())
        assert (busy.pool_size, busy.pool_available, busy.requests_waiting) == (POOL_MAX, 0, 1)
        assert (busy.utilization, busy.slots_available) == (1.0, 0)
        await harness.pool.release(held.pop())
        held.append(await waiter)
        # The released connection went straight to the waiter.
        half = await harness.stub.PoolStatus(admin_pb2.PoolStatusRequest())
        assert (half.pool_available, half.requests_waiting, half.utilization) == (0, 0, 1.0)
    finally:
        if not waiter.done():
            waiter.cancel()
        for connection in held:
            await harness.pool.release(connection)
    after = await harness.stub.PoolStatus(admin_pb2.PoolStatusRequest())
    assert (after.pool_size, after.pool_available, after.utilization, after.slots_available) == (
        POOL_MAX,
        POOL_MAX,
        0.0,
        POOL_MAX,
    )


async def test_utilization_is_rounded_to_two_places(pg_server: PgServer, harness: Harness) -> None:
    pool = await db.create_pool(harness.dsn, max_size=3)
    try:
        admin = Admin(pool, harness.dsn, SecretsCredentials(harness.wallet.stub), TIMEOUT_SECONDS)
        async with pool.acquire():
            assert admin.pool_status().utilization == 0.33
    finally:
        await pool.close()


# --- schema check ---------------------------------------------------------------------------------


async def test_check_schema_lists_tables_without_partitions(harness: Harness) -> None:
    report = await harness.stub.CheckSchema(admin_pb2.CheckSchemaRequest())
    assert list(report.tables) == list(REQUIRED_TABLES)
    assert list(report.missing) == []
    assert list(report.all_tables) == sorted([*REQUIRED_TABLES, "extra", "parted"])


async def test_check_schema_reports_missing_tables_in_required_order(harness: Harness) -> None:
    conn = await asyncpg.connect(harness.dsn)
    try:
        await conn.execute("ALTER TABLE noetl.runtime RENAME TO runtime_gone")
        await conn.execute("ALTER TABLE noetl.credential RENAME TO credential_gone")
        report = await harness.stub.CheckSchema(admin_pb2.CheckSchemaRequest())
        assert list(report.missing) == ["credential", "runtime"]
        assert list(report.tables) == ["catalog", "event", "command", "execution", "keychain"]
        assert "runtime_gone" in report.all_tables and "runtime" not in report.all_tables
    finally:
        await conn.execute("ALTER TABLE noetl.runtime_gone RENAME TO runtime")
        await conn.execute("ALTER TABLE noetl.credential_gone RENAME TO credential")
        await conn.close()


async def test_check_schema_of_a_database_without_the_schema(pg_server: PgServer, harness: Harness) -> None:
    empty = await infra.fresh_database(pg_server, prefix="admin_empty")
    pool = await db.create_pool(empty)
    try:
        admin = Admin(pool, empty, SecretsCredentials(harness.wallet.stub), TIMEOUT_SECONDS)
        report = await admin.check_schema()
        assert (report.tables, report.missing, report.all_tables) == ([], list(REQUIRED_TABLES), [])
    finally:
        await pool.close()
        await infra.drop_database(pg_server, empty)


# --- ad-hoc SQL -----------------------------------------------------------------------------------


async def test_rows_come_back_as_objects_of_json_values(harness: Harness) -> None:
    result, error = await sql(
        harness,
        query="  SELECT 1 AS x, 'é'::text AS t, NULL AS n, 1.5::numeric AS d, 10::numeric AS i,"
        " '1180591620717411303424'::numeric AS big, '{\"a\": [1]}'::jsonb AS j, '2026-01-02 03:04:05+00'::timestamptz AS ts,"
        " '\\x0102'::bytea AS b, true AS flag  ",
    )
    assert error is None
    assert result == [
        {
            "x": 1,
            "t": "é",
            "n": None,
            "d": 1.5,
            "i": 10,
            "big": 2**70,
            "j": {"a": [1]},
            "ts": "2026-01-02T03:04:05+00:00",
            "b": "AQI=",
            "flag": True,
        }
    ]


async def test_a_statement_without_rows_answers_null_and_an_empty_query_an_empty_list(
    harness: Harness,
) -> None:
    assert await sql(harness, query="UPDATE noetl.extra SET id = 1 WHERE false") == (None, None)
    assert await sql(harness, query="SELECT id FROM noetl.extra WHERE false") == ([], None)
    assert await sql(harness, query="-- nothing but a comment") == (None, None)


async def test_a_script_answers_with_its_last_statement(harness: Harness) -> None:
    script = (
        "CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1), (2);\n"
        "-- a ; inside a comment\nSELECT x, 'a;b' AS s FROM t ORDER BY x;"
    )
    assert await sql(harness, query=script) == ([{"x": 1, "s": "a;b"}, {"x": 2, "s": "a;b"}], None)


async def test_parameters_bind_positionally_and_convert_to_the_parameter_types(harness: Harness) -> None:
    query = "SELECT $1::int AS n, $2::text AS s"
    assert await sql(harness, query=query, parameters=[5, "a"]) == ([{"n": 5, "s": "a"}], None)
    assert await sql(harness, query=query, parameters={"b": "7", "a": {"k": 1}}) == (
        [{"n": 7, "s": '{"k": 1}'}],
        None,
    )
    assert await sql(harness, query="SELECT $1::numeric AS v", parameters=2.25) == ([{"v": 2.25}], None)
    assert await sql(
        harness,
        query="SELECT $1::jsonb AS j, $2::timestamptz AS ts, $3::bool AS f",
        parameters=[[1, {"a": None}], "2026-01-02T03:04:05Z", "false"],
    ) == ([{"j": [1, {"a": None}], "ts": "2026-01-02T03:04:05+00:00", "f": False}], None)


async def test_a_value_that_does_not_fit_its_parameter_is_an_error_naming_it(harness: Harness) -> None:
    result, error = await sql(harness, query="SELECT $1::int AS n", parameters=["five"])
    assert result is None
    assert error is not None and "$1" in error, error
    result, error = await sql(harness, query="SELECT $1::int AS n", parameters=[1, 2])
    assert result is None and error is not None and "1 argument" in error, error


async def test_sql_errors_are_an_answer_not_a_failure(harness: Harness) -> None:
    assert await sql(harness, query="SELECT * FROM nope") == (None, 'relation "nope" does not exist')


async def test_schema_sets_the_search_path_of_this_request_only(harness: Harness) -> None:
    assert await sql(harness, query="SELECT count(*) AS n FROM extra WHERE id < 0", schema="noetl") == (
        [{"n": 0}],
        None,
    )
    assert await sql(harness, query="SET search_path = nowhere") == (None, None)
    # Every request has a connection of its own: nothing of a previous session is left.
    assert await sql(harness, query="SELECT current_setting('search_path') AS p") == (
        [{"p": '"$user", public'}],
        None,
    )
    _, error = await sql(harness, query="SELECT 1 FROM extra")
    assert error == 'relation "extra" does not exist'


async def test_procedures_are_called_with_the_parameters(harness: Harness) -> None:
    assert await sql(harness, procedure="noetl.bump", parameters=[41]) == ([{"n": 42}], None)
    assert await sql(harness, procedure="noetl.mark") == (None, None)
    assert await sql(harness, query="SELECT count(*) AS n FROM noetl.extra WHERE id = 7") == (
        [{"n": 1}],
        None,
    )
    assert await sql(harness, procedure="mark", schema="noetl") == (None, None)
    _, error = await sql(harness, procedure="noetl.nope")
    assert error is not None and "noetl.nope()" in error, error


async def test_query_base64_is_decoded(harness: Harness) -> None:
    encoded = base64.b64encode(" SELECT 'ü' AS y ".encode()).decode()
    assert await sql(harness, query_base64=encoded) == ([{"y": "ü"}], None)
    # `query` wins over `query_base64` when both are given.
    assert await sql(harness, query="SELECT 1 AS q", query_base64=encoded) == ([{"q": 1}], None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "query or procedure is required"),
        ({"query": "   ", "procedure": ""}, "query or procedure is required"),
        ({"query_base64": "not base64!"}, "query_base64 is not base64 of UTF-8 text"),
        (
            {"query_base64": base64.b64encode(b"\xff\xfe").decode()},
            "query_base64 is not base64 of UTF-8 text",
        ),
        ({"procedure": "p(); DROP TABLE x"}, "procedure must be a procedure name, got 'p(); DROP TABLE x'"),
    ],
)
async def test_requests_without_runnable_sql_are_invalid(
    harness: Harness, fields: dict[str, Any], message: str
) -> None:
    error = await rpc_error(sql(harness, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message


async def test_database_picks_another_database_of_the_same_server(harness: Harness) -> None:
    other = infra.database_of(harness.other_dsn)
    assert await sql(harness, query="SELECT current_database() AS d", database=other) == (
        [{"d": other}],
        None,
    )
    _, error = await sql(harness, query="SELECT 1", database="no_such_db_here")
    assert error == 'database "no_such_db_here" does not exist'


async def _put_credential(harness: Harness, name: str, data: Any) -> None:
    await harness.wallet.stub.PutCredential(
        secrets_pb2.PutCredentialRequest(name=name, type="postgres", data_json=orjson.dumps(data))
    )


async def test_connection_priority(harness: Harness) -> None:
    parts = urllib.parse.urlsplit(harness.other_dsn)
    other = infra.database_of(harness.other_dsn)
    await _put_credential(
        harness,
        "admin_pg",
        {
            "db_host": parts.hostname,
            "port": str(parts.port),
            "user": urllib.parse.unquote(parts.username or ""),
            "password": urllib.parse.unquote(parts.password or ""),
            "db_name": other,
        },
    )
    mine = infra.database_of(harness.dsn)
    current = "SELECT current_database() AS d"
    assert await sql(harness, query=current, credential="admin_pg") == ([{"d": other}], None)
    assert await sql(harness, query=current, credential="admin_pg", database=mine) == ([{"d": other}], None)
    assert await sql(harness, query=current, connection_string=harness.dsn, credential="admin_pg") == (
        [{"d": mine}],
        None,
    )
    assert await sql(harness, query=current) == ([{"d": mine}], None)


async def test_credential_failures(harness: Harness) -> None:
    missing = await rpc_error(sql(harness, query="SELECT 1", credential="admin_nobody"))
    assert (missing.code(), missing.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "credential 'admin_nobody' not found",
    )

    await _put_credential(harness, "admin_bad_port", {"host": "127.0.0.1", "port": "abc"})
    bad = await rpc_error(sql(harness, query="SELECT 1", credential="admin_bad_port"))
    assert (bad.code(), bad.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "credential 'admin_bad_port': port 'abc' is not a number",
    )


async def test_an_unreachable_target_is_an_error_answer(harness: Harness) -> None:
    result, error = await sql(harness, query="SELECT 1", connection_string=NOWHERE)
    assert result is None
    assert error == "[Errno 111] Connect call failed ('127.0.0.1', 9)"
    result, error = await sql(harness, query="SELECT 1", connection_string="mysql://x@127.0.0.1/x")
    assert result is None
    assert error is not None and "invalid DSN" in error, error


async def test_statements_are_cut_at_the_timeout(harness: Harness) -> None:
    started = time.monotonic()
    assert await sql(harness, query="SELECT pg_sleep(30)") == (
        None,
        "canceling statement due to statement timeout",
    )
    assert TIMEOUT_SECONDS - 0.5 < time.monotonic() - started < TIMEOUT_SECONDS + 2


async def test_a_short_caller_deadline_shortens_the_bound(harness: Harness) -> None:
    started = time.monotonic()
    # 3.5 s left: the statement gets 1.5 s, so the answer arrives before the deadline.
    assert await sql(harness, deadline=3.5, query="SELECT pg_sleep(30)") == (
        None,
        "canceling statement due to statement timeout",
    )
    assert time.monotonic() - started < 3.0


async def test_a_server_that_never_answers_is_cut_client_side(harness: Harness) -> None:
    """A listener that accepts and stays silent: no `statement_timeout` can help, the deadline does."""
    silent: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        result = await sql(harness, query="SELECT 1", connection_string=f"postgresql://x@127.0.0.1:{port}/x")
        assert result == (None, f"timeout: no answer from the database within {TIMEOUT_SECONDS:g}s")
        assert time.monotonic() - started < TIMEOUT_SECONDS + 3
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()
