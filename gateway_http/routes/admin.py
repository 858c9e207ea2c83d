"""Pool status and database utilities → AdminService (http-api.md §2.3, §11; cli-wire.md §4.12, §4.13).

Every execution shard has its own database and pool (docs/sharding.md): the pool status is every
shard's summed, and ad-hoc SQL runs on the shard the request names (`shard`, needed when there is
more than one and the SQL runs on the mesh's own databases). The schema checks ask shard 0, whose
database has the same migration as every other.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from noetl.v1 import admin_pb2, admin_pb2_grpc
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.clients import ExecutionShard
from gateway_http.encoding import dumps, json_response
from gateway_http.openapi.build import BACKEND, BODY, Operation, json_body, ok, ref
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import Problems, read_json
from kernel.errors import InvalidArgument, Unavailable
from kernel.grpc_client import Sharded

# §2.3: what `/api/pool/status` answers while no pool can be asked.
UNAVAILABLE_POOL: dict[str, Any] = {
    "pool_min": 0,
    "pool_max": 0,
    "pool_size": 0,
    "pool_available": 0,
    "requests_waiting": 0,
    "utilization": 0.0,
    "slots_available": 0,
    "status": "unavailable",
}
_TEXT_FIELDS = ("query", "query_base64", "procedure", "schema", "database", "credential", "connection_string")
# `shard` absent from a postgres/execute body.
_NO_SHARD = -1


class AdminRoutes:
    def __init__(self, execution: Sharded[ExecutionShard], rpc_timeout: float) -> None:
        self._admins = [shard.admin for shard in execution.all()]
        self._admin = self._admins[0]
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "/pool/status",
                self.pool_status,
                ("GET",),
                Operation(
                    "pool_status",
                    "health",
                    "Database pool telemetry of the service that owns the pool",
                    ok(
                        "Pool telemetry; all zeros and `unavailable` before the pool exists",
                        ref("PoolStatus"),
                    ),
                    BACKEND,
                ),
            ),
            Endpoint(
                "/postgres/execute",
                self.execute,
                ("POST",),
                Operation(
                    "postgres_execute",
                    "database",
                    "Run SQL (or CALL a procedure); rows come back as objects",
                    ok("Rows, null without rows, or the error", ref("SqlResult")),
                    (*BODY, "404", *BACKEND),
                    description=(
                        "Neither `query` (or `query_base64`) nor `procedure`: 400 `query or procedure is"
                        " required`; an unknown `credential`: 404. SQL errors are a 200 with `status: error`."
                        " Connection priority: `connection_string` > `credential` > `database` > the default."
                        " On more than one shard, SQL without `shard`, `credential` or `connection_string`: 400."
                    ),
                    body=json_body(ref("SqlRequest")),
                ),
            ),
            Endpoint(
                "/db/init",
                self.db_init,
                ("POST",),
                Operation(
                    "db_init",
                    "database",
                    "Verify the schema (never runs DDL)",
                    ok("ok, or warning with the missing tables", ref("SchemaInit")),
                    ("500", *BACKEND),
                ),
            ),
            Endpoint(
                "/db/validate",
                self.db_validate,
                ("GET",),
                Operation(
                    "db_validate",
                    "database",
                    "Check the required tables (still 200 when some are missing)",
                    ok("The check", ref("SchemaValidation")),
                    ("500", *BACKEND),
                ),
            ),
        ]

    async def pool_status(self, request: Request) -> Response:
        """§2.3, every shard's pool summed; while any shard cannot be asked the whole answer is the
        "unavailable" body, still 200 (a partial sum would look like a smaller healthy pool)."""
        answers = await asyncio.gather(*(self._pool_of(admin) for admin in self._admins))
        if any(stats is None for stats in answers):
            return json_response(UNAVAILABLE_POOL)
        shards = [stats for stats in answers if stats is not None]
        pool_max = sum(stats.pool_max for stats in shards)
        size = sum(stats.pool_size for stats in shards)
        available = sum(stats.pool_available for stats in shards)
        in_use = size - available
        return json_response(
            {
                "pool_min": sum(stats.pool_min for stats in shards),
                "pool_max": pool_max,
                "pool_size": size,
                "pool_available": available,
                "requests_waiting": sum(stats.requests_waiting for stats in shards),
                # The shards' own formula (services/execution/admin), over the summed pool.
                "utilization": round(in_use / pool_max, 2) if pool_max else 0.0,
                "slots_available": pool_max - in_use,
                "status": next((stats.status for stats in shards if stats.status != "ok"), "ok"),
            }
        )

    async def _pool_of(self, admin: admin_pb2_grpc.AdminServiceStub) -> admin_pb2.PoolStatusResponse | None:
        """One shard's pool; None when its execution service cannot be reached."""
        try:
            stats: admin_pb2.PoolStatusResponse = await admin.PoolStatus(
                admin_pb2.PoolStatusRequest(), timeout=self._timeout
            )
        except Unavailable:
            return None
        return stats

    async def execute(self, request: Request) -> Response:
        """§11.1: SQL errors are a 200 with `status:"error"`; no query and no procedure is 400.

        `shard` (0..N-1) picks the shard whose database the SQL runs on; on more than one shard
        SQL on the mesh's own databases (no `credential`, no `connection_string`) must name it.
        """
        problems = Problems()
        body = await read_json(request)
        fields = problems.body(body)
        texts = {name: fields.text(name) for name in _TEXT_FIELDS}
        shard = fields.number("shard", _NO_SHARD, minimum=0, maximum=len(self._admins) - 1)
        problems.check()
        message = admin_pb2.ExecuteSqlRequest()
        set_present(message, **texts)
        if body.get("parameters") is not None:
            message.parameters_json = dumps(body["parameters"])
        admin = self._admins[self._shard_for_sql(shard, texts)]
        answer = await admin.ExecuteSql(message, timeout=self._timeout)
        if answer.HasField("error"):
            return json_response({"status": "error", "result": None, "error": answer.error})
        # The standard library's JSON: integers beyond 64 bits must come back exactly.
        return json_response({"status": "ok", "result": json.loads(answer.result_json), "error": None})

    def _shard_for_sql(self, shard: int, texts: dict[str, str | None]) -> int:
        """The named shard; else shard 0 when that is unambiguous: one shard, or a target outside
        the mesh (`credential`, `connection_string`), which any shard reaches alike.

        Raises:
            InvalidArgument: several shard databases and none named (docs/sharding.md).
        """
        if shard != _NO_SHARD:
            return shard
        if len(self._admins) == 1 or texts["credential"] or texts["connection_string"]:
            return 0
        raise InvalidArgument(
            f"this mesh has {len(self._admins)} shards, each with its own database: name one with "
            f"'shard' (0..{len(self._admins) - 1}); GET /api/runtime/shard-info maps an execution id to its shard"
        )

    async def db_init(self, request: Request) -> Response:
        """§11.2: verifies the schema, never creates it; any body is ignored."""
        report = await self._admin.CheckSchema(admin_pb2.CheckSchemaRequest(), timeout=self._timeout)
        tables = list(report.tables)
        missing = list(report.missing)
        if not missing:
            return json_response({"status": "ok", "message": "Database schema ready", "tables": tables})
        return json_response(
            {
                "status": "warning",
                "message": f"Schema exists but missing tables: {missing!r}",
                "tables": tables,
                "missing": missing,
            }
        )

    async def db_validate(self, request: Request) -> Response:
        """§11.3: `valid:false` (still 200) when a required table is missing."""
        report = await self._admin.CheckSchema(admin_pb2.CheckSchemaRequest(), timeout=self._timeout)
        missing = list(report.missing)
        return json_response(
            {
                "status": "error" if missing else "ok",
                "valid": not missing,
                "tables": list(report.tables),
                "missing": missing,
                "all_tables": list(report.all_tables),
            }
        )
