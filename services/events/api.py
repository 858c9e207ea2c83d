"""EventService servicer: requests → EventLog calls → responses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from noetl.v1 import events_pb2, events_pb2_grpc

from kernel import jsonutil, rpc_errors, telemetry
from kernel.errors import InvalidArgument, MeshError, NotFound, PermissionDenied, Unprocessable
from kernel.mesh_guard import current_worker, worker_refusal
from kernel.wire import optional
from services.events.batches import BatchLimits
from services.events.messages import batch_message, draft_from_message, envelope_from_message, event_message
from services.events.normalize import WorkerEventDraft, normalize
from services.events.service import EventLog

log = logging.getLogger(__name__)


def _worker_draft(event: events_pb2.WorkerEvent) -> WorkerEventDraft:
    try:
        payload = jsonutil.loads(event.payload_json)
        meta = jsonutil.loads(event.meta_json)
    except ValueError as exc:
        raise Unprocessable(f"payload is not valid JSON: {exc}") from exc
    return normalize(
        event_type=event.event_type,
        step=event.step,
        payload=payload,
        meta=meta,
        worker_id=optional(event, "worker_id"),
        actionable=event.actionable,
        informative=event.informative,
    )


def _batch_item(index: int, event: events_pb2.WorkerEvent) -> WorkerEventDraft:
    """Raises Unprocessable naming the item (`events[<index>]: ...`)."""
    try:
        return _worker_draft(event)
    except Unprocessable as exc:
        raise Unprocessable(f"events[{index}]: {exc.detail}") from exc


def _item_error(error: MeshError) -> events_pb2.EmitItemResult:
    return events_pb2.EmitItemResult(error=rpc_errors.item_error(error))


class EventApi(events_pb2_grpc.EventServiceServicer):
    def __init__(self, log: EventLog, batch_limits: BatchLimits) -> None:
        self._log = log
        self._batch_limits = batch_limits

    async def _own_work(
        self, rpc: str, execution_id: int, drafts: list[WorkerEventDraft], known: set[int]
    ) -> None:
        """A worker process (mesh identity `worker:<id>`) reports only as itself and only on
        commands it claimed; `known`: command ids already checked on this call.

        Raises:
            PermissionDenied: another worker's id, no command id, or a command it never claimed.
        """
        own = current_worker()
        if own is None:
            return
        for draft in drafts:
            if worker_refusal(rpc, draft.worker_id or "") is not None:
                raise PermissionDenied(f"these mesh credentials may not report as worker {draft.worker_id!r}")
            command_id = draft.command_id
            if command_id is None:
                raise PermissionDenied(
                    "a worker reports events of the commands it claimed: command_id is required"
                )
            if command_id in known:
                continue
            if not await self._log.has_claimed(execution_id, command_id, own):
                log.warning("refused %s: worker %r never claimed command %s", rpc, own, command_id)
                raise PermissionDenied(f"worker {own!r} has no claim on command {command_id}")
            known.add(command_id)

    async def Append(
        self, request: events_pb2.AppendRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.AppendResponse:
        outcome = await self._log.append(
            request.execution_id,
            [draft_from_message(event) for event in request.events],
            catalog_id=request.catalog_id or None,
            parent_execution_id=optional(request, "parent_execution_id"),
            require_open=request.require_open,
        )
        return events_pb2.AppendResponse(
            event_ids=outcome.event_ids,
            duplicates=outcome.duplicates,
            stored=[event_message(event) for event in outcome.stored],
        )

    async def AppendMany(
        self, request: events_pb2.AppendManyRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.AppendManyResponse:
        telemetry.tag_executions(append.execution_id for append in request.appends)
        answered = await asyncio.gather(
            *(self.Append(append, context) for append in request.appends), return_exceptions=True
        )
        results: list[events_pb2.AppendItemResult] = []
        for outcome in answered:
            if isinstance(outcome, events_pb2.AppendResponse):
                results.append(events_pb2.AppendItemResult(appended=outcome))
            elif isinstance(outcome, Exception):  # answered as its own Append would have been
                failure = rpc_errors.as_mesh_error(outcome, "EventApi.Append")
                results.append(events_pb2.AppendItemResult(error=rpc_errors.item_error(failure)))
            else:
                raise outcome  # cancelled: the whole call is
        return events_pb2.AppendManyResponse(results=results)

    async def Emit(
        self, request: events_pb2.EmitRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.EmitResponse:
        event = request.event
        drafts = [_worker_draft(event)]
        await self._own_work("EventService/Emit", event.execution_id, drafts, set())
        outcome = await self._log.emit(event.execution_id, drafts)
        return events_pb2.EmitResponse(
            event_id=outcome.event_ids[0],
            commands_generated=outcome.commands_generated,
            duplicate=outcome.duplicates[0],
        )

    async def EmitMany(
        self, request: events_pb2.EmitManyRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.EmitManyResponse:
        results: list[events_pb2.EmitItemResult] = []
        valid: list[tuple[int, WorkerEventDraft]] = []
        positions: list[int] = []
        for event in request.events:
            try:
                draft = _worker_draft(event)
            except MeshError as exc:
                results.append(_item_error(exc))
                continue
            positions.append(len(results))
            results.append(events_pb2.EmitItemResult())
            valid.append((event.execution_id, draft))
        telemetry.tag_executions(execution_id for execution_id, _ in valid)
        for position, outcome in zip(positions, await self._log.emit_each(valid), strict=True):
            if isinstance(outcome, MeshError):
                results[position] = _item_error(outcome)
            else:
                results[position] = events_pb2.EmitItemResult(
                    event_id=outcome.event_ids[0],
                    commands_generated=outcome.commands_generated,
                    duplicate=outcome.duplicates[0],
                )
        return events_pb2.EmitManyResponse(results=results)

    async def StreamEmit(
        self, request_iterator: AsyncIterator[events_pb2.StreamEmitRequest], context: grpc.aio.ServicerContext
    ) -> events_pb2.StreamEmitResponse:
        event_ids: list[int] = []
        generated = 0
        claimed: set[int] = set()
        async for batch in request_iterator:
            if not batch.events:
                continue
            execution_id = batch.events[0].execution_id
            if any(e.execution_id != execution_id for e in batch.events):
                raise InvalidArgument("all events of one stream message must belong to one execution")
            telemetry.tag_execution(execution_id)
            drafts = [_worker_draft(e) for e in batch.events]
            await self._own_work("EventService/StreamEmit", execution_id, drafts, claimed)
            outcome = await self._log.emit(execution_id, drafts)
            event_ids.extend(outcome.event_ids)
            generated += outcome.commands_generated
        return events_pb2.StreamEmitResponse(event_ids=event_ids, commands_generated=generated)

    async def EmitBatch(
        self, request: events_pb2.EmitBatchRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.EmitBatchResponse:
        telemetry.tag_execution(request.execution_id)
        self._batch_limits.check([len(event.payload_json) for event in request.events])
        outcome = await self._log.emit_batch(
            request.execution_id,
            [_batch_item(index, event) for index, event in enumerate(request.events)],
            catalog_id=optional(request, "catalog_id"),
            idempotency_key=optional(request, "idempotency_key"),
        )
        return events_pb2.EmitBatchResponse(
            request_id=outcome.request_id,
            event_ids=outcome.event_ids,
            commands_generated=outcome.commands_generated,
            duplicate=outcome.duplicate,
        )

    async def GetBatch(
        self, request: events_pb2.GetBatchRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.GetBatchResponse:
        return events_pb2.GetBatchResponse(batch=batch_message(await self._log.batch(request.request_id)))

    async def GetEventResult(
        self, request: events_pb2.GetEventResultRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.GetEventResultResponse:
        result = await self._log.event_result(request.event_id)
        return events_pb2.GetEventResultResponse(result_json=jsonutil.dumps(result))

    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ListEventsResponse:
        events, total = await self._log.page(
            request.execution_id,
            after_event_id=optional(request, "after_event_id"),
            event_type=optional(request, "event_type"),
            newest_first=request.newest_first,
            page=request.page,
            page_size=request.page_size or 100,
        )
        return events_pb2.ListEventsResponse(events=[event_message(e) for e in events], total=total)

    async def Subscribe(
        self, request: events_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[events_pb2.SubscribeResponse]:
        if not await self._log.exists(request.execution_id):
            raise NotFound(f"Execution {request.execution_id} not found")
        after = optional(request, "after_event_id")
        async for event in self._log.follow(request.execution_id, after):
            yield events_pb2.SubscribeResponse(event=event_message(event))

    async def Project(
        self, request: events_pb2.ProjectRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ProjectResponse:
        projected, duplicates = await self._log.project([envelope_from_message(e) for e in request.events])
        return events_pb2.ProjectResponse(projected=projected, duplicates=duplicates)

    async def CatalogUsage(
        self, request: events_pb2.CatalogUsageRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.CatalogUsageResponse:
        used = await self._log.catalog_usage(list(request.catalog_ids))
        return events_pb2.CatalogUsageResponse(used_catalog_ids=used)
