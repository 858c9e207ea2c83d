"""ExecutionService and CommandService servicers."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from noetl.v1 import common_pb2, execution_pb2, execution_pb2_grpc

from services.common import jsonutil
from services.common.errors import InvalidArgument
from services.common.wire import timestamp
from services.execution.claims import Claims
from services.execution.clients import record_from_message
from services.execution.control import Control
from services.execution.lifecycle import LifecycleEvent, updates_for
from services.execution.orchestrator import Orchestrator, StartInput
from services.execution.ports import Appended
from services.execution.queries import Queries, Summary
from services.execution.store import CommandRow, ExecutionStore


def _json_object(raw: bytes, field: str) -> dict[str, Any] | None:
    try:
        value = jsonutil.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from exc
    if value is not None and not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object")
    return value


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
        status=row.status,
        attempt=row.attempt,
    )
    if row.worker_id:
        message.worker_id = row.worker_id
    return message


def _summary(summary: Summary) -> execution_pb2.ExecutionSummary:
    message = execution_pb2.ExecutionSummary(
        execution_id=summary.execution_id,
        catalog_id=summary.catalog_id,
        path=summary.path,
        version=summary.version,
        status=summary.status,
        start_time=timestamp(summary.start_time),
    )
    if summary.end_time is not None:
        message.end_time.CopyFrom(timestamp(summary.end_time))
    if summary.error is not None:
        message.error = summary.error
    if summary.parent_execution_id is not None:
        message.parent_execution_id = summary.parent_execution_id
    return message


class ExecutionApi(execution_pb2_grpc.ExecutionServiceServicer):
    def __init__(
        self,
        orchestrator: Orchestrator,
        queries: Queries,
        control: Control,
        store: ExecutionStore,
        lease: float,
    ) -> None:
        self._orchestrator = orchestrator
        self._queries = queries
        self._control = control
        self._store = store
        self._lease = float(lease)

    async def Start(
        self, request: execution_pb2.StartRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.StartResponse:
        start = StartInput(
            path=request.path if request.HasField("path") else None,
            catalog_id=request.catalog_id if request.HasField("catalog_id") else None,
            version=request.version if request.HasField("version") else None,
            resource_kind=request.resource_kind if request.HasField("resource_kind") else None,
            workload=_json_object(request.workload_json, "workload_json") or {},
            parent_execution_id=request.parent_execution_id
            if request.HasField("parent_execution_id")
            else None,
            trace=_json_object(request.trace_json, "trace_json"),
            execution_pool=request.execution_pool if request.HasField("execution_pool") else None,
        )
        execution_id, issued = await self._orchestrator.start(start)
        return execution_pb2.StartResponse(execution_id=execution_id, commands_generated=issued)

    async def Get(
        self, request: execution_pb2.GetRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.GetResponse:
        return execution_pb2.GetResponse(summary=_summary(await self._queries.summary(request.execution_id)))

    async def ListExecutions(
        self, request: execution_pb2.ListExecutionsRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ListExecutionsResponse:
        found = await self._queries.recent(max(1, min(request.limit or 100, 10_000)), max(0, request.offset))
        return execution_pb2.ListExecutionsResponse(summaries=[_summary(s) for s in found])

    async def Status(
        self, request: execution_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.StatusResponse:
        view = await self._queries.status(request.execution_id)
        message = execution_pb2.StatusResponse(
            execution_id=view.execution_id,
            completed_steps=view.completed_steps,
            failed=view.failed,
            completed=view.completed,
            completion_inferred=view.completion_inferred,
            variables_json=jsonutil.dumps(view.variables),
            start_time=timestamp(view.start_time),
        )
        if view.current_step is not None:
            message.current_step = view.current_step
        if view.end_time is not None:
            message.end_time.CopyFrom(timestamp(view.end_time))
        if view.error is not None:
            message.error = view.error
        return message

    async def Advance(
        self, request: execution_pb2.AdvanceRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.AdvanceResponse:
        events = [
            LifecycleEvent(
                event_id=e.event_id,
                event_type=e.event_type,
                command_id=e.command_id if e.HasField("command_id") else None,
                worker_id=e.worker_id if e.HasField("worker_id") else None,
                error=e.error if e.HasField("error") else None,
            )
            for e in request.events
        ]
        first = request.events[0] if request.events else None
        committed = Appended(
            event_ids=[e.event_id for e in request.events],
            stored=[record_from_message(e) for e in request.events],
            linked_to=first.prev_event_id if first is not None and first.HasField("prev_event_id") else None,
        )
        # The command rows' projection and the pass do not depend on each other: the pass folds
        # the events themselves, and a new command's claim reads only its own row. Side by side,
        # the projection's round trip is off the path from a completion to the next command.
        _, issued = await asyncio.gather(
            self._store.apply_lifecycle(request.execution_id, updates_for(events), self._lease),
            self._orchestrator.advance(
                request.execution_id, [e.event_type for e in request.events], committed
            ),
        )
        return execution_pb2.AdvanceResponse(commands_generated=issued)

    async def Cancel(
        self, request: execution_pb2.CancelRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.CancelResponse:
        outcome = await self._control.cancel(
            request.execution_id, request.reason or "User requested cancellation", request.cascade
        )
        return execution_pb2.CancelResponse(
            status=outcome.status, cancelled_executions=outcome.cancelled, message=outcome.message
        )

    async def CancellationCheck(
        self, request: execution_pb2.CancellationCheckRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.CancellationCheckResponse:
        view = await self._control.cancellation_check(request.execution_id)
        return execution_pb2.CancellationCheckResponse(
            status=view.status,
            event_type=view.event_type,
            cancelled=view.cancelled,
            completed=view.completed,
            failed=view.failed,
        )

    async def Finalize(
        self, request: execution_pb2.FinalizeRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.FinalizeResponse:
        outcome = await self._control.finalize(
            request.execution_id, request.reason or "Abandoned or timed out"
        )
        return execution_pb2.FinalizeResponse(status=outcome.status, message=outcome.message)

    async def Rerun(
        self, request: execution_pb2.RerunRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.RerunResponse:
        execution_id, issued = await self._control.rerun(
            request.execution_id,
            _json_object(request.workload_json, "workload_json") or {},
            request.resource_kind if request.HasField("resource_kind") else None,
        )
        return execution_pb2.RerunResponse(execution_id=execution_id, commands_generated=issued)


class CommandApi(execution_pb2_grpc.CommandServiceServicer):
    def __init__(self, claims: Claims) -> None:
        self._claims = claims

    async def GetCommand(
        self, request: execution_pb2.GetCommandRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.GetCommandResponse:
        execution_id = request.execution_id if request.HasField("execution_id") else None
        row = await self._claims.find(request.event_id, execution_id)
        return execution_pb2.GetCommandResponse(command=command_message(row))

    async def Claim(
        self, request: execution_pb2.ClaimRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ClaimResponse:
        if not request.worker_id.strip():
            raise InvalidArgument("worker_id is required")
        execution_id = request.execution_id if request.HasField("execution_id") else None
        claimed = await self._claims.claim(
            request.event_id,
            execution_id,
            request.worker_id.strip(),
            jsonutil.loads(request.locality_json),
            start=request.start,
        )
        return execution_pb2.ClaimResponse(
            command=command_message(claimed.command), claim_event_id=claimed.claim_event_id
        )
