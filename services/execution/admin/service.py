"""Database utilities of an execution shard's database (http-api.md §2.3, §11; docs/sharding.md).

The execution service serves them because it owns its shard's connection pool: its telemetry, a
check of the required tables (never DDL: the schema is the migration's job), and ad-hoc SQL.
Ad-hoc SQL runs on a connection of its own, opened per request and closed after it, so nothing
a statement does to its session (`SET`, an open transaction, temp tables) reaches the pool; each
statement is bounded by `statement_timeout`, and the whole request by a client-side deadline.
Without a credential or connection string it runs as the configured least-privilege login
(`NOETL_POSTGRES_EXECUTE_DSN`), and refuses to run as a superuser (docs/security.md).
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from kernel.db import Pool, connection_errors
from kernel.errors import FailedPrecondition, InvalidArgument, NotFound
from language.sql import PgTarget, connect, credential_target, split_statements
from services.execution.admin import store as admin_store

# http-api.md §11.2, in its order.
REQUIRED_TABLES = ("catalog", "credential", "event", "command", "execution", "keychain", "runtime")

NOT_CONFIGURED = (
    "postgres/execute without a credential or connection_string needs NOETL_POSTGRES_EXECUTE_DSN: "
    "a least-privilege login (docs/security.md)"
)
SUPERUSER_REFUSED = (
    "NOETL_POSTGRES_EXECUTE_DSN logs in as a superuser; postgres/execute refuses to run as one"
)

# What must stay of the caller's gRPC deadline for the answer to reach it.
_ANSWER_MARGIN_SECONDS = 2.0
_MIN_BOUND_SECONDS = 1.0
# The client-side deadline is later than `statement_timeout`, whose message is the clearer one.
_CLIENT_MARGIN_SECONDS = 1.0

_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
# A procedure name, optionally qualified (`proc`, `noetl.proc`, `"My Proc"`).
_PROCEDURE = re.compile(rf"{_PART}(?:\.{_PART}){{0,2}}")


class CredentialSource(Protocol):
    async def data(self, name: str) -> Any:
        """The decrypted data of a stored credential.

        Raises:
            NotFound: no credential has that name.
        """
        ...


@dataclass(frozen=True, slots=True)
class PoolStats:
    pool_min: int
    pool_max: int
    pool_size: int
    pool_available: int
    requests_waiting: int
    utilization: float
    slots_available: int
    status: str


@dataclass(frozen=True, slots=True)
class SchemaReport:
    # Both in the order of REQUIRED_TABLES.
    tables: list[str]
    missing: list[str]
    # Every table of schema `noetl` but partitions, sorted.
    all_tables: list[str]


@dataclass(frozen=True, slots=True)
class SqlRequest:
    """`POST /api/postgres/execute` (http-api.md §11.1); `parameters` is the JSON value, None = none."""

    query: str | None = None
    query_base64: str | None = None
    procedure: str | None = None
    parameters: Any = None
    schema: str | None = None
    database: str | None = None
    credential: str | None = None
    connection_string: str | None = None


@dataclass(frozen=True, slots=True)
class SqlOutcome:
    """Rows as objects (None: the statement returns no rows), or the database's error message."""

    result: list[dict[str, Any]] | None
    error: str | None = None


