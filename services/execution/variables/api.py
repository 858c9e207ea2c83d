"""VarsService: execution-scoped variables."""

from __future__ import annotations

import grpc
from noetl.v1 import vars_pb2, vars_pb2_grpc

from kernel.wire import optional, timestamp
from services.execution.variables.service import Variables
from services.execution.variables.store import VariableRow


def _variable_message(row: VariableRow) -> vars_pb2.ExecutionVariable:
    message = vars_pb2.ExecutionVariable(
        name=row.name,
        value_json=row.value.encode(),
        var_type=row.var_type,
        created_at=timestamp(row.created_at),
        accessed_at=timestamp(row.accessed_at),
        access_count=row.access_count,
    )
    if row.source_step is not None:
        message.source_step = row.source_step
    return message


class VarsApi(vars_pb2_grpc.VarsServiceServicer):
    def __init__(self, variables: Variables) -> None:
        self._variables = variables

    async def SetVariables(
        self, request: vars_pb2.SetVariablesRequest, context: grpc.aio.ServicerContext
    ) -> vars_pb2.SetVariablesResponse:
        names = await self._variables.set(
            request.execution_id,
            [(item.name, item.value_json) for item in request.variables],
            request.var_type,
            optional(request, "source_step"),
        )
        return vars_pb2.SetVariablesResponse(variables_set=len(names), var_names=names)

    async def ListVariables(
        self, request: vars_pb2.ListVariablesRequest, context: grpc.aio.ServicerContext
    ) -> vars_pb2.ListVariablesResponse:
        rows = await self._variables.all(request.execution_id)
        return vars_pb2.ListVariablesResponse(variables=[_variable_message(row) for row in rows])

    async def GetVariable(
        self, request: vars_pb2.GetVariableRequest, context: grpc.aio.ServicerContext
    ) -> vars_pb2.GetVariableResponse:
        row = await self._variables.read(request.execution_id, request.name)
        return vars_pb2.GetVariableResponse(variable=_variable_message(row))

    async def DeleteVariable(
        self, request: vars_pb2.DeleteVariableRequest, context: grpc.aio.ServicerContext
    ) -> vars_pb2.DeleteVariableResponse:
        deleted = await self._variables.delete(request.execution_id, request.name)
        return vars_pb2.DeleteVariableResponse(deleted=deleted)

    async def DeleteVariables(
        self, request: vars_pb2.DeleteVariablesRequest, context: grpc.aio.ServicerContext
    ) -> vars_pb2.DeleteVariablesResponse:
        count = await self._variables.delete_all(request.execution_id)
        return vars_pb2.DeleteVariablesResponse(deleted_count=count)
