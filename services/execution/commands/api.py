"""CommandService: a worker looks up and claims the commands it was notified of."""

from __future__ import annotations

import grpc
from noetl.v1 import common_pb2, execution_pb2, execution_pb2_grpc

from kernel import jsonutil
from kernel.errors import InvalidArgument, PermissionDenied
from kernel.mesh_guard import worker_refusal
from kernel.wire import optional
from services.execution.commands.claims import Claims
from services.execution.commands.store import CommandRow


def command_message(row: CommandRow) -> common_pb2.Command:
    message = common_pb2.Command(
        event_id=row.event_id,
        execution_id=row.execution_id,
        command_id=row.command_id,
        catalog_id=row.catalog_id,
        step=row.step,
        tool_kind=row.tool_kind,
        context_json=(row.context or "").encode(),
        meta_json=(row.meta or "").encode(),
        status=row.status.value,
        attempt=row.attempt,
    )
    if row.worker_id:
        message.worker_id = row.worker_id
    return message


class CommandApi(execution_pb2_grpc.CommandServiceServicer):
    def __init__(self, claims: Claims) -> None:
        self._claims = claims

    async def GetCommand(
        self, request: execution_pb2.GetCommandRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.GetCommandResponse:
        execution_id = optional(request, "execution_id")
        row = await self._claims.find(request.event_id, execution_id)
        return execution_pb2.GetCommandResponse(command=command_message(row))

    async def Claim(
        self, request: execution_pb2.ClaimRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ClaimResponse:
        worker_id = request.worker_id.strip()
        if not worker_id:
            raise InvalidArgument("worker_id is required")
        if worker_refusal("CommandService/Claim", worker_id) is not None:
            # A worker claims only for itself: its claims are what binds its secrets (Resolve).
            raise PermissionDenied(f"these mesh credentials may not claim as worker {worker_id!r}")
        execution_id = optional(request, "execution_id")
        claimed = await self._claims.claim(
            request.event_id,
            execution_id,
            worker_id,
            jsonutil.loads(request.locality_json),
            start=request.start,
            command_id=optional(request, "command_id"),
        )
        return execution_pb2.ClaimResponse(
            command=command_message(claimed.command), claim_event_id=claimed.claim_event_id
        )
