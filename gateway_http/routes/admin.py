"""Pool status and database utilities → AdminService (http-api.md §2.3, §11; cli-wire.md §4.12, §4.13).

The main database is one for the whole mesh, so every call goes to the execution service of
shard 0, whose pool is the one reported.
"""

from __future__ import annotations

import json
from typing import Any

from noetl.v1 import admin_pb2
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.clients import ExecutionShard
from gateway_http.encoding import dumps, json_response
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import Problems, read_json
from kernel.errors import Unavailable
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


class AdminRoutes:
    def __init__(self, execution: Sharded[ExecutionShard], rpc_timeout: float) -> None:
        self._admin = execution.all()[0].admin
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("/pool/status", self.pool_status, ("GET",)),
            Endpoint("/postgres/execute", self.execute, ("POST",)),
            Endpoint("/db/init", self.db_init, ("POST",)),
            Endpoint("/db/validate", self.db_validate, ("GET",)),
        ]

    async def pool_status(self, request: Request) -> Response:
        """§2.3; an unreachable execution service answers the "unavailable" body, still 200."""
        try:
            stats = await self._admin.PoolStatus(admin_pb2.PoolStatusRequest(), timeout=self._timeout)
        except Unavailable:
            return json_response(UNAVAILABLE_POOL)
        return json_response(
            {
                "pool_min": stats.pool_min,
                "pool_max": stats.pool_max,
                "pool_size": stats.pool_size,
                "pool_available": stats.pool_available,
                "requests_waiting": stats.requests_waiting,
                "utilization": stats.utilization,
                "slots_available": stats.slots_available,
                "status": stats.status,
            }
        )

    async def execute(self, request: Request) -> Response:
        """§11.1: SQL errors are a 200 with `status:"error"`; no query and no procedure is 400."""
        problems = Problems()
        body = await read_json(request)
        fields = problems.body(body)
        texts = {name: fields.text(name) for name in _TEXT_FIELDS}
        problems.check()
        message = admin_pb2.ExecuteSqlRequest()
        set_present(message, **texts)
        if body.get("parameters") is not None:
            message.parameters_json = dumps(body["parameters"])
        answer = await self._admin.ExecuteSql(message, timeout=self._timeout)
        if answer.HasField("error"):
            return json_response({"status": "error", "result": None, "error": answer.error})
        # The standard library's JSON: integers beyond 64 bits must come back exactly.
        return json_response({"status": "ok", "result": json.loads(answer.result_json), "error": None})

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
