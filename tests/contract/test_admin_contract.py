"""Golden bodies of the pool status and database utility routes (http-api.md §2.3, §11).

`/api/postgres/execute` is checked against the session mesh. The pool and schema routes depend
on state the session mesh cannot hold still (its pool is busy; its schema is complete), so they
run through the gateway app in this process (ASGI transport) in front of the AdminService on a
database whose tables each test chooses (`tests/helpers/admin.py`).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from gateway_http.settings import GatewaySettings
from tests.contract.golden import GoldenFiles
from tests.contract.support import expect
from tests.helpers import infra
from tests.helpers.admin import bare_database, running_admin
from tests.helpers.gateway import in_process_gateway
from tests.helpers.infra import PgServer
from tests.helpers.nowhere import NOWHERE, NOWHERE_ENV

pytestmark = pytest.mark.e2e

EXECUTE = "/api/postgres/execute"


@asynccontextmanager
async def gateway_before(execution_addr: str) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app with `execution_addr` as its one execution shard; nothing else is reachable."""
    settings = GatewaySettings.load(
        {
            **NOWHERE_ENV,
            "NOETL_EXECUTION_ADDRS": execution_addr,
            "NOETL_GATEWAY_RPC_TIMEOUT": "5",
        }
    )
    async with in_process_gateway(settings) as client:
        yield client


@asynccontextmanager
async def gateway_over(
    pg_server: PgServer, *, without: tuple[str, ...] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app in front of an AdminService on a fresh database lacking the `without` tables."""
    dsn = await bare_database(pg_server, "admin_contract", without=without)
    try:
        async with running_admin(dsn) as admin, gateway_before(admin.address) as client:
            yield client
    finally:
        await infra.drop_database(pg_server, dsn)


# --- §2.3 -----------------------------------------------------------------------------------------


async def test_pool_status(pg_server: PgServer, golden: GoldenFiles) -> None:
    async with gateway_over(pg_server) as http:
        golden.check("pool_status", expect(await http.get("/api/pool/status"), 200))
        golden.check("pool_status", expect(await http.get("/noetl/pool/status"), 200))


async def test_pool_status_without_an_execution_service(golden: GoldenFiles) -> None:
    async with gateway_before(NOWHERE) as http:
        golden.check("pool_status_unavailable", expect(await http.get("/api/pool/status"), 200))


async def test_pool_status_of_the_mesh(gateway: httpx.AsyncClient) -> None:
    """The execution service's own pool: a live one, so only its invariants are checked."""
    body = (await gateway.get("/api/pool/status")).json()
    assert list(body) == [
        "pool_min",
        "pool_max",
        "pool_size",
        "pool_available",
        "requests_waiting",
        "utilization",
        "slots_available",
        "status",
    ]
    assert (body["pool_min"], body["pool_max"], body["status"]) == (1, 20, "ok")
    in_use = body["pool_size"] - body["pool_available"]
    assert body["slots_available"] == 20 - in_use
    assert body["utilization"] == round(in_use / 20, 2)


# --- §11.2, §11.3 ---------------------------------------------------------------------------------


async def test_db_init_and_validate_with_every_table(pg_server: PgServer, golden: GoldenFiles) -> None:
    async with gateway_over(pg_server) as http:
        # The CLI sends no body and no content type (cli-wire.md §1).
        golden.check("db_init", expect(await http.post("/api/db/init"), 200))
        golden.check("db_validate", expect(await http.get("/api/db/validate"), 200))


async def test_db_init_and_validate_with_missing_tables(pg_server: PgServer, golden: GoldenFiles) -> None:
    async with gateway_over(pg_server, without=("runtime", "credential")) as http:
        golden.check("db_init_missing_tables", expect(await http.post("/noetl/db/init", content=b"{}"), 200))
        golden.check("db_validate_missing_tables", expect(await http.get("/api/db/validate"), 200))


async def test_db_routes_without_an_execution_service() -> None:
    async with gateway_before(NOWHERE) as http:
        for response in (await http.post("/api/db/init"), await http.get("/api/db/validate")):
            expect(response, 503)
            assert response.headers["retry-after"] == "1"


# --- §11.1 ----------------------------------------------------------------------------------------


async def test_execute_rows(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    # The CLI's body (cli-wire.md §4.12).
    body = {"query": "  SELECT 1 AS x, 'Grüße' AS g, NULL AS n  ", "schema": "noetl"}
    golden.check("postgres_execute_rows", expect(await gateway.post(EXECUTE, json=body), 200))


async def test_execute_with_parameters_and_base64(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    body = {
        "query_base64": base64.b64encode(b"SELECT $1::int + 1 AS n, $2::text AS s").decode(),
        "parameters": [41, "a"],
    }
    golden.check(
        "postgres_execute_parameters", expect(await gateway.post("/noetl/postgres/execute", json=body), 200)
    )


async def test_execute_without_rows(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    body = {"query": "CREATE TEMP TABLE contract_t (x int); INSERT INTO contract_t VALUES (1)"}
    golden.check("postgres_execute_no_rows", expect(await gateway.post(EXECUTE, json=body), 200))


async def test_execute_sql_error(gateway: httpx.AsyncClient, golden: GoldenFiles) -> None:
    response = await gateway.post(EXECUTE, json={"query": "SELECT * FROM no_such_table"})
    golden.check("postgres_execute_sql_error", expect(response, 200))


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("postgres_execute_missing_query", {"schema": "noetl"}, 400),
        ("postgres_execute_blank_query", {"query": "  ", "procedure": ""}, 400),
        ("postgres_execute_bad_base64", {"query_base64": "%%%"}, 400),
        ("postgres_execute_bad_procedure", {"procedure": "p(1); DROP TABLE x"}, 400),
        ("postgres_execute_query_not_text", {"query": 5, "schema": ["noetl"]}, 422),
        ("postgres_execute_unknown_credential", {"query": "SELECT 1", "credential": "contract_nobody"}, 404),
    ],
)
async def test_execute_errors(
    gateway: httpx.AsyncClient, golden: GoldenFiles, name: str, body: dict[str, object], status: int
) -> None:
    golden.check(name, expect(await gateway.post(EXECUTE, json=body), status))