class Admin:
    def __init__(
        self, pool: Pool, dsn: str | None, credentials: CredentialSource, timeout_seconds: float
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._credentials = credentials
        self._timeout = timeout_seconds

    def pool_status(self) -> PoolStats:
        size = self._pool.get_size()
        idle = self._pool.get_idle_size()
        maximum = self._pool.get_max_size()
        in_use = size - idle
        return PoolStats(
            pool_min=self._pool.get_min_size(),
            pool_max=maximum,
            pool_size=size,
            pool_available=idle,
            requests_waiting=self._pool.waiting,
            utilization=round(in_use / maximum, 2),
            slots_available=maximum - in_use,
            status="ok",
        )

    async def check_schema(self) -> SchemaReport:
        """Raises Unavailable when the database cannot be reached."""
        async with connection_errors("schema check"), self._pool.acquire() as conn:
            found = set(await admin_store.noetl_tables(conn))
        return SchemaReport(
            tables=[t for t in REQUIRED_TABLES if t in found],
            missing=[t for t in REQUIRED_TABLES if t not in found],
            all_tables=sorted(found),
        )

    async def execute(self, request: SqlRequest, *, time_left: float | None) -> SqlOutcome:
        """Runs the request's SQL; what the database refuses is an outcome, not an exception.

        `time_left` is the caller's deadline: the statements are bounded so that the answer
        still reaches it.

        Raises:
            InvalidArgument: no query and no procedure, undecodable `query_base64`, a procedure
                that is not a name, a credential whose port is not a number.
            NotFound: the credential does not exist.
            FailedPrecondition: no least-privilege login is configured for the default target, or
                the configured one is a superuser.
        """
        parameters = positional(request.parameters)
        statements = _statements(request, len(parameters))
        if not statements:  # only comments
            return SqlOutcome(None)
        target = await self._target(request)
        bound = self._timeout
        if time_left is not None:
            bound = max(_MIN_BOUND_SECONDS, min(bound, time_left - _ANSWER_MARGIN_SECONDS))
        settings = {"statement_timeout": str(int(bound * 1000))}
        if request.schema:
            settings["search_path"] = request.schema
        try:
            async with asyncio.timeout(bound + _CLIENT_MARGIN_SECONDS):
                connection = await connect(target, settings)
                try:
                    if target.dsn == self._dsn and await admin_store.is_superuser(connection):
                        raise FailedPrecondition(SUPERUSER_REFUSED)
                    rows = await admin_store.run_statements(connection, statements, parameters)
                finally:
                    await admin_store.close(connection)
        except TimeoutError:
            return SqlOutcome(None, f"timeout: no answer from the database within {bound:g}s")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError) as exc:
            # Connection failures too: the target is the caller's choice, not a dependency of ours.
            return SqlOutcome(None, str(exc) or type(exc).__name__)
        return SqlOutcome(rows)

    async def _target(self, request: SqlRequest) -> PgTarget:
        """`connection_string` > `credential` > `database` > the service's own database."""
        if request.connection_string:
            return PgTarget(request.connection_string)
        if request.credential:
            return await self._credential_target(request.credential)
        if self._dsn is None:
            raise FailedPrecondition(NOT_CONFIGURED)
        if request.database:
            # Keyword arguments win over the DSN's parts: same server and login, other database.
            return PgTarget(self._dsn, {"database": request.database})
        return PgTarget(self._dsn)

    async def _credential_target(self, name: str) -> PgTarget:
        try:
            data = await self._credentials.data(name)
        except NotFound:
            raise NotFound(f"credential '{name}' not found") from None
        try:
            # The wallet stores only objects as credential data.
            return credential_target(data)
        except ValueError as exc:
            raise InvalidArgument(f"credential '{name}': {exc}") from None


def positional(parameters: Any) -> list[Any]:
    """`$1..$n` values: an array as it is, an object's values in key order, a scalar alone."""
    if parameters is None:
        return []
    if isinstance(parameters, list):
        return parameters
    if isinstance(parameters, dict):
        return list(parameters.values())
    return [parameters]


def _statements(request: SqlRequest, parameter_count: int) -> list[str]:
    """Raises InvalidArgument: nothing to run, or a field that cannot be read."""
    query = (request.query or "").strip()
    if not query and request.query_base64:
        query = _decoded(request.query_base64).strip()
    if query:
        return split_statements(query)
    procedure = (request.procedure or "").strip()
    if procedure:
        if not _PROCEDURE.fullmatch(procedure):
            raise InvalidArgument(f"procedure must be a procedure name, got {procedure!r}")
        placeholders = ", ".join(f"${i}" for i in range(1, parameter_count + 1))
        return [f"CALL {procedure}({placeholders})"]
    raise InvalidArgument("query or procedure is required")


def _decoded(text: str) -> str:
    try:
        return base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    # binascii.Error and UnicodeDecodeError are ValueErrors, and so is a non-ASCII `text`.
    except ValueError:
        raise InvalidArgument("query_base64 is not base64 of UTF-8 text") from None
