"""`/api/postgres/execute` never runs as the superuser (docs/security.md).

Without a credential or connection string it runs as the least-privilege role `noetl-mesh up`
makes (`noetl_mesh/query_role.py`): it reads the `noetl` schema but not the sealed secret tables
and cannot change anything; a superuser login or none at all is refused before any SQL runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kernel import db
from kernel.errors import FailedPrecondition
from kernel.migrate import migrate
from noetl_mesh.query_role import make_query_role
from services.execution.admin.service import Admin, SqlRequest
from tests.helpers.infra import PgServer

TIMEOUT_SECONDS = 5.0


class NoCredentials:
    async def data(self, name: str) -> object:
        raise AssertionError("no credential is read in these tests")


@pytest.fixture(scope="module")
async def pool(module_dsn: str) -> AsyncIterator[db.Pool]:
    await migrate(module_dsn)
    made = await db.create_pool(module_dsn, max_size=2)
    yield made
    await made.close()


async def run(admin: Admin, query: str) -> tuple[object, str | None]:
    outcome = await admin.execute(SqlRequest(query=query), time_left=None)
    return outcome.result, outcome.error


async def test_the_role_reads_the_control_plane_but_not_secrets(module_dsn: str, pool: db.Pool) -> None:
    admin = Admin(pool, await make_query_role(module_dsn), NoCredentials(), TIMEOUT_SECONDS)
    assert await run(admin, "SELECT current_setting('is_superuser') AS s") == ([{"s": "off"}], None)
    assert (await run(admin, "SELECT count(*) AS n FROM noetl.event"))[1] is None
    for table in ("credential", "keychain", "secret_audit"):
        _, error = await run(admin, f"SELECT * FROM noetl.{table}")
        assert error == f"permission denied for table {table}"
    _, error = await run(admin, "DELETE FROM noetl.event")
    assert error == "permission denied for table event"
    _, error = await run(admin, "CREATE TABLE noetl.mine (x int)")
    assert error == "permission denied for schema noetl"


async def test_making_the_role_again_keeps_it_working(module_dsn: str, pool: db.Pool) -> None:
    await make_query_role(module_dsn)
    admin = Admin(pool, await make_query_role(module_dsn), NoCredentials(), TIMEOUT_SECONDS)
    assert await run(admin, "SELECT 1 AS x") == ([{"x": 1}], None)


async def test_a_superuser_login_or_none_is_refused(
    pg_server: PgServer, module_dsn: str, pool: db.Pool
) -> None:
    with pytest.raises(FailedPrecondition, match="refuses to run as one"):
        await run(Admin(pool, module_dsn, NoCredentials(), TIMEOUT_SECONDS), "SELECT 1")
    with pytest.raises(FailedPrecondition, match="needs NOETL_POSTGRES_EXECUTE_DSN"):
        await run(Admin(pool, None, NoCredentials(), TIMEOUT_SECONDS), "SELECT 1")
