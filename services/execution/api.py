"""ExecutionService, CommandService, PoolService, VarsService, ResultService and AdminService servicers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
from noetl.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    execution_pb2,
    execution_pb2_grpc,
    pools_pb2,
    pools_pb2_grpc,
    results_pb2,
    results_pb2_grpc,
    vars_pb2,
    vars_pb2_grpc,
)

from services.common import jsonutil
from services.common.errors import InvalidArgument
from services.common.result_refs import parse_ref
from services.common.wire import timestamp
from services.execution.admin import Admin, SqlRequest
from services.execution.batch import start_each
from services.execution.claims import Claims
from services.execution.cleanup import Cleanup
from services.execution.clients import record_from_message
from services.execution.control import Control
from services.execution.lifecycle import LifecycleEvent, LifecycleWriter, updates_for
from services.execution.orchestrator import TRIGGERS, Orchestrator, StartInput
from services.execution.pools import Pools, Registration
from services.execution.ports import Appended
from services.execution.queries import Queries, Summary
from services.execution.results import PutInput, Results
from services.execution.store import CommandRow, RuntimeRow, VariableRow
from services.execution.variables import Variables


def _json_object(raw: bytes, field: str) -> dict[str, Any] | None:
    try:
        value = jsonutil.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from exc
    if value is not None and not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object")
    return value


def _start_input(request: execution_pb2.StartRequest) -> StartInput:
    return StartInput(
        path=request.path if request.HasField("path") else None,
        catalog_id=request.catalog_id if request.HasField("catalog_id") else None,
        version=request.version if request.HasField("version") else None,
        resource_kind=request.resource_kind if request.HasField("resource_kind") else None,
        workload=_json_object(request.workload_json, "workload_json") or {},
        parent_execution_id=request.parent_execution_id if request.HasField("parent_execution_id") else None,
        trace=_json_object(request.trace_json, "trace_json"),
        execution_pool=request.execution_pool if request.HasField("execution_pool") else None,
    )


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
        lifecycle: LifecycleWriter,
        *,
        cleanup: Cleanup,
    ) -> None:
        self._orchestrator = orchestrator
        self._queries = queries
        self._control = control
        self._cleanup = cleanup
        self._lifecycle = lifecycle

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
        updates = updates_for(events)
        trigger_types = [e.event_type for e in request.events]
        if not any(kind in TRIGGERS for kind in trigger_types):
            # Heartbeats and starts change command rows only: no pass, nothing to fold.
            await self._lifecycle.apply(request.execution_id, updates)
            return execution_pb2.AdvanceResponse(commands_generated=0)
        first = request.events[0]
        committed = Appended(
            event_ids=[e.event_id for e in request.events],
            stored=[record_from_message(e) for e in request.events],
            linked_to=first.prev_event_id if first.HasField("prev_event_id") else None,
        )
        # The command rows' projection and the pass do not depend on each other: the pass folds
        # the events themselves, and a new command's claim reads only its own row. Side by side,
        # the projection's round trip is off the path from a completion to the next command.
        _, issued = await asyncio.gather(
            self._lifecycle.apply(request.execution_id, updates),
            self._orchestrator.advance(request.execution_id, trigger_types, committed),
        )
        return execution_pb2.AdvanceResponse(commands_generated=issued)

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


def _registration(message: pools_pb2.PoolRegistration) -> Registration:
    return Registration(
        name=message.name,
        kind=message.kind,
        uri=message.uri if message.HasField("uri") else None,
        status=message.status,
        capacity=message.capacity if message.HasField("capacity") else None,
        labels=_json_object(message.labels_json, "labels_json"),
        runtime=_json_object(message.runtime_json, "runtime_json"),
    )


def _runtime_entry(row: RuntimeRow) -> pools_pb2.RuntimeEntry:
    message = pools_pb2.RuntimeEntry(
        runtime_id=row.runtime_id,
        name=row.name,
        kind=row.kind,
        status=row.status,
        labels_json=(row.labels or "").encode(),
        capabilities_json=(row.capabilities or "").encode(),
        runtime_json=(row.runtime or "").encode(),
        heartbeat=timestamp(row.heartbeat),
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
    )
    if row.uri is not None:
        message.uri = row.uri
    if row.capacity is not None:
        message.capacity = row.capacity
    return message


class PoolApi(pools_pb2_grpc.PoolServiceServicer):
    def __init__(self, pools: Pools) -> None:
        self._pools = pools

    async def Register(
        self, request: pools_pb2.PoolServiceRegisterRequest, context: grpc.aio.ServicerContext
    ) -> pools_pb2.PoolServiceRegisterResponse:
        runtime_id = await self._pools.register(_registration(request.registration))
        return pools_pb2.PoolServiceRegisterResponse(runtime_id=runtime_id)

    async def Deregister(
        self, request: pools_pb2.PoolServiceDeregisterRequest, context: grpc.aio.ServicerContext
    ) -> pools_pb2.PoolServiceDeregisterResponse:
        found = await self._pools.deregister(request.kind, request.name)
        return pools_pb2.PoolServiceDeregisterResponse(found=found)

    async def Heartbeat(
        self, request: pools_pb2.PoolServiceHeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pools_pb2.PoolServiceHeartbeatResponse:
        registration = _registration(request.registration) if request.HasField("registration") else None
        beat = await self._pools.heartbeat(request.kind, request.name, registration)
        return pools_pb2.PoolServiceHeartbeatResponse(runtime_id=beat.runtime_id, recreated=beat.recreated)

    async def List(
        self, request: pools_pb2.PoolServiceListRequest, context: grpc.aio.ServicerContext
    ) -> pools_pb2.PoolServiceListResponse:
        rows = await self._pools.entries(
            request.kind,
            request.runtime_type if request.HasField("runtime_type") else None,
            request.status if request.HasField("status") else None,
        )
        return pools_pb2.PoolServiceListResponse(entries=[_runtime_entry(row) for row in rows])


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
            request.source_step if request.HasField("source_step") else None,
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


class ResultApi(results_pb2_grpc.ResultServiceServicer):
    def __init__(self, results: Results) -> None:
        self._results = results

    async def Put(
        self, request: results_pb2.ResultServicePutRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ResultServicePutResponse:
        try:
            data = jsonutil.loads(request.data_json)
        except ValueError as exc:
            raise InvalidArgument(f"data_json is not valid JSON: {exc}") from exc
        stored = await self._results.put(
            PutInput(
                execution_id=request.execution_id,
                name=request.name,
                data=data,
                scope=request.scope if request.HasField("scope") else None,
                store=request.store if request.HasField("store") else None,
                ttl=request.ttl if request.HasField("ttl") else None,
                source_step=request.source_step if request.HasField("source_step") else None,
                correlation=_json_object(request.correlation_json, "correlation_json"),
                extracted=_json_object(request.extracted_json, "extracted_json"),
                compress=request.compress,
            )
        )
        message = results_pb2.ResultServicePutResponse(
            ref=stored.ref.uri,
            store=stored.store,
            scope=stored.scope,
            bytes=stored.size,
            sha256=stored.sha256,
            result_id=stored.ref.result_id,
        )
        if stored.expires_at is not None:
            message.expires_at.CopyFrom(timestamp(stored.expires_at))
        return message

    async def Resolve(
        self, request: results_pb2.ResultServiceResolveRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ResultServiceResolveResponse:
        data = await self._results.resolve(parse_ref(request.ref))
        return results_pb2.ResultServiceResolveResponse(data_json=data.encode())


def _optional(request: admin_pb2.ExecuteSqlRequest, name: str) -> str | None:
    return getattr(request, name) if request.HasField(name) else None


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
        try:
            parameters = json.loads(request.parameters_json) if request.parameters_json else None
        except ValueError as exc:
            raise InvalidArgument(f"parameters_json is not valid JSON: {exc}") from exc
        sql = SqlRequest(
            query=_optional(request, "query"),
            query_base64=_optional(request, "query_base64"),
            procedure=_optional(request, "procedure"),
            parameters=parameters,
            schema=_optional(request, "schema"),
            database=_optional(request, "database"),
            credential=_optional(request, "credential"),
            connection_string=_optional(request, "connection_string"),
        )
        outcome = await self._admin.execute(sql, time_left=context.time_remaining())
        response = admin_pb2.ExecuteSqlResponse(
            result_json=json.dumps(outcome.result, ensure_ascii=False, allow_nan=False).encode()
        )
        if outcome.error is not None:
            response.error = outcome.error
        return response
