"""ExecutionService: start, read, drive and end executions."""

from __future__ import annotations

import grpc
from noetl.v1 import execution_pb2, execution_pb2_grpc

from kernel import jsonutil
from kernel.wire import optional, timestamp
from services.execution.messages import json_object
from services.execution.orchestration.batch import start_each
from services.execution.orchestration.cleanup import Cleanup
from services.execution.orchestration.control import Control
from services.execution.orchestration.orchestrator import Orchestrator, StartInput
from services.execution.orchestration.queries import Queries, Summary


def _start_input(request: execution_pb2.StartRequest) -> StartInput:
    return StartInput(
        path=optional(request, "path"),
        catalog_id=optional(request, "catalog_id"),
        version=optional(request, "version"),
        resource_kind=optional(request, "resource_kind"),
        workload=json_object(request.workload_json, "workload_json") or {},
        parent_execution_id=optional(request, "parent_execution_id"),
        trace=json_object(request.trace_json, "trace_json"),
        execution_pool=optional(request, "execution_pool"),
    )


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
        *,
        cleanup: Cleanup,
    ) -> None:
        self._orchestrator = orchestrator
        self._queries = queries
        self._control = control
        self._cleanup = cleanup

    async def Start(
        self, request: execution_pb2.StartRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.StartResponse:
        execution_id, issued = await self._orchestrator.start(_start_input(request))
        return execution_pb2.StartResponse(execution_id=execution_id, commands_generated=issued)

    async def StartBatch(
        self, request: execution_pb2.StartBatchRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.StartBatchResponse:
        outcomes = await start_each(self._orchestrator, [_start_input(item) for item in request.items])
        results = []
        for outcome in outcomes:
            result = execution_pb2.StartBatchResult(commands_generated=outcome.commands_generated)
            if outcome.execution_id is not None:
                result.execution_id = outcome.execution_id
            if outcome.error is not None:
                result.error = outcome.error
            results.append(result)
        return execution_pb2.StartBatchResponse(results=results)

    async def Cleanup(
        self, request: execution_pb2.CleanupRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.CleanupResponse:
        found = await self._cleanup.run(request.older_than_minutes, request.dry_run)
        return execution_pb2.CleanupResponse(execution_ids=found)

    async def Get(
        self, request: execution_pb2.GetRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.GetResponse:
        seen = request.seen_event_id if request.HasField("seen_event_id") else None
        summary = await self._queries.summary(request.execution_id, seen_event_id=seen)
        return execution_pb2.GetResponse(summary=_summary(summary))

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

    async def Cancel(
        self, request: execution_pb2.CancelRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.CancelResponse:
        reason = request.reason or "User requested cancellation"
        if request.HasField("cascade_from"):
            outcome = await self._control.cancel_member(request.execution_id, reason, request.cascade_from)
        else:
            outcome = await self._control.cancel(request.execution_id, reason, request.cascade)
        return execution_pb2.CancelResponse(
            status=outcome.status, cancelled_executions=outcome.cancelled, message=outcome.message
        )

    async def Children(
        self, request: execution_pb2.ChildrenRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ChildrenResponse:
        found = await self._control.own_children(list(request.parent_execution_ids))
        return execution_pb2.ChildrenResponse(
            children=[execution_pb2.ChildExecution(execution_id=i, running=alive) for i, alive in found]
        )

    async def CancellationCheck(
        self, request: execution_pb2.CancellationCheckRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.CancellationCheckResponse:
        view = await self._control.cancellation_check(
            request.execution_id, from_projection=request.from_projection
        )
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
            json_object(request.workload_json, "workload_json") or {},
            optional(request, "resource_kind"),
        )
        return execution_pb2.RerunResponse(execution_id=execution_id, commands_generated=issued)
