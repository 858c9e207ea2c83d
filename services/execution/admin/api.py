"""AdminService: its shard database's pool telemetry, schema check and ad-hoc SQL."""

from __future__ import annotations

import json

import grpc
from noetl.v1 import admin_pb2, admin_pb2_grpc

from kernel.wire import json_field, optional
from services.execution.admin.service import Admin, SqlRequest


class AdminApi(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, admin: Admin) -> None:
        self._admin = admin

    async def PoolStatus(
        self, request: admin_pb2.PoolStatusRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.PoolStatusResponse:
        stats = self._admin.pool_status()
        return admin_pb2.PoolStatusResponse(
            pool_min=stats.pool_min,
            pool_max=stats.pool_max,
            pool_size=stats.pool_size,
            pool_available=stats.pool_available,
            requests_waiting=stats.requests_waiting,
            utilization=stats.utilization,
            slots_available=stats.slots_available,
            status=stats.status,
        )

    async def CheckSchema(
        self, request: admin_pb2.CheckSchemaRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.CheckSchemaResponse:
        report = await self._admin.check_schema()
        return admin_pb2.CheckSchemaResponse(
            tables=report.tables,
            missing=report.missing,
            all_tables=report.all_tables,
        )

    async def ExecuteSql(
        self, request: admin_pb2.ExecuteSqlRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ExecuteSqlResponse:
        # The standard library's JSON both ways: rows may hold integers beyond 64 bits (numeric),
        # which orjson can neither write nor read back exactly.
        parameters = json_field(request.parameters_json, "parameters_json", json.loads)
        sql = SqlRequest(
            query=optional(request, "query"),
            query_base64=optional(request, "query_base64"),
            procedure=optional(request, "procedure"),
            parameters=parameters,
            schema=optional(request, "schema"),
            database=optional(request, "database"),
            credential=optional(request, "credential"),
            connection_string=optional(request, "connection_string"),
        )
        outcome = await self._admin.execute(sql, time_left=context.time_remaining())
        response = admin_pb2.ExecuteSqlResponse(
            result_json=json.dumps(outcome.result, ensure_ascii=False, allow_nan=False).encode()
        )
        if outcome.error is not None:
            response.error = outcome.error
        return response
